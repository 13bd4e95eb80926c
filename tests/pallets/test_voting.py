"""Voting: vote/unvote allocate bonded stake to registered, active targets; the Votes/Voters
mirrors, TotalVotes, counters and registration votes stay consistent; bounds."""

from __future__ import annotations

import pytest

from chain.frame.pallet import Origin
from pallets.staking.pallet import Error as StakingError
from pallets.voting import pallet as voting
from pallets.voting.pallet import (
    Error,
    TargetCount,
    TotalVotes,
    Unvoted,
    Voted,
    VoterCount,
    Voters,
    Votes,
)
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, EVE, MockRuntime
from tests.pallets.test_staking import (
    CAI,
    FERDIE,
    MIN_MINER,
    OP1,
    OP2,
    OP3,
    OP4,
    check_economy,
    eco,
    ledger,
    reg_of,
    register_coordinator,
    register_miner,
)

__all__ = ["eco"]  # the fixture


def _allocated(mock: MockRuntime, who: bytes) -> int:
    lg = ledger(mock, who)
    assert lg is not None
    return lg.allocated


@pytest.fixture
def miner(eco: MockRuntime) -> MockRuntime:
    """ALICE is an active miner; BOB has 1,000 CAI bonded."""
    register_miner(eco, ALICE, OP1)
    eco.dispatch(BOB, "Staking", "bond", value=1_000 * CAI)
    return eco


# ---- vote ----------------------------------------------------------------------------------------


def test_vote_allocates_stake_and_records_vote(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    assert miner.events() == [Voted(voter=BOB, target=ALICE, amount=300 * CAI)]
    assert Votes.get(miner.state, BOB, ALICE) == 300 * CAI
    assert Voters.get(miner.state, ALICE, BOB) == 300 * CAI
    assert TotalVotes.get(miner.state, ALICE) == 300 * CAI
    assert VoterCount.get(miner.state, ALICE) == 1
    assert TargetCount.get(miner.state, BOB) == 1
    assert _allocated(miner, BOB) == 300 * CAI
    assert reg_of(miner, ALICE).votes == 300 * CAI
    check_economy(miner)


def test_vote_again_adds_to_the_vote(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=200 * CAI)
    assert Votes.get(miner.state, BOB, ALICE) == 500 * CAI
    assert (VoterCount.get(miner.state, ALICE), TargetCount.get(miner.state, BOB)) == (1, 1)
    assert reg_of(miner, ALICE).votes == 500 * CAI
    check_economy(miner)


def test_vote_several_voters_and_targets_add_up(miner: MockRuntime) -> None:
    register_miner(miner, DAVE, OP2)
    miner.dispatch(EVE, "Staking", "bond", value=500 * CAI)
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=100 * CAI)
    miner.dispatch(BOB, "Voting", "vote", target=DAVE, value=200 * CAI)
    miner.dispatch(EVE, "Voting", "vote", target=ALICE, value=50 * CAI)
    assert TotalVotes.get(miner.state, ALICE) == 150 * CAI
    assert TotalVotes.get(miner.state, DAVE) == 200 * CAI
    assert VoterCount.get(miner.state, ALICE) == 2
    assert TargetCount.get(miner.state, BOB) == 2
    assert _allocated(miner, BOB) == 300 * CAI
    assert sorted(Voters.iter_prefix(miner.state, ALICE)) == sorted(
        [(BOB, 100 * CAI), (EVE, 50 * CAI)]
    )
    check_economy(miner)


def test_vote_coordinator_target(eco: MockRuntime) -> None:
    register_coordinator(eco, ALICE, OP1)
    eco.dispatch(BOB, "Staking", "bond", value=10 * CAI)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=10 * CAI)
    assert reg_of(eco, ALICE).votes == 10 * CAI


def test_vote_not_bonded(miner: MockRuntime) -> None:
    miner.assert_noop(CHARLIE, "Voting", "vote", Error.NOT_BONDED, target=ALICE, value=CAI)


def test_vote_zero_amount(miner: MockRuntime) -> None:
    miner.assert_noop(BOB, "Voting", "vote", Error.ZERO_AMOUNT, target=ALICE, value=0)


def test_vote_self_is_cannot_vote_self(miner: MockRuntime) -> None:
    miner.dispatch(ALICE, "Staking", "bond_extra", max_additional=10 * CAI)
    miner.assert_noop(ALICE, "Voting", "vote", Error.CANNOT_VOTE_SELF, target=ALICE, value=CAI)


@pytest.mark.parametrize("target", [CHARLIE, OP1, BOB], ids=["unbonded", "operator", "staker"])
def test_vote_non_registered_target(miner: MockRuntime, target: bytes) -> None:
    if target == BOB:  # a bonded but unregistered account
        miner.dispatch(CHARLIE, "Staking", "bond", value=10 * CAI)
        voter = CHARLIE
    else:
        voter = BOB
    miner.assert_noop(voter, "Voting", "vote", Error.TARGET_NOT_REGISTERED, target=target, value=1)


def test_vote_deregistered_target_is_not_registered(miner: MockRuntime) -> None:
    miner.dispatch(ALICE, "Registry", "deregister")
    miner.assert_noop(BOB, "Voting", "vote", Error.TARGET_NOT_REGISTERED, target=ALICE, value=1)


def test_vote_inactive_target(miner: MockRuntime) -> None:
    miner.dispatch(ALICE, "Staking", "unbond", value=1)
    assert reg_of(miner, ALICE).status == "Inactive"
    miner.assert_noop(BOB, "Voting", "vote", Error.TARGET_INACTIVE, target=ALICE, value=CAI)
    miner.dispatch(ALICE, "Staking", "rebond", value=1)
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=CAI)


def test_vote_more_than_free_to_allocate(miner: MockRuntime) -> None:
    miner.assert_noop(
        BOB, "Voting", "vote", Error.INSUFFICIENT_FREE_STAKE, target=ALICE, value=1_000 * CAI + 1
    )
    register_miner(miner, DAVE, OP2)
    miner.dispatch(BOB, "Voting", "vote", target=DAVE, value=600 * CAI)
    miner.dispatch(BOB, "Staking", "unbond", value=100 * CAI)  # unlocking stake is not votable
    miner.assert_noop(
        BOB, "Voting", "vote", Error.INSUFFICIENT_FREE_STAKE, target=ALICE, value=300 * CAI + 1
    )
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    assert _allocated(miner, BOB) == 900 * CAI
    check_economy(miner)


def test_vote_registered_voter_keeps_its_own_minimum(miner: MockRuntime) -> None:
    register_miner(miner, DAVE, OP2, stake=MIN_MINER + 50 * CAI)
    miner.assert_noop(
        DAVE, "Voting", "vote", Error.INSUFFICIENT_FREE_STAKE, target=ALICE, value=50 * CAI + 1
    )
    miner.dispatch(DAVE, "Voting", "vote", target=ALICE, value=50 * CAI)
    reg = reg_of(miner, DAVE)
    assert (reg.own_stake, reg.status) == (MIN_MINER, "Active")
    miner.assert_noop(DAVE, "Voting", "vote", Error.INSUFFICIENT_FREE_STAKE, target=ALICE, value=1)
    check_economy(miner)


def test_vote_too_many_targets(eco: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voting, "MAX_TARGETS_PER_VOTER", 2)
    for who, op in ((ALICE, OP1), (BOB, OP2), (CHARLIE, OP3)):
        register_miner(eco, who, op)
    eco.dispatch(DAVE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(DAVE, "Voting", "vote", target=ALICE, value=CAI)
    eco.dispatch(DAVE, "Voting", "vote", target=BOB, value=CAI)
    eco.assert_noop(DAVE, "Voting", "vote", Error.TOO_MANY_TARGETS, target=CHARLIE, value=CAI)
    eco.dispatch(DAVE, "Voting", "vote", target=BOB, value=CAI)  # adding to a vote is fine
    eco.dispatch(DAVE, "Voting", "unvote", target=ALICE, value=CAI)  # frees a slot
    eco.dispatch(DAVE, "Voting", "vote", target=CHARLIE, value=CAI)
    assert TargetCount.get(eco.state, DAVE) == 2
    check_economy(eco)


def test_vote_too_many_voters(eco: MockRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voting, "MAX_VOTERS_PER_TARGET", 2)
    register_miner(eco, ALICE, OP1)
    for voter in (BOB, CHARLIE, DAVE):
        eco.dispatch(voter, "Staking", "bond", value=100 * CAI)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=CAI)
    eco.dispatch(CHARLIE, "Voting", "vote", target=ALICE, value=CAI)
    eco.assert_noop(DAVE, "Voting", "vote", Error.TOO_MANY_VOTERS, target=ALICE, value=CAI)
    eco.dispatch(CHARLIE, "Voting", "vote", target=ALICE, value=CAI)  # an existing voter adds
    eco.dispatch(BOB, "Voting", "unvote", target=ALICE, value=CAI)
    eco.dispatch(DAVE, "Voting", "vote", target=ALICE, value=CAI)
    assert VoterCount.get(eco.state, ALICE) == 2
    check_economy(eco)


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()], ids=["root", "none"])
@pytest.mark.parametrize("call", ["vote", "unvote"])
def test_voting_calls_unsigned_are_bad_origin(
    miner: MockRuntime, origin: Origin, call: str
) -> None:
    miner.assert_noop(origin, "Voting", call, "BadOrigin", target=ALICE, value=CAI)


# ---- unvote --------------------------------------------------------------------------------------


def test_unvote_partial_releases_stake(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.dispatch(BOB, "Voting", "unvote", target=ALICE, value=100 * CAI)
    assert miner.events() == [Unvoted(voter=BOB, target=ALICE, amount=100 * CAI)]
    assert Votes.get(miner.state, BOB, ALICE) == 200 * CAI
    assert TotalVotes.get(miner.state, ALICE) == 200 * CAI
    assert _allocated(miner, BOB) == 200 * CAI
    assert reg_of(miner, ALICE).votes == 200 * CAI
    check_economy(miner)


def test_unvote_all_removes_entries_and_allows_unbond(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.assert_noop(BOB, "Staking", "unbond", StakingError.STAKE_ALLOCATED, value=1_000 * CAI)
    miner.dispatch(BOB, "Voting", "unvote", target=ALICE, value=300 * CAI)
    assert Votes.get(miner.state, BOB, ALICE) is None
    assert Voters.get(miner.state, ALICE, BOB) is None
    assert not TotalVotes.contains(miner.state, ALICE)
    assert not VoterCount.contains(miner.state, ALICE)
    assert not TargetCount.contains(miner.state, BOB)
    assert _allocated(miner, BOB) == 0
    assert reg_of(miner, ALICE).votes == 0
    miner.dispatch(BOB, "Staking", "unbond", value=1_000 * CAI)
    check_economy(miner)


def test_unvote_more_than_voted_is_not_enough_votes(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.assert_noop(
        BOB, "Voting", "unvote", Error.NOT_ENOUGH_VOTES, target=ALICE, value=300 * CAI + 1
    )
    miner.assert_noop(CHARLIE, "Voting", "unvote", Error.NOT_ENOUGH_VOTES, target=ALICE, value=1)


def test_unvote_zero_amount(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=CAI)
    miner.assert_noop(BOB, "Voting", "unvote", Error.ZERO_AMOUNT, target=ALICE, value=0)


def test_unvote_deregistered_target_allowed(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.dispatch(ALICE, "Registry", "deregister")
    assert TotalVotes.get(miner.state, ALICE) == 300 * CAI  # votes stay until voters unvote
    check_economy(miner)
    miner.dispatch(BOB, "Voting", "unvote", target=ALICE, value=300 * CAI)
    assert miner.events() == [Unvoted(voter=BOB, target=ALICE, amount=300 * CAI)]
    assert _allocated(miner, BOB) == 0
    assert not TotalVotes.contains(miner.state, ALICE)
    check_economy(miner)


def test_unvote_inactive_target_allowed(miner: MockRuntime) -> None:
    miner.dispatch(BOB, "Voting", "vote", target=ALICE, value=300 * CAI)
    miner.dispatch(ALICE, "Staking", "unbond", value=CAI)
    assert reg_of(miner, ALICE).status == "Inactive"
    miner.dispatch(BOB, "Voting", "unvote", target=ALICE, value=100 * CAI)
    assert reg_of(miner, ALICE).votes == 200 * CAI
    check_economy(miner)


def test_vote_then_unvote_many_keeps_invariants(eco: MockRuntime) -> None:
    targets = [(ALICE, OP1), (BOB, OP2), (CHARLIE, OP3), (DAVE, OP4)]
    for who, op in targets:
        register_miner(eco, who, op)
    for voter in (EVE, FERDIE):
        eco.dispatch(voter, "Staking", "bond", value=1_000 * CAI)
        for i, (target, _) in enumerate(targets):
            eco.dispatch(voter, "Voting", "vote", target=target, value=(i + 1) * 10 * CAI)
            check_economy(eco)
    for i, (target, _) in enumerate(targets):
        eco.dispatch(EVE, "Voting", "unvote", target=target, value=(i + 1) * 10 * CAI)
        check_economy(eco)
    assert _allocated(eco, EVE) == 0
    assert _allocated(eco, FERDIE) == 100 * CAI
    for i, (target, _) in enumerate(targets):
        assert reg_of(eco, target).votes == (i + 1) * 10 * CAI
