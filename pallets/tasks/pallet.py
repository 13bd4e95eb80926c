"""Tasks: the on-chain trail of every inference task.

1. A registered, active coordinator's operator commits a batch of tasks: id, hash of the task
   spec (model, prompt, size, steps, seed), the assigned miner (its staker account), a deadline
   block, and, for an audit copy, the task it audits.
2. The assigned miner's operator submits (result hash, device-class fingerprint hash) before the
   deadline.
3. The committing coordinator settles: accept or reject. A submitted result left unsettled is
   accepted at its deadline (in the miner's favour); a task with no result by its deadline is
   recorded as missed against the miner. Accepted tasks become era work for Rewards (one unit for
   the miner, one for the coordinator).
4. For an audited spec, the coordinator reports a miner whose result differs from the agreeing
   results of other miners on the same device class; that opens an InvalidResult offence in the
   Slashing pallet (deferred, cancellable, shared by voters).

Deadlines are processed in `on_initialize`, at most MAX_EXPIRIES_PER_BLOCK per block; the rest
carries over, so per-block work stays bounded.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, TypeAlias

from chain.frame.prelude import *
from pallets.config import Ctx, RuntimeConfig
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.rewards import pallet as rewards
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceKind

SPEC = PalletSpec("Tasks", 15, module="pallet_cuckoo_tasks")

MAX_BATCH = 256
MAX_DEADLINE_BLOCKS = 14_400
MAX_EXPIRIES_PER_BLOCK = 512
MAX_SCANNED_BLOCKS = 256
MAX_WITNESSES = 4

SPEC.constant("MaxBatch", U32, lambda c: MAX_BATCH, "Tasks per commit/submit/settle batch.")
SPEC.constant(
    "MaxDeadlineBlocks", U32, lambda c: MAX_DEADLINE_BLOCKS, "How far ahead a deadline may be."
)
SPEC.constant(
    "MaxExpiriesPerBlock", U32, lambda c: MAX_EXPIRIES_PER_BLOCK, "Deadlines processed per block."
)


class TaskStatus(enum.StrEnum):
    COMMITTED = "Committed"  # assigned, no result yet
    SUBMITTED = "Submitted"  # the miner committed its result hash
    ACCEPTED = "Accepted"  # final: work credited to the miner and the coordinator
    REJECTED = "Rejected"  # final: the coordinator rejected it, or it was reported invalid
    MISSED = "Missed"  # final: no result by the deadline

    @property
    def is_open(self) -> bool:
        return self in (TaskStatus.COMMITTED, TaskStatus.SUBMITTED)


TASK_STATUS = unit_enum("pallet_cuckoo_tasks::TaskStatus", TaskStatus)
TaskStatusField: TypeAlias = Annotated[TaskStatus, TASK_STATUS, "TaskStatus"]


@struct("pallet_cuckoo_tasks::Task")
class Task:
    coordinator: AccountIdField  # staker accounts, not operators: keys may rotate, stake may not
    miner: AccountIdField
    spec_hash: Hash256
    deadline: BlockNumber
    audit_of: Annotated[bytes | None, Option(H256), "Option<H256>"]
    committed_at: BlockNumber
    status: TaskStatusField
    result_hash: Annotated[bytes | None, Option(H256), "Option<H256>"] = None
    device_hash: Annotated[bytes | None, Option(H256), "Option<H256>"] = None
    submitted_at: Annotated[int | None, Option(BLOCK_NUMBER), "Option<BlockNumber>"] = None
    settled_at: Annotated[int | None, Option(BLOCK_NUMBER), "Option<BlockNumber>"] = None


TASK = scale_of(Task)


@struct("pallet_cuckoo_tasks::TaskCommit")
class TaskCommit:
    task_id: Hash256
    spec_hash: Hash256
    miner: AccountIdField
    deadline: BlockNumber
    audit_of: Annotated[bytes | None, Option(H256), "Option<H256>"]


@struct("pallet_cuckoo_tasks::ResultCommit")
class ResultCommit:
    task_id: Hash256
    result_hash: Hash256
    device_hash: Hash256


@struct("pallet_cuckoo_tasks::Settlement")
class Settlement:
    task_id: Hash256
    accept: Annotated[bool, BOOL, "bool"]


TASK_COMMIT = scale_of(TaskCommit)
RESULT_COMMIT = scale_of(ResultCommit)
SETTLEMENT = scale_of(Settlement)
# The three batch arguments (at most MaxBatch items each)
CommitBatch: TypeAlias = Annotated[
    list[TaskCommit], Vec(TASK_COMMIT, MAX_BATCH), "BoundedVec<TaskCommit>"
]
ResultBatch: TypeAlias = Annotated[
    list[ResultCommit], Vec(RESULT_COMMIT, MAX_BATCH), "BoundedVec<ResultCommit>"
]
SettlementBatch: TypeAlias = Annotated[
    list[Settlement], Vec(SETTLEMENT, MAX_BATCH), "BoundedVec<Settlement>"
]
Count: TypeAlias = Annotated[int, U32, "u32"]


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
    docs="Open tasks by deadline block (processed in on_initialize).",
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


@event(SPEC, 0)
class TaskCommitted:
    """A coordinator committed a task to a miner."""

    task_id: Hash256
    coordinator: T.AccountId
    miner: T.AccountId
    deadline: BlockNumber


@event(SPEC, 1)
class ResultSubmitted:
    """A miner committed the hash of its result."""

    task_id: Hash256
    miner: T.AccountId
    result_hash: Hash256


@event(SPEC, 2)
class TaskSettled:
    """A task reached its final status: Accepted, Rejected or Missed."""

    task_id: Hash256
    status: TaskStatusField


@event(SPEC, 3)
class InvalidResultReported:
    """A miner's result was reported as invalid; its slash is deferred (Slashing)."""

    task_id: Hash256
    offender: T.AccountId
    offence_id: Hash256


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
    BAD_AUDIT = 9, "An audit copy must name an existing task of the same coordinator and spec."
    NOT_ASSIGNED = 10, "The task is assigned to another miner."
    ALREADY_SUBMITTED = 11, "A result was submitted already, or the task is final."
    DEADLINE_PASSED = 12, "The task's deadline has passed."
    NOT_YOUR_TASK = 13, "The task was committed by another coordinator."
    NOT_SUBMITTED = 14, "The task has no submitted, unsettled result."
    BAD_EVIDENCE = 15, "The evidence does not show a result that differs from agreeing audits."
    DUPLICATE_IN_BATCH = 16, "The batch names the same task twice."


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


def _batch(items: list[object], key: str) -> None:
    ensure(len(items) > 0, Error.EMPTY_BATCH)
    ensure(len(items) <= MAX_BATCH, Error.BATCH_TOO_LARGE)
    ids = [getattr(i, key) for i in items]
    ensure(len(set(ids)) == len(ids), Error.DUPLICATE_IN_BATCH)


def _open_tasks(
    ctx: Ctx, batch: list[ResultCommit] | list[Settlement], who: bytes, role: Role
) -> list[Task]:
    """The batch's tasks, all checked before anything is written. A miner submits results for
    its committed tasks, a coordinator settles the submitted results of its own; neither after
    the deadline."""
    _batch(list(batch), "task_id")
    if role == Role.MINER:
        status, not_yours, wrong_status = (
            TaskStatus.COMMITTED,
            Error.NOT_ASSIGNED,
            Error.ALREADY_SUBMITTED,
        )
    else:
        status, not_yours, wrong_status = (
            TaskStatus.SUBMITTED,
            Error.NOT_YOUR_TASK,
            Error.NOT_SUBMITTED,
        )
    tasks = []
    for item in batch:
        task = Tasks.get(ctx.state, item.task_id)
        ensure(task is not None, Error.UNKNOWN_TASK)
        assert task is not None
        ensure((task.miner if role == Role.MINER else task.coordinator) == who, not_yours)
        ensure(task.status == status, wrong_status)
        ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
        tasks.append(task)
    return tasks


COMMIT_WEIGHT = Weight(20_000_000 + 30_000_000 * 16, 10_000)


@call(SPEC, 0, weight=COMMIT_WEIGHT)
def commit_tasks(ctx: Ctx, batch: CommitBatch) -> None:
    """Commit tasks (signed by an active coordinator's operator). All or nothing.
    Errors: NotCoordinator, CoordinatorInactive, EmptyBatch, BatchTooLarge, DuplicateInBatch,
    TaskExists, MinerInactive, BadDeadline, BadAudit. Emits: TaskCommitted per task."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    ensure(registry.is_active(ctx.state, coordinator), Error.COORDINATOR_INACTIVE)
    _batch(list(batch), "task_id")
    now = ctx.block_number
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
        if item.audit_of is not None:
            original = Tasks.get(ctx.state, item.audit_of) or next(
                (
                    Task(coordinator, b"", b.spec_hash, 0, None, now, TaskStatus.COMMITTED)
                    for b in batch
                    if b.task_id == item.audit_of
                ),
                None,
            )
            ensure(
                item.audit_of != item.task_id
                and original is not None
                and original.coordinator == coordinator
                and original.spec_hash == item.spec_hash,
                Error.BAD_AUDIT,
            )
    for item in batch:  # 2. effects
        Tasks.put(
            ctx.state,
            item.task_id,
            Task(
                coordinator,
                item.miner,
                item.spec_hash,
                item.deadline,
                item.audit_of,
                now,
                TaskStatus.COMMITTED,
            ),
        )
        Deadlines.put(ctx.state, item.deadline, item.task_id, True)
        if OpenTasks.get(ctx.state) == 0:
            NextDeadline.put(ctx.state, now)  # nothing older is open: skip the idle blocks
        OpenTasks.put(ctx.state, OpenTasks.get(ctx.state) + 1)
        _bump(ctx, item.miner, "assigned")
        ctx.emit(TaskCommitted(item.task_id, coordinator, item.miner, item.deadline))


@call(SPEC, 1, weight=COMMIT_WEIGHT)
def submit_results(ctx: Ctx, batch: ResultBatch) -> None:
    """Commit result hashes (signed by the assigned miner's operator, before each deadline).
    Errors: NotMiner, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotAssigned,
    AlreadySubmitted, DeadlinePassed. Emits: ResultSubmitted per task."""
    miner = _operator_of(ctx, Role.MINER)
    tasks = _open_tasks(ctx, batch, miner, Role.MINER)
    for item, task in zip(batch, tasks, strict=True):
        Tasks.put(
            ctx.state,
            item.task_id,
            dataclasses.replace(
                task,
                status=TaskStatus.SUBMITTED,
                result_hash=item.result_hash,
                device_hash=item.device_hash,
                submitted_at=ctx.block_number,
            ),
        )
        _bump(ctx, miner, "submitted")
        ctx.emit(ResultSubmitted(item.task_id, miner, item.result_hash))


def _finalize(ctx: Ctx, task_id: bytes, task: Task, status: TaskStatus) -> None:
    Tasks.put(
        ctx.state, task_id, dataclasses.replace(task, status=status, settled_at=ctx.block_number)
    )
    Deadlines.remove(ctx.state, task.deadline, task_id)
    OpenTasks.put(ctx.state, max(OpenTasks.get(ctx.state) - 1, 0))
    if status == TaskStatus.ACCEPTED:
        _bump(ctx, task.miner, "accepted")
        rewards.credit(ctx, task.miner, Role.MINER, 1)
        if registry.get_registration(ctx.state, task.coordinator) is not None:
            rewards.credit(ctx, task.coordinator, Role.COORDINATOR, 1)
    elif status == TaskStatus.REJECTED:
        _bump(ctx, task.miner, "rejected")
    else:
        _bump(ctx, task.miner, "missed")
    ctx.emit(TaskSettled(task_id, status))


@call(SPEC, 2, weight=COMMIT_WEIGHT)
def settle_tasks(ctx: Ctx, batch: SettlementBatch) -> None:
    """Accept or reject submitted results (signed by the committing coordinator's operator).
    Errors: NotCoordinator, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotYourTask,
    NotSubmitted. Emits: TaskSettled per task."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    tasks = _open_tasks(ctx, batch, coordinator, Role.COORDINATOR)
    for item, task in zip(batch, tasks, strict=True):
        _finalize(
            ctx, item.task_id, task, TaskStatus.ACCEPTED if item.accept else TaskStatus.REJECTED
        )


def is_invalid_evidence(
    state: ReadState, coordinator: bytes, task_id: bytes, witnesses: list[bytes]
) -> bool:
    """Pure check of report evidence. The reported task and every witness are results for the
    same spec, committed by this coordinator (the original and its audit copies), by distinct
    miners; the witnesses agree on one result hash from one device class; the reported result
    differs. One witness suffices on the reported miner's device class (outputs are
    deterministic there); across device classes at least two agreeing witnesses are needed."""
    task = Tasks.get(state, task_id)
    if task is None or task.result_hash is None or task.coordinator != coordinator or not witnesses:
        return False
    original = task_id if task.audit_of is None else task.audit_of
    hashes, devices, miners = set(), set(), {task.miner}
    for w in witnesses:
        wt = Tasks.get(state, w)
        if (
            wt is None
            or wt.result_hash is None
            or wt.coordinator != coordinator
            or wt.spec_hash != task.spec_hash
            or (w != original and wt.audit_of != original)
        ):
            return False
        hashes.add(wt.result_hash)
        devices.add(wt.device_hash)
        miners.add(wt.miner)
    if len(hashes) != 1 or len(devices) != 1 or task.result_hash in hashes:
        return False
    if len(miners) != len(witnesses) + 1:
        return False
    return task.device_hash in devices or len(witnesses) >= 2


@call(SPEC, 3, weight=COMMIT_WEIGHT)
def report_invalid_result(
    ctx: Ctx,
    task_id: Hash256,
    witnesses: Annotated[list[bytes], Vec(H256, MAX_WITNESSES), "BoundedVec<H256>"],
) -> None:
    """Report the miner of `task_id` (signed by the committing coordinator's operator) with the
    agreeing results of other miners on the same spec and device class as evidence. Opens an
    InvalidResult offence (slashed after SlashDeferDuration unless cancelled); the task is
    rejected if still open. Errors: NotCoordinator, BadEvidence, Slashing.AlreadyReported.
    Emits: InvalidResultReported."""
    coordinator = _operator_of(ctx, Role.COORDINATOR)
    ensure(
        is_invalid_evidence(ctx.state, coordinator, task_id, list(witnesses)), Error.BAD_EVIDENCE
    )
    task = Tasks.get(ctx.state, task_id)
    assert task is not None
    evidence = task_id  # one offence per result, whatever witnesses are shown
    oid = slashing.report(ctx, task.miner, coordinator, OffenceKind.INVALID_RESULT, evidence)
    if task.status == TaskStatus.SUBMITTED:
        _finalize(ctx, task_id, task, TaskStatus.REJECTED)
    ctx.emit(InvalidResultReported(task_id, task.miner, oid))


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    """Close tasks whose deadline passed, oldest deadline first: submitted ones are accepted (in
    the miner's favour), the others missed. At most MAX_EXPIRIES_PER_BLOCK tasks and
    MAX_SCANNED_BLOCKS deadline blocks per block; the cursor carries the rest over."""
    now = ctx.block_number
    budget = MAX_EXPIRIES_PER_BLOCK
    block = NextDeadline.get(ctx.state)
    scanned = 0
    while block < now and budget > 0 and scanned < MAX_SCANNED_BLOCKS:
        due = [task_id for task_id, _ in Deadlines.iter_prefix(ctx.state, block)][:budget]
        for task_id in due:
            task = Tasks.get(ctx.state, task_id)
            if task is None or not task.status.is_open:
                Deadlines.remove(ctx.state, block, task_id)
            else:
                submitted = task.status == TaskStatus.SUBMITTED
                _finalize(
                    ctx, task_id, task, TaskStatus.ACCEPTED if submitted else TaskStatus.MISSED
                )
            budget -= 1
        if next(Deadlines.iter_prefix(ctx.state, block), None) is not None:
            break  # budget spent inside this block's deadlines: resume here next block
        block += 1
        scanned += 1
    NextDeadline.put(ctx.state, block)


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: OpenTasks counts the open tasks, each open task waits under its deadline in
    `Deadlines` and nothing else does, the expiry cursor is not past an open deadline, and each
    miner's record counts its tasks."""
    open_tasks: set[tuple[int, bytes]] = set()
    stats: dict[bytes, MinerStats] = {}
    for task_id, task in Tasks.iter(state):
        if task.status.is_open:
            open_tasks.add((task.deadline, task_id))
        s = stats.get(task.miner, MinerStats())
        stats[task.miner] = MinerStats(
            s.assigned + 1,
            s.submitted + (task.result_hash is not None),
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
    if dict(Stats.iter(state)) != stats:
        raise AssertionError("MinerStats differ from the miners' tasks")
