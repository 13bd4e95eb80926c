"""`find_settlements`: a settled task's TaskSettled and TaskPaid found by task id in the raw bytes
of `System.Events`, against blocks of event records encoded by the runtime's own codec (with
other events around them that carry the same task ids and accounts), and the parsing of the two
events as substrate-interface hands them over (tests/client/test_connection.py compares both
ways on a node)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainclient.accounts import ss58
from chainclient.events import EventLayout, find_settlements
from chainclient.tasks import (
    CHECK_OUTCOMES,
    TASK_STATUSES,
    DecodeError,
    Payment,
    Settlement,
    merge_settlements,
    parse_task_paid,
    parse_task_settled,
)
from genesis.builder import load_spec
from pallets.balances import pallet as balances
from pallets.runtime import build_runtime, runtime_config
from pallets.system import pallet as system
from pallets.tasks import pallet as tasks

LAYOUT = EventLayout(
    pallet=tasks.SPEC.index,
    task_settled=tasks.SPEC.events[tasks.TaskSettled].index,
    task_paid=tasks.SPEC.events[tasks.TaskPaid].index,
    statuses=tuple(s.value for s in tasks.TaskStatus),
    outcomes=tuple(o.value for o in tasks.CheckOutcome),
)
hashes = st.binary(min_size=32, max_size=32)
u128s = st.integers(min_value=0, max_value=2**128 - 1)
FINAL = [tasks.TaskStatus.ACCEPTED, tasks.TaskStatus.REJECTED, tasks.TaskStatus.MISSED]


@pytest.fixture(scope="module", autouse=True)
def runtime_events() -> None:
    """System.Events encodes the runtime's event enum: bound when a runtime is built."""
    build_runtime(runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"]))


def test_the_layout_is_the_clients() -> None:
    assert (LAYOUT.pallet, LAYOUT.task_settled, LAYOUT.task_paid) == (15, 2, 10)
    assert LAYOUT.statuses == TASK_STATUSES
    assert LAYOUT.outcomes == CHECK_OUTCOMES


@st.composite
def blocks(draw: st.DrawFn) -> tuple[list[system.EventRecord], dict[bytes, Settlement]]:
    """Event records of one block, and the settlements they hold by task id."""
    ids = draw(st.lists(hashes, min_size=1, max_size=6, unique=True))
    records: list[system.EventRecord] = []
    expected: dict[bytes, Settlement] = {}
    phase = ("ApplyExtrinsic", draw(st.integers(0, 2**32 - 1)))
    for task_id in ids:
        miner = draw(hashes)
        # events that name the same task or accounts, and are not the ones searched for
        records.append(
            system.EventRecord(
                phase, tasks.TaskCommitted(task_id, draw(hashes), miner, 9, draw(u128s)), []
            )
        )
        records.append(
            system.EventRecord(
                phase, balances.Transfer(draw(hashes), miner, draw(u128s)), [draw(hashes)]
            )
        )
        if not draw(st.booleans()):
            continue  # committed, not settled in this block
        amounts = draw(st.tuples(u128s, u128s, u128s, u128s))
        status = draw(st.sampled_from(FINAL))
        outcome = draw(st.sampled_from(list(tasks.CheckOutcome)))
        records.append(
            system.EventRecord(("Initialization", None), tasks.TaskPaid(task_id, miner, *amounts))
        )
        records.append(
            system.EventRecord(("Finalization", None), tasks.TaskSettled(task_id, status, outcome))
        )
        expected[task_id] = Settlement(
            task_id, 7, status.value, outcome.value, miner, Payment(*amounts)
        )
    return records, expected


@given(blocks(), hashes)
def test_find_settlements_reads_the_runtimes_events(
    block: tuple[list[system.EventRecord], dict[bytes, Settlement]], stranger: bytes
) -> None:
    records, expected = block
    raw = system.Events.value_ty.encode(records)
    every = [r.event.task_id for r in records if isinstance(r.event, tasks.TaskCommitted)]
    assert find_settlements(raw, [*every, stranger], LAYOUT, 7) == expected
    assert find_settlements(raw, [], LAYOUT, 7) == {}
    assert find_settlements(b"", every, LAYOUT, 7) == {}


def test_a_truncated_task_paid_is_refused() -> None:
    record = system.EventRecord(
        ("Finalization", None), tasks.TaskPaid(b"\x01" * 32, bytes(32), 1, 2, 3, 4)
    )
    raw = system.Events.value_ty.encode([record])
    with pytest.raises(DecodeError, match="truncated"):
        find_settlements(raw[:-20], [b"\x01" * 32], LAYOUT, 1)


def test_parse_settlement_events_takes_the_library_shapes() -> None:
    tid, miner = b"\x01" * 32, b"\x0a" * 32
    paid = parse_task_paid(
        {
            "task_id": "0x" + tid.hex(),
            "miner": ss58(miner),
            "to_miner": 80,
            "burned": 20,
            "to_checkers": 0,
            "refunded": 0,
        },
        5,
    )
    assert paid == Settlement(tid, 5, miner=miner, payment=Payment(80, 20, 0, 0))
    assert paid.payment is not None
    assert paid.payment.total == 100
    settled = parse_task_settled(["0x" + tid.hex(), {"Accepted": None}, "Verified"], 5)
    assert (settled.status, settled.outcome) == ("Accepted", "Verified")
    assert merge_settlements([paid, settled]) == {
        tid: Settlement(tid, 5, "Accepted", "Verified", miner, Payment(80, 20, 0, 0))
    }
    with pytest.raises(DecodeError):
        parse_task_settled(["0x" + tid.hex(), "Checking", "Verified"], 5)  # not final
    with pytest.raises(DecodeError):
        parse_task_paid({"task_id": "0x" + tid.hex(), "miner": ss58(miner)}, 5)
