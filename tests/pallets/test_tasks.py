"""Tasks: commit/submit/settle batches (all or nothing), every error path, deadline processing in
on_initialize (auto-accept, missed, bounded with carry-over), work credited to Rewards, MinerStats,
invalid-result evidence rules and reports that become deferred slashes, and payments: where a
paid task's price goes in each outcome (TaskPaid, balances, issuance, emission credit) and the
pruning of settled tasks after RetentionBlocks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from chain.frame.common import PERBILL_ONE
from chain.hashing import blake2_256
from chain.taskproto import result_commitment
from pallets.balances.pallet import (
    BalanceStatus,
    Burned,
    Reserved,
    ReserveRepatriated,
    TotalIssuance,
    Unreserved,
)
from pallets.config import VerificationConfig
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.rewards.pallet import WorkCredited
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceReported
from pallets.system import pallet as system
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import (
    Check,
    Checks,
    Deadlines,
    Error,
    MinerStats,
    ResultCommit,
    ResultSubmitted,
    Reveal,
    Specs,
    Stats,
    Task,
    TaskCommit,
    TaskCommitted,
    TaskPaid,
    Tasks,
    TaskSettled,
)
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, EVE, MockRuntime, mock_config
from tests.pallets.test_staking import (
    CAI,
    ECONOMY_BALANCES,
    ERA_LENGTH,
    FERDIE,
    OP1,
    OP2,
    OP3,
    OP4,
    OP5,
    ledger,
    miner_info,
    next_era,
    of_type,
    reg_of,
    register_coordinator,
    register_miner,
    run_to_block,
)

OP6 = bytes([0x16]) * 32


def total_issuance(m: MockRuntime) -> int:
    return TotalIssuance.get(m.state)


GHOST = bytes([0x77]) * 32  # neither staker nor operator

# Coordinators ALICE (operator OP1) and BOB (OP2); miners CHARLIE (OP3), DAVE (OP4), EVE (OP5),
# FERDIE (OP6) and six more (EXTRA, operators 0x4N).
EXTRA = [bytes([0x30 + i]) * 32 for i in range(6)]
C_OP = {ALICE: OP1, BOB: OP2}
M_OP = {
    CHARLIE: OP3,
    DAVE: OP4,
    EVE: OP5,
    FERDIE: OP6,
    **{w: bytes([0x40 + i]) * 32 for i, w in enumerate(EXTRA)},
}

SPEC_A = b"\xa1" * 32
SPEC_B = b"\xb2" * 32
GOOD = b"\x60" * 32
BAD = b"\xbd" * 32
OTHER = b"\x07" * 32
D1 = b"\xd1" * 32  # device-class fingerprints
D2 = b"\xd2" * 32


def tid(name: str) -> bytes:
    return name.encode().ljust(32, b"\x00")


PRICE = CAI // 10  # what each test task pays (dev MinTaskPrice is 0.01 CAI)
OPERATOR_FUNDS = 1_000 * CAI  # each coordinator operator's balance: it escrows prices
DEPOSIT = mock_config().tasks.task_deposit
BURN = PRICE * mock_config().tasks.burn_share // PERBILL_ONE  # an unchecked accepted task's burn


def tc(
    name: str,
    miner: bytes = CHARLIE,
    deadline: int = 11,
    spec: bytes = SPEC_A,
    price: int = PRICE,
) -> TaskCommit:
    return TaskCommit(tid(name), spec, miner, deadline, price)


def rc(name: str, commitment: bytes = GOOD) -> ResultCommit:
    return ResultCommit(tid(name), commitment)


def commit(m: MockRuntime, *items: TaskCommit, coordinator: bytes = ALICE) -> None:
    m.dispatch(C_OP[coordinator], "Tasks", "commit_tasks", batch=list(items))


def submit(m: MockRuntime, miner: bytes, *items: ResultCommit) -> None:
    m.dispatch(M_OP[miner], "Tasks", "submit_results", batch=list(items))


def settle(m: MockRuntime, *names: str, coordinator: bytes = ALICE) -> None:
    m.dispatch(C_OP[coordinator], "Tasks", "settle_tasks", task_ids=[tid(n) for n in names])


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


def network(check_rate: int, **verification: Any) -> Iterator[MockRuntime]:
    """Two active coordinators and ten active miners (each with its own operator), at block 1,
    with the dev parameters but this check rate; the invariants are checked at teardown."""
    config = dataclasses.replace(
        mock_config(), verification=VerificationConfig(check_rate=check_rate, **verification)
    )
    funds = {**ECONOMY_BALANCES, **{w: 100_000 * CAI for w in EXTRA}}
    m = MockRuntime(config, {**funds, **{op: OPERATOR_FUNDS for op in C_OP.values()}}, None)
    for who, op in C_OP.items():
        register_coordinator(m, who, op)
    for who, op in M_OP.items():
        register_miner(m, who, op)
    yield m
    assert m.state.depth == 0
    m.runtime.try_state(m.state)


@pytest.fixture
def net() -> Iterator[MockRuntime]:
    """The network with checks off: the plain task lifecycle."""
    yield from network(0)


@pytest.fixture
def checked() -> Iterator[MockRuntime]:
    """The network where every settled result is checked."""
    yield from network(PERBILL_ONE)


# ---- commit_tasks --------------------------------------------------------------------------------


def test_commit_tasks_stores_tasks_deadlines_and_stats(net: MockRuntime) -> None:
    net.run_to_block(3)
    commit(net, tc("t1", CHARLIE, 8), tc("t2", DAVE, 9, SPEC_B))
    escrow = 2 * (PRICE + DEPOSIT)
    assert net.events() == [
        Reserved(OP1, escrow),
        TaskCommitted(tid("t1"), ALICE, CHARLIE, 8, PRICE),
        TaskCommitted(tid("t2"), ALICE, DAVE, 9, PRICE),
    ]
    paid = {"price": PRICE, "payer": OP1, "deposit": DEPOSIT}
    assert task(net, "t1") == Task(ALICE, CHARLIE, SPEC_A, 8, 3, "Committed", **paid)
    assert task(net, "t2") == Task(ALICE, DAVE, SPEC_B, 9, 3, "Committed", **paid)
    assert system.get_account(net.state, OP1).data.reserved == escrow
    t1 = task(net, "t1")
    assert (t1.commitment, t1.submitted_at, t1.settled_at, t1.outcome) == (
        None,
        None,
        None,
        "Unchecked",
    )
    assert deadline_open(net, "t1")
    assert deadline_open(net, "t2")
    assert stats(net, CHARLIE) == MinerStats(assigned=1)
    assert stats(net, DAVE) == MinerStats(assigned=1)
    assert stats(net, EVE) == MinerStats()


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
    net.dispatch(BOB, "Balances", "transfer_keep_alive", dest=("Id", new_op), value=CAI)
    net.dispatch(new_op, "Tasks", "commit_tasks", batch=[tc("t")])
    assert task(net, "t").coordinator == ALICE  # the staker, not the operator
    assert task(net, "t").payer == new_op  # who signed, and holds the escrow


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


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (tc("dup"), Error.TASK_EXISTS),
        (tc("x", GHOST), Error.MINER_INACTIVE),
        (tc("x", deadline=1), Error.BAD_DEADLINE),
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
    submit(net, CHARLIE, rc("t1", GOOD), rc("t2", BAD))
    assert net.events() == [
        ResultSubmitted(tid("t1"), CHARLIE, GOOD),
        ResultSubmitted(tid("t2"), CHARLIE, BAD),
    ]
    paid = {"price": PRICE, "payer": OP1, "deposit": DEPOSIT}
    assert task(net, "t1") == Task(
        ALICE, CHARLIE, SPEC_A, 11, 1, "Submitted", GOOD, 4, draw_at=5, **paid
    )
    assert task(net, "t2").commitment == BAD
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


@pytest.mark.parametrize("state", ["submitted", "accepted"])
def test_submit_results_already_submitted(net: MockRuntime, state: str) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    if state != "submitted":
        run_to_block(net, 2)
        settle(net, "t")
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
    run_to_block(net, 6)
    miner_free, issuance = net.free(CHARLIE), total_issuance(net)
    settle(net, "t")
    assert net.events() == [
        ReserveRepatriated(OP1, CHARLIE, PRICE - BURN, BalanceStatus.FREE),
        Burned(OP1, BURN),
        TaskPaid(tid("t"), CHARLIE, PRICE - BURN, BURN, 0, 0),
        WorkCredited(CHARLIE, "Miner", BURN, 0),
        WorkCredited(ALICE, "Coordinator", BURN, 0),
        TaskSettled(tid("t"), "Accepted", "Unchecked"),
    ]
    assert net.free(CHARLIE) == miner_free + PRICE - BURN
    assert total_issuance(net) == issuance - BURN
    t = task(net, "t")
    assert (t.status, t.settled_at, t.submitted_at, t.commitment) == ("Accepted", 6, 1, GOOD)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)
    assert (miner_work(net, CHARLIE), coordinator_work(net, ALICE)) == (BURN, BURN)
    assert rewards.EraTotals.get(net.state, 0) == rewards.EraTotal(BURN, BURN)


def test_settle_tasks_by_rotated_operator(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    new_op = bytes([0x21]) * 32
    net.dispatch(ALICE, "Registry", "set_operator", operator=new_op)
    batch = [tid("t")]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.NOT_COORDINATOR, task_ids=batch)
    run_to_block(net, 2)
    net.dispatch(new_op, "Tasks", "settle_tasks", task_ids=batch)
    assert task(net, "t").status == "Accepted"


@pytest.mark.parametrize("signer", [OP3, GHOST, ALICE], ids=["miner-operator", "random", "staker"])
def test_settle_tasks_not_coordinator(net: MockRuntime, signer: bytes) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [tid("t")]
    net.assert_noop(signer, "Tasks", "settle_tasks", Error.NOT_COORDINATOR, task_ids=batch)


def test_settle_tasks_empty_batch(net: MockRuntime) -> None:
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.EMPTY_BATCH, task_ids=[])


def test_settle_tasks_batch_too_large(net: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    commit(net, *(tc(f"t{i}") for i in range(3)))
    submit(net, CHARLIE, *(rc(f"t{i}") for i in range(3)))
    monkeypatch.setattr(tasks, "MAX_BATCH", 2)
    batch = [tid(f"t{i}") for i in range(3)]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.BATCH_TOO_LARGE, task_ids=batch)


def test_settle_tasks_duplicate_in_batch(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [tid("t"), tid("t")]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.DUPLICATE_IN_BATCH, task_ids=batch)


def test_settle_tasks_unknown_task(net: MockRuntime) -> None:
    batch = [tid("t")]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.UNKNOWN_TASK, task_ids=batch)


def test_settle_tasks_not_your_task(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    batch = [tid("t")]
    net.assert_noop(OP2, "Tasks", "settle_tasks", Error.NOT_YOUR_TASK, task_ids=batch)


@pytest.mark.parametrize("state", ["committed", "accepted", "missed"])
def test_settle_tasks_not_submitted(net: MockRuntime, state: str) -> None:
    commit(net, tc("t", deadline=3))
    if state == "accepted":
        submit(net, CHARLIE, rc("t"))
        run_to_block(net, 2)
        settle(net, "t")
    elif state == "missed":
        run_to_block(net, 4)
    assert task(net, "t").status == state.capitalize()
    batch = [tid("t")]
    net.assert_noop(OP1, "Tasks", "settle_tasks", Error.NOT_SUBMITTED, task_ids=batch)


@pytest.mark.parametrize(
    ("bad", "error"),
    [("nope", Error.UNKNOWN_TASK), ("bobs", Error.NOT_YOUR_TASK), ("open", Error.NOT_SUBMITTED)],
)
def test_settle_tasks_one_bad_item_writes_nothing(net: MockRuntime, bad: str, error: Error) -> None:
    commit(net, tc("a"), tc("b"), tc("open"))
    commit(net, tc("bobs", DAVE), coordinator=BOB)
    submit(net, CHARLIE, rc("a"), rc("b"))
    submit(net, DAVE, rc("bobs"))
    batch = [tid("a"), tid(bad), tid("b")]
    net.assert_noop(OP1, "Tasks", "settle_tasks", error, task_ids=batch)
    assert task(net, "a").status == "Submitted"
    assert task(net, "b").status == "Submitted"
    assert miner_work(net, CHARLIE) == 0


# ---- on_initialize (deadlines) -------------------------------------------------------------------


def test_on_initialize_accepts_submitted_after_deadline(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    submit(net, CHARLIE, rc("t"))
    assert of_type(run_to_block(net, 5), TaskSettled) == []  # the deadline block itself is open
    events = run_to_block(net, 6)
    assert of_type(events, TaskSettled) == [TaskSettled(tid("t"), "Accepted", "Unchecked")]
    assert of_type(events, WorkCredited) == [
        WorkCredited(CHARLIE, "Miner", BURN, 0),
        WorkCredited(ALICE, "Coordinator", BURN, 0),
    ]
    t = task(net, "t")
    assert (t.status, t.settled_at) == ("Accepted", 6)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)
    assert (miner_work(net, CHARLIE), coordinator_work(net, ALICE)) == (BURN, BURN)


def test_on_initialize_records_missed(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    events = run_to_block(net, 6)
    assert of_type(events, TaskSettled) == [TaskSettled(tid("t"), "Missed", "Unchecked")]
    assert of_type(events, WorkCredited) == []
    t = task(net, "t")
    assert (t.status, t.settled_at, t.commitment) == ("Missed", 6, None)
    assert not deadline_open(net, "t")
    assert stats(net, CHARLIE) == MinerStats(assigned=1, missed=1)
    assert miner_work(net, CHARLIE) == 0


def test_on_initialize_work_credited_in_current_era(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=12))
    submit(net, CHARLIE, rc("t"))
    run_to_block(net, 13)  # era 1 started at block 10
    assert task(net, "t").status == "Accepted"
    assert (miner_work(net, CHARLIE, 1), coordinator_work(net, ALICE, 1)) == (BURN, BURN)
    assert miner_work(net, CHARLIE, 0) == 0


def test_on_initialize_ignores_settled_and_future_tasks(net: MockRuntime) -> None:
    commit(net, tc("settled", deadline=5), tc("later", deadline=9))
    submit(net, CHARLIE, rc("settled"))
    run_to_block(net, 2)
    settle(net, "settled")
    events = run_to_block(net, 8)
    assert of_type(events, TaskSettled) == []
    assert task(net, "settled").status == "Accepted"
    assert task(net, "later").status == "Committed"
    assert stats(net, CHARLIE) == MinerStats(assigned=2, submitted=1, accepted=1)


def test_on_initialize_removes_stale_deadline_entries(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    submit(net, CHARLIE, rc("t"))
    run_to_block(net, 2)
    settle(net, "t")
    Deadlines.put(net.state, 5, tid("t"), True)  # a leftover entry for a final task
    Deadlines.put(net.state, 5, tid("ghost"), True)  # and one for no task at all
    events = run_to_block(net, 6, check=False)  # the invariants hold again once they are gone
    assert of_type(events, TaskSettled) == []
    assert list(net.state.iterate(Deadlines.prefix)) == []
    assert task(net, "t").settled_at == 2


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


# ---- the checked-work protocol -------------------------------------------------------------------

SPEC_JSON = b'{"model":"tiny","prompt":"a cuckoo","seed":7}'
SPEC_H = blake2_256(SPEC_JSON)
HONEST = Reveal(GOOD, D1, b"\x01sketch")
FAKE = Reveal(BAD, D1, b"\x01sketch")
GUESS = Reveal(OTHER, D1, b"\x01sketch")


def salt_of(who: bytes) -> bytes:
    return blake2_256(b"salt" + who)


def opening(who: bytes, name: str, reveal: Reveal) -> bytes:
    return result_commitment(
        who, tid(name), reveal.result_hash, reveal.device_hash, reveal.sketch, salt_of(who)
    )


def start(m: MockRuntime, name: str = "t", reveal: Reveal = HONEST, miner: bytes = CHARLIE) -> None:
    """Commit, submit (blind) and settle one task; with checks on, it is drawn for round 0."""
    commit(m, tc(name, miner, deadline=m.block_number + 100, spec=SPEC_H))
    submit(m, miner, rc(name, opening(miner, name, reveal)))
    run_to_block(m, m.block_number + 1)  # the draw
    if task(m, name).status == "Submitted":
        settle(m, name)


def check_of(m: MockRuntime, name: str = "t") -> Check:
    c = Checks.get(m.state, tid(name))
    assert c is not None
    return c


def drawn(m: MockRuntime, name: str = "t") -> list[bytes]:
    return [c.account for c in check_of(m, name).current()]


def play_round(
    m: MockRuntime,
    answers: dict[bytes, Reveal | None],
    name: str = "t",
    miner: bytes = CHARLIE,
    miner_reveal: Reveal | None = HONEST,
) -> None:
    """The current round: the spec is revealed if due, each drawn checker commits and reveals
    its answer (None: absent), the miner reveals (None: it hides)."""
    if check_of(m, name).phase == "SpecDue":
        m.dispatch(OP1, "Tasks", "reveal_spec", task_id=tid(name), spec=SPEC_JSON)
    for who in drawn(m, name):
        if answers.get(who) is not None:
            commitment = opening(who, name, answers[who])  # type: ignore[arg-type]
            m.dispatch(M_OP[who], "Tasks", "commit_check", task_id=tid(name), commitment=commitment)
    if check_of(m, name).phase == "Committing":  # an absent checker: wait out the window
        run_to_block(m, check_of(m, name).phase_ends + 1)
    assert check_of(m, name).phase == "Revealing"
    people = [(who, r) for who, r in answers.items() if r is not None]
    if miner_reveal is not None and check_of(m, name).miner_reveal is None:
        people.insert(0, (miner, miner_reveal))
    for who, r in people:
        m.dispatch(
            M_OP[who],
            "Tasks",
            "reveal_result",
            task_id=tid(name),
            result_hash=r.result_hash,
            device_hash=r.device_hash,
            sketch=r.sketch,
            salt=salt_of(who),
        )
    t = task(m, name)
    c = Checks.get(m.state, tid(name))
    if t.status == "Checking" and c is not None and c.phase == "Revealing":
        run_to_block(m, c.phase_ends + 1)  # someone did not reveal: the window closes the round


def offences(m: MockRuntime) -> list[tuple[bytes, str]]:
    return sorted(
        (s.offender, str(s.kind))
        for _, queue in slashing.UnappliedSlashes.iter(m.state)
        for s in queue
    )


def test_draw_is_uniform_at_the_check_rate() -> None:
    mix = blake2_256(b"some mix")
    ids = [blake2_256(i.to_bytes(4, "little")) for i in range(20_000)]
    hits = sum(tasks.is_drawn(mix, i, 100_000_000) for i in ids)
    print(f"drawn at p=0.1: {hits} of 20000")
    assert 1_880 <= hits <= 2_120  # 10% +- 6%
    assert not any(tasks.is_drawn(mix, i, 0) for i in ids[:1000])
    assert all(tasks.is_drawn(mix, i, PERBILL_ONE) for i in ids[:1000])
    other = blake2_256(b"another mix")  # another mix, another draw
    assert [tasks.is_drawn(mix, i, 500_000_000) for i in ids[:64]] != [
        tasks.is_drawn(other, i, 500_000_000) for i in ids[:64]
    ]


def test_pick_checkers_by_weight_without_replacement() -> None:
    cands = [(b"a" * 32, 1), (b"b" * 32, 3), (b"z" * 32, 0), (b"c" * 32, 6)]
    counts = {w: 0 for w, _ in cands}
    for i in range(3000):
        picked = tasks.pick_checkers(cands, blake2_256(i.to_bytes(4, "little")), 2)
        assert len(picked) == 2
        assert len(set(picked)) == 2
        assert b"z" * 32 not in picked
        counts[picked[0]] += 1
    print("first picks by weight 1:3:6 ->", [counts[w] for w, _ in cands if w != b"z" * 32])
    assert counts[b"a" * 32] < counts[b"b" * 32] < counts[b"c" * 32]
    assert 1500 <= counts[b"c" * 32] <= 2100  # 60%
    assert tasks.pick_checkers(cands, b"s", 9) == tasks.pick_checkers(cands, b"s", 9)  # pure
    assert len(tasks.pick_checkers(cands, b"s", 9)) == 3  # no more than the non-zero weights


def test_unchecked_result_is_accepted_without_check(net: MockRuntime) -> None:
    start(net)
    assert task(net, "t").status == "Accepted"
    assert task(net, "t").outcome == "Unchecked"
    assert Checks.get(net.state, tid("t")) is None


def test_checked_honest_result_is_verified_by_one_checker(checked: MockRuntime) -> None:
    start(checked)
    check = check_of(checked)
    assert (task(checked, "t").status, check.round, check.phase) == ("Checking", 0, "SpecDue")
    [checker] = drawn(checked)
    assert checker != CHARLIE
    assert checker in M_OP
    before = {w: checked.free(w) for w in (CHARLIE, checker, OP1)}
    play_round(checked, {checker: HONEST})
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Accepted", "Verified")
    assert Specs.get(checked.state, tid("t")) == SPEC_JSON
    # the burn share pays the checker instead of being burned: no emission credit
    assert checked.free(CHARLIE) - before[CHARLIE] == PRICE - BURN
    assert checked.free(checker) - before[checker] == BURN
    assert checked.free(OP1) == before[OP1]  # the escrow left its reserve, not its free balance
    assert (miner_work(checked, CHARLIE), miner_work(checked, checker)) == (0, 0)
    assert offences(checked) == []


def test_cheater_is_guilty_after_escalation_and_a_failed_appeal(checked: MockRuntime) -> None:
    before = {w: checked.free(w) for w in [*M_OP, OP1]}
    start(checked, reveal=FAKE)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    assert (check_of(checked).round, len(drawn(checked))) == (1, 3)  # escalated
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    assert check_of(checked).phase == "Appealable"
    assert task(checked, "t").status == "Checking"  # not final yet: the miner may appeal
    checked.dispatch(OP3, "Tasks", "appeal", task_id=tid("t"))
    assert (check_of(checked).round, len(drawn(checked))) == (2, 5)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Rejected", "Guilty")
    assert offences(checked) == [(CHARLIE, "InvalidResult")]
    checkers = [c.account for c in check_of(checked).checkers]
    assert len(set(checkers)) == 9
    assert CHARLIE not in checkers
    # the nine right checkers share the burn share; the payer gets the rest back
    assert all(checked.free(w) - before[w] == BURN // 9 for w in checkers)
    # the payer paid the fee (its rounding dust burned); its deposit stays reserved until pruning
    assert checked.free(OP1) - before[OP1] == -(BURN + DEPOSIT)
    assert checked.free(CHARLIE) == before[CHARLIE]
    assert all(miner_work(checked, w) == 0 for w in [*checkers, CHARLIE])


def test_guilty_verdict_stands_when_the_appeal_window_passes(checked: MockRuntime) -> None:
    start(checked, reveal=FAKE)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    run_to_block(checked, check_of(checked).phase_ends + 1)
    assert (task(checked, "t").status, task(checked, "t").outcome) == ("Rejected", "Guilty")
    assert offences(checked) == [(CHARLIE, "InvalidResult")]
    checked.assert_noop(OP3, "Tasks", "appeal", Error.NOT_CHECKING, task_id=tid("t"))


def test_miner_that_hides_its_result_is_guilty(checked: MockRuntime) -> None:
    start(checked, reveal=FAKE)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=None)
    assert (task(checked, "t").status, task(checked, "t").outcome) == ("Rejected", "Guilty")
    assert offences(checked) == [(CHARLIE, "InvalidResult")]


def test_lazy_checker_that_guesses_is_slashed_and_the_miner_upheld(checked: MockRuntime) -> None:
    start(checked)
    [lazy] = drawn(checked)
    play_round(checked, {lazy: GUESS})
    assert check_of(checked).round == 1
    play_round(checked, {w: HONEST for w in drawn(checked)})
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Accepted", "Upheld")
    assert offences(checked) == [(lazy, "CheckFault")]
    assert miner_work(checked, lazy) == 0
    assert miner_work(checked, CHARLIE) == 0  # checked: its burn share paid the checkers


def test_checker_cannot_open_a_copied_commitment(checked: MockRuntime) -> None:
    start(checked)
    [lazy] = drawn(checked)
    checked.dispatch(OP1, "Tasks", "reveal_spec", task_id=tid("t"), spec=SPEC_JSON)
    copied = task(checked, "t").commitment  # the miner's commitment, copied verbatim
    checked.dispatch(M_OP[lazy], "Tasks", "commit_check", task_id=tid("t"), commitment=copied)
    for who in (CHARLIE, lazy):  # even knowing the miner's values, it opens only for the miner
        args = dict(result_hash=GOOD, device_hash=D1, sketch=HONEST.sketch, salt=salt_of(CHARLIE))
        if who == lazy:
            checked.assert_noop(
                M_OP[lazy], "Tasks", "reveal_result", Error.BAD_REVEAL, task_id=tid("t"), **args
            )
        else:
            checked.dispatch(M_OP[who], "Tasks", "reveal_result", task_id=tid("t"), **args)
    run_to_block(checked, check_of(checked).phase_ends + 1)  # the copier never opens
    assert check_of(checked).round == 1
    play_round(checked, {w: HONEST for w in drawn(checked)})
    assert task(checked, "t").outcome == "Upheld"
    assert offences(checked) == [(lazy, "CheckFault")]


def test_absent_checker_is_slashed(checked: MockRuntime) -> None:
    start(checked)
    [absent] = drawn(checked)
    play_round(checked, {absent: None})
    play_round(checked, {w: HONEST for w in drawn(checked)})
    assert task(checked, "t").outcome == "Upheld"
    assert offences(checked) == [(absent, "CheckFault")]


def test_hostile_majority_is_overturned_on_appeal(checked: MockRuntime) -> None:
    """A coordinator's sybil miners happen to be drawn: the round-0 checker and two of the three
    round-1 checkers lie. The honest miner appeals; five fresh checkers uphold it, and every liar
    pays."""
    start(checked)
    liars = list(drawn(checked))
    play_round(checked, {liars[0]: GUESS})
    r1 = drawn(checked)
    liars += r1[:2]
    play_round(checked, {r1[0]: GUESS, r1[1]: GUESS, r1[2]: HONEST})
    assert check_of(checked).phase == "Appealable"
    checked.dispatch(OP3, "Tasks", "appeal", task_id=tid("t"))
    play_round(checked, {w: HONEST for w in drawn(checked)})
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Accepted", "Upheld")
    assert offences(checked) == sorted((w, "CheckFault") for w in liars)
    assert stats(checked, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)


def test_coordinator_dispute_of_a_correct_result_costs_the_coordinator(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=50, spec=SPEC_H))
    submit(net, CHARLIE, rc("t", opening(CHARLIE, "t", HONEST)))
    net.dispatch(OP1, "Tasks", "dispute_task", task_id=tid("t"))
    assert (check_of(net).round, check_of(net).disputed_by) == (1, ALICE)
    play_round(net, {w: HONEST for w in drawn(net)})
    t = task(net, "t")
    assert (t.status, t.outcome) == ("Accepted", "Upheld")
    assert offences(net) == [(ALICE, "FalseDispute")]
    assert task(net, "t").price == PRICE
    assert miner_work(net, CHARLIE) == 0  # checked: its burn share paid the checkers


def test_coordinator_dispute_of_a_fake_convicts_the_miner(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=50, spec=SPEC_H))
    submit(net, CHARLIE, rc("t", opening(CHARLIE, "t", FAKE)))
    net.dispatch(OP1, "Tasks", "dispute_task", task_id=tid("t"))
    play_round(net, {w: HONEST for w in drawn(net)}, miner_reveal=FAKE)
    run_to_block(net, check_of(net).phase_ends + 1)  # no appeal
    assert task(net, "t").outcome == "Guilty"
    assert offences(net) == [(CHARLIE, "InvalidResult")]


def test_withheld_spec_slashes_the_coordinator_and_accepts(checked: MockRuntime) -> None:
    start(checked)
    run_to_block(checked, check_of(checked).phase_ends + 1)
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Accepted", "Unchecked")
    assert offences(checked) == [(ALICE, "WithheldSpec")]
    assert stats(checked, CHARLIE) == MinerStats(assigned=1, submitted=1, accepted=1)


def test_settle_in_the_submission_block_waits_for_the_deadline(checked: MockRuntime) -> None:
    commit(checked, tc("t", deadline=9, spec=SPEC_H))
    submit(checked, CHARLIE, rc("t", opening(CHARLIE, "t", HONEST)))
    settle(checked, "t")  # same block: its randomness may be known to the miner
    assert task(checked, "t").status == "Submitted"
    run_to_block(checked, 10)
    assert task(checked, "t").status == "Checking"


def test_check_call_errors(checked: MockRuntime) -> None:
    start(checked)
    [checker] = drawn(checked)
    other = next(w for w in M_OP if w not in (checker, CHARLIE))
    t = tid("t")
    checked.assert_noop(OP1, "Tasks", "reveal_spec", Error.BAD_SPEC, task_id=t, spec=b"{}")
    checked.assert_noop(OP2, "Tasks", "reveal_spec", Error.NOT_YOUR_TASK, task_id=t, spec=SPEC_JSON)
    checked.assert_noop(
        M_OP[checker], "Tasks", "commit_check", Error.NOT_CHECKING, task_id=t, commitment=GOOD
    )
    checked.dispatch(OP1, "Tasks", "reveal_spec", task_id=t, spec=SPEC_JSON)
    checked.assert_noop(
        OP1, "Tasks", "reveal_spec", Error.ALREADY_REVEALED, task_id=t, spec=SPEC_JSON
    )
    checked.assert_noop(
        M_OP[other], "Tasks", "commit_check", Error.NOT_DRAWN_CHECKER, task_id=t, commitment=GOOD
    )
    checked.assert_noop(OP3, "Tasks", "appeal", Error.NOT_CHECKING, task_id=t)
    commitment = opening(checker, "t", HONEST)
    checked.dispatch(M_OP[checker], "Tasks", "commit_check", task_id=t, commitment=commitment)
    assert check_of(checked).phase == "Revealing"
    args = dict(result_hash=GOOD, device_hash=D1, sketch=HONEST.sketch)
    checked.assert_noop(
        OP3, "Tasks", "reveal_result", Error.BAD_REVEAL, task_id=t, salt=salt_of(OP3), **args
    )
    checked.assert_noop(
        M_OP[other], "Tasks", "reveal_result", Error.NOT_DRAWN_CHECKER, task_id=t, salt=GOOD, **args
    )
    checked.assert_noop(OP2, "Tasks", "dispute_task", Error.NOT_YOUR_TASK, task_id=t)
    checked.dispatch(OP3, "Tasks", "reveal_result", task_id=t, salt=salt_of(CHARLIE), **args)
    checked.assert_noop(
        OP3,
        "Tasks",
        "reveal_result",
        Error.ALREADY_REVEALED,
        task_id=t,
        salt=salt_of(CHARLIE),
        **args,
    )


def test_no_other_miner_means_accepted_unchecked(new_test_ext: Any) -> None:
    config = dataclasses.replace(mock_config(), verification=VerificationConfig(PERBILL_ONE))
    m = MockRuntime(config, {**ECONOMY_BALANCES, OP1: OPERATOR_FUNDS}, None)
    register_coordinator(m, ALICE, OP1)
    register_miner(m, CHARLIE, OP3)
    start(m)
    assert (task(m, "t").status, task(m, "t").outcome) == ("Accepted", "Unchecked")
    m.runtime.try_state(m.state)


def test_check_fault_costs_stake_but_leaves_the_registration(checked: MockRuntime) -> None:
    start(checked)
    [lazy] = drawn(checked)
    play_round(checked, {lazy: GUESS})
    play_round(checked, {w: HONEST for w in drawn(checked)})
    assert offences(checked) == [(lazy, "CheckFault")]
    bonded = ledger(checked, lazy)
    assert bonded is not None
    before = bonded.total
    for _ in range(2):
        next_era(checked)
    after = ledger(checked, lazy)
    assert after is not None
    print(f"lazy checker's stake {before / CAI:,.0f} -> {after.total / CAI:,.0f} CAI")
    assert after.total == before - before * 50_000_000 // PERBILL_ONE  # 5%
    # under the minimum now, but not suspended: bonding the difference makes it Active again
    assert reg_of(checked, lazy).status == "Inactive"
    checked.dispatch(lazy, "Staking", "bond_extra", max_additional=2_000 * CAI)
    assert reg_of(checked, lazy).status == "Active"


def test_dispute_of_a_result_already_in_round_0_goes_to_round_1(checked: MockRuntime) -> None:
    """The draw came first: the dispute rides on the check, which goes on to round 1 even though
    round 0 agrees; upheld there, the coordinator pays as for any failed dispute."""
    start(checked)
    assert check_of(checked).round == 0
    checked.dispatch(OP1, "Tasks", "dispute_task", task_id=tid("t"))
    assert check_of(checked).disputed_by == ALICE
    checked.assert_noop(OP1, "Tasks", "dispute_task", Error.NOT_SUBMITTED, task_id=tid("t"))
    play_round(checked, {w: HONEST for w in drawn(checked)})  # round 0 agrees
    assert check_of(checked).round == 1
    play_round(checked, {w: HONEST for w in drawn(checked)})
    t = task(checked, "t")
    assert (t.status, t.outcome) == ("Accepted", "Upheld")
    assert offences(checked) == [(ALICE, "FalseDispute")]


# ---- payments and pruning ------------------------------------------------------------------------

MIN_PRICE = mock_config().tasks.min_task_price
RETENTION = mock_config().tasks.retention_blocks


def reserved(m: MockRuntime, who: bytes) -> int:
    return m.account(who).data.reserved


def wallets(m: MockRuntime, *who: bytes) -> dict[bytes, tuple[int, int]]:
    """(free, reserved) of each account."""
    return {w: (m.free(w), reserved(m, w)) for w in who}


def moved(m: MockRuntime, before: dict[bytes, tuple[int, int]]) -> dict[bytes, tuple[int, int]]:
    """How each account's (free, reserved) changed since `before`."""
    return {w: (m.free(w) - f, reserved(m, w) - r) for w, (f, r) in before.items()}


def paid(m: MockRuntime, name: str = "t") -> list[TaskPaid]:
    """The TaskPaid of the last dispatch, for task `name`."""
    return [e for e in of_type(m.events(), TaskPaid) if e.task_id == tid(name)]


def test_paid_task_price_is_public_before_the_miner_works(net: MockRuntime) -> None:
    commit(net, tc("t", price=3 * PRICE))
    assert of_type(net.events(), TaskCommitted) == [
        TaskCommitted(tid("t"), ALICE, CHARLIE, 11, 3 * PRICE)
    ]
    t = task(net, "t")  # what a miner reads (Tasks.Tasks) before it runs the task
    assert (t.price, t.status, t.miner) == (3 * PRICE, "Committed", CHARLIE)


def test_paid_task_accepted_unchecked_pays_the_miner_and_burns_the_share(net: MockRuntime) -> None:
    commit(net, tc("t"))
    submit(net, CHARLIE, rc("t"))
    run_to_block(net, 2)
    before, issuance = wallets(net, OP1, CHARLIE), total_issuance(net)
    settle(net, "t")
    assert paid(net) == [TaskPaid(tid("t"), CHARLIE, PRICE - BURN, BURN, 0, 0)]
    assert moved(net, before) == {OP1: (0, -PRICE), CHARLIE: (PRICE - BURN, 0)}
    assert total_issuance(net) == issuance - BURN
    assert of_type(net.events(), WorkCredited) == [
        WorkCredited(CHARLIE, "Miner", BURN, 0),
        WorkCredited(ALICE, "Coordinator", BURN, 0),
    ]
    assert reserved(net, OP1) == DEPOSIT  # until the task is pruned


def test_paid_task_verified_pays_the_share_to_its_checker(checked: MockRuntime) -> None:
    start(checked)
    [checker] = drawn(checked)
    before, issuance = wallets(checked, OP1, CHARLIE, checker), total_issuance(checked)
    play_round(checked, {checker: HONEST})
    assert task(checked, "t").outcome == "Verified"
    assert paid(checked) == [TaskPaid(tid("t"), CHARLIE, PRICE - BURN, 0, BURN, 0)]
    assert moved(checked, before) == {
        OP1: (0, -PRICE),
        CHARLIE: (PRICE - BURN, 0),
        checker: (BURN, 0),
    }
    assert total_issuance(checked) == issuance
    assert of_type(checked.events(), WorkCredited) == []  # checked: no emission


def test_paid_task_upheld_after_a_false_dispute_splits_the_share(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=50, spec=SPEC_H))
    submit(net, CHARLIE, rc("t", opening(CHARLIE, "t", HONEST)))
    net.dispatch(OP1, "Tasks", "dispute_task", task_id=tid("t"))
    checkers = drawn(net)
    before, issuance = wallets(net, OP1, CHARLIE, *checkers), total_issuance(net)
    play_round(net, {w: HONEST for w in checkers})
    assert (task(net, "t").outcome, offences(net)) == ("Upheld", [(ALICE, "FalseDispute")])
    each, dust = BURN // 3, BURN % 3
    assert dust > 0  # the rounding dust is burned
    assert paid(net) == [TaskPaid(tid("t"), CHARLIE, PRICE - BURN, dust, 3 * each, 0)]
    assert moved(net, before) == {
        OP1: (0, -PRICE),
        CHARLIE: (PRICE - BURN, 0),
        **{w: (each, 0) for w in checkers},
    }
    assert total_issuance(net) == issuance - dust
    assert of_type(net.events(), WorkCredited) == []


@pytest.mark.parametrize("appeal", [False, True], ids=["after-escalation", "after-failed-appeal"])
def test_paid_task_rejected_pays_the_right_checkers_and_refunds_the_rest(
    checked: MockRuntime, appeal: bool
) -> None:
    start(checked, reveal=FAKE)
    before = wallets(checked, OP1, CHARLIE, *M_OP)
    issuance = total_issuance(checked)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
    assert check_of(checked).phase == "Appealable"
    if appeal:
        checked.dispatch(OP3, "Tasks", "appeal", task_id=tid("t"))
        play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=FAKE)
        events = checked.events()
    else:
        events = run_to_block(checked, check_of(checked).phase_ends + 1)
    assert (task(checked, "t").status, task(checked, "t").outcome) == ("Rejected", "Guilty")
    right = [c.account for c in check_of(checked).checkers]
    assert len(right) == (9 if appeal else 4)
    each, dust = BURN // len(right), BURN % len(right)
    assert of_type(events, TaskPaid) == [
        TaskPaid(tid("t"), CHARLIE, 0, dust, each * len(right), PRICE - BURN)
    ]
    assert moved(checked, before) == {
        OP1: (PRICE - BURN, -PRICE),
        **{w: ((each, 0) if w in right else (0, 0)) for w in M_OP},
    }
    assert total_issuance(checked) == issuance - dust
    assert of_type(events, WorkCredited) == []


def test_paid_task_missed_refunds_the_price(net: MockRuntime) -> None:
    commit(net, tc("t", deadline=5))
    before, issuance = wallets(net, OP1, CHARLIE), total_issuance(net)
    events = run_to_block(net, 6)
    assert of_type(events, TaskPaid) == [TaskPaid(tid("t"), CHARLIE, 0, 0, 0, PRICE)]
    assert moved(net, before) == {OP1: (PRICE, -PRICE), CHARLIE: (0, 0)}
    assert total_issuance(net) == issuance
    assert of_type(events, WorkCredited) == []


def test_paid_task_accepted_for_a_withheld_spec_is_paid_as_unchecked(checked: MockRuntime) -> None:
    start(checked)
    [checker] = drawn(checked)
    before, issuance = wallets(checked, OP1, CHARLIE, checker), total_issuance(checked)
    events = run_to_block(checked, check_of(checked).phase_ends + 1)
    assert (task(checked, "t").status, task(checked, "t").outcome) == ("Accepted", "Unchecked")
    assert offences(checked) == [(ALICE, "WithheldSpec")]
    assert of_type(events, TaskPaid) == [TaskPaid(tid("t"), CHARLIE, PRICE - BURN, BURN, 0, 0)]
    assert moved(checked, before) == {OP1: (0, -PRICE), CHARLIE: (PRICE - BURN, 0), checker: (0, 0)}
    assert total_issuance(checked) == issuance - BURN
    settled = task(checked, "t").settled_at
    assert settled is not None
    era = settled // ERA_LENGTH
    assert of_type(events, WorkCredited) == [
        WorkCredited(CHARLIE, "Miner", BURN, era),
        WorkCredited(ALICE, "Coordinator", BURN, era),
    ]


def test_commit_tasks_price_too_low(net: MockRuntime) -> None:
    batch = [tc("ok", price=MIN_PRICE), tc("cheap", DAVE, price=MIN_PRICE - 1)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.PRICE_TOO_LOW, batch=batch)
    assert reserved(net, OP1) == 0
    commit(net, tc("ok", price=MIN_PRICE))  # exactly MinTaskPrice is enough
    assert task(net, "ok").price == MIN_PRICE
    assert reserved(net, OP1) == MIN_PRICE + DEPOSIT


def test_commit_tasks_insufficient_funds_is_all_or_nothing(net: MockRuntime) -> None:
    commit(net, tc("first"))
    # what OP1 can still reserve: its free balance, keeping the existential deposit
    room = net.free(OP1) - mock_config().balances.existential_deposit
    last = room - 2 * DEPOSIT - PRICE  # a second task that takes exactly the rest
    batch = [tc("a", price=PRICE), tc("b", DAVE, price=last + 1)]
    net.assert_noop(OP1, "Tasks", "commit_tasks", Error.INSUFFICIENT_FUNDS, batch=batch)
    assert (Tasks.get(net.state, tid("a")), stats(net, DAVE)) == (None, MinerStats())
    batch[1] = tc("b", DAVE, price=last)
    commit(net, *batch)
    assert net.free(OP1) == mock_config().balances.existential_deposit
    assert reserved(net, OP1) == 3 * DEPOSIT + 2 * PRICE + last
    net.assert_noop(
        OP1, "Tasks", "commit_tasks", Error.INSUFFICIENT_FUNDS, batch=[tc("c", price=MIN_PRICE)]
    )


def test_settled_task_is_pruned_after_retention_blocks(checked: MockRuntime) -> None:
    start(checked)
    play_round(checked, {w: HONEST for w in drawn(checked)})
    settled = task(checked, "t").settled_at
    assert settled is not None
    assert Checks.contains(checked.state, tid("t"))
    assert Specs.contains(checked.state, tid("t"))
    run_to_block(checked, settled + RETENTION - 1)
    assert reserved(checked, OP1) == DEPOSIT  # still in state, still paying its deposit
    free = checked.free(OP1)
    events = run_to_block(checked, settled + RETENTION)
    assert of_type(events, tasks.TasksPruned) == [tasks.TasksPruned(1)]
    assert of_type(events, Unreserved) == [Unreserved(OP1, DEPOSIT)]
    assert Tasks.get(checked.state, tid("t")) is None
    assert not Checks.contains(checked.state, tid("t"))
    assert not Specs.contains(checked.state, tid("t"))
    assert (checked.free(OP1), reserved(checked, OP1)) == (free + DEPOSIT, 0)
    assert tasks.Retained.get(checked.state) == 0


def test_pruning_is_bounded_per_block_with_carry_over(
    net: MockRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "MAX_PRUNES_PER_BLOCK", 2)
    commit(net, *(tc(f"t{i}", deadline=5) for i in range(5)))
    run_to_block(net, 6)  # all five missed in block 6
    assert tasks.Retained.get(net.state) == 5
    pruned = []
    for block in range(6 + RETENTION, 6 + RETENTION + 4):
        pruned.append(sum(e.count for e in of_type(run_to_block(net, block), tasks.TasksPruned)))
        assert reserved(net, OP1) == (5 - sum(pruned)) * DEPOSIT
    assert pruned == [2, 2, 1, 0]
    assert list(Tasks.iter(net.state)) == []
    assert tasks.Retained.get(net.state) == 0


@pytest.mark.parametrize("offence", ["FalseDispute", "WithheldSpec", "InvalidResult"])
def test_a_pruned_task_id_committed_again_is_a_new_incident(
    checked: MockRuntime, offence: str
) -> None:
    """Pruning frees a task id, and a coordinator may commit it again (the same request sent
    again). The second task is a new incident: an offence in it is reported even though the
    same offence was reported (and slashed) for the first task with that id."""
    for staker in (ALICE, CHARLIE):  # both stay above their minimum stake after the slash
        checked.dispatch(staker, "Staking", "bond_extra", max_additional=100_000 * CAI)
    offender = CHARLIE if offence == "InvalidResult" else ALICE
    for attempt in range(2):
        if reg_of(checked, CHARLIE).status == "Suspended":  # a convicted miner registers again
            checked.dispatch(CHARLIE, "Registry", "deregister")
            checked.dispatch(CHARLIE, "Registry", "register_miner", operator=OP3, info=miner_info())
        start(checked, reveal=FAKE if offence == "InvalidResult" else HONEST)
        if offence == "FalseDispute":
            checked.dispatch(OP1, "Tasks", "dispute_task", task_id=tid("t"))
            play_round(checked, {w: HONEST for w in drawn(checked)})
            play_round(checked, {w: HONEST for w in drawn(checked)})
            assert task(checked, "t").outcome == "Upheld"
        elif offence == "WithheldSpec":
            run_to_block(checked, check_of(checked).phase_ends + 1)  # the spec never comes
            assert task(checked, "t").outcome == "Unchecked"
        else:
            play_round(checked, {w: HONEST for w in drawn(checked)}, miner_reveal=None)
            assert task(checked, "t").outcome == "Guilty"
        assert offences(checked) == [(offender, offence)], f"task {attempt + 1}"
        settled = task(checked, "t").settled_at
        assert settled is not None
        run_to_block(checked, settled + RETENTION)  # its slash applied, the task pruned
        assert Tasks.get(checked.state, tid("t")) is None
        assert offences(checked) == []


# ---- pruned ids ---------------------------------------------------------------------------------


def test_a_coordinator_reusing_a_pruned_id_pays_for_each_withheld_spec(
    checked: MockRuntime,
) -> None:
    """A settled task leaves state after RetentionBlocks, and its id may then be committed again.
    Offences name the task by id and commit block, so a coordinator that reuses the id of a task
    whose spec it withheld is reported again: reusing ids does not make withholding free."""
    checked.dispatch(ALICE, "Staking", "bond_extra", max_additional=1_000_000 * CAI)  # stays Active
    reported = []
    for _ in range(2):
        start(checked)
        events = run_to_block(checked, check_of(checked).phase_ends + 1)  # the spec is withheld
        reported += [(e.offender, str(e.kind)) for e in of_type(events, OffenceReported)]
        assert (task(checked, "t").status, task(checked, "t").outcome) == ("Accepted", "Unchecked")
        settled = task(checked, "t").settled_at
        assert settled is not None
        run_to_block(checked, settled + checked.config.tasks.retention_blocks)
        assert Tasks.get(checked.state, tid("t")) is None  # pruned: the id is free again
    assert reported == [(ALICE, "WithheldSpec"), (ALICE, "WithheldSpec")]
    assert len(list(slashing.Offences.iter(checked.state))) == 2
