"""End-to-end fixtures: a dev node, a coordinator and miners as real processes on loopback.

`Net` sets up one scenario: it starts `cuckoo-node --dev --tmp --block-time-ms 500`, bonds and
registers the coordinator (//Charlie, 2,000,000 CAI, a distinct operator key, an
http://127.0.0.1:PORT url) and the miners (//Dave, //Eve, ... with their own operator keys),
lets voters vote, then starts `cuckoo-coordinator` and `cuckoo-miner` processes with operator
keys in 0600 files. Readiness is decided by polling the node's RPC and the daemons' /health
endpoints (the coordinator's `ready` and `miners_live`), never by reading logs; logs are only
shown when something fails.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from substrateinterface import Keypair

from tests.integration.conftest import NodeProcess, free_ports, start_node
from tests.miner.chainkit import CAI, Actor, ChainKit, Step

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 20.0
T = TypeVar("T")

MINER_BOND = 25_000 * CAI
COORDINATOR_BOND = 2_000_000 * CAI


def dev_spec_with(
    path: Path,
    verification: dict[str, Any],
    slashing: dict[str, Any] | None = None,
    tasks: dict[str, Any] | None = None,
) -> Path:
    """The dev chain spec with some `verification` (and `slashing`, `tasks`) parameters changed,
    written to `path`."""
    spec = json.loads((ROOT / "genesis" / "dev.json").read_text())
    params = spec["genesis"]["runtimeGenesis"]["parameters"]
    params["verification"] = {**params["verification"], **verification}
    params["slashing"] = {**params["slashing"], **(slashing or {})}
    params["tasks"] = {**params["tasks"], **(tasks or {})}
    # a settled task must stay in state while a slash reported about it may be cancelled
    least = (params["slashing"]["slashDeferDuration"] + 1) * params["staking"]["eraLength"]
    params["tasks"]["retentionBlocks"] = max(params["tasks"]["retentionBlocks"], least)
    path.write_text(json.dumps(spec))
    return path


def executable(name: str, module: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One HTTP request with a JSON body (or none); (status, parsed JSON or raw bytes)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(raw)
    return status, raw


def poll_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    *,
    on_fail: Callable[[], str] = str,
    interval: float = 0.2,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:  # truthy: an empty list or dict means "not yet"
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{on_fail()}")
        time.sleep(interval)


@dataclasses.dataclass
class Daemon:
    """A daemon process with its log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {' '.join(self.args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
            )
        return self

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            pytest.fail(
                f"{self.name} exited with status {code}; last lines of its log:\n{self.log_tail()}",
                pytrace=False,
            )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM (and SIGCONT, should it be paused)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
                self.proc.send_signal(signal.SIGCONT)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Wait for the exit, SIGKILL after `timeout`. The exit status of a clean stop, None
        when it had to be killed."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        self.terminate()
        return self.wait_stopped(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


@dataclasses.dataclass
class MinerProc:
    actor: Actor
    daemon: Daemon
    status_port: int

    def health(self) -> tuple[int, Any]:
        try:
            return http("GET", f"http://127.0.0.1:{self.status_port}/health", timeout=5)
        except OSError as exc:
            return 0, str(exc)


class Net:
    """One scenario's chain, coordinator and miners."""

    def __init__(
        self,
        tmp: Path,
        *,
        verification: dict[str, Any] | None = None,
        slashing: dict[str, Any] | None = None,
        tasks: dict[str, Any] | None = None,
    ) -> None:
        """`verification`, `slashing`, `tasks`: chain spec parameters to override (e.g.
        {"checkRate": 10**9}); the node then runs the dev spec with them (`--dev --chain FILE`)."""
        self.tmp = tmp
        # an archive: scenarios tally the events of every block they ran (more than the
        # default window of 256 blocks of state)
        extra: list[str] = ["--state-pruning", "archive"]
        if verification or slashing or tasks:
            spec = dev_spec_with(tmp / "dev-spec.json", verification or {}, slashing, tasks)
            extra += ["--chain", str(spec)]
        self.node: NodeProcess = start_node(tmp / "node.log", prometheus=False, extra=extra)
        self.node.wait_for_block(1)
        self.kit = ChainKit(self.node.ws_url)
        self.coordinator = Actor(
            Keypair.create_from_uri("//Charlie"),
            Keypair.create_from_uri("//Charlie//operator"),
            "coordinator",
        )
        (self.coordinator_port,) = free_ports(1)
        self.coordinator_url = f"http://127.0.0.1:{self.coordinator_port}"
        self.coordinator_daemon: Daemon | None = None
        self.coordinator_args: list[str] = []
        self.miners: dict[str, MinerProc] = {}
        self.actors: dict[str, Actor] = {}
        self.started: list[Daemon] = []

    # ---- chain set-up ---------------------------------------------------------------------------

    def register(
        self,
        miners: list[str],
        votes: list[tuple[str, str, int]] = (),  # type: ignore[assignment]
        bonds: dict[str, int] | None = None,
        coordinator_bond: int = COORDINATOR_BOND,
    ) -> None:
        """Register the coordinator and miners (by dev account name, e.g. "Dave"), then the
        votes (voter dev name, miner dev name, amount); everything in parallel chains. Each
        miner bonds MINER_BOND unless `bonds` names another amount for it. COORDINATOR_BOND is
        the minimum: a coordinator that may be slashed needs more to stay Active."""
        for name in miners:
            self.actors[name] = Actor(
                Keypair.create_from_uri(f"//{name}"),
                Keypair.create_from_uri(f"//{name}//operator"),
                f"{name.lower()}-miner",
            )
        chains: list[list[Step]] = [
            self.kit.coordinator_steps(self.coordinator, coordinator_bond, self.coordinator_url)
        ]
        bond = bonds or {}
        chains += [self.kit.miner_steps(self.actors[n], bond.get(n, MINER_BOND)) for n in miners]
        self.kit.run_parallel(chains)
        self.kit.run_parallel(
            [
                self.kit.voter_steps(
                    Keypair.create_from_uri(f"//{voter}"),
                    amount + 100_000 * CAI,
                    self.actors[target].staker,
                    amount,
                )
                for voter, target, amount in votes
            ]
        )

    # ---- daemons --------------------------------------------------------------------------------

    def _key_file(self, name: str, suri: str) -> Path:
        path = self.tmp / "keys" / f"{name}.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(suri + "\n")
        path.chmod(0o600)
        return path

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "CUCKOO_OPERATOR_SURI"}
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
        env.update(extra or {})
        return env

    def start_coordinator(
        self,
        *,
        task_timeout_blocks: int = 30,
        miner_live_s: float = 5.0,
        request_timeout_s: float = 60.0,
        extra_args: list[str] | None = None,
    ) -> Daemon:
        key = self._key_file("coordinator", "//Charlie//operator")
        self.coordinator_args = [
            *executable("cuckoo-coordinator", "coordinator.cli"),
            "--chain-url", self.node.ws_url,
            "--host", "127.0.0.1",
            "--port", str(self.coordinator_port),
            "--data-dir", str(self.tmp / "coordinator-data"),
            "--operator-key-file", str(key),
            "--task-timeout-blocks", str(task_timeout_blocks),
            "--miner-live-s", str(miner_live_s),
            "--request-timeout-s", str(request_timeout_s),
            *(extra_args or []),
        ]  # fmt: skip
        return self.restart_coordinator()

    def restart_coordinator(self) -> Daemon:
        """Start the coordinator (again, with the same arguments and data dir); wait until ready."""
        daemon = Daemon(
            "cuckoo-coordinator", self.coordinator_args, self._env(), self.tmp / "coordinator.log"
        ).start()
        self.started.append(daemon)
        self.coordinator_daemon = daemon

        def ready() -> bool:
            daemon.assert_running()
            try:
                status, body = http("GET", self.coordinator_url + "/health", timeout=2)
            except OSError:
                return False
            return status == 200 and isinstance(body, dict) and body.get("ready") is True

        poll_until("the coordinator's /health", ready, 60, on_fail=daemon.log_tail)
        return daemon

    def start_miner(
        self,
        name: str,
        *,
        solver: str = "pattern",
        discover: bool = False,
        env: dict[str, str] | None = None,
        wait: bool = True,
        coordinator_url: str | None = None,
        extra_args: list[str] | None = None,
    ) -> MinerProc:
        """Start `cuckoo-miner` for a registered miner. It polls the net's coordinator, or
        `coordinator_url` instead (e.g. one that nobody serves: a miner that only checks), or
        the coordinators registered on chain (`discover`)."""
        actor = self.actors[name]
        key = self._key_file(f"miner-{name}", f"//{name}//operator")
        (port,) = free_ports(1)
        args = [
            *executable("cuckoo-miner", "miner.cli"),
            "--chain-url", self.node.ws_url,
            "--solver", solver,
            "--data-dir", str(self.tmp / f"miner-{name}"),
            "--operator-key-file", str(key),
            "--status-port", str(port),
            "--poll-wait", "5",
            "--log", "debug",
        ]  # fmt: skip
        if not discover:
            args += ["--coordinator", coordinator_url or self.coordinator_url]
        args += extra_args or []
        daemon = Daemon(
            f"cuckoo-miner {name}", args, self._env(env), self.tmp / f"miner-{name}.log"
        )
        daemon.start()
        self.started.append(daemon)
        miner = MinerProc(actor, daemon, port)
        self.miners[name] = miner
        if wait:
            self.wait_miner_ready(miner)
        return miner

    def wait_miner_ready(self, miner: MinerProc) -> None:
        def ready() -> bool:
            miner.daemon.assert_running()
            status, body = miner.health()
            return status == 200 and isinstance(body, dict) and body.get("status") == "ready"

        poll_until(f"{miner.daemon.name}'s /health", ready, 60, on_fail=miner.daemon.log_tail)

    def coordinator_health(self) -> dict[str, Any]:
        _, body = http("GET", self.coordinator_url + "/health", timeout=5)
        assert isinstance(body, dict), body
        return body

    def wait_miners_live(self, n: int) -> None:
        poll_until(
            f"{n} live miners at the coordinator",
            lambda: self.coordinator_health().get("miners_live", 0) >= n,
            60,
            on_fail=self.logs,
        )

    # ---- app API --------------------------------------------------------------------------------

    def generate(
        self, prompt: str, *, n: int = 1, seed: int = 1, size: str = "64x64"
    ) -> dict[str, Any]:
        status, body = http(
            "POST",
            self.coordinator_url + "/v1/images/generations",
            {"prompt": prompt, "n": n, "size": size, "seed": seed, "steps": 2},
            timeout=120,
        )
        assert status == 200, f"generation answered {status}: {body}\n{self.logs()}"
        assert isinstance(body, dict)
        return body

    def create_task(self, prompt: str, seed: int) -> str:
        status, body = http(
            "POST",
            self.coordinator_url + "/v1/tasks",
            {"prompt": prompt, "size": "64x64", "seed": seed, "steps": 2},
        )
        assert status == 202, f"POST /v1/tasks answered {status}: {body}"
        task_id: str = body["id"]
        return task_id

    def get_task(self, task_id: str) -> dict[str, Any]:
        status, body = http("GET", f"{self.coordinator_url}/v1/tasks/{task_id}")
        assert status == 200, f"GET /v1/tasks/{task_id}: {status} {body}"
        assert isinstance(body, dict)
        return body

    def task_image(self, task_id: str) -> bytes:
        status, body = http("GET", f"{self.coordinator_url}/v1/tasks/{task_id}/image")
        assert status == 200, f"image of {task_id}: {status} {body!r}"
        assert isinstance(body, bytes)
        return body

    def wait_settled(self, task_id: str, timeout: float = 90) -> dict[str, Any]:
        """The task view once its receipt shows a settlement block and what the task paid."""

        def settled() -> dict[str, Any] | None:
            view = self.get_task(task_id)
            receipt = view.get("receipt")
            if view["status"] == "failed":
                raise AssertionError(f"task {task_id} failed: {view}\n{self.logs()}")
            if (
                receipt
                and isinstance(receipt.get("settle_block"), int)
                and receipt.get("to_miner") != "pending"
            ):
                return view
            return None

        return poll_until(
            f"task {task_id} settled", settled, timeout, on_fail=self.logs, interval=0.5
        )

    # ---- diagnostics and teardown ---------------------------------------------------------------

    def logs(self) -> str:
        parts = []
        for d in self.started[-6:]:
            parts.append(
                f"---- {d.name} ({'running' if d.is_running else 'exited'}):\n{d.log_tail(25)}"
            )
        return "\n".join(parts)

    def close(self) -> None:
        for d in self.started:
            d.terminate()
        for d in self.started:
            d.wait_stopped()
        self.kit.close()
        self.node.stop()


@pytest.fixture
def net_factory(tmp_path: Path) -> Iterator[Callable[..., Net]]:
    made: list[Net] = []

    def make(**kwargs: Any) -> Net:
        net = Net(tmp_path, **kwargs)
        made.append(net)
        return net

    yield make
    for net in made:
        net.close()


def png_of(item: dict[str, Any]) -> bytes:
    return base64.b64decode(item["b64_json"])
