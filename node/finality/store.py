"""Where a finality voter records the votes it signed, before it sends them.

The voter signs only in its current round and the one before, and a restarted voter resumes in
the highest round on record and never signs below it (`node.finality.voter`). So the votes of
the two highest rounds signed in a set are all that is kept: one record per set, rewritten as
the voter moves on. A vote for a lower round is not written (the voter never asks for that).
The votes of the round before the highest are kept so that a restarted voter can re-send them
to voters still finishing that round.

Layout in the node's key/value store: `g:` + set id (u64, big-endian) -> for each kept round
(ascending): round (u64, LE), vote count (compact), the SCALE-encoded votes by phase. Every
write is synced before it returns.
"""

from __future__ import annotations

from chain.codec import CodecError, Decoder, encode_compact, encode_u64
from chain.consensus import PHASES, Vote
from chain.storage.kv import KVStore

PREFIX = b"g:"
KEPT_ROUNDS = 2

Record = dict[int, dict[int, Vote]]  # round -> {phase: vote}


def _key(prefix: bytes, set_id: int) -> bytes:
    return prefix + set_id.to_bytes(8, "big")


def _merge(current: Record, round_number: int, vote: Vote) -> Record | None:
    """The record after `vote`, or None when nothing changes. Raises ValueError for a second,
    different vote of one phase in one round (the voter must never ask for that)."""
    top = max(current, default=round_number)
    if round_number <= top - KEPT_ROUNDS:
        return None
    existing = current.get(round_number, {}).get(vote.phase)
    if existing is not None:
        if existing != vote:
            raise ValueError(f"a different vote is already recorded for round {round_number}")
        return None
    merged = {r: dict(p) for r, p in current.items()}
    merged.setdefault(round_number, {})[vote.phase] = vote
    top = max(merged)
    return {r: p for r, p in merged.items() if r > top - KEPT_ROUNDS}


def _last(record: Record) -> tuple[int, dict[int, Vote]] | None:
    if not record:
        return None
    top = max(record)
    return top, dict(record[top])


def encode_record(record: Record) -> bytes:
    out = [encode_compact(len(record))]
    for r in sorted(record):
        phases = record[r]
        out.append(encode_u64(r) + encode_compact(len(phases)))
        out.extend(phases[p].encode() for p in sorted(phases))
    return b"".join(out)


def decode_record(data: bytes) -> Record:
    d = Decoder(data)
    record: Record = {}
    for _ in range(d.compact()):
        r = d.u64()
        count = d.compact()
        if r in record or count > len(PHASES):
            raise CodecError("malformed vote record")
        phases: dict[int, Vote] = {}
        for _ in range(count):
            vote = Vote.decode_from(d)
            if vote.phase in phases:
                raise CodecError("two votes of one phase in a vote record")
            phases[vote.phase] = vote
        record[r] = phases
    d.finish()
    return record


class KVVoteStore:
    """A `VoteStore` over the node's database (synced writes)."""

    def __init__(self, kv: KVStore, prefix: bytes = PREFIX) -> None:
        self._kv = kv
        self._prefix = prefix

    def recent(self, set_id: int) -> Record:
        raw = self._kv.get(_key(self._prefix, set_id))
        return {} if raw is None else decode_record(raw)

    def last_signed(self, set_id: int) -> tuple[int, dict[int, Vote]] | None:
        return _last(self.recent(set_id))

    def record(self, set_id: int, round_number: int, vote: Vote) -> None:
        key = _key(self._prefix, set_id)
        current = self.recent(set_id)
        merged = _merge(current, round_number, vote)
        if merged is None:
            return
        ops: list[tuple[bytes, bytes | None]] = [(key, encode_record(merged))]
        if not current:  # a new set: forget the records of earlier ones
            ops = [(k, None) for k, _ in self._kv.iterate(self._prefix) if k < key] + ops
        self._kv.write_batch(ops, sync=True)


class MemoryVoteStore:
    """A `VoteStore` in memory (tests, and nodes without a database)."""

    def __init__(self) -> None:
        self._records: dict[int, Record] = {}
        self.writes = 0

    def recent(self, set_id: int) -> Record:
        return {r: dict(p) for r, p in self._records.get(set_id, {}).items()}

    def last_signed(self, set_id: int) -> tuple[int, dict[int, Vote]] | None:
        return _last(self._records.get(set_id, {}))

    def record(self, set_id: int, round_number: int, vote: Vote) -> None:
        merged = _merge(self._records.get(set_id, {}), round_number, vote)
        if merged is not None:
            self._records[set_id] = merged
            self.writes += 1


__all__ = [
    "KEPT_ROUNDS",
    "PREFIX",
    "KVVoteStore",
    "MemoryVoteStore",
    "Record",
    "decode_record",
    "encode_record",
]
