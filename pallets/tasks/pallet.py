"""Tasks: the on-chain trail of every inference task, and the checked-work protocol
(docs/verification.md).

1. A registered, active coordinator's operator commits a batch of tasks: id, hash of the task
   spec (model, prompt, size, steps, seed), the assigned miner (its staker account), a deadline.
2. The assigned miner's operator submits a blind commitment to its result before the deadline
   (`chain.taskproto.result_commitment`: the result hash, device class and image sketch stay
   hidden until a check needs them).
3. A submitted task settles at the coordinator's early `settle_tasks` (in a later block) or at its
   deadline. Then a draw from the Randomness pallet's mix, which did not exist when the result was
   committed, decides whether it is checked (`VerificationConfig.check_rate`). Unchecked, it is
   Accepted (one work unit for the miner, one for the coordinator). A task with no result by its
   deadline is Missed.
4. A checked task (status Checking) goes through rounds of checkers the runtime draws by stake
   among the other active miners: the coordinator reveals the spec on chain, the checkers re-run it
   and commit blind, then the miner and the checkers reveal. The runtime compares: exact hashes
   on the same device class, sketch distance across classes. Round 0 has one checker; any
   disagreement escalates to round 1 (three), whose majority decides; a miner found Guilty may
   appeal to round 2 (five). Final verdicts report offences to Slashing (deferred, cancellable):
   the Guilty miner, checkers on the losing side or absent, a coordinator whose dispute failed or
   that withheld a checked spec. The coordinator cannot reject or report: it can only dispute,
   and pays when the checkers uphold the miner.

Deadlines (of tasks, and of check phases) are processed in `on_initialize`, at most
MAX_EXPIRIES_PER_BLOCK per block; the rest carries over, so per-block work stays bounded.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Annotated, TypeAlias

from chain.codec import encode_u32
from chain.frame.prelude import *
from chain.hashing import blake2_256
from chain.sketch import DEFAULT_MAX_SKETCH_DISTANCE, SKETCH_MAX_BYTES, sketch_distance
from chain.taskproto import result_commitment
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.config import Ctx, RuntimeConfig, VerificationConfig
from pallets.randomness import pallet as randomness
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.rewards import pallet as rewards
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceKind
from pallets.system import pallet as system

SPEC = PalletSpec("Tasks", 15, module="pallet_cuckoo_tasks")

MAX_BATCH = 256
MAX_DEADLINE_BLOCKS = 14_400
MAX_EXPIRIES_PER_BLOCK = 512
MAX_DRAWS_PER_BLOCK = 4096
MAX_PRUNES_PER_BLOCK = 512
MAX_SCANNED_BLOCKS = 256
MAX_SPEC_BYTES = 4096
MAX_CHECKERS = 15  # all rounds of one task together (1 + 3 + 5 by default)
CHECK_DOMAIN = b"cuckoo/check/v1"
CHECKERS_DOMAIN = b"cuckoo/checkers/v1"

SPEC.constant("MaxBatch", U32, lambda c: MAX_BATCH, "Tasks per commit/submit/settle batch.")
SPEC.constant(
    "MaxDeadlineBlocks", U32, lambda c: MAX_DEADLINE_BLOCKS, "How far ahead a deadline may be."
)
SPEC.constant(
    "MaxExpiriesPerBlock", U32, lambda c: MAX_EXPIRIES_PER_BLOCK, "Deadlines processed per block."
)
SPEC.constant(
    "CheckRate", PERBILL, lambda c: c.verification.check_rate, "Share of results re-executed."
)
SPEC.constant(
    "MaxSketchDistance",
    U32,
    lambda c: max_sketch_distance(c.verification),
    "Largest sketch distance at which results of two device classes agree.",
)


SPEC.constant(
    "MinTaskPrice", BALANCE, lambda c: c.tasks.min_task_price, "The least a task may pay."
)
SPEC.constant(
    "BurnShare",
    PERBILL,
    lambda c: c.tasks.burn_share,
    "Share of an accepted task's price that is burned (paid to the checkers when checked).",
)
SPEC.constant(
    "TaskDeposit", BALANCE, lambda c: c.tasks.task_deposit, "Reserved per task until pruned."
)
SPEC.constant(
    "RetentionBlocks",
    BLOCK_NUMBER,
    lambda c: c.tasks.retention_blocks,
    "Blocks a settled task stays in state before it is pruned.",
)
SPEC.constant(
    "MaxPrunesPerBlock", U32, lambda c: MAX_PRUNES_PER_BLOCK, "Settled tasks pruned per block."
)


def max_sketch_distance(config: VerificationConfig) -> int:
    return config.max_sketch_distance or DEFAULT_MAX_SKETCH_DISTANCE


class TaskStatus(enum.StrEnum):
    COMMITTED = "Committed"  # assigned, no result yet
    SUBMITTED = "Submitted"  # the miner committed to its result (blind)
    ACCEPTED = "Accepted"  # final: work credited to the miner and the coordinator
    REJECTED = "Rejected"  # final: the checkers found the result Guilty
    MISSED = "Missed"  # final: no result by the deadline
    CHECKING = "Checking"  # drawn for a check or disputed: checkers are re-running it

    @property
    def is_open(self) -> bool:
        return self in (TaskStatus.COMMITTED, TaskStatus.SUBMITTED, TaskStatus.CHECKING)


class CheckOutcome(enum.StrEnum):
    UNCHECKED = "Unchecked"  # not (yet) checked
    VERIFIED = "Verified"  # the round-0 checker agreed
    UPHELD = "Upheld"  # disputed or escalated, and the checkers' majority agreed with the miner
    GUILTY = "Guilty"  # the checkers' majority disagreed, or the miner did not reveal


class CheckPhase(enum.StrEnum):
    SPEC_DUE = "SpecDue"  # waiting for the coordinator to reveal the spec
    COMMITTING = "Committing"  # checkers re-run the spec and commit blind
    REVEALING = "Revealing"  # the miner and the checkers open their commitments
    APPEALABLE = "Appealable"  # Guilty in round 1: the miner may appeal until the phase ends


TASK_STATUS = unit_enum("pallet_cuckoo_tasks::TaskStatus", TaskStatus)
TaskStatusField: TypeAlias = Annotated[TaskStatus, TASK_STATUS, "TaskStatus"]
CHECK_OUTCOME = unit_enum("pallet_cuckoo_tasks::CheckOutcome", CheckOutcome)
CheckOutcomeField: TypeAlias = Annotated[CheckOutcome, CHECK_OUTCOME, "CheckOutcome"]
CHECK_PHASE = unit_enum("pallet_cuckoo_tasks::CheckPhase", CheckPhase)
CheckPhaseField: TypeAlias = Annotated[CheckPhase, CHECK_PHASE, "CheckPhase"]
OptionalHash: TypeAlias = Annotated[bytes | None, Option(H256), "Option<H256>"]
OptionalBlock: TypeAlias = Annotated[int | None, Option(BLOCK_NUMBER), "Option<BlockNumber>"]
Sketch: TypeAlias = Annotated[bytes, Bytes(SKETCH_MAX_BYTES), "BoundedVec<u8>"]
RoundIndex: TypeAlias = Annotated[int, U8, "u8"]
Count: TypeAlias = Annotated[int, U32, "u32"]


@struct("pallet_cuckoo_tasks::Task")
class Task:
    coordinator: AccountIdField  # staker accounts, not operators: keys may rotate, stake may not
    miner: AccountIdField
    spec_hash: Hash256
    deadline: BlockNumber
    committed_at: BlockNumber
    status: TaskStatusField
    commitment: OptionalHash = None  # the miner's blind result commitment
    submitted_at: OptionalBlock = None
    settled_at: OptionalBlock = None
    outcome: CheckOutcomeField = CheckOutcome.UNCHECKED
    draw_at: OptionalBlock = None  # a submitted result's pending draw (None once drawn)
    price: Balance = 0  # escrowed from `payer` at commit; paid out when the task settles
    payer: AccountIdField = bytes(32)  # the operator that committed it (and holds the escrow)
    deposit: Balance = 0  # reserved from `payer` until the task is pruned


TASK = scale_of(Task)


@struct("pallet_cuckoo_tasks::Reveal")
class Reveal:
    """An opened result commitment."""

    result_hash: Hash256
    device_hash: Hash256
    sketch: Sketch


REVEAL = scale_of(Reveal)
OptionalReveal: TypeAlias = Annotated[Reveal | None, Option(REVEAL), "Option<Reveal>"]


@struct("pallet_cuckoo_tasks::Checker")
class Checker:
    account: AccountIdField  # the checker's miner staker account
    round: RoundIndex
    commitment: OptionalHash = None
    reveal: OptionalReveal = None


CHECKER = scale_of(Checker)


@struct("pallet_cuckoo_tasks::Check")
class Check:
    round: RoundIndex
    phase: CheckPhaseField
    phase_ends: BlockNumber
    checkers: Annotated[list[Checker], Vec(CHECKER, MAX_CHECKERS), "BoundedVec<Checker>"]
    miner_reveal: OptionalReveal = None
    disputed_by: Annotated[bytes | None, Option(ACCOUNT_ID), "Option<AccountId>"] = None

    def current(self) -> list[Checker]:
        return [c for c in self.checkers if c.round == self.round]


CHECK = scale_of(Check)


@struct("pallet_cuckoo_tasks::TaskCommit")
class TaskCommit:
    task_id: Hash256
    spec_hash: Hash256
    miner: AccountIdField
    deadline: BlockNumber
    price: Balance  # what the miner is paid when its result is accepted


@struct("pallet_cuckoo_tasks::ResultCommit")
class ResultCommit:
    task_id: Hash256
    commitment: Hash256


TASK_COMMIT = scale_of(TaskCommit)
RESULT_COMMIT = scale_of(ResultCommit)
# The batch arguments (at most MaxBatch items each)
CommitBatch: TypeAlias = Annotated[
    list[TaskCommit], Vec(TASK_COMMIT, MAX_BATCH), "BoundedVec<TaskCommit>"
]
ResultBatch: TypeAlias = Annotated[
    list[ResultCommit], Vec(RESULT_COMMIT, MAX_BATCH), "BoundedVec<ResultCommit>"
]
TaskIds: TypeAlias = Annotated[list[bytes], Vec(H256, MAX_BATCH), "BoundedVec<H256>"]


@struct("pallet_cuckoo_tasks::MinerStats")
class MinerStats:
    assigned: Count = 0
    submitted: Count = 0
    accepted: Count = 0
    rejected: Count = 0
    missed: Count = 0


MINER_STATS = scale_of(MinerStats)

Tasks: StorageMap[bytes, Task] = StorageMap(
    SPEC, "Tasks", H256, TASK, hasher="Identity", docs="Every committed task by id."
)
Deadlines: StorageDoubleMap[int, bytes, bool] = StorageDoubleMap(
    SPEC,
    "Deadlines",
    BLOCK_NUMBER,
    H256,
    BOOL,
    hashers=("Twox64Concat", "Identity"),
    docs="Open tasks by the block their deadline or check phase ends (see on_initialize).",
)
NextDeadline: StorageValue[int] = StorageValue(
    SPEC,
    "NextDeadline",
    BLOCK_NUMBER,
    default=0,
    docs="The oldest block whose deadlines may still be open (the expiry cursor).",
)
OpenTasks: StorageValue[int] = StorageValue(
    SPEC, "OpenTasks", U32, default=0, docs="Tasks committed and not yet final."
)
Stats: StorageMap[bytes, MinerStats] = StorageMap(
    SPEC,
    "MinerStats",
    ACCOUNT_ID,
    MINER_STATS,
    default=MinerStats(),
    docs="Each miner's task record.",
)
PendingDraws: StorageDoubleMap[int, bytes, bool] = StorageDoubleMap(
    SPEC,
    "PendingDraws",
    BLOCK_NUMBER,
    H256,
    BOOL,
    hashers=("Twox64Concat", "Identity"),
    docs="Submitted results by the block whose randomness draws them (see on_initialize).",
)
NextDraw: StorageValue[int] = StorageValue(
    SPEC, "NextDraw", BLOCK_NUMBER, default=0, docs="The oldest block with draws still pending."
)
DrawsPending: StorageValue[int] = StorageValue(
    SPEC, "DrawsPending", U32, default=0, docs="Submitted results not drawn yet."
)
Checks: StorageMap[bytes, Check] = StorageMap(
    SPEC, "Checks", H256, CHECK, hasher="Identity", docs="Each checked task's check, by task id."
)
Prunable: StorageDoubleMap[int, bytes, bool] = StorageDoubleMap(
    SPEC,
    "Prunable",
    BLOCK_NUMBER,
    H256,
    BOOL,
    hashers=("Twox64Concat", "Identity"),
    docs="Settled tasks by the block from which they are pruned (settled + RetentionBlocks).",
)
NextPrune: StorageValue[int] = StorageValue(
    SPEC, "NextPrune", BLOCK_NUMBER, default=0, docs="The oldest block with prunes still due."
)
Retained: StorageValue[int] = StorageValue(
    SPEC, "Retained", U32, default=0, docs="Settled tasks still in state (waiting in Prunable)."
)
Specs: StorageMap[bytes, bytes] = StorageMap(
    SPEC,
    "Specs",
    H256,
    Bytes(MAX_SPEC_BYTES),
    hasher="Identity",
    docs="The spec of each checked task, as its coordinator revealed it (canonical JSON).",
)


@event(SPEC, 0)
class TaskCommitted:
    """A coordinator committed a task to a miner."""

    task_id: Hash256
    coordinator: T.AccountId
    miner: T.AccountId
    deadline: BlockNumber
    price: BalanceOf


@event(SPEC, 1)
class ResultSubmitted:
    """A miner committed (blind) to its result."""

    task_id: Hash256
    miner: T.AccountId
    commitment: Hash256


@event(SPEC, 2)
class TaskSettled:
    """A task reached its final status (Accepted, Rejected or Missed) and check outcome."""

    task_id: Hash256
    status: TaskStatusField
    outcome: CheckOutcomeField


@event(SPEC, 3)
class CheckOpened:
    """A round of checkers was drawn for a task."""

    task_id: Hash256
    round: RoundIndex
    checkers: Annotated[list[bytes], Vec(ACCOUNT_ID), "Vec<AccountId>"]
    phase: CheckPhaseField
    phase_ends: BlockNumber


@event(SPEC, 4)
class SpecRevealed:
    """The coordinator revealed a checked task's spec (`Specs`)."""

    task_id: Hash256


@event(SPEC, 5)
class CheckCommitted:
    """A checker committed (blind) to its re-run result."""

    task_id: Hash256
    checker: T.AccountId


@event(SPEC, 6)
class ResultRevealed:
    """The miner or a checker opened its commitment."""

    task_id: Hash256
    who: T.AccountId


@event(SPEC, 7)
class CheckPhaseChanged:
    """A check moved to its next phase."""

    task_id: Hash256
    phase: CheckPhaseField
    phase_ends: BlockNumber


@event(SPEC, 8)
class RoundClosed:
    """A round's reveals were compared with the miner's."""

    task_id: Hash256
    round: RoundIndex
    agree: Count
    disagree: Count
    absent: Count


@event(SPEC, 9)
class Verdict:
    """A check's verdict; `final` is false for a round-1 Guilty the miner may still appeal."""

    task_id: Hash256
    outcome: CheckOutcomeField
    final: Annotated[bool, BOOL, "bool"]


@event(SPEC, 10)
class TaskPaid:
    """How a settling task's escrowed price moved: to its miner (staker account), burned, to the
    checkers that were right, back to the payer (docs/economics.md)."""

    task_id: Hash256
    miner: T.AccountId
    to_miner: BalanceOf
    burned: BalanceOf
    to_checkers: BalanceOf
    refunded: BalanceOf


@event(SPEC, 11)
class TasksPruned:
    """Settled tasks left state after RetentionBlocks (their deposits returned)."""

    count: Count


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    NOT_COORDINATOR = 0, "The signer is not the operator of a registered coordinator."
    COORDINATOR_INACTIVE = 1, "The coordinator's registration is not active."
    NOT_MINER = 2, "The signer is not the operator of a registered miner."
    MINER_INACTIVE = 3, "The assigned miner is not a registered, active miner."
    EMPTY_BATCH = 4, "A batch needs at least one item."
    BATCH_TOO_LARGE = 5, "A batch holds at most MaxBatch items."
    TASK_EXISTS = 6, "A task with this id was committed before."
    UNKNOWN_TASK = 7, "No task with this id."
    BAD_DEADLINE = 8, "The deadline must be after this block and at most MaxDeadlineBlocks ahead."
    NOT_ASSIGNED = 9, "The task is assigned to another miner."
    ALREADY_SUBMITTED = 10, "A result was submitted already, or the task is final."
    DEADLINE_PASSED = 11, "The task's deadline has passed."
    NOT_YOUR_TASK = 12, "The task was committed by another coordinator."
    NOT_SUBMITTED = 13, "The task has no submitted, unsettled result."
    DUPLICATE_IN_BATCH = 14, "The batch names the same task twice."
    NOT_CHECKING = 15, "The task is not being checked, or not in the phase this call needs."
    BAD_SPEC = 16, "The spec's hash is not the task's committed spec hash."
    NOT_DRAWN_CHECKER = 17, "The signer's miner is not a checker of this round (or acted already)."
    BAD_REVEAL = 18, "The revealed values do not open the commitment."
    ALREADY_REVEALED = 19, "The spec or this result was revealed already."
    PRICE_TOO_LOW = 20, "A task's price is below MinTaskPrice."
    INSUFFICIENT_FUNDS = 21, "The signer cannot reserve the batch's prices and deposits."


# ---- pure protocol rules (also used by simulations and benchmarks) -----------------------------


def is_drawn(mix: bytes, task_id: bytes, check_rate: int) -> bool:
    """Whether a task settling under randomness `mix` is checked: a uniform 64-bit draw below
    `check_rate` (Perbill) of the range."""
    draw = int.from_bytes(blake2_256(CHECK_DOMAIN + mix + task_id)[:8], "little")
    return draw * PERBILL_ONE < check_rate << 64


def pick_checkers(candidates: list[tuple[bytes, int]], seed: bytes, count: int) -> list[bytes]:
    """`count` accounts drawn by weight without replacement from `(account, weight)` pairs (in
    the given order, which must be deterministic), seeded by `seed`."""
    pool = [(who, weight) for who, weight in candidates if weight > 0]
    chosen: list[bytes] = []
    for i in range(count):
        total = sum(weight for _, weight in pool)
        if total == 0:
            break
        x = int.from_bytes(blake2_256(seed + i.to_bytes(4, "little")), "little") % total
        for j, (who, weight) in enumerate(pool):
            if x < weight:
                chosen.append(who)
                del pool[j]
                break
            x -= weight
    return chosen


def agrees(miner: Reveal, checker: Reveal, max_distance: int) -> bool:
    """Same device class: the exact same bytes. Different classes: sketches within the
    calibrated distance."""
    if miner.device_hash == checker.device_hash:
        return miner.result_hash == checker.result_hash
    return sketch_distance(miner.sketch, checker.sketch) <= max_distance


# ---- helpers -------------------------------------------------------------------------------------


def _operator_of(ctx: Ctx, role: Role) -> bytes:
    """The staker whose `role` registration the signed operator serves."""
    who = ctx.ensure_signed()
    record = registry.OperatorOf.get(ctx.state, AccountId(who))
    if record is None or record.role != role:
        raise ModuleError(Error.NOT_COORDINATOR if role == Role.COORDINATOR else Error.NOT_MINER)
    return record.staker


def _bump(ctx: Ctx, miner: bytes, field: str) -> None:
    stats = Stats.get(ctx.state, AccountId(miner))
    Stats.put(
        ctx.state,
        AccountId(miner),
        dataclasses.replace(stats, **{field: getattr(stats, field) + 1}),
    )


def _batch(ids: list[bytes]) -> None:
    ensure(len(ids) > 0, Error.EMPTY_BATCH)
    ensure(len(ids) <= MAX_BATCH, Error.BATCH_TOO_LARGE)
    ensure(len(set(ids)) == len(ids), Error.DUPLICATE_IN_BATCH)


def _task(ctx: Ctx, task_id: bytes) -> Task:
    task = Tasks.get(ctx.state, task_id)
    ensure(task is not None, Error.UNKNOWN_TASK)
    assert task is not None
    return task


def _waiting_block(task: Task, check: Check | None) -> int:
    """The block under which an open task waits in `Deadlines`: its check phase's end while
    checked; while its draw is pending, not before the draw."""
    if task.status == TaskStatus.CHECKING and check:
        return check.phase_ends
    if task.draw_at is not None:
        return max(task.deadline, task.draw_at)
    return task.deadline


def draw_delay(state: ReadState) -> int:
    """Blocks between a result's block and the block whose randomness draws it: one per Aura
    authority, so that the mix folds in a reveal from every author after the commitment (an
    honest one among them is enough for nobody to have known the draw)."""
    return max(1, len(aura.Authorities.get(state)))


def _forget_draw(ctx: Ctx, task_id: bytes, task: Task) -> Task:
    """Drop a task's pending draw (it was drawn, disputed or settled)."""
    if task.draw_at is None:
        return task
    PendingDraws.remove(ctx.state, task.draw_at, task_id)
    DrawsPending.put(ctx.state, max(DrawsPending.get(ctx.state) - 1, 0))
    return dataclasses.replace(task, draw_at=None)


def _move(ctx: Ctx, task_id: bytes, old: int, new: int) -> None:
    Deadlines.remove(ctx.state, old, task_id)
    Deadlines.put(ctx.state, new, task_id, True)


def _finalize(
    ctx: Ctx,
    task_id: bytes,
    task: Task,
    status: TaskStatus,
    outcome: CheckOutcome,
    right_checkers: list[bytes] | None = None,
) -> None:
    """Settle a task: pay its escrowed price out (`_pay`), credit the work it burned for, and
    queue it for pruning after RetentionBlocks."""
    Deadlines.remove(ctx.state, _waiting_block(task, Checks.get(ctx.state, task_id)), task_id)
    now = ctx.block_number
    Tasks.put(
        ctx.state,
        task_id,
        dataclasses.replace(task, status=status, settled_at=now, outcome=outcome),
    )
    OpenTasks.put(ctx.state, max(OpenTasks.get(ctx.state) - 1, 0))
    if Retained.get(ctx.state) == 0:
        NextPrune.put(ctx.state, now + ctx.config.tasks.retention_blocks)  # skip idle blocks
    Prunable.put(ctx.state, now + ctx.config.tasks.retention_blocks, task_id, True)
    Retained.put(ctx.state, Retained.get(ctx.state) + 1)
    burned = _pay(ctx, task_id, task, status, right_checkers or [])
    if status == TaskStatus.ACCEPTED:
        _bump(ctx, task.miner, "accepted")
        # Emission backs only the burn share its payer burned (docs/economics.md); a checked
        # task's share paid its checkers instead (what it burns is rounding dust).
        if burned > 0 and not right_checkers:
            rewards.credit(ctx, task.miner, Role.MINER, burned)
            if registry.get_registration(ctx.state, task.coordinator) is not None:
                rewards.credit(ctx, task.coordinator, Role.COORDINATOR, burned)
    elif status == TaskStatus.REJECTED:
        _bump(ctx, task.miner, "rejected")
    else:
        _bump(ctx, task.miner, "missed")
    ctx.emit(TaskSettled(task_id, status, outcome))


def split_price(
    price: int, burn_share: int, status: TaskStatus, checkers: int
) -> tuple[int, int, int, int]:
    """Pure: how a settling task's price moves, as (to_miner, burned, to_checkers, refunded).
    The burn share of an accepted price is burned; when checkers that were right exist, it pays
    them instead (equal parts, the rounding dust burned). A rejected task's payer gets the price
    back less the right checkers' fee; a missed task's payer gets it all back."""
    share = price * burn_share // PERBILL_ONE
    fee = share if checkers > 0 else 0
    to_checkers = fee // checkers * checkers if checkers > 0 else 0
    dust = fee - to_checkers
    if status == TaskStatus.ACCEPTED:
        return price - share, share - fee + dust, to_checkers, 0
    if status == TaskStatus.REJECTED:
        return 0, dust, to_checkers, price - fee
    return 0, 0, 0, price


def _pay(
    ctx: Ctx, task_id: bytes, task: Task, status: TaskStatus, right_checkers: list[bytes]
) -> int:
    """Move the escrowed price out of the payer's reserve; returns what was burned."""
    payer = task.payer
    to_miner, burned, to_checkers, refunded = split_price(
        task.price, ctx.config.tasks.burn_share, status, len(right_checkers)
    )
    paid_miner = balances.repatriate_reserved(ctx, payer, task.miner, to_miner)
    paid_checkers = 0
    for who in right_checkers:
        paid_checkers += balances.repatriate_reserved(
            ctx, payer, who, to_checkers // len(right_checkers)
        )
    burned += (to_miner - paid_miner) + (to_checkers - paid_checkers)  # could not be received
    balances.burn_reserved(ctx, payer, burned)
    balances.unreserve(ctx, payer, refunded)
    ctx.emit(TaskPaid(task_id, task.miner, paid_miner, burned, paid_checkers, refunded))
    return burned


def _draw(ctx: Ctx, task_id: bytes, task: Task) -> None:
    """Draw a submitted result with this block's mix: checked, it opens round 0 now; unchecked,
    it waits for the coordinator's early accept or its deadline (accepted at once when the
    deadline already passed)."""
    Deadlines.remove(ctx.state, _waiting_block(task, None), task_id)
    task = _forget_draw(ctx, task_id, task)
    rate = ctx.config.verification.check_rate
    if is_drawn(randomness.current_mix(ctx.state), task_id, rate):
        task = dataclasses.replace(task, status=TaskStatus.CHECKING)
        Tasks.put(ctx.state, task_id, task)
        _open_round(ctx, task_id, task, None, 0, disputed_by=None)
    elif ctx.block_number > task.deadline:
        _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)
    else:
        Tasks.put(ctx.state, task_id, task)
        Deadlines.put(ctx.state, task.deadline, task_id, True)


def _open_round(
    ctx: Ctx,
    task_id: bytes,
    task: Task,
    check: Check | None,
    round_: int,
    disputed_by: bytes | None,
) -> None:
    """Draw round `round_`'s checkers among the active miners other than the task's miner and
    its earlier checkers, by stake weight, with randomness the round's opener cannot steer. The
    task is in status Checking and not waiting in `Deadlines` (this puts it there)."""
    vc = ctx.config.verification
    earlier = [c.account for c in check.checkers] if check else []
    excluded = [task.miner, *earlier]
    candidates = [
        (who, reg.weight)
        for who, reg in registry.Miners.iter(ctx.state)
        if reg.status == registry.Status.ACTIVE and who not in excluded
    ]
    seed = blake2_256(
        CHECKERS_DOMAIN + randomness.current_mix(ctx.state) + task_id + bytes([round_])
    )
    room = MAX_CHECKERS - len(earlier)  # a task's checkers over all its rounds are bounded
    chosen = pick_checkers(candidates, seed, min(vc.check_rounds[round_], room))
    now = ctx.block_number
    if not chosen:
        # Nobody (else) can check: an appeal nobody can hear leaves the round-1 verdict standing;
        # otherwise the reveals so far decide, and with none the task is accepted unchecked.
        if round_ == 2 and check is not None:
            _final_verdict(ctx, task_id, task, check, CheckOutcome.GUILTY)
        elif check is not None:
            _decide_on_evidence(ctx, task_id, task, check)
        else:
            _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)
        return
    checkers = [*(check.checkers if check else []), *(Checker(who, round_) for who in chosen)]
    if Specs.contains(ctx.state, task_id):
        phase, ends = CheckPhase.COMMITTING, now + vc.commit_window
    else:
        phase, ends = CheckPhase.SPEC_DUE, now + vc.spec_window
    new = Check(
        round_,
        phase,
        ends,
        checkers,
        check.miner_reveal if check else None,
        check.disputed_by if check else disputed_by,
    )
    Checks.put(ctx.state, task_id, new)
    Deadlines.put(ctx.state, ends, task_id, True)
    ctx.emit(CheckOpened(task_id, round_, chosen, phase, ends))


def _set_phase(ctx: Ctx, task_id: bytes, check: Check, phase: CheckPhase, ends: int) -> Check:
    _move(ctx, task_id, check.phase_ends, ends)
    new = dataclasses.replace(check, phase=phase, phase_ends=ends)
    Checks.put(ctx.state, task_id, new)
    ctx.emit(CheckPhaseChanged(task_id, phase, ends))
    return new


def _offence(ctx: Ctx, offender: bytes, kind: OffenceKind, evidence: bytes) -> None:
    slashing.try_report(ctx, offender, None, kind, evidence)


def _incident(task_id: bytes, task: Task) -> bytes:
    """Offence evidence for one task: its id and commit block. An offence id is reported at most
    once, ever, and pruning frees a task id for a new commit: the id alone would let a task
    committed again under it go unreported for what was reported about the first one."""
    return task_id + encode_u32(task.committed_at)


def _close_round(ctx: Ctx, task_id: bytes, task: Task, check: Check) -> None:
    """Compare the round's reveals with the miner's and move on (docs/verification.md §7)."""
    if check.miner_reveal is None:
        _final_verdict(ctx, task_id, task, check, CheckOutcome.GUILTY)  # never cheaper to hide
        return
    limit = max_sketch_distance(ctx.config.verification)
    agree = disagree = absent = 0
    for c in check.current():
        if c.reveal is None:
            absent += 1
        elif agrees(check.miner_reveal, c.reveal, limit):
            agree += 1
        else:
            disagree += 1
    ctx.emit(RoundClosed(task_id, check.round, agree, disagree, absent))
    if check.round > 0 and agree == disagree == 0:
        # Nobody of the round revealed: it decides nothing. Draw it again with new checkers
        # (bounded by MAX_CHECKERS; the absent ones are reported at the final verdict).
        Deadlines.remove(ctx.state, check.phase_ends, task_id)
        _open_round(ctx, task_id, task, check, check.round, disputed_by=None)
    elif check.round == 0:
        if agree >= 1 and disagree == 0 and absent == 0 and check.disputed_by is None:
            _final_verdict(ctx, task_id, task, check, CheckOutcome.VERIFIED)
        else:
            Deadlines.remove(ctx.state, check.phase_ends, task_id)
            _open_round(ctx, task_id, task, check, 1, disputed_by=None)
    elif disagree > agree and check.round == 1:
        ends = ctx.block_number + ctx.config.verification.appeal_window
        _set_phase(ctx, task_id, check, CheckPhase.APPEALABLE, ends)
        ctx.emit(Verdict(task_id, CheckOutcome.GUILTY, False))
    else:
        outcome = CheckOutcome.GUILTY if disagree > agree else CheckOutcome.UPHELD
        _final_verdict(ctx, task_id, task, check, outcome)


def _decide_on_evidence(ctx: Ctx, task_id: bytes, task: Task, check: Check) -> None:
    """No checker is left to draw: the majority of every round's revealed checkers decides (the
    miner hiding its result is Guilty); with no reveal at all nobody is judged."""
    limit = max_sketch_distance(ctx.config.verification)
    revealed = [c.reveal for c in check.checkers if c.reveal is not None]
    if check.miner_reveal is None:
        _final_verdict(ctx, task_id, task, check, CheckOutcome.GUILTY)
        return
    agree = sum(agrees(check.miner_reveal, r, limit) for r in revealed)
    disagree = len(revealed) - agree
    if disagree > agree:
        _final_verdict(ctx, task_id, task, check, CheckOutcome.GUILTY)
    elif agree > 0:
        _final_verdict(ctx, task_id, task, check, CheckOutcome.UPHELD)
    else:
        _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)


def _final_verdict(
    ctx: Ctx, task_id: bytes, task: Task, check: Check, outcome: CheckOutcome
) -> None:
    """Settle a checked task: credit the checkers that were right, report the ones that were
    wrong or absent, the Guilty miner, or the coordinator whose dispute failed."""
    guilty = outcome == CheckOutcome.GUILTY
    limit = max_sketch_distance(ctx.config.verification)
    paid: list[bytes] = []
    for c in check.checkers:
        if c.reveal is None:
            right = False
        elif check.miner_reveal is None:
            right = True  # it did the work; the miner hid its result
        else:
            right = agrees(check.miner_reveal, c.reveal, limit) != guilty
        if right:
            paid.append(c.account)  # paid from the task's burn share (`_pay`)
        else:
            _offence(ctx, c.account, OffenceKind.CHECK_FAULT, _incident(task_id, task) + c.account)
    if guilty:
        _offence(ctx, task.miner, OffenceKind.INVALID_RESULT, _incident(task_id, task))
    elif check.disputed_by is not None:
        _offence(ctx, check.disputed_by, OffenceKind.FALSE_DISPUTE, _incident(task_id, task))
    status = TaskStatus.REJECTED if guilty else TaskStatus.ACCEPTED
    _finalize(ctx, task_id, task, status, outcome, paid)
    ctx.emit(Verdict(task_id, outcome, True))


def _advance(ctx: Ctx, task_id: bytes, task: Task) -> None:
    """A check phase ended (its deadline passed)."""
    check = Checks.get(ctx.state, task_id)
    if check is None:  # cannot happen (try_state checks it); close in the miner's favour
        _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)
        return
    vc = ctx.config.verification
    now = ctx.block_number
    if check.phase == CheckPhase.SPEC_DUE:
        # The coordinator hid the spec: it pays, and the miner is not held to an unseen spec.
        _offence(ctx, task.coordinator, OffenceKind.WITHHELD_SPEC, _incident(task_id, task))
        _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)
    elif check.phase == CheckPhase.COMMITTING:
        _set_phase(ctx, task_id, check, CheckPhase.REVEALING, now + vc.reveal_window)
    elif check.phase == CheckPhase.REVEALING:
        _close_round(ctx, task_id, task, check)
    else:  # Appealable, not appealed
        _final_verdict(ctx, task_id, task, check, CheckOutcome.GUILTY)


def _checking(ctx: Ctx, task_id: bytes, phase: CheckPhase) -> tuple[Task, Check]:
    task = _task(ctx, task_id)
    check = Checks.get(ctx.state, task_id)
    ensure(task.status == TaskStatus.CHECKING and check is not None, Error.NOT_CHECKING)
    assert check is not None
    ensure(check.phase == phase, Error.NOT_CHECKING)
    return task, check


# ---- calls ---------------------------------------------------------------------------------------

COMMIT_WEIGHT = Weight(20_000_000 + 30_000_000 * 16, 10_000)
CHECK_WEIGHT = Weight(50_000_000, 10_000)


@call(SPEC, 0, weight=COMMIT_WEIGHT)
def commit_tasks(ctx: Ctx, batch: CommitBatch) -> None:
    """Commit tasks (signed by an active coordinator's operator, the payer). All or nothing. Each
    task's price (at least MinTaskPrice) and TaskDeposit are reserved from the signer: the price
    pays the miner when the result is accepted (its BurnShare burned, or paid to the checkers),
    comes back when it is missed or proved wrong; the deposit comes back when the task is pruned.
    Errors: NotCoordinator, CoordinatorInactive, EmptyBatch, BatchTooLarge, DuplicateInBatch,
    TaskExists, MinerInactive, BadDeadline, PriceTooLow, InsufficientFunds.
    Emits: Balances.Reserved, TaskCommitted per task."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    payer = ctx.ensure_signed()
    ensure(registry.is_active(ctx.state, coordinator), Error.COORDINATOR_INACTIVE)
    _batch([item.task_id for item in batch])
    now = ctx.block_number
    tc = ctx.config.tasks
    for item in batch:  # 1. checks
        ensure(not Tasks.contains(ctx.state, item.task_id), Error.TASK_EXISTS)
        found = registry.get_registration(ctx.state, item.miner)
        ensure(
            found is not None
            and found[0] == Role.MINER
            and found[1].status == registry.Status.ACTIVE,
            Error.MINER_INACTIVE,
        )
        ensure(now < item.deadline <= now + MAX_DEADLINE_BLOCKS, Error.BAD_DEADLINE)
        ensure(item.price >= tc.min_task_price, Error.PRICE_TOO_LOW)
    escrow = sum(item.price + tc.task_deposit for item in batch)
    ed = ctx.config.balances.existential_deposit
    usable = balances.usable_balance(ctx.state, payer, ed, keep_alive=True)
    ensure(usable >= escrow, Error.INSUFFICIENT_FUNDS)
    balances.reserve(ctx, payer, escrow)
    for item in batch:  # 2. effects
        Tasks.put(
            ctx.state,
            item.task_id,
            Task(
                coordinator,
                item.miner,
                item.spec_hash,
                item.deadline,
                now,
                TaskStatus.COMMITTED,
                price=item.price,
                payer=payer,
                deposit=tc.task_deposit,
            ),
        )
        Deadlines.put(ctx.state, item.deadline, item.task_id, True)
        if OpenTasks.get(ctx.state) == 0:
            NextDeadline.put(ctx.state, now)  # nothing older is open: skip the idle blocks
        OpenTasks.put(ctx.state, OpenTasks.get(ctx.state) + 1)
        _bump(ctx, item.miner, "assigned")
        ctx.emit(TaskCommitted(item.task_id, coordinator, item.miner, item.deadline, item.price))


@call(SPEC, 1, weight=COMMIT_WEIGHT)
def submit_results(ctx: Ctx, batch: ResultBatch) -> None:
    """Commit blind to results (signed by the assigned miner's operator, before each deadline):
    `commitment` is `chain.taskproto.result_commitment(...)`.
    Errors: NotMiner, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotAssigned,
    AlreadySubmitted, DeadlinePassed. Emits: ResultSubmitted per task."""
    miner = _operator_of(ctx, Role.MINER)
    _batch([item.task_id for item in batch])
    tasks = []
    for item in batch:
        task = _task(ctx, item.task_id)
        ensure(task.miner == miner, Error.NOT_ASSIGNED)
        ensure(task.status == TaskStatus.COMMITTED, Error.ALREADY_SUBMITTED)
        ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
        tasks.append(task)
    now = ctx.block_number
    draw_at = now + draw_delay(ctx.state)
    if DrawsPending.get(ctx.state) == 0:
        NextDraw.put(ctx.state, now)  # nothing older is pending: skip the idle blocks
    for item, task in zip(batch, tasks, strict=True):
        submitted = dataclasses.replace(
            task,
            status=TaskStatus.SUBMITTED,
            commitment=item.commitment,
            submitted_at=now,
            draw_at=draw_at,
        )
        Tasks.put(ctx.state, item.task_id, submitted)
        _move(ctx, item.task_id, task.deadline, _waiting_block(submitted, None))
        PendingDraws.put(ctx.state, draw_at, item.task_id, True)
        DrawsPending.put(ctx.state, DrawsPending.get(ctx.state) + 1)
        _bump(ctx, miner, "submitted")
        ctx.emit(ResultSubmitted(item.task_id, miner, item.commitment))


@call(SPEC, 2, weight=COMMIT_WEIGHT)
def settle_tasks(ctx: Ctx, task_ids: TaskIds) -> None:
    """Accept submitted results early (signed by the committing coordinator's operator). A result
    is drawn for a check a round of authors after its block (`draw_delay`); one whose draw is
    still pending is left as it is (send it again after the draw). Accepting is the only
    settlement a coordinator can make: to contest a result, it disputes.
    Errors: NotCoordinator, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotYourTask,
    NotSubmitted, DeadlinePassed. Emits: TaskSettled or CheckOpened per task."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    _batch(list(task_ids))
    tasks = []
    for task_id in task_ids:
        task = _task(ctx, task_id)
        ensure(task.coordinator == coordinator, Error.NOT_YOUR_TASK)
        ensure(task.status == TaskStatus.SUBMITTED, Error.NOT_SUBMITTED)
        ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
        tasks.append(task)
    for task_id, task in zip(task_ids, tasks, strict=True):
        if task.draw_at is None:
            _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)


@call(SPEC, 3, weight=CHECK_WEIGHT)
def dispute_task(ctx: Ctx, task_id: Hash256) -> None:
    """Contest a result (signed by the committing coordinator's operator): a submitted one
    before it settles (checkers re-run it from round 1), or one in round 0 of its check (the
    check then goes on to round 1 whatever round 0 finds). If the checkers' majority upholds the
    miner, the coordinator is slashed (FalseDispute).
    Errors: NotCoordinator, UnknownTask, NotYourTask, NotSubmitted, DeadlinePassed.
    Emits: CheckOpened (or TaskSettled when no checker can be drawn)."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    task = _task(ctx, task_id)
    ensure(task.coordinator == coordinator, Error.NOT_YOUR_TASK)
    check = Checks.get(ctx.state, task_id)
    if task.status == TaskStatus.CHECKING and check is not None:
        # drawn before the dispute landed: the dispute rides on the check
        ensure(check.round == 0 and check.disputed_by is None, Error.NOT_SUBMITTED)
        Checks.put(ctx.state, task_id, dataclasses.replace(check, disputed_by=coordinator))
        return
    ensure(task.status == TaskStatus.SUBMITTED, Error.NOT_SUBMITTED)
    ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
    Deadlines.remove(ctx.state, _waiting_block(task, None), task_id)
    task = dataclasses.replace(_forget_draw(ctx, task_id, task), status=TaskStatus.CHECKING)
    Tasks.put(ctx.state, task_id, task)
    _open_round(ctx, task_id, task, None, 1, disputed_by=coordinator)


@call(SPEC, 4, weight=CHECK_WEIGHT)
def reveal_spec(
    ctx: Ctx, task_id: Hash256, spec: Annotated[bytes, Bytes(MAX_SPEC_BYTES), "BoundedVec<u8>"]
) -> None:
    """Reveal a checked task's spec (signed by the committing coordinator's operator): the bytes
    whose blake2_256 is the committed spec hash (canonical JSON). Checkers then re-run it.
    Errors: NotCoordinator, UnknownTask, NotYourTask, NotChecking, AlreadyRevealed, BadSpec.
    Emits: SpecRevealed, CheckPhaseChanged."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    task = _task(ctx, task_id)
    ensure(task.coordinator == coordinator, Error.NOT_YOUR_TASK)
    ensure(not Specs.contains(ctx.state, task_id), Error.ALREADY_REVEALED)
    task, check = _checking(ctx, task_id, CheckPhase.SPEC_DUE)
    ensure(blake2_256(spec) == task.spec_hash, Error.BAD_SPEC)
    Specs.put(ctx.state, task_id, bytes(spec))
    ctx.emit(SpecRevealed(task_id))
    ends = ctx.block_number + ctx.config.verification.commit_window
    _set_phase(ctx, task_id, check, CheckPhase.COMMITTING, ends)


@call(SPEC, 5, weight=CHECK_WEIGHT)
def commit_check(ctx: Ctx, task_id: Hash256, commitment: Hash256) -> None:
    """Commit blind to a re-run result (signed by the operator of a checker of the current
    round): `chain.taskproto.result_commitment` with the checker's own staker account.
    Errors: NotMiner, UnknownTask, NotChecking, NotDrawnChecker. Emits: CheckCommitted, and
    CheckPhaseChanged once every checker of the round committed."""
    who = _operator_of(ctx, Role.MINER)
    _, check = _checking(ctx, task_id, CheckPhase.COMMITTING)
    index = next(
        (
            i
            for i, c in enumerate(check.checkers)
            if c.account == who and c.round == check.round and c.commitment is None
        ),
        None,
    )
    ensure(index is not None, Error.NOT_DRAWN_CHECKER)
    assert index is not None
    checkers = list(check.checkers)
    checkers[index] = dataclasses.replace(checkers[index], commitment=commitment)
    check = dataclasses.replace(check, checkers=checkers)
    Checks.put(ctx.state, task_id, check)
    ctx.emit(CheckCommitted(task_id, who))
    if all(c.commitment is not None for c in check.current()):
        ends = ctx.block_number + ctx.config.verification.reveal_window
        _set_phase(ctx, task_id, check, CheckPhase.REVEALING, ends)


@call(SPEC, 6, weight=CHECK_WEIGHT)
def reveal_result(
    ctx: Ctx,
    task_id: Hash256,
    result_hash: Hash256,
    device_hash: Hash256,
    sketch: Sketch,
    salt: Hash256,
) -> None:
    """Open a result commitment (signed by the task's miner's operator, or by a checker of the
    current round that committed), in the Revealing phase. When every expected reveal is in,
    the round closes at once.
    Errors: NotMiner, UnknownTask, NotChecking, NotDrawnChecker, AlreadyRevealed, BadReveal.
    Emits: ResultRevealed, then RoundClosed and CheckOpened or Verdict when the round closes."""
    who = _operator_of(ctx, Role.MINER)
    task, check = _checking(ctx, task_id, CheckPhase.REVEALING)
    opened = Reveal(result_hash, device_hash, bytes(sketch))
    commitment = result_commitment(who, task_id, result_hash, device_hash, bytes(sketch), salt)
    if who == task.miner:
        ensure(check.miner_reveal is None, Error.ALREADY_REVEALED)
        ensure(commitment == task.commitment, Error.BAD_REVEAL)
        check = dataclasses.replace(check, miner_reveal=opened)
    else:
        index = next(
            (
                i
                for i, c in enumerate(check.checkers)
                if c.account == who and c.round == check.round and c.commitment is not None
            ),
            None,
        )
        ensure(index is not None, Error.NOT_DRAWN_CHECKER)
        assert index is not None
        mine = check.checkers[index]
        ensure(mine.reveal is None, Error.ALREADY_REVEALED)
        ensure(commitment == mine.commitment, Error.BAD_REVEAL)
        checkers = list(check.checkers)
        checkers[index] = dataclasses.replace(mine, reveal=opened)
        check = dataclasses.replace(check, checkers=checkers)
    Checks.put(ctx.state, task_id, check)
    ctx.emit(ResultRevealed(task_id, who))
    committed = [c for c in check.current() if c.commitment is not None]
    if check.miner_reveal is not None and all(c.reveal is not None for c in committed):
        _close_round(ctx, task_id, task, check)


@call(SPEC, 7, weight=CHECK_WEIGHT)
def appeal(ctx: Ctx, task_id: Hash256) -> None:
    """Appeal a round-1 Guilty verdict (signed by the task's miner's operator, in the
    Appealable phase): five new checkers re-run the task and their majority decides, finally.
    Errors: NotMiner, UnknownTask, NotChecking, NotAssigned. Emits: CheckOpened."""
    who = _operator_of(ctx, Role.MINER)
    task, check = _checking(ctx, task_id, CheckPhase.APPEALABLE)
    ensure(task.miner == who, Error.NOT_ASSIGNED)
    Deadlines.remove(ctx.state, check.phase_ends, task_id)
    _open_round(ctx, task_id, task, check, 2, disputed_by=None)


# ---- hooks ---------------------------------------------------------------------------------------


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    """First the draws due by this block (with this block's mix), then the tasks whose deadline
    or check phase ended, oldest first: an unchecked result is accepted, a task without one is
    missed, a check moves to its next phase or verdict. Each bounded per block (the cursors carry
    the rest over)."""
    _run_draws(ctx)
    _run_deadlines(ctx)
    _run_prunes(ctx)


def _drain(
    ctx: Ctx,
    index: StorageDoubleMap[int, bytes, bool],
    cursor: StorageValue[int],
    last: int,
    budget: int,
    handle: Callable[[int, bytes], None],
) -> None:
    """Walk `index` (task ids by block) from `cursor` up to block `last`, oldest first, calling
    `handle(block, task_id)` at most `budget` times and scanning at most MAX_SCANNED_BLOCKS
    blocks; `handle` removes the entry. The cursor carries the rest over to the next block."""
    block = cursor.get(ctx.state)
    scanned = 0
    while block <= last and budget > 0 and scanned < MAX_SCANNED_BLOCKS:
        due = [task_id for task_id, _ in index.iter_prefix(ctx.state, block)][:budget]
        for task_id in due:
            handle(block, task_id)
            budget -= 1
        if next(index.iter_prefix(ctx.state, block), None) is not None:
            break  # budget spent inside this block's entries: resume here next block
        block += 1
        scanned += 1
    cursor.put(ctx.state, block)


def _run_draws(ctx: Ctx) -> None:
    def draw(block: int, task_id: bytes) -> None:
        task = Tasks.get(ctx.state, task_id)
        if task is None or task.status != TaskStatus.SUBMITTED or task.draw_at != block:
            PendingDraws.remove(ctx.state, block, task_id)  # cannot happen (try_state)
        else:
            _draw(ctx, task_id, task)

    now = ctx.block_number
    _drain(ctx, PendingDraws, NextDraw, now, MAX_DRAWS_PER_BLOCK, draw)


def _run_deadlines(ctx: Ctx) -> None:
    def expire(block: int, task_id: bytes) -> None:
        task = Tasks.get(ctx.state, task_id)
        if task is None or not task.status.is_open:
            Deadlines.remove(ctx.state, block, task_id)
        elif task.status == TaskStatus.SUBMITTED and task.draw_at is not None:
            _draw(ctx, task_id, task)  # its draw was carried over: draw it now
        elif task.status == TaskStatus.SUBMITTED:
            _finalize(ctx, task_id, task, TaskStatus.ACCEPTED, CheckOutcome.UNCHECKED)
        elif task.status == TaskStatus.COMMITTED:
            _finalize(ctx, task_id, task, TaskStatus.MISSED, CheckOutcome.UNCHECKED)
        else:
            _advance(ctx, task_id, task)

    now = ctx.block_number
    _drain(ctx, Deadlines, NextDeadline, now - 1, MAX_EXPIRIES_PER_BLOCK, expire)


def _run_prunes(ctx: Ctx) -> None:
    pruned = 0

    def prune(block: int, task_id: bytes) -> None:
        nonlocal pruned
        Prunable.remove(ctx.state, block, task_id)
        Retained.put(ctx.state, max(Retained.get(ctx.state) - 1, 0))
        task = Tasks.get(ctx.state, task_id)
        if task is None or task.status.is_open:
            return  # cannot happen (try_state)
        Tasks.remove(ctx.state, task_id)
        Checks.remove(ctx.state, task_id)
        Specs.remove(ctx.state, task_id)
        balances.unreserve(ctx, task.payer, task.deposit)
        pruned += 1

    _drain(ctx, Prunable, NextPrune, ctx.block_number, MAX_PRUNES_PER_BLOCK, prune)
    if pruned:
        ctx.emit(TasksPruned(pruned))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: OpenTasks counts the open tasks; each open task waits in `Deadlines` under its
    deadline (or its check's phase end) and nothing else does; the expiry cursor is not past an
    open one; a Checking task has a check whose checkers are distinct and not its miner; each
    miner's record counts at least its tasks still in state; each settled task waits in
    `Prunable` for its prune block, and nothing else does; every account's reserve is the
    prices of its open tasks plus the deposits of its tasks in state (Tasks is the only pallet
    that reserves)."""
    open_tasks: set[tuple[int, bytes]] = set()
    settled: set[tuple[int, bytes]] = set()
    escrow: dict[bytes, int] = {}
    stats: dict[bytes, MinerStats] = {}
    for task_id, task in Tasks.iter(state):
        check = Checks.get(state, task_id)
        if task.status == TaskStatus.CHECKING:
            if check is None:
                raise AssertionError("a Checking task has no check")
            accounts = [c.account for c in check.checkers]
            if len(set(accounts)) != len(accounts) or task.miner in accounts:
                raise AssertionError("a check's checkers repeat or include the checked miner")
        if task.status.is_open:
            open_tasks.add((_waiting_block(task, check), task_id))
        elif task.settled_at is None:
            raise AssertionError("a final task has no settlement block")
        else:
            settled.add((task.settled_at + config.tasks.retention_blocks, task_id))
        held = task.deposit + (task.price if task.status.is_open else 0)
        escrow[task.payer] = escrow.get(task.payer, 0) + held
        s = stats.get(task.miner, MinerStats())
        stats[task.miner] = MinerStats(
            s.assigned + 1,
            s.submitted + (task.commitment is not None),
            s.accepted + (task.status == TaskStatus.ACCEPTED),
            s.rejected + (task.status == TaskStatus.REJECTED),
            s.missed + (task.status == TaskStatus.MISSED),
        )
    if OpenTasks.get(state) != len(open_tasks):
        raise AssertionError(f"OpenTasks is {OpenTasks.get(state)}, {len(open_tasks)} are open")
    waiting = {(block, task_id) for block, task_id, _ in Deadlines.iter(state)}
    if waiting != open_tasks:
        raise AssertionError("Deadlines differ from the open tasks' deadlines")
    if open_tasks and min(block for block, _ in open_tasks) < NextDeadline.get(state):
        raise AssertionError("the expiry cursor passed an open task's deadline")
    recorded = dict(Stats.iter(state))
    for miner, live in stats.items():
        have = recorded.get(miner, MinerStats())
        if any(
            getattr(live, f.name) > getattr(have, f.name) for f in dataclasses.fields(MinerStats)
        ):
            raise AssertionError("a miner's record counts fewer tasks than it has in state")
    if {(block, task_id) for block, task_id, _ in Prunable.iter(state)} != settled:
        raise AssertionError("Prunable differs from the settled tasks' prune blocks")
    if Retained.get(state) != len(settled):
        raise AssertionError(f"Retained is {Retained.get(state)}, {len(settled)} are settled")
    if settled and min(block for block, _ in settled) < NextPrune.get(state):
        raise AssertionError("the prune cursor passed a settled task")
    for who, info in system.Account.iter(state):
        if info.data.reserved != escrow.pop(who, 0):
            raise AssertionError(f"{who.hex()}: reserved {info.data.reserved} is not its escrow")
    if any(escrow.values()):
        raise AssertionError("escrow held by accounts that do not exist")
    pending = {
        (task.draw_at, task_id)
        for task_id, task in Tasks.iter(state)
        if task.draw_at is not None and task.status == TaskStatus.SUBMITTED
    }
    if any(
        t.draw_at is not None and t.status != TaskStatus.SUBMITTED for _, t in Tasks.iter(state)
    ):
        raise AssertionError("a task that is not Submitted has a pending draw")
    if {(block, task_id) for block, task_id, _ in PendingDraws.iter(state)} != pending:
        raise AssertionError("PendingDraws differ from the submitted results awaiting a draw")
    if DrawsPending.get(state) != len(pending):
        raise AssertionError(f"DrawsPending is {DrawsPending.get(state)}, {len(pending)} pend")
    if pending and min(block for block, _ in pending) < NextDraw.get(state):
        raise AssertionError("the draw cursor passed a pending draw")
