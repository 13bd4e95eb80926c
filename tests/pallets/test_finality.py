"""Finality: per-session BLS finality proofs (every error path) and equivocation reports with real
sr25519-sealed headers and ed25519 votes, slashed once from the validator's own bonded stake."""

from __future__ import annotations

from typing import Any

import pytest

from chain.codec import encode_u32
from chain.consensus import PREVOTE, SlotEquivocation, bitfield_encode, decode_equivocation
from node.keystore import Signer, derive_key
from pallets.balances import pallet as balances
from pallets.executive import InvalidTransaction, UnsignedValidity
from pallets.finality import pallet as finality
from pallets.finality.pallet import (
    EQUIVOCATION_LONGEVITY,
    FINALITY_PROOF_TAG,
    UNSIGNED_PRIORITY,
    EquivocationReported,
    Error,
    FinalityProof,
    FinalityProofs,
    FinalityProofStored,
)
from pallets.session import pallet as session
from pallets.session.pallet import CurrentIndex, SessionKeys
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import Error as SlashingError
from pallets.slashing.pallet import OffenceReported, OffenderSlashed
from pallets.staking import pallet as staking
from pallets.system import pallet as system
from tests.pallets.conftest import MockFactory
from tests.pallets.mock import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    EVE,
    MockRuntime,
    add_validators,
    sealed_header,
    slot_equivocation,
    vote_equivocation,
)
from tests.pallets.test_staking import ECONOMY_BALANCES, of_type, run_to_block

LENGTH = 10  # dev session.length
SIG = b"\x5a" * 96  # the runtime does not check the aggregate (see the pallet docs)
PERBILL = 1_000_000_000


def sr(name: str) -> Signer:
    return derive_key(f"//{name}", "sr25519").signer()


def ed(name: str) -> Signer:
    return derive_key(f"//{name}", "ed25519").signer()


def real_keys(name: str) -> SessionKeys:
    return SessionKeys(aura=sr(name).public, grandpa=ed(name).public, bls=b"\x42" * 48)


def block_hash(n: int) -> bytes:
    return bytes([n % 256]) * 32


@pytest.fixture
def vals(new_test_ext: MockFactory) -> MockRuntime:
    """Four bonded validators (ALICE holds //Alice's real aura and finality keys), run to block
    23 (session 2) with the hashes of blocks 0..22 known."""
    mock = new_test_ext(endowed=dict(ECONOMY_BALANCES))
    add_validators(mock, [ALICE, BOB, CHARLIE, DAVE], keys={ALICE: real_keys("Alice")})
    run_to_block(mock, 2 * LENGTH + 3)
    for n in range(mock.block_number):
        system.BlockHash.put(mock.state, n, block_hash(n))
    return mock


def proof(
    session_index: int = 2,
    *,
    set_id: int = 0,
    number: int | None = None,
    hash_: bytes | None = None,
    signers: list[int] | None = None,
    n: int = 4,
) -> FinalityProof:
    number = session_index * LENGTH if number is None else number
    return FinalityProof(
        session=session_index,
        set_id=set_id,
        block_number=number,
        block_hash=block_hash(number) if hash_ is None else hash_,
        signers=bitfield_encode([0, 1, 2] if signers is None else signers, n),
        signature=SIG,
    )


def submit(mock: MockRuntime, p: FinalityProof) -> None:
    mock.dispatch("none", "Finality", "submit_finality_proof", proof=p)


def pool_verdict(hook: Any, mock: MockRuntime, arg: Any) -> str:
    """How the pool sees it: "Call" (a reason: banned), or the kind the hook raised."""
    try:
        verdict = hook(mock.state, mock.config, mock.block_number, arg)
    except InvalidTransaction as exc:
        return exc.kind
    assert isinstance(verdict, str)
    return "Call"


def submit_noop(mock: MockRuntime, p: FinalityProof, error: Any, kind: str = "Call") -> None:
    mock.assert_noop("none", "Finality", "submit_finality_proof", error, proof=p)
    assert pool_verdict(finality.validate_submit, mock, p) == kind


# ---- finality proofs ----------------------------------------------------------------------------


def test_submit_finality_proof_stores_it(vals: MockRuntime) -> None:
    p = proof()
    verdict = finality.validate_submit(vals.state, vals.config, vals.block_number, p)
    assert verdict == UnsignedValidity(
        UNSIGNED_PRIORITY, (FINALITY_PROOF_TAG + encode_u32(2),), 2 * LENGTH
    )
    submit(vals, p)
    assert vals.events() == [FinalityProofStored(session=2, block_number=20)]
    assert FinalityProofs.get(vals.state, 2) == p


def test_recent_sessions_are_accepted_genesis_and_future_are_not(vals: MockRuntime) -> None:
    submit(vals, proof(1))
    assert FinalityProofs.get(vals.state, 1) == proof(1)
    submit_noop(vals, proof(0), Error.WRONG_SESSION, "Stale")
    submit_noop(vals, proof(3), Error.WRONG_SESSION, "Future")


def test_second_proof_of_a_session_is_already_proven(vals: MockRuntime) -> None:
    submit(vals, proof(signers=[0, 1, 2]))
    submit_noop(vals, proof(signers=[1, 2, 3]), Error.ALREADY_PROVEN, "Stale")


def test_proof_by_another_set_is_wrong_set_id(vals: MockRuntime) -> None:
    submit_noop(vals, proof(set_id=1), Error.WRONG_SET_ID)


def test_proof_of_an_unknown_block_is_refused(vals: MockRuntime) -> None:
    submit_noop(vals, proof(hash_=b"\xee" * 32), Error.UNKNOWN_BLOCK, "Future")
    vals.run_to_block(LENGTH * 2)  # the session's first block is the current block
    submit_noop(vals, proof(), Error.UNKNOWN_BLOCK, "Future")


def test_proof_of_another_block_than_the_sessions_first_is_wrong_block(vals: MockRuntime) -> None:
    submit_noop(vals, proof(number=21), Error.WRONG_BLOCK)
    submit_noop(vals, proof(1, number=20), Error.WRONG_BLOCK)


@pytest.mark.parametrize(
    "bits",
    [
        bitfield_encode([0, 1], 4),  # 2 of 4: not more than 2/3
        b"",  # no byte for a set of 4
        b"\x07\x00",  # two bytes for a set of 4
        b"\x1f",  # names signer 4 of a set of 4
    ],
)
def test_too_few_or_malformed_signers_is_not_enough_signers(vals: MockRuntime, bits: bytes) -> None:
    p = proof()
    p = FinalityProof(p.session, p.set_id, p.block_number, p.block_hash, bits, p.signature)
    submit_noop(vals, p, Error.NOT_ENOUGH_SIGNERS)


@pytest.mark.parametrize("origin", [ALICE, "root"])
def test_calls_are_unsigned_only(vals: MockRuntime, origin: Any) -> None:
    vals.assert_noop(origin, "Finality", "submit_finality_proof", "BadOrigin", proof=proof())
    equivocation = slot_equivocation(sr("Alice"), 5)
    vals.assert_noop(origin, "Finality", "report_equivocation", "BadOrigin", proof=equivocation)


# ---- the set ----------------------------------------------------------------------------------


def test_enact_set_bumps_the_id_only_on_change(vals: MockRuntime) -> None:
    ctx = vals.ctx("root", [])
    grandpa = finality.Authorities.get(vals.state)
    bls = finality.SetBlsKeys.get(vals.state, 0)
    assert not finality.enact_set(ctx, grandpa, bls, session=3)
    assert finality.CurrentSetId.get(vals.state) == 0
    assert finality.enact_set(ctx, grandpa[:3], bls[:3], session=4)
    assert finality.CurrentSetId.get(vals.state) == 1
    assert finality.SetBlsKeys.get(vals.state, 1) == bls[:3]
    assert finality.SetBlsKeys.get(vals.state, 0) == bls
    assert [finality.SessionSetId.get(vals.state, s) for s in (3, 4)] == [0, 1]
    with pytest.raises(ValueError, match="one BLS key"):
        finality.enact_set(ctx, grandpa, bls[:2])


# ---- equivocation -----------------------------------------------------------------------------


def report(mock: MockRuntime, raw: bytes) -> None:
    mock.dispatch("none", "Finality", "report_equivocation", proof=raw)


def report_noop(mock: MockRuntime, raw: bytes, error: Any, kind: str = "Call") -> None:
    mock.assert_noop("none", "Finality", "report_equivocation", error, proof=raw)
    assert pool_verdict(finality.validate_report, mock, raw) == kind


def bonded(mock: MockRuntime, who: bytes) -> int:
    ledger = staking.get_ledger(mock.state, who)
    assert ledger is not None
    return ledger.total


def test_slot_equivocation_is_slashed_once_after_the_deferral(vals: MockRuntime) -> None:
    raw = slot_equivocation(sr("Alice"), 1234)
    key = decode_equivocation(raw).offence_key()
    oid = slashing.offence_id("Equivocation", key)
    verdict = finality.validate_report(vals.state, vals.config, vals.block_number, raw)
    assert verdict == UnsignedValidity(UNSIGNED_PRIORITY, (oid,), EQUIVOCATION_LONGEVITY)
    stake = bonded(vals, ALICE)
    treasury = vals.config.slashing.treasury
    treasury_before = balances.free_balance(vals.state, treasury)
    issuance = vals.issuance()
    report(vals, raw)
    events = vals.events()
    assert of_type(events, EquivocationReported) == [EquivocationReported(ALICE, "Slot")]
    apply_era = staking.CurrentEra.get(vals.state) + vals.config.slashing.slash_defer_duration
    assert of_type(events, OffenceReported) == [
        OffenceReported(ALICE, "Equivocation", oid, apply_era)
    ]
    # another pair of headers for the same slot proves the same offence: refused
    again = slot_equivocation(sr("Alice"), 1234, b"c", b"d")
    assert again != raw
    report_noop(vals, again, Error.ALREADY_REPORTED, "Stale")
    assert bonded(vals, ALICE) == stake  # deferred
    events = run_to_block(vals, apply_era * vals.config.staking.era_length)
    slash = stake * vals.config.slashing.equivocation_slash // PERBILL
    assert of_type(events, OffenderSlashed) == [OffenderSlashed(ALICE, slash, 0, 0)]
    assert bonded(vals, ALICE) == stake - slash
    assert balances.free_balance(vals.state, treasury) == treasury_before + slash  # no reporter
    assert vals.issuance() == issuance
    # after the slash, still refused; and nothing more is taken at the next eras
    report_noop(vals, again, Error.ALREADY_REPORTED, "Stale")
    run_to_block(vals, vals.block_number + 3 * vals.config.staking.era_length)
    assert bonded(vals, ALICE) == stake - slash
    vals.runtime.try_state(vals.state)


def test_vote_equivocation_is_reported_against_the_keys_owner(vals: MockRuntime) -> None:
    raw = vote_equivocation(ed("Alice"), set_id=0, round_number=3)
    report(vals, raw)
    assert of_type(vals.events(), EquivocationReported) == [EquivocationReported(ALICE, "Vote")]
    # other targets in the same round and phase: the same offence
    same = vote_equivocation(
        ed("Alice"), set_id=0, round_number=3, targets=(b"\x03" * 32, b"\x04" * 32)
    )
    report_noop(vals, same, Error.ALREADY_REPORTED, "Stale")
    # another round, or the other phase, is another offence
    report(vals, vote_equivocation(ed("Alice"), set_id=0, round_number=4))
    report(vals, vote_equivocation(ed("Alice"), set_id=0, round_number=3, phase=PREVOTE))
    apply_era = staking.CurrentEra.get(vals.state) + vals.config.slashing.slash_defer_duration
    queued = slashing.UnappliedSlashes.get(vals.state, apply_era)
    assert [(s.offender, s.kind, s.reporter) for s in queued] == [(ALICE, "Equivocation", None)] * 3


def test_vote_equivocation_in_a_future_set_is_unknown_set(vals: MockRuntime) -> None:
    report_noop(vals, vote_equivocation(ed("Alice"), set_id=1), Error.UNKNOWN_SET)


def test_equivocation_by_an_unregistered_key_is_unknown_offender(vals: MockRuntime) -> None:
    report_noop(vals, slot_equivocation(sr("Eve"), 9), Error.UNKNOWN_OFFENDER)
    report_noop(vals, vote_equivocation(ed("Eve")), Error.UNKNOWN_OFFENDER)


def test_equivocation_by_an_unbonded_key_owner_is_not_staked(new_test_ext: MockFactory) -> None:
    mock = new_test_ext(endowed=dict(ECONOMY_BALANCES))
    add_validators(mock, [EVE], bond=0, keys={EVE: real_keys("Eve")})
    raw = slot_equivocation(sr("Eve"), 9)
    mock.assert_noop("none", "Finality", "report_equivocation", SlashingError.NOT_STAKED, proof=raw)
    verdict = finality.validate_report(mock.state, mock.config, 1, raw)
    assert verdict == "equivocation report refused: the offender has no bonded stake"


def test_equivocations_with_keys_rotated_out_are_slashed_while_they_are_retained(
    vals: MockRuntime,
) -> None:
    """ALICE sets new keys in session 2. Her old keys author and vote until session 3 starts,
    and she equivocates with them later in session 2 (and it is reported a session later): both
    reports find her and she alone is slashed, twice. After the retention the key is nobody's."""
    others = {v: bonded(vals, v) for v in (BOB, CHARLIE, DAVE)}
    stake = bonded(vals, ALICE)
    vals.dispatch(ALICE, "Session", "set_keys", keys=real_keys("Alice//2"), proof=b"\x07" * 96)
    run_to_block(vals, vals.block_number + 3)
    assert CurrentIndex.get(vals.state) == 2  # the same session: the old keys still sign
    report(vals, slot_equivocation(sr("Alice"), 1234))
    assert of_type(vals.events(), EquivocationReported) == [EquivocationReported(ALICE, "Slot")]
    events = run_to_block(vals, 3 * LENGTH + 1)  # session 3: new keys sign, old are retained
    report(vals, vote_equivocation(ed("Alice"), set_id=0, round_number=3))
    assert of_type(vals.events(), EquivocationReported) == [EquivocationReported(ALICE, "Vote")]
    apply_era = staking.CurrentEra.get(vals.state) + vals.config.slashing.slash_defer_duration
    events += run_to_block(vals, apply_era * vals.config.staking.era_length)
    slashed = of_type(events, OffenderSlashed)
    assert [s.offender for s in slashed] == [ALICE, ALICE]
    assert bonded(vals, ALICE) == stake - sum(s.own for s in slashed) < stake
    assert {v: bonded(vals, v) for v in others} == others
    expiry = 3 + session.key_retention_sessions(vals.config)
    run_to_block(vals, expiry * LENGTH)
    report_noop(vals, slot_equivocation(sr("Alice"), 99), Error.UNKNOWN_OFFENDER)
    vals.runtime.try_state(vals.state)


def forged_slot_proof() -> bytes:
    """Headers sealed by //Alice, the proof naming //Bob's key as the offender."""
    a, b = sealed_header(sr("Alice"), 7, b"a"), sealed_header(sr("Alice"), 7, b"b")
    return SlotEquivocation(sr("Bob").public, 7, a, b).encode()


def same_header_twice() -> bytes:
    h = sealed_header(sr("Alice"), 7, b"a")
    return SlotEquivocation(sr("Alice").public, 7, h, h).encode()


def other_slots() -> bytes:
    a, b = sealed_header(sr("Alice"), 7, b"a"), sealed_header(sr("Alice"), 8, b"b")
    return SlotEquivocation(sr("Alice").public, 7, a, b).encode()


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"",
        lambda: b"\x05" + b"\x00" * 40,  # unknown kind
        lambda: slot_equivocation(sr("Alice"), 5)[:-1],  # truncated
        forged_slot_proof,
        same_header_twice,
        other_slots,
        lambda: vote_equivocation(ed("Alice"), targets=(b"\x01" * 32, b"\x01" * 32)),
    ],
)
def test_garbage_and_unverifiable_proofs_are_invalid(vals: MockRuntime, make: Any) -> None:
    report_noop(vals, make(), Error.INVALID_EQUIVOCATION_PROOF)


def test_a_proof_is_taken_while_its_session_is_one_of_the_last_four(
    new_test_ext: MockFactory,
) -> None:
    """A late proof (BLS work is slow, sessions may be short) is still stored a few sessions
    on; a session that left the window is refused."""
    mock = new_test_ext(endowed=dict(ECONOMY_BALANCES))
    add_validators(mock, [ALICE, BOB, CHARLIE, DAVE], keys={ALICE: real_keys("Alice")})
    run_to_block(mock, 5 * LENGTH + 3)  # session 5: sessions 2..5 are in the window
    for n in range(mock.block_number):
        system.BlockHash.put(mock.state, n, block_hash(n))
    submit_noop(mock, proof(1), Error.WRONG_SESSION, "Stale")
    submit(mock, proof(2))
    assert FinalityProofs.get(mock.state, 2) == proof(2)
    submit(mock, proof(5))
