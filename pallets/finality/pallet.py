"""Finality: the finality authority set, per-session BLS finality proofs, equivocation reports.

The set (ed25519 finality keys and BLS keys, in Session.Validators order) is enacted by the
Session pallet at each session boundary through `enact_set`; `CurrentSetId` counts set changes.
Each signer's BLS key and proof of possession is kept per set id forever (`SetBlsKeys`), so a
stored proof can be checked later by anyone.

Both calls are unsigned transactions (FRAME's `ValidateUnsigned`): a node submits them without
an account, and pays nothing. Runtime checks are cheap on purpose:
- `submit_finality_proof` checks the proof's structure (session, set, block, signer count) but
  NOT the BLS aggregate: a pure-Python pairing takes ~1 s, which every node would pay again on
  every import of the block. The submitting node verifies the aggregate before it submits, and
  `cuckoo-node verify-finality` checks a stored proof fully (with the signers' PoPs), as a light
  client would (BEEFY stores its commitments the same way).
- `report_equivocation` verifies the proof's sr25519/ed25519 signatures (microseconds) and opens
  an `Equivocation` offence in Slashing, keyed by the offence (not the evidence bytes), so an
  offence is slashed once whichever pair of blocks or votes proves it.

The current session is `block_number // SessionLength` (the Session pallet moves its index at
exactly those boundaries), so this pallet does not read Session's storage; the runtime's wiring
(`key_owners`: Session) tells it who owns a key.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Annotated, TypeAlias

from chain.codec import CodecError, encode_u32
from chain.consensus import (
    BLS_PUBLIC_LENGTH,
    BLS_SIGNATURE_LENGTH,
    ConsensusError,
    EquivocationProof,
    SlotEquivocation,
    bitfield_decode,
    decode_equivocation,
    finality_proof_message,
    threshold,
)
from chain.frame.prelude import *
from pallets import weights
from pallets.config import Ctx, RuntimeConfig
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceKind
from pallets.staking import pallet as staking
from pallets.system import pallet as system

SPEC = PalletSpec("Finality", 8, module="pallet_cuckoo_finality")

MAX_AUTHORITIES = 100
MAX_EQUIVOCATION_PROOF = 16 * 1024
EQUIVOCATION_LONGEVITY = 64  # blocks a report stays valid in the pool
PROOF_WINDOW_SESSIONS = 4  # a session's proof is taken while it is one of the last four
UNSIGNED_PRIORITY = 2**64 - 1  # before any signed transaction (FRAME: TransactionPriority::MAX)
FINALITY_PROOF_TAG = b"finality-proof"
AURA_KEY_TYPE = b"aura"
FINALITY_KEY_TYPE = b"gran"
BLS_KEY_TYPE = b"bls_"

AUTHORITY_ID = NewType(
    "sp_consensus_grandpa::app::Public",
    NewType("sp_core::ed25519::Public", FixedBytes(32), "[u8; 32]"),
    "ed25519::Public",
    "AuthorityId",
)
BLS_PUBLIC = FixedBytes(BLS_PUBLIC_LENGTH)
BLS_SIGNATURE = FixedBytes(BLS_SIGNATURE_LENGTH)
SessionIndex: TypeAlias = Annotated[int, U32, "SessionIndex"]
SetId: TypeAlias = Annotated[int, U64, "SetId"]


@struct("pallet_cuckoo_finality::FinalityProof")
class FinalityProof:
    """The validators of `set_id` finalized `block_hash` (number `block_number`, the first block
    of `session`): `signers` (a bitfield over the set) signed
    `chain.consensus.finality_proof_message(...)` with BLS, `signature` is the aggregate."""

    session: SessionIndex
    set_id: SetId
    block_number: BlockNumber
    block_hash: Hash256
    signers: Annotated[bytes, Bytes(MAX_AUTHORITIES // 8 + 1), "BoundedVec<u8>"]
    signature: Annotated[bytes, BLS_SIGNATURE, "[u8; 96]"]

    def encode(self) -> bytes:
        return FINALITY_PROOF.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> FinalityProof:
        """SCALE, as stored in `FinalityProofs` (CodecError on malformed input)."""
        proof: FinalityProof = FINALITY_PROOF.decode_all(data)
        return proof

    def message(self, genesis_hash: bytes) -> bytes:
        """What each signer signed (chain.consensus.finality_proof_message)."""
        return finality_proof_message(
            genesis_hash, self.session, self.set_id, self.block_number, self.block_hash
        )


FINALITY_PROOF = scale_of(FinalityProof)

Authorities: StorageValue[list[bytes]] = StorageValue(
    SPEC,
    "Authorities",
    Vec(AUTHORITY_ID),
    default=[],
    docs="The finality (ed25519) keys of the current set, in Session.Validators order.",
)
BlsKeys: StorageValue[list[bytes]] = StorageValue(
    SPEC, "BlsKeys", Vec(BLS_PUBLIC), default=[], docs="The BLS keys of the current set."
)
CurrentSetId: StorageValue[int] = StorageValue(
    SPEC, "CurrentSetId", U64, default=0, docs="Counts finality set changes."
)
SetBlsKeys: StorageMap[int, list[tuple[bytes, bytes]]] = StorageMap(
    SPEC,
    "SetBlsKeys",
    U64,
    Vec(Tuple(BLS_PUBLIC, BLS_SIGNATURE)),
    hasher="Twox64Concat",
    docs="Each set's signers: BLS key and proof of possession, kept forever.",
)
SessionSetId: StorageMap[int, int] = StorageMap(
    SPEC,
    "SessionSetId",
    U32,
    U64,
    hasher="Twox64Concat",
    docs="The set that signs each session's finality proof (the set enacted at its start).",
)
FinalityProofs: StorageMap[int, FinalityProof] = StorageMap(
    SPEC,
    "FinalityProofs",
    U32,
    FINALITY_PROOF,
    hasher="Twox64Concat",
    docs="One BLS finality proof per session, of the session's first block.",
)


class EquivocationKind(enum.StrEnum):
    SLOT = "Slot"  # two blocks sealed for one Aura slot
    VOTE = "Vote"  # two votes of one phase in one finality round


EQUIVOCATION_KIND = unit_enum("pallet_cuckoo_finality::EquivocationKind", EquivocationKind)


@event(SPEC, 0)
class FinalityProofStored:
    """A session's BLS finality proof was stored."""

    session: SessionIndex
    block_number: BlockNumber


@event(SPEC, 1)
class EquivocationReported:
    """A validator equivocated (two blocks for a slot, or two votes in a round); its slash is
    deferred in the Slashing pallet."""

    offender: T.AccountId
    kind: Annotated[EquivocationKind, EQUIVOCATION_KIND, "Kind"]


@event(SPEC, 2)
class NewAuthorities:
    """A new finality set was enacted."""

    set_id: SetId
    authorities: Annotated[list[bytes], Vec(AUTHORITY_ID), "AuthorityList"]


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    WRONG_SESSION = (
        0,
        f"Proofs are taken for the current and the previous {PROOF_WINDOW_SESSIONS - 1} sessions "
        "only (never for session 0, the genesis).",
    )
    ALREADY_PROVEN = 1, "This session already has a finality proof."
    WRONG_SET_ID = 2, "The proof is not by the set of its session."
    UNKNOWN_BLOCK = 3, "The block is not in this chain (or is not yet, or is too old)."
    WRONG_BLOCK = 4, "A session's proof must be of the session's first block."
    NOT_ENOUGH_SIGNERS = 5, "The signer bitfield is malformed or names 2/3 of the set or fewer."
    INVALID_EQUIVOCATION_PROOF = 6, "The equivocation proof does not decode or does not verify."
    UNKNOWN_OFFENDER = 7, "No account owns the equivocating key."
    UNKNOWN_SET = 8, "The vote equivocation names a set that has not started."
    ALREADY_REPORTED = 9, "This offence was reported before; it is slashed once."


def key_owner(config: RuntimeConfig, state: ReadState, key_type: bytes, key: bytes) -> bytes | None:
    """The account that owns a session key (wired from Session)."""
    for owners in config.wiring.key_owners:
        owner = owners.key_owner(state, key_type, key)
        if owner is not None:
            return owner
    return None


# ---- the set --------------------------------------------------------------------------------


def enact_set(
    ctx: Ctx,
    grandpa_keys: Sequence[bytes],
    bls_keys_with_pops: Sequence[tuple[bytes, bytes]],
    *,
    session: int | None = None,
) -> bool:
    """Make these keys the finality set (Session calls this at each session boundary).

    The set id moves only when the set changes: its finality keys or its BLS keys (a new BLS key
    under the same id would make the stored `SetBlsKeys` of older proofs wrong). Records the set
    of `session`. Returns whether a new set started.
    """
    grandpa = list(grandpa_keys)
    bls = [(bytes(k), bytes(p)) for k, p in bls_keys_with_pops]
    if len(bls) != len(grandpa):
        raise ValueError("one BLS key per finality key")
    set_id = CurrentSetId.get(ctx.state)
    changed = grandpa != Authorities.get(ctx.state) or bls != SetBlsKeys.get(ctx.state, set_id)
    if changed:
        set_id += 1
        CurrentSetId.put(ctx.state, set_id)
        Authorities.put(ctx.state, grandpa)
        BlsKeys.put(ctx.state, [k for k, _ in bls])
        SetBlsKeys.put(ctx.state, set_id, bls)
        ctx.emit(NewAuthorities(set_id, grandpa))
    if session is not None:
        SessionSetId.put(ctx.state, session, set_id)
    return changed


def build_genesis(
    ctx: Ctx, grandpa_keys: Sequence[bytes], bls_keys_with_pops: Sequence[tuple[bytes, bytes]]
) -> None:
    """Set 0 (session 0)."""
    if len(grandpa_keys) != len(bls_keys_with_pops):
        raise ValueError("one BLS key per finality key")
    Authorities.put(ctx.state, list(grandpa_keys))
    BlsKeys.put(ctx.state, [k for k, _ in bls_keys_with_pops])
    SetBlsKeys.put(ctx.state, 0, [(k, p) for k, p in bls_keys_with_pops])
    CurrentSetId.put(ctx.state, 0)
    SessionSetId.put(ctx.state, 0, 0)


# ---- finality proofs ------------------------------------------------------------------------


def refuse_signed(
    state: ReadState, config: RuntimeConfig, who: bytes, block_number: int, args: object
) -> str | None:
    """Signed-transaction validity of the unsigned-only calls: never (they pay no fee, so a
    signed one would fill blocks with free failures)."""
    return "this call is submitted as an unsigned transaction only"


def current_session(config: RuntimeConfig, block_number: int) -> int:
    return block_number // config.session.length


def check_finality_proof(
    state: ReadState, config: RuntimeConfig, block_number: int, proof: FinalityProof
) -> Error | None:
    """All of submit_finality_proof's checks (no BLS pairing), for a block `block_number`."""
    session = current_session(config, block_number)
    if proof.session == 0 or not session - PROOF_WINDOW_SESSIONS < proof.session <= session:
        return Error.WRONG_SESSION
    if FinalityProofs.contains(state, proof.session):
        return Error.ALREADY_PROVEN
    if SessionSetId.get(state, proof.session) != proof.set_id:
        return Error.WRONG_SET_ID
    if proof.block_number >= block_number or (
        system.BlockHash.get(state, proof.block_number) != proof.block_hash
    ):
        return Error.UNKNOWN_BLOCK
    if proof.block_number != proof.session * config.session.length:
        return Error.WRONG_BLOCK
    signers = SetBlsKeys.get(state, proof.set_id) or []
    try:
        count = len(bitfield_decode(proof.signers, len(signers)))
    except ConsensusError:
        return Error.NOT_ENOUGH_SIGNERS
    if not signers or count < threshold(len(signers)):
        return Error.NOT_ENOUGH_SIGNERS
    return None


def validate_submit(
    state: ReadState, config: RuntimeConfig, block_number: int, proof: FinalityProof
) -> UnsignedValidity | str:
    error = check_finality_proof(state, config, block_number, proof)
    if error is not None:
        reason = f"finality proof refused: {error.doc}"
        future = proof.session > current_session(config, block_number)
        if error is Error.UNKNOWN_BLOCK or (error is Error.WRONG_SESSION and future):
            raise InvalidTransaction("Future", reason)  # this node may lag: do not ban it
        if error in (Error.ALREADY_PROVEN, Error.WRONG_SESSION):
            raise InvalidTransaction("Stale", reason)
        return reason
    return UnsignedValidity(
        priority=UNSIGNED_PRIORITY,
        provides=(FINALITY_PROOF_TAG + encode_u32(proof.session),),
        longevity=2 * config.session.length,
    )


@call(
    SPEC, 0, weight=weights.finality_submit_finality_proof(), pays_fee=False, validate=refuse_signed
)
def submit_finality_proof(
    ctx: Ctx, proof: Annotated[FinalityProof, FINALITY_PROOF, "FinalityProof"]
) -> None:
    """Unsigned: store the BLS finality proof of a session's first block (the aggregate is
    checked off chain, see the module docs). Errors: WrongSession, AlreadyProven, WrongSetId,
    UnknownBlock, WrongBlock, NotEnoughSigners. Emits: FinalityProofStored."""
    ctx.ensure_none()
    error = check_finality_proof(ctx.state, ctx.config, ctx.block_number, proof)
    if error is not None:
        raise ModuleError(error)
    FinalityProofs.put(ctx.state, proof.session, proof)
    ctx.emit(FinalityProofStored(proof.session, proof.block_number))


# ---- equivocation ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Offence:
    offender: bytes  # the account
    kind: EquivocationKind
    key: bytes  # slashing evidence: the offence key (same for every proof of one offence)


def check_equivocation(config: RuntimeConfig, state: ReadState, raw: bytes) -> Offence | Error:
    """Decode and verify an equivocation proof and find the offending account."""
    try:
        proof: EquivocationProof = decode_equivocation(raw)
        proof.check()
    except (CodecError, ConsensusError):
        return Error.INVALID_EQUIVOCATION_PROOF
    if isinstance(proof, SlotEquivocation):
        kind, key_type = EquivocationKind.SLOT, AURA_KEY_TYPE
    else:
        if proof.set_id > CurrentSetId.get(state):
            return Error.UNKNOWN_SET
        kind, key_type = EquivocationKind.VOTE, FINALITY_KEY_TYPE
    offender = key_owner(config, state, key_type, proof.offender)
    if offender is None:
        return Error.UNKNOWN_OFFENDER
    offence = Offence(offender, kind, proof.offence_key())
    offence_id = slashing.offence_id(OffenceKind.EQUIVOCATION, offence.key)
    if slashing.Offences.contains(state, offence_id):
        return Error.ALREADY_REPORTED
    return offence


def validate_report(
    state: ReadState, config: RuntimeConfig, block_number: int, proof: bytes
) -> UnsignedValidity | str:
    found = check_equivocation(config, state, proof)
    if isinstance(found, Error):
        reason = f"equivocation report refused: {found.doc}"
        if found is Error.ALREADY_REPORTED:
            raise InvalidTransaction("Stale", reason)
        return reason
    if staking.get_ledger(state, found.offender) is None:
        return "equivocation report refused: the offender has no bonded stake"
    return UnsignedValidity(
        priority=UNSIGNED_PRIORITY,
        provides=(slashing.offence_id(OffenceKind.EQUIVOCATION, found.key),),
        longevity=EQUIVOCATION_LONGEVITY,
    )


@call(
    SPEC, 1, weight=weights.finality_report_equivocation(), pays_fee=False, validate=refuse_signed
)
def report_equivocation(
    ctx: Ctx, proof: Annotated[bytes, Bytes(MAX_EQUIVOCATION_PROOF), "Vec<u8>"]
) -> None:
    """Unsigned: report two blocks sealed for one slot, or two votes in one round, by one
    validator (`chain.consensus` equivocation proof). Opens an Equivocation offence against the
    key's owner, slashed after the deferral window, everything to the treasury.
    Errors: InvalidEquivocationProof, UnknownSet, UnknownOffender, AlreadyReported, and
    Slashing's NotStaked / TooManyOffences. Emits: EquivocationReported."""
    ctx.ensure_none()
    found = check_equivocation(ctx.config, ctx.state, proof)
    if isinstance(found, Error):
        raise ModuleError(found)
    slashing.report(ctx, found.offender, None, OffenceKind.EQUIVOCATION, found.key)
    ctx.emit(EquivocationReported(found.offender, found.kind))


def validate_unsigned(
    state: ReadState, config: RuntimeConfig, block_number: int, call: DecodedCall
) -> UnsignedValidity | str:
    """FRAME's `ValidateUnsigned` for this pallet's calls (wired in the runtime): both come as
    unsigned transactions, valid while their runtime checks would pass."""
    if call.call.fn is submit_finality_proof:
        return validate_submit(state, config, block_number, call.args["proof"])
    if call.call.fn is report_equivocation:
        return validate_report(state, config, block_number, call.args["proof"])
    return f"{call.name} is not an unsigned call"


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    auths = Authorities.get(state)
    set_id = CurrentSetId.get(state)
    keys = SetBlsKeys.get(state, set_id)
    if keys is not None and [k for k, _ in keys] != BlsKeys.get(state):
        raise AssertionError("BlsKeys differ from SetBlsKeys of the current set")
    if keys is not None and len(keys) != len(auths):
        raise AssertionError("one BLS key per finality authority")
