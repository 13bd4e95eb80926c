"""The Tasks calls' pre-encoded arguments against the runtime's own codec for the same types
(tests/client/test_connection.py checks them against substrate-interface on a node)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.codec import encode_compact
from chain.frame.common import H256
from chain.frame.types import Vec
from chainclient import calls
from chainclient.calls import MAX_BATCH, ResultCommit, Settlement, TaskCommit
from pallets.tasks import pallet as runtime

hashes = st.binary(min_size=32, max_size=32)
u32s = st.integers(min_value=0, max_value=2**32 - 1)
commits = st.lists(
    st.builds(TaskCommit, hashes, hashes, hashes, u32s, st.none() | hashes),
    max_size=MAX_BATCH,
)
results = st.lists(st.builds(ResultCommit, hashes, hashes, hashes), max_size=MAX_BATCH)
settlements = st.lists(st.builds(Settlement, hashes, st.booleans()), max_size=MAX_BATCH)


def only_arg(call: calls.Call, name: str) -> bytes:
    ((arg, data),) = call.encoded
    assert arg == name
    return data


@given(commits)
def test_commit_tasks_matches_the_runtime_codec(items: list[TaskCommit]) -> None:
    call = calls.commit_tasks(items)
    reference = [
        runtime.TaskCommit(i.task_id, i.spec_hash, i.miner, i.deadline, i.audit_of) for i in items
    ]
    assert (call.module, call.function) == ("Tasks", "commit_tasks")
    assert only_arg(call, "batch") == Vec(runtime.TASK_COMMIT, MAX_BATCH).encode(reference)


@given(results)
def test_submit_results_matches_the_runtime_codec(items: list[ResultCommit]) -> None:
    reference = [runtime.ResultCommit(i.task_id, i.result_hash, i.device_hash) for i in items]
    expected = Vec(runtime.RESULT_COMMIT, MAX_BATCH).encode(reference)
    assert only_arg(calls.submit_results(items), "batch") == expected


@given(settlements)
def test_settle_tasks_matches_the_runtime_codec(items: list[Settlement]) -> None:
    reference = [runtime.Settlement(i.task_id, i.accept) for i in items]
    expected = Vec(runtime.SETTLEMENT, MAX_BATCH).encode(reference)
    assert only_arg(calls.settle_tasks(items), "batch") == expected


@given(hashes, st.lists(hashes, max_size=calls.MAX_WITNESSES))
def test_report_invalid_result_matches_the_runtime_codec(
    task_id: bytes, witnesses: list[bytes]
) -> None:
    call = calls.report_invalid_result(task_id, witnesses)
    assert call.encoded == (
        ("task_id", H256.encode(task_id)),
        ("witnesses", Vec(H256, runtime.MAX_WITNESSES).encode(witnesses)),
    )
    assert call.args_bytes == task_id + Vec(H256).encode(witnesses)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 255, 256, 16383, 16384, 2**30 - 1])
def test_compact_len_is_scale_compact(n: int) -> None:
    assert calls.compact_len(n) == encode_compact(n)


def test_batches_and_witnesses_are_bounded_as_the_runtime_bounds_them() -> None:
    assert runtime.MAX_BATCH == MAX_BATCH
    assert runtime.MAX_WITNESSES == calls.MAX_WITNESSES
    too_many = [Settlement(bytes(32), True)] * (MAX_BATCH + 1)
    with pytest.raises(ValueError, match="at most 256"):
        calls.settle_tasks(too_many)
    with pytest.raises(ValueError, match="witnesses"):
        calls.report_invalid_result(bytes(32), [bytes(32)] * 5)
