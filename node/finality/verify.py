"""The full check of a per-session BLS finality proof, as `cuckoo-node verify-finality` and a
light client would run it: the signer bitfield and threshold, each signer's proof of possession
(the defence against rogue-key aggregates), then the aggregate signature over
`finality_proof_message(genesis, session, set_id, number, hash)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from chain.consensus import (
    BLS_PUBLIC_LENGTH,
    BLS_SIGNATURE_LENGTH,
    ConsensusError,
    bitfield_decode,
    threshold,
)
from node.finality.bls_proofs import FinalityProof

PAIRING_SECONDS = 1.0  # py-ecc, one pairing check, roughly


@dataclasses.dataclass(frozen=True, slots=True)
class ProofCheck:
    """The outcome of `check_proof`: `reason` is empty when valid."""

    valid: bool
    reason: str
    signers: tuple[int, ...] = ()
    set_size: int = 0


def check_proof(
    proof: FinalityProof,
    keys: Sequence[tuple[bytes, bytes]],
    genesis_hash: bytes,
    *,
    progress: Callable[[str], None] | None = None,
) -> ProofCheck:
    """Check `proof` against its set's BLS keys and proofs of possession (`keys`, in validator
    order): the bitfield and threshold first, then each signer's proof of possession, then the
    aggregate signature. Never raises on bad input."""
    n = len(keys)
    if n == 0:
        return ProofCheck(False, f"set {proof.set_id} has no BLS keys")
    try:
        signers = tuple(bitfield_decode(proof.signers, n))
    except ConsensusError as exc:
        return ProofCheck(False, f"bad signer bitfield: {exc}", set_size=n)
    need = threshold(n)
    if len(signers) < need:
        return ProofCheck(
            False,
            f"{len(signers)} of {n} validators signed; more than 2/3 ({need}) are needed",
            signers,
            n,
        )
    for i in signers:
        public, pop = keys[i]
        if len(public) != BLS_PUBLIC_LENGTH or len(pop) != BLS_SIGNATURE_LENGTH:
            return ProofCheck(False, f"validator {i}: malformed BLS key", signers, n)
    if len(proof.signature) != BLS_SIGNATURE_LENGTH or len(proof.block_hash) != 32:
        return ProofCheck(False, "malformed proof", signers, n)
    from chain import bls  # py-ecc: ~1 s to import

    if progress is not None:
        pairings = len(signers) + 1
        progress(
            f"checking {len(signers)} proofs of possession and the aggregate signature "
            f"({pairings} pairing checks, about {pairings * PAIRING_SECONDS:.0f} s)"
        )
    for i in signers:
        public, pop = keys[i]
        if not bls.verify_possession(public, pop):
            return ProofCheck(
                False,
                f"validator {i}: bad proof of possession of BLS key 0x{public.hex()} "
                "(a rogue key cannot be trusted in an aggregate)",
                signers,
                n,
            )
    publics = [keys[i][0] for i in signers]
    if not bls.fast_aggregate_verify(publics, proof.message(genesis_hash), proof.signature):
        return ProofCheck(
            False,
            "the aggregate signature does not verify for the signers' keys over the "
            "session's finality-proof message",
            signers,
            n,
        )
    return ProofCheck(True, "", signers, n)
