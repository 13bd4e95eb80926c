"""Voting: stakers back miners and coordinators with bonded stake.

`vote(target, value)` allocates `value` of the caller's bonded stake that is neither allocated to
another vote nor needed for the caller's own registration, so each bonded token backs at most one
target. A target's weight is its own stake plus the votes on it. Voters share their targets'
rewards (after commission) and slashes, in proportion to what they voted.

Invariant: for every target, sum over voters of Votes(voter, target) == TotalVotes(target), and
for every voter, sum over targets of Votes(voter, *) == ledger.allocated.
"""

from __future__ import annotations

from chain.frame.prelude import *
from pallets import weights
from pallets.config import Ctx, RuntimeConfig
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


@event(SPEC, 0)
class Voted:
    """A voter allocated bonded stake to a target."""

    voter: T.AccountId
    target: T.AccountId
    amount: BalanceOf


@event(SPEC, 1)
class Unvoted:
    """A voter took stake back from a target."""

    voter: T.AccountId
    target: T.AccountId
    amount: BalanceOf


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    NOT_BONDED = 0, "The caller has no staking ledger: bond first."
    TARGET_NOT_REGISTERED = 1, "The target is not a registered miner or coordinator."
    TARGET_INACTIVE = 2, "The target is registered but not active."
    INSUFFICIENT_FREE_STAKE = (
        3,
        "Not enough bonded stake free of other votes and of the caller's own registration.",
    )
    NOT_ENOUGH_VOTES = 4, "The caller voted less than this for the target."
    TOO_MANY_TARGETS = 5, "The caller votes for MaxTargetsPerVoter targets already."
    TOO_MANY_VOTERS = 6, "The target has MaxVotersPerTarget voters already."
    ZERO_AMOUNT = 7, "The amount must be positive."
    CANNOT_VOTE_SELF = 8, "A registration's own stake already counts for it."


def standing_votes(state: ReadState, target: bytes) -> int:
    """The stake voted for `target` (wired to Registry's `standing_votes`)."""
    total: int = TotalVotes.get(state, AccountId(target))
    return total


def on_dust_bond(ctx: Ctx, voter: bytes) -> None:
    """Remove every vote of `voter`, whose bond is being slashed away as dust (wired to
    Staking); the ledger's allocation is cleared by the caller."""
    for target, _ in sorted(Votes.iter_prefix(ctx.state, voter)):
        set_vote(ctx, voter, target, 0)


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


@call(SPEC, 0, weight=weights.voting_vote())
def vote(ctx: Ctx, target: T.AccountId, value: CompactBalanceOf) -> None:
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
    ensure(found[1].status == registry.Status.ACTIVE, Error.TARGET_INACTIVE)
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


@call(SPEC, 1, weight=weights.voting_unvote())
def unvote(ctx: Ctx, target: T.AccountId, value: CompactBalanceOf) -> None:
    """Take `value` of the caller's votes back from `target` (also when the target is inactive or
    deregistered). Errors: ZeroAmount, NotEnoughVotes. Emits: Unvoted."""
    voter = ctx.ensure_signed()
    ensure(value > 0, Error.ZERO_AMOUNT)
    old = get_vote(ctx.state, voter, target)
    ensure(value <= old, Error.NOT_ENOUGH_VOTES)
    set_vote(ctx, voter, target, old - value)
    staking.release(ctx, voter, value)
    ctx.emit(Unvoted(voter, target, value))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: Votes and Voters mirror each other; TotalVotes, VoterCount and TargetCount add
    up; each voter's ledger allocates exactly its votes; each registration shows its votes."""
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
    voter_counts: dict[bytes, int] = {}
    target_counts: dict[bytes, int] = {}
    for voter, target, _ in Votes.iter(state):
        voter_counts[target] = voter_counts.get(target, 0) + 1
        target_counts[voter] = target_counts.get(voter, 0) + 1
    if dict(VoterCount.iter(state)) != voter_counts:
        raise AssertionError("VoterCount does not count each target's voters")
    if dict(TargetCount.iter(state)) != target_counts:
        raise AssertionError("TargetCount does not count each voter's targets")
    if any(n > MAX_VOTERS_PER_TARGET for n in voter_counts.values()) or any(
        n > MAX_TARGETS_PER_VOTER for n in target_counts.values()
    ):
        raise AssertionError("a vote bound is exceeded")
