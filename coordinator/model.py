"""The coordinator's records: jobs (what an app asked for) and attempts (on-chain tasks).

A *job* is one image an app asked for. It has one slot (the primary; the audit copies and
tie-breakers of the earlier design are gone: checking is the chain's, docs/verification.md),
served by *attempts*: on-chain tasks with their own random 32-byte id, each given to one miner.
An attempt that fails (missed deadline, released, a delivery that does not open the miner's
on-chain commitment) is replaced by a new attempt on another miner. The first attempt's id is the
job id the app sees. The chosen attempt is followed on chain until it is final: its check outcome
is the job's verification, and how its price moved (the TaskPaid event of the block that settled
it) is the receipt's payment. Both are kept here: the chain prunes a settled task from
`Tasks.Tasks` RetentionBlocks later.

Amounts (prices, payments) are planck, written to rows as decimal strings (they are u128s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Any

from chainclient.tasks import Payment


class Role(enum.StrEnum):
    PRIMARY = "primary"
    AUDIT = "audit"  # rows written before checked work only
    TIEBREAK = "tiebreak"  # rows written before checked work only


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # accepted, no miner holds it yet
    RUNNING = "running"  # a miner holds it, or results are being verified
    SUCCEEDED = "succeeded"  # the image is available
    FAILED = "failed"  # no result could be obtained (expired, too many failed attempts)


class AState(enum.StrEnum):
    ASSIGNED = "assigned"  # in its miner's queue
    DELIVERED = "delivered"  # handed to the miner by a poll
    UPLOADED = "uploaded"  # image received; waiting for the miner's on-chain result
    CONFIRMED = "confirmed"  # the on-chain commitment is opened by the upload, a valid image
    RELEASED = "released"  # handed back, or its miner went silent/inactive
    MISSED = "missed"  # deadline passed without a confirmed result
    INVALID = "invalid"  # the upload does not open the on-chain commitment, or is disputed
    DROPPED = "dropped"  # could not be committed

    @property
    def is_live(self) -> bool:
        return self in (AState.ASSIGNED, AState.DELIVERED, AState.UPLOADED, AState.CONFIRMED)


class CState(enum.StrEnum):
    PENDING = "pending"  # to be committed in the next batch
    INFLIGHT = "inflight"  # in a submitted commit_tasks extrinsic
    CHECK = "check"  # unknown after a restart: look it up on chain
    COMMITTED = "committed"
    ABANDONED = "abandoned"  # never to be committed


class Settle(enum.StrEnum):
    NONE = "none"  # no decision yet
    PENDING = "pending"  # decided: settle_tasks (accept) or dispute_task in the next batch
    INFLIGHT = "inflight"  # in a submitted settle_tasks or dispute_task extrinsic
    AUTO = "auto"  # settled by the chain (deadline, or a check): watch for the final outcome
    DONE = "done"  # final on chain (Accepted/Rejected/Missed)


@dataclasses.dataclass(slots=True)
class Attempt:
    task_id: bytes
    job_id: bytes
    slot: int
    role: Role
    miner: bytes  # staker account
    operator: bytes
    deadline: int
    created_ms: int
    state: AState = AState.ASSIGNED
    commit: CState = CState.PENDING
    commit_block: int | None = None
    commit_failures: int = 0
    delivered_ms: int | None = None
    result_hash: bytes | None = None  # uploaded
    device_hash: bytes | None = None  # uploaded header
    sketch: bytes | None = None  # uploaded header
    salt: bytes | None = None  # uploaded header
    commitment: bytes | None = None  # what the upload opens (taskproto.result_commitment)
    bad_image: bool = False  # the upload is not a valid image of the spec
    device_info: str | None = None
    chain_commitment: bytes | None = None
    result_block: int | None = None
    settle: Settle = Settle.NONE
    accept: bool | None = None  # True: settle_tasks (accept early); False: dispute_task
    settle_block: int | None = None
    final_status: str | None = None  # Accepted | Rejected | Missed
    checking: bool = False  # a check is open on chain (status Checking)
    outcome: str | None = None  # the final check outcome: Unchecked | Verified | Upheld | Guilty
    spec_sent_head: int | None = None  # head at which reveal_spec was last submitted
    price: int = 0  # planck, escrowed by the operator when committed (the job's price)
    payment: Payment | None = None  # how the price moved when the task settled (TaskPaid)
    payment_missing: bool = False  # no TaskPaid in the settlement block: given up looking
    scan_from: int | None = None  # pruned before seen final: next block to search for its events
    is_durable: bool = False  # written to disk (then it may be handed out / committed)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in _ATTEMPT_FIELDS:
            v = getattr(self, name)
            if name == "price":
                v = str(v)
            elif isinstance(v, Payment):
                v = {f.name: str(getattr(v, f.name)) for f in dataclasses.fields(Payment)}
            elif v is None or type(v) is int or type(v) is bool:
                pass
            elif isinstance(v, bytes):
                v = v.hex()
            elif isinstance(v, enum.Enum):
                v = v.value
            row[name] = v
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Attempt:
        def b(name: str) -> bytes | None:
            v = row.get(name)
            return None if v is None else bytes.fromhex(v)

        paid = row.get("payment")

        return cls(
            task_id=bytes.fromhex(row["task_id"]),
            job_id=bytes.fromhex(row["job_id"]),
            slot=int(row["slot"]),
            role=Role(row["role"]),
            miner=bytes.fromhex(row["miner"]),
            operator=bytes.fromhex(row["operator"]),
            deadline=int(row["deadline"]),
            created_ms=int(row["created_ms"]),
            state=AState(row["state"]),
            commit=CState(row["commit"]),
            commit_block=row.get("commit_block"),
            commit_failures=int(row.get("commit_failures", 0)),
            delivered_ms=row.get("delivered_ms"),
            result_hash=b("result_hash"),
            device_hash=b("device_hash"),
            sketch=b("sketch"),
            salt=b("salt"),
            commitment=b("commitment"),
            bad_image=bool(row.get("bad_image", False)),
            device_info=row.get("device_info"),
            chain_commitment=b("chain_commitment"),
            result_block=row.get("result_block"),
            settle=Settle(row.get("settle", "none")),
            accept=row.get("accept"),
            settle_block=row.get("settle_block"),
            final_status=row.get("final_status"),
            checking=bool(row.get("checking", False)),
            outcome=row.get("outcome"),
            spec_sent_head=row.get("spec_sent_head"),
            price=int(row.get("price", 0)),
            payment=None
            if paid is None
            else Payment(*(int(paid[f.name]) for f in dataclasses.fields(Payment))),
            payment_missing=bool(row.get("payment_missing", False)),
            scan_from=row.get("scan_from"),
            is_durable=True,
        )

    @property
    def is_closed(self) -> bool:
        """Nothing more to do on chain for this attempt."""
        if self.commit in (CState.INFLIGHT, CState.CHECK):
            return False
        if self.is_followed:  # until final, with its check outcome and its payment
            return self.settle is Settle.DONE and (self.payment is not None or self.payment_missing)
        return not self.state.is_live

    @property
    def is_followed(self) -> bool:
        """A result the coordinator follows on chain until it is final: a confirmed one, or one
        it disputed."""
        return self.state is AState.CONFIRMED or (
            self.state is AState.INVALID and self.accept is False
        )

    @property
    def verification(self) -> str:
        """The chain's word on this result: pending (not final, or being checked), else the
        final check outcome in lower case (unchecked, verified, upheld, guilty)."""
        if self.final_status is None or self.outcome is None:
            return "pending"
        return self.outcome.lower()


_ATTEMPT_FIELDS = tuple(f.name for f in dataclasses.fields(Attempt) if f.name != "is_durable")


@dataclasses.dataclass(slots=True)
class Job:
    job_id: bytes
    spec: dict[str, Any]
    spec_hash: bytes
    created_ms: int
    slots: list[Role]
    price: int = 0  # planck each of its on-chain tasks pays (the price list's, when submitted)
    status: JobStatus = JobStatus.QUEUED
    verification: str | None = None  # the chosen attempt's (see Attempt.verification)
    chosen: bytes | None = None  # task id whose image the app gets
    error: str | None = None
    finished_ms: int | None = None
    attempts: list[bytes] = dataclasses.field(default_factory=list)
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    first_delivery_ms: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    def to_row(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id.hex(),
            "spec": self.spec,
            "spec_hash": self.spec_hash.hex(),
            "created_ms": self.created_ms,
            "slots": [r.value for r in self.slots],
            "price": str(self.price),
            "status": self.status.value,
            "verification": self.verification,
            "chosen": None if self.chosen is None else self.chosen.hex(),
            "error": self.error,
            "finished_ms": self.finished_ms,
            "attempts": [a.hex() for a in self.attempts],
            "first_delivery_ms": self.first_delivery_ms,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        job = cls(
            job_id=bytes.fromhex(row["job_id"]),
            spec=row["spec"],
            spec_hash=bytes.fromhex(row["spec_hash"]),
            created_ms=int(row["created_ms"]),
            slots=[Role(r) for r in row["slots"]],
            price=int(row.get("price", 0)),
            status=JobStatus(row["status"]),
            verification=row.get("verification"),
            chosen=None if row.get("chosen") is None else bytes.fromhex(row["chosen"]),
            error=row.get("error"),
            finished_ms=row.get("finished_ms"),
            attempts=[bytes.fromhex(a) for a in row.get("attempts", [])],
            first_delivery_ms=row.get("first_delivery_ms"),
        )
        if job.is_final:
            job.done.set()
        return job
