"""@polkadot/api 16.5.6 (the library behind Polkadot.js Apps) against the shared dev node.

Runs tests/compat/polkadot_api_check.mjs with Node.js. Its dependencies are pinned in
tests/compat/package-lock.json; when tests/compat/node_modules is missing, `npm ci` installs them
from the npm registry first. Without node/npm, or when the registry cannot be reached, the test is
skipped with the reason (CI has both).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

COMPAT = Path(__file__).resolve().parents[1] / "compat"
SCRIPT = COMPAT / "polkadot_api_check.mjs"
SCRIPT_TIMEOUT_S = 150


def test_polkadot_api_scenario(node_bin: str, dev_node: NodeProcess) -> None:
    try:
        out = subprocess.run(
            [node_bin, str(SCRIPT), dev_node.ws_url],
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
            cwd=COMPAT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"polkadot_api_check.mjs ran over {SCRIPT_TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}"
        )
    report = out.stdout + out.stderr
    summary = re.findall(r"^(\d+) passed, (\d+) failed$", out.stdout, re.MULTILINE)
    assert summary, f"no summary line (status {out.returncode}):\n{report[-4000:]}"
    passed, failed = map(int, summary[-1])
    failures = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == 0, "\n".join(failures) + "\n\n" + report[-4000:]
    assert out.returncode == 0, report[-4000:]
    assert passed >= 14, report[-4000:]
    dev_node.assert_running()
