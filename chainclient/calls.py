"""Runtime calls as the client sends them, and the Tasks pallet's calls encoded here.

A `Call` names `module.function` and its arguments: substrate-interface values in `params`
(encoded by the library, for occasional calls), or SCALE bytes per argument in `encoded` (taken
as they are). The Tasks pallet's calls go the second way: the coordinator sends hundreds of items
per block, and scalecodec spends about 1 ms per item. Tests check these bytes against
substrate-interface's encoding on a real node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_BATCH = 256  # Tasks.MaxBatch: items per commit/submit/settle batch
MAX_WITNESSES = 4  # Tasks: witnesses per report_invalid_result
TASKS = "Tasks"


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
    """A coordinator's commitment: `miner` (a staker) must answer by block `deadline`."""

    task_id: bytes
    spec_hash: bytes
    miner: bytes
    deadline: int
    audit_of: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ResultCommit:
    """A miner's result: hash of the PNG and of its device-class fingerprint."""

    task_id: bytes
    result_hash: bytes
    device_hash: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Settlement:
    task_id: bytes
    accept: bool


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


def _option_h256(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value


def _batch(function: str, rows: Sequence[bytes]) -> Call:
    if len(rows) > MAX_BATCH:
        raise ValueError(f"Tasks.{function}: {len(rows)} items, at most {MAX_BATCH}")
    return Call(TASKS, function, encoded=(("batch", _vec(rows)),))


def commit_tasks(items: Iterable[TaskCommit]) -> Call:
    """Tasks.commit_tasks(batch: Vec<TaskCommit{task_id: H256, spec_hash: H256, miner:
    AccountId, deadline: u32, audit_of: Option<H256>}>)."""
    return _batch(
        "commit_tasks",
        [
            i.task_id
            + i.spec_hash
            + i.miner
            + i.deadline.to_bytes(4, "little")
            + _option_h256(i.audit_of)
            for i in items
        ],
    )


def submit_results(items: Iterable[ResultCommit]) -> Call:
    """Tasks.submit_results(batch: Vec<ResultCommit{task_id, result_hash, device_hash: H256}>)."""
    return _batch("submit_results", [i.task_id + i.result_hash + i.device_hash for i in items])


def settle_tasks(items: Iterable[Settlement]) -> Call:
    """Tasks.settle_tasks(batch: Vec<Settlement{task_id: H256, accept: bool}>)."""
    return _batch("settle_tasks", [i.task_id + (b"\x01" if i.accept else b"\x00") for i in items])


def report_invalid_result(task_id: bytes, witnesses: Sequence[bytes]) -> Call:
    """Tasks.report_invalid_result(task_id: H256, witnesses: Vec<H256>)."""
    if len(witnesses) > MAX_WITNESSES:
        raise ValueError(f"at most {MAX_WITNESSES} witnesses")
    return Call(
        TASKS,
        "report_invalid_result",
        encoded=(("task_id", task_id), ("witnesses", _vec(list(witnesses)))),
    )
