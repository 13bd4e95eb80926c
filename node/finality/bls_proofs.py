"""Per-session BLS finality proofs, node side: sign, gossip, collect, aggregate.

Once the finalized head reaches the first block of session `s` (block `s * length`), every
validator of the current set signs `finality_proof_message(genesis, s, set_id, number, hash)`
for that block with its BLS key and gossips the `BlsPartial`. A node holding partials of more
than 2/3 of the set aggregates them into one `FinalityProof` and submits it, unsigned, as
`Finality.submit_finality_proof`; the runtime stores it after structural checks only (it never
runs a pairing), and `cuckoo-node verify-finality` checks it fully.

py-ecc is slow (sign ~0.4 s, verify ~1 s), so `BlsProofCollector` signs and verifies in an
executor, never on the event loop, checks the cheap things first, remembers verdicts, and holds
partials of at most three sessions (the previous, the current and the next one, whose partials
may arrive before this node finalizes its first block), one per signer. Nothing is persisted: a
restarted node signs again, and BLS signing is deterministic, so that is the same signature.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from chain.codec import CodecError
from chain.consensus import (
    BLS_PUBLIC_LENGTH,
    BLS_SIGNATURE_LENGTH,
    BlsPartial,
    bitfield_encode,
    finality_proof_message,
    threshold,
)
from chain.frame.runtime import Runtime
from chain.primitives import encode_unsigned_extrinsic
from node.verdict import Verdict
from pallets.finality import pallet as finality
from pallets.session import pallet as session_pallet

__all__ = [
    "MAX_SET_SIZE",
    "BlsProofCollector",
    "FinalityProof",
    "PartialVerdict",
    "current_set_id_key",
    "decode_set_bls_keys",
    "encode_set_bls_keys",
    "encode_submit_call",
    "finality_proof_key",
    "session_index_key",
    "set_bls_keys_key",
]

log = logging.getLogger("cuckoo.finality.bls")

MAX_SET_SIZE = 1_024  # validators in one set (bounds decoding)
_MAX_INVALID_CACHED = 256  # remembered bad partials, all sessions together


# ---- storage layout and codecs (the runtime's Finality and Session pallets) -------------------


# The runtime's own storage items and types, so the node and `verify-finality` read exactly
# what the pallets write.
FinalityProof = finality.FinalityProof


def current_set_id_key() -> bytes:
    """`Finality.CurrentSetId: u64`."""
    return finality.CurrentSetId.key


def set_bls_keys_key(set_id: int) -> bytes:
    """`Finality.SetBlsKeys[set_id]: Vec<([u8; 48], [u8; 96])>`."""
    return finality.SetBlsKeys.key_for(set_id)


def finality_proof_key(session: int) -> bytes:
    """`Finality.FinalityProofs[session]: FinalityProof`."""
    return finality.FinalityProofs.key_for(session)


def session_index_key() -> bytes:
    """`Session.CurrentIndex: u32`."""
    return session_pallet.CurrentIndex.key


def encode_set_bls_keys(keys: Sequence[tuple[bytes, bytes]]) -> bytes:
    """SCALE of a `SetBlsKeys` value: each validator's BLS public key and its proof of
    possession, in validator order."""
    for public, pop in keys:
        if len(public) != BLS_PUBLIC_LENGTH or len(pop) != BLS_SIGNATURE_LENGTH:
            raise ValueError("a BLS key is 48 bytes and its proof of possession 96")
    return bytes(finality.SetBlsKeys.value_ty.encode(list(keys)))


def decode_set_bls_keys(data: bytes) -> list[tuple[bytes, bytes]]:
    keys = finality.SetBlsKeys.value_ty.decode_all(data)
    if len(keys) > MAX_SET_SIZE:
        raise CodecError(f"{len(keys)} BLS keys in one set; at most {MAX_SET_SIZE}")
    return [(bytes(public), bytes(pop)) for public, pop in keys]


def encode_submit_call(runtime: Runtime[Any], proof: FinalityProof) -> bytes:
    """The unsigned extrinsic `Finality.submit_finality_proof(proof)`, ready for the pool."""
    call = runtime.call_type.encode(
        runtime.call(finality.SPEC.name, "submit_finality_proof", proof=proof)
    )
    return encode_unsigned_extrinsic(bytes(call))


# ---- the collector ----------------------------------------------------------------------------


# py-ecc takes about a second to import: it is imported where BLS work runs (the executor), so
# that a node imports this module at no cost.


def _verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` by `public` over `message` verifies (executor)."""
    from chain import bls

    return bls.verify(public, message, signature)


def _aggregate_and_verify(
    publics: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
) -> bytes | None:
    """The aggregate of `signatures` if it verifies for `publics` over `message` (executor)."""
    from chain import bls

    signature = bls.aggregate(signatures)
    return signature if bls.fast_aggregate_verify(publics, message, signature) else None


# What gossip should do with a partial: relay it (ACCEPT), hold it unverified (KEEP, lazy
# mode), drop it quietly (IGNORE: a duplicate, a stale or already proven session), or drop it and
# penalise the sender (INVALID: bad signature, signer index, set id or target).
PartialVerdict = Verdict


class _Signer(Protocol):
    """`node.keystore.BlsSigner`."""

    @property
    def public(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Known:
    """What this node knows of a session once it finalized the session's first block."""

    set_id: int
    validators: tuple[bytes, ...]
    target: tuple[bytes, int]  # (hash, number)

    def matches(self, p: BlsPartial, public: bytes) -> bool:
        return (
            p.set_id == self.set_id
            and (p.block_hash, p.block_number) == self.target
            and p.signer < len(self.validators)
            and self.validators[p.signer] == public
        )


@dataclasses.dataclass(slots=True)
class _Round:
    """Valid partials of one session, one per signer index (with the key each was verified
    against). Until `known` (the next session, not yet finalized here) they are kept as
    verified against what their senders claimed, and filtered once it is known."""

    session: int
    known: _Known | None = None
    partials: dict[int, tuple[BlsPartial, bytes]] = dataclasses.field(default_factory=dict)
    signed: bool = False
    done: bool = False  # proven on chain, or our aggregate handed out
    aggregating: bool = False
    ready: FinalityProof | None = None  # verified aggregate, not yet handed out

    def matches(self, p: BlsPartial, public: bytes) -> bool:
        return self.known is None or self.known.matches(p, public)


class BlsProofCollector:
    """Signs this validator's partial once per session and collects everyone's.

    The node calls, from its event loop:
    - `on_finalized(...)` when its finalized head reaches or passes a session's first block
      (also at start-up for the session of its finalized head); gossips the partial it returns;
    - `on_partial(...)` for each partial received by gossip; relays it on ACCEPT;
    - `ready_proof()` after each of those calls; submits the proof it returns
      (`encode_submit_call`);
    - `mark_proven(session)` when a block stores `FinalityProofs[session]`.
    """

    def __init__(
        self,
        genesis_hash: bytes,
        signer: _Signer | None,
        *,
        verify_pool: concurrent.futures.Executor | None = None,
        lazy: bool = False,
    ) -> None:
        """`lazy`: do not verify each partial on arrival (~1 s each); verify the aggregate once
        and only when it fails find the bad partials one by one. Partials are then held
        unverified (KEEP, not relayed): for a full mesh of validators."""
        self.lazy = lazy
        self.genesis_hash = bytes(genesis_hash)
        self.signer = signer
        self._pool = verify_pool  # None: the event loop's default executor
        self._current: int | None = None
        self._rounds: dict[int, _Round] = {}
        self._invalid: dict[bytes, None] = {}  # partial ++ public key of bad partials (FIFO)
        self._inflight: dict[bytes, asyncio.Future[bool]] = {}

    @property
    def current_session(self) -> int | None:
        return self._current

    def held(self, session: int) -> list[int]:
        """Signer indices of the valid partials held for `session`."""
        r = self._rounds.get(session)
        return sorted(r.partials) if r is not None else []

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _advance(self, session: int) -> None:
        if self._current is not None and session <= self._current:
            return
        self._current = session
        for s in [s for s in self._rounds if not session - 1 <= s <= session + 1]:
            del self._rounds[s]

    async def on_finalized(
        self,
        session: int,
        set_id: int,
        validators_bls: Sequence[bytes],
        target: tuple[bytes, int],
        proven: bool,
    ) -> BlsPartial | None:
        """Our partial for `session`'s first block `target` = (hash, number), signed once per
        session; None if we are not in the set, the session is proven (`proven`: the chain
        already stores its proof), stale, or already signed."""
        if self._current is not None and session < self._current:
            return None
        self._advance(session)
        r = self._rounds.setdefault(session, _Round(session))
        if r.known is None:
            r.known = known = _Known(set_id, tuple(validators_bls), (bytes(target[0]), target[1]))
            dropped = [i for i, (p, pub) in r.partials.items() if not known.matches(p, pub)]
            for i in dropped:
                del r.partials[i]
            if dropped:
                log.info(
                    "session %d: dropped %d partials for another target", session, len(dropped)
                )
        known = r.known
        if proven:
            self.mark_proven(session)
        if r.done or r.signed or self.signer is None:
            return None
        public = self.signer.public
        if public not in known.validators:
            return None
        index = known.validators.index(public)
        r.signed = True
        block_hash, number = known.target
        message = finality_proof_message(
            self.genesis_hash, session, known.set_id, number, block_hash
        )
        signature: bytes = await self._run(self.signer.sign, message)
        partial = BlsPartial(session, known.set_id, number, block_hash, index, signature)
        log.info(
            "session %d: signed the finality proof of block #%d as validator %d",
            session, number, index,
        )  # fmt: skip
        if self._rounds.get(session) is r and not r.done:
            r.partials.setdefault(index, (partial, public))
            await self._try_aggregate(session)
        return partial

    def mark_proven(self, session: int) -> None:
        """The chain stores the proof of `session`: stop collecting (and signing) for it."""
        r = self._rounds.get(session)
        if r is None:
            if self._current is None or not self._current - 1 <= session <= self._current + 1:
                return
            r = self._rounds[session] = _Round(session)
        r.done = True
        r.partials.clear()

    async def on_partial(
        self, partial: BlsPartial, validators_bls: Sequence[bytes]
    ) -> PartialVerdict:
        """Check a gossiped partial (signature verified off the loop) and keep it if valid.
        `validators_bls`: the BLS keys of set `partial.set_id`, in validator order."""
        p = partial
        if len(p.block_hash) != 32 or len(p.signature) != BLS_SIGNATURE_LENGTH:
            return PartialVerdict.INVALID
        current = self._current
        if current is None or not current - 1 <= p.session <= current + 1:
            return PartialVerdict.IGNORE  # not tracking that session (stale or too far ahead)
        r = self._rounds.get(p.session)
        if r is None and p.session < current:
            return PartialVerdict.IGNORE  # a session before this node started
        keys = r.known.validators if r is not None and r.known is not None else validators_bls
        if p.signer >= len(keys) or len(keys[p.signer]) != BLS_PUBLIC_LENGTH:
            return PartialVerdict.INVALID
        public = keys[p.signer]
        if r is not None:
            if r.done or p.signer in r.partials:
                return PartialVerdict.IGNORE
            if not r.matches(p, public):
                return PartialVerdict.INVALID
        cache_key = p.encode() + public
        if cache_key in self._invalid:
            return PartialVerdict.INVALID
        if self.lazy:
            if r is None:
                r = self._rounds[p.session] = _Round(p.session)
            r.partials[p.signer] = (p, public)
            await self._try_aggregate(p.session)
            return PartialVerdict.KEEP
        pending = self._inflight.get(cache_key)
        if pending is not None:
            ok = await asyncio.shield(pending)
            return PartialVerdict.IGNORE if ok else PartialVerdict.INVALID
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[cache_key] = future
        try:
            message = finality_proof_message(
                self.genesis_hash, p.session, p.set_id, p.block_number, p.block_hash
            )
            ok = bool(await self._run(_verify, public, message, p.signature))
            future.set_result(ok)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[cache_key]
        if not ok:
            self._invalid[cache_key] = None
            while len(self._invalid) > _MAX_INVALID_CACHED:
                del self._invalid[next(iter(self._invalid))]
            log.info("session %d: bad BLS partial signature from validator %d", p.session, p.signer)
            return PartialVerdict.INVALID
        # the state may have moved while verifying
        current = self._current
        if current is None or not current - 1 <= p.session <= current + 1:
            return PartialVerdict.IGNORE
        r = self._rounds.get(p.session)
        if r is None:
            if p.session < current:
                return PartialVerdict.IGNORE
            r = self._rounds[p.session] = _Round(p.session)
        if r.done or p.signer in r.partials:
            return PartialVerdict.IGNORE
        if not r.matches(p, public):
            return PartialVerdict.INVALID
        r.partials[p.signer] = (p, public)
        await self._try_aggregate(p.session)
        return PartialVerdict.ACCEPT

    def ready_proof(self) -> FinalityProof | None:
        """A verified aggregate proof (of the earliest session that has one), once more than
        2/3 of the set's partials are held for a session whose target this node finalized;
        each session's proof is handed out once. The aggregation and its check ran in the
        executor, within the `on_partial` / `on_finalized` call that completed the set."""
        for session in sorted(self._rounds):
            r = self._rounds[session]
            if r.ready is not None and not r.done:
                proof, r.ready, r.done = r.ready, None, True
                return proof
        return None

    async def _try_aggregate(self, session: int) -> None:
        r = self._rounds.get(session)
        if r is None or r.done or r.aggregating or r.ready is not None or r.known is None:
            return
        known = r.known
        n = len(known.validators)
        if len(r.partials) < threshold(n):
            return
        signers = sorted(r.partials)
        publics = [r.partials[i][1] for i in signers]
        signatures = [r.partials[i][0].signature for i in signers]
        block_hash, number = known.target
        message = finality_proof_message(
            self.genesis_hash, session, known.set_id, number, block_hash
        )
        r.aggregating = True
        try:
            signature: bytes | None = await self._run(
                _aggregate_and_verify, publics, message, signatures
            )
        finally:
            r.aggregating = False
        if self._rounds.get(session) is not r or r.done:
            return  # proven or pruned meanwhile
        if signature is None and self.lazy:  # find the bad ones, keep the good ones
            for i in signers:
                p, public = r.partials[i]
                ok = await self._run(_verify, public, message, p.signature)
                if not ok and r.partials.get(i) == (p, public):
                    del r.partials[i]
                    self._invalid[p.encode() + public] = None
                    log.info("session %d: bad BLS partial signature from validator %d", session, i)
            if self._rounds.get(session) is r and not r.done:
                await self._try_aggregate(session)
            return
        if signature is None:  # cannot happen with individually verified partials; start over
            log.warning(
                "session %d: aggregate of %d partials does not verify; dropping them",
                session, len(signers),
            )  # fmt: skip
            r.partials.clear()
            return
        r.ready = FinalityProof(
            session, known.set_id, number, block_hash, bitfield_encode(signers, n), signature
        )
        log.info(
            "session %d: finality proof of block #%d by %d of %d validators",
            session, number, len(signers), n,
        )  # fmt: skip
