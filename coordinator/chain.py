"""The chain side, through the chain client (`chainclient`, substrate-interface underneath).

`ChainService.run()` follows new heads (`HeadFollower`) and, at each one, through the client's
`Gateway` (one worker thread, a deadline on every call): registry snapshot, the operator's
account (nonce, and the usable balance that escrows task prices), on-chain state of the tasks the
engine watches (and the open checks of its checked tasks), resolution of extrinsics in flight,
the settlement events (TaskPaid, TaskSettled) of the blocks where its followed tasks settled;
then, once per head, one `Tasks.commit_tasks` with everything new that the balance escrows
(chunks of MaxBatch), one `Tasks.settle_tasks` (early acceptance), any `Tasks.dispute_task`,
and a `Tasks.reveal_spec` for each checked task whose check waits for its spec.

Extrinsics are signed by the operator key with explicit, sequential nonces from this single
signer and submitted without blocking on inclusion; an extrinsic is known to be included once
the account nonce at a head passes its nonce, and its outcome is read from state (a committed
task's `committed_at` is its commit block; all-or-nothing batches make the first item tell for
all). A stalled extrinsic is re-submitted with the same bytes (idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable

from substrateinterface import Keypair

from chainclient import ClientError, calls
from chainclient.calls import MAX_BATCH, Call, TaskCommit
from chainclient.connection import Connection, SubmitRefused
from chainclient.gateway import Gateway, HeadFollower
from chainclient.registry import COORDINATOR
from coordinator.engine import SETTLEMENT_BLOCKS_PER_HEAD, Engine

log = logging.getLogger(__name__)

STALL_BLOCKS = 10  # re-submit an extrinsic not included after this many heads
HEAD_WAIT_S = 2.0  # without a head from the follower, ask for the best block after this
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0


def coordinator_status(
    conn: Connection, operator: bytes, block_hash: str | None = None
) -> tuple[bytes, str] | None:
    """(staker, status) of the coordinator registration `operator` serves (status
    "Unregistered" once the registration is gone), None if it serves none."""
    role, reg = conn.registration_of(operator, block_hash)
    if role is None or role.role != COORDINATOR:
        return None
    return role.staker, "Unregistered" if reg is None else reg.status


@dataclasses.dataclass(slots=True)
class Inflight:
    kind: str  # commit | settle | dispute | spec
    nonce: int
    data: str  # the signed extrinsic, hex
    submitted_head: int
    commits: list[TaskCommit] = dataclasses.field(default_factory=list)
    settles: list[bytes] = dataclasses.field(default_factory=list)  # task ids (dispute: one)
    spec: tuple[bytes, bytes] | None = None  # (task id, canonical spec JSON)

    @property
    def call(self) -> Call:
        if self.kind == "commit":
            return calls.commit_tasks(self.commits)
        if self.kind == "settle":
            return calls.settle_tasks(self.settles)
        if self.kind == "dispute":
            return calls.dispute_task(self.settles[0])
        assert self.spec is not None
        return calls.reveal_spec(*self.spec)


@dataclasses.dataclass(slots=True)
class ChainStatus:
    head: int | None = None
    head_at: float | None = None  # monotonic time of the last successful cycle
    registered: bool = False
    coordinator_status: str = "Unknown"
    last_error: str | None = None
    commits_submitted: int = 0
    settles_submitted: int = 0
    disputes_submitted: int = 0
    specs_submitted: int = 0
    extrinsics_failed: int = 0
    cycle_s: float = 0.0
    operator_free: int | None = None  # planck, at the last head
    operator_reserved: int | None = None  # escrowed prices and task deposits


class ChainService:
    """Runs the per-head cycle against the chain for the engine."""

    def __init__(
        self,
        url: str,
        operator: Keypair,
        engine: Engine,
        *,
        rpc_timeout_s: float = 20.0,
        registry_every_s: float = 2.0,
        coordinator_every_s: float = 5.0,
    ) -> None:
        self.url = url
        self.operator = operator
        self.operator_id = bytes(operator.public_key)
        self.engine = engine
        self.registry_every_s = registry_every_s
        self.coordinator_every_s = coordinator_every_s
        self.status = ChainStatus()
        self._gateway = Gateway(url, timeout_s=rpc_timeout_s, thread_name="coordinator-chain")
        self._head_event = asyncio.Event()
        self._latest_head = -1
        self._inflight: list[Inflight] = []
        self._next_nonce: int | None = None
        self._last_registry = 0.0
        self._last_coordinator = 0.0
        self._registry_loaded = False
        self._existential_deposit: int | None = None

    def _on_head(self, number: int) -> None:
        if number > self._latest_head:
            self._latest_head = number
            self._head_event.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        follower = HeadFollower(self.url, loop, self._on_head, thread_name="coordinator-heads")
        follower.start()
        try:
            async with asyncio.TaskGroup() as tg:
                work = tg.create_task(self._loop(), name="chain.cycle")
                await stop.wait()
                work.cancel()
        finally:
            follower.stop()
            await self._gateway.close()

    async def _loop(self) -> None:
        backoff = BACKOFF_MIN_S
        processed = -1
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEAD_WAIT_S):
                    await self._head_event.wait()
            self._head_event.clear()
            try:
                if self._latest_head <= processed:
                    number, _ = await self._gateway.run(Connection.head)  # the follower may be down
                    self._latest_head = max(self._latest_head, number)
                    if number <= processed:
                        continue
                started = time.monotonic()
                processed = self._latest_head
                await self.cycle(processed)
                self.status.cycle_s = time.monotonic() - started
                self.status.last_error = None
                backoff = BACKOFF_MIN_S
            except (ClientError, ValueError, KeyError) as exc:
                self.status.last_error = str(exc)
                log.warning("chain cycle failed: %s", exc)
                self._gateway.reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception as exc:
                self.status.last_error = repr(exc)
                log.exception("chain cycle failed")
                self._gateway.reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def cycle(self, number: int) -> None:
        """One head: read, reconcile, then submit this block's batches."""
        gw = self._gateway
        block_hash = await gw.run(Connection.block_hash, number)
        now = time.monotonic()
        if now - self._last_coordinator >= self.coordinator_every_s or not self.status.registered:
            found = await gw.run(coordinator_status, self.operator_id, block_hash)
            self._last_coordinator = now
            self.status.registered = found is not None and found[1] == "Active"
            self.status.coordinator_status = "Unregistered" if found is None else found[1]
        if now - self._last_registry >= self.registry_every_s or not self._registry_loaded:
            miners = await gw.run(Connection.miners, block_hash)
            self._last_registry = now
            self.engine.set_registry(miners)
            if not self._registry_loaded:
                self._registry_loaded = True
                self.engine.restore_miner_queues()
        if self._existential_deposit is None:
            self._existential_deposit = await gw.run(Connection.existential_deposit)
        account = await gw.run(Connection.account, self.operator_id, block_hash)
        self.status.operator_free = account.free
        self.status.operator_reserved = account.reserved
        await self._resolve_inflight(number, block_hash, account.nonce)
        # after the commitments included by this block are known: their escrow is in `reserved`
        self.engine.set_funds(account.usable(self._existential_deposit))
        watch = self.engine.watch_ids()
        if watch:
            states = await gw.run(Connection.tasks, watch, block_hash)
            for task_id, task in states.items():
                self.engine.on_chain_task(task_id, task)
        for block, task_ids in self.engine.settlement_reads(number, SETTLEMENT_BLOCKS_PER_HEAD):
            settled = await gw.run(Connection.settlements, task_ids, block)
            self.engine.on_settlements(block, task_ids, settled, number)
        specs: list[tuple[bytes, bytes]] = []
        checking = self.engine.checking_ids()
        if checking:
            checks = await gw.run(Connection.checks, checking, block_hash)
            for task_id, check in checks.items():
                spec = self.engine.on_chain_check(task_id, check, number)
                if spec is not None:
                    specs.append((task_id, spec))
        self.engine.set_head(number)
        self.engine.expire(number)
        self.status.head = number
        self.status.head_at = time.monotonic()
        if self.status.registered:
            await self._submit_batches(number, specs)
        self.engine.dispatch_waiting()
        self.engine.sync()

    async def _resolve_inflight(self, number: int, block_hash: str, chain_nonce: int) -> None:
        gw = self._gateway
        pending: list[Inflight] = []
        for xt in self._inflight:
            if xt.nonce >= chain_nonce:
                if number - xt.submitted_head > STALL_BLOCKS:
                    log.warning("extrinsic nonce %d not included; re-submitting", xt.nonce)
                    try:
                        await gw.run(Connection.submit, xt.data)
                    except SubmitRefused as exc:
                        log.warning("re-submit failed: %s", exc)
                    xt.submitted_head = number
                pending.append(xt)
                continue
            if xt.kind == "commit":
                await self._resolve_commit(xt, block_hash)
            elif xt.kind in ("settle", "dispute"):
                found = await gw.run(Connection.tasks, xt.settles, block_hash)
                open_ids = []
                for task_id, task in found.items():
                    self.engine.on_chain_task(task_id, task)
                    if task is not None and task.status == "Submitted":
                        open_ids.append(task_id)
                if open_ids:
                    log.info(
                        "%s (nonce %d): %d task(s) still submitted; deciding again",
                        xt.kind,
                        xt.nonce,
                        len(open_ids),
                    )
                    self.engine.settlements_unresolved(open_ids)
        self._inflight = pending
        if self._next_nonce is None or (not pending and self._next_nonce != chain_nonce):
            next_index = await gw.run(Connection.next_index, self.operator_id)
            self._next_nonce = max(chain_nonce, next_index)

    async def _resolve_commit(self, xt: Inflight, block_hash: str) -> None:
        first = xt.commits[0]
        states = await self._gateway.run(Connection.tasks, [first.task_id], block_hash)
        task = states[first.task_id]
        if (
            task is not None
            and task.coordinator == self.engine.coordinator
            and task.spec_hash == first.spec_hash
        ):
            self.engine.commits_confirmed(xt.commits, task.committed_at)
            return
        self.status.extrinsics_failed += 1
        ids = [i.task_id for i in xt.commits]
        found = await self._gateway.run(Connection.tasks, ids, block_hash)
        for task_id, on_chain in found.items():
            if on_chain is not None:
                self.engine.on_chain_task(task_id, on_chain)
        missing = [t for t in ids if found.get(t) is None]
        log.warning("commit batch (nonce %d) failed; %d items retried", xt.nonce, len(missing))
        self.engine.commits_failed(missing)

    async def _submit_batches(self, number: int, specs: list[tuple[bytes, bytes]]) -> None:
        commits = self.engine.take_commits(number, MAX_BATCH * 4)
        decided = self.engine.take_settlements(number, MAX_BATCH * 2)
        settles = [t for t, accept in decided if accept]
        disputes = [t for t, accept in decided if not accept]
        work: list[Inflight] = []
        for task_id, spec in specs:  # first: a check waits for them
            work.append(Inflight("spec", 0, "", number, spec=(task_id, spec)))
        for i in range(0, len(commits), MAX_BATCH):
            work.append(Inflight("commit", 0, "", number, commits=commits[i : i + MAX_BATCH]))
        for i in range(0, len(settles), MAX_BATCH):
            work.append(Inflight("settle", 0, "", number, settles=settles[i : i + MAX_BATCH]))
        for task_id in disputes:
            work.append(Inflight("dispute", 0, "", number, settles=[task_id]))
        failed_from: int | None = None
        for idx, xt in enumerate(work):
            assert self._next_nonce is not None
            xt.nonce = self._next_nonce
            try:
                xt.data = await self._gateway.run(Connection.sign, self.operator, xt.call, xt.nonce)
                await self._gateway.run(Connection.submit, xt.data)
            except SubmitRefused as exc:
                self.status.extrinsics_failed += 1
                log.warning("%s extrinsic refused by the node: %s", xt.kind, exc)
                failed_from = idx
                break
            except BaseException:
                self._give_back(work[idx:])
                raise
            self._next_nonce += 1
            self._inflight.append(xt)
            if xt.kind == "commit":
                self.status.commits_submitted += len(xt.commits)
            elif xt.kind == "settle":
                self.status.settles_submitted += len(xt.settles)
            elif xt.kind == "dispute":
                self.status.disputes_submitted += 1
            else:
                self.status.specs_submitted += 1
        if failed_from is not None:
            self._give_back(work[failed_from:])
            self._next_nonce = None  # re-read next cycle

    def _give_back(self, work: Iterable[Inflight]) -> None:
        for xt in work:
            if xt.kind == "commit":
                self.engine.commits_failed([i.task_id for i in xt.commits])
            elif xt.kind in ("settle", "dispute"):
                self.engine.settlements_unresolved(xt.settles)
            # a spec reveal is sent again while its check still waits for it
