"""Integration fixtures: real `cuckoo-node` processes on loopback, driven over JSON-RPC.

* `dev_node` (session scope): one `--dev --tmp` chain with 500 ms blocks shared by every module,
  an archive (`--state-pruning archive`).
  Readiness is decided by polling `system_health` over HTTP, never by reading the log.
* `node_factory`: start more nodes (e.g. on a kept `--base-path` for restart tests); each one
  is stopped at teardown.
* `rpc(url, method, params)`: one JSON-RPC call over HTTP; raises `RpcCallError` on an error object.
* `WsClient`: a small synchronous JSON-RPC client over one WebSocket, keeping notifications aside.

Account use is split between modules so that nonces never race on the shared node:
substrate-interface tests send from //Alice (and //Eve), the polkadot.js scenario from //Charlie,
the bad-input tests from //Dave, the raw RPC tests from //Ferdie; //Bob and //Ferdie receive.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websocket

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
BLOCK_TIME_MS = 500
UNIT = 10**18
_ids = itertools.count(1)


class RpcCallError(Exception):
    """A JSON-RPC error object answered by the node."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error
        self.code: int = error.get("code")  # type: ignore[assignment]
        self.message: str = error.get("message", "")
        self.data: Any = error.get("data")

    def __str__(self) -> str:
        return f"{self.code} {self.message}" + ("" if self.data is None else f": {self.data}")


def rpc_request(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST raw bytes; returns (HTTP status, body) for any status."""
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def rpc_response(
    url: str, method: str, params: Any = None, timeout: float = 10.0
) -> dict[str, Any]:
    """One JSON-RPC call over HTTP: the whole response object (result or error)."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": next(_ids),
            "method": method,
            "params": [] if params is None else params,
        }
    ).encode()
    status, out = rpc_request(url, body, timeout)
    assert status == 200, f"{method}: HTTP {status}: {out[:200]!r}"
    return json.loads(out)  # type: ignore[no-any-return]


def rpc(url: str, method: str, params: Any = None, timeout: float = 10.0) -> Any:
    """One JSON-RPC call over HTTP: the result, or RpcCallError."""
    resp = rpc_response(url, method, params, timeout)
    if "error" in resp:
        raise RpcCallError(resp["error"])
    return resp["result"]


class WsClient:
    """JSON-RPC over one WebSocket. `call` answers the response object with the request's id;
    notifications read meanwhile are kept in `notifications`."""

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout, max_size=None)
        self.notifications: list[dict[str, Any]] = []
        self._buffered: dict[Any, dict[str, Any]] = {}

    def send(self, method: str, params: Any = None) -> int:
        rid = next(_ids)
        self.ws.send(
            json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []})
        )
        return rid

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def recv(self) -> dict[str, Any]:
        msg = json.loads(self.ws.recv())
        if isinstance(msg, dict) and "method" in msg and "id" not in msg:
            self.notifications.append(msg)
        return msg  # type: ignore[no-any-return]

    def wait_response(self, rid: Any) -> dict[str, Any]:
        if rid in self._buffered:
            return self._buffered.pop(rid)
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and "id" in msg:
                if msg["id"] == rid:
                    return msg
                self._buffered[msg["id"]] = msg

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        return self.wait_response(self.send(method, params))

    def result(self, method: str, params: Any = None) -> Any:
        resp = self.call(method, params)
        if "error" in resp:
            raise RpcCallError(resp["error"])
        return resp["result"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free right now on 127.0.0.1 (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_executable() -> list[str]:
    """`cuckoo-node` from the venv that runs pytest, else `python -m node.cli`."""
    exe = Path(sys.executable).with_name("cuckoo-node")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("cuckoo-node")
    return [found] if found else [sys.executable, "-m", "node.cli"]


@dataclass
class NodeProcess:
    proc: subprocess.Popen[bytes]
    rpc_port: int
    prometheus_port: int | None
    log_path: Path
    base_path: Path | None
    args: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.rpc_port}"

    @property
    def metrics_url(self) -> str | None:
        if self.prometheus_port is None:
            return None
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    # ---- RPC shortcuts ------------------------------------------------------------------------

    def rpc(self, method: str, params: Any = None) -> Any:
        return rpc(self.http_url, method, params)

    def best_number(self) -> int:
        return int(self.rpc("chain_getHeader")["number"], 16)

    def wait_for_block(self, number: int, timeout: float = 20.0) -> int:
        """Wait until the best block is at least `number`; returns the best number."""
        deadline = time.monotonic() + timeout
        while True:
            best = self.best_number()
            if best >= number:
                return best
            self.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"best block is #{best}, still below #{number} after {timeout} s"
                )
            time.sleep(0.1)

    def assert_advancing(self, timeout: float = 10.0) -> None:
        """The node answers `system_health` and authors at least one new block."""
        assert self.rpc("system_health")["isSyncing"] is False
        self.wait_for_block(self.best_number() + 1, timeout)

    # ---- process ------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def assert_running(self) -> None:
        code = self.proc.poll()
        if code is not None:
            pytest.fail(
                f"cuckoo-node exited with status {code}; last lines of {self.log_path}:\n"
                + self.log_tail(),
                pytrace=False,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                health = rpc(self.http_url, "system_health", timeout=2.0)
                if isinstance(health, dict) and "peers" in health:
                    return
            except (OSError, RpcCallError, AssertionError, ValueError) as exc:
                last = exc
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"cuckoo-node did not answer system_health within {timeout} s ({last!r}); "
            f"last lines of {self.log_path}:\n{self.log_tail()}",
            pytrace=False,
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status of a clean stop,
        None when it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None


def spawn_logged(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `args` with stdout and stderr appended to `log_path` (after a header line)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n==== {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def start_node(
    log_path: Path,
    *,
    base_path: Path | None = None,
    block_time_ms: int | None = BLOCK_TIME_MS,
    prometheus: bool = True,
    extra: list[str] | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> NodeProcess:
    """Start `cuckoo-node --dev` (on `base_path`, else `--tmp`) and wait until it answers RPC."""
    for attempt in range(3):  # a port picked as free may be taken before the node binds it
        rpc_port, prom_port = free_ports(2)
        args = [*node_executable(), "--dev", "--rpc-port", str(rpc_port)]
        args += ["--base-path", str(base_path)] if base_path is not None else ["--tmp"]
        args += ["--prometheus-port", str(prom_port)] if prometheus else ["--no-prometheus"]
        if block_time_ms is not None:
            args += ["--block-time-ms", str(block_time_ms)]
        args += extra or []
        proc = spawn_logged(args, log_path)
        node = NodeProcess(
            proc, rpc_port, prom_port if prometheus else None, log_path, base_path, args
        )
        # a bind failure shows as an early exit; retry with other ports
        deadline = time.monotonic() + 1.0
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if (
            proc.poll() is not None
            and attempt < 2
            and "address already in use" in node.log_tail().lower()
        ):
            continue
        node.wait_ready(ready_timeout)
        return node
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def dev_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """The shared dev chain (`--dev --tmp`, 500 ms blocks, Prometheus on), an archive
    (`--state-pruning archive`): the session outlives the default window of 256 blocks, and
    some modules read the genesis state (test_pruning.py covers the default)."""
    log_path = tmp_path_factory.mktemp("dev-node") / "node.log"
    node = start_node(log_path, extra=["--state-pruning", "archive"])
    try:
        node.wait_for_block(1)
        yield node
    finally:
        died = node.proc.poll()
        node.stop()
        if died is not None:
            pytest.fail(
                f"the shared dev node died during the tests (status {died}); last lines of "
                f"{log_path}:\n{node.log_tail()}",
                pytrace=False,
            )


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Any]:
    """`node_factory(base_path=..., name=...)` starts a dev node; all are stopped at teardown."""
    started: list[NodeProcess] = []

    def make(*, base_path: Path | None = None, name: str = "node", **kwargs: Any) -> NodeProcess:
        node = start_node(tmp_path / f"{name}-{len(started)}.log", base_path=base_path, **kwargs)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


# ---- @polkadot/api and polkadot-api (Node.js) for the compatibility scripts in tests/compat ----

COMPAT_DIR = Path(__file__).resolve().parents[1] / "compat"
POLKADOT_PINNED = {  # as in tests/compat/package.json
    "@polkadot/api": "16.5.6",
    "@polkadot/keyring": "14.0.3",
    "@polkadot/util-crypto": "14.0.3",
    "polkadot-api": "2.2.2",
    "ws": "8.23.0",
}
NPM_TIMEOUT_S = 240


def _installed_version(package: str) -> str | None:
    manifest = COMPAT_DIR / "node_modules" / package / "package.json"
    if not manifest.exists():
        return None
    match = re.search(r'"version"\s*:\s*"([^"]+)"', manifest.read_text())
    return match.group(1) if match else None


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Node.js with the pinned client packages (@polkadot/api, polkadot-api) installed in
    tests/compat (`npm ci` when they are missing); skips with the reason only when node/npm are
    absent or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the @polkadot/api checks (not on PATH)")
    if any(_installed_version(p) != v for p, v in POLKADOT_PINNED.items()):
        try:
            out = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(COMPAT_DIR)],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"`npm ci` in {COMPAT_DIR} took longer than {NPM_TIMEOUT_S} s")
        if out.returncode != 0:
            pytest.skip(
                f"`npm ci` in {COMPAT_DIR} failed (status {out.returncode}; no network?):\n"
                + (out.stderr or out.stdout)[-2000:]
            )
    for package, version in POLKADOT_PINNED.items():
        assert _installed_version(package) == version, f"{package} is not {version} in node_modules"
    return node


def node_env(node: str) -> dict[str, str]:
    """The environment for a Node.js client: Node 20 has WebSocket only behind a flag
    (polkadot-api's WebSocket provider needs the global)."""
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(out.stdout.strip().lstrip("v").split(".")[0])
    env = dict(os.environ)
    if major < 22:
        env["NODE_OPTIONS"] = (env.get("NODE_OPTIONS", "") + " --experimental-websocket").strip()
    return env


@dataclass(frozen=True)
class ScriptRun:
    """A client check script's outcome: its `N passed, N failed` summary, the FAIL lines, its
    output and exit status."""

    passed: int
    failed: int
    failures: list[str]
    report: str
    returncode: int

    def assert_all_passed(self, at_least: int) -> None:
        tail = self.report[-4000:]
        assert self.failed == 0, "\n".join(self.failures) + "\n\n" + tail
        assert self.returncode == 0, tail
        assert self.passed >= at_least, tail


def run_check_script(
    args: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> ScriptRun:
    """Run a Node.js check script of tests/compat (`args`: node, the script, its arguments),
    which prints one line per check and ends with `N passed, N failed`."""
    try:
        out = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=COMPAT_DIR,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{Path(args[1]).name} ran over {timeout} s:\n{exc.stdout}\n{exc.stderr}")
    report = out.stdout + out.stderr
    summary = re.findall(r"^(\d+) passed, (\d+) failed$", out.stdout, re.MULTILINE)
    assert summary, f"no summary line (status {out.returncode}):\n{report[-4000:]}"
    passed, failed = map(int, summary[-1])
    failures = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    return ScriptRun(passed, failed, failures, report, out.returncode)
