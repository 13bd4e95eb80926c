"""Rewards: each era's emission, backed by burned task fees, paid without any claim transaction.

Work is credited in CAI burned: an accepted task credits what its payer burned to its miner and
to its coordinator (pallets/tasks). Per era and role, the emission paid is the role's share of
`BurnRebate` times the credited burns, at most the role's pool (`EmissionPerEra` split by
`MinerShare`), so an owner that sends work to itself gets back less than it burned
(docs/economics.md). Within a role, a target earns in proportion to its credit. Of a target's
reward it keeps its commission, and the remainder is shared between its own stake and its
voters in proportion to stake. Payouts start when the next era begins and are made
automatically by `on_initialize`, at most `MaxTargetsPerBlock` targets (each with at most
MaxVotersPerTarget voters) per block, so per-block work stays bounded however many voters
there are. Suspended or deregistered targets
earn nothing; what they would have earned is not minted.

Root may also credit work with `credit_work` (tests, migrations).
"""

from __future__ import annotations

import dataclasses

from chain.codec import U128_MAX
from chain.frame.prelude import *
from pallets import weights
from pallets.balances import pallet as balances
from pallets.config import Ctx, RewardsConfig, RuntimeConfig
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.staking import pallet as staking
from pallets.system import pallet as system
from pallets.voting import pallet as voting

SPEC = PalletSpec("Rewards", 13, module="pallet_cuckoo_rewards")
Config = RewardsConfig

MAX_TARGETS_PER_BLOCK = 2
MAX_PENDING_ERAS = 64


SPEC.constant(
    "EmissionPerEra", BALANCE, lambda c: c.rewards.emission_per_era, "CAI minted per era for work."
)
SPEC.constant(
    "MinerShare", PERBILL, lambda c: c.rewards.miner_share, "Share of the emission for miners."
)
SPEC.constant("MaxTargetsPerBlock", U32, lambda c: MAX_TARGETS_PER_BLOCK, "Targets paid per block.")
SPEC.constant(
    "BurnRebate",
    PERBILL,
    lambda c: c.rewards.burn_rebate,
    "Emission per CAI burned by accepted tasks (below 100%: self-dealing never pays).",
)


@struct("pallet_cuckoo_rewards::EraTotal")
class EraTotal:
    miner_work: Balance = 0
    coordinator_work: Balance = 0


ERA_TOTAL = scale_of(EraTotal)


@struct("pallet_cuckoo_rewards::Payout")
class Payout:
    era: EraIndex
    role: registry.RoleField  # miners are paid first, then coordinators


PAYOUT = scale_of(Payout)

MinerWork: StorageDoubleMap[int, bytes, int] = StorageDoubleMap(
    SPEC,
    "MinerWork",
    U32,
    ACCOUNT_ID,
    BALANCE,
    hashers=("Twox64Concat", "Blake2_128Concat"),
    docs="Burned CAI backing each miner's (staker's) accepted work, per era.",
)
CoordinatorWork: StorageDoubleMap[int, bytes, int] = StorageDoubleMap(
    SPEC,
    "CoordinatorWork",
    U32,
    ACCOUNT_ID,
    BALANCE,
    hashers=("Twox64Concat", "Blake2_128Concat"),
    docs="Burned CAI backing each coordinator's (staker's) accepted work, per era.",
)
EraTotals: StorageMap[int, EraTotal] = StorageMap(
    SPEC,
    "EraTotals",
    U32,
    ERA_TOTAL,
    hasher="Twox64Concat",
    docs="Work credited in each era, by role.",
)
PendingEras: StorageValue[list[int]] = StorageValue(
    SPEC, "PendingEras", Vec(U32), default=[], docs="Ended eras whose rewards are not paid yet."
)
CurrentPayout: StorageValue[Payout] = StorageValue(
    SPEC, "CurrentPayout", PAYOUT, docs="The payout in progress."
)


@event(SPEC, 0)
class WorkCredited:
    """Work was credited to a miner or coordinator for an era."""

    who: T.AccountId
    role: registry.RoleField
    units: BalanceOf
    era: EraIndex


@event(SPEC, 1)
class Rewarded:
    """An account was paid its share of an era's rewards: as the target itself (`target` is
    `who`) or as a voter of `target`."""

    who: T.AccountId
    era: EraIndex
    amount: BalanceOf
    target: T.AccountId


@event(SPEC, 2)
class EraPaid:
    """All rewards of an era were paid; `minted` in total."""

    era: EraIndex
    minted: BalanceOf


@event(SPEC, 3)
class TargetRewarded:
    """A target's era reward and why: `work` CAI burned by its accepted tasks earned `reward`;
    it kept `commission`, and `to_voters` went to its voters (the rest to its own stake)."""

    who: T.AccountId
    role: registry.RoleField
    era: EraIndex
    work: BalanceOf
    reward: BalanceOf
    commission: BalanceOf
    to_voters: BalanceOf


@errors(SPEC)
class Error(PalletError):
    NOT_REGISTERED = 0
    ZERO_WORK = 1


Minted: StorageMap[int, int] = StorageMap(
    SPEC,
    "MintedInEra",
    U32,
    BALANCE,
    hasher="Twox64Concat",
    default=0,
    docs="Rewards minted so far for each era being paid.",
)


def _work(role: Role) -> StorageDoubleMap[int, bytes, int]:
    return MinerWork if role == Role.MINER else CoordinatorWork


def credit(ctx: Ctx, who: bytes, role: Role, units: int, era: int | None = None) -> None:
    """Credit `units` of work to a registration's staker for `era` (default: the current era)."""
    era = staking.CurrentEra.get(ctx.state) if era is None else era
    work = _work(role)
    work.put(ctx.state, era, who, min((work.get(ctx.state, era, who) or 0) + units, U128_MAX))
    totals = EraTotals.get(ctx.state, era) or EraTotal()
    if role == Role.MINER:
        totals = dataclasses.replace(totals, miner_work=min(totals.miner_work + units, U128_MAX))
    else:
        totals = dataclasses.replace(
            totals, coordinator_work=min(totals.coordinator_work + units, U128_MAX)
        )
    EraTotals.put(ctx.state, era, totals)
    ctx.emit(WorkCredited(who, role, units, era))


@call(SPEC, 0, weight=weights.rewards_credit_work())
def credit_work(
    ctx: Ctx,
    who: T.AccountId,
    role: registry.RoleField,
    units: T.CompactBalance,
) -> None:
    """Root: credit work to a registered miner or coordinator in the current era (the tasks
    pallet credits verified work itself). Errors: NotRegistered, ZeroWork."""
    ctx.ensure_root()
    ensure(units > 0, Error.ZERO_WORK)
    found = registry.get_registration(ctx.state, who)
    ensure(found is not None and found[0] == role, Error.NOT_REGISTERED)
    credit(ctx, who, role, units)


@dataclasses.dataclass(frozen=True, slots=True)
class TargetPayout:
    """Pure result of splitting one target's reward."""

    total: int
    to_target: int
    to_voters: list[tuple[bytes, int]]
    commission: int = 0


def compute_target_payout(
    reward: int, commission: int, own: int, votes: list[tuple[bytes, int]]
) -> TargetPayout:
    """Commission first, then the rest pro rata by stake (own stake and each vote); rounding
    dust goes to the target, so the parts add up to `reward` exactly."""
    keep = reward * commission // PERBILL_ONE
    rest = reward - keep
    stake = own + sum(v for _, v in votes)
    if stake == 0:
        return TargetPayout(reward, reward, [], keep)
    to_voters = [(who, rest * v // stake) for who, v in votes]
    to_target = reward - sum(a for _, a in to_voters)
    return TargetPayout(reward, to_target, to_voters, keep)


def role_emission(config: RewardsConfig, role: Role, total_work: int) -> int:
    """Pure: what a role earns in an era for `total_work` CAI burned by its accepted tasks: its
    share of `BurnRebate` times the burns, at most its pool."""
    miners = config.emission_per_era * config.miner_share // PERBILL_ONE
    pool = miners if role == Role.MINER else config.emission_per_era - miners
    share = config.miner_share if role == Role.MINER else PERBILL_ONE - config.miner_share
    backed = total_work * config.burn_rebate // PERBILL_ONE * share // PERBILL_ONE
    return min(pool, backed)


def _pay(ctx: Ctx, who: bytes, era: int, amount: int, target: bytes) -> int:
    if amount <= 0:
        return 0
    info = system.get_account(ctx.state, who)
    if info.data.free + amount < ctx.config.balances.existential_deposit:
        return 0
    balances.deposit_creating(ctx, who, amount)
    ctx.emit(Rewarded(who, era, amount, target))
    return amount


def _pay_target(ctx: Ctx, era: int, role: Role, who: bytes, units: int, total_units: int) -> int:
    found = registry.get_registration(ctx.state, who)
    suspended = found is not None and found[1].status == registry.Status.SUSPENDED
    if found is None or found[0] != role or suspended or total_units == 0:
        return 0
    reg = found[1]
    reward = role_emission(ctx.config.rewards, role, total_units) * units // total_units
    votes = sorted(voting.Voters.iter_prefix(ctx.state, who))
    plan = compute_target_payout(reward, reg.commission, reg.own_stake, votes)
    paid = _pay(ctx, who, era, plan.to_target, who)
    to_voters = 0
    for voter, amount in plan.to_voters:
        got = _pay(ctx, voter, era, amount, who)
        paid += got
        to_voters += got
    ctx.emit(TargetRewarded(who, role, era, units, reward, plan.commission, to_voters))
    return paid


def on_new_era(ctx: Ctx, era: int) -> None:
    """Queue the ended era for payout (wired to Staking)."""
    ended = era - 1
    if EraTotals.get(ctx.state, ended) is None:
        return
    pending = PendingEras.get(ctx.state)
    if len(pending) < MAX_PENDING_ERAS:
        PendingEras.put(ctx.state, [*pending, ended])


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    """Pay at most MAX_TARGETS_PER_BLOCK targets of the oldest pending era."""
    payout = CurrentPayout.get(ctx.state)
    if payout is None:
        pending = PendingEras.get(ctx.state)
        if not pending:
            return
        payout = Payout(pending[0], Role.MINER)
        PendingEras.put(ctx.state, pending[1:])
    era = payout.era
    totals = EraTotals.get(ctx.state, era) or EraTotal()
    budget = MAX_TARGETS_PER_BLOCK
    while budget > 0:
        work = _work(payout.role)
        row = next(iter(ctx.state.iterate(work.prefix_for(era))), None)
        if row is None:
            if payout.role == Role.MINER:
                payout = Payout(era, Role.COORDINATOR)
                continue
            _finish(ctx, era)
            return
        who = row[0][-32:]
        units = int.from_bytes(row[1], "little")
        total = totals.miner_work if payout.role == Role.MINER else totals.coordinator_work
        paid = _pay_target(ctx, era, payout.role, who, units, total)
        work.remove(ctx.state, era, who)  # paid targets leave the queue: no cursor needed
        Minted.put(ctx.state, era, Minted.get(ctx.state, era) + paid)
        budget -= 1
    CurrentPayout.put(ctx.state, payout)


def _finish(ctx: Ctx, era: int) -> None:
    minted = Minted.get(ctx.state, era)
    CurrentPayout.kill(ctx.state)
    Minted.remove(ctx.state, era)
    EraTotals.remove(ctx.state, era)
    ctx.emit(EraPaid(era, minted))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: each era's totals are the (saturated) sums of its work entries (an era being
    paid loses entries as they are paid); ended eras wait in order, once, for payout; nothing is
    left of an era once it is paid."""
    current = staking.CurrentEra.get(state)
    pending = PendingEras.get(state)
    payout = CurrentPayout.get(state)
    paying = payout.era if payout is not None else None
    if pending != sorted(set(pending)) or len(pending) > MAX_PENDING_ERAS:
        raise AssertionError(f"PendingEras {pending} are not ordered, unique and bounded")
    if any(e >= current for e in pending) or paying in pending:
        raise AssertionError("a pending era has not ended or is being paid")
    sums: dict[int, list[int]] = {}
    for i, work in enumerate((MinerWork, CoordinatorWork)):
        for era, _, units in work.iter(state):
            sums.setdefault(era, [0, 0])[i] += units
    for era, totals in EraTotals.iter(state):
        miners, coordinators = sums.pop(era, [0, 0])
        if era == paying:
            if miners > totals.miner_work or coordinators > totals.coordinator_work:
                raise AssertionError(f"era {era}: unpaid work exceeds its totals")
        elif (min(miners, U128_MAX), min(coordinators, U128_MAX)) != (
            totals.miner_work,
            totals.coordinator_work,
        ):
            raise AssertionError(f"era {era}: totals differ from the work credited")
        waits = era in (current, paying) or era in pending
        if not waits and len(pending) < MAX_PENDING_ERAS:
            raise AssertionError(f"era {era} has work but is neither current nor queued")
    if sums:
        raise AssertionError(f"work without era totals in eras {sorted(sums)}")
    for era, _ in Minted.iter(state):
        if era != paying:
            raise AssertionError(f"MintedInEra of era {era}, which is not being paid")
