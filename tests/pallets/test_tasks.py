"""Tasks: commit/submit/settle batches (all or nothing), every error path, deadline processing in
on_initialize (auto-accept, missed, bounded with carry-over), work credited to Rewards, MinerStats,
invalid-result evidence rules and reports that become deferred slashes."""

from __future__ import annotations

from typing import Any

import pytest

from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.rewards.pallet import WorkCredited
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import Error as SlashingError
from pallets.slashing.pallet import OffenceReported, OffenderSlashed, UnappliedSlash
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import (
    Deadlines,
    Error,
    InvalidResultReported,
    MinerStats,
    ResultCommit,
    ResultSubmitted,
    Settlement,
    Stats,
    Task,
    TaskCommit,
    TaskCommitted,
    Tasks,
    TaskSettled,
)
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, EVE, MockRuntime
from tests.pallets.test_staking import (
    CAI,
    FERDIE,
    MIN_MINER,
    OP1,
    OP2,
    OP3,
    OP4,
    OP5,
    check_economy,
    eco,
    ledger,
    of_type,
    reg_of,
    register_coordinator,
    register_miner,
    run_to_block,
)

__all__ = ["eco"]  # the fixture

OP6 = bytes([0x16]) * 32
GHOST = bytes([0x77]) * 32  # neither staker nor operator

# Coordinators ALICE (operator OP1) and BOB (OP2); miners CHARLIE (OP3), DAVE (OP4), EVE (OP5),
# FERDIE (OP6).
C_OP = {ALICE: OP1, BOB: OP2}
M_OP = {CHARLIE: OP3, DAVE: OP4, EVE: OP5, FERDIE: OP6}

SPEC_A = b"\xa1" * 32
SPEC_B = b"\xb2" * 32
GOOD = b"\x60" * 32
BAD = b"\xbd" * 32
OTHER = b"\x07" * 32
D1 = b"\xd1" * 32  # device-class fingerprints
D2 = b"\xd2" * 32


def tid(name: str) -> bytes:
    return name.encode().ljust(32, b"\x00")


def tc(
    name: str,
    miner: bytes = CHARLIE,
    deadline: int = 11,
    spec: bytes = SPEC_A,
    audit_of: str | None = None,
) -> TaskCommit:
    return TaskCommit(tid(name), spec, miner, deadline, None if audit_of is None else tid(audit_of))


def rc(name: str, result: bytes = GOOD, device: bytes = D1) -> ResultCommit:
    return ResultCommit(tid(name), result, device)


def commit(m: MockRuntime, *items: TaskCommit, coordinator: bytes = ALICE) -> None:
    m.dispatch(C_OP[coordinator], "Tasks", "commit_tasks", batch=list(items))


def submit(m: MockRuntime, miner: bytes, *items: ResultCommit) -> None:
    m.dispatch(M_OP[miner], "Tasks", "submit_results", batch=list(items))


def settle(m: MockRuntime, *items: tuple[str, bool], coordinator: bytes = ALICE) -> None:
    batch = [Settlement(tid(n), accept) for n, accept in items]
    m.dispatch(C_OP[coordinator], "Tasks", "settle_tasks", batch=batch)


def task(m: MockRuntime, name: str) -> Task:
    t = Tasks.get(m.state, tid(name))
    assert t is not None
    return t


def stats(m: MockRuntime, miner: bytes) -> MinerStats:
    return Stats.get(m.state, miner)


def deadline_open(m: MockRuntime, name: str) -> bool:
    return Deadlines.get(m.state, task(m, name).deadline, tid(name)) is not None


def miner_work(m: MockRuntime, who: bytes, era: int = 0) -> int:
    return rewards.MinerWork.get(m.state, era, who) or 0


def coordinator_work(m: MockRuntime, who: bytes, era: int = 0) -> int:
    return rewards.CoordinatorWork.get(m.state, era, who) or 0


@pytest.fixture
def net(eco: MockRuntime) -> MockRuntime:
    """Two active coordinators and four active miners (each with its own operator), at block 1."""
    for who, op in C_OP.items():
        register_coordinator(eco, who, op)
    for who, op in M_OP.items():
        register_miner(eco, who, op)
    return eco


# ---- commit_tasks --------------------------------------------------------------------------------


def test_commit_tasks_stores_tasks_deadlines_and_stats(net: MockRuntime) -> None:
    net.run_to_block(3)
    commit(net, tc("t1", CHARLIE, 8), tc("t2", DAVE, 9, SPEC_B))
    assert net.events() == [
        TaskCommitted(tid("t1"), ALICE, CHARLIE, 8),
        TaskCommitted(tid("t2"), ALICE, DAVE, 9),
    ]
    assert task(net, "t1") == Task(ALICE, CHARLIE, SPEC_A, 8, None, 3, "Committed")
    assert task(net, "t2") == Task(ALICE, DAVE, SPEC_B, 9, None, 3, "Committed")
    t1 = task(net, "t1")
    assert (t1.result_hash, t1.device_hash, t1.submitted_at, t1.settled_at) == (None,) * 4
    assert deadline_open(net, "t1")
    assert deadline_open(net, "t2")
    assert stats(net, CHARLIE) == MinerStats(assigned=1)
    assert stats(net, DAVE) == MinerStats(assigned=1)
    assert stats(net, EVE) == MinerStats()


def test_commit_tasks_audit_copy_of_stored_task(net: MockRuntime) -> None:
    commit(net, tc("orig", CHARLIE))
    commit(net, tc("audit", DAVE, audit_of="orig"))
    assert task(net, "audit").audit_of == tid("orig")
    assert task(net, "audit").coordinator == ALICE


@pytest.mark.parametrize("audit_first", [False, True])
def test_commit_tasks_audit_copy_of_task_in_same_batch(net: MockRuntime, audit_first: bool) -> None:
    items = [tc("orig", CHARLIE), tc("audit", DAVE, audit_of="orig")]
    commit(net, *(reversed(items) if audit_first else items))
    assert task(net, "audit").audit_of == tid("orig")
    assert task(net, "orig").audit_of is None


def test_commit_tasks_deadline_bounds_are_inclusive_of_max(net: MockRuntime) -> None:
    net.run_to_block(5)
    commit(net, tc("next", deadline=6), tc("far", deadline=5 + tasks.MAX_DEADLINE_BLOCKS))
    assert task(net, "far").deadline == 5 + tasks.MAX_DEADLINE_BLOCKS


def test_commit_tasks_same_miner_many_tasks_counts_each(net: MockRuntime) -> None:
    commit(net, *(tc(f"t{i}", CHARLIE) for i in range(5)))
    assert stats(net, CHARLIE) == MinerStats(assigned=5)


@pytest.mark.parametrize("signer", [OP3, GHOST, ALICE], ids=["miner-operator", "random", "staker"])
def test_commit_tasks_not_coordinator(net: MockRuntime, signer: bytes) -> None:
    net.assert_noop(signer, "Tasks", "commit_tasks", Error.NOT_COORDINATOR, batch=[tc("t")])


def test_commit_tasks_unsigned_is_bad_origin(net: MockRuntime) -> None:
    net.assert_noop("root", "Tasks", "commit_tasks", "BadOrigin", batch=[tc("t")])


def test_commit_tasks_old_operator_after_rotation_is_not_coordinator(net: MockRuntime) -> None:
    new_op = bytes([0x21]) * 32
    net.dispatch(ALICE, "Registry", "set_operator", operator=new_op)
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.NOT_COORDINATOR, batch=[tc("t")])
    net.dispatch(new_op, "Tasks", "commit_tasks", batch=[tc("t")])
    assert task(net, "t").coordinator == ALICE  # the staker, not the operator


@pytest.mark.parametrize("how", ["inactive", "suspended"])
def test_commit_tasks_coordinator_inactive(net: MockRuntime, how: str) -> None:
    if how == "inactive":
        net.dispatch(ALICE, "Staking", "unbond", value=CAI)  # own stake under the minimum
    else:
        registry.suspend(net.ctx("root", []), ALICE)
    assert reg_of(net, ALICE).status == how.capitalize()
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.COORDINATOR_INACTIVE, batch=[tc("t")])


def test_commit_tasks_empty_batch(net: MockRuntime) -> None:
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.EMPTY_BATCH, batch=[])


def test_commit_tasks_batch_too_large(net: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "MAX_BATCH", 2)
    batch = [tc(f"t{i}") for i in range(3)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.BATCH_TOO_LARGE, batch=batch)
    commit(net, *batch[:2])  # exactly MaxBatch is fine
    assert stats(net, CHARLIE).assigned == 2


def test_commit_tasks_duplicate_in_batch(net: MockRuntime) -> None:
    batch = [tc("t", CHARLIE), tc("u"), tc("t", DAVE)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.DUPLICATE_IN_BATCH, batch=batch)


@pytest.mark.parametrize("by", [ALICE, BOB])
def test_commit_tasks_task_exists(net: MockRuntime, by: bytes) -> None:
    commit(net, tc("t"))
    net.assert_noop(C_OP[by], "Tasks", "commit_tasks", Error.TASK_EXISTS, batch=[tc("t", DAVE)])


@pytest.mark.parametrize(
    "case", ["unregistered", "coordinator", "operator", "suspended", "inactive", "deregistered"]
)
def test_commit_tasks_miner_inactive(net: MockRuntime, case: str) -> None:
    miner = {"unregistered": GHOST, "coordinator": BOB, "operator": OP4}.get(case, DAVE)
    if case == "suspended":
        registry.suspend(net.ctx("root", []), DAVE)
    elif case == "inactive":
        net.dispatch(DAVE, "Staking", "unbond", value=CAI)
        assert reg_of(net, DAVE).status == "Inactive"
    elif case == "deregistered":
        net.dispatch(DAVE, "Registry", "deregister")
    batch = [tc("ok", CHARLIE), tc("t", miner)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.MINER_INACTIVE, batch=batch)


def test_commit_tasks_miner_active_again_after_rebond(net: MockRuntime) -> None:
    net.dispatch(DAVE, "Staking", "unbond", value=CAI)
    net.dispatch(DAVE, "Staking", "rebond", value=CAI)
    commit(net, tc("t", DAVE))
    assert task(net, "t").miner == DAVE


@pytest.mark.parametrize(
    "deadline", [4, 5, 5 + tasks.MAX_DEADLINE_BLOCKS + 1], ids=["past", "now", "too-far"]
)
def test_commit_tasks_bad_deadline(net: MockRuntime, deadline: int) -> None:
    net.run_to_block(5)
    batch = [tc("ok", deadline=6), tc("t", deadline=deadline)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.BAD_DEADLINE, batch=batch)


@pytest.mark.parametrize("case", ["unknown", "other-coordinator", "other-spec", "batch-other-spec"])
def test_commit_tasks_bad_audit(net: MockRuntime, case: str) -> None:
    commit(net, tc("mine", CHARLIE))
    commit(net, tc("theirs", CHARLIE), coordinator=BOB)
    batch = {
        "unknown": [tc("a", DAVE, audit_of="nope")],
        "other-coordinator": [tc("a", DAVE, audit_of="theirs")],
        "other-spec": [tc("a", DAVE, spec=SPEC_B, audit_of="mine")],
        "batch-other-spec": [tc("o", CHARLIE), tc("a", DAVE, spec=SPEC_B, audit_of="o")],
    }[case]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.BAD_AUDIT, batch=batch)


def test_commit_tasks_audit_of_itself_is_bad_audit(net: MockRuntime) -> None:
    net.assert_noop(
        OP1, "Tasks", "commit_tasks", Error.BAD_AUDIT, batch=[tc("self", audit_of="self")]
    )


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (tc("dup"), Error.TASK_EXISTS),
        (tc("x", GHOST), Error.MINER_INACTIVE),
        (tc("x", deadline=1), Error.BAD_DEADLINE),
        (tc("x", audit_of="nope"), Error.BAD_AUDIT),
    ],
)
def test_commit_tasks_one_bad_item_writes_nothing(
    net: MockRuntime, bad: TaskCommit, error: Error
) -> None:
    commit(net, tc("dup"))
    before = stats(net, CHARLIE)
    batch = [tc("g1", DAVE), tc("g2", EVE), bad, tc("g3", FERDIE)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", error, batch=batch)
    assert all(Tasks.get(net.state, tid(n)) is None for n in ("g1", "g2", "g3"))
    assert stats(net, DAVE) == MinerStats()
    assert stats(net, CHARLIE) == before


# ---- submit_results ------------------------------------------------------------------------------


def test_submit_results_stores_result_and_stats(net: MockRuntime) -> None:
    commit(net, tc("t1"), tc("t2"), tc("t3"))
    net.run_to_block(4)
    submit(net, CHARLIE, rc("t1", GOOD, D1), rc("t2", BAD, D2))
    assert net.events() == [
        ResultSubmitted(tid("t1"), CHARLIE, GOOD),
        ResultSubmitted(tid("t2"), CHARLIE, BAD),
    ]
    assert task(net, "t1") == Task(ALICE, CHARLIE, SPEC_A, 11, None, 1, "Submitted", GOOD, D1, 4)
    assert task(net, "t2").device_hash == D2
    assert task(net, "t2").settled_at is None
    assert task(net, "t3").status == "Committed"
    assert deadline_open(net, "t1")  # still closed by settle or the deadline
    assert stats(net, CHARLIE) == MinerStats(assigned=3, submitted=2)


def test_submit_results_at_deadline_block_succeeds(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=7))
    net.run_to_block(7)
    submit(net, CHARLIE, rc("t"))
    assert task(net, "t").submitted_at == 7


def test_submit_results_by_inactive_miner_is_allowed(net: MockRuntime) -> None:
    commit(net, tc("t"))
    net.dispatch(CHARLIE, "Staking", "unbond", value=CAI)
    submit(net, CHARLIE, rc("t"))
    assert task(net, "t").status == "Submitted"


@pytest.mark.parametrize(
    "signer", [OP1, GHOST, CHARLIE], ids=["coord-operator", "random", "staker"]
)
def test_submit_results_not_miner(net: MockRuntime, signer: bytes) -> None:
    commit(net, tc("t"))
    net.assert_noop(signer, "Tasks", "submit_results", Error.NOT_MINER, batch=[rc("t")])


def test_submit_results_empty_batch(net: MockRuntime) -> None:
    net.assert_noop(OP3, "Tasks", "submit_results", Error.EMPTY_BATCH, batch=[])


def test_submit_results_batch_too_large(net: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    commit(net, *(tc(f"t{i}") for i in range(3)))
    monkeypatch.setattr(tasks, "MAX_BATCH", 2)
    batch = [rc(f"t{i}") for i in range(3)]
    net.assert_noop(OP3, "Tasks", "submit_results", Error.BATCH_TOO_LARGE, batch=batch)


def test_submit_results_duplicate_in_batch(net: MockRuntime) -> None:
    commit(net, tc("t"))
    batch = [rc("t", GOOD), rc("t", BAD)]
    net.assert_noop(OP3, "Tasks", "submit_results", Error.DUPLICATE_IN_BATCH, batch=batch)


def test_submit_results_unknown_task(net: MockRuntime) -> None:
    net.assert_noop(OP3, "Tasks", "submit_results", Error.UNKNOWN_TASK, batch=[rc("t")])


def test_submit_results_not_assigned(net: MockRuntime) -> None:
    commit(net, tc("t", CHARLIE))
    net.assert_noop(OP4, "Tasks", "submit_results", Error.NOT_ASSIGNED, batch=[rc("t")])


@pytest.mark.parametrize("state", ["submitted", "accepted", "rejected"])
def test_submit_results_already_submitted(net: MockRuntime, state: str) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    if state != "submitted":
        settle(net, ("t", state == "accepted"))
    net.assert_noop(OP3, "Tasks", "submit_results", Error.ALREADY_SUBMITTED, batch=[rc("t", OTHER)])


def test_submit_results_missed_task_is_already_submitted(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=3))
    run_to_block(net, 4)
    assert task(net, "t").status == "Missed"
    net.assert_noop(OP3, "Tasks", "submit_results", Error.ALREADY_SUBMITTED, batch=[rc("t")])


def test_submit_results_deadline_passed(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=7))
    net.run_to_block(8)  # hooks not run: the deadline is still open
    net.assert_noop(OP3, "Tasks", "submit_results", Error.DEADLINE_PASSED, batch=[rc("t")])


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (rc("nope"), Error.UNKNOWN_TASK),
        (rc("dave"), Error.NOT_ASSIGNED),
        (rc("done"), Error.ALREADY_SUBMITTED),
        (rc("soon"), Error.DEADLINE_PASSED),
    ],
)
def test_submit_results_one_bad_item_writes_nothing(
    net: MockRuntime, bad: ResultCommit, error: Error
) -> None:
    commit(net, tc("a"), tc("b"), tc("done"), tc("dave", DAVE), tc("soon", deadline=3))
    submit(net, CHARLIE, rc("done"))
    net.run_to_block(4)
    net.assert_noop(OP3, "Tasks", "submit_results", error, batch=[rc("a"), bad, rc("b")])
    assert task(net, "a").status == "Committed"
    assert task(net, "b").status == "Committed"
    assert stats(net, CHARLIE).submitted == 1


# ---- settle_tasks --------------------------------------------------------------------------------


def test_settle_tasks_accept_credits_work_and_closes_deadline(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    net.run_to_block(6)
    settle(net, ("t", True))
    assert net.events() == [
        WorkCredited(CHARLIE, "Miner", 1, 0),
        WorkCredited(ALICE, "Coordinator", 1, 0),
        TaskSettled(tid("t"), "Accepted"),
    ]
    t = task(net, "t")
    assert (t.status, t.settled_at, t.submitted_at, t.result_hash) == ("Accepted", 6, 1, GOOD)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)
    assert (miner_work(net, CHARLIE), coordinator_work(net, ALICE)) == (1, 1)
    assert rewards.EraTotals.get(net.state, 0) == rewards.EraTotal(1, 1)


def test_settle_tasks_reject_credits_nothing(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    net.run_to_block(6)
    settle(net, ("t", False))
    assert net.events() == [TaskSettled(tid("t"), "Rejected")]
    t = task(net, "t")
    assert (t.status, t.settled_at) == ("Rejected", 6)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, rejected=1)
    assert (miner_work(net, CHARLIE), coordinator_work(net, ALICE)) == (0, 0)


def test_settle_tasks_mixed_batch(net: MockRuntime) -> None:
    commit(net, tc("a", CHARLIE), tc("b", DAVE), tc("c", CHARLIE))
    submit(net, CHARLIE, rc("a"), rc("c"))
    submit(net, DAVE, rc("b"))
    settle(net, ("a", True), ("b", False), ("c", True))
    assert of_type(net.events(), TaskSettled) == [
        TaskSettled(tid("a"), "Accepted"),
        TaskSettled(tid("b"), "Rejected"),
        TaskSettled(tid("c"), "Accepted"),
    ]
    assert stats(net, CHARLIE) == MinerStats(assigned=2, submitted=2, accepted=2)
    assert stats(net, DAVE) == MinerStats(assigned=1, submitted=1, rejected=1)
    assert (miner_work(net, CHARLIE), miner_work(net, DAVE), coordinator_work(net, ALICE)) == (
        2,
        0,
        2,
    )


def test_settle_tasks_by_rotated_operator(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    new_op = bytes([0x21]) * 32
    net.dispatch(ALICE, "Registry", "set_operator", operator=new_op)
    batch = [Settlement(tid("t"), True)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.NOT_COORDINATOR, batch=batch)
    net.dispatch(new_op, "Tasks", "settle_tasks", batch=batch)
    assert task(net, "t").status == "Accepted"


@pytest.mark.parametrize("signer", [OP3, GHOST, ALICE], ids=["miner-operator", "random", "staker"])
def test_settle_tasks_not_coordinator(net: MockRuntime, signer: bytes) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [Settlement(tid("t"), True)]
    net.assert_noop(signer, "Tasks", "settle_tasks", Error.NOT_COORDINATOR, batch=batch)


def test_settle_tasks_empty_batch(net: MockRuntime) -> None:
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.EMPTY_BATCH, batch=[])


def test_settle_tasks_batch_too_large(net: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    commit(net, *(tc(f"t{i}") for i in range(3)))
    submit(net, CHARLIE, *(rc(f"t{i}") for i in range(3)))
    monkeypatch.setattr(tasks, "MAX_BATCH", 2)
    batch = [Settlement(tid(f"t{i}"), True) for i in range(3)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.BATCH_TOO_LARGE, batch=batch)


def test_settle_tasks_duplicate_in_batch(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [Settlement(tid("t"), True), Settlement(tid("t"), False)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.DUPLICATE_IN_BATCH, batch=batch)


def test_settle_tasks_unknown_task(net: MockRuntime) -> None:
    batch = [Settlement(tid("t"), True)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.UNKNOWN_TASK, batch=batch)


def test_settle_tasks_not_your_task(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [Settlement(tid("t"), True)]
    net.assert_noop(OP2, "Tasks", "settle_tasks", Error.NOT_YOUR_TASK, batch=batch)


@pytest.mark.parametrize("state", ["committed", "accepted", "rejected", "missed"])
def test_settle_tasks_not_submitted(net: MockRuntime, state: str) -> None:
    commit(net, tc("t", deadline=3))
    if state in ("accepted", "rejected"):
        submit(net, CHARLIE, rc("t"))
        settle(net, ("t", state == "accepted"))
    elif state == "missed":
        run_to_block(net, 4)
    assert task(net, "t").status == state.capitalize()
    batch = [Settlement(tid("t"), True)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.NOT_SUBMITTED, batch=batch)


@pytest.mark.parametrize(
    ("bad", "error"),
    [("nope", Error.UNKNOWN_TASK), ("bobs", Error.NOT_YOUR_TASK), ("open", Error.NOT_SUBMITTED)],
)
def test_settle_tasks_one_bad_item_writes_nothing(net: MockRuntime, bad: str, error: Error) -> None:
    commit(net, tc("a"), tc("b"), tc("open"))
    commit(net, tc("bobs", DAVE), coordinator=BOB)
    submit(net, CHARLIE, rc("a"), rc("b"))
    submit(net, DAVE, rc("bobs"))
    batch = [Settlement(tid("a"), True), Settlement(tid(bad), True), Settlement(tid("b"), False)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", error, batch=batch)
    assert task(net, "a").status == "Submitted"
    assert task(net, "b").status == "Submitted"
    assert miner_work(net, CHARLIE) == 0


# ---- on_initialize (deadlines) -------------------------------------------------------------------


def test_on_initialize_accepts_submitted_after_deadline(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    submit(net, CHARLIE, rc("t"))
    assert of_type(run_to_block(net, 5), TaskSettled) == []  # the deadline block itself is open
    events = run_to_block(net, 6)
    assert of_type(events, TaskSettled) == [TaskSettled(tid("t"), "Accepted")]
    assert of_type(events, WorkCredited) == [
        WorkCredited(CHARLIE, "Miner", 1, 0),
        WorkCredited(ALICE, "Coordinator", 1, 0),
    ]
    t = task(net, "t")
    assert (t.status, t.settled_at) == ("Accepted", 6)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)
    assert (miner_work(net, CHARLIE), coordinator_work(net, ALICE)) == (1, 1)


def test_on_initialize_records_missed(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    events = run_to_block(net, 6)
    assert of_type(events, TaskSettled) == [TaskSettled(tid("t"), "Missed")]
    assert of_type(events, WorkCredited) == []
    t = task(net, "t")
    assert (t.status, t.settled_at, t.result_hash) == ("Missed", 6, None)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, missed=1)
    assert miner_work(net, CHARLIE) == 0


def test_on_initialize_work_credited_in_current_era(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=12))
    submit(net, CHARLIE, rc("t"))
    run_to_block(net, 13)  # era 1 started at block 10
    assert task(net, "t").status == "Accepted"
    assert (miner_work(net, CHARLIE, 1), coordinator_work(net, ALICE, 1)) == (1, 1)
    assert miner_work(net, CHARLIE, 0) == 0


def test_on_initialize_ignores_settled_and_future_tasks(net: MockRuntime) -> None:
    commit(net, tc("settled", deadline=5), tc("later", deadline=9))
    submit(net, CHARLIE, rc("settled"))
    settle(net, ("settled", False))
    events = run_to_block(net, 8)
    assert of_type(events, TaskSettled) == []
    assert task(net, "settled").status == "Rejected"
    assert task(net, "later").status == "Committed"
    assert stats(net, CHARLIE) == MinerStats(assigned=2, submitted=1, rejected=1)


def test_on_initialize_removes_stale_deadline_entries(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    submit(net, CHARLIE, rc("t"))
    settle(net, ("t", True))
    Deadlines.put(net.state, 5, tid("t"), True)  # a leftover entry for a final task
    Deadlines.put(net.state, 5, tid("ghost"), True)  # and one for no task at all
    events = run_to_block(net, 6, check=False)  # the invariants hold again once they are gone
    assert of_type(events, TaskSettled) == []
    assert list(net.state.iterate(Deadlines.prefix)) == []
    assert task(net, "t").settled_at == 1


def test_on_initialize_bounded_per_block_with_carry_over(
    net: MockRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "MAX_EXPIRIES_PER_BLOCK", 2)
    commit(net, *(tc(f"t{i}", deadline=5) for i in range(5)))
    submit(net, CHARLIE, rc("t0"), rc("t1"))
    settled_per_block = []
    for block in (6, 7, 8, 9):
        settled_per_block.append(len(of_type(run_to_block(net, block), TaskSettled)))
    assert settled_per_block == [2, 2, 1, 0]
    assert [task(net, f"t{i}").status for i in range(5)] == ["Accepted"] * 2 + ["Missed"] * 3
    assert sorted(task(net, f"t{i}").settled_at for i in range(5)) == [6, 6, 7, 7, 8]
    assert stats(net, CHARLIE) == MinerStats(assigned=5, submitted=2, accepted=2, missed=3)
    assert list(net.state.iterate(Deadlines.prefix)) == []


def test_on_initialize_carry_over_closes_oldest_deadline_first(
    net: MockRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "MAX_EXPIRIES_PER_BLOCK", 1)
    commit(net, tc("old1", deadline=6), tc("old2", deadline=6), tc("new", deadline=7))
    run_to_block(net, 7)  # one of the two deadline-6 tasks closes; the other carries over
    events = run_to_block(net, 8)  # deadline-6 (older) and deadline-7 tasks are both due
    closed = of_type(events, TaskSettled)
    assert len(closed) == 1
    assert closed[0].task_id != tid("new")


# ---- report_invalid_result -----------------------------------------------------------------------

FAMILY = {  # name: (coordinator, miner, spec, audit_of)
    "O": (ALICE, CHARLIE, SPEC_A, None),  # the original
    "A1": (ALICE, DAVE, SPEC_A, "O"),  # audit copies of O
    "A2": (ALICE, EVE, SPEC_A, "O"),
    "A3": (ALICE, FERDIE, SPEC_A, "O"),
    "A4": (ALICE, DAVE, SPEC_A, "O"),  # a second copy for DAVE
    "A5": (ALICE, CHARLIE, SPEC_A, "O"),  # a copy for the offender's own miner
    "P": (ALICE, DAVE, SPEC_A, None),  # same spec, another original (not in O's family)
    "R": (ALICE, DAVE, SPEC_B, None),  # another spec
    "Q": (BOB, DAVE, SPEC_A, None),  # another coordinator
}
DEFAULT_RESULTS: dict[str, tuple[bytes, bytes] | None] = {
    "O": (BAD, D1),
    **{name: (GOOD, D1) for name in FAMILY if name != "O"},
}


def family(m: MockRuntime, **results: tuple[bytes, bytes] | None) -> None:
    """Commit FAMILY and submit each task's (result, device) (None: left unsubmitted)."""
    for coordinator in (ALICE, BOB):
        mine = [(n, f) for n, f in FAMILY.items() if f[0] == coordinator]
        commit(m, *(tc(n, f[1], 20, f[2], f[3]) for n, f in mine), coordinator=coordinator)
    outcome = {**DEFAULT_RESULTS, **results}
    for miner in M_OP:
        batch = [
            rc(n, *r)
            for n, (_, who, _, _) in FAMILY.items()
            if who == miner and (r := outcome[n]) is not None
        ]
        if batch:
            submit(m, miner, *batch)


def report(m: MockRuntime, name: str, witnesses: list[str], signer: bytes = OP1) -> None:
    m.dispatch(
        signer,
        "Tasks",
        "report_invalid_result",
        task_id=tid(name),
        witnesses=[tid(w) for w in witnesses],
    )


def report_noop(
    m: MockRuntime, name: str, witnesses: list[str], error: Any, signer: bytes = OP1
) -> None:
    m.assert_noop(
        signer,
        "Tasks",
        "report_invalid_result",
        error,
        task_id=tid(name),
        witnesses=[tid(w) for w in witnesses],
    )


def test_report_invalid_result_opens_offence_and_rejects(net: MockRuntime) -> None:
    family(net)
    net.run_to_block(4)
    report(net, "O", ["A1"])
    oid = slashing.offence_id("InvalidResult", tid("O"))  # one offence per result
    apply_era = net.config.slashing.slash_defer_duration
    assert net.events() == [
        OffenceReported(CHARLIE, "InvalidResult", oid, apply_era),
        TaskSettled(tid("O"), "Rejected"),
        InvalidResultReported(tid("O"), CHARLIE, oid),
    ]
    assert slashing.UnappliedSlashes.get(net.state, apply_era) == [
        UnappliedSlash(
            CHARLIE, ALICE, "InvalidResult", oid, net.config.slashing.invalid_result_slash, []
        )
    ]
    assert slashing.Offences.get(net.state, oid) == 0
    t = task(net, "O")
    assert (t.status, t.settled_at) == ("Rejected", 4)
    assert not deadline_open(net, "O")
    assert stats(net, CHARLIE) == MinerStats(assigned=2, submitted=2, rejected=1)
    assert miner_work(net, CHARLIE) == 0


def test_report_invalid_result_evidence_id_ignores_witness_order(net: MockRuntime) -> None:
    family(net, O=(BAD, D2))
    report(net, "O", ["A2", "A1"])
    oid = slashing.offence_id("InvalidResult", tid("O"))  # one offence per result
    assert net.events()[-1] == InvalidResultReported(tid("O"), CHARLIE, oid)
    report_noop(net, "O", ["A1", "A2"], SlashingError.ALREADY_REPORTED)


def test_report_invalid_result_audit_copy_with_original_as_witness(net: MockRuntime) -> None:
    family(net, O=(GOOD, D1), A2=(BAD, D1))
    report(net, "A2", ["O"])
    assert net.events()[-1].offender == EVE
    assert task(net, "A2").status == "Rejected"
    assert task(net, "O").status == "Submitted"


def test_report_invalid_result_across_devices_with_two_witnesses(net: MockRuntime) -> None:
    family(net, O=(BAD, D2))
    report(net, "O", ["A1", "A2"])
    assert task(net, "O").status == "Rejected"


def test_report_invalid_result_on_settled_task_keeps_status(net: MockRuntime) -> None:
    family(net)
    settle(net, ("O", True))
    report(net, "O", ["A1"])
    assert of_type(net.events(), TaskSettled) == []
    assert task(net, "O").status == "Accepted"
    assert stats(net, CHARLIE).accepted == 1
    assert stats(net, CHARLIE).rejected == 0
    assert len(slashing.UnappliedSlashes.get(net.state, 1)) == 1


@pytest.mark.parametrize("signer", [OP3, GHOST, ALICE], ids=["miner-operator", "random", "staker"])
def test_report_invalid_result_not_coordinator(net: MockRuntime, signer: bytes) -> None:
    family(net)
    report_noop(net, "O", ["A1"], Error.NOT_COORDINATOR, signer=signer)


EVIDENCE_CASES: dict[str, tuple[str, list[str], dict[str, Any], bytes]] = {
    # case: (reported task, witnesses, result overrides, signer)
    "unknown-task": ("nope", ["A1"], {}, OP1),
    "no-witnesses": ("O", [], {}, OP1),
    "reported-without-result": ("O", ["A1"], {"O": None}, OP1),
    "reported-of-other-coordinator": ("O", ["A1"], {}, OP2),
    "unknown-witness": ("O", ["nope"], {}, OP1),
    "witness-without-result": ("O", ["A1"], {"A1": None}, OP1),
    "witness-of-other-coordinator": ("O", ["Q"], {}, OP1),
    "witness-of-other-spec": ("O", ["R"], {}, OP1),
    "witness-outside-audit-family": ("O", ["P"], {}, OP1),
    "witness-is-reported-task": ("O", ["O"], {}, OP1),
    "witnesses-disagree-on-hash": ("O", ["A1", "A2"], {"A2": (OTHER, D1)}, OP1),
    "witnesses-disagree-on-device": ("O", ["A1", "A2"], {"A2": (GOOD, D2)}, OP1),
    "witness-agrees-with-offender": ("O", ["A1"], {"A1": (BAD, D1)}, OP1),
    "witness-by-offenders-miner": ("O", ["A5"], {}, OP1),
    "witnesses-by-same-miner": ("O", ["A1", "A4"], {"O": (BAD, D2)}, OP1),
    "repeated-witness": ("O", ["A1", "A1"], {"O": (BAD, D2)}, OP1),
    "one-witness-other-device": ("O", ["A1"], {"O": (BAD, D2)}, OP1),
    "same-result-other-device": ("O", ["A1", "A2"], {"O": (GOOD, D2)}, OP1),
}


@pytest.mark.parametrize("case", list(EVIDENCE_CASES))
def test_report_invalid_result_bad_evidence(net: MockRuntime, case: str) -> None:
    name, witnesses, results, signer = EVIDENCE_CASES[case]
    family(net, **results)
    report_noop(net, name, witnesses, Error.BAD_EVIDENCE, signer=signer)
    assert slashing.UnappliedSlashes.get(net.state, 1) == []


def test_report_invalid_result_is_invalid_evidence_accepts_controls(net: MockRuntime) -> None:
    """The positive counterparts of the evidence cases (so each case above fails on its rule)."""
    family(net)
    coord = ALICE
    assert tasks.is_invalid_evidence(net.state, coord, tid("O"), [tid("A1")])
    assert tasks.is_invalid_evidence(net.state, coord, tid("O"), [tid("A1"), tid("A2")])
    assert tasks.is_invalid_evidence(net.state, coord, tid("O"), [tid("A1"), tid("A2"), tid("A3")])
    assert not tasks.is_invalid_evidence(net.state, BOB, tid("O"), [tid("A1")])


def test_report_invalid_result_second_report_already_reported(net: MockRuntime) -> None:
    family(net)
    report(net, "O", ["A1"])
    report_noop(net, "O", ["A1"], SlashingError.ALREADY_REPORTED)


def test_report_invalid_result_same_task_other_witnesses_already_reported(
    net: MockRuntime,
) -> None:
    family(net)
    report(net, "O", ["A1"])
    report_noop(net, "O", ["A2"], SlashingError.ALREADY_REPORTED)


# ---- full flow -----------------------------------------------------------------------------------


def test_report_invalid_result_full_flow_slashes_and_suspends_offender(net: MockRuntime) -> None:
    treasury = bytes(net.config.slashing.treasury)
    treasury_before = net.free(treasury)
    stake_before = ledger(net, CHARLIE).total  # type: ignore[union-attr]
    assert stake_before == MIN_MINER
    # commit an original and an audit copy; the two miners disagree
    net.run_to_block(2)
    commit(net, tc("O", CHARLIE, 30), tc("A1", DAVE, 30, audit_of="O"))
    submit(net, CHARLIE, rc("O", BAD, D1))
    submit(net, DAVE, rc("A1", GOOD, D1))
    # a third audit copy agrees with DAVE
    net.run_to_block(3)
    commit(net, tc("A2", EVE, 30, audit_of="O"))
    submit(net, EVE, rc("A2", GOOD, D1))
    report(net, "O", ["A1", "A2"])
    oid = net.events()[-1].offence_id
    assert task(net, "O").status == "Rejected"
    # nothing happens before the deferral window ends
    events = run_to_block(net, 9)
    assert of_type(events, OffenderSlashed) == []
    assert ledger(net, CHARLIE).total == stake_before  # type: ignore[union-attr]
    # era 1 starts at block 10: the deferred slash is applied
    events = run_to_block(net, 25)
    fraction = net.config.slashing.invalid_result_slash
    slashed = stake_before * fraction // 1_000_000_000
    fee = slashed * net.config.slashing.finder_fee // 1_000_000_000
    assert of_type(events, OffenderSlashed) == [OffenderSlashed(CHARLIE, slashed, 0, fee)]
    assert ledger(net, CHARLIE).total == stake_before - slashed  # type: ignore[union-attr]
    assert reg_of(net, CHARLIE).status == "Suspended"
    assert net.free(treasury) == treasury_before + slashed - fee
    assert slashing.SlashHistory.get(net.state, CHARLIE)[-1].own == slashed
    assert slashing.Offences.contains(net.state, oid)
    # the honest copies were accepted at their deadline; the offender can take no new task
    assert task(net, "A1").status == "Submitted"  # deadline 30 not reached yet
    run_to_block(net, 31)
    assert task(net, "A1").status == "Accepted"
    assert task(net, "A2").status == "Accepted"
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, rejected=1)
    assert stats(net, DAVE) == MinerStats(assigned=1, submitted=1, accepted=1)
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.MINER_INACTIVE, batch=[tc("n", CHARLIE)])
    check_economy(net)
