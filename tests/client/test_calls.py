"""The Tasks calls' pre-encoded arguments: their SCALE layout by hand (the runtime's types:
docs/verification.md), and against the runtime's own codec for the batch items (tests/client/
test_connection.py checks them against substrate-interface on a node)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.codec import encode_compact
from chain.frame.types import Vec
from chainclient import calls
from chainclient.calls import MAX_BATCH, ResultCommit, TaskCommit
from pallets.tasks import pallet as runtime

hashes = st.binary(min_size=32, max_size=32)
u32s = st.integers(min_value=0, max_value=2**32 - 1)
u128s = st.integers(min_value=0, max_value=2**128 - 1)
commits = st.lists(st.builds(TaskCommit, hashes, hashes, hashes, u32s, u128s), max_size=MAX_BATCH)
results = st.lists(st.builds(ResultCommit, hashes, hashes), max_size=MAX_BATCH)


def only_arg(call: calls.Call, name: str) -> bytes:
    ((arg, data),) = call.encoded
    assert arg == name
    return data


@given(commits)
def test_commit_tasks_matches_the_runtime_codec(items: list[TaskCommit]) -> None:
    call = calls.commit_tasks(items)
    reference = [
        runtime.TaskCommit(i.task_id, i.spec_hash, i.miner, i.deadline, i.price) for i in items
    ]
    assert (call.module, call.function) == ("Tasks", "commit_tasks")
    assert only_arg(call, "batch") == Vec(runtime.TASK_COMMIT, MAX_BATCH).encode(reference)


@given(results)
def test_submit_results_matches_the_runtime_codec(items: list[ResultCommit]) -> None:
    reference = [runtime.ResultCommit(i.task_id, i.commitment) for i in items]
    expected = Vec(runtime.RESULT_COMMIT, MAX_BATCH).encode(reference)
    assert only_arg(calls.submit_results(items), "batch") == expected


@given(st.lists(hashes, max_size=MAX_BATCH))
def test_settle_tasks_is_a_vec_of_task_ids(ids: list[bytes]) -> None:
    assert only_arg(calls.settle_tasks(ids), "task_ids") == encode_compact(len(ids)) + b"".join(ids)


@given(hashes, hashes, hashes, st.binary(max_size=600), hashes)
def test_check_calls_encode_their_arguments_in_order(
    task_id: bytes, result_hash: bytes, device_hash: bytes, sketch: bytes, salt: bytes
) -> None:
    assert calls.dispute_task(task_id).encoded == (("task_id", task_id),)
    assert calls.appeal(task_id).encoded == (("task_id", task_id),)
    assert calls.commit_check(task_id, salt).encoded == (
        ("task_id", task_id),
        ("commitment", salt),
    )
    spec = calls.reveal_spec(task_id, sketch)
    assert spec.args_bytes == task_id + encode_compact(len(sketch)) + sketch
    reveal = calls.reveal_result(task_id, result_hash, device_hash, sketch, salt)
    assert [name for name, _ in reveal.encoded] == [
        "task_id",
        "result_hash",
        "device_hash",
        "sketch",
        "salt",
    ]
    assert reveal.args_bytes == (
        task_id + result_hash + device_hash + encode_compact(len(sketch)) + sketch + salt
    )


def test_hash_arguments_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="task_id must be 32 bytes"):
        calls.dispute_task(b"\x00" * 31)
    with pytest.raises(ValueError, match="salt must be 32 bytes"):
        calls.reveal_result(bytes(32), bytes(32), bytes(32), b"", bytes(33))


@pytest.mark.parametrize("n", [0, 1, 63, 64, 255, 256, 16383, 16384, 2**30 - 1])
def test_compact_len_is_scale_compact(n: int) -> None:
    assert calls.compact_len(n) == encode_compact(n)


def test_batches_are_bounded_as_the_runtime_bounds_them() -> None:
    assert runtime.MAX_BATCH == MAX_BATCH
    with pytest.raises(ValueError, match="at most 256"):
        calls.settle_tasks([bytes(32)] * (MAX_BATCH + 1))


def test_a_price_must_fit_a_u128() -> None:
    item = TaskCommit(bytes(32), bytes(32), bytes(32), 5, 2**128)
    with pytest.raises(ValueError, match="u128"):
        calls.commit_tasks([item])
    assert calls.commit_tasks([TaskCommit(bytes(32), bytes(32), bytes(32), 5, 7)]).args_bytes[
        -16:
    ] == (7).to_bytes(16, "little")
