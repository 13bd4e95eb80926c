"""The checked-work protocol (docs/verification.md) simulated on the real runtime, in process.

A `Sim` is a network of coordinators and miners on a `MockRuntime` (the real pallets: Tasks,
Registry, Staking, Rewards, Slashing ...). Each block it sets `Randomness.Mix` from a seeded hash
chain (fresh randomness per seed, as the RANDAO reveals would give), runs every `on_initialize`
hook, and lets every actor do what its policy says: coordinators commit tasks, settle, dispute,
reveal specs; miners submit blind results, check the tasks they are drawn for (commit, then
reveal), reveal their own results and appeal. Everything goes through real, encoded calls.

Policies are small classes: the honest miner and coordinator, the strategic cheater (fakes every
task, or fakes when a predictor built from the public mix says the task will not be checked),
lazy checkers (guess, or copy what is public), sybil checkers that serve a hostile coordinator,
and a coordinator that settles only when a colluding block author knows the draw says
"unchecked". The experiments at the bottom (`cheater_runs`, `economy`, `sybil_disputes`,
`lazy_population`) are what tests/pallets/test_verification_attacks.py asserts on small runs and
bench/verification_bench.py prints on large ones.

Actors move as soon as they can: a check whose parties all act closes in the block that opens
it, and only an absent party makes a phase window run out. Results are synthetic but behave as
the protocol assumes: an honest result of a task is the same
bytes for every miner of a device class, and its sketch is the same for every class (distance 0,
within any `MaxSketchDistance`); a fake or a guess has another hash and another sketch. The real
similarity margins are measured by the calibration, not here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from chain.frame.common import PERBILL_ONE
from chain.hashing import blake2_256
from chain.sketch import sketch_header
from chain.storage.overlay import Overlay
from chain.taskproto import result_commitment
from genesis.builder import load_spec
from pallets.config import RuntimeConfig
from pallets.randomness import pallet as randomness
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.rewards import pallet as rewards
from pallets.rewards.pallet import Rewarded, WorkCredited
from pallets.runtime import runtime_config
from pallets.slashing.pallet import OffenceReported, OffenderSlashed
from pallets.staking import pallet as staking
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import (
    Check,
    CheckCommitted,
    CheckOpened,
    CheckPhase,
    Reveal,
    TaskCommit,
    TaskStatus,
)
from tests.pallets.mock import MockRuntime, mock_config

T = TypeVar("T")
CAI = 10**18
MIN_MINER = 20_000 * CAI  # dev registry.minMinerStake
PRICE = CAI // 10  # what each simulated task pays its miner
OPERATOR_FUNDS = 1_000_000 * CAI  # each coordinator operator's balance: it escrows the prices
MIN_COORDINATOR = 2_000_000 * CAI  # dev registry.minCoordinatorStake
DEADLINE_BLOCKS = 100  # tasks' deadlines, blocks after their commit
# Honest miners' stakes (CAI): varied, all above the minimum so that one 5% check-fault slash
# does not make them inactive.
HONEST_STAKES = (30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 100_000, 120_000, 150_000, 200_000)
DEVICE_CLASSES = tuple(blake2_256(b"cuckoo/sim/device/" + bytes([i])) for i in range(3))


def perbill(fraction: float) -> int:
    return round(fraction * PERBILL_ONE)


def dev_config(check_rate: int, **verification: Any) -> RuntimeConfig:
    """The dev chain's parameters (economy, slashing, verification) with this check rate, on the
    mock's cheap fees and small existential deposit."""
    dev = runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
    return dataclasses.replace(
        mock_config(),
        rewards=dev.rewards,
        tasks=dev.tasks,
        slashing=dev.slashing,  # the mock lowers the invalid-result slash; the sim uses the dev 50%
        verification=dataclasses.replace(dev.verification, check_rate=check_rate, **verification),
    )


def account(kind: str, index: int) -> bytes:
    return blake2_256(f"cuckoo/sim/{kind}/{index}".encode())


# ---- results -------------------------------------------------------------------------------------


def synthetic_sketch(seed: bytes) -> bytes:
    """A well-formed sketch (chain/sketch.py) of an 8x8 image whose pixels come from `seed`:
    equal seeds give distance 0, different ones a distance far above any threshold."""
    return sketch_header(8, 8) + hashlib.shake_256(seed).digest(8 * 8 * 3)


def honest_result(task_id: bytes, device: bytes) -> Reveal:
    """What any honest run of the task gives on this device class."""
    return Reveal(
        blake2_256(b"png" + task_id + device), device, synthetic_sketch(b"sketch" + task_id)
    )


def invented_result(task_id: bytes, device: bytes, tag: bytes) -> Reveal:
    """A result nobody computed (a fake, a guess): its own hash and sketch."""
    return Reveal(
        blake2_256(b"fake-png" + task_id + tag),
        device,
        synthetic_sketch(b"fake-sketch" + task_id + tag),
    )


def salt_of(staker: bytes, task_id: bytes) -> bytes:
    return blake2_256(b"salt" + staker + task_id)


def commitment_of(staker: bytes, task_id: bytes, r: Reveal) -> bytes:
    return result_commitment(
        staker, task_id, r.result_hash, r.device_hash, r.sketch, salt_of(staker, task_id)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A drawn checker's answer: what it commits and can open."""

    reveal: Reveal | None  # None: it cannot open its commitment (it copied someone else's)
    computed: bool  # it re-ran the spec (GPU work)
    commitment: bytes | None = None  # a commitment copied verbatim instead of its own


# ---- actors --------------------------------------------------------------------------------------


class MinerPolicy:
    """An honest miner: it computes every task and every check it is drawn for, reveals when
    asked, and appeals a Guilty verdict."""

    def fakes(self, sim: Sim, job: Job) -> bool:
        return False

    def answer(self, sim: Sim, me: Miner, job: Job, check: Check) -> Answer | None:
        return Answer(honest_result(job.task_id, me.device), computed=True)

    def reveals(self, sim: Sim, job: Job) -> bool:
        return True

    def appeals(self, sim: Sim, job: Job) -> bool:
        return True


class Cheater(MinerPolicy):
    """A strategic cheater. It sees everything public (the chain: tasks, checks, the mix as of
    the block it commits in) and everything its coordinator sends (spec, deadline). Nothing of it
    predicts the draw, which uses the mix of a later block, so its only strategy is a fake rate:
    `always` fakes every task (the worst case for the number of fakes before the first catch);
    `predictor` fakes only when the draw computed with the mix it can see says "unchecked". As a
    checker it re-runs honestly (a wrong check is caught and slashed); when found Guilty it
    appeals (an appeal costs the miner nothing)."""

    def __init__(self, strategy: str = "always") -> None:
        assert strategy in ("always", "predictor")
        self.strategy = strategy

    def fakes(self, sim: Sim, job: Job) -> bool:
        if self.strategy == "always":
            return True
        mix = randomness.current_mix(sim.m.state)  # public now; the settling block's is not
        return not tasks.is_drawn(mix, job.task_id, sim.check_rate)


class LazyGuesser(MinerPolicy):
    """A checker that does not re-run: it commits a result it made up."""

    def answer(self, sim: Sim, me: Miner, job: Job, check: Check) -> Answer | None:
        return Answer(invented_result(job.task_id, me.device, b"guess" + me.staker), False)


class LazyCopier(MinerPolicy):
    """A checker that copies instead of re-running. Round 0: the only thing public is the miner's
    blind commitment, which it commits verbatim (it cannot open it: the commitment binds the
    miner's account and salt). Later rounds: it copies a public reveal, the miner's
    (`side="miner"`) or the earlier checkers' (`side="checker"`), and commits that as its own."""

    def __init__(self, side: str = "miner") -> None:
        assert side in ("miner", "checker")
        self.side = side

    def answer(self, sim: Sim, me: Miner, job: Job, check: Check) -> Answer | None:
        task = sim.task(job.task_id)
        if check.round == 0 or check.miner_reveal is None:
            return Answer(None, computed=False, commitment=task.commitment)
        earlier = [c.reveal for c in check.checkers if c.reveal is not None]
        copied = check.miner_reveal if self.side == "miner" or not earlier else earlier[0]
        return Answer(copied, computed=False)


class Absent(MinerPolicy):
    """A miner that is offline: drawn to check, it never commits."""

    def answer(self, sim: Sim, me: Miner, job: Job, check: Check) -> Answer | None:
        return None


@dataclasses.dataclass(frozen=True, eq=False)
class Ring:
    """Miners under one controller: against its `targets` (a hostile coordinator's victims) or
    with them (a cheater's accomplices)."""

    targets: frozenset[bytes]
    side: str  # "against" or "with"


class Sybil(MinerPolicy):
    """A miner of a `Ring`. Drawn to check one of the ring's targets, it votes the ring's way
    only when the ring holds the majority of the round (the controller sees who was drawn):
    against the target with a made-up result, or with it by copying the target's own result;
    otherwise it re-runs honestly, to avoid a CheckFault. Everything else it does honestly."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring

    def answer(self, sim: Sim, me: Miner, job: Job, check: Check) -> Answer | None:
        if job.miner.staker in self.ring.targets:
            current = [c.account for c in check.current()]
            ours = sum(
                isinstance(p := sim.miners[w].policy, Sybil) and p.ring is self.ring
                for w in current
            )
            if 2 * ours > len(current):
                job.sybil_majority.add(check.round)
                if self.ring.side == "with" and job.committed is not None:
                    return Answer(job.committed, computed=False)
                return Answer(invented_result(job.task_id, me.device, b"sybil"), False)
        return super().answer(sim, me, job, check)


class CoordinatorPolicy:
    """An honest coordinator: settles every submitted result in the next block, reveals the spec
    of a checked task at once, never disputes."""

    targets: frozenset[bytes] = frozenset()

    def settles(self, sim: Sim, job: Job) -> bool:
        return True

    def disputes(self, sim: Sim, job: Job) -> bool:
        return False

    def reveals_spec(self, sim: Sim, job: Job) -> bool:
        return True


class Hostile(CoordinatorPolicy):
    """A coordinator that attacks the miners in `targets`: it disputes their correct results
    (`dispute`), withholds the spec of their checked tasks (`withhold`), or looks honest and
    leaves the attack to its sybils when the draw picks them (`ambush`)."""

    def __init__(self, targets: Iterable[bytes], mode: str) -> None:
        assert mode in ("dispute", "withhold", "ambush")
        self.targets = frozenset(targets)
        self.mode = mode

    def disputes(self, sim: Sim, job: Job) -> bool:
        return self.mode == "dispute" and job.miner.staker in self.targets

    def reveals_spec(self, sim: Sim, job: Job) -> bool:
        return not (self.mode == "withhold" and job.miner.staker in self.targets)


class CollusiveSettler(CoordinatorPolicy):
    """A coordinator that serves a cheater together with a block author holding one slot in
    `every`: it hands its `settle_tasks` to that author only, who knows the mix of its own block
    before it builds it (it knows its next reveal) and includes the settlement of the cheater's
    tasks only when the draw under that mix says "unchecked" (docs/verification.md section 9)."""

    def __init__(self, cheaters: Iterable[bytes], every: int = 3) -> None:
        self.cheaters = frozenset(cheaters)
        self.every = every

    def settles(self, sim: Sim, job: Job) -> bool:
        if job.miner.staker not in self.cheaters:
            return True
        if sim.block % self.every:
            return False  # not the colluding author's block
        mix = randomness.current_mix(sim.m.state)  # the author's own block: it knows this mix
        return not tasks.is_drawn(mix, job.task_id, sim.check_rate)


@dataclasses.dataclass(eq=False)
class Miner:
    staker: bytes
    operator: bytes
    stake: int
    device: bytes
    policy: MinerPolicy


@dataclasses.dataclass(eq=False)
class Coordinator:
    staker: bytes
    operator: bytes
    policy: CoordinatorPolicy


@dataclasses.dataclass(eq=False)
class Job:
    """One task as the simulation follows it."""

    task_id: bytes
    coordinator: Coordinator
    miner: Miner
    spec: bytes
    fake: bool = False
    committed: Reveal | None = None  # what the miner committed to
    submitted_at: int = 0
    answers: dict[tuple[int, bytes], Answer | None] = dataclasses.field(default_factory=dict)
    done: set[tuple[Any, ...]] = dataclasses.field(default_factory=set)  # actions taken
    sybil_majority: set[int] = dataclasses.field(default_factory=set)
    drawn: bool = False  # it entered Checking (drawn or disputed)
    status: TaskStatus = TaskStatus.COMMITTED
    outcome: str = "Unchecked"
    settled_era: int | None = None
    to_miner: int = 0  # what its miner was paid (TaskPaid)


@dataclasses.dataclass
class Tally:
    """What the simulation counted (events of the real runtime, and the actors' own work)."""

    tasks: int = 0  # results computed or faked by their miners
    checker_slots: int = 0  # checkers drawn (CheckOpened)
    commits: int = 0  # checker commitments (CheckCommitted)
    reruns: int = 0  # checker re-executions actually computed (GPU work)
    rounds: dict[int, int] = dataclasses.field(default_factory=dict)  # rounds opened, by index
    offences: list[tuple[bytes, str]] = dataclasses.field(default_factory=list)
    slashed: dict[bytes, int] = dataclasses.field(default_factory=dict)  # own stake, applied
    work: dict[tuple[int, bytes], int] = dataclasses.field(default_factory=dict)  # (era, miner)
    era_work: dict[int, int] = dataclasses.field(default_factory=dict)  # miner units per era
    paid: dict[tuple[int, bytes], int] = dataclasses.field(default_factory=dict)  # (era, who)


# ---- the simulation ------------------------------------------------------------------------------


class Sim:
    """A network on the real runtime, driven block by block."""

    def __init__(
        self,
        seed: bytes,
        check_rate: int,
        miners: Sequence[tuple[int, bytes, MinerPolicy]],
        coordinators: Sequence[CoordinatorPolicy],
        **verification: Any,
    ) -> None:
        """`miners`: (stake, device class, policy) each; `coordinators`: their policies."""
        self.seed = seed
        self.check_rate = check_rate
        config = dev_config(check_rate, **verification)
        self.coordinators = [
            Coordinator(account("coordinator", i), account("coordinator-op", i), policy)
            for i, policy in enumerate(coordinators)
        ]
        self.miners: dict[bytes, Miner] = {}
        for i, (stake, device, policy) in enumerate(miners):
            staker = account("miner", i)
            self.miners[staker] = Miner(staker, account("miner-op", i), stake, device, policy)
        endowed = {c.staker: 3 * MIN_COORDINATOR for c in self.coordinators}
        endowed |= {c.operator: OPERATOR_FUNDS for c in self.coordinators}  # escrows prices
        endowed |= {w.staker: 2 * w.stake for w in self.miners.values()}
        self.m = MockRuntime(config, endowed, None)
        for c in self.coordinators:
            self._register(c.staker, c.operator, MIN_COORDINATOR, "register_coordinator", True)
        for w in self.miners.values():
            self._register(w.staker, w.operator, w.stake, "register_miner", False)
        self.hooks = [
            h
            for h in self.m.runtime.hooks("on_initialize")
            if h.__module__ != "pallets.aura.pallet"  # it needs a pre-runtime digest
        ]
        # The registered network becomes the base of every run (`reset`): each run writes into
        # its own overlay on top of it.
        self.m.backend.write_batch(self.m.state.changes().items())
        self.start_block = self.m.block_number
        self.reset(seed)

    def reset(self, seed: bytes) -> None:
        """Back to the freshly registered network, with another seed (fresh randomness)."""
        self.seed = seed
        self.m.state = Overlay(self.m.backend)
        self.m.block_number = self.start_block
        self.jobs: dict[bytes, Job] = {}
        self.open: dict[bytes, Job] = {}  # jobs not final yet
        self.tally = Tally()
        self.events: list[Any] = []
        self.counter = 0

    def _register(self, who: bytes, op: bytes, stake: int, call: str, coordinator: bool) -> None:
        self.m.dispatch(who, "Staking", "bond", value=stake)
        info = registry.Info(name=b"sim", url=b"https://coord.example" if coordinator else b"")
        self.m.dispatch(who, "Registry", call, operator=op, info=info)

    # ---- chain access ----------------------------------------------------------------------------

    @property
    def block(self) -> int:
        return self.m.block_number

    @property
    def era(self) -> int:
        return staking.CurrentEra.get(self.m.state)

    def task(self, task_id: bytes) -> tasks.Task:
        t = tasks.Tasks.get(self.m.state, task_id)
        assert t is not None
        return t

    def is_active(self, who: bytes) -> bool:
        return registry.is_active(self.m.state, who)

    def _call(self, signer: bytes, call: str, **args: Any) -> None:
        self.m.dispatch(signer, "Tasks", call, **args)
        self._record(self.m.events())

    def _record(self, events: list[Any]) -> None:
        t = self.tally
        for e in events:
            if isinstance(e, CheckOpened):
                t.checker_slots += len(e.checkers)
                t.rounds[e.round] = t.rounds.get(e.round, 0) + 1
                self.jobs[e.task_id].drawn = True
            elif isinstance(e, CheckCommitted):
                t.commits += 1
            elif isinstance(e, tasks.TaskPaid):
                self.jobs[e.task_id].to_miner = e.to_miner
            elif isinstance(e, tasks.TaskSettled):
                job = self.jobs[e.task_id]
                job.status, job.outcome = TaskStatus(e.status), str(e.outcome)
                job.settled_era = self.era
                self.open.pop(e.task_id, None)
            elif isinstance(e, OffenceReported):
                t.offences.append((e.offender, str(e.kind)))
            elif isinstance(e, OffenderSlashed):
                t.slashed[e.offender] = t.slashed.get(e.offender, 0) + e.own
            elif isinstance(e, WorkCredited) and str(e.role) == "Miner":
                key = (e.era, e.who)
                t.work[key] = t.work.get(key, 0) + e.units
                t.era_work[e.era] = t.era_work.get(e.era, 0) + e.units
            elif isinstance(e, Rewarded):
                key = (e.era, e.who)
                t.paid[key] = t.paid.get(key, 0) + e.amount
        self.events.extend(events)

    # ---- blocks ----------------------------------------------------------------------------------

    def step(self, *, check_invariants: bool = False) -> None:
        """The next block: fresh randomness, the hooks, then every actor's moves."""
        self.m.run_to_block(self.block + 1)
        mix = blake2_256(b"cuckoo/sim/mix" + self.seed + self.block.to_bytes(8, "little"))
        randomness.Mix.put(self.m.state, mix)  # as this block's RANDAO reveal would
        events: list[Any] = []
        ctx = self.m.ctx("root", events)
        for hook in self.hooks:
            hook(ctx)
        self._record(events)
        self.act()
        if check_invariants:
            self.check()

    def check(self) -> None:
        assert self.m.state.depth == 0
        self.m.runtime.try_state(self.m.state)

    def run_until(self, done: Callable[[], bool], limit: int = 10_000) -> None:
        for _ in range(limit):
            if done():
                return
            self.step()
        raise AssertionError("the simulation did not reach its goal")

    def drain(self) -> None:
        """Run until every task is final."""
        self.run_until(lambda: not self.open)

    def finish_eras(self, eras: int) -> None:
        """Run `eras` era boundaries further (slashes apply, rewards are paid)."""
        length = self.m.config.staking.era_length
        end = (self.block // length + eras) * length + length - 1
        self.run_until(lambda: self.block >= end)

    # ---- tasks -----------------------------------------------------------------------------------

    def assign(self, coordinator: Coordinator, miners: Sequence[Miner]) -> list[Job]:
        """The coordinator commits one task to each miner; each miner computes (or fakes) and
        submits its blind commitment in the same block."""
        jobs = []
        for miner in miners:
            self.counter += 1
            task_id = blake2_256(
                b"cuckoo/sim/task" + self.seed + self.counter.to_bytes(8, "little")
            )
            spec = b'{"model":"sim","prompt":"a cuckoo","task":"%s"}' % task_id.hex().encode()
            job = Job(task_id, coordinator, miner, spec)
            self.jobs[task_id] = self.open[task_id] = job
            jobs.append(job)
        batch = [
            TaskCommit(
                j.task_id, blake2_256(j.spec), j.miner.staker, self.block + DEADLINE_BLOCKS, PRICE
            )
            for j in jobs
        ]
        for chunk in chunks(batch):
            self._call(coordinator.operator, "commit_tasks", batch=chunk)
        by_miner: dict[bytes, list[Job]] = {}
        for job in jobs:
            job.fake = job.miner.policy.fakes(self, job)
            tag = b"fake" + job.miner.staker
            job.committed = (
                invented_result(job.task_id, job.miner.device, tag)
                if job.fake
                else honest_result(job.task_id, job.miner.device)
            )
            job.submitted_at = self.block
            by_miner.setdefault(job.miner.staker, []).append(job)
        for staker, mine in by_miner.items():
            batch_r = [
                tasks.ResultCommit(j.task_id, commitment_of(staker, j.task_id, j.committed))
                for j in mine
                if j.committed is not None
            ]
            for chunk in chunks(batch_r):
                self._call(self.miners[staker].operator, "submit_results", batch=chunk)
        self.tally.tasks += len(jobs)
        return jobs

    def act(self) -> None:
        """Every actor's moves in this block: checks first, then settlements and disputes."""
        for job in list(self.open.values()):
            if job.drawn:
                self._drive_check(job)
        by_coordinator: dict[Coordinator, list[Job]] = {}
        for job in list(self.open.values()):
            if job.drawn or self.task(job.task_id).status != TaskStatus.SUBMITTED:
                continue
            policy = job.coordinator.policy
            if policy.disputes(self, job):  # at once, in the result's own block if it can
                self._call(job.coordinator.operator, "dispute_task", task_id=job.task_id)
            elif job.submitted_at < self.block and policy.settles(self, job):
                by_coordinator.setdefault(job.coordinator, []).append(job)
        for coordinator, jobs in by_coordinator.items():
            for chunk in chunks([j.task_id for j in jobs]):
                self._call(coordinator.operator, "settle_tasks", task_ids=chunk)
        for job in list(self.open.values()):
            if job.drawn:
                self._drive_check(job)

    def _drive_check(self, job: Job) -> None:
        """Everyone's moves on one checked task, until nobody has one left in this block."""
        while job.task_id in self.open:
            check = tasks.Checks.get(self.m.state, job.task_id)
            if check is None or self.task(job.task_id).status != TaskStatus.CHECKING:
                return
            if not self._move(job, check):
                return

    def _move(self, job: Job, check: Check) -> bool:
        """One move on a checked task; False when nobody has one."""
        key = (check.round, check.phase)
        tid = job.task_id
        if check.phase == CheckPhase.SPEC_DUE:
            if (*key, "spec") in job.done:
                return False
            job.done.add((*key, "spec"))
            if not job.coordinator.policy.reveals_spec(self, job):
                return False
            self._call(job.coordinator.operator, "reveal_spec", task_id=tid, spec=job.spec)
            return True
        if check.phase == CheckPhase.COMMITTING:
            for c in check.current():
                if (*key, c.account) in job.done:
                    continue
                job.done.add((*key, c.account))
                checker = self.miners[c.account]
                answer = checker.policy.answer(self, checker, job, check)
                job.answers[(check.round, c.account)] = answer
                if answer is None:
                    continue
                if answer.computed:
                    self.tally.reruns += 1
                if answer.commitment is not None:
                    commitment = answer.commitment
                else:
                    assert answer.reveal is not None
                    commitment = commitment_of(c.account, tid, answer.reveal)
                self._call(checker.operator, "commit_check", task_id=tid, commitment=commitment)
                return True
            return False
        if check.phase == CheckPhase.REVEALING:
            if check.miner_reveal is None and (*key, "miner") not in job.done:
                job.done.add((*key, "miner"))
                if job.miner.policy.reveals(self, job) and job.committed is not None:
                    self._reveal(job.miner, job, job.committed)
                    return True
            for c in check.current():
                if c.commitment is None or c.reveal is not None or (*key, c.account) in job.done:
                    continue
                job.done.add((*key, c.account))
                answer = job.answers.get((check.round, c.account))
                if answer is not None and answer.reveal is not None:
                    self._reveal(self.miners[c.account], job, answer.reveal)
                    return True
            return False
        # Appealable
        if (*key, "appeal") in job.done:
            return False
        job.done.add((*key, "appeal"))
        if not job.miner.policy.appeals(self, job):
            return False
        self._call(job.miner.operator, "appeal", task_id=tid)
        return True

    def _reveal(self, who: Miner, job: Job, r: Reveal) -> None:
        self._call(
            who.operator,
            "reveal_result",
            task_id=job.task_id,
            result_hash=r.result_hash,
            device_hash=r.device_hash,
            sketch=r.sketch,
            salt=salt_of(who.staker, job.task_id),
        )


def chunks(items: Sequence[T]) -> Iterable[list[T]]:
    """`items` in batches of at most MaxBatch."""
    for i in range(0, len(items), tasks.MAX_BATCH):
        yield list(items[i : i + tasks.MAX_BATCH])


def honest_miners(stakes: Iterable[int] = HONEST_STAKES) -> list[tuple[int, bytes, MinerPolicy]]:
    """Honest miners on mixed device classes."""
    return [
        (s * CAI, DEVICE_CLASSES[i % len(DEVICE_CLASSES)], MinerPolicy())
        for i, s in enumerate(stakes)
    ]


def run_seed(label: str, index: int) -> bytes:
    return blake2_256(f"cuckoo/sim/{label}/{index}".encode())


# ---- statistics ----------------------------------------------------------------------------------


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    return min(1.0, sum(math.exp(_log_binom_pmf(i, n, p)) for i in range(k, n + 1)))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    return min(1.0, sum(math.exp(_log_binom_pmf(i, n, p)) for i in range(0, k + 1)))


def _bisect(f: Callable[[float], bool], lo: float = 0.0, hi: float = 1.0) -> float:
    """The boundary in [lo, hi] where f turns from False to True (f monotone)."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid):
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def lower_bound(k: int, n: int, confidence: float = 0.99) -> float:
    """One-sided Clopper-Pearson lower confidence bound of a binomial proportion (k of n)."""
    if k == 0:
        return 0.0
    alpha = 1 - confidence
    return _bisect(lambda p: binom_sf(k, n, p) > alpha)


def upper_bound(k: int, n: int, confidence: float = 0.99) -> float:
    """One-sided Clopper-Pearson upper confidence bound of a binomial proportion (k of n)."""
    if k == n:
        return 1.0
    alpha = 1 - confidence
    return _bisect(lambda p: binom_cdf(k, n, p) < alpha)


# ---- experiment 1: the strategic cheater's catch rate --------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CheaterRun:
    fakes_to_catch: int | None  # index (1-based, in submission order) of its first Guilty fake
    fakes: int  # fakes it submitted
    fakes_drawn: int  # of them, drawn for a check
    fakes_upheld: int  # drawn, and yet accepted
    upheld_without_ring: int  # of those, without a Ring majority in any round
    honest: int  # tasks it computed (the predictor's "checked" calls)
    honest_drawn: int
    checker_slots: int
    reruns: int
    tasks: int
    honest_checker_offences: int  # offences of honest miners (checkers that were right)


def cheater_network(
    check_rate: int,
    strategy: str = "always",
    *,
    collusive: bool = False,
    lazy: Sequence[tuple[int, MinerPolicy]] = (),
    accomplices: int = 0,
) -> Sim:
    """The ten honest miners, a cheater at the minimum stake (the last miner), one coordinator;
    `lazy`: more miners, (stake in CAI, policy) each; `accomplices`: more miners at the minimum
    stake, a `Ring` on the cheater's side. `collusive`: the coordinator settles through a
    colluding block author (CollusiveSettler)."""
    cheater = account("miner", len(HONEST_STAKES) + len(lazy) + accomplices)
    ring = Ring(frozenset([cheater]), "with")
    miners = [
        *honest_miners(),
        *((stake * CAI, DEVICE_CLASSES[1], policy) for stake, policy in lazy),
        *((MIN_MINER, DEVICE_CLASSES[0], Sybil(ring)) for _ in range(accomplices)),
        (MIN_MINER, DEVICE_CLASSES[0], Cheater(strategy)),
    ]
    assert account("miner", len(miners) - 1) == cheater
    policy = CollusiveSettler([cheater]) if collusive else CoordinatorPolicy()
    return Sim(b"", check_rate, miners, [policy])


def cheater_run(
    sim: Sim,
    seed: bytes,
    *,
    max_fakes: int = 200,
    per_block: int = 10,
    check_invariants: bool = False,
) -> CheaterRun:
    """One run on a `cheater_network` (reset with `seed`): the cheater fakes from its first task
    until its first fake is found Guilty (final, after its appeal), or until `max_fakes`.
    `per_block` tasks are committed to it per block (each is drawn on its own)."""
    sim.reset(seed)
    me = next(w for w in sim.miners.values() if isinstance(w.policy, Cheater))
    mine: list[Job] = []

    def fakes() -> list[Job]:
        return [j for j in mine if j.fake]

    while True:
        if any(j.status == TaskStatus.REJECTED for j in mine):
            break
        if len(fakes()) >= max_fakes:
            if not any(j.task_id in sim.open for j in mine):
                break
        else:
            mine += sim.assign(sim.coordinators[0], [me] * per_block)
        sim.step(check_invariants=check_invariants)
    sim.run_until(lambda: not any(j.task_id in sim.open for j in mine))
    if check_invariants:
        sim.check()
    faked = fakes()
    caught = [i for i, j in enumerate(faked, 1) if j.status == TaskStatus.REJECTED]
    honest = [j for j in mine if not j.fake]
    return CheaterRun(
        fakes_to_catch=min(caught) if caught else None,
        fakes=len(faked),
        fakes_drawn=sum(j.drawn for j in faked),
        fakes_upheld=sum(j.drawn and j.status == TaskStatus.ACCEPTED for j in faked),
        upheld_without_ring=sum(
            j.drawn and j.status == TaskStatus.ACCEPTED and not j.sybil_majority for j in faked
        ),
        honest=len(honest),
        honest_drawn=sum(j.drawn for j in honest),
        checker_slots=sim.tally.checker_slots,
        reruns=sim.tally.reruns,
        tasks=sim.tally.tasks,
        honest_checker_offences=sum(
            type(sim.miners[w].policy) is MinerPolicy
            for w, _ in sim.tally.offences
            if w in sim.miners
        ),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class CatchStats:
    p: float
    runs: int
    caught: int  # runs whose cheater was caught at all (within max_fakes)
    within_50: int
    mean_fakes: float  # over caught runs
    trials: int  # fakes until caught (or until the cap), all runs together
    fakes_drawn: int  # fakes drawn for a check, all fakes together
    fakes_total: int

    @property
    def p_hat(self) -> float:
        """Per-fake catch probability: catches per fake faced (geometric MLE)."""
        return self.caught / self.trials if self.trials else 0.0

    def p_lower(self, confidence: float = 0.99) -> float:
        return lower_bound(self.caught, self.trials, confidence)

    def p_upper(self, confidence: float = 0.99) -> float:
        return upper_bound(self.caught, self.trials, confidence)

    @property
    def within_50_theory(self) -> float:
        return 1 - (1 - self.p) ** 50

    def within_50_lower(self, confidence: float = 0.99) -> float:
        """Lower confidence bound of P(caught within 50) from the runs' counts alone."""
        return lower_bound(self.within_50, self.runs, confidence)

    def within_50_model_lower(self, confidence: float = 0.99) -> float:
        """The same, from the per-fake catch probability's lower bound (each fake is drawn
        independently, so the fakes to the first catch are geometric)."""
        return 1 - (1 - self.p_lower(confidence)) ** 50


def catch_stats(check_rate: int, runs: Sequence[CheaterRun]) -> CatchStats:
    caught = [r.fakes_to_catch for r in runs if r.fakes_to_catch is not None]
    trials = sum(r.fakes_to_catch if r.fakes_to_catch is not None else r.fakes for r in runs)
    return CatchStats(
        p=check_rate / PERBILL_ONE,
        runs=len(runs),
        caught=len(caught),
        within_50=sum(k <= 50 for k in caught),
        mean_fakes=sum(caught) / len(caught) if caught else math.inf,
        trials=trials,
        fakes_drawn=sum(r.fakes_drawn for r in runs),
        fakes_total=sum(r.fakes for r in runs),
    )


def cheater_runs(
    check_rate: int,
    runs: int,
    strategy: str = "always",
    *,
    label: str = "cheater",
    collusive: bool = False,
    lazy: Sequence[tuple[int, MinerPolicy]] = (),
    accomplices: int = 0,
    **kw: Any,
) -> list[CheaterRun]:
    """`runs` runs, each with fresh randomness, on one `cheater_network`."""
    sim = cheater_network(
        check_rate, strategy, collusive=collusive, lazy=lazy, accomplices=accomplices
    )
    return [
        cheater_run(sim, run_seed(f"{label}/{strategy}/{check_rate}", i), **kw) for i in range(runs)
    ]


# ---- experiment 2: the cheater's economics -------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CheaterBook:
    """One cheater's account, from the runtime's events."""

    stake: int
    fakes: int
    fakes_accepted: int
    fakes_rejected: int
    gain_bound: int  # sum over its fakes of what an accepted task earns in the fake's era (r)
    paid_for_fakes: int  # payments and rewards it was actually paid for its fakes
    slashed: int  # own stake slashed (applied)
    forfeited: int  # rewards of units credited to it but never paid (suspended), + rejected fakes

    @property
    def loss(self) -> int:
        return self.slashed + self.forfeited


@dataclasses.dataclass(frozen=True, slots=True)
class Economy:
    p: float
    invalid_result_slash: float
    books: list[CheaterBook]
    era_work: dict[int, int]  # miner work credited per era (burned planck)
    unit_reward: dict[int, int]  # what one accepted task earns its miner per era
    honest_slashed: int
    honest_rejected: int
    reruns: int
    tasks: int

    @property
    def fakes(self) -> int:
        return sum(b.fakes for b in self.books)

    @property
    def gain_per_fake(self) -> float:
        return sum(b.gain_bound for b in self.books) / self.fakes

    @property
    def loss_per_fake(self) -> float:
        return sum(b.loss for b in self.books) / self.fakes

    @property
    def ratio(self) -> float:
        return self.loss_per_fake / self.gain_per_fake

    @property
    def theory_loss_per_fake(self) -> float:
        """p x (s x B + r), with B the cheaters' mean stake and r the mean gain bound."""
        stake = sum(b.stake for b in self.books) / len(self.books)
        return self.p * (self.invalid_result_slash * stake + self.gain_per_fake)


def economy(
    seed: bytes,
    check_rate: int,
    *,
    cheaters: int = 5,
    eras: int = 8,
    tasks_per_block: int | None = None,
) -> Economy:
    """Ten honest miners and `cheaters` cheaters (each at the minimum stake, faking every task)
    get tasks from two honest coordinators (which assign only to active miners: one task to each
    per block, or `tasks_per_block` in turn) for `eras` eras, and for two more in which the last
    slashes apply; then the tasks drain and the rewards are paid. Every figure is read from the
    runtime's events."""
    policies = [Cheater("always") for _ in range(cheaters)]
    miners = [*honest_miners(), *((MIN_MINER, DEVICE_CLASSES[0], p) for p in policies)]
    sim = Sim(seed, check_rate, miners, [CoordinatorPolicy(), CoordinatorPolicy()])
    length = sim.m.config.staking.era_length
    stop = (sim.block // length + eras + 2) * length
    turn = 0
    while sim.block < stop:
        active = [w for w in sim.miners.values() if sim.is_active(w.staker)]
        if tasks_per_block is not None:
            active = [active[(turn + i) % len(active)] for i in range(tasks_per_block)]
        sim.assign(sim.coordinators[turn % 2], active)
        turn += len(active)
        sim.step()
    sim.drain()
    sim.finish_eras(2)
    sim.check()
    t = sim.tally
    cfg = sim.m.config
    burn = PRICE * cfg.tasks.burn_share // PERBILL_ONE
    emission = {
        era: rewards.role_emission(cfg.rewards, Role.MINER, units)
        for era, units in t.era_work.items()
    }

    def earned(era: int, credit: int) -> int:  # the miners' emission for `credit` in `era`
        units = t.era_work.get(era, 0)
        return emission[era] * credit // units if units else 0

    # an accepted, unchecked task: its price less the burn, and the emission its burn backs
    unit = {era: PRICE - burn + earned(era, burn) for era in t.era_work}
    cheater_set = {w.staker for w in sim.miners.values() if isinstance(w.policy, Cheater)}
    books = []
    for who in sorted(cheater_set):
        fakes = [j for j in sim.jobs.values() if j.miner.staker == who and j.fake]
        gain = sum(unit.get(j.settled_era, PRICE) for j in fakes if j.settled_era is not None)
        paid_fakes = forfeited = 0
        for (era, w), units in t.work.items():
            if w != who:
                continue
            fake_units = sum(  # fakes accepted unchecked: the ones credited with their burn
                j.status == TaskStatus.ACCEPTED
                and j.outcome == "Unchecked"
                and j.settled_era == era
                for j in fakes
            )
            paid = t.paid.get((era, who), 0)
            paid_fakes += paid * fake_units * burn // units
            if paid == 0:  # suspended before its era was paid: all of it forfeited
                forfeited += earned(era, units)
        paid_fakes += sum(j.to_miner for j in fakes if j.status == TaskStatus.ACCEPTED)
        rejected = [j for j in fakes if j.status == TaskStatus.REJECTED]
        forfeited += sum(
            unit.get(j.settled_era, PRICE) for j in rejected if j.settled_era is not None
        )
        books.append(
            CheaterBook(
                stake=MIN_MINER,
                fakes=len(fakes),
                fakes_accepted=sum(j.status == TaskStatus.ACCEPTED for j in fakes),
                fakes_rejected=len(rejected),
                gain_bound=gain,
                paid_for_fakes=paid_fakes,
                slashed=t.slashed.get(who, 0),
                forfeited=forfeited,
            )
        )
    honest = [w for w in sim.miners if w not in cheater_set]
    return Economy(
        p=check_rate / PERBILL_ONE,
        invalid_result_slash=sim.m.config.slashing.invalid_result_slash / PERBILL_ONE,
        books=books,
        era_work=dict(t.era_work),
        unit_reward=unit,
        honest_slashed=sum(t.slashed.get(w, 0) for w in honest),
        honest_rejected=sum(
            j.status == TaskStatus.REJECTED for j in sim.jobs.values() if j.miner.staker in honest
        ),
        reruns=t.reruns,
        tasks=t.tasks,
    )


# ---- experiment 3: a hostile coordinator's sybil checkers ----------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SybilRun:
    convicted: bool  # the honest miner ended Guilty
    majorities: frozenset[int]  # rounds in which the sybils held the majority
    miner_slashed: int
    miner_accepted: int
    coordinator_offences: int
    sybil_offences: int
    sybil_slashed: int
    honest_checker_offences: int
    coordinator_slashed: int


def sybil_network(sybil_share: float, mode: str, check_rate: int) -> Sim:
    """The ten honest miners and a hostile coordinator (`Hostile(mode)`) whose sybil miners, at
    the minimum stake each, hold `sybil_share` of all miner stake; its target is honest miner 0."""
    policy = Hostile([account("miner", 0)], mode)
    ring = Ring(policy.targets, "against")
    sybils = ((MIN_MINER, DEVICE_CLASSES[0], Sybil(ring)) for _ in range(sybil_count(sybil_share)))
    return Sim(b"", check_rate, [*honest_miners(), *sybils], [policy])


def sybil_attack(sim: Sim, seed: bytes) -> SybilRun:
    """One attack on a `sybil_network` (reset with `seed`): the coordinator commits one task to
    its target, which computes it honestly; `dispute`: the coordinator disputes it; `ambush`:
    it settles it, and the sybils strike if the draw checks it and gives them a majority. The
    miner appeals a Guilty verdict. Then the slashes apply."""
    sim.reset(seed)
    target = sim.miners[account("miner", 0)]
    [job] = sim.assign(sim.coordinators[0], [target])
    sim.drain()
    sim.finish_eras(2)
    sybils = {w.staker for w in sim.miners.values() if isinstance(w.policy, Sybil)}
    coordinator = sim.coordinators[0].staker
    offences = sim.tally.offences
    return SybilRun(
        convicted=job.status == TaskStatus.REJECTED,
        majorities=frozenset(job.sybil_majority),
        miner_slashed=sim.tally.slashed.get(target.staker, 0),
        miner_accepted=tasks.Stats.get(sim.m.state, target.staker).accepted,
        coordinator_offences=sum(w == coordinator for w, _ in offences),
        sybil_offences=sum(w in sybils for w, _ in offences),
        sybil_slashed=sum(sim.tally.slashed.get(w, 0) for w in sybils),
        honest_checker_offences=sum(w not in sybils and w != coordinator for w, _ in offences),
        coordinator_slashed=sim.tally.slashed.get(coordinator, 0),
    )


def sybil_attacks(sybil_share: float, mode: str, runs: int, label: str = "sybil") -> list[SybilRun]:
    check_rate = PERBILL_ONE if mode == "ambush" else 0  # ambush: every result is checked
    sim = sybil_network(sybil_share, mode, check_rate)
    return [sybil_attack(sim, run_seed(f"{label}/{mode}/{sybil_share}", i)) for i in range(runs)]


def sybil_count(sybil_share: float) -> int:
    honest_stake = sum(HONEST_STAKES) * CAI
    return round(sybil_share / (1 - sybil_share) * honest_stake / MIN_MINER)


def ring_theory(
    ring_share: float,
    rounds: Sequence[int] = (3, 5),
    *,
    every: bool = True,
    target_is_honest: bool = True,
    samples: int = 20_000,
    seed: int = 1,
) -> float:
    """P(a ring of miners at the minimum stake, `ring_share` of the miner stake beside the ten
    honest miners, holds the majority of every round in `rounds` (`every`), or of some round
    (not `every`): the chance the protocol's own stake-weighted draw (`tasks.pick_checkers`)
    gives it what it needs, sampled. Rounds are drawn in turn without the earlier checkers and
    without the target: honest miner 0 (`target_is_honest`, a hostile coordinator's victim) or
    a miner outside the honest ten (a cheater). Sybils against a disputed miner need every round
    of (3, 5), or of (1, 3, 5) from a random check; accomplices of a cheater need any of
    (1, 3, 5)."""
    rng = random.Random(seed)
    honest = [(account("miner", i), s * CAI) for i, s in enumerate(HONEST_STAKES)]
    ring = [(account("ring", i), MIN_MINER) for i in range(sybil_count(ring_share))]
    ours = {w for w, _ in ring}
    start = (honest[1:] if target_is_honest else honest) + ring
    hits = 0
    for _ in range(samples):
        pool = start
        held = []
        for size in rounds:
            drawn = tasks.pick_checkers(pool, rng.randbytes(32), size)
            held.append(2 * sum(w in ours for w in drawn) > len(drawn))
            if held[-1] != every:
                break  # `every`: a round without the majority ends it; any: one with it does
            pool = [c for c in pool if c[0] not in drawn]
        hits += all(held) if every else any(held)
    return hits / samples


# ---- experiment 4: lazy checkers among honest miners ---------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class LazyPopulation:
    tasks: int
    checked: int
    escalated: int  # checks that needed round 1
    appealed: int
    honest_convicted: int  # honest miners' tasks ending Guilty
    honest_rejected_stats: int  # MinerStats.rejected of honest miners
    honest_offences: int  # offences of honest miners (as miners or checkers)
    honest_slashed: int
    lazy_offences: int
    lazy_slashed: int
    lazy_stake: int
    reruns: int
    checker_slots: int


def lazy_population(
    seed: bytes,
    check_rate: int,
    *,
    lazy: Sequence[MinerPolicy],
    lazy_stakes: Sequence[int],
    blocks: int,
) -> LazyPopulation:
    """Honest miners (which do all the tasks) and lazy checkers (`lazy` policies, with
    `lazy_stakes` in CAI): every honest miner gets a task per block for `blocks` blocks; the lazy
    miners are drawn as checkers by stake like everyone else. Then the slashes apply."""
    honest = honest_miners()
    miners = [
        *honest,
        *((s * CAI, DEVICE_CLASSES[1], p) for s, p in zip(lazy_stakes, lazy, strict=True)),
    ]
    sim = Sim(seed, check_rate, miners, [CoordinatorPolicy()])
    lazy_set = {w.staker for w in sim.miners.values() if w.policy in lazy}
    workers = [w for w in sim.miners.values() if w.staker not in lazy_set]
    for _ in range(blocks):
        sim.assign(sim.coordinators[0], [w for w in workers if sim.is_active(w.staker)])
        sim.step()
    sim.drain()
    sim.finish_eras(2)
    sim.check()
    t = sim.tally
    honest_set = {w.staker for w in workers}
    return LazyPopulation(
        tasks=t.tasks,
        checked=t.rounds.get(0, 0),
        escalated=t.rounds.get(1, 0),
        appealed=t.rounds.get(2, 0),
        honest_convicted=sum(j.status == TaskStatus.REJECTED for j in sim.jobs.values()),
        honest_rejected_stats=sum(tasks.Stats.get(sim.m.state, w).rejected for w in honest_set),
        honest_offences=sum(w in honest_set for w, _ in t.offences),
        honest_slashed=sum(t.slashed.get(w, 0) for w in honest_set),
        lazy_offences=sum(w in lazy_set for w, _ in t.offences),
        lazy_slashed=sum(t.slashed.get(w, 0) for w in lazy_set),
        lazy_stake=sum(lazy_stakes) * CAI,
        reruns=t.reruns,
        checker_slots=t.checker_slots,
    )


# ---- experiment 5: offline checkers --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class BusyEra:
    fakes: int
    guilty: int  # fakes found Guilty
    reported: int  # InvalidResult reports of the cheater
    offences: dict[str, int]  # all reports, by kind
    cheater_slashed: int
    cheater_active: bool


def busy_era(seed: bytes, tasks_in_block: int = 400, fakes: int = 10) -> BusyEra:
    """A big miner is offline (drawn to check, it never commits) while `tasks_in_block` honest
    tasks settle in one block, every result checked (p = 100%): its absences end their windows
    ~30 blocks later, together, and are reported in one era. A cheater's `fakes`, submitted in the
    same block, are convicted in that same block, after them. Then the slashes apply."""
    cheater = Cheater()
    miners = [
        *honest_miners(),
        (5_000_000 * CAI, DEVICE_CLASSES[1], Absent()),
        (MIN_MINER, DEVICE_CLASSES[0], cheater),
    ]
    sim = Sim(seed, PERBILL_ONE, miners, [CoordinatorPolicy()])
    honest = [w for w in sim.miners.values() if type(w.policy) is MinerPolicy]
    me = next(w for w in sim.miners.values() if w.policy is cheater)
    sim.assign(sim.coordinators[0], [honest[i % len(honest)] for i in range(tasks_in_block)])
    mine = sim.assign(sim.coordinators[0], [me] * fakes)
    sim.step()
    sim.drain()
    sim.finish_eras(2)
    sim.check()
    kinds: dict[str, int] = {}
    for _, kind in sim.tally.offences:
        kinds[kind] = kinds.get(kind, 0) + 1
    return BusyEra(
        fakes=len(mine),
        guilty=sum(j.status == TaskStatus.REJECTED for j in mine),
        reported=sim.tally.offences.count((me.staker, "InvalidResult")),
        offences=kinds,
        cheater_slashed=sim.tally.slashed.get(me.staker, 0),
        cheater_active=sim.is_active(me.staker),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AbsentRound:
    fakes: int
    caught: int  # fakes the honest checker disagreed with (in any round)
    caught_rejected: int  # of those, Rejected in the end
    right_checker_offences: int  # CheckFault reports of the honest checker


def absent_round(seed: bytes, fakes: int = 5) -> AbsentRound:
    """One honest miner holds most of the stake, eight are offline (drawn, they never commit),
    and every fake of a cheater is checked (p = 100%): the honest miner catches a fake whenever
    it is drawn; the other checkers never reveal."""
    cheater = Cheater()
    miners = [
        (500_000 * CAI, DEVICE_CLASSES[0], MinerPolicy()),
        *((30_000 * CAI, DEVICE_CLASSES[0], Absent()) for _ in range(8)),
        (MIN_MINER, DEVICE_CLASSES[0], cheater),
    ]
    sim = Sim(seed, PERBILL_ONE, miners, [CoordinatorPolicy()])
    me = next(w for w in sim.miners.values() if w.policy is cheater)
    right = account("miner", 0)
    mine = sim.assign(sim.coordinators[0], [me] * fakes)
    sim.step()
    sim.drain()
    sim.check()
    caught = [j for j in mine if any(w == right for _, w in j.answers)]
    return AbsentRound(
        fakes=len(mine),
        caught=len(caught),
        caught_rejected=sum(j.status == TaskStatus.REJECTED for j in caught),
        right_checker_offences=sim.tally.offences.count((right, "CheckFault")),
    )
