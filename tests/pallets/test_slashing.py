"""Slashing: root reports, deferred application at era start, cancellation inside the window,
proportional slashes of offender and voters, finder's fee and treasury, suspension, dedup."""

from __future__ import annotations

from typing import Any

import pytest

from chain.frame.pallet import Origin
from pallets.balances.pallet import Slashed
from pallets.registry.pallet import StatusChanged
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import (
    Error,
    OffenceReported,
    Offences,
    OffenderSlashed,
    SlashCancelled,
    SlashHistory,
    SlashRecord,
    TotalSlashed,
    UnappliedSlash,
    UnappliedSlashes,
    offence_id,
)
from pallets.staking.pallet import StakingLedger, UnlockChunk
from pallets.voting import pallet as voting
from pallets.voting.pallet import Error as VotingError
from tests.pallets.mock import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    ED,
    EVE,
    SUDO_KEY,
    MockRuntime,
    mock_config,
)
from tests.pallets.test_staking import (
    CAI,
    ECONOMY_BALANCES,
    MIN_MINER,
    OP1,
    OP2,
    check_economy,
    eco,
    ledger,
    miner_info,
    next_era,
    of_type,
    reg_of,
    register_miner,
    run_to_block,
)

__all__ = ["eco"]  # the fixture

TEN_PERCENT = 100_000_000


def report(
    mock: MockRuntime,
    offender: bytes,
    evidence: bytes = b"evidence",
    reporter: bytes | None = DAVE,
    kind: str = "InvalidResult",
) -> None:
    mock.dispatch(
        "root",
        "Slashing",
        "force_report_offence",
        offender=offender,
        reporter=reporter,
        kind=kind,
        evidence=evidence,
    )


def treasury(mock: MockRuntime) -> bytes:
    return bytes(mock.config.slashing.treasury)


@pytest.fixture
def voted(eco: MockRuntime) -> MockRuntime:
    """ALICE: miner with 20,000 CAI own stake; BOB votes 5,000 CAI and CHARLIE 1,000 CAI for it."""
    register_miner(eco, ALICE, OP1)
    for voter, amount in ((BOB, 5_000 * CAI), (CHARLIE, 1_000 * CAI)):
        eco.dispatch(voter, "Staking", "bond", value=amount)
        eco.dispatch(voter, "Voting", "vote", target=ALICE, value=amount)
    return eco


# ---- force_report_offence ------------------------------------------------------------------------


def test_force_report_offence_defers_slash(voted: MockRuntime) -> None:
    oid = offence_id("InvalidResult", b"evidence")
    report(voted, ALICE)
    assert voted.events() == [
        OffenceReported(offender=ALICE, kind="InvalidResult", offence_id=oid, apply_era=1)
    ]
    exposure = [(BOB, 5_000 * CAI), (CHARLIE, 1_000 * CAI)]  # the votes at report time
    assert UnappliedSlashes.get(voted.state, 1) == [
        UnappliedSlash(ALICE, DAVE, "InvalidResult", oid, TEN_PERCENT, exposure)
    ]
    assert Offences.get(voted.state, oid) == 0
    assert ledger(voted, ALICE) == StakingLedger(ALICE, MIN_MINER, MIN_MINER, [], 0)
    assert reg_of(voted, ALICE).status == "Active"


@pytest.mark.parametrize("origin", [ALICE, Origin.none()], ids=["signed", "none"])
def test_force_report_offence_non_root_is_bad_origin(voted: MockRuntime, origin: Any) -> None:
    voted.assert_noop(
        origin,
        "Slashing",
        "force_report_offence",
        "BadOrigin",
        offender=ALICE,
        reporter=DAVE,
        kind="InvalidResult",
        evidence=b"e",
    )


def test_force_report_offence_not_staked(eco: MockRuntime) -> None:
    eco.assert_noop(
        "root",
        "Slashing",
        "force_report_offence",
        Error.NOT_STAKED,
        offender=ALICE,
        reporter=None,
        kind="Equivocation",
        evidence=b"e",
    )


def test_force_report_offence_duplicate_is_already_reported(voted: MockRuntime) -> None:
    report(voted, ALICE, b"e1")
    voted.assert_noop(
        "root",
        "Slashing",
        "force_report_offence",
        Error.ALREADY_REPORTED,
        offender=ALICE,
        reporter=EVE,
        kind="InvalidResult",
        evidence=b"e1",
    )
    report(voted, ALICE, b"e1", kind="Equivocation")  # another kind is another offence
    report(voted, ALICE, b"e2")


def test_force_report_offence_already_reported_after_applied(voted: MockRuntime) -> None:
    report(voted, ALICE, b"e1")
    for _ in range(3):
        next_era(voted)
    assert SlashHistory.get(voted.state, ALICE) != []
    voted.assert_noop(
        "root",
        "Slashing",
        "force_report_offence",
        Error.ALREADY_REPORTED,
        offender=ALICE,
        reporter=DAVE,
        kind="InvalidResult",
        evidence=b"e1",
    )


def test_force_report_offence_too_many_offences(
    voted: MockRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full era spills into the next eras (no offence is dropped in a busy era); only when
    those are full too is a report refused."""
    monkeypatch.setattr(slashing, "MAX_UNAPPLIED_PER_ERA", 2)
    monkeypatch.setattr(slashing, "MAX_SPILL_ERAS", 1)
    first = slashing.staking.CurrentEra.get(voted.state) + 1  # dev SlashDeferDuration
    for i in range(4):
        report(voted, ALICE if i % 2 else BOB, f"e{i}".encode())
    queues = {e: len(q) for e, q in slashing.UnappliedSlashes.iter(voted.state)}
    assert queues == {first: 2, first + 1: 2}
    voted.assert_noop(
        "root",
        "Slashing",
        "force_report_offence",
        Error.TOO_MANY_OFFENCES,
        offender=ALICE,
        reporter=DAVE,
        kind="InvalidResult",
        evidence=b"e4",
    )
    next_era(voted)
    report(voted, ALICE, b"e4")  # the queues moved on: room again


# ---- applying a slash ----------------------------------------------------------------------------


def test_slash_applies_at_deferred_era_not_before(voted: MockRuntime) -> None:
    report(voted, ALICE)
    assert of_type(run_to_block(voted, 9), OffenderSlashed) == []
    assert ledger(voted, ALICE) == StakingLedger(ALICE, MIN_MINER, MIN_MINER, [], 0)
    assert len(of_type(next_era(voted), OffenderSlashed)) == 1
    assert UnappliedSlashes.get(voted.state, 1) == []


def test_slash_proportions_fee_treasury_and_suspension(voted: MockRuntime) -> None:
    report(voted, ALICE)
    issuance = voted.issuance()
    dave, trsy = voted.free(DAVE), voted.free(treasury(voted))
    events = next_era(voted)
    own, bob, charlie = 2_000 * CAI, 500 * CAI, 100 * CAI
    total = own + bob + charlie
    fee = total // 10
    assert of_type(events, Slashed) == [
        Slashed(who=ALICE, amount=own),
        Slashed(who=BOB, amount=bob),
        Slashed(who=CHARLIE, amount=charlie),
    ]
    assert of_type(events, OffenderSlashed) == [
        OffenderSlashed(offender=ALICE, own=own, voters=bob + charlie, reporter_fee=fee)
    ]
    assert voted.free(DAVE) == dave + fee
    assert voted.free(treasury(voted)) == trsy + total - fee
    assert voted.issuance() == issuance  # burned from stakers, minted to reporter and treasury
    assert ledger(voted, ALICE) == StakingLedger(ALICE, MIN_MINER - own, MIN_MINER - own, [], 0)
    assert ledger(voted, BOB) == StakingLedger(BOB, 4_500 * CAI, 4_500 * CAI, [], 4_500 * CAI)
    assert voting.Votes.get(voted.state, BOB, ALICE) == 4_500 * CAI
    assert voting.Votes.get(voted.state, CHARLIE, ALICE) == 900 * CAI
    assert voting.TotalVotes.get(voted.state, ALICE) == 5_400 * CAI
    reg = reg_of(voted, ALICE)
    assert (reg.status, reg.votes, reg.own_stake) == ("Suspended", 5_400 * CAI, MIN_MINER - own)
    assert StatusChanged(staker=ALICE, status="Suspended") in events
    assert SlashHistory.get(voted.state, ALICE) == [SlashRecord(own, bob + charlie, 1)]
    assert TotalSlashed.get(voted.state) == total
    for who in (ALICE, BOB, CHARLIE):
        lg = ledger(voted, who)
        assert lg is not None
        assert voted.account(who).data.frozen == lg.total
    check_economy(voted)


def test_slash_voter_unvoting_inside_window_still_pays(voted: MockRuntime) -> None:
    voted.dispatch(BOB, "Staking", "bond_extra", max_additional=1_000 * CAI)
    report(voted, ALICE)
    voted.dispatch(BOB, "Voting", "unvote", target=ALICE, value=5_000 * CAI)
    voted.dispatch(BOB, "Staking", "unbond", value=5_800 * CAI)  # unlocking stays slashable
    events = next_era(voted)
    assert Slashed(who=BOB, amount=500 * CAI) in events
    assert of_type(events, OffenderSlashed)[0].voters == 600 * CAI
    # 200 CAI from the active stake left, then 300 CAI from the unlocking chunk
    assert ledger(voted, BOB) == StakingLedger(
        BOB, 5_500 * CAI, 0, [UnlockChunk(5_500 * CAI, 2)], 0
    )
    check_economy(voted)


def test_slash_votes_added_after_report_are_not_exposed(voted: MockRuntime) -> None:
    report(voted, ALICE)
    voted.dispatch(BOB, "Staking", "bond_extra", max_additional=5_000 * CAI)
    voted.dispatch(BOB, "Voting", "vote", target=ALICE, value=5_000 * CAI)
    events = next_era(voted)
    assert Slashed(who=BOB, amount=500 * CAI) in events  # 10% of the 5,000 CAI exposed
    assert voting.Votes.get(voted.state, BOB, ALICE) == 9_500 * CAI
    check_economy(voted)


def test_slash_voter_moving_vote_inside_window_still_pays(voted: MockRuntime) -> None:
    register_miner(voted, EVE, OP2)
    report(voted, ALICE)
    voted.dispatch(BOB, "Voting", "unvote", target=ALICE, value=5_000 * CAI)
    voted.dispatch(BOB, "Voting", "vote", target=EVE, value=5_000 * CAI)
    events = next_era(voted)
    assert Slashed(who=BOB, amount=500 * CAI) in events


def test_slash_without_reporter_all_to_treasury(voted: MockRuntime) -> None:
    report(voted, ALICE, reporter=None, kind="Equivocation")  # 5%
    trsy = voted.free(treasury(voted))
    events = next_era(voted)
    total = (1_000 + 250 + 50) * CAI
    assert of_type(events, OffenderSlashed) == [
        OffenderSlashed(offender=ALICE, own=1_000 * CAI, voters=300 * CAI, reporter_fee=0)
    ]
    assert voted.free(treasury(voted)) == trsy + total
    check_economy(voted)


def test_slash_own_stake_excludes_offenders_votes(voted: MockRuntime) -> None:
    register_miner(voted, EVE, OP2)
    voted.dispatch(ALICE, "Staking", "bond_extra", max_additional=10_000 * CAI)
    voted.dispatch(ALICE, "Voting", "vote", target=EVE, value=10_000 * CAI)
    report(voted, ALICE)
    events = next_era(voted)
    assert of_type(events, OffenderSlashed)[0].own == 2_000 * CAI  # 10% of 20,000, not 30,000
    lg = ledger(voted, ALICE)
    assert lg is not None
    assert (lg.total, lg.allocated) == (28_000 * CAI, 10_000 * CAI)
    assert voting.Votes.get(voted.state, ALICE, EVE) == 10_000 * CAI
    check_economy(voted)


def test_slash_takes_active_then_newest_unlocking_chunks(eco: MockRuntime) -> None:
    eco.dispatch(EVE, "Staking", "bond", value=50_000 * CAI)
    eco.dispatch(EVE, "Staking", "unbond", value=46_000 * CAI)  # withdrawable from era 2
    next_era(eco)
    eco.dispatch(EVE, "Staking", "unbond", value=3_000 * CAI)  # from era 3
    report(eco, EVE)  # applied when era 2 starts: the era-2 chunk is still slashable
    events = next_era(eco)
    assert of_type(events, OffenderSlashed) == [
        OffenderSlashed(offender=EVE, own=5_000 * CAI, voters=0, reporter_fee=500 * CAI)
    ]
    # 1,000 from active, then 3,000 (all) of the newest chunk, then 1,000 of the older one
    assert ledger(eco, EVE) == StakingLedger(
        EVE, 45_000 * CAI, 0, [UnlockChunk(45_000 * CAI, 2)], 0
    )
    assert eco.account(EVE).data.frozen == 45_000 * CAI
    eco.dispatch(EVE, "Staking", "withdraw_unbonded")
    assert ledger(eco, EVE) is None
    check_economy(eco)


def test_slash_unregistered_staker_no_status(eco: MockRuntime) -> None:
    eco.dispatch(BOB, "Staking", "bond", value=1_000 * CAI)
    report(eco, BOB, reporter=None)
    events = next_era(eco)
    assert of_type(events, StatusChanged) == []
    assert of_type(events, OffenderSlashed)[0].own == 100 * CAI


def test_force_report_offence_after_full_withdrawal_is_not_staked(voted: MockRuntime) -> None:
    voted.dispatch(ALICE, "Staking", "unbond", value=MIN_MINER)
    next_era(voted)
    next_era(voted)
    voted.dispatch(ALICE, "Staking", "withdraw_unbonded")
    assert ledger(voted, ALICE) is None
    voted.assert_noop(
        "root",
        "Slashing",
        "force_report_offence",
        Error.NOT_STAKED,
        offender=ALICE,
        reporter=None,
        kind="InvalidResult",
        evidence=b"late",
    )


def test_slash_suspended_stays_suspended_until_registered_again(voted: MockRuntime) -> None:
    report(voted, ALICE)
    next_era(voted)
    voted.dispatch(ALICE, "Staking", "bond_extra", max_additional=5_000 * CAI)
    assert reg_of(voted, ALICE).status == "Suspended"
    voted.dispatch(EVE, "Staking", "bond", value=CAI)
    voted.assert_noop(EVE, "Voting", "vote", VotingError.TARGET_INACTIVE, target=ALICE, value=1)
    voted.dispatch(BOB, "Voting", "unvote", target=ALICE, value=4_500 * CAI)  # voters may leave
    voted.dispatch(CHARLIE, "Voting", "unvote", target=ALICE, value=900 * CAI)
    voted.dispatch(ALICE, "Registry", "deregister")
    voted.dispatch(ALICE, "Registry", "register_miner", operator=OP1, info=miner_info())
    assert reg_of(voted, ALICE).status == "Active"
    check_economy(voted)


def test_slash_does_not_leave_account_below_existential_deposit() -> None:
    # built directly, not by the fixture, so that only the test body reports the broken state
    eco = MockRuntime(mock_config(), dict(ECONOMY_BALANCES), SUDO_KEY)
    register_miner(eco, ALICE, OP1)
    eco.dispatch(BOB, "Staking", "bond", value=ED)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=ED)
    eco.dispatch(
        BOB, "Balances", "transfer_allow_death", dest=("Id", CHARLIE), value=eco.free(BOB) - ED
    )
    report(eco, ALICE)
    next_era(eco)
    eco.runtime.try_state(eco.state)


# ---- cancel_deferred_slash -----------------------------------------------------------------------


def test_cancel_deferred_slash_prevents_slash(voted: MockRuntime) -> None:
    report(voted, ALICE)
    voted.dispatch("root", "Slashing", "cancel_deferred_slash", era=1, slash_indices=[0])
    assert voted.events() == [SlashCancelled(era=1, offender=ALICE)]
    assert not UnappliedSlashes.contains(voted.state, 1)
    issuance = voted.issuance()
    events = next_era(voted)
    assert of_type(events, OffenderSlashed) == of_type(events, Slashed) == []
    assert ledger(voted, ALICE) == StakingLedger(ALICE, MIN_MINER, MIN_MINER, [], 0)
    assert reg_of(voted, ALICE).status == "Active"
    assert voted.issuance() == issuance
    voted.assert_noop(  # a cancelled offence stays reported
        "root",
        "Slashing",
        "force_report_offence",
        Error.ALREADY_REPORTED,
        offender=ALICE,
        reporter=DAVE,
        kind="InvalidResult",
        evidence=b"evidence",
    )


def test_cancel_deferred_slash_keeps_the_others(voted: MockRuntime) -> None:
    report(voted, ALICE, b"a")
    report(voted, BOB, b"b")
    report(voted, CHARLIE, b"c")
    voted.dispatch("root", "Slashing", "cancel_deferred_slash", era=1, slash_indices=[2, 0, 2])
    assert voted.events() == [
        SlashCancelled(era=1, offender=ALICE),
        SlashCancelled(era=1, offender=CHARLIE),
    ]
    assert [s.offender for s in UnappliedSlashes.get(voted.state, 1)] == [BOB]
    events = next_era(voted)
    assert [e.offender for e in of_type(events, OffenderSlashed)] == [BOB]
    check_economy(voted)


@pytest.mark.parametrize(("era", "indices"), [(1, [1]), (1, [0, 1]), (2, [0]), (0, [0])], ids=str)
def test_cancel_deferred_slash_invalid_index(
    voted: MockRuntime, era: int, indices: list[int]
) -> None:
    report(voted, ALICE)
    voted.assert_noop(
        "root",
        "Slashing",
        "cancel_deferred_slash",
        Error.INVALID_SLASH_INDEX,
        era=era,
        slash_indices=indices,
    )


def test_cancel_deferred_slash_after_applied_is_invalid_index(voted: MockRuntime) -> None:
    report(voted, ALICE)
    next_era(voted)
    voted.assert_noop(
        "root",
        "Slashing",
        "cancel_deferred_slash",
        Error.INVALID_SLASH_INDEX,
        era=1,
        slash_indices=[0],
    )


def test_cancel_deferred_slash_empty_indices(voted: MockRuntime) -> None:
    report(voted, ALICE)
    voted.assert_noop(
        "root",
        "Slashing",
        "cancel_deferred_slash",
        Error.EMPTY_SLASH_INDICES,
        era=1,
        slash_indices=[],
    )


@pytest.mark.parametrize("origin", [ALICE, Origin.none()], ids=["signed", "none"])
def test_cancel_deferred_slash_non_root_is_bad_origin(voted: MockRuntime, origin: Any) -> None:
    report(voted, ALICE)
    voted.assert_noop(
        origin, "Slashing", "cancel_deferred_slash", "BadOrigin", era=1, slash_indices=[0]
    )
