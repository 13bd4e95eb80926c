"""`Tasks.Tasks(task_id)` and `Tasks.Checks(task_id)`: a `Task` and a `Check`, decoded from their
SCALE bytes here and nowhere else; the Tasks events the daemons read (CheckOpened, and a settled
task's TaskSettled and TaskPaid: `Settlement`).

The daemons read many tasks at every head; decoding the value by hand is about 100 times faster
than through scalecodec (tests compare the two on a real node). A settled task leaves
`Tasks.Tasks` RetentionBlocks after it settled (pruned): what it paid stays in the events of the
block that settled it (`chainclient.events`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from chainclient import ClientError

V = TypeVar("V")

# pallet_cuckoo_tasks enums, in variant order
TASK_STATUSES = ("Committed", "Submitted", "Accepted", "Rejected", "Missed", "Checking")
FINAL_STATUSES = frozenset({"Accepted", "Rejected", "Missed"})
CHECK_OUTCOMES = ("Unchecked", "Verified", "Upheld", "Guilty")
CHECK_PHASES = ("SpecDue", "Committing", "Revealing", "Appealable")


class DecodeError(ClientError):
    """Bytes read from chain do not have the layout the client knows."""


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """A task as committed on chain (accounts are stakers, not operators)."""

    coordinator: bytes
    miner: bytes
    spec_hash: bytes
    deadline: int
    committed_at: int
    status: str  # Committed | Submitted | Accepted | Rejected | Missed | Checking
    commitment: bytes | None = None
    submitted_at: int | None = None
    settled_at: int | None = None
    outcome: str = "Unchecked"  # Unchecked | Verified | Upheld | Guilty
    draw_at: int | None = None  # the block whose randomness draws a submitted result
    price: int = 0  # planck escrowed from `payer` at commit, paid out when the task settles
    payer: bytes = bytes(32)  # the coordinator's operator that committed it
    deposit: int = 0  # planck reserved from `payer` until the task is pruned

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclasses.dataclass(frozen=True, slots=True)
class Payment:
    """Tasks.TaskPaid: how a settled task's escrowed price moved, in planck: to the miner's
    staker, burned, to the checkers that were right, back to the payer."""

    to_miner: int
    burned: int
    to_checkers: int
    refunded: int

    @property
    def total(self) -> int:
        """The task's price (every planck of it went one of the four ways)."""
        return self.to_miner + self.burned + self.to_checkers + self.refunded


@dataclasses.dataclass(frozen=True, slots=True)
class Settlement:
    """A task's settlement as the events of the block that settled it tell it: TaskSettled
    (final status and check outcome) and TaskPaid (`payment`, with the miner it names). Either
    part is None when its event was not found."""

    task_id: bytes
    block: int
    status: str | None = None  # Accepted | Rejected | Missed
    outcome: str | None = None  # Unchecked | Verified | Upheld | Guilty
    miner: bytes | None = None
    payment: Payment | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Reveal:
    result_hash: bytes
    device_hash: bytes
    sketch: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Checker:
    account: bytes  # a miner's staker
    round: int
    commitment: bytes | None = None
    reveal: Reveal | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """An open check of a task: its round (0 sampled, 1 disputed or re-checked, 2 appeal), the
    phase and when it ends, every checker drawn so far (all rounds), the miner's reveal."""

    round: int
    phase: str  # SpecDue | Committing | Revealing | Appealable
    phase_ends: int
    checkers: tuple[Checker, ...] = ()
    miner_reveal: Reveal | None = None
    disputed_by: bytes | None = None

    def checker(self, account: bytes) -> Checker | None:
        """`account`'s entry for the current round, if it was drawn for it."""
        for c in self.checkers:
            if c.account == account and c.round == self.round:
                return c
        return None


class _Reader:
    def __init__(self, raw: bytes, what: str) -> None:
        self._raw = raw
        self._pos = 0
        self._what = what

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._raw):
            raise DecodeError(f"truncated {self._what}")
        out = self._raw[self._pos : self._pos + n]
        self._pos += n
        return out

    def hash(self) -> bytes:
        return self.take(32)

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u128(self) -> int:
        return int.from_bytes(self.take(16), "little")

    def compact(self) -> int:
        first = self.take(1)[0]
        mode = first & 3
        if mode == 0:
            return first >> 2
        if mode == 1:
            return int.from_bytes(bytes([first]) + self.take(1), "little") >> 2
        if mode == 2:
            return int.from_bytes(bytes([first]) + self.take(3), "little") >> 2
        return int.from_bytes(self.take((first >> 2) + 4), "little")

    def bytes_(self) -> bytes:
        return self.take(self.compact())

    def vec(self, read: Callable[[], V]) -> list[V]:
        return [read() for _ in range(self.compact())]

    def option(self, read: Callable[[], V]) -> V | None:
        flag = self.take(1)[0]
        if flag > 1:
            raise DecodeError(f"bad Option flag in {self._what}")
        return read() if flag else None

    def variant(self, names: tuple[str, ...]) -> str:
        index = self.take(1)[0]
        if index >= len(names):
            raise DecodeError(f"bad enum index {index} in {self._what}")
        return names[index]

    def finish(self) -> None:
        if self._pos != len(self._raw):
            raise DecodeError(f"trailing bytes after {self._what}")


def decode_task(raw: bytes) -> Task:
    """SCALE-decode pallet_cuckoo_tasks::Task: AccountId coordinator, AccountId miner, H256
    spec_hash, u32 deadline, u32 committed_at, TaskStatus status, Option<H256> commitment,
    Option<u32> submitted_at, Option<u32> settled_at, CheckOutcome outcome, Option<u32>
    draw_at, u128 price, AccountId payer, u128 deposit."""
    r = _Reader(raw, "Task")
    task = Task(
        coordinator=r.hash(),
        miner=r.hash(),
        spec_hash=r.hash(),
        deadline=r.u32(),
        committed_at=r.u32(),
        status=r.variant(TASK_STATUSES),
        commitment=r.option(r.hash),
        submitted_at=r.option(r.u32),
        settled_at=r.option(r.u32),
        outcome=r.variant(CHECK_OUTCOMES),
        draw_at=r.option(r.u32),
        price=r.u128(),
        payer=r.hash(),
        deposit=r.u128(),
    )
    r.finish()
    return task


def _reveal(r: _Reader) -> Reveal:
    return Reveal(r.hash(), r.hash(), r.bytes_())


def _checker(r: _Reader) -> Checker:
    return Checker(r.hash(), r.u8(), r.option(r.hash), r.option(lambda: _reveal(r)))


def decode_check(raw: bytes) -> Check:
    """SCALE-decode pallet_cuckoo_tasks::Check: u8 round, CheckPhase phase, u32 phase_ends,
    Vec<Checker{AccountId, u8 round, Option<H256> commitment, Option<Reveal>}> checkers,
    Option<Reveal{H256 result_hash, H256 device_hash, Vec<u8> sketch}> miner_reveal,
    Option<AccountId> disputed_by."""
    r = _Reader(raw, "Check")
    check = Check(
        round=r.u8(),
        phase=r.variant(CHECK_PHASES),
        phase_ends=r.u32(),
        checkers=tuple(r.vec(lambda: _checker(r))),
        miner_reveal=r.option(lambda: _reveal(r)),
        disputed_by=r.option(r.hash),
    )
    r.finish()
    return check


def encode_task(task: Task) -> bytes:
    """The SCALE bytes `decode_task` reads (for tests and fakes)."""

    def opt(v: bytes | None) -> bytes:
        return b"\x00" if v is None else b"\x01" + v

    def opt32(v: int | None) -> bytes:
        return b"\x00" if v is None else b"\x01" + v.to_bytes(4, "little")

    return (
        task.coordinator
        + task.miner
        + task.spec_hash
        + task.deadline.to_bytes(4, "little")
        + task.committed_at.to_bytes(4, "little")
        + bytes([TASK_STATUSES.index(task.status)])
        + opt(task.commitment)
        + opt32(task.submitted_at)
        + opt32(task.settled_at)
        + bytes([CHECK_OUTCOMES.index(task.outcome)])
        + opt32(task.draw_at)
        + task.price.to_bytes(16, "little")
        + task.payer
        + task.deposit.to_bytes(16, "little")
    )


def encode_check(check: Check) -> bytes:
    """The SCALE bytes `decode_check` reads (for tests and fakes)."""
    from chainclient.calls import compact_len

    def reveal(v: Reveal | None) -> bytes:
        if v is None:
            return b"\x00"
        return b"\x01" + v.result_hash + v.device_hash + compact_len(len(v.sketch)) + v.sketch

    out = bytes([check.round, CHECK_PHASES.index(check.phase)])
    out += check.phase_ends.to_bytes(4, "little") + compact_len(len(check.checkers))
    for c in check.checkers:
        out += c.account + bytes([c.round])
        out += b"\x00" if c.commitment is None else b"\x01" + c.commitment
        out += reveal(c.reveal)
    out += reveal(check.miner_reveal)
    out += b"\x00" if check.disputed_by is None else b"\x01" + check.disputed_by
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class CheckOpened:
    """Tasks.CheckOpened: a check round began and drew `checkers` (stakers)."""

    task_id: bytes
    round: int
    checkers: tuple[bytes, ...]
    phase: str
    phase_ends: int


def parse_check_opened(attributes: object) -> CheckOpened:
    """From substrate-interface's decoded event attributes: a dict by field name (or a list in
    field order); accounts as SS58 or 0x-hex, the phase as its name (or {name: None})."""
    from chainclient.accounts import account_id, h256

    fields = ("task_id", "round", "checkers", "phase", "phase_ends")
    if isinstance(attributes, dict):
        values = [attributes.get(f) for f in fields]
    elif isinstance(attributes, list | tuple) and len(attributes) == len(fields):
        values = list(attributes)
    else:
        raise DecodeError(f"unexpected CheckOpened attributes: {attributes!r}")
    task_id, rnd, checkers, phase, phase_ends = values
    if isinstance(phase, dict) and len(phase) == 1:
        phase = next(iter(phase))
    if not isinstance(checkers, list | tuple) or str(phase) not in CHECK_PHASES:
        raise DecodeError(f"unexpected CheckOpened attributes: {attributes!r}")
    try:
        return CheckOpened(
            h256(task_id),
            int(str(rnd)),
            tuple(account_id(c if isinstance(c, str | bytes) else str(c)) for c in checkers),
            str(phase),
            int(str(phase_ends)),
        )
    except ValueError as exc:
        raise DecodeError(f"unexpected CheckOpened attributes: {attributes!r}") from exc


def _fields(attributes: object, fields: tuple[str, ...], what: str) -> list[object]:
    if isinstance(attributes, dict):
        return [attributes.get(f) for f in fields]
    if isinstance(attributes, list | tuple) and len(attributes) == len(fields):
        return list(attributes)
    raise DecodeError(f"unexpected {what} attributes: {attributes!r}")


def _variant_name(value: object) -> str:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return str(value)


def parse_task_paid(attributes: object, block: int) -> Settlement:
    """Tasks.TaskPaid from substrate-interface's decoded event attributes (by name or in field
    order): the settlement's payment part."""
    from chainclient.accounts import account_id, h256

    fields = ("task_id", "miner", "to_miner", "burned", "to_checkers", "refunded")
    task_id, miner, *amounts = _fields(attributes, fields, "TaskPaid")
    try:
        to_miner, burned, to_checkers, refunded = (int(str(a)) for a in amounts)
        return Settlement(
            h256(task_id),
            block,
            miner=account_id(miner if isinstance(miner, str | bytes) else str(miner)),
            payment=Payment(to_miner, burned, to_checkers, refunded),
        )
    except ValueError as exc:
        raise DecodeError(f"unexpected TaskPaid attributes: {attributes!r}") from exc


def parse_task_settled(attributes: object, block: int) -> Settlement:
    """Tasks.TaskSettled from substrate-interface's decoded event attributes: the settlement's
    status part."""
    from chainclient.accounts import h256

    task_id, status, outcome = _fields(attributes, ("task_id", "status", "outcome"), "TaskSettled")
    status, outcome = _variant_name(status), _variant_name(outcome)
    if status not in FINAL_STATUSES or outcome not in CHECK_OUTCOMES:
        raise DecodeError(f"unexpected TaskSettled attributes: {attributes!r}")
    try:
        return Settlement(h256(task_id), block, status=status, outcome=outcome)
    except ValueError as exc:
        raise DecodeError(f"unexpected TaskSettled attributes: {attributes!r}") from exc


def merge_settlements(parts: list[Settlement]) -> dict[bytes, Settlement]:
    """TaskSettled and TaskPaid parts of the same block, one `Settlement` per task."""
    out: dict[bytes, Settlement] = {}
    for part in parts:
        have = out.get(part.task_id)
        if have is None:
            out[part.task_id] = part
            continue
        out[part.task_id] = dataclasses.replace(
            have,
            status=have.status or part.status,
            outcome=have.outcome or part.outcome,
            miner=have.miner or part.miner,
            payment=have.payment or part.payment,
        )
    return out
