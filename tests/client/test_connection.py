"""`Connection` against a real `cuckoo-node`: registry reads, the Tasks calls and their
pre-encoded arguments, `Tasks.Tasks` decoded by the client compared with substrate-interface's
own decoding at every stage of a task, a settled task's TaskSettled and TaskPaid found in the raw
events compared with substrate-interface's decoding of the block's events, the escrow of a
commitment in the operator's reserved balance, pool refusals and dispatch errors."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from substrateinterface import Keypair

from chainclient import calls
from chainclient.accounts import account_id, ss58
from chainclient.calls import Call, ResultCommit, TaskCommit
from chainclient.connection import Connection, SubmitRefused
from chainclient.registry import COORDINATOR, MINER, OperatorRole
from chainclient.tasks import (
    Payment,
    Settlement,
    Task,
    merge_settlements,
    parse_task_paid,
    parse_task_settled,
)
from tests.integration.conftest import NodeProcess
from tests.miner.chainkit import CAI, TASK_PRICE, Actor, ChainKit

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def fresh() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


@dataclasses.dataclass
class Setup:
    conn: Connection
    kit: ChainKit
    coordinator: Actor
    miner: Actor


@pytest.fixture(scope="module")
def setup(node: NodeProcess) -> Iterator[Setup]:
    kit = ChainKit(node.ws_url)
    coordinator = Actor(Keypair.create_from_uri("//Charlie"), fresh(), "client-coord")
    miner = Actor(Keypair.create_from_uri("//Dave"), fresh(), "client-miner")
    kit.run_parallel(
        [
            kit.coordinator_steps(coordinator, 2_000_000 * CAI, "http://127.0.0.1:9/c"),
            kit.miner_steps(miner, 25_000 * CAI),
        ]
    )
    conn = Connection(node.ws_url)
    try:
        yield Setup(conn, kit, coordinator, miner)
    finally:
        conn.close()
        kit.close()


def key(kp: Keypair) -> bytes:
    return bytes(kp.public_key)


def test_registry_reads(setup: Setup) -> None:
    conn, coordinator, miner = setup.conn, setup.coordinator, setup.miner
    (m,) = [r for r in conn.miners() if r.staker == key(miner.staker)]
    assert m.operator == key(miner.operator)
    assert (m.status, m.own_stake, m.votes) == ("Active", 25_000 * CAI, 0)
    assert (m.name, m.url, m.gpu_model) == ("client-miner", "", "cpu")
    assert m.weight == 25_000 * CAI
    assert m.is_active
    (c,) = [r for r in conn.coordinators() if r.staker == key(coordinator.staker)]
    assert (c.operator, c.url, c.weight) == (
        key(coordinator.operator),
        "http://127.0.0.1:9/c",
        2_000_000 * CAI,
    )
    assert conn.registration_of(key(miner.operator)) == (
        OperatorRole(MINER, key(miner.staker)),
        m,
    )
    assert conn.registration_of(key(coordinator.operator)) == (
        OperatorRole(COORDINATOR, key(coordinator.staker)),
        c,
    )
    assert conn.registration_of(key(fresh())) == (None, None)
    assert conn.registration_of(key(miner.staker)) == (None, None)  # a staker is no operator


def library_task(conn: Connection, task_id: bytes) -> Task | None:
    """Tasks.Tasks(task_id) decoded by substrate-interface (the reference)."""
    value: dict[str, Any] | None = conn.si.query("Tasks", "Tasks", ["0x" + task_id.hex()]).value
    if value is None:
        return None

    def h(v: str | None) -> bytes | None:
        return None if v is None else bytes.fromhex(v[2:])

    return Task(
        coordinator=account_id(value["coordinator"]),
        miner=account_id(value["miner"]),
        spec_hash=bytes.fromhex(value["spec_hash"][2:]),
        deadline=value["deadline"],
        committed_at=value["committed_at"],
        status=value["status"],
        commitment=h(value["commitment"]),
        submitted_at=value["submitted_at"],
        settled_at=value["settled_at"],
        outcome=value["outcome"],
        draw_at=value["draw_at"],
        price=value["price"],
        payer=account_id(value["payer"]),
        deposit=value["deposit"],
    )


def library_settlements(conn: Connection, task_ids: list[bytes], block: int) -> dict[bytes, Any]:
    """The block's TaskSettled and TaskPaid of `task_ids`, decoded by substrate-interface."""
    parts = []
    for e in conn.events(conn.block_hash(block)):
        if (e.module, e.name) == ("Tasks", "TaskPaid"):
            parts.append(parse_task_paid(e.attributes, block))
        elif (e.module, e.name) == ("Tasks", "TaskSettled"):
            parts.append(parse_task_settled(e.attributes, block))
    return {t: s for t, s in merge_settlements(parts).items() if t in task_ids}


def assert_tasks_match_library(conn: Connection, ids: list[bytes], block_hash: str) -> None:
    fast = conn.tasks(ids, block_hash)
    assert list(fast) == ids
    for task_id in ids:
        assert fast[task_id] == library_task(conn, task_id)


def test_task_calls_and_reads_through_a_task_lifecycle(setup: Setup) -> None:
    conn, coordinator, miner = setup.conn, setup.coordinator, setup.miner
    ids = [os.urandom(32) for _ in range(3)]
    deadline = conn.head()[0] + 200
    prices = [TASK_PRICE, 2 * TASK_PRICE, 3 * TASK_PRICE]
    commits = [
        TaskCommit(t, os.urandom(32), key(miner.staker), deadline, p)
        for t, p in zip(ids, prices, strict=True)
    ]
    committed = conn.submit_and_wait(coordinator.operator, calls.commit_tasks(commits))
    assert committed.is_success, committed
    # the operator escrows each price and the task deposit in its reserved balance
    deposit = conn.constant("Tasks", "TaskDeposit")
    assert deposit is not None
    assert deposit > 0
    before_commit = conn.account(key(coordinator.operator), conn.block_hash(committed.block - 1))
    after_commit = conn.account(key(coordinator.operator), conn.block_hash(committed.block))
    assert after_commit.reserved - before_commit.reserved == sum(prices) + 3 * deposit
    results = [ResultCommit(t, os.urandom(32)) for t in ids[:2]]
    submitted = conn.submit_and_wait(miner.operator, calls.submit_results(results))
    assert submitted.is_success, submitted
    conn_head = conn.head()[0]
    while conn.head()[0] == conn_head:  # settle_tasks accepts only after the result's block
        time.sleep(0.05)
    settled = conn.submit_and_wait(coordinator.operator, calls.settle_tasks([ids[0]]))
    # the dev chain draws 10% of the results for a check a block after they land; with no other
    # miner to check it, a drawn result is accepted at once (and can no longer be settled)
    assert settled.is_success or settled.error == "NotSubmitted", settled

    unknown = os.urandom(32)
    assert_tasks_match_library(conn, [*ids, unknown], conn.head()[1])
    tasks = conn.tasks(ids)
    assert tasks[ids[1]] is not None
    assert tasks[ids[1]].status in ("Submitted", "Checking", "Accepted")
    assert tasks[ids[2]] is not None
    assert tasks[ids[2]].status == "Committed"
    assert tasks[ids[0]] is not None
    assert tasks[ids[0]].status == "Accepted"
    accepted = tasks[ids[0]]
    assert accepted is not None
    assert accepted.coordinator == key(coordinator.staker)
    assert accepted.spec_hash == commits[0].spec_hash
    assert (accepted.committed_at, accepted.submitted_at) == (committed.block, submitted.block)
    assert accepted.settled_at is not None
    assert accepted.settled_at <= settled.block
    assert accepted.commitment == results[0].commitment
    assert (accepted.price, accepted.payer, accepted.deposit) == (
        TASK_PRICE,
        key(coordinator.operator),
        deposit,
    )
    at = accepted.settled_at
    found = conn.settlements([ids[0], ids[1], unknown], at)
    assert found == library_settlements(conn, [ids[0], ids[1], unknown], at)
    burn = TASK_PRICE * conn.si.get_constant("Tasks", "BurnShare").value // 10**9
    assert found[ids[0]] == Settlement(
        ids[0],
        at,
        "Accepted",
        "Unchecked",
        key(miner.staker),
        Payment(TASK_PRICE - burn, burn, 0, 0),
    )
    assert conn.settlements([ids[0]], committed.block) == {}  # not settled in that block
    assert conn.checks([ids[1]]) == {ids[1]: None}
    assert conn.specs([ids[1]]) == {ids[1]: None}
    # reads at an older block see the state of that block
    before = conn.tasks(ids, conn.block_hash(committed.block))
    assert {t.status for t in before.values() if t} == {"Committed"}
    assert conn.tasks(ids, conn.block_hash(committed.block - 1)) == dict.fromkeys(ids)
    names = [(e.module, e.name) for e in conn.events(conn.block_hash(at))]
    assert ("Tasks", "TaskSettled") in names


def test_many_tasks_are_read_in_chunks(setup: Setup) -> None:
    conn = setup.conn
    ids = [os.urandom(32) for _ in range(1_100)]  # three state_queryStorageAt chunks
    assert conn.tasks(ids) == dict.fromkeys(ids)


def test_preencoded_calls_match_substrate_interface(setup: Setup) -> None:
    conn = setup.conn

    def hx(b: bytes) -> str:
        return "0x" + b.hex()

    commits = [
        TaskCommit(os.urandom(32), os.urandom(32), os.urandom(32), 100 + i, 10**16 * i + 2**100)
        for i in range(70)
    ]
    results = [ResultCommit(os.urandom(32), os.urandom(32)) for _ in range(256)]
    settles = [os.urandom(32) for i in range(5)]
    task_id, rh, dh, salt = (os.urandom(32) for _ in range(4))
    pairs = [
        (
            calls.commit_tasks(commits),
            {
                "batch": [
                    {
                        "task_id": hx(i.task_id),
                        "spec_hash": hx(i.spec_hash),
                        "miner": ss58(i.miner),
                        "deadline": i.deadline,
                        "price": i.price,
                    }
                    for i in commits
                ]
            },
        ),
        (
            calls.submit_results(results),
            {
                "batch": [
                    {
                        "task_id": hx(r.task_id),
                        "commitment": hx(r.commitment),
                    }
                    for r in results
                ]
            },
        ),
        (calls.settle_tasks(settles), {"task_ids": [hx(s) for s in settles]}),
        (calls.dispute_task(task_id), {"task_id": hx(task_id)}),
        (calls.appeal(task_id), {"task_id": hx(task_id)}),
        (calls.reveal_spec(task_id, b'{"a":1}'), {"task_id": hx(task_id), "spec": '{"a":1}'}),
        (calls.commit_check(task_id, salt), {"task_id": hx(task_id), "commitment": hx(salt)}),
        (
            calls.reveal_result(task_id, rh, dh, b"\x01\x02", salt),
            {
                "task_id": hx(task_id),
                "result_hash": hx(rh),
                "device_hash": hx(dh),
                "sketch": "0x0102",
                "salt": hx(salt),
            },
        ),
    ]
    for pre, params in pairs:
        reference = conn.compose(Call(pre.module, pre.function, params))
        assert bytes(conn.compose(pre).data.data) == bytes(reference.data.data)
        assert bytes(reference.data.data)[2:] == pre.args_bytes


def test_submit_takes_a_resubmission_and_refuses_a_stale_nonce(setup: Setup) -> None:
    conn, op = setup.conn, setup.coordinator.operator
    call = calls.settle_tasks([os.urandom(32)])
    conn.submit_and_wait(op, call)  # fails to dispatch, but uses a nonce
    nonce = conn.next_index(key(op))
    xt = conn.sign(op, call, nonce)
    conn.submit(xt)
    conn.submit(xt)  # the pool already holds it: accepted, not an error
    assert conn.next_index(key(op)) == nonce + 1
    with pytest.raises(SubmitRefused, match="outdated") as stale:
        conn.submit(conn.sign(op, call, nonce - 1))
    assert stale.value.code == 1010


def test_submit_and_wait_reports_the_dispatch_error(setup: Setup) -> None:
    conn = setup.conn
    included = conn.submit_and_wait(
        setup.miner.operator,
        calls.submit_results([ResultCommit(os.urandom(32), os.urandom(32))]),
    )
    assert not included.is_success
    assert included.error == "UnknownTask"
    assert included.detail
    names = [(e.module, e.name) for e in conn.events(conn.block_hash(included.block))]
    assert ("System", "ExtrinsicFailed") in names
    with pytest.raises(SubmitRefused, match="pay"):
        conn.submit_and_wait(fresh(), calls.settle_tasks([]))  # no funds for the fee


def test_accounts(setup: Setup) -> None:
    conn = setup.conn
    operator = conn.account(key(setup.miner.operator))
    ed = conn.existential_deposit()
    assert operator.free > ed > 0
    assert operator.usable(ed) == operator.free - ed  # nothing frozen
    assert conn.account(key(fresh())).free == 0
    staker = conn.account(key(setup.miner.staker))  # bonded stake is frozen
    assert staker.frozen >= 25_000 * CAI
    assert staker.usable(ed) == max(staker.free - staker.frozen, 0)


def test_runtime_constants_and_the_event_layout(setup: Setup) -> None:
    conn = setup.conn
    assert conn.constant("Tasks", "MinTaskPrice") == 10**16  # dev: 0.01 CAI
    assert conn.constant("Tasks", "NoSuchConstant") is None
    layout = conn.task_event_layout()
    assert layout.pallet == 15
    assert layout.statuses[:5] == ("Committed", "Submitted", "Accepted", "Rejected", "Missed")
    assert layout.outcomes == ("Unchecked", "Verified", "Upheld", "Guilty")
