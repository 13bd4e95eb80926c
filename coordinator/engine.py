"""The coordinator's task state machine (event-loop only; no chain or HTTP code here).

Apps submit jobs; the engine assigns attempts to live miners (stake-weighted), hands them out
through long polls, takes uploads (the PNG with what opens the miner's blind on-chain commitment),
and, fed by the chain service with block heads, registry snapshots and on-chain task and check
states, verifies each delivery against the chain, accepts early or disputes, reveals the spec of
a checked task, follows the chosen result to its final check outcome and payment, replaces failed
attempts, and persists every change through the Store.

Every job has a price (the price list's for its model and size); each of its on-chain tasks
escrows it, with the chain's task deposit, from the operator's free balance. The engine keeps the
operator's usable balance as the chain service last read it, and neither accepts jobs nor commits
tasks that it could not escrow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from chain.taskproto import canonical_json, result_commitment
from chain.taskproto import result_hash as compute_result_hash
from chain.taskproto import spec_hash as compute_spec_hash
from chainclient.amounts import PLANCK_PER_CAI, format_cai
from chainclient.calls import TaskCommit
from chainclient.registry import Registration
from chainclient.sketch import image_sketch
from chainclient.tasks import Check, Settlement, Task
from coordinator import CoordinatorError, RefusedMinerRequest
from coordinator.assign import Candidate, choose_weighted, live_candidates
from coordinator.images import png_size
from coordinator.model import AState, Attempt, CState, Job, JobStatus, Role, Settle
from coordinator.prices import PriceList
from coordinator.store import Store

log = logging.getLogger(__name__)

MAX_COMMIT_FAILURES = 3
SETTLE_MARGIN_BLOCKS = 3  # settle only while the deadline is at least this far ahead
SPEC_RESEND_BLOCKS = 3  # reveal_spec again when the check still waits for it this much later
COMMIT_MARGIN_BLOCKS = 2  # commit only while the deadline is at least this far ahead
FINAL = ("Accepted", "Rejected", "Missed")
INLINE_CHECK_BYTES = 256 * 1024  # smaller PNGs are checked on the event loop
CLOSED_CACHE = 10_000  # finished jobs kept in memory for GET /v1/tasks (older ones: from disk)


POLL_CHECK_S = 1.0  # a waiting long-poll checks this often whether its miner left
DEFAULT_PRICE = PLANCK_PER_CAI // 10  # 0.1 CAI a task
FEE_RESERVE = PLANCK_PER_CAI  # free balance never escrowed: the operator's transaction fees
SETTLEMENT_BLOCKS_PER_HEAD = 8  # blocks of events read per head for payments and pruned tasks
SHORT_FUNDS_LOG_S = 30.0  # at most one warning this often when commits wait for funds


@dataclasses.dataclass(frozen=True, slots=True)
class EngineConfig:
    task_timeout_blocks: int = 100
    miner_live_s: float = 30.0
    job_ttl_s: float = 600.0
    max_attempts: int = 8
    prices: PriceList = dataclasses.field(default_factory=lambda: PriceList(DEFAULT_PRICE))
    task_deposit: int = 0  # the chain's Tasks.TaskDeposit, reserved per task with its price
    fee_reserve: int = FEE_RESERVE


class RequestError(RefusedMinerRequest):
    """A refused miner request (upload, release)."""


class InsufficientFunds(CoordinatorError):
    """The operator's usable balance cannot escrow new tasks now."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"the coordinator's operator cannot escrow this request now: it needs "
            f"{format_cai(needed)} CAI (prices and task deposits) and "
            f"{format_cai(max(available, 0))} CAI is free for new tasks; try again later"
        )
        self.needed = needed
        self.available = available


@dataclasses.dataclass(slots=True)
class MinerState:
    record: Registration
    queue: collections.deque[bytes] = dataclasses.field(default_factory=collections.deque)
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    last_poll: float | None = None  # monotonic
    last_poll_ms: int | None = None  # wall clock, for display
    polling: int = 0
    stats: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    min_price: int = 0  # planck: the miner takes no task paying less (its poll or release says)


def new_task_id() -> bytes:
    return os.urandom(32)


class Engine:
    """All job and attempt state. Call `run()` under the daemon's TaskGroup."""

    def __init__(
        self,
        cfg: EngineConfig,
        store: Store,
        *,
        coordinator: bytes,
        rng: random.Random | None = None,
        mono: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        on_dispatch: Callable[[float], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.coordinator = coordinator  # our staker account (as Tasks records it)
        self.rng = rng or random.SystemRandom()
        self.mono = mono
        self.wall_ms = wall_ms
        self.on_dispatch = on_dispatch
        self.head: int | None = None
        self.jobs: dict[bytes, Job] = {}
        self.attempts: dict[bytes, Attempt] = {}
        self.miners: dict[bytes, MinerState] = {}  # by staker
        self._by_operator: dict[bytes, bytes] = {}  # operator -> staker
        self._waiting: dict[bytes, None] = {}  # jobs with a slot no miner could take
        self._commit_queue: dict[bytes, None] = {}  # attempts with commit PENDING
        self._settle_queue: dict[bytes, None] = {}
        self._to_publish: list[tuple[Attempt, asyncio.Future[None] | None]] = []
        self._publish_wakeup = asyncio.Event()
        self.counters: collections.Counter[str] = collections.Counter()
        self.loop_lag_s = 0.0  # how late the last 1 s tick woke up (event-loop saturation)
        self.publish_flush_s = 0.0  # duration of the last publisher flush
        self._dirty_attempts: dict[bytes, Attempt] = {}
        self._dirty_jobs: dict[bytes, Job] = {}
        self._closed: collections.OrderedDict[bytes, tuple[Job, dict[bytes, Attempt]]] = (
            collections.OrderedDict()
        )
        self.usable: int | None = None  # the operator's usable balance at the last head
        self._escrow_due = 0  # prices and deposits of open jobs not yet escrowed on chain
        self._payment_due: dict[bytes, int] = {}  # final attempts without payment: settle block
        self._short_logged = -SHORT_FUNDS_LOG_S

    # ---- registry (RegistryView) --------------------------------------------------------------

    def set_registry(self, records: Iterable[Registration]) -> None:
        """Replace the registry snapshot; miners that left or turned inactive lose the tasks they
        have not finished."""
        seen: set[bytes] = set()
        for rec in records:
            seen.add(rec.staker)
            state = self.miners.get(rec.staker)
            if state is None:
                self.miners[rec.staker] = MinerState(rec)
            else:
                if state.record.operator != rec.operator:
                    self._by_operator.pop(state.record.operator, None)
                state.record = rec
        for staker in list(self.miners):
            if staker not in seen:
                self._by_operator.pop(self.miners[staker].record.operator, None)
                self._drop_miner_work(staker, include_delivered=True)
                if not any(a.miner == staker for a in self.attempts.values()):
                    del self.miners[staker]
        self._by_operator = {m.record.operator: s for s, m in self.miners.items() if s in seen}
        for staker in seen:
            if not self.miners[staker].record.is_active:
                self._drop_miner_work(staker, include_delivered=True)

    def miner_by_operator(self, operator: bytes) -> Registration | None:
        staker = self._by_operator.get(operator)
        return None if staker is None else self.miners[staker].record

    def registry_records(self) -> list[Registration]:
        return [
            m.record
            for s, m in self.miners.items()
            if self._by_operator.get(m.record.operator) == s
        ]

    def candidates(self) -> list[Candidate]:
        return [
            Candidate(
                m.record.staker,
                m.record.operator,
                m.record.weight,
                m.record.is_active,
                m.last_poll,
                m.polling > 0,
            )
            for s, m in self.miners.items()
            if self._by_operator.get(m.record.operator) == s
        ]

    def live_miners(self) -> list[Candidate]:
        return live_candidates(self.candidates(), self.mono(), self.cfg.miner_live_s)

    # ---- jobs from apps -----------------------------------------------------------------------

    async def submit(self, specs: list[dict[str, Any]]) -> list[Job]:
        """Accept jobs for validated specs: durable on return, and handed to miners if any are
        live (else queued until one polls)."""
        now = self.wall_ms()
        prices = [self.cfg.prices.spec_price(spec) for spec in specs]
        needed = sum(prices) + self.cfg.task_deposit * len(specs)
        available = self.available_funds()
        if available is not None and needed > available:
            self.counters["refused_insufficient_funds"] += 1
            raise InsufficientFunds(needed, available)
        self._escrow_due += needed
        jobs: list[Job] = []
        futures: list[asyncio.Future[None]] = []
        for spec, price in zip(specs, prices, strict=True):
            job = Job(
                new_task_id(), dict(spec), compute_spec_hash(spec), now, [Role.PRIMARY], price
            )
            self.jobs[job.job_id] = job
            self._persist_job(job)
            self.counters["jobs_accepted"] += 1
            futures.extend(self._fill_slots(job))
            jobs.append(job)
        await self.flush()
        # on disk now: hand this request's attempts out at once (one group commit per request;
        # the publisher skips them)
        for job in jobs:
            for task_id in job.attempts:
                a = self.attempts.get(task_id)
                if a is not None and not a.is_durable:
                    a.is_durable = True
                    if a.state is AState.ASSIGNED:
                        self._enqueue(a)
        if futures:
            await asyncio.gather(*futures)
        return jobs

    def get_job(self, job_id: bytes) -> Job | None:
        return self.jobs.get(job_id)

    # ---- funds --------------------------------------------------------------------------------

    def set_funds(self, usable: int) -> None:
        """The operator's usable balance at a new head (free, less frozen funds and the
        existential deposit); what open jobs still have to escrow is counted again."""
        self.usable = usable
        self._escrow_due = sum(
            job.price + self.cfg.task_deposit
            for job in self.jobs.values()
            if not job.is_final and not self._is_escrowed(job)
        )

    def _is_escrowed(self, job: Job) -> bool:
        """A live attempt of the job is committed on chain (its price is reserved)."""
        for task_id in job.attempts:
            a = self.attempts.get(task_id)
            if a is not None and a.commit is CState.COMMITTED and a.state.is_live:
                return True
        return False

    def available_funds(self) -> int | None:
        """What new jobs may still escrow (None until the balance was read)."""
        if self.usable is None:
            return None
        return self.usable - self.cfg.fee_reserve - self._escrow_due

    async def wait_jobs(self, jobs: list[Job], wait_s: float) -> bool:
        """Wait until every job is final; False on timeout."""
        try:
            async with asyncio.timeout(wait_s):
                for job in jobs:
                    await job.done.wait()
        except TimeoutError:
            return False
        return True

    # ---- slots and assignment -------------------------------------------------------------

    def _job_attempts(self, job: Job) -> list[Attempt]:
        return [self.attempts[t] for t in job.attempts if t in self.attempts]

    def _fill_slots(self, job: Job) -> list[asyncio.Future[None]]:
        """Give every slot without a live attempt a new attempt on a live miner, if one is
        eligible; the job waits for miners otherwise. Returns futures resolved on hand-out."""
        if job.is_final or self.head is None:
            if not job.is_final:
                self._waiting[job.job_id] = None
            return []
        attempts = self._job_attempts(job)
        futures: list[asyncio.Future[None]] = []
        missing = False
        for slot in range(len(job.slots)):
            if any(a.slot == slot and a.state.is_live for a in attempts):
                continue
            if len(job.attempts) >= self.cfg.max_attempts:
                missing = True
                continue
            used = {a.miner for a in attempts}
            live = self._takers(job, exclude=used)
            if not live and len(job.slots) == 1:
                live = self._takers(job)
            chosen = choose_weighted(live, self.rng)
            if chosen is None:
                missing = True
                continue
            attempt = self._new_attempt(job, slot, chosen)
            attempts.append(attempt)
            futures.append(self._publish(attempt))
        if missing:
            self._waiting[job.job_id] = None
        else:
            self._waiting.pop(job.job_id, None)
        return futures

    def _takers(self, job: Job, exclude: Collection[bytes] = ()) -> list[Candidate]:
        """Live miners that take the job's price."""
        live = live_candidates(self.candidates(), self.mono(), self.cfg.miner_live_s, exclude)
        return [c for c in live if self.miners[c.staker].min_price <= job.price]

    def _new_attempt(self, job: Job, slot: int, miner: Candidate) -> Attempt:
        assert self.head is not None
        task_id = job.job_id if not job.attempts else new_task_id()
        attempt = Attempt(
            task_id=task_id,
            job_id=job.job_id,
            slot=slot,
            role=job.slots[slot],
            miner=miner.staker,
            operator=miner.operator,
            deadline=self.head + self.cfg.task_timeout_blocks,
            created_ms=self.wall_ms(),
            price=job.price,
        )
        self.attempts[task_id] = attempt
        job.attempts.append(task_id)
        self._commit_queue[task_id] = None
        self.miners[miner.staker].stats["assigned"] += 1
        self.counters["attempts_created"] += 1
        self._persist(attempt)
        self._persist_job(job)
        return attempt

    def _publish(self, attempt: Attempt) -> asyncio.Future[None]:
        """Hand the attempt to its miner once it is on disk (see `run`)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_publish.append((attempt, fut))
        self._publish_wakeup.set()
        return fut

    async def run(self, stop: asyncio.Event, tick_s: float = 1.0) -> None:
        """Publisher (flush, then hand out) and a periodic tick (silent miners, expiry)."""
        async with asyncio.TaskGroup() as tg:
            pub = tg.create_task(self._publisher(), name="engine.publisher")
            tick = tg.create_task(self._ticker(tick_s), name="engine.ticker")
            await stop.wait()
            pub.cancel()
            tick.cancel()

    async def _publisher(self) -> None:
        while True:
            await self._publish_wakeup.wait()
            self._publish_wakeup.clear()
            batch, self._to_publish = self._to_publish, []
            if not batch:
                continue
            started = self.mono()
            try:
                await self.flush()
                self.publish_flush_s = self.mono() - started
            except Exception as exc:
                log.exception("store flush failed")
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)
                continue
            for attempt, fut in batch:
                if not attempt.is_durable:  # (submit() hands out its own attempts)
                    attempt.is_durable = True
                    if attempt.state is AState.ASSIGNED:
                        self._enqueue(attempt)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def _enqueue(self, attempt: Attempt) -> None:
        miner = self.miners.get(attempt.miner)
        if miner is None:
            return
        miner.queue.append(attempt.task_id)
        miner.wakeup.set()

    async def _ticker(self, tick_s: float) -> None:
        while True:
            started = self.mono()
            await asyncio.sleep(tick_s)
            self.loop_lag_s = max(self.mono() - started - tick_s, 0.0)
            try:
                self.tick()
            except Exception:
                log.exception("engine tick failed")

    def tick(self) -> None:
        """Silent miners lose undelivered tasks; expired jobs end; waiting jobs retry; changed
        rows are written."""
        now = self.mono()
        for staker, m in self.miners.items():
            silent = m.polling == 0 and (
                m.last_poll is None or now - m.last_poll > self.cfg.miner_live_s
            )
            if silent and m.queue:
                self._drop_miner_work(staker, include_delivered=False)
        ttl_ms = int(self.cfg.job_ttl_s * 1000)
        wall = self.wall_ms()
        for job in list(self.jobs.values()):
            if not job.is_final and wall - job.created_ms > ttl_ms:
                self._expire_job(job)
        self.dispatch_waiting()
        self.sync()

    def dispatch_waiting(self) -> None:
        for job_id in list(self._waiting):
            job = self.jobs.get(job_id)
            self._waiting.pop(job_id, None)
            if job is None or job.is_final:
                continue
            self._fill_slots(job)
            self._evaluate(job)

    def _drop_miner_work(self, staker: bytes, *, include_delivered: bool) -> None:
        states = (AState.ASSIGNED, AState.DELIVERED) if include_delivered else (AState.ASSIGNED,)
        for a in [a for a in self.attempts.values() if a.miner == staker and a.state in states]:
            self._fail_attempt(a, AState.RELEASED)
        m = self.miners.get(staker)
        if m is not None:
            m.queue.clear()

    def _expire_job(self, job: Job) -> None:
        for a in self._job_attempts(job):
            if a.state in (AState.ASSIGNED, AState.DELIVERED, AState.UPLOADED):
                a.state = AState.RELEASED
                if a.commit is CState.PENDING:
                    a.commit = CState.ABANDONED
                self._persist(a)
        self._waiting.pop(job.job_id, None)
        if any(a.state is AState.CONFIRMED for a in self._job_attempts(job)):
            self._decide(job, force=True)
        else:
            self._finish(job, JobStatus.FAILED, error="expired: no miner returned a result in time")

    # ---- miner protocol ---------------------------------------------------------------------

    def miner_state(self, record: Registration) -> MinerState:
        state = self.miners.get(record.staker)
        if state is None:
            state = self.miners[record.staker] = MinerState(record)
            self._by_operator[record.operator] = record.staker
        return state

    async def poll(
        self,
        record: Registration,
        max_tasks: int,
        wait_s: float,
        is_gone: Callable[[], bool] | None = None,
        min_price: int | None = None,
    ) -> list[Attempt]:
        """Long-poll: the miner's next tasks, or [] after `wait_s` or once `is_gone()` says the
        miner's connection closed (aiohttp does not cancel a handler whose client left; a poll
        that outlived its client would take tasks nobody receives). `min_price` (planck), when
        the miner states one: it is given no task paying less."""
        m = self.miner_state(record)
        if min_price is not None:
            m.min_price = min_price
        m.polling += 1
        m.last_poll, m.last_poll_ms = self.mono(), self.wall_ms()
        try:
            self.dispatch_waiting()
            until = self.mono() + wait_s
            while True:
                if is_gone is not None and is_gone():
                    return []
                got = self._take_queue(m, max_tasks)
                if got:
                    return got
                remaining = until - self.mono()
                if remaining <= 0:
                    return []
                m.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, POLL_CHECK_S)):
                        await m.wakeup.wait()
        finally:
            m.polling -= 1
            m.last_poll, m.last_poll_ms = self.mono(), self.wall_ms()

    def _take_queue(self, m: MinerState, max_tasks: int) -> list[Attempt]:
        out: list[Attempt] = []
        now = self.wall_ms()
        while m.queue and len(out) < max_tasks:
            a = self.attempts.get(m.queue.popleft())
            if a is None or a.state is not AState.ASSIGNED:
                continue
            if a.price < m.min_price:  # assigned before the miner said what it takes
                self._fail_attempt(a, AState.RELEASED)
                continue
            a.state = AState.DELIVERED
            a.delivered_ms = now
            m.stats["delivered"] += 1
            self._persist(a)
            job = self.jobs.get(a.job_id)
            if job is not None and a.role is Role.PRIMARY and job.first_delivery_ms is None:
                job.first_delivery_ms = now
                job.status = JobStatus.RUNNING
                self._persist_job(job)
                if self.on_dispatch is not None:
                    self.on_dispatch(max(now - job.created_ms, 0) / 1000)
            out.append(a)
        return out

    def _owned(self, record: Registration, task_id: bytes) -> Attempt:
        a = self.attempts.get(task_id)
        if a is None:
            raise RequestError(404, "unknown_task", "no such task")
        if a.miner != record.staker:
            raise RequestError(409, "not_assigned", "the task is assigned to another miner")
        return a

    async def upload(
        self,
        record: Registration,
        task_id: bytes,
        png: bytes,
        claimed_hash: bytes,
        device_hash: bytes,
        sketch: bytes,
        salt: bytes,
        device_info: str | None,
    ) -> Attempt:
        """Take a miner's image for `task_id` with what opens its on-chain commitment
        (RequestError on refusal). A valid image of the spec must come with its own sketch. One
        that is not (not a PNG, another size) is kept: if it opens the commitment on chain, the
        coordinator disputes the result (`dispute_task`) and runs the job on another miner."""
        a = self._owned(record, task_id)
        self._check_open(a)
        if compute_result_hash(png) != claimed_hash:
            raise RequestError(422, "hash_mismatch", "X-Cuckoo-Result-Hash is not blake2_256(body)")
        job = self.jobs[a.job_id]
        size = (int(job.spec["width"]), int(job.spec["height"]))
        if len(png) <= INLINE_CHECK_BYTES:
            good, own_sketch = _check_image(png, size)  # cheaper than a thread hop
        else:
            good, own_sketch = await asyncio.to_thread(_check_image, png, size)
        if good and own_sketch != sketch:
            raise RequestError(
                422, "sketch_mismatch", "X-Cuckoo-Sketch is not image_sketch(body) of this image"
            )
        commitment = result_commitment(
            record.staker, task_id, claimed_hash, device_hash, sketch, salt
        )
        if a.chain_commitment is not None and a.chain_commitment != commitment:
            raise RequestError(
                422,
                "commitment_mismatch",
                "the image, device hash, sketch and salt do not open your commitment on chain",
            )
        self._check_open(a)  # the state may have changed meanwhile
        self.store.put_image(task_id, png)
        a.state = AState.UPLOADED
        a.result_hash = claimed_hash
        a.device_hash = device_hash
        a.sketch = sketch
        a.salt = salt
        a.commitment = commitment
        a.bad_image = not good
        a.device_info = device_info
        self.miners[a.miner].stats["uploaded"] += 1
        self.counters["results_uploaded"] += 1
        self._persist(a)
        await self.flush()
        return a

    def _check_open(self, a: Attempt) -> None:
        if a.state not in (AState.ASSIGNED, AState.DELIVERED):
            code = "already_submitted" if a.result_hash is not None else "not_assigned"
            raise RequestError(409, code, f"the task is {a.state.value}")
        if self.head is not None and self.head > a.deadline:
            raise RequestError(410, "deadline_passed", "the task's deadline has passed")

    async def release(
        self,
        record: Registration,
        task_id: bytes,
        *,
        reason: str | None = None,
        min_price: int | None = None,
    ) -> None:
        """The miner hands the task back; `reason` (its words) is logged, and `min_price`
        (planck: it refused the task's price) keeps tasks paying less away from it."""
        a = self._owned(record, task_id)
        if a.state not in (AState.ASSIGNED, AState.DELIVERED):
            raise RequestError(409, "not_releasable", f"the task is {a.state.value}")
        m = self.miners[a.miner]
        m.stats["released"] += 1
        if min_price is not None:
            m.min_price = min_price
            m.stats["refused_price"] += 1
            self.counters["releases_refused_price"] += 1
        if reason is not None or min_price is not None:
            log.info(
                "miner %s released task 0x%s (price %s CAI): %s",
                record.name or record.staker.hex()[:16],
                task_id.hex(),
                format_cai(a.price),
                reason or f"it takes tasks paying at least {format_cai(min_price or 0)} CAI",
            )
        self._fail_attempt(a, AState.RELEASED)
        await self.flush()

    # ---- attempts failing and jobs deciding -------------------------------------------------

    def _fail_attempt(self, a: Attempt, state: AState) -> None:
        a.state = state
        if a.commit is CState.PENDING:
            a.commit = CState.ABANDONED
            self._commit_queue.pop(a.task_id, None)
        m = self.miners.get(a.miner)
        if m is not None and state is not AState.RELEASED:
            m.stats[state.value] += 1
        self.counters[f"attempts_{state.value}"] += 1
        self._persist(a)
        job = self.jobs.get(a.job_id)
        if job is None:
            return
        if not job.is_final:
            self._fill_slots(job)
            self._evaluate(job)
        self._maybe_close(job)

    def _evaluate(self, job: Job) -> None:
        """Decide once every slot has a confirmed result or cannot get one."""
        if job.is_final:
            return
        attempts = self._job_attempts(job)
        confirmed = {a.slot: a for a in attempts if a.state is AState.CONFIRMED}
        for slot in range(len(job.slots)):
            if slot in confirmed:
                continue
            if any(a.slot == slot and a.state.is_live for a in attempts):
                return  # still running
            if slot == 0 and not confirmed:
                if len(job.attempts) >= self.cfg.max_attempts:
                    self._finish(job, JobStatus.FAILED, error="too many failed attempts")
                return  # waiting for a miner
        self._decide(job, force=False)

    def _decide(self, job: Job, *, force: bool) -> None:
        """The job's result: the first confirmed attempt's image. Its on-chain result is accepted
        early; whether the chain checks it is the chain's draw (the verification follows)."""
        confirmed = [a for a in self._job_attempts(job) if a.state is AState.CONFIRMED]
        if not confirmed:
            self._finish(job, JobStatus.FAILED, error="no result")
            return
        chosen = confirmed[0]
        for a in confirmed:
            self._set_settle(a, accept=True)
        job.chosen = chosen.task_id
        job.verification = chosen.verification
        self._finish(job, JobStatus.SUCCEEDED)

    def _set_settle(self, a: Attempt, *, accept: bool) -> None:
        if a.settle is not Settle.NONE:
            return
        a.accept = accept
        if a.final_status is not None:
            a.settle = Settle.DONE
        else:
            a.settle = Settle.PENDING
            self._settle_queue[a.task_id] = None
        self._persist(a)

    def _finish(self, job: Job, status: JobStatus, error: str | None = None) -> None:
        job.status = status
        job.error = error
        job.finished_ms = self.wall_ms()
        self._waiting.pop(job.job_id, None)
        self.counters[f"jobs_{status.value}"] += 1
        for a in self._job_attempts(job):
            if a.state in (AState.ASSIGNED, AState.DELIVERED):
                a.state = AState.RELEASED
                if a.commit is CState.PENDING:
                    a.commit = CState.ABANDONED
                    self._commit_queue.pop(a.task_id, None)
                self._persist(a)
            elif a.state is AState.CONFIRMED and a.settle is Settle.NONE:
                self._set_settle(a, accept=True)
        self._persist_job(job)
        job.done.set()
        self._maybe_close(job)

    def _maybe_close(self, job: Job) -> None:
        """Forget a final job whose attempts need nothing more on chain (it stays on disk)."""
        attempts = self._job_attempts(job)
        if not job.is_final or not all(a.is_closed for a in attempts):
            return
        for a in attempts:
            self._dirty_attempts.pop(a.task_id, None)
            self.store.put_attempt(a.task_id, a.job_id, a.to_row())
        self._dirty_jobs.pop(job.job_id, None)
        self.store.put_job(job.job_id, job.to_row(), is_open=False)
        for a in attempts:
            self.attempts.pop(a.task_id, None)
        self.jobs.pop(job.job_id, None)
        self._closed[job.job_id] = (job, {a.task_id: a for a in attempts})
        while len(self._closed) > CLOSED_CACHE:
            self._closed.popitem(last=False)

    # ---- chain side ---------------------------------------------------------------------------

    def set_head(self, number: int) -> None:
        first = self.head is None
        self.head = number
        if first:
            self.dispatch_waiting()

    def expire(self, head: int) -> None:
        """Attempts without a confirmed result whose deadline is behind `head` are missed."""
        for a in list(self.attempts.values()):
            if (
                a.state in (AState.ASSIGNED, AState.DELIVERED, AState.UPLOADED)
                and head > a.deadline
            ):
                self._fail_attempt(a, AState.MISSED)

    def take_commits(self, head: int, limit: int) -> list[TaskCommit]:
        """The next commit batch (marks the attempts in flight), as far as the operator's usable
        balance escrows it: a batch the chain cannot reserve fails whole (InsufficientFunds),
        so what does not fit waits for refunds and returned deposits."""
        items: list[TaskCommit] = []
        budget = self._commit_budget()
        for task_id in list(self._commit_queue):
            if len(items) >= limit:
                break
            a = self.attempts.get(task_id)
            if a is None or a.commit is not CState.PENDING:
                self._commit_queue.pop(task_id, None)
                continue
            if not a.is_durable:
                continue
            if not a.state.is_live:
                a.commit = CState.ABANDONED
                self._commit_queue.pop(task_id, None)
                self._persist(a)
                continue
            miner = self.miners.get(a.miner)
            if miner is None or not miner.record.is_active:
                self._commit_queue.pop(task_id, None)
                self._fail_attempt(a, AState.RELEASED)
                continue
            if a.deadline < head + COMMIT_MARGIN_BLOCKS:
                self._commit_queue.pop(task_id, None)
                self._fail_attempt(a, AState.DROPPED)
                continue
            cost = a.price + self.cfg.task_deposit
            if budget is not None:
                if cost > budget:
                    self._note_short_funds(len(self._commit_queue))
                    break
                budget -= cost
            job = self.jobs[a.job_id]
            a.commit = CState.INFLIGHT
            self._commit_queue.pop(task_id, None)
            self._persist(a)
            items.append(TaskCommit(a.task_id, job.spec_hash, a.miner, a.deadline, a.price))
        return items

    def _commit_budget(self) -> int | None:
        """What new commitments may reserve at this head: the usable balance, less the fee
        reserve and what commitments still in flight (not in a block yet) will reserve."""
        if self.usable is None:
            return None
        inflight = sum(
            a.price + self.cfg.task_deposit
            for a in self.attempts.values()
            if a.commit is CState.INFLIGHT
        )
        return self.usable - self.cfg.fee_reserve - inflight

    def _note_short_funds(self, waiting: int) -> None:
        self.counters["commits_short_of_funds"] += 1
        now = self.mono()
        if now - self._short_logged >= SHORT_FUNDS_LOG_S:
            self._short_logged = now
            log.warning(
                "the operator's usable balance (%s CAI) cannot escrow the %d task(s) waiting to "
                "be committed; they wait for refunds and returned deposits (fund the operator)",
                format_cai(self.usable or 0),
                waiting,
            )

    def commits_confirmed(self, items: list[TaskCommit], block: int) -> None:
        for item in items:
            a = self.attempts.get(item.task_id)
            if a is None:
                continue
            a.commit = CState.COMMITTED
            a.commit_block = block
            self._persist(a)
            job = self.jobs.get(a.job_id)
            if job is not None:
                self._maybe_close(job)

    def commits_failed(self, task_ids: list[bytes]) -> None:
        """A commit batch failed (and these items are not on chain): retry, then give up."""
        for task_id in task_ids:
            a = self.attempts.get(task_id)
            if a is None or a.commit is not CState.INFLIGHT:
                continue
            a.commit_failures += 1
            if a.commit_failures >= MAX_COMMIT_FAILURES or not a.state.is_live:
                a.commit = CState.ABANDONED
                self._persist(a)
                if a.state.is_live:
                    self._fail_attempt(a, AState.DROPPED)
            else:
                a.commit = CState.PENDING
                self._commit_queue[task_id] = None
                self._persist(a)

    def take_settlements(self, head: int, limit: int) -> list[tuple[bytes, bool]]:
        """(task id, accept) to send: True for settle_tasks, False for dispute_task."""
        out: list[tuple[bytes, bool]] = []
        for task_id in list(self._settle_queue):
            if len(out) >= limit:
                break
            self._settle_queue.pop(task_id, None)
            a = self.attempts.get(task_id)
            if a is None or a.settle is not Settle.PENDING or a.accept is None:
                continue
            if a.final_status is not None:
                a.settle = Settle.DONE
            elif a.scan_from is not None:  # gone from state: it settled; its events tell how
                a.settle = Settle.AUTO
            elif a.commit is not CState.COMMITTED or a.result_block is None:
                self._settle_queue[task_id] = None  # not yet known on chain
                continue
            elif a.deadline >= head + SETTLE_MARGIN_BLOCKS:
                a.settle = Settle.INFLIGHT
                out.append((task_id, a.accept))
            else:
                a.settle = Settle.AUTO  # the chain accepts it at the deadline
            self._persist(a)
        return out

    def settlements_unresolved(self, task_ids: list[bytes]) -> None:
        """A settle batch was included but these are still open on chain: decide again."""
        for task_id in task_ids:
            a = self.attempts.get(task_id)
            if a is not None and a.settle is Settle.INFLIGHT:
                a.settle = Settle.PENDING
                self._settle_queue[task_id] = None
                self._persist(a)

    def watch_ids(self) -> list[bytes]:
        """Attempts whose on-chain state the chain service should read at each head."""
        return [
            a.task_id
            for a in self.attempts.values()
            if a.scan_from is None
            and (
                a.state is AState.UPLOADED
                or a.commit is CState.CHECK
                or a.settle in (Settle.INFLIGHT, Settle.AUTO)
            )
        ]

    def checking_ids(self) -> list[bytes]:
        """Attempts with a check open on chain (the chain service reads their Check)."""
        return [a.task_id for a in self.attempts.values() if a.checking and a.final_status is None]

    def on_chain_check(self, task_id: bytes, check: Check | None, head: int) -> bytes | None:
        """The canonical spec JSON to reveal for `task_id` when its check waits for it (phase
        SpecDue; again if it still waits SPEC_RESEND_BLOCKS later), else None."""
        a = self.attempts.get(task_id)
        if a is None or check is None or check.phase != "SpecDue":
            return None
        job = self.jobs.get(a.job_id)
        if job is None:
            found = self.load_job_record(a.job_id)
            if found is None:
                log.error("task 0x%s is checked but its spec is lost", task_id.hex())
                return None
            job = found[0]
        if a.spec_sent_head is not None and head - a.spec_sent_head < SPEC_RESEND_BLOCKS:
            return None
        a.spec_sent_head = head
        self._persist(a)
        log.info("task 0x%s is checked (round %d): revealing its spec", task_id.hex(), check.round)
        self.counters["specs_revealed"] += 1
        return canonical_json(job.spec)

    def on_chain_task(self, task_id: bytes, ct: Task | None) -> None:
        """Apply what the chain says about one of our tasks."""
        a = self.attempts.get(task_id)
        if a is None:
            return
        job = self.jobs.get(a.job_id)
        if ct is None:
            if a.commit is CState.CHECK:
                a.commit = CState.PENDING if a.state.is_live else CState.ABANDONED
                if a.commit is CState.PENDING:
                    self._commit_queue[task_id] = None
                self._persist(a)
            elif (
                a.commit is CState.COMMITTED
                and a.is_followed
                and a.final_status is None
                and a.scan_from is None
            ):
                # settled and pruned before this coordinator saw it final (it was stopped for
                # longer than the chain's retention): its settlement is in the events
                a.scan_from = a.result_block or a.commit_block or 0
                log.warning(
                    "task 0x%s left the chain's state before it was seen final: reading its "
                    "settlement from the events of blocks #%d on",
                    task_id.hex(),
                    a.scan_from,
                )
                self._persist(a)
            return
        if ct.coordinator != self.coordinator or (
            job is not None and ct.spec_hash != job.spec_hash
        ):
            log.error("task %s on chain is not ours as recorded", task_id.hex())
            return
        changed = False
        if a.commit is not CState.COMMITTED:
            a.commit = CState.COMMITTED
            a.commit_block = ct.committed_at
            self._commit_queue.pop(task_id, None)
            changed = True
        if ct.commitment is not None and a.result_block is None:
            a.result_block = ct.submitted_at
            a.chain_commitment = ct.commitment
            changed = True
            if a.state is AState.UPLOADED:
                self._verify_delivery(a, ct.commitment, job)
        if ct.status == "Checking" and not a.checking:
            a.checking = True
            if a.settle in (Settle.PENDING, Settle.INFLIGHT):
                a.settle = Settle.AUTO
            self.counters["tasks_checked"] += 1
            changed = True
        if ct.is_final and a.final_status is None:
            self._set_final(a, job, ct.status, ct.outcome, ct.settled_at)
            changed = True
        if changed:
            self._persist(a)
        if job is not None:
            self._maybe_close(job)

    def _set_final(
        self, a: Attempt, job: Job | None, status: str, outcome: str, settled_at: int | None
    ) -> None:
        """The task is final on chain; its payment is read next from the events of its
        settlement block."""
        a.final_status = status
        a.outcome = outcome
        a.settle_block = settled_at
        a.checking = False
        if a.settle in (Settle.INFLIGHT, Settle.AUTO, Settle.PENDING):
            a.settle = Settle.DONE
        if outcome != "Unchecked":
            self.counters[f"outcome_{outcome.lower()}"] += 1
            log.info("task 0x%s is final: %s, %s", a.task_id.hex(), status, outcome)
        if a.is_followed and a.payment is None and not a.payment_missing:
            if settled_at is None:
                a.payment_missing = True
            else:
                self._payment_due[a.task_id] = settled_at
        if job is not None and job.chosen == a.task_id:
            job.verification = a.verification
            self._persist_job(job)

    # ---- settlements from events ----------------------------------------------------------

    def settlement_reads(self, head: int, max_blocks: int) -> list[tuple[int, list[bytes]]]:
        """(block, task ids) whose events to read at this head, oldest first, at most
        `max_blocks` blocks: the settlement blocks of final tasks whose payment is not known,
        and the next blocks to search for tasks pruned before they were seen final."""
        wanted: dict[int, list[bytes]] = collections.defaultdict(list)
        for task_id, block in self._payment_due.items():
            wanted[block].append(task_id)
        lost = [a for a in self.attempts.values() if a.scan_from is not None]
        if lost:
            first = min(a.scan_from or 0 for a in lost)
            for block in range(first, min(first + max_blocks, head + 1)):
                for a in lost:
                    if (a.scan_from or 0) <= block and a.task_id not in wanted[block]:
                        wanted[block].append(a.task_id)
        return [(block, wanted[block]) for block in sorted(wanted)[:max_blocks]]

    def on_settlements(
        self, block: int, task_ids: list[bytes], found: dict[bytes, Settlement], head: int
    ) -> None:
        """What the events of `block` say about `task_ids` (read for `settlement_reads`)."""
        for task_id in task_ids:
            a = self.attempts.get(task_id)
            if a is None:
                self._payment_due.pop(task_id, None)
                continue
            s = found.get(task_id)
            job = self.jobs.get(a.job_id)
            if a.scan_from is not None:
                if s is None or s.status is None or s.outcome is None:
                    if (a.scan_from or 0) <= block:
                        a.scan_from = block + 1
                    if a.scan_from > head:
                        log.error(
                            "task 0x%s: no settlement found up to #%d; its outcome is unknown",
                            task_id.hex(),
                            head,
                        )
                        a.scan_from = None
                        self._set_final(a, job, "Unknown", "Unknown", None)
                    self._persist(a)
                    continue
                a.scan_from = None
                self._set_final(a, job, s.status, s.outcome, block)
            if self._payment_due.get(task_id) != block:
                self._persist(a)
                continue
            del self._payment_due[task_id]
            if s is None or s.payment is None:
                log.error(
                    "task 0x%s: no TaskPaid in its settlement block #%d", task_id.hex(), block
                )
                a.payment_missing = True
            else:
                if s.miner is not None and s.miner != a.miner:
                    log.error("task 0x%s: TaskPaid names another miner", task_id.hex())
                a.payment = s.payment
                self.counters["payments_read"] += 1
            self._persist(a)
            if job is not None:
                self._maybe_close(job)

    def _verify_delivery(self, a: Attempt, commitment: bytes, job: Job | None) -> None:
        """The delivery against the miner's commitment on chain: a match of a valid image
        confirms it; a match of an invalid one is disputed; a mismatch is refused (the chain
        accepts or misses it at its deadline; the job goes to another miner)."""
        if commitment != a.commitment:
            log.warning(
                "task 0x%s: the delivery does not open the miner's commitment on chain",
                a.task_id.hex(),
            )
            self.counters["deliveries_mismatched"] += 1
            self._fail_attempt(a, AState.INVALID)
            return
        if a.bad_image:
            log.warning(
                "task 0x%s: the committed result is not a valid image: disputing", a.task_id.hex()
            )
            self.counters["disputes"] += 1
            self._set_settle(a, accept=False)
            self._fail_attempt(a, AState.INVALID)
            return
        a.state = AState.CONFIRMED
        self.miners[a.miner].stats["confirmed"] += 1
        self.counters["results_confirmed"] += 1
        self._persist(a)
        if job is not None:
            self._evaluate(job)

    # ---- views --------------------------------------------------------------------------------

    def receipt(self, a: Attempt) -> dict[str, Any]:
        """What the app sees of its task's on-chain trail and of what it paid (planck, decimal
        strings): the price, and once the task settled how the price moved (TaskPaid)."""
        out: dict[str, Any] = {
            "task_id": "0x" + a.task_id.hex(),
            "miner": a.miner,  # the API layer renders SS58
            "commit_block": a.commit_block,
            "result_block": a.result_block,
            "settle_block": a.settle_block if a.settle_block is not None else "pending",
            "verification": a.verification,
            "price": str(a.price),
        }
        p = a.payment
        pending = "unknown" if a.payment_missing else "pending"
        out["to_miner"] = pending if p is None else str(p.to_miner)
        out["burned"] = pending if p is None else str(p.burned)
        out["to_checkers"] = pending if p is None else str(p.to_checkers)
        out["refunded"] = pending if p is None else str(p.refunded)
        return out

    def load_job_record(self, job_id: bytes) -> tuple[Job, dict[bytes, Attempt]] | None:
        """A job with its attempts, from memory or (once closed) from disk."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job, {t: self.attempts[t] for t in job.attempts if t in self.attempts}
        closed = self._closed.get(job_id)
        if closed is not None:
            return closed
        found = self.store.get_job(job_id)
        if found is None:
            return None
        row, rows = found
        attempts = {a.task_id: a for a in (Attempt.from_row(r) for r in rows)}
        return Job.from_row(row), attempts

    def job_counts(self) -> collections.Counter[str]:
        return collections.Counter(j.status.value for j in self.jobs.values())

    def attempt_counts(self) -> collections.Counter[str]:
        return collections.Counter(a.state.value for a in self.attempts.values())

    # ---- persistence -----------------------------------------------------------------------

    def _persist(self, a: Attempt) -> None:
        """Mark for writing; rows are serialised once per `sync` however often they change."""
        self._dirty_attempts[a.task_id] = a

    def _persist_job(self, job: Job) -> None:
        self._dirty_jobs[job.job_id] = job

    def sync(self) -> None:
        """Queue every changed row for the store's next group commit."""
        attempts, self._dirty_attempts = self._dirty_attempts, {}
        jobs, self._dirty_jobs = self._dirty_jobs, {}
        for a in attempts.values():
            self.store.put_attempt(a.task_id, a.job_id, a.to_row())
        for job in jobs.values():
            self.store.put_job(job.job_id, job.to_row(), is_open=True)

    async def flush(self) -> None:
        """Every change so far on disk."""
        self.sync()
        await self.store.flush()

    def load(self) -> int:
        """Reload open jobs after a restart. Attempts whose commit was in flight are looked up
        on chain; undelivered ones go back to their miner's queue; waiting jobs wait again."""
        jobs, attempts = self.store.load()
        for row in jobs:
            job = Job.from_row(row)
            self.jobs[job.job_id] = job
        for row in attempts:
            a = Attempt.from_row(row)
            if a.job_id not in self.jobs:
                continue
            self.attempts[a.task_id] = a
            if a.commit in (CState.PENDING, CState.INFLIGHT):
                a.commit = CState.CHECK
            if a.settle is Settle.INFLIGHT:
                a.settle = Settle.PENDING
            if a.settle is Settle.PENDING:
                self._settle_queue[a.task_id] = None
            if (
                a.is_followed
                and a.final_status is not None
                and a.payment is None
                and not a.payment_missing
                and a.settle_block is not None
            ):
                self._payment_due[a.task_id] = a.settle_block
            if a.state is AState.ASSIGNED:
                miner = self.miners.get(a.miner)
                if miner is not None:
                    miner.queue.append(a.task_id)
        for job in self.jobs.values():
            if not job.is_final:
                self._waiting[job.job_id] = None
        return len(self.jobs)

    def restore_miner_queues(self) -> None:
        """After the first registry snapshot: undelivered attempts back to their miners."""
        for a in self.attempts.values():
            if a.state is AState.ASSIGNED:
                m = self.miners.get(a.miner)
                if m is not None and a.task_id not in m.queue:
                    m.queue.append(a.task_id)


def _check_image(png: bytes, size: tuple[int, int]) -> tuple[bool, bytes | None]:
    """(a PNG of `size`, its sketch)."""
    if png_size(png) != size:
        return False, None
    try:
        return True, image_sketch(png)
    except ValueError:
        return False, None
