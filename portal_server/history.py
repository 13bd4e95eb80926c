"""A small indexer for the portal's history views: it follows the node's finalized blocks and keeps,
in memory, the events the pages need over many eras (rewards, slashes, each task's trail, and
how many of each miner's tasks were checked), which the node can only give block by block.

It reads the node like any client (substrate-interface: block hashes and decoded events), from
`start` (default: the 10,000 blocks before the finalized head at start) to the finalized head,
then every new finalized block. Served by `cuckoo-portal` under `/api/history/`; the records are
lost on restart (the node is the source: they are read again).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

log = logging.getLogger("cuckoo-portal.history")

BACKFILL_BLOCKS = 10_000
MAX_PER_KEY = 5_000  # records kept per account or task (oldest dropped first)
POLL_S = 1.0
SLASH_EVENTS = ("Slashing.OffenceReported", "Slashing.OffenderSlashed", "Slashing.SlashCancelled")


def _plain(value: Any) -> Any:
    """JSON-safe: ints as decimal strings (balances exceed 2^53), containers recursively."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | float) else str(value)


class History:
    """The indexed records, safe to read from the HTTP threads while the follower writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first: int | None = None  # first block indexed
        self.indexed_to = 0
        self.error = ""
        self.rewards: dict[str, collections.deque[dict[str, Any]]] = {}
        self.target_rewards: dict[str, collections.deque[dict[str, Any]]] = {}
        self.slashes: dict[str, collections.deque[dict[str, Any]]] = {}
        self.tasks: dict[str, list[dict[str, Any]]] = {}
        self.task_miner: dict[str, str] = {}
        self.miner_tasks: dict[str, collections.deque[str]] = {}
        self.checked: collections.Counter[str] = collections.Counter()

    @staticmethod
    def _push(table: dict[str, Any], key: str, record: Any) -> None:
        table.setdefault(key, collections.deque(maxlen=MAX_PER_KEY)).append(record)

    def add(self, block: int, name: str, attrs: Any) -> None:
        """Record one event (`Pallet.Event`, its decoded attributes) of finalized block `block`."""
        if not isinstance(attrs, dict):
            return
        rec = {"block": block, "event": name, **_plain(attrs)}
        with self.lock:
            if name == "Rewards.Rewarded":
                self._push(self.rewards, str(attrs["who"]), rec)
            elif name == "Rewards.TargetRewarded":
                self._push(self.target_rewards, str(attrs["who"]), rec)
            elif name in SLASH_EVENTS:
                self._push(self.slashes, str(attrs["offender"]), rec)
            if name.startswith("Tasks.") and "task_id" in attrs:
                task = str(attrs["task_id"])
                trail = self.tasks.setdefault(task, [])
                if len(trail) < 64:
                    trail.append(rec)
                if name == "Tasks.TaskCommitted":
                    miner = str(attrs["miner"])
                    self.task_miner[task] = miner
                    self._push(self.miner_tasks, miner, task)
                elif name == "Tasks.CheckOpened" and int(attrs.get("round", 0)) == 1:
                    checked = self.task_miner.get(task)
                    if checked is not None:
                        self.checked[checked] += 1

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"first": self.first, "indexed_to": self.indexed_to, "error": self.error}

    def account(self, who: str) -> dict[str, Any]:
        with self.lock:
            return {
                **{"first": self.first, "indexed_to": self.indexed_to},
                "rewards": list(self.rewards.get(who, ())),
                "target_rewards": list(self.target_rewards.get(who, ())),
                "slashes": list(self.slashes.get(who, ())),
                "tasks": list(self.miner_tasks.get(who, ()))[-200:],
                "checked": self.checked.get(who, 0),
            }

    def task(self, task_id: str) -> dict[str, Any]:
        with self.lock:
            return {
                "first": self.first,
                "indexed_to": self.indexed_to,
                "events": list(self.tasks.get(task_id.lower(), ())),
            }

    def checked_counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "first": self.first,
                "indexed_to": self.indexed_to,
                "checked": dict(self.checked),
            }


class Follower:
    """Follows the node's finalized blocks into a History, in a daemon thread."""

    def __init__(self, node_url: str, history: History, start: int | None = None) -> None:
        self.node_url, self.history, self.start_block = node_url, history, start
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="portal-history", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._follow()
            except Exception as exc:  # the node went away, or a block could not be read
                with self.history.lock:
                    self.history.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("history: %s; retrying", self.history.error)
                self.stopping.wait(5.0)

    def _follow(self) -> None:
        from substrateinterface import SubstrateInterface

        si = SubstrateInterface(url=self.node_url, ws_options={"timeout": 30})
        try:
            while not self.stopping.is_set():
                head = si.get_block_number(si.get_chain_finalised_head())
                nxt = self.history.indexed_to + 1 if self.history.first is not None else None
                if nxt is None:
                    nxt = self.start_block or max(1, head - BACKFILL_BLOCKS + 1)
                    with self.history.lock:
                        self.history.first = nxt
                        self.history.indexed_to = nxt - 1
                for n in range(nxt, head + 1):
                    if self.stopping.is_set():
                        return
                    for record in si.get_events(si.get_block_hash(n)):
                        v = record.value
                        self.history.add(n, f"{v['module_id']}.{v['event_id']}", v["attributes"])
                    with self.history.lock:
                        self.history.indexed_to = n
                        self.history.error = ""
                self.stopping.wait(POLL_S)
        finally:
            si.close()


def wait_indexed(history: History, block: int, timeout: float) -> bool:
    """True once `history` has indexed `block` (tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history.status()["indexed_to"] >= block:
            return True
        time.sleep(0.1)
    return False
