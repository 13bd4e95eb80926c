"""`decode_task` and `decode_check`: their layouts (docs/verification.md), a round trip through
the test encoders, the runtime's own codec where it has the type, refusals of malformed bytes,
and the parsing of CheckOpened attributes as substrate-interface hands them over."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainclient.accounts import ss58
from chainclient.tasks import (
    CHECK_OUTCOMES,
    CHECK_PHASES,
    TASK_STATUSES,
    Check,
    Checker,
    DecodeError,
    Reveal,
    Task,
    decode_check,
    decode_task,
    encode_check,
    encode_task,
    parse_check_opened,
)
from pallets.tasks import pallet as runtime

hashes = st.binary(min_size=32, max_size=32)
u32s = st.integers(min_value=0, max_value=2**32 - 1)
u128s = st.integers(min_value=0, max_value=2**128 - 1)
tasks = st.builds(
    Task,
    coordinator=hashes,
    miner=hashes,
    spec_hash=hashes,
    deadline=u32s,
    committed_at=u32s,
    status=st.sampled_from(TASK_STATUSES),
    commitment=st.none() | hashes,
    submitted_at=st.none() | u32s,
    settled_at=st.none() | u32s,
    outcome=st.sampled_from(CHECK_OUTCOMES),
    draw_at=st.none() | u32s,
    price=u128s,
    payer=hashes,
    deposit=u128s,
)
reveals = st.builds(Reveal, hashes, hashes, st.binary(max_size=300))
checks = st.builds(
    Check,
    round=st.integers(0, 2),
    phase=st.sampled_from(CHECK_PHASES),
    phase_ends=u32s,
    checkers=st.lists(
        st.builds(Checker, hashes, st.integers(0, 2), st.none() | hashes, st.none() | reveals),
        max_size=9,
    ).map(tuple),
    miner_reveal=st.none() | reveals,
    disputed_by=st.none() | hashes,
)


@given(tasks)
def test_decode_task_reads_what_the_layout_writes(task: Task) -> None:
    assert decode_task(encode_task(task)) == task


@given(checks)
def test_decode_check_reads_what_the_layout_writes(check: Check) -> None:
    assert decode_check(encode_check(check)) == check


@given(tasks)
def test_decode_task_matches_the_runtime_codec(task: Task) -> None:
    fields = dataclasses.asdict(task)
    reference = runtime.Task(**fields)
    assert decode_task(runtime.TASK.encode(reference)) == task
    assert [f.name for f in dataclasses.fields(Task)] == [
        f.name for f in dataclasses.fields(runtime.Task)
    ]


def test_task_statuses_are_the_runtime_variants_in_order() -> None:
    for index, status in enumerate(TASK_STATUSES):
        assert runtime.TASK_STATUS.encode(status) == bytes([index])


def sample() -> bytes:
    return encode_task(
        Task(
            b"\x01" * 32,
            b"\x02" * 32,
            b"\x03" * 32,
            9,
            4,
            "Submitted",
            b"\x04" * 32,
            5,
            draw_at=6,
            price=10**17,
            payer=b"\x05" * 32,
            deposit=10**16,
        )
    )


def test_decode_task_reads_a_known_value() -> None:
    raw = sample()
    assert len(raw) == 96 + 4 + 4 + 1 + 33 + 5 + 1 + 1 + 5 + 16 + 32 + 16
    task = decode_task(raw)
    assert (task.price, task.payer, task.deposit) == (10**17, b"\x05" * 32, 10**16)
    assert task.status == "Submitted"
    assert task.commitment == b"\x04" * 32
    assert (task.submitted_at, task.settled_at, task.outcome) == (5, None, "Unchecked")
    assert task.draw_at == 6
    assert not task.is_final


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing"),
        (lambda raw: raw[:105] + b"\x02" + raw[106:], "Option"),  # commitment's flag
        (lambda raw: raw[:104] + b"\x06" + raw[105:], "enum index 6"),  # status
    ],
)
def test_decode_task_refuses_malformed_bytes(
    mangle: Callable[[bytes], bytes], message: str
) -> None:
    raw = sample()
    assert raw[104] == 1  # status: Submitted
    assert raw[105] == 1  # commitment: Some
    with pytest.raises(DecodeError, match=message):
        decode_task(mangle(raw))


def test_check_finds_the_current_rounds_checker() -> None:
    a, b = b"\xaa" * 32, b"\xbb" * 32
    check = Check(1, "Committing", 50, (Checker(a, 0, b"\x01" * 32), Checker(b, 1)))
    assert check.checker(b) == Checker(b, 1)
    assert check.checker(a) is None  # drawn for round 0 only


def test_parse_check_opened_takes_the_library_shapes() -> None:
    tid, a, b = b"\x01" * 32, b"\x0a" * 32, b"\x0b" * 32
    by_name = {
        "task_id": "0x" + tid.hex(),
        "round": 1,
        "checkers": [ss58(a), "0x" + b.hex()],
        "phase": "SpecDue",
        "phase_ends": 77,
    }
    ev = parse_check_opened(by_name)
    assert (ev.task_id, ev.round, ev.checkers, ev.phase, ev.phase_ends) == (
        tid,
        1,
        (a, b),
        "SpecDue",
        77,
    )
    in_order = ["0x" + tid.hex(), 0, [ss58(a)], {"Committing": None}, 9]
    assert parse_check_opened(in_order).phase == "Committing"
    with pytest.raises(DecodeError):
        parse_check_opened({**by_name, "phase": "Sleeping"})


@given(checks)
def test_decode_check_matches_the_runtime_codec(check: Check) -> None:
    def rt_reveal(r: Reveal | None) -> runtime.Reveal | None:
        return None if r is None else runtime.Reveal(r.result_hash, r.device_hash, r.sketch)

    reference = runtime.Check(
        check.round,
        check.phase,
        check.phase_ends,
        [
            runtime.Checker(c.account, c.round, c.commitment, rt_reveal(c.reveal))
            for c in check.checkers
        ],
        rt_reveal(check.miner_reveal),
        check.disputed_by,
    )
    assert decode_check(runtime.CHECK.encode(reference)) == check
