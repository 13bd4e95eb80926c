"""Consensus wire formats shared by the runtime and the node: finality votes, justifications,
equivocation proofs and per-session BLS finality proofs.

Everything here is SCALE, signed payloads are domain-separated, and decoding never trusts
lengths beyond the input. The runtime (pallets/session, pallets/finality) verifies equivocation
proofs with these functions; the node's finality gadget signs and checks votes with them.

Votes follow GRANDPA's shape: a validator signs `(message, round, set_id)` where the message is
a prevote or a precommit for a block `(hash, number)`; a block is final when more than 2/3 of the
set precommitted it or a descendant in one round. A justification carries those precommits and
the headers linking each precommit target back to the justified block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chain.codec import (
    CodecError,
    Decoder,
    decode_exact,
    encode_bytes,
    encode_compact,
    encode_u8,
    encode_u32,
    encode_u64,
)
from chain.crypto import SignatureScheme, verify_signature
from chain.primitives import DigestItem, Header

FINALITY_ENGINE_ID = b"FRNK"  # the justification's engine id (GRANDPA's)
AURA_ENGINE_ID = b"aura"

PREVOTE = 0
PRECOMMIT = 1
PHASES = (PREVOTE, PRECOMMIT)

BLS_PUBLIC_LENGTH = 48
BLS_SIGNATURE_LENGTH = 96
MAX_ANCESTRY = 2_048  # headers in one justification
MAX_PRECOMMITS = 1_024


class ConsensusError(ValueError):
    """A malformed or invalid vote, justification or proof."""


def threshold(n: int) -> int:
    """The smallest number of votes that is more than 2/3 of `n`."""
    return n * 2 // 3 + 1


def faulty_tolerance(n: int) -> int:
    return (n - 1) // 3


# ---- votes ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Vote:
    phase: int  # PREVOTE or PRECOMMIT
    target_hash: bytes
    target_number: int

    def encode(self) -> bytes:
        return encode_u8(self.phase) + self.target_hash + encode_u32(self.target_number)

    @classmethod
    def decode_from(cls, d: Decoder) -> Vote:
        phase = d.u8()
        if phase not in PHASES:
            raise CodecError(f"unknown vote phase {phase}")
        return cls(phase, d.read(32), d.u32())


def vote_payload(vote: Vote, round_number: int, set_id: int) -> bytes:
    """What a voter signs (GRANDPA's localized payload: message, round, set id)."""
    return vote.encode() + encode_u64(round_number) + encode_u64(set_id)


@dataclasses.dataclass(frozen=True, slots=True)
class SignedVote:
    vote: Vote
    round: int
    set_id: int
    voter: bytes  # ed25519 public key (32)
    signature: bytes  # 64

    def encode(self) -> bytes:
        return (
            self.vote.encode()
            + encode_u64(self.round)
            + encode_u64(self.set_id)
            + self.voter
            + self.signature
        )

    @classmethod
    def decode_from(cls, d: Decoder) -> SignedVote:
        vote = Vote.decode_from(d)
        return cls(vote, d.u64(), d.u64(), d.read(32), d.read(64))

    @classmethod
    def decode(cls, data: bytes) -> SignedVote:
        return decode_exact(data, cls.decode_from)

    def verify(self) -> bool:
        return verify_signature(
            SignatureScheme.ED25519,
            self.signature,
            vote_payload(self.vote, self.round, self.set_id),
            self.voter,
        )


# ---- justifications ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Precommit:
    target_hash: bytes
    target_number: int
    signature: bytes
    voter: bytes

    def encode(self) -> bytes:
        return self.target_hash + encode_u32(self.target_number) + self.signature + self.voter

    @classmethod
    def decode_from(cls, d: Decoder) -> Precommit:
        return cls(d.read(32), d.u32(), d.read(64), d.read(32))


@dataclasses.dataclass(frozen=True, slots=True)
class Justification:
    """Proof that `target` is final: precommits of more than 2/3 of set `set_id` in `round`
    for `target` or its descendants, with the headers from each precommit target back to it."""

    round: int
    set_id: int
    target_hash: bytes
    target_number: int
    precommits: tuple[Precommit, ...]
    ancestry: tuple[Header, ...]

    def encode(self) -> bytes:
        return b"".join(
            (
                encode_u64(self.round),
                encode_u64(self.set_id),
                self.target_hash,
                encode_u32(self.target_number),
                encode_compact(len(self.precommits)),
                *(p.encode() for p in self.precommits),
                encode_compact(len(self.ancestry)),
                *(h.encode() for h in self.ancestry),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Justification:
        d = Decoder(data)
        round_number, set_id = d.u64(), d.u64()
        target_hash, target_number = d.read(32), d.u32()
        n = d.compact()
        if n > MAX_PRECOMMITS:
            raise CodecError("too many precommits")
        precommits = tuple(Precommit.decode_from(d) for _ in range(n))
        m = d.compact()
        if m > MAX_ANCESTRY:
            raise CodecError("ancestry too long")
        ancestry = tuple(Header.decode_from(d) for _ in range(m))
        d.finish()
        return cls(round_number, set_id, target_hash, target_number, precommits, ancestry)

    def verify(self, set_id: int, authorities: Sequence[bytes]) -> None:
        """Raise ConsensusError unless this justification finalizes its target for the given
        set: distinct known voters, valid signatures, every precommit target equal to or a
        descendant of the target (through `ancestry`), and more than 2/3 of the set."""
        if self.set_id != set_id:
            raise ConsensusError(f"justification is for set {self.set_id}, expected {set_id}")
        known = set(authorities)
        by_hash = {h.hash(): h for h in self.ancestry}
        seen: set[bytes] = set()
        for pc in self.precommits:
            if pc.voter not in known:
                raise ConsensusError("precommit by a voter outside the set")
            if pc.voter in seen:
                raise ConsensusError("two precommits by one voter")
            vote = Vote(PRECOMMIT, pc.target_hash, pc.target_number)
            if not verify_signature(
                SignatureScheme.ED25519,
                pc.signature,
                vote_payload(vote, self.round, self.set_id),
                pc.voter,
            ):
                raise ConsensusError("bad precommit signature")
            if not _descends(
                by_hash, pc.target_hash, pc.target_number, self.target_hash, self.target_number
            ):
                raise ConsensusError("precommit target does not descend from the justified block")
            seen.add(pc.voter)
        if len(seen) < threshold(len(known)):
            raise ConsensusError(
                f"{len(seen)} of {len(known)} precommits; more than 2/3 are needed"
            )


def _descends(
    by_hash: dict[bytes, Header], h: bytes, n: int, base_hash: bytes, base_number: int
) -> bool:
    while n > base_number:
        header = by_hash.get(h)
        if header is None or header.number != n:
            return False
        h, n = header.parent_hash, n - 1
    return n == base_number and h == base_hash


# ---- equivocation proofs ----------------------------------------------------------------------


def header_slot(header: Header) -> int | None:
    """The Aura slot of a header's pre-runtime digest, or None."""
    for item in header.digest:
        if item.kind == DigestItem.PRE_RUNTIME and item.engine == AURA_ENGINE_ID:
            d = Decoder(item.data)
            try:
                slot = d.u64()
                d.finish()
            except CodecError:
                return None
            return slot
    return None


def check_seal(header: Header, author: bytes) -> bool:
    """Whether `header` carries an Aura seal by `author` (sr25519) over its pre-seal hash."""
    unsealed, seal = header.without_seal()
    if seal is None or seal.engine != AURA_ENGINE_ID:
        return False
    return verify_signature(SignatureScheme.SR25519, seal.data, unsealed.hash(), author)


@dataclasses.dataclass(frozen=True, slots=True)
class SlotEquivocation:
    """Two different headers sealed by one Aura authority for one slot."""

    offender: bytes  # the Aura (sr25519) key
    slot: int
    first: Header
    second: Header

    def encode(self) -> bytes:
        return (
            encode_u8(0)
            + self.offender
            + encode_u64(self.slot)
            + encode_bytes(self.first.encode())
            + encode_bytes(self.second.encode())
        )

    def check(self) -> None:
        if self.first.hash() == self.second.hash():
            raise ConsensusError("the two headers are the same block")
        for h in (self.first, self.second):
            if header_slot(h) != self.slot:
                raise ConsensusError("a header is not for the proof's slot")
            if not check_seal(h, self.offender):
                raise ConsensusError("a header is not sealed by the offender")

    def offence_key(self) -> bytes:
        """Same for every proof of this offence, so it is slashed once."""
        return b"slot" + self.offender + encode_u64(self.slot)


@dataclasses.dataclass(frozen=True, slots=True)
class VoteEquivocation:
    """Two different votes of one phase by one voter in one round of one set."""

    set_id: int
    round: int
    phase: int
    offender: bytes  # the finality (ed25519) key
    first: tuple[bytes, int, bytes]  # target hash, target number, signature
    second: tuple[bytes, int, bytes]

    def encode(self) -> bytes:
        def one(v: tuple[bytes, int, bytes]) -> bytes:
            return v[0] + encode_u32(v[1]) + v[2]

        return (
            encode_u8(1)
            + encode_u64(self.set_id)
            + encode_u64(self.round)
            + encode_u8(self.phase)
            + self.offender
            + one(self.first)
            + one(self.second)
        )

    def check(self) -> None:
        if (self.first[0], self.first[1]) == (self.second[0], self.second[1]):
            raise ConsensusError("the two votes are for the same block")
        for h, n, sig in (self.first, self.second):
            payload = vote_payload(Vote(self.phase, h, n), self.round, self.set_id)
            if not verify_signature(SignatureScheme.ED25519, sig, payload, self.offender):
                raise ConsensusError("a vote is not signed by the offender")

    def offence_key(self) -> bytes:
        return (
            b"vote"
            + self.offender
            + encode_u64(self.set_id)
            + encode_u64(self.round)
            + encode_u8(self.phase)
        )


EquivocationProof = SlotEquivocation | VoteEquivocation


def decode_equivocation(data: bytes) -> EquivocationProof:
    d = Decoder(data)
    kind = d.u8()
    proof: EquivocationProof
    if kind == 0:
        offender, slot = d.read(32), d.u64()
        first = Header.decode(d.bytes())
        second = Header.decode(d.bytes())
        proof = SlotEquivocation(offender, slot, first, second)
    elif kind == 1:
        set_id, round_number, phase = d.u64(), d.u64(), d.u8()
        if phase not in PHASES:
            raise CodecError(f"unknown vote phase {phase}")
        offender = d.read(32)
        a = (d.read(32), d.u32(), d.read(64))
        b = (d.read(32), d.u32(), d.read(64))
        proof = VoteEquivocation(set_id, round_number, phase, offender, a, b)
    else:
        raise CodecError(f"unknown equivocation kind {kind}")
    d.finish()
    return proof


# ---- BLS finality proofs ----------------------------------------------------------------------


def finality_proof_message(
    genesis_hash: bytes, session: int, set_id: int, block_number: int, block_hash: bytes
) -> bytes:
    """What each validator signs with its BLS key once per session."""
    return (
        b"cuckoo/finality-proof/v1"
        + genesis_hash
        + encode_u32(session)
        + encode_u64(set_id)
        + encode_u32(block_number)
        + block_hash
    )


def bitfield_encode(indices: Sequence[int], n: int) -> bytes:
    """Signer bitfield: bit i (LSB first within each byte) set when validator i signed."""
    out = bytearray((n + 7) // 8)
    for i in indices:
        if not 0 <= i < n:
            raise ConsensusError(f"signer index {i} outside a set of {n}")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def bitfield_decode(bits: bytes, n: int) -> list[int]:
    if len(bits) != (n + 7) // 8:
        raise ConsensusError(f"bitfield of {len(bits)} bytes for a set of {n}")
    out = [i for i in range(len(bits) * 8) if bits[i // 8] >> (i % 8) & 1]
    if out and out[-1] >= n:
        raise ConsensusError("bitfield names a signer outside the set")
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class BlsPartial:
    """One validator's BLS signature of a session's finality-proof message (gossiped)."""

    session: int
    set_id: int
    block_number: int
    block_hash: bytes
    signer: int  # index in the session's validator set
    signature: bytes  # 96, G2

    def encode(self) -> bytes:
        return (
            encode_u32(self.session)
            + encode_u64(self.set_id)
            + encode_u32(self.block_number)
            + self.block_hash
            + encode_u32(self.signer)
            + self.signature
        )

    @classmethod
    def decode(cls, data: bytes) -> BlsPartial:
        d = Decoder(data)
        out = cls(d.u32(), d.u64(), d.u32(), d.read(32), d.u32(), d.read(BLS_SIGNATURE_LENGTH))
        d.finish()
        return out
