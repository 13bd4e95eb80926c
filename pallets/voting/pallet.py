"""Voting: stakers back miners and coordinators with bonded stake.

`vote(target, value)` allocates `value` of the caller's bonded stake that is neither allocated to
another vote nor needed for the caller's own registration, so each bonded token backs at most one
target. A target's weight is its own stake plus the votes on it. Voters share their targets'
rewards (after commission) and slashes, in proportion to what they voted.

Invariant: for every target, sum over voters of Votes(voter, target) == TotalVotes(target), and
for every voter, sum over targets of Votes(voter, *) == ledger.allocated.
"""

from __future__ import annotations

import dataclasses
import enum

from chain.frame.common import ACCOUNT_ID, BALANCE, COMPACT_BALANCE, AccountId, Weight
from chain.frame.pallet import Ctx, PalletSpec, ReadState, StorageDoubleMap, StorageMap, ensure
from chain.frame.types import U32
from pallets.registry import pallet as registry
from pallets.staking import pallet as staking

SPEC = PalletSpec("Voting", 12, module="pallet_cuckoo_voting")

MAX_TARGETS_PER_VOTER = 16
MAX_VOTERS_PER_TARGET = 256  # bounds the work of paying or slashing one target's voters

SPEC.constant(
    "MaxTargetsPerVoter", U32, lambda c: MAX_TARGETS_PER_VOTER, "Targets one account may vote for."
)
SPEC.constant(
    "MaxVotersPerTarget", U32, lambda c: MAX_VOTERS_PER_TARGET, "Voters one target may have."
)

Votes: StorageDoubleMap[bytes, bytes, int] = StorageDoubleMap(
    SPEC, "Votes", ACCOUNT_ID, ACCOUNT_ID, BALANCE, docs="Stake voted by (voter, target)."
)
Voters: StorageDoubleMap[bytes, bytes, int] = StorageDoubleMap(
    SPEC,
    "Voters",
    ACCOUNT_ID,
    ACCOUNT_ID,
    BALANCE,
    docs="The same votes indexed by (target, voter).",
)
TotalVotes: StorageMap[bytes, int] = StorageMap(
    SPEC, "TotalVotes", ACCOUNT_ID, BALANCE, default=0, docs="Total stake voted for each target."
)
VoterCount: StorageMap[bytes, int] = StorageMap(
    SPEC, "VoterCount", ACCOUNT_ID, U32, default=0, docs="Number of voters of each target."
)
TargetCount: StorageMap[bytes, int] = StorageMap(
    SPEC, "TargetCount", ACCOUNT_ID, U32, default=0, docs="Number of targets each voter votes for."
)


@SPEC.event(
    0,
    [
        ("voter", ACCOUNT_ID, "T::AccountId"),
        ("target", ACCOUNT_ID, "T::AccountId"),
        ("amount", BALANCE, "BalanceOf<T>"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class Voted:
    """A voter allocated bonded stake to a target."""

    voter: bytes
    target: bytes
    amount: int


@SPEC.event(
    1,
    [
        ("voter", ACCOUNT_ID, "T::AccountId"),
        ("target", ACCOUNT_ID, "T::AccountId"),
        ("amount", BALANCE, "BalanceOf<T>"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class Unvoted:
    """A voter took stake back from a target."""

    voter: bytes
    target: bytes
    amount: int


@SPEC.errors
class Error(enum.IntEnum):  # consensus-visible: append only
    NOT_BONDED = 0
    TARGET_NOT_REGISTERED = 1
    TARGET_INACTIVE = 2
    INSUFFICIENT_FREE_STAKE = 3
    NOT_ENOUGH_VOTES = 4
    TOO_MANY_TARGETS = 5
    TOO_MANY_VOTERS = 6
    ZERO_AMOUNT = 7
    CANNOT_VOTE_SELF = 8


SPEC.error_docs = {
    "NOT_BONDED": "The caller has no staking ledger: bond first.",
    "TARGET_NOT_REGISTERED": "The target is not a registered miner or coordinator.",
    "TARGET_INACTIVE": "The target is registered but not active.",
    "INSUFFICIENT_FREE_STAKE": "Not enough bonded stake free of other votes and of the caller's "
    "own registration.",
    "NOT_ENOUGH_VOTES": "The caller voted less than this for the target.",
    "TOO_MANY_TARGETS": "The caller votes for MaxTargetsPerVoter targets already.",
    "TOO_MANY_VOTERS": "The target has MaxVotersPerTarget voters already.",
    "ZERO_AMOUNT": "The amount must be positive.",
    "CANNOT_VOTE_SELF": "A registration's own stake already counts for it.",
}


def total_votes(state: ReadState, target: bytes) -> int:
    total: int = TotalVotes.get(state, AccountId(target))
    return total


registry.VOTES_ON.append(total_votes)


def drop_votes(ctx: Ctx, voter: bytes) -> None:
    """Remove every vote of `voter` (its bond is being slashed away); the ledger's allocation is
    cleared by the caller."""
    for target, _ in sorted(Votes.iter_prefix(ctx.state, voter)):
        set_vote(ctx, voter, target, 0)


staking.DUST_LISTENERS.append(drop_votes)


def get_vote(state: ReadState, voter: bytes, target: bytes) -> int:
    amount: int | None = Votes.get(state, voter, target)
    return amount or 0


def set_vote(ctx: Ctx, voter: bytes, target: bytes, amount: int) -> None:
    """Write one vote amount and its mirrors (no checks, no ledger change)."""
    old = get_vote(ctx.state, voter, target)
    if amount == old:
        return
    if amount == 0:
        Votes.remove(ctx.state, voter, target)
        Voters.remove(ctx.state, target, voter)
        VoterCount.put(
            ctx.state, AccountId(target), VoterCount.get(ctx.state, AccountId(target)) - 1
        )
        TargetCount.put(
            ctx.state, AccountId(voter), TargetCount.get(ctx.state, AccountId(voter)) - 1
        )
    else:
        if old == 0:
            VoterCount.put(
                ctx.state, AccountId(target), VoterCount.get(ctx.state, AccountId(target)) + 1
            )
            TargetCount.put(
                ctx.state, AccountId(voter), TargetCount.get(ctx.state, AccountId(voter)) + 1
            )
        Votes.put(ctx.state, voter, target, amount)
        Voters.put(ctx.state, target, voter, amount)
    total = TotalVotes.get(ctx.state, AccountId(target)) + amount - old
    if total:
        TotalVotes.put(ctx.state, AccountId(target), total)
    else:
        TotalVotes.remove(ctx.state, AccountId(target))
    for counter, key in ((VoterCount, target), (TargetCount, voter)):
        if counter.get(ctx.state, AccountId(key)) == 0:
            counter.remove(ctx.state, AccountId(key))
    registry.add_votes(ctx, target, amount - old)


VOTE_WEIGHT = Weight(80_000_000, 6000)


@SPEC.call(
    0,
    weight=VOTE_WEIGHT,
    args=[("target", ACCOUNT_ID, "T::AccountId"), ("value", COMPACT_BALANCE, "BalanceOf<T>")],
)
def vote(ctx: Ctx, target: bytes, value: int) -> None:
    """Allocate `value` of the caller's bonded stake to `target` (a registered, active miner or
    coordinator). Errors: NotBonded, ZeroAmount, CannotVoteSelf, TargetNotRegistered,
    TargetInactive, InsufficientFreeStake, TooManyTargets, TooManyVoters. Emits: Voted."""
    voter = ctx.ensure_signed()
    ledger = staking.get_ledger(ctx.state, voter)
    ensure(ledger is not None, Error.NOT_BONDED)
    assert ledger is not None
    ensure(value > 0, Error.ZERO_AMOUNT)
    ensure(voter != target, Error.CANNOT_VOTE_SELF)
    found = registry.get_registration(ctx.state, target)
    ensure(found is not None, Error.TARGET_NOT_REGISTERED)
    assert found is not None
    ensure(found[1].status == "Active", Error.TARGET_INACTIVE)
    available = ledger.free_to_allocate - registry.required_own_stake(ctx, voter)
    ensure(value <= available, Error.INSUFFICIENT_FREE_STAKE)
    old = get_vote(ctx.state, voter, target)
    if old == 0:
        ensure(
            TargetCount.get(ctx.state, AccountId(voter)) < MAX_TARGETS_PER_VOTER,
            Error.TOO_MANY_TARGETS,
        )
        ensure(
            VoterCount.get(ctx.state, AccountId(target)) < MAX_VOTERS_PER_TARGET,
            Error.TOO_MANY_VOTERS,
        )
    staking.allocate(ctx, voter, value)
    set_vote(ctx, voter, target, old + value)
    ctx.emit(Voted(voter, target, value))


@SPEC.call(
    1,
    weight=VOTE_WEIGHT,
    args=[("target", ACCOUNT_ID, "T::AccountId"), ("value", COMPACT_BALANCE, "BalanceOf<T>")],
)
def unvote(ctx: Ctx, target: bytes, value: int) -> None:
    """Take `value` of the caller's votes back from `target` (also when the target is inactive or
    deregistered). Errors: ZeroAmount, NotEnoughVotes. Emits: Unvoted."""
    voter = ctx.ensure_signed()
    ensure(value > 0, Error.ZERO_AMOUNT)
    old = get_vote(ctx.state, voter, target)
    ensure(value <= old, Error.NOT_ENOUGH_VOTES)
    set_vote(ctx, voter, target, old - value)
    staking.release(ctx, voter, value)
    ctx.emit(Unvoted(voter, target, value))


def check_invariants(state: ReadState) -> None:
    totals: dict[bytes, int] = {}
    allocated: dict[bytes, int] = {}
    for voter, target, amount in Votes.iter(state):
        if Voters.get(state, target, voter) != amount:
            raise AssertionError("Votes and Voters disagree")
        totals[target] = totals.get(target, 0) + amount
        allocated[voter] = allocated.get(voter, 0) + amount
    for target, total in TotalVotes.iter(state):
        if totals.get(target, 0) != total:
            raise AssertionError(
                f"TotalVotes of {target.hex()} is {total}, votes add up to {totals.get(target, 0)}"
            )
    for target in totals:
        if TotalVotes.get(state, AccountId(target)) != totals[target]:
            raise AssertionError(f"TotalVotes of {target.hex()} is missing")
    for who, ledger in staking.Ledger.iter(state):
        if ledger.allocated != allocated.get(who, 0):
            raise AssertionError(
                f"ledger {who.hex()} allocates {ledger.allocated}, "
                f"votes add up to {allocated.get(who, 0)}"
            )
    for voter in allocated:
        if staking.get_ledger(state, voter) is None:
            raise AssertionError(f"{voter.hex()} votes without a ledger")
    for who, reg in [*registry.Miners.iter(state), *registry.Coordinators.iter(state)]:
        if reg.votes != totals.get(who, 0):
            raise AssertionError(
                f"registration {who.hex()} shows {reg.votes} votes, not {totals.get(who, 0)}"
            )
