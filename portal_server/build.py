"""Building the portal's bundle (`portal/dist`) from the pinned npm packages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[1] / "portal"
DIST = PORTAL / "dist"
TEST_WALLET = PORTAL / "dist-test" / "test-wallet.js"
BUILD_TIMEOUT_S = 300


class BuildError(Exception):
    """The bundle could not be built; the message says why."""


def _newest(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def sources(portal: Path = PORTAL) -> list[Path]:
    files = [portal / "build.mjs", portal / "package-lock.json"]
    for sub in ("src", "test"):
        files += sorted(p for p in (portal / sub).rglob("*") if p.is_file())
    return files


def is_stale(portal: Path = PORTAL) -> bool:
    outputs = [portal / "dist" / "app.js", portal / "dist" / "index.html"]
    outputs.append(portal / "dist-test" / "test-wallet.js")
    if not all(p.exists() for p in outputs):
        return True
    return _newest(sources(portal)) > min(p.stat().st_mtime for p in outputs)


def build(portal: Path = PORTAL, *, force: bool = False, quiet: bool = False) -> Path:
    """Install the pinned npm packages (`npm ci`) when needed and bundle the app with esbuild;
    returns the dist folder. Raises BuildError without node or npm, or when a step fails."""
    if not force and not is_stale(portal):
        return portal / "dist"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BuildError("building the portal needs Node.js and npm (apt-get install nodejs npm)")
    marker = portal / "node_modules" / ".package-lock.json"
    lock = portal / "package-lock.json"
    steps: list[list[str]] = []
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        steps.append([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    steps.append([node, "build.mjs"])
    for cmd in steps:
        if not quiet:
            shown = " ".join([Path(cmd[0]).name, *cmd[1:]])
            print(f"cuckoo-portal: {shown}", flush=True)
        try:
            done = subprocess.run(
                cmd,
                cwd=portal,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"{cmd[1]} ran over {BUILD_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            raise BuildError(f"{' '.join(cmd[1:])} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return portal / "dist"
