"""What a miner must not forget about a result it committed: the salt and the values that open
its commitment (docs/verification.md, "Blind results").

One JSON file per task under `<data dir>/results/`, written (fsync, then an atomic rename) before
the commitment is submitted, so that a miner restarted at any point can still reveal when its
task, or a task it checks, is checked. A record is removed once the task is final on chain, or
once it is gone from chain state after it was seen there: the chain prunes a settled task
RetentionBlocks after it settled, so a miner that was stopped longer than that finds nothing
(how it ended stays in the events of its settlement block). A MINER record keeps what the task
pays (its on-chain price) from when it was first seen on chain. Without a data directory the
records live in memory only (tests, throw-away miners).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from chain.taskproto import result_commitment

log = logging.getLogger(__name__)

MINER = "miner"  # the result of a task assigned to this miner
CHECKER = "checker"  # this miner re-ran another miner's task as a drawn checker


@dataclasses.dataclass(slots=True)
class Opening:
    """The values that open a commitment."""

    result_hash: bytes
    device_hash: bytes
    sketch: bytes
    salt: bytes

    def commitment(self, staker: bytes, task_id: bytes) -> bytes:
        return result_commitment(
            staker, task_id, self.result_hash, self.device_hash, self.sketch, self.salt
        )


@dataclasses.dataclass(slots=True)
class Record:
    task_id: bytes
    role: str  # MINER | CHECKER
    deadline: int = 0  # a MINER record: the task's deadline (dropped after it if never committed)
    opening: Opening | None = None  # a CHECKER record has none until it solved the spec
    commitment: bytes | None = None
    round: int | None = None  # a CHECKER record: the round it was drawn for
    revealed_round: int | None = None  # the last round we revealed in
    appealed: bool = False
    committed_at: int | None = None  # a MINER record: the task's commit block, once seen on chain
    price: int | None = None  # a MINER record: planck the task pays (its on-chain record)

    @property
    def task_hex(self) -> str:
        return "0x" + self.task_id.hex()

    def to_json(self) -> dict[str, Any]:
        o = self.opening
        return {
            "task_id": self.task_id.hex(),
            "role": self.role,
            "deadline": self.deadline,
            "opening": None
            if o is None
            else {
                "result_hash": o.result_hash.hex(),
                "device_hash": o.device_hash.hex(),
                "sketch": o.sketch.hex(),
                "salt": o.salt.hex(),
            },
            "commitment": None if self.commitment is None else self.commitment.hex(),
            "round": self.round,
            "revealed_round": self.revealed_round,
            "appealed": self.appealed,
            "committed_at": self.committed_at,
            "price": None if self.price is None else str(self.price),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        o = obj.get("opening")
        opening = (
            None
            if o is None
            else Opening(
                bytes.fromhex(o["result_hash"]),
                bytes.fromhex(o["device_hash"]),
                bytes.fromhex(o["sketch"]),
                bytes.fromhex(o["salt"]),
            )
        )
        role = str(obj["role"])
        if role not in (MINER, CHECKER):
            raise ValueError(f"unknown role {role!r}")
        commitment = obj.get("commitment")
        price = obj.get("price")
        return cls(
            task_id=bytes.fromhex(obj["task_id"]),
            role=role,
            deadline=int(obj.get("deadline", 0)),
            opening=opening,
            commitment=None if commitment is None else bytes.fromhex(commitment),
            round=obj.get("round"),
            revealed_round=obj.get("revealed_round"),
            appealed=bool(obj.get("appealed", False)),
            committed_at=obj.get("committed_at"),
            price=None if price is None else int(price),
        )


class RecordStore:
    """Records by task id, each in its own file (see the module docstring)."""

    def __init__(self, directory: Path | None) -> None:
        self._dir = directory
        self._records: dict[bytes, Record] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    def _load(self) -> None:
        assert self._dir is not None
        for path in sorted(self._dir.glob("*.json")):
            try:
                rec = Record.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("ignoring unreadable result record %s: %s", path, exc)
                continue
            self._records[rec.task_id] = rec
        if self._records:
            log.info("%d result record(s) kept from before the restart", len(self._records))

    def get(self, task_id: bytes) -> Record | None:
        return self._records.get(task_id)

    def all(self) -> list[Record]:
        return list(self._records.values())

    def put(self, record: Record) -> None:
        """Store durably (on disk when this returns)."""
        self._records[record.task_id] = record
        if self._dir is None:
            return
        path = self._dir / (record.task_id.hex() + ".json")
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(record.to_json(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self, task_id: bytes) -> None:
        self._records.pop(task_id, None)
        if self._dir is not None:
            (self._dir / (task_id.hex() + ".json")).unlink(missing_ok=True)
