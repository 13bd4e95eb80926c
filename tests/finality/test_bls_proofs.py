"""The per-session BLS proof collector: sign once, verify partials off the loop, aggregate once
more than 2/3 signed; bad partials never count. Real py-ecc signatures (slow: ~0.4 s to sign,
~1 s to verify), so keys and partials are made once per module."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from chain import bls
from chain.consensus import BlsPartial, bitfield_decode, finality_proof_message
from chain.frame.runtime import Runtime, RuntimeVersion
from chain.hashing import twox64, twox128
from chain.primitives import encode_unsigned_extrinsic
from node.finality import bls_proofs
from node.finality.bls_proofs import (
    BlsProofCollector,
    FinalityProof,
    PartialVerdict,
    decode_set_bls_keys,
    encode_set_bls_keys,
    encode_submit_call,
)
from node.keystore import BlsSigner, derive_bls_signer
from pallets.finality import pallet as finality

T = TypeVar("T")
GENESIS = b"\x42" * 32
SESSION, SET_ID, NUMBER = 1, 0, 10
TARGET = (b"\x0a" * 32, NUMBER)
ACCEPT, IGNORE, INVALID = PartialVerdict.ACCEPT, PartialVerdict.IGNORE, PartialVerdict.INVALID


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def signers() -> list[BlsSigner]:
    return [derive_bls_signer(s) for s in ("//Alice", "//Bob", "//Charlie", "//Dave")]


@pytest.fixture(scope="module")
def keys(signers: list[BlsSigner]) -> list[bytes]:
    return [s.public for s in signers]


@pytest.fixture(scope="module")
def partials(signers: list[BlsSigner]) -> list[BlsPartial]:
    """Each validator's partial for (SESSION, TARGET)."""
    msg = finality_proof_message(GENESIS, SESSION, SET_ID, NUMBER, TARGET[0])
    return [
        BlsPartial(SESSION, SET_ID, NUMBER, TARGET[0], i, s.sign(msg))
        for i, s in enumerate(signers)
    ]


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts single-signature verifications and checks none runs on the event loop thread."""
    calls: list[int] = []
    real = bls.verify
    main = threading.get_ident()

    def counting(public: bytes, message: bytes, signature: bytes) -> bool:
        assert threading.get_ident() != main, "BLS verification on the event loop"
        calls.append(1)
        return real(public, message, signature)

    monkeypatch.setattr(bls, "verify", counting)
    return calls


def test_collect_and_aggregate(
    signers: list[BlsSigner],
    keys: list[bytes],
    partials: list[BlsPartial],
    verify_calls: list[int],
) -> None:
    async def main() -> None:
        c = BlsProofCollector(GENESIS, signers[0])
        ours = await c.on_finalized(SESSION, SET_ID, keys, TARGET, proven=False)
        assert ours == partials[0]  # BLS signing is deterministic: a restart re-signs the same
        assert await c.on_finalized(SESSION, SET_ID, keys, TARGET, proven=False) is None
        # the same partial twice at once: verified once, counted once
        bob = partials[1]
        verdicts = await asyncio.gather(c.on_partial(bob, keys), c.on_partial(bob, keys))
        assert sorted(v.value for v in verdicts) == ["accept", "ignore"]
        assert len(verify_calls) == 1
        assert await c.on_partial(partials[1], keys) is IGNORE
        assert await c.on_partial(partials[0], keys) is IGNORE  # our own
        assert c.ready_proof() is None  # 2 of 4
        assert await c.on_partial(partials[2], keys) is ACCEPT
        assert c.held(SESSION) == [0, 1, 2]
        proof = c.ready_proof()
        assert proof is not None
        assert (proof.session, proof.set_id, proof.block_number, proof.block_hash) == (
            SESSION,
            SET_ID,
            NUMBER,
            TARGET[0],
        )
        assert bitfield_decode(proof.signers, 4) == [0, 1, 2]
        assert bls.fast_aggregate_verify(keys[:3], proof.message(GENESIS), proof.signature)
        assert FinalityProof.decode(proof.encode()) == proof
        assert c.ready_proof() is None  # handed out once
        assert await c.on_partial(partials[3], keys) is IGNORE  # already proven
        assert len(verify_calls) == 2

    run(main())


def test_invalid_partials_never_count(
    keys: list[bytes], partials: list[BlsPartial], verify_calls: list[int]
) -> None:
    bob, charlie = partials[1], partials[2]
    at = dataclasses.replace

    async def main() -> None:
        c = BlsProofCollector(GENESIS, None)  # an observer: collects, never signs
        assert await c.on_finalized(SESSION, SET_ID, keys, TARGET, proven=False) is None
        # cheap rejections, no pairing
        for bad in (
            at(bob, signer=4),  # no such validator
            at(bob, set_id=SET_ID + 1),
            at(bob, block_hash=b"\x0b" * 32),  # not the block this node finalized
            at(bob, block_number=NUMBER + 1),
            at(bob, signature=b"\x00" * 95),
        ):
            assert await c.on_partial(bad, keys) is INVALID
        assert verify_calls == []
        # Charlie's valid signature presented as Bob's (the wrong key for that index)
        forged = at(charlie, signer=1)
        assert await c.on_partial(forged, keys) is INVALID
        assert await c.on_partial(forged, keys) is INVALID  # remembered, not verified again
        assert len(verify_calls) == 1
        # a session-1 signature replayed as the next session's partial: wrong message
        replayed = at(bob, session=SESSION + 1)
        assert await c.on_partial(replayed, keys) is INVALID
        assert len(verify_calls) == 2
        assert c.held(SESSION) == c.held(SESSION + 1) == []
        # the real Bob still counts
        assert await c.on_partial(bob, keys) is ACCEPT
        assert c.held(SESSION) == [1]

    run(main())


def test_stale_future_and_proven_sessions(keys: list[bytes], partials: list[BlsPartial]) -> None:
    bob = partials[1]
    at = dataclasses.replace

    async def main() -> None:
        c = BlsProofCollector(GENESIS, None)
        assert await c.on_partial(bob, keys) is IGNORE  # nothing finalized yet
        assert await c.on_finalized(5, SET_ID, keys, TARGET, proven=False) is None
        assert c.current_session == 5
        assert await c.on_partial(at(bob, session=3), keys) is IGNORE  # stale
        assert await c.on_partial(at(bob, session=4), keys) is IGNORE  # not tracked here
        assert await c.on_partial(at(bob, session=7), keys) is IGNORE  # too far ahead
        assert await c.on_finalized(4, SET_ID, keys, TARGET, proven=False) is None  # stale
        assert c.current_session == 5
        # a proven session takes nothing
        assert await c.on_finalized(6, SET_ID, keys, TARGET, proven=True) is None
        assert await c.on_partial(at(bob, session=6), keys) is IGNORE
        c.mark_proven(7)
        assert await c.on_partial(at(bob, session=7), keys) is IGNORE
        assert c.ready_proof() is None

    run(main())


def test_proven_session_is_not_signed(signers: list[BlsSigner], keys: list[bytes]) -> None:
    async def main() -> None:
        c = BlsProofCollector(GENESIS, signers[0])
        assert await c.on_finalized(SESSION, SET_ID, keys, TARGET, proven=True) is None
        outsider = BlsProofCollector(GENESIS, signers[3])
        assert await outsider.on_finalized(SESSION, SET_ID, keys[:3], TARGET, proven=False) is None

    run(main())


def test_partials_of_the_next_session_wait_for_its_target(
    signers: list[BlsSigner], keys: list[bytes]
) -> None:
    """Faster nodes finalize first: their partials are kept (verified) until this node knows
    the target, then those for another target are dropped."""
    s2, target2 = SESSION + 1, (b"\x14" * 32, 20)
    msg2 = finality_proof_message(GENESIS, s2, SET_ID, 20, target2[0])
    msg_other = finality_proof_message(GENESIS, s2, SET_ID, 20, b"\x15" * 32)
    bob = BlsPartial(s2, SET_ID, 20, target2[0], 1, signers[1].sign(msg2))
    charlie = BlsPartial(s2, SET_ID, 20, target2[0], 2, signers[2].sign(msg2))
    dave_elsewhere = BlsPartial(s2, SET_ID, 20, b"\x15" * 32, 3, signers[3].sign(msg_other))

    async def main() -> None:
        c = BlsProofCollector(GENESIS, signers[0])
        await c.on_finalized(SESSION, SET_ID, keys, TARGET, proven=True)
        results = await asyncio.gather(
            *(c.on_partial(p, keys) for p in (bob, charlie, dave_elsewhere))
        )
        assert results == [ACCEPT, ACCEPT, ACCEPT]
        assert c.ready_proof() is None  # target unknown here yet
        ours = await c.on_finalized(s2, SET_ID, keys, target2, proven=False)
        assert ours is not None
        assert ours.signer == 0
        assert c.held(s2) == [0, 1, 2]  # Dave's, for another block, dropped
        proof = c.ready_proof()
        assert proof is not None
        assert proof.session == s2
        assert bitfield_decode(proof.signers, 4) == [0, 1, 2]

    run(main())


def test_codecs_and_storage_keys(keys: list[bytes]) -> None:
    pairs = [(k, bytes([i]) * 96) for i, k in enumerate(keys)]
    raw = encode_set_bls_keys(pairs)
    assert raw[0] == 4 << 2
    assert len(raw) == 1 + 4 * 144
    assert decode_set_bls_keys(raw) == pairs
    with pytest.raises(ValueError, match="48 bytes"):
        encode_set_bls_keys([(b"\x00" * 32, b"\x00" * 96)])
    proof = FinalityProof(3, 1, 30, b"\x33" * 32, b"\x07", b"\x99" * 96)
    raw = proof.encode()
    assert raw[:16] == (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (30).to_bytes(
        4, "little"
    )
    assert raw[48:50] == b"\x04\x07"  # compact length 1, then the bitfield
    assert FinalityProof.decode(raw) == proof
    prefix = twox128(b"Finality") + twox128(b"FinalityProofs")
    session = (3).to_bytes(4, "little")
    assert bls_proofs.finality_proof_key(3) == prefix + twox64(session) + session
    set_id = (1).to_bytes(8, "little")
    assert bls_proofs.set_bls_keys_key(1) == (
        twox128(b"Finality") + twox128(b"SetBlsKeys") + twox64(set_id) + set_id
    )
    assert bls_proofs.session_index_key() == twox128(b"Session") + twox128(b"CurrentIndex")


def test_encode_submit_call_matches_the_runtime_call() -> None:
    version = RuntimeVersion("t", "t", 1, 1, 1, (), 1)
    runtime = Runtime(name="t", version=version, pallets=[finality.SPEC], config=None)
    proof = FinalityProof(3, 1, 30, b"\x33" * 32, b"\x07", b"\x99" * 96)
    xt = encode_submit_call(runtime, proof)
    call = bytes([finality.SPEC.index, 0]) + proof.encode()
    assert xt == encode_unsigned_extrinsic(call)
    decoded = runtime.decode_call(call)
    assert decoded.args["proof"] == finality.FinalityProof(*dataclasses.astuple(proof))
