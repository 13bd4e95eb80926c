"""Staking: bonded stake per account, eras, and unbonding with a bonding duration.

A staker bonds free balance into a ledger; bonded funds stay in the account under a balance lock
with id `staking ` (`Balances.Locks`) of `ledger.total`, which freezes them
(`AccountData.frozen == ledger.total`), so wallets show them as locked and not transferable.
`unbond` moves stake into an unlocking chunk that can be withdrawn `BondingDuration` eras later;
`rebond` takes it back. Part of the active stake may be *allocated* (voted for a target, see
Voting); allocated stake cannot be unbonded.

Eras advance every `EraLength` blocks (era `e` starts in block `e * EraLength`). `CurrentEra` and
`ActiveEra` are the same era here, as no era is planned ahead; the active era's start is the
time of its first block. `ErasStartSessionIndex` holds the session in progress when the active
era started (only the active era's entry is kept: nothing here reads past eras'). Other pallets
react to a new era, to a changed ledger and to a bond slashed away as dust through the runtime's
wiring (`ctx.config.wiring`: `on_new_era`, `on_stake_changed`, `on_dust_bond`), without this
pallet importing them.

The FRAME items that wallets read for session and era figures (`ActiveEra`, `CurrentEra`,
`ValidatorCount`, `ErasStartSessionIndex`, `UnappliedSlashes`, the `SessionsPerEra` constant)
have FRAME's types. `ValidatorCount` is the size of the current validator set, which Session
writes. `UnappliedSlashes` stays empty: this chain's deferred slashes wait in
`Slashing.UnappliedSlashes`, whose amounts are computed from the stake when their era starts, so
FRAME's (own, others, payout) amounts do not exist before then.

Invariants: total == active + sum(unlocking); allocated <= active; the `staking ` lock == total;
ActiveEra is CurrentEra.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from chain.frame.prelude import *
from pallets import weights
from pallets.balances import pallet as balances
from pallets.config import Ctx, RuntimeConfig, StakingConfig
from pallets.system import pallet as system
from pallets.timestamp import pallet as timestamp

SPEC = PalletSpec("Staking", 10, module="pallet_cuckoo_staking")
Config = StakingConfig

MAX_UNLOCKING_CHUNKS = 32
STAKING_LOCK_ID = b"staking "  # FRAME's staking lock id: wallets name the lock by it

SPEC.constant("EraLength", U32, lambda c: c.staking.era_length, "Blocks per era.")
SPEC.constant(
    "BondingDuration",
    U32,
    lambda c: c.staking.bonding_duration,
    "Eras an unbonded chunk waits before it can be withdrawn.",
)
SPEC.constant(
    "MaxUnlockingChunks", U32, lambda c: MAX_UNLOCKING_CHUNKS, "Unlocking chunks per ledger."
)
SPEC.constant(
    "SessionsPerEra",
    U32,
    lambda c: max(1, c.staking.era_length // c.session.length),
    "Whole sessions per era: EraLength / SessionLength (both are exact on the bundled chain "
    "specs, whose eras start at session boundaries), at least 1.",
)


@struct("pallet_cuckoo_staking::UnlockChunk")
class UnlockChunk:
    value: Balance
    era: EraIndex  # the era from which it can be withdrawn


UNLOCK_CHUNK = scale_of(UnlockChunk)


@struct("pallet_cuckoo_staking::StakingLedger")
class StakingLedger:
    stash: AccountIdField
    total: Balance
    active: Balance
    unlocking: Annotated[
        list[UnlockChunk], Vec(UNLOCK_CHUNK, MAX_UNLOCKING_CHUNKS), "BoundedVec<UnlockChunk>"
    ]
    allocated: Balance = 0  # part of `active` voted for targets

    @property
    def free_to_allocate(self) -> int:
        return self.active - self.allocated


STAKING_LEDGER = scale_of(StakingLedger)

Ledger: StorageMap[bytes, StakingLedger] = StorageMap(
    SPEC, "Ledger", ACCOUNT_ID, STAKING_LEDGER, docs="The staking ledger of each bonded account."
)
CurrentEra: StorageValue[int] = StorageValue(
    SPEC,
    "CurrentEra",
    U32,
    default=0,
    optional_query=True,  # FRAME's Option<EraIndex>; written from genesis on
    docs="The current era index (the same as ActiveEra: eras are not planned ahead).",
)


@struct("pallet_staking::ActiveEraInfo")
class ActiveEraInfo:
    index: EraIndex
    start: Annotated[int | None, Option(U64), "Option<u64>"]  # ms, set in its first block


ACTIVE_ERA_INFO = scale_of(ActiveEraInfo)

ActiveEra: StorageValue[ActiveEraInfo] = StorageValue(
    SPEC,
    "ActiveEra",
    ACTIVE_ERA_INFO,
    docs="The active era and its start (Timestamp.Now of its first block, in milliseconds).",
)
ErasStartSessionIndex: StorageMap[int, int] = StorageMap(
    SPEC,
    "ErasStartSessionIndex",
    U32,
    U32,
    hasher="Twox64Concat",
    docs="The session in progress when the active era started (past eras are not kept).",
)
ValidatorCount: StorageValue[int] = StorageValue(
    SPEC,
    "ValidatorCount",
    U32,
    default=0,
    docs="The number of validators in the current set (written by Session).",
)


@struct("pallet_staking::UnappliedSlash", params=[("AccountId", ACCOUNT_ID), ("Balance", BALANCE)])
class UnappliedSlash:
    validator: AccountIdField
    own: Balance
    others: Annotated[
        list[tuple[bytes, int]], Vec(Tuple(ACCOUNT_ID, BALANCE)), "Vec<(AccountId, Balance)>"
    ]
    reporters: Annotated[list[bytes], Vec(ACCOUNT_ID), "Vec<AccountId>"]
    payout: Balance


UnappliedSlashes: StorageMap[int, list[UnappliedSlash]] = StorageMap(
    SPEC,
    "UnappliedSlashes",
    U32,
    Vec(scale_of(UnappliedSlash)),
    hasher="Twox64Concat",
    default=[],
    docs="Always empty: deferred slashes wait in Slashing.UnappliedSlashes, and their amounts are "
    "computed from the stake when their era starts (FRAME's own/others/payout do not exist "
    "before then).",
)


@event(SPEC, 0)
class Bonded:
    """An account bonded this amount (first bond or bond_extra)."""

    stash: T.AccountId
    amount: BalanceOf


@event(SPEC, 1)
class Unbonded:
    """An account unbonded this amount; it can be withdrawn from `era`."""

    stash: T.AccountId
    amount: BalanceOf
    era: EraIndex


@event(SPEC, 2)
class Withdrawn:
    """An account withdrew unbonded funds, which are transferable again."""

    stash: T.AccountId
    amount: BalanceOf


@event(SPEC, 3)
class Rebonded:
    """An account moved unlocking funds back to active stake."""

    stash: T.AccountId
    amount: BalanceOf


@event(SPEC, 4)
class EraStarted:
    """A new era started."""

    era: EraIndex


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    ALREADY_BONDED = 0, "The account already has a ledger: use bond_extra."
    NOT_BONDED = 1, "The account has no staking ledger."
    INSUFFICIENT_BOND = 2, "A ledger must hold at least the existential deposit."
    INSUFFICIENT_FUNDS = 3, "Not enough transferable balance to bond this amount."
    STAKE_ALLOCATED = 4, "This stake is allocated to votes: unvote first."
    NO_MORE_CHUNKS = 5, "Too many unlocking chunks: withdraw or rebond first."
    NO_UNLOCK_CHUNK = 6, "Nothing is unlocking."
    ZERO_AMOUNT = 7, "The amount must be positive."


def get_ledger(state: ReadState, who: bytes) -> StakingLedger | None:
    ledger: StakingLedger | None = Ledger.get(state, AccountId(who))
    return ledger


def free_to_allocate(state: ReadState, who: bytes) -> int:
    ledger = get_ledger(state, who)
    return ledger.free_to_allocate if ledger is not None else 0


def put_ledger(ctx: Ctx, ledger: StakingLedger) -> None:
    """Write a ledger (or remove an empty one), keep the freeze equal to its total, notify."""
    who = ledger.stash
    if ledger.total == 0 and not ledger.unlocking:
        Ledger.remove(ctx.state, AccountId(who))
    else:
        Ledger.put(ctx.state, AccountId(who), ledger)
    balances.set_lock(ctx, who, STAKING_LOCK_ID, ledger.total)
    for listener in ctx.config.wiring.on_stake_changed:
        listener.on_stake_changed(ctx, who)


def set_validator_count(ctx: Ctx, count: int) -> None:
    """The size of the validator set now in force (called by Session when it changes)."""
    ValidatorCount.put(ctx.state, count)


def allocate(ctx: Ctx, who: bytes, amount: int) -> None:
    """Mark `amount` of active stake as voted (callers check free_to_allocate first)."""
    ledger = get_ledger(ctx.state, who)
    assert ledger is not None
    put_ledger(ctx, dataclasses.replace(ledger, allocated=ledger.allocated + amount))


def release(ctx: Ctx, who: bytes, amount: int) -> None:
    ledger = get_ledger(ctx.state, who)
    if ledger is None:
        return
    put_ledger(ctx, dataclasses.replace(ledger, allocated=max(ledger.allocated - amount, 0)))


@dataclasses.dataclass(frozen=True, slots=True)
class SlashPlan:
    """How a slash of `amount` is taken from one ledger: active first, then newest chunks."""

    from_active: int
    chunks: list[UnlockChunk]  # the ledger's chunks after the slash
    total: int  # what is taken


def compute_ledger_slash(ledger: StakingLedger, amount: int, allocated_share: int = 0) -> SlashPlan:
    """Active stake first (never the part still backing votes, except `allocated_share`), then
    unlocking chunks, newest first."""
    from_active = min(amount, ledger.active - ledger.allocated + allocated_share)
    rest = amount - from_active
    chunks = []
    for chunk in reversed(ledger.unlocking):
        take = min(rest, chunk.value)
        rest -= take
        if chunk.value - take > 0:
            chunks.append(UnlockChunk(chunk.value - take, chunk.era))
    chunks.reverse()
    return SlashPlan(from_active, chunks, amount - rest)


def apply_ledger_slash(ctx: Ctx, who: bytes, amount: int, *, allocated_share: int = 0) -> int:
    """Take up to `amount` of `who`'s bonded stake (active, then unlocking chunks) out of the
    account: balance and issuance drop. `allocated_share` of it comes out of voted stake.
    Returns what was taken."""
    ledger = get_ledger(ctx.state, who)
    if ledger is None or amount <= 0:
        return 0
    plan = compute_ledger_slash(ledger, amount, allocated_share)
    new = dataclasses.replace(
        ledger,
        total=ledger.total - plan.total,
        active=ledger.active - plan.from_active,
        unlocking=plan.chunks,
        allocated=ledger.allocated - allocated_share,
    )
    ed = ctx.config.balances.existential_deposit
    if 0 < new.total < ed:
        # A bond under the existential deposit would keep a dust account alive through its
        # freeze: slash the dust too, releasing any votes it still backs.
        for listener in ctx.config.wiring.on_dust_bond:
            listener.on_dust_bond(ctx, who)
        ledger = get_ledger(ctx.state, who) or ledger
        plan = compute_ledger_slash(ledger, ledger.total, ledger.allocated)
        new = dataclasses.replace(ledger, total=0, active=0, unlocking=[], allocated=0)
    # unfreeze what is taken before the balance leaves the account
    put_ledger(ctx, new)
    balances.slash(ctx, who, plan.total)
    return plan.total


# ---- calls ---------------------------------------------------------------------------------------


@call(SPEC, 0, weight=weights.staking_bond())
def bond(ctx: Ctx, value: CompactBalanceOf) -> None:
    """Bond `value` of the caller's free balance. Errors: AlreadyBonded, InsufficientBond,
    InsufficientFunds. Emits: Bonded."""
    who = ctx.ensure_signed()
    ensure(get_ledger(ctx.state, who) is None, Error.ALREADY_BONDED)
    ensure(value >= ctx.config.balances.existential_deposit, Error.INSUFFICIENT_BOND)
    _ensure_bondable(ctx, who, value)
    put_ledger(ctx, StakingLedger(who, value, value, []))
    ctx.emit(Bonded(who, value))


def _ensure_bondable(ctx: Ctx, who: bytes, value: int) -> None:
    data = system.get_account(ctx.state, who).data
    ed = ctx.config.balances.existential_deposit
    ensure(data.free - data.frozen >= value + ed, Error.INSUFFICIENT_FUNDS)


@call(SPEC, 1, weight=weights.staking_bond_extra())
def bond_extra(ctx: Ctx, max_additional: CompactBalanceOf) -> None:
    """Add more free balance to the caller's active stake. Errors: NotBonded, ZeroAmount,
    InsufficientFunds."""
    who = ctx.ensure_signed()
    ledger = get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    assert ledger is not None
    ensure(max_additional > 0, Error.ZERO_AMOUNT)
    _ensure_bondable(ctx, who, max_additional)
    put_ledger(
        ctx,
        dataclasses.replace(
            ledger, total=ledger.total + max_additional, active=ledger.active + max_additional
        ),
    )
    ctx.emit(Bonded(who, max_additional))


@call(SPEC, 2, weight=weights.staking_unbond())
def unbond(ctx: Ctx, value: CompactBalanceOf) -> None:
    """Schedule `value` of unallocated active stake for withdrawal after BondingDuration eras.
    A registration whose own stake falls under its minimum becomes inactive at once.
    Errors: NotBonded, ZeroAmount, StakeAllocated, NoMoreChunks. Emits: Unbonded."""
    who = ctx.ensure_signed()
    ledger = get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    assert ledger is not None
    ensure(value > 0, Error.ZERO_AMOUNT)
    ensure(value <= ledger.free_to_allocate, Error.STAKE_ALLOCATED)
    era = CurrentEra.get(ctx.state) + ctx.config.staking.bonding_duration
    chunks = list(ledger.unlocking)
    if chunks and chunks[-1].era == era:
        chunks[-1] = UnlockChunk(chunks[-1].value + value, era)
    else:
        ensure(len(chunks) < MAX_UNLOCKING_CHUNKS, Error.NO_MORE_CHUNKS)
        chunks.append(UnlockChunk(value, era))
    put_ledger(ctx, dataclasses.replace(ledger, active=ledger.active - value, unlocking=chunks))
    ctx.emit(Unbonded(who, value, era))


@call(SPEC, 3, weight=weights.staking_rebond())
def rebond(ctx: Ctx, value: CompactBalanceOf) -> None:
    """Move up to `value` from unlocking chunks (newest first) back to active stake.
    Errors: NotBonded, NoUnlockChunk, ZeroAmount. Emits: Rebonded."""
    who = ctx.ensure_signed()
    ledger = get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    assert ledger is not None
    ensure(value > 0, Error.ZERO_AMOUNT)
    ensure(bool(ledger.unlocking), Error.NO_UNLOCK_CHUNK)
    chunks = list(ledger.unlocking)
    moved = 0
    while chunks and moved < value:
        last = chunks.pop()
        take = min(last.value, value - moved)
        moved += take
        if last.value > take:
            chunks.append(UnlockChunk(last.value - take, last.era))
    put_ledger(ctx, dataclasses.replace(ledger, active=ledger.active + moved, unlocking=chunks))
    ctx.emit(Rebonded(who, moved))


@call(SPEC, 4, weight=weights.staking_withdraw_unbonded())
def withdraw_unbonded(ctx: Ctx) -> None:
    """Unfreeze every unlocking chunk whose era has come. Errors: NotBonded. Emits: Withdrawn."""
    who = ctx.ensure_signed()
    ledger = get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    assert ledger is not None
    era = CurrentEra.get(ctx.state)
    keep = [c for c in ledger.unlocking if c.era > era]
    amount = sum(c.value for c in ledger.unlocking) - sum(c.value for c in keep)
    if amount == 0:
        return
    put_ledger(ctx, dataclasses.replace(ledger, total=ledger.total - amount, unlocking=keep))
    ctx.emit(Withdrawn(who, amount))


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    length = ctx.config.staking.era_length
    if ctx.block_number > 0 and ctx.block_number % length == 0:
        era = CurrentEra.get(ctx.state) + 1
        _start_era(ctx, era)
        ctx.emit(EraStarted(era))
        for listener in ctx.config.wiring.on_new_era:
            listener.on_new_era(ctx, era)


def _start_era(ctx: Ctx, era: int) -> None:
    """Era `era` starts in this block: current and active, its start time set at finalization,
    the session in progress recorded (sessions start at multiples of SessionLength)."""
    CurrentEra.put(ctx.state, era)
    ActiveEra.put(ctx.state, ActiveEraInfo(era, None))
    if era > 0:
        ErasStartSessionIndex.remove(ctx.state, era - 1)
    ErasStartSessionIndex.put(ctx.state, era, ctx.block_number // ctx.config.session.length)


@hook(SPEC, "on_finalize")
def on_finalize(ctx: Ctx) -> None:
    """The active era's start is the time of its first block (FRAME sets it the same way)."""
    active = ActiveEra.get(ctx.state)
    if active is not None and active.start is None:
        now = timestamp.Now.get(ctx.state)
        if now > 0:
            ActiveEra.put(ctx.state, ActiveEraInfo(active.index, now))


def build_genesis(ctx: Ctx, stakers: list[tuple[bytes, int]]) -> None:
    """Era 0 starts at genesis (its start time is block 1's); bond `amount` of each staker's
    (already endowed) free balance: ledger and lock."""
    _start_era(ctx, 0)
    ed = ctx.config.balances.existential_deposit
    seen: set[bytes] = set()
    for who, amount in stakers:
        if who in seen:
            raise ValueError(f"duplicate staker {who.hex()} in genesis")
        seen.add(who)
        if amount < ed:
            raise ValueError(f"genesis bond of {who.hex()} is below the existential deposit")
        data = system.get_account(ctx.state, who).data
        if data.free - data.frozen < amount + ed:
            raise ValueError(f"{who.hex()} cannot bond {amount} at genesis: not enough balance")
        put_ledger(ctx, StakingLedger(who, amount, amount, []))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: total == active + unlocking, in positive chunks of increasing eras;
    allocated within active; the staking lock (and so the freeze) equals the bond and the
    account holds it; ActiveEra is CurrentEra, whose start session is the one recorded;
    UnappliedSlashes is empty."""
    era = CurrentEra.get(state)
    active = ActiveEra.get(state)
    if active is not None:
        if active.index != era:
            raise AssertionError(f"ActiveEra {active.index} != CurrentEra {era}")
        if not ErasStartSessionIndex.contains(state, era):
            raise AssertionError(f"era {era} has no ErasStartSessionIndex")
    recorded = [e for e, _ in ErasStartSessionIndex.iter(state)]
    if recorded not in ([], [era]):
        raise AssertionError(f"ErasStartSessionIndex holds eras {recorded}, not {era} alone")
    if next(UnappliedSlashes.iter(state), None) is not None:
        raise AssertionError("Staking.UnappliedSlashes is not empty")
    bonded = {who for who, _ in Ledger.iter(state)}
    for who, locks in balances.Locks.iter(state):
        if who not in bonded and any(lock.id == STAKING_LOCK_ID for lock in locks):
            raise AssertionError(f"account {who.hex()} has a staking lock but no ledger")
    for who, ledger in Ledger.iter(state):
        eras = [c.era for c in ledger.unlocking]
        if eras != sorted(set(eras)) or any(c.value <= 0 for c in ledger.unlocking):
            raise AssertionError(f"ledger {who.hex()}: unlocking chunks {ledger.unlocking}")
        unlocking = sum(c.value for c in ledger.unlocking)
        if ledger.total != ledger.active + unlocking:
            raise AssertionError(f"ledger {who.hex()}: total {ledger.total} != active + unlocking")
        if not 0 <= ledger.allocated <= ledger.active:
            raise AssertionError(
                f"ledger {who.hex()}: allocated {ledger.allocated} outside [0, active]"
            )
        data = system.get_account(state, who).data
        lock = [
            x.amount for x in balances.Locks.get(state, AccountId(who)) if x.id == STAKING_LOCK_ID
        ]
        if lock != [ledger.total] or data.frozen != ledger.total:
            raise AssertionError(
                f"account {who.hex()}: staking lock {lock}, frozen {data.frozen}, "
                f"bonded {ledger.total}"
            )
        if data.free < ledger.total:
            raise AssertionError(f"account {who.hex()}: free {data.free} < bonded {ledger.total}")
