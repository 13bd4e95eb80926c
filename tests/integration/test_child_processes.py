"""A validator's helper processes die with it: `kill -9` of a node leaves none behind.

A validator with a BLS key signs each session's first final block in a worker process
(node/finality/bls_driver.py); with the spawn start method, multiprocessing also starts its
resource tracker. Both must go when the node is killed without a chance to clean up. The node
runs the dev chain (//Alice alone, every block final at once) with 2-block sessions and 200 ms
slots, so the worker starts with the BLS signature of block #2, a few seconds after start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SLOT_MS = 200
SESSION_LENGTH = 2
WORKER_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 10.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] == "Z":  # a zombie is dead; its parent has not reaped it yet
        return None
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of `root`: pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)] = stat
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def alive(procs: dict[int, int]) -> dict[int, str]:
    """The processes of `procs` still running (same pid, same start time): pid -> command."""
    out = {}
    for pid, started in procs.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            out[pid] = _cmdline(pid)
    return out


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def reaper() -> Iterator[dict[int, int]]:
    """Processes a test found; those still alive at teardown are killed (this test's own)."""
    procs: dict[int, int] = {}
    yield procs
    for pid in alive(procs):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def short_sessions_spec(path: Path) -> Path:
    """genesis/dev.json with 2-block sessions and 200 ms slots."""
    spec = json.loads((ROOT / "genesis" / "dev.json").read_text())
    params = spec["genesis"]["runtimeGenesis"]["parameters"]
    params["aura"]["slotDurationMs"] = SLOT_MS
    params["timestamp"]["minimumPeriodMs"] = SLOT_MS // 2
    params["session"]["length"] = SESSION_LENGTH
    path.write_text(json.dumps(spec))
    return path


def test_kill_9_of_a_validator_leaves_no_bls_worker_behind(
    node_factory: Callable[..., NodeProcess], reaper: dict[int, int], tmp_path: Path
) -> None:
    spec = short_sessions_spec(tmp_path / "spec.json")
    node = node_factory(block_time_ms=None, prometheus=False, extra=["--chain", str(spec)])
    pid = node.proc.pid

    def worker_running() -> bool:
        node.assert_running()
        found = descendants(pid)
        reaper.update(found)
        return any("multiprocessing" in _cmdline(p) and "spawn_main" in _cmdline(p) for p in found)

    wait_for(worker_running, WORKER_TIMEOUT_S, "the BLS worker process did not start")
    children = descendants(pid)
    reaper.update(children)
    commands = alive(children)
    assert any("resource_tracker" in c for c in commands.values()), commands

    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(EXIT_TIMEOUT_S)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not alive(children), EXIT_TIMEOUT_S, "")
    assert alive(children) == {}, "left behind after kill -9 of the node"
