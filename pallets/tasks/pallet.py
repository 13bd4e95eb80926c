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

from chain.frame.common import ACCOUNT_ID, BLOCK_NUMBER, H256, AccountId, Weight
from chain.frame.pallet import (
    Ctx,
    PalletSpec,
    ReadState,
    StorageDoubleMap,
    StorageMap,
    StorageValue,
    ensure,
)
from chain.frame.types import BOOL, U32, Option, Struct, Vec, fields_of, unit_enum
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.slashing import pallet as slashing

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

TASK_STATUS = unit_enum(
    "pallet_cuckoo_tasks::TaskStatus", ["Committed", "Submitted", "Accepted", "Rejected", "Missed"]
)


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    coordinator: bytes  # staker accounts, not operators: keys may rotate, stake may not
    miner: bytes
    spec_hash: bytes
    deadline: int
    audit_of: bytes | None
    committed_at: int
    status: str
    result_hash: bytes | None = None
    device_hash: bytes | None = None
    submitted_at: int | None = None
    settled_at: int | None = None


TASK = Struct(
    "pallet_cuckoo_tasks::Task",
    fields_of(
        [
            ("coordinator", ACCOUNT_ID, "AccountId"),
            ("miner", ACCOUNT_ID, "AccountId"),
            ("spec_hash", H256, "H256"),
            ("deadline", BLOCK_NUMBER, "BlockNumber"),
            ("audit_of", Option(H256), "Option<H256>"),
            ("committed_at", BLOCK_NUMBER, "BlockNumber"),
            ("status", TASK_STATUS, "TaskStatus"),
            ("result_hash", Option(H256), "Option<H256>"),
            ("device_hash", Option(H256), "Option<H256>"),
            ("submitted_at", Option(BLOCK_NUMBER), "Option<BlockNumber>"),
            ("settled_at", Option(BLOCK_NUMBER), "Option<BlockNumber>"),
        ]
    ),
    Task,
)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCommit:
    task_id: bytes
    spec_hash: bytes
    miner: bytes
    deadline: int
    audit_of: bytes | None


@dataclasses.dataclass(frozen=True, slots=True)
class ResultCommit:
    task_id: bytes
    result_hash: bytes
    device_hash: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Settlement:
    task_id: bytes
    accept: bool


TASK_COMMIT = Struct(
    "pallet_cuckoo_tasks::TaskCommit",
    fields_of(
        [
            ("task_id", H256, "H256"),
            ("spec_hash", H256, "H256"),
            ("miner", ACCOUNT_ID, "AccountId"),
            ("deadline", BLOCK_NUMBER, "BlockNumber"),
            ("audit_of", Option(H256), "Option<H256>"),
        ]
    ),
    TaskCommit,
)
RESULT_COMMIT = Struct(
    "pallet_cuckoo_tasks::ResultCommit",
    fields_of(
        [("task_id", H256, "H256"), ("result_hash", H256, "H256"), ("device_hash", H256, "H256")]
    ),
    ResultCommit,
)
SETTLEMENT = Struct(
    "pallet_cuckoo_tasks::Settlement",
    fields_of([("task_id", H256, "H256"), ("accept", BOOL, "bool")]),
    Settlement,
)


@dataclasses.dataclass(frozen=True, slots=True)
class MinerStats:
    assigned: int = 0
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    missed: int = 0


MINER_STATS = Struct(
    "pallet_cuckoo_tasks::MinerStats",
    fields_of(
        [(n, U32, "u32") for n in ("assigned", "submitted", "accepted", "rejected", "missed")]
    ),
    MinerStats,
)

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


@SPEC.event(
    0,
    [
        ("task_id", H256, "H256"),
        ("coordinator", ACCOUNT_ID, "T::AccountId"),
        ("miner", ACCOUNT_ID, "T::AccountId"),
        ("deadline", BLOCK_NUMBER, "BlockNumber"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class TaskCommitted:
    """A coordinator committed a task to a miner."""

    task_id: bytes
    coordinator: bytes
    miner: bytes
    deadline: int


@SPEC.event(
    1,
    [
        ("task_id", H256, "H256"),
        ("miner", ACCOUNT_ID, "T::AccountId"),
        ("result_hash", H256, "H256"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class ResultSubmitted:
    """A miner committed the hash of its result."""

    task_id: bytes
    miner: bytes
    result_hash: bytes


@SPEC.event(2, [("task_id", H256, "H256"), ("status", TASK_STATUS, "TaskStatus")])
@dataclasses.dataclass(frozen=True, slots=True)
class TaskSettled:
    """A task reached its final status: Accepted, Rejected or Missed."""

    task_id: bytes
    status: str


@SPEC.event(
    3,
    [
        ("task_id", H256, "H256"),
        ("offender", ACCOUNT_ID, "T::AccountId"),
        ("offence_id", H256, "H256"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class InvalidResultReported:
    """A miner's result was reported as invalid; its slash is deferred (Slashing)."""

    task_id: bytes
    offender: bytes
    offence_id: bytes


@SPEC.errors
class Error(enum.IntEnum):  # consensus-visible: append only
    NOT_COORDINATOR = 0
    COORDINATOR_INACTIVE = 1
    NOT_MINER = 2
    MINER_INACTIVE = 3
    EMPTY_BATCH = 4
    BATCH_TOO_LARGE = 5
    TASK_EXISTS = 6
    UNKNOWN_TASK = 7
    BAD_DEADLINE = 8
    BAD_AUDIT = 9
    NOT_ASSIGNED = 10
    ALREADY_SUBMITTED = 11
    DEADLINE_PASSED = 12
    NOT_YOUR_TASK = 13
    NOT_SUBMITTED = 14
    BAD_EVIDENCE = 15
    DUPLICATE_IN_BATCH = 16


SPEC.error_docs = {
    "NOT_COORDINATOR": "The signer is not the operator of a registered coordinator.",
    "COORDINATOR_INACTIVE": "The coordinator's registration is not active.",
    "NOT_MINER": "The signer is not the operator of a registered miner.",
    "MINER_INACTIVE": "The assigned miner is not a registered, active miner.",
    "EMPTY_BATCH": "A batch needs at least one item.",
    "BATCH_TOO_LARGE": "A batch holds at most MaxBatch items.",
    "TASK_EXISTS": "A task with this id was committed before.",
    "UNKNOWN_TASK": "No task with this id.",
    "BAD_DEADLINE": "The deadline must be after this block and at most MaxDeadlineBlocks ahead.",
    "BAD_AUDIT": "An audit copy must name an existing task of the same coordinator and spec.",
    "NOT_ASSIGNED": "The task is assigned to another miner.",
    "ALREADY_SUBMITTED": "A result was submitted already, or the task is final.",
    "DEADLINE_PASSED": "The task's deadline has passed.",
    "NOT_YOUR_TASK": "The task was committed by another coordinator.",
    "NOT_SUBMITTED": "The task has no submitted, unsettled result.",
    "BAD_EVIDENCE": "The evidence does not show a result that differs from agreeing audits.",
    "DUPLICATE_IN_BATCH": "The batch names the same task twice.",
}


def _operator_of(ctx: Ctx, role: str) -> bytes:
    """The staker whose `role` registration the signed operator serves (must be active)."""
    who = ctx.ensure_signed()
    record = registry.OperatorOf.get(ctx.state, AccountId(who))
    if role == "Coordinator":
        ensure(record is not None and record.role == "Coordinator", Error.NOT_COORDINATOR)
    else:
        ensure(record is not None and record.role == "Miner", Error.NOT_MINER)
    assert record is not None
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


COMMIT_WEIGHT = Weight(20_000_000 + 30_000_000 * 16, 10_000)


@SPEC.call(
    0, weight=COMMIT_WEIGHT, args=[("batch", Vec(TASK_COMMIT, MAX_BATCH), "BoundedVec<TaskCommit>")]
)
def commit_tasks(ctx: Ctx, batch: list[TaskCommit]) -> None:
    """Commit tasks (signed by an active coordinator's operator). All or nothing.
    Errors: NotCoordinator, CoordinatorInactive, EmptyBatch, BatchTooLarge, DuplicateInBatch,
    TaskExists, MinerInactive, BadDeadline, BadAudit. Emits: TaskCommitted per task."""
    coordinator = _operator_of(ctx, "Coordinator")
    ensure(registry.is_active(ctx.state, coordinator), Error.COORDINATOR_INACTIVE)
    _batch(list(batch), "task_id")
    now = ctx.block_number
    for item in batch:  # 1. checks
        ensure(not Tasks.contains(ctx.state, item.task_id), Error.TASK_EXISTS)
        found = registry.get_registration(ctx.state, item.miner)
        ensure(
            found is not None and found[0] == "Miner" and found[1].status == "Active",
            Error.MINER_INACTIVE,
        )
        ensure(now < item.deadline <= now + MAX_DEADLINE_BLOCKS, Error.BAD_DEADLINE)
        if item.audit_of is not None:
            original = Tasks.get(ctx.state, item.audit_of) or next(
                (
                    Task(coordinator, b"", b.spec_hash, 0, None, now, "Committed")
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
                "Committed",
            ),
        )
        Deadlines.put(ctx.state, item.deadline, item.task_id, True)
        if OpenTasks.get(ctx.state) == 0:
            NextDeadline.put(ctx.state, now)  # nothing older is open: skip the idle blocks
        OpenTasks.put(ctx.state, OpenTasks.get(ctx.state) + 1)
        _bump(ctx, item.miner, "assigned")
        ctx.emit(TaskCommitted(item.task_id, coordinator, item.miner, item.deadline))


@SPEC.call(
    1,
    weight=COMMIT_WEIGHT,
    args=[("batch", Vec(RESULT_COMMIT, MAX_BATCH), "BoundedVec<ResultCommit>")],
)
def submit_results(ctx: Ctx, batch: list[ResultCommit]) -> None:
    """Commit result hashes (signed by the assigned miner's operator, before each deadline).
    Errors: NotMiner, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotAssigned,
    AlreadySubmitted, DeadlinePassed. Emits: ResultSubmitted per task."""
    miner = _operator_of(ctx, "Miner")
    _batch(list(batch), "task_id")
    tasks = []
    for item in batch:
        task = Tasks.get(ctx.state, item.task_id)
        ensure(task is not None, Error.UNKNOWN_TASK)
        assert task is not None
        ensure(task.miner == miner, Error.NOT_ASSIGNED)
        ensure(task.status == "Committed", Error.ALREADY_SUBMITTED)
        ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
        tasks.append(task)
    for item, task in zip(batch, tasks, strict=True):
        Tasks.put(
            ctx.state,
            item.task_id,
            dataclasses.replace(
                task,
                status="Submitted",
                result_hash=item.result_hash,
                device_hash=item.device_hash,
                submitted_at=ctx.block_number,
            ),
        )
        _bump(ctx, miner, "submitted")
        ctx.emit(ResultSubmitted(item.task_id, miner, item.result_hash))


def _finalize(ctx: Ctx, task_id: bytes, task: Task, status: str) -> None:
    Tasks.put(
        ctx.state, task_id, dataclasses.replace(task, status=status, settled_at=ctx.block_number)
    )
    Deadlines.remove(ctx.state, task.deadline, task_id)
    OpenTasks.put(ctx.state, max(OpenTasks.get(ctx.state) - 1, 0))
    if status == "Accepted":
        _bump(ctx, task.miner, "accepted")
        rewards.credit(ctx, task.miner, "Miner", 1)
        if registry.get_registration(ctx.state, task.coordinator) is not None:
            rewards.credit(ctx, task.coordinator, "Coordinator", 1)
    elif status == "Rejected":
        _bump(ctx, task.miner, "rejected")
    else:
        _bump(ctx, task.miner, "missed")
    ctx.emit(TaskSettled(task_id, status))


@SPEC.call(
    2, weight=COMMIT_WEIGHT, args=[("batch", Vec(SETTLEMENT, MAX_BATCH), "BoundedVec<Settlement>")]
)
def settle_tasks(ctx: Ctx, batch: list[Settlement]) -> None:
    """Accept or reject submitted results (signed by the committing coordinator's operator).
    Errors: NotCoordinator, EmptyBatch, BatchTooLarge, DuplicateInBatch, UnknownTask, NotYourTask,
    NotSubmitted. Emits: TaskSettled per task."""
    coordinator = _operator_of(ctx, "Coordinator")
    _batch(list(batch), "task_id")
    tasks = []
    for item in batch:
        task = Tasks.get(ctx.state, item.task_id)
        ensure(task is not None, Error.UNKNOWN_TASK)
        assert task is not None
        ensure(task.coordinator == coordinator, Error.NOT_YOUR_TASK)
        ensure(task.status == "Submitted", Error.NOT_SUBMITTED)
        ensure(ctx.block_number <= task.deadline, Error.DEADLINE_PASSED)
        tasks.append(task)
    for item, task in zip(batch, tasks, strict=True):
        _finalize(ctx, item.task_id, task, "Accepted" if item.accept else "Rejected")


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


@SPEC.call(
    3,
    weight=COMMIT_WEIGHT,
    args=[("task_id", H256, "H256"), ("witnesses", Vec(H256, MAX_WITNESSES), "BoundedVec<H256>")],
)
def report_invalid_result(ctx: Ctx, task_id: bytes, witnesses: list[bytes]) -> None:
    """Report the miner of `task_id` (signed by the committing coordinator's operator) with the
    agreeing results of other miners on the same spec and device class as evidence. Opens an
    InvalidResult offence (slashed after SlashDeferDuration unless cancelled); the task is
    rejected if still open. Errors: NotCoordinator, BadEvidence, Slashing.AlreadyReported.
    Emits: InvalidResultReported."""
    coordinator = _operator_of(ctx, "Coordinator")
    ensure(
        is_invalid_evidence(ctx.state, coordinator, task_id, list(witnesses)), Error.BAD_EVIDENCE
    )
    task = Tasks.get(ctx.state, task_id)
    assert task is not None
    evidence = task_id  # one offence per result, whatever witnesses are shown
    oid = slashing.report(ctx, task.miner, coordinator, "InvalidResult", evidence)
    if task.status == "Submitted":
        _finalize(ctx, task_id, task, "Rejected")
    ctx.emit(InvalidResultReported(task_id, task.miner, oid))


@SPEC.hook("on_initialize")
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
            if task is None or task.status not in ("Committed", "Submitted"):
                Deadlines.remove(ctx.state, block, task_id)
            else:
                _finalize(
                    ctx, task_id, task, "Accepted" if task.status == "Submitted" else "Missed"
                )
            budget -= 1
        if next(Deadlines.iter_prefix(ctx.state, block), None) is not None:
            break  # budget spent inside this block's deadlines: resume here next block
        block += 1
        scanned += 1
    NextDeadline.put(ctx.state, block)
