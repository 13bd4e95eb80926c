"""A coordinator without a node: the real engine, store and HTTP app, with `FakeChain` playing
the chain service (instant blocks; commits, miners' results and settlements land at once; a
settled task listed in `check` goes through a check: Checking with its spec due, then final with
`check[task_id]` as its outcome once the coordinator revealed the spec; a settled task is paid
as the runtime splits prices (`split`) and pruned from `tasks` RETENTION blocks later, its
settlement kept in `settlements` as the block's events keep it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from substrateinterface import Keypair

from chainclient.registry import Registration
from chainclient.tasks import Check, Payment, Settlement, Task
from coordinator.api import ApiConfig, ApiContext, Health, build_app
from coordinator.auth import MinerAuth
from coordinator.engine import Engine, EngineConfig
from coordinator.metrics import Metrics
from coordinator.store import Store

COORDINATOR = b"\xc0" * 32
OPERATOR = b"\xc1" * 32
MODELS = ("tiny", "sd-turbo")
BURN_SHARE = 200_000_000  # Perbill, the dev chain's
DEPOSIT = 10**16
RETENTION = 100


def split(price: int, status: str, checkers: int = 0) -> Payment:
    """How the runtime moves a settled task's price (pallets/tasks `split_price`)."""
    share = price * BURN_SHARE // 10**9
    fee = share if checkers else 0
    to_checkers = fee // checkers * checkers if checkers else 0
    dust = fee - to_checkers
    if status == "Accepted":
        return Payment(price - share, share - fee + dust, to_checkers, 0)
    if status == "Rejected":
        return Payment(0, dust, to_checkers, price - fee)
    return Payment(0, 0, 0, price)


def miner_keys(n: int) -> list[Keypair]:
    return [Keypair.create_from_uri(f"//TestMinerOp{i}") for i in range(n)]


def records(
    keys: list[Keypair], weights: list[int] | None = None, statuses: list[str] | None = None
) -> list[Registration]:
    out = []
    for i, k in enumerate(keys):
        out.append(
            Registration(
                staker=bytes([i + 1]) * 32,
                operator=bytes(k.public_key),
                status=(statuses or ["Active"] * len(keys))[i],
                own_stake=(weights or [10**22] * len(keys))[i],
                votes=0,
                name=f"m{i}",
                gpu_model="test",
            )
        )
    return out


class FakeChain:
    """Plays ChainService for an engine: one `block()` is one head."""

    def __init__(self, engine: Engine, head: int = 100) -> None:
        self.engine = engine
        self.head = head
        self.tasks: dict[bytes, Task] = {}
        self.settled: list[bytes] = []
        self.disputed: list[bytes] = []
        self.check: dict[bytes, str] = {}  # task id -> the outcome of its check, when checked
        self.checks: dict[bytes, Check] = {}
        self.specs: dict[bytes, bytes] = {}
        self.is_registered = True
        self.pending_results: dict[bytes, bytes] = {}
        self.commit_blocks = 0
        self.settlements: dict[int, dict[bytes, Settlement]] = {}  # the blocks' events
        self.is_pruning = True

    def submit_result(self, task_id_hex: str, commitment: bytes) -> None:
        """What a miner's Tasks.submit_results does, once the task is committed (like a real
        miner, which waits for the commitment)."""
        self.pending_results[bytes.fromhex(task_id_hex[2:])] = commitment
        self._apply_results()

    def _apply_results(self) -> None:
        for tid, commitment in list(self.pending_results.items()):
            t = self.tasks.get(tid)
            if t is None:
                continue
            del self.pending_results[tid]
            if t.status != "Committed" or self.head > t.deadline:
                continue
            self.tasks[tid] = dataclasses.replace(
                t, status="Submitted", commitment=commitment, submitted_at=self.head
            )

    def _final(self, tid: bytes, status: str, outcome: str = "Unchecked") -> None:
        task = self.tasks[tid] = dataclasses.replace(
            self.tasks[tid], status=status, settled_at=self.head, outcome=outcome
        )
        self.checks.pop(tid, None)
        payment = split(task.price, status, checkers=0 if outcome == "Unchecked" else 1)
        self.settlements.setdefault(self.head, {})[tid] = Settlement(
            tid, self.head, status, outcome, task.miner, payment
        )

    def _open_check(self, tid: bytes, round_: int) -> None:
        self.tasks[tid] = dataclasses.replace(self.tasks[tid], status="Checking")
        self.checks[tid] = Check(round_, "SpecDue", self.head + 10)

    def block(self, *, offline: bool = False) -> None:
        """One head; `offline`: the chain moves on while the coordinator is stopped."""
        self.head += 1
        for tid, t in list(self.tasks.items()):
            if self.is_pruning and t.is_final and (t.settled_at or 0) + RETENTION <= self.head:
                del self.tasks[tid]
        for tid, t in list(self.tasks.items()):
            if t.status in ("Committed", "Submitted") and t.deadline < self.head:
                self._final(tid, "Accepted" if t.status == "Submitted" else "Missed")
        for tid in list(self.checks):
            if tid in self.specs:  # the checkers ran it: the verdict
                outcome = self.check.get(tid, "Upheld")
                self._final(tid, "Rejected" if outcome == "Guilty" else "Accepted", outcome)
        if offline:
            return
        e = self.engine
        for tid in e.watch_ids():
            e.on_chain_task(tid, self.tasks.get(tid))
        for number, ids in e.settlement_reads(self.head, 8):
            events = self.settlements.get(number, {})
            e.on_settlements(number, ids, {t: events[t] for t in ids if t in events}, self.head)
        for tid in e.checking_ids():
            spec = e.on_chain_check(tid, self.checks.get(tid), self.head)
            if spec is not None:
                self.specs[tid] = spec
        e.set_head(self.head)
        e.expire(self.head)
        if not self.is_registered:
            return
        commits = e.take_commits(self.head, 1024)
        for c in commits:
            self.tasks[c.task_id] = Task(
                COORDINATOR,
                c.miner,
                c.spec_hash,
                c.deadline,
                self.head,
                "Committed",
                price=c.price,
                payer=OPERATOR,
                deposit=DEPOSIT,
            )
        if commits:
            self.commit_blocks += 1
            e.commits_confirmed(commits, self.head)
        self._apply_results()
        for tid, accept in e.take_settlements(self.head, 1024):
            if self.tasks[tid].status != "Submitted":
                continue
            if not accept:
                self.disputed.append(tid)
                self._open_check(tid, 1)
            elif tid in self.check:
                self.settled.append(tid)
                self._open_check(tid, 0)
            else:
                self.settled.append(tid)
                self._final(tid, "Accepted")
        e.dispatch_waiting()
        e.sync()

    async def run(self, stop: asyncio.Event, block_s: float = 0.02) -> None:
        while not stop.is_set():
            self.block()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), block_s)


@dataclasses.dataclass
class Harness:
    engine: Engine
    store: Store
    chain: FakeChain
    metrics: Metrics
    url: str
    keys: list[Keypair]
    stop: asyncio.Event


@contextlib.asynccontextmanager
async def running(
    data_dir: Path,
    *,
    n_miners: int = 3,
    weights: list[int] | None = None,
    statuses: list[str] | None = None,
    api_keys: frozenset[str] = frozenset(),
    request_timeout_s: float = 10.0,
    rng_seed: int = 7,
    block_s: float = 0.02,
    run_chain: bool = True,
    engine_kwargs: dict[str, Any] | None = None,
    task_timeout_blocks: int = 250,  # 5 s of 20 ms fake blocks
    registration: str = "Active",  # the coordinator's own status, as health reports it
) -> AsyncIterator[Harness]:
    store = Store(data_dir)
    store.open()
    metrics = Metrics()
    engine = Engine(
        EngineConfig(
            task_timeout_blocks=task_timeout_blocks,
            miner_live_s=30.0,
            **(engine_kwargs or {}),
        ),
        store,
        coordinator=COORDINATOR,
        rng=random.Random(rng_seed),
        on_dispatch=metrics.observe_dispatch,
    )
    engine.load()
    keys = miner_keys(n_miners)
    engine.set_registry(records(keys, weights, statuses))
    engine.restore_miner_queues()
    chain = FakeChain(engine)
    metrics.attach(engine, lambda: None)

    def health() -> Health:
        if registration == "Active":
            return Health(True, {"status": "ok", "ready": True, "chain": {}, "registered": True})
        body = {
            "status": "unavailable",
            "ready": False,
            "chain": {"reachable": True},
            "registered": False,
            "coordinator_status": registration,
        }
        return Health(False, body)

    ctx = ApiContext(
        ApiConfig(MODELS, request_timeout_s, api_keys),
        engine,
        MinerAuth(engine, lambda: int(time.time() * 1000)),
        metrics,
        health,
    )
    runner = web.AppRunner(build_app(ctx), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    addr = runner.addresses[0]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(engine.run(stop, tick_s=0.05))]
    if run_chain:
        tasks.append(asyncio.create_task(chain.run(stop, block_s)))
    else:
        chain.block()
    try:
        yield Harness(engine, store, chain, metrics, f"http://{addr[0]}:{addr[1]}", keys, stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        engine.sync()
        store.close()
