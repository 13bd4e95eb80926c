"""`decode_task` against the runtime's own codec for `pallet_cuckoo_tasks::Task` (the slow
reference it replaces), and its refusals of malformed bytes. The client never imports the
runtime; its tests may, to check the layout it assumes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainclient.tasks import TASK_STATUSES, DecodeError, Task, decode_task
from pallets.tasks import pallet as runtime

hashes = st.binary(min_size=32, max_size=32)
u32s = st.integers(min_value=0, max_value=2**32 - 1)
runtime_tasks = st.builds(
    runtime.Task,
    coordinator=hashes,
    miner=hashes,
    spec_hash=hashes,
    deadline=u32s,
    audit_of=st.none() | hashes,
    committed_at=u32s,
    status=st.sampled_from(TASK_STATUSES),
    result_hash=st.none() | hashes,
    device_hash=st.none() | hashes,
    submitted_at=st.none() | u32s,
    settled_at=st.none() | u32s,
)


@given(runtime_tasks)
def test_decode_task_matches_the_runtime_codec(task: runtime.Task) -> None:
    decoded = decode_task(runtime.TASK.encode(task))
    assert dataclasses.astuple(decoded) == dataclasses.astuple(task)
    assert [f.name for f in dataclasses.fields(Task)] == [
        f.name for f in dataclasses.fields(runtime.Task)
    ]


def test_task_statuses_are_the_runtime_variants_in_order() -> None:
    for index, status in enumerate(TASK_STATUSES):
        assert runtime.TASK_STATUS.encode(status) == bytes([index])


def sample() -> bytes:
    task = runtime.Task(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 9, None, 4, "Submitted")
    return runtime.TASK.encode(dataclasses.replace(task, result_hash=b"\x04" * 32))


def test_decode_task_reads_a_known_value() -> None:
    task = decode_task(sample())
    assert task == Task(
        b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 9, None, 4, "Submitted", b"\x04" * 32
    )


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing"),
        (lambda raw: raw[:100] + b"\x02" + raw[101:], "Option"),  # audit_of's flag
        (lambda raw: raw[:105] + b"\x05" + raw[106:], "TaskStatus"),
    ],
)
def test_decode_task_refuses_malformed_bytes(
    mangle: Callable[[bytes], bytes], message: str
) -> None:
    raw = sample()
    assert raw[100] == 0  # audit_of: None
    assert raw[105] == 1  # status: Submitted
    with pytest.raises(DecodeError, match=message):
        decode_task(mangle(raw))
