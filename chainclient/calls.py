"""Runtime calls as the client sends them, and the Tasks pallet's calls encoded here.

A `Call` names `module.function` and its arguments: substrate-interface values in `params`
(encoded by the library, for occasional calls), or SCALE bytes per argument in `encoded` (taken
as they are). The Tasks pallet's calls go the second way: the coordinator sends hundreds of items
per block, and scalecodec spends about 1 ms per item. Tests check these bytes against
substrate-interface's encoding on a real node.

The checked-work protocol (docs/verification.md): coordinators commit tasks, miners submit
blind result commitments, coordinators accept early (`settle_tasks`) or dispute; a checked task
goes through `reveal_spec` (coordinator), `commit_check` (checkers), `reveal_result` (the miner
and the checkers) and, after a Guilty round 1, the miner's `appeal`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_BATCH = 256  # Tasks.MaxBatch: items per commit/submit/settle batch
TASKS = "Tasks"
U128_MAX = 2**128 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    module: str
    function: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    encoded: tuple[tuple[str, bytes], ...] = ()  # (argument name, SCALE bytes), in call order

    @property
    def args_bytes(self) -> bytes:
        """The call's encoded arguments (for a pre-encoded call)."""
        return b"".join(data for _, data in self.encoded)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCommit:
    """A coordinator's commitment: `miner` (a staker) must answer by block `deadline`; its
    operator escrows `price` (planck, at least Tasks.MinTaskPrice), paid out when it settles."""

    task_id: bytes
    spec_hash: bytes
    miner: bytes
    deadline: int
    price: int

    def encode(self) -> bytes:
        """SCALE: H256, H256, AccountId, u32, u128 (the price plain, not compact)."""
        if not 0 <= self.price <= U128_MAX:
            raise ValueError(f"price {self.price} does not fit a u128")
        return (
            self.task_id
            + self.spec_hash
            + self.miner
            + self.deadline.to_bytes(4, "little")
            + self.price.to_bytes(16, "little")
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ResultCommit:
    """A miner's blind result: `chain.taskproto.result_commitment(...)`."""

    task_id: bytes
    commitment: bytes


def compact_len(n: int) -> bytes:
    """SCALE Compact<u32> of a length."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    raise ValueError("length too large")


def _vec(rows: Sequence[bytes]) -> bytes:
    return compact_len(len(rows)) + b"".join(rows)


def _bytes(data: bytes) -> bytes:
    """SCALE Vec<u8>."""
    return compact_len(len(data)) + data


def _h256(name: str, value: bytes) -> tuple[str, bytes]:
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(value)}")
    return name, value


def _batch(function: str, name: str, rows: Sequence[bytes]) -> Call:
    if len(rows) > MAX_BATCH:
        raise ValueError(f"Tasks.{function}: {len(rows)} items, at most {MAX_BATCH}")
    return Call(TASKS, function, encoded=((name, _vec(rows)),))


def commit_tasks(items: Iterable[TaskCommit]) -> Call:
    """Tasks.commit_tasks(batch: Vec<TaskCommit{task_id: H256, spec_hash: H256, miner:
    AccountId, deadline: u32, price: u128}>)."""
    return _batch("commit_tasks", "batch", [i.encode() for i in items])


def submit_results(items: Iterable[ResultCommit]) -> Call:
    """Tasks.submit_results(batch: Vec<ResultCommit{task_id: H256, commitment: H256}>)."""
    return _batch("submit_results", "batch", [i.task_id + i.commitment for i in items])


def settle_tasks(task_ids: Iterable[bytes]) -> Call:
    """Tasks.settle_tasks(task_ids: Vec<H256>): accept submitted results early."""
    return _batch("settle_tasks", "task_ids", list(task_ids))


def dispute_task(task_id: bytes) -> Call:
    """Tasks.dispute_task(task_id: H256): open a round-1 check of a submitted result."""
    return Call(TASKS, "dispute_task", encoded=(_h256("task_id", task_id),))


def reveal_spec(task_id: bytes, spec: bytes) -> Call:
    """Tasks.reveal_spec(task_id: H256, spec: Vec<u8>): the canonical JSON of the task's spec."""
    return Call(TASKS, "reveal_spec", encoded=(_h256("task_id", task_id), ("spec", _bytes(spec))))


def commit_check(task_id: bytes, commitment: bytes) -> Call:
    """Tasks.commit_check(task_id: H256, commitment: H256): a checker's blind result."""
    return Call(
        TASKS,
        "commit_check",
        encoded=(_h256("task_id", task_id), _h256("commitment", commitment)),
    )


def reveal_result(
    task_id: bytes, result_hash: bytes, device_hash: bytes, sketch: bytes, salt: bytes
) -> Call:
    """Tasks.reveal_result(task_id, result_hash, device_hash: H256, sketch: Vec<u8>, salt:
    H256): opens the miner's or a checker's commitment."""
    return Call(
        TASKS,
        "reveal_result",
        encoded=(
            _h256("task_id", task_id),
            _h256("result_hash", result_hash),
            _h256("device_hash", device_hash),
            ("sketch", _bytes(sketch)),
            _h256("salt", salt),
        ),
    )


def appeal(task_id: bytes) -> Call:
    """Tasks.appeal(task_id: H256): a miner found Guilty in round 1 asks for round 2."""
    return Call(TASKS, "appeal", encoded=(_h256("task_id", task_id),))
