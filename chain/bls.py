"""BLS12-381 signatures for per-session finality proofs (py-ecc, the IETF proof-of-possession
scheme: public keys in G1, 48 bytes; signatures in G2, 96 bytes).

py-ecc is pure Python: signing takes ~0.4 s and verifying an aggregate ~1 s on this machine, so
the runtime never verifies BLS (it stores proofs after structural checks, as BEEFY does) and the
node does it off the event loop. `cuckoo-node verify-finality` checks a stored proof fully,
including each signer's proof of possession (the defence against rogue-key aggregates).
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_typing import BLSPubkey, BLSSignature
from py_ecc.bls.ciphersuites import G2ProofOfPossession as _Scheme

from chain.hashing import blake2_256

PUBLIC_LENGTH = 48
SIGNATURE_LENGTH = 96
_SEED_DOMAIN = b"cuckoo/bls12-381/keygen/v1"


def secret_from_seed(seed: bytes) -> int:
    """A BLS secret key derived from 32 bytes of key material (e.g. a derived ed25519 seed)."""
    if len(seed) < 32:
        raise ValueError("BLS key material must be at least 32 bytes")
    return int(_Scheme.KeyGen(blake2_256(_SEED_DOMAIN + seed)))


def public_key(secret: int) -> bytes:
    return bytes(_Scheme.SkToPk(secret))


def sign(secret: int, message: bytes) -> bytes:
    return bytes(_Scheme.Sign(secret, message))


def aggregate(signatures: Sequence[bytes]) -> bytes:
    if not signatures:
        raise ValueError("nothing to aggregate")
    return bytes(_Scheme.Aggregate([BLSSignature(s) for s in signatures]))


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        return bool(_Scheme.Verify(BLSPubkey(public), message, BLSSignature(signature)))
    except Exception:  # py-ecc raises on malformed points
        return False


def fast_aggregate_verify(publics: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """All `publics` signed `message`; `signature` is their aggregate. Never raises."""
    if not publics:
        return False
    try:
        return bool(
            _Scheme.FastAggregateVerify(
                [BLSPubkey(p) for p in publics], message, BLSSignature(signature)
            )
        )
    except Exception:
        return False


def prove_possession(secret: int) -> bytes:
    return bytes(_Scheme.PopProve(secret))


def verify_possession(public: bytes, proof: bytes) -> bool:
    try:
        return bool(_Scheme.PopVerify(BLSPubkey(public), BLSSignature(proof)))
    except Exception:
        return False
