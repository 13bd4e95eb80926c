"""node/workerpool.py: a worker ends when the process that started it ends, by the kernel's
parent-death signal and, where that is not armed, by its watchdog thread. The whole node is
tested in tests/integration/test_child_processes.py (kill -9 of a validator)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from node.workerpool import worker_pool

ROOT = Path(__file__).resolve().parents[2]
EXIT_TIMEOUT_S = 10.0

# A middle process starts a worker, waits until the worker has armed itself, prints the worker's
# pid and exits.
MIDDLE = textwrap.dedent(
    """
    import os, subprocess, sys
    worker = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1], str(os.getpid())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert worker.stdout.readline() == b"armed\\n"
    print(worker.pid, flush=True)
    os._exit(0)
    """
)
WATCHDOG_ONLY = textwrap.dedent(
    """
    import sys, time
    import node.workerpool as wp
    wp._set_parent_death_signal = lambda: False  # as on a platform without prctl
    wp.arm_parent_death(int(sys.argv[1]))
    print("armed", flush=True)
    time.sleep(60)
    """
)
PRCTL_ONLY = textwrap.dedent(
    """
    import sys, time
    import node.workerpool as wp
    wp._watch_parent = lambda parent_pid: None  # the kernel's signal alone
    wp.arm_parent_death(int(sys.argv[1]))
    print("armed", flush=True)
    time.sleep(60)
    """
)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _orphaned_worker_exits(worker_code: str) -> bool:
    with subprocess.Popen(
        [sys.executable, "-c", MIDDLE, worker_code], stdout=subprocess.PIPE, cwd=ROOT
    ) as middle:
        assert middle.stdout is not None
        pid = int(middle.stdout.readline())
        assert middle.wait(30) == 0
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while _is_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl: Linux")
@pytest.mark.parametrize("worker_code", [WATCHDOG_ONLY, PRCTL_ONLY], ids=["watchdog", "prctl"])
def test_a_worker_ends_when_its_parent_is_gone(worker_code: str) -> None:
    assert _orphaned_worker_exits(worker_code)


def test_a_worker_whose_parent_died_before_it_armed_ends_at_once() -> None:
    code = "import node.workerpool as wp; wp.arm_parent_death(1); import time; time.sleep(60)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=30, check=False)
    assert out.returncode == -signal.SIGKILL


def test_the_pool_runs_work_in_another_process() -> None:
    with worker_pool(max_workers=1) as pool:
        assert pool.submit(os.getpid).result(timeout=30) != os.getpid()
