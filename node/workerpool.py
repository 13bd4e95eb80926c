"""Worker processes that die with the node.

CPU-bound work that would hold the GIL for long (BLS in pure Python) runs in a process pool. A
worker started with the spawn method outlives a parent killed without warning (`kill -9`, the
OOM killer): it is re-parented to init and waits on its task queue forever. Each worker of
`worker_pool` arms the kernel's parent-death signal (Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`)
as its first act, and watches its parent's pid from a thread as well (other platforms, and the
moment between the spawn and the prctl). multiprocessing's resource tracker, the other process
the spawn method starts, exits by itself once no process holds its pipe: the node and its
workers are its only holders.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Final

__all__ = ["PARENT_POLL_S", "arm_parent_death", "worker_pool"]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
PARENT_POLL_S: Final = 0.5
"""How often a worker's watchdog thread checks that its parent is still there."""


def worker_pool(max_workers: int = 1) -> concurrent.futures.ProcessPoolExecutor:
    """A spawn-method process pool whose workers end when this process ends, however it ends."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=arm_parent_death,
        initargs=(os.getpid(),),
    )


def arm_parent_death(parent_pid: int) -> None:
    """In a worker: be killed the moment the process `parent_pid` that started it is gone."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _die()
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="worker.parent-watch", daemon=True
    ).start()


def _set_parent_death_signal() -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
