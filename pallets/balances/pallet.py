"""Balances: the native token (CAI), stored in `System.Account.data`.

Invariant: TotalIssuance == sum over accounts of (free + reserved).
Free balance below `frozen` cannot leave the account. `frozen` is the largest of the account's
locks (`Locks`, FRAME's `BalanceLock`s; staking keeps one, id `staking `, on the bonded amount),
as in FRAME, where overlapping locks do not add up.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, TypeAlias

from chain.codec import U128_MAX
from chain.frame.prelude import *
from pallets import weights
from pallets.config import BalancesConfig, Ctx, RuntimeConfig
from pallets.system import pallet as system

SPEC = PalletSpec("Balances", 2)
Config = BalancesConfig


SPEC.constant(
    "ExistentialDeposit",
    BALANCE,
    lambda c: c.balances.existential_deposit,
    "The minimum amount required to keep an account open.",
)
SPEC.constant(
    "MaxLocks", U32, lambda c: c.balances.max_locks, "The maximum number of locks per account."
)
SPEC.constant(
    "MaxReserves",
    U32,
    lambda c: c.balances.max_reserves,
    "The maximum number of named reserves per account.",
)

TotalIssuance: StorageValue[int] = StorageValue(
    SPEC, "TotalIssuance", BALANCE, default=0, docs="The total units issued in the system."
)
InactiveIssuance: StorageValue[int] = StorageValue(
    SPEC,
    "InactiveIssuance",
    BALANCE,
    default=0,
    docs="The total units of outstanding deactivated balance.",
)

# FRAME's locks, which wallets read (Polkadot.js `derive.balances.all`: `lockedBalance` is the
# largest lock); `AccountData.frozen` always equals the largest. Named reserves stay empty.
LOCK_ID = FixedBytes(8)
REASONS = unit_enum("pallet_balances::types::Reasons", ["Fee", "Misc", "All"])


@struct("pallet_balances::types::BalanceLock", params=[("Balance", BALANCE)])
class BalanceLock:
    id: Annotated[bytes, LOCK_ID, "LockIdentifier"]
    amount: Balance
    reasons: Annotated[str, REASONS, "Reasons"]


@struct(
    "pallet_balances::types::ReserveData",
    params=[("ReserveIdentifier", LOCK_ID), ("Balance", BALANCE)],
)
class ReserveData:
    id: Annotated[bytes, LOCK_ID, "ReserveIdentifier"]
    amount: Balance


BALANCE_LOCK = scale_of(BalanceLock)
RESERVE_DATA = scale_of(ReserveData)
Locks: StorageMap[bytes, list[BalanceLock]] = StorageMap(
    SPEC,
    "Locks",
    ACCOUNT_ID,
    Vec(BALANCE_LOCK),
    default=[],
    docs="Any liquidity locks on some account balances; AccountData.frozen is the largest.",
)
Reserves: StorageMap[bytes, list[ReserveData]] = StorageMap(
    SPEC,
    "Reserves",
    ACCOUNT_ID,
    Vec(RESERVE_DATA),
    default=[],
    docs="Named reserves on some account balances.",
)

# ---- events (FRAME's indices) -----------------------------------------------------------------


@event(SPEC, 0)
class Endowed:
    """An account was created with some free balance."""

    account: T.AccountId
    free_balance: T.Balance


@event(SPEC, 1)
class DustLost:
    """An account was removed whose balance was non-zero but below ExistentialDeposit."""

    account: T.AccountId
    amount: T.Balance


@event(SPEC, 2)
class Transfer:
    """Transfer succeeded."""

    from_: T.AccountId
    to: T.AccountId
    amount: T.Balance


@event(SPEC, 3)
class BalanceSet:
    """A balance was set by root."""

    who: T.AccountId
    free: T.Balance


@event(SPEC, 4)
class Reserved:
    """Some balance was reserved (moved from free to reserved)."""

    who: T.AccountId
    amount: T.Balance


@event(SPEC, 5)
class Unreserved:
    """Some balance was unreserved (moved from reserved to free)."""

    who: T.AccountId
    amount: T.Balance


class BalanceStatus(enum.StrEnum):
    FREE = "Free"
    RESERVED = "Reserved"


BALANCE_STATUS = unit_enum("frame_support::traits::tokens::misc::BalanceStatus", BalanceStatus)
BalanceStatusField: TypeAlias = Annotated[BalanceStatus, BALANCE_STATUS, "BalanceStatus"]


@event(SPEC, 6)
class ReserveRepatriated:
    """Some balance was moved from the reserve of the first account to the second account.
    Final argument indicates the destination balance type."""

    from_: T.AccountId
    to: T.AccountId
    amount: T.Balance
    destination_status: BalanceStatusField


@event(SPEC, 7)
class Deposit:
    """Some amount was deposited (e.g. for transaction fees)."""

    who: T.AccountId
    amount: T.Balance


@event(SPEC, 8)
class Withdraw:
    """Some amount was withdrawn from the account (e.g. for transaction fees)."""

    who: T.AccountId
    amount: T.Balance


@event(SPEC, 9)
class Slashed:
    """Some amount was removed from the account (e.g. for misbehavior)."""

    who: T.AccountId
    amount: T.Balance


@event(SPEC, 10)
class Minted:
    """Some amount was minted into an account."""

    who: T.AccountId
    amount: T.Balance


@event(SPEC, 11)
class Burned:
    """Some amount was burned from an account."""

    who: T.AccountId
    amount: T.Balance


@errors(SPEC)
class Error(PalletError):  # FRAME's indices; consensus-visible: append only
    VESTING_BALANCE = 0
    LIQUIDITY_RESTRICTIONS = 1, "Account liquidity restrictions prevent withdrawal (frozen funds)."
    INSUFFICIENT_BALANCE = 2, "Balance too low to send value."
    EXISTENTIAL_DEPOSIT = 3, "Value too low to create account due to existential deposit."
    EXPENDABILITY = 4, "Transfer/payment would kill account."
    EXISTING_VESTING_SCHEDULE = 5
    DEAD_ACCOUNT = 6
    TOO_MANY_RESERVES = 7
    TOO_MANY_HOLDS = 8
    TOO_MANY_FREEZES = 9
    ISSUANCE_DEACTIVATED = 10
    DELTA_ZERO = 11


# ---- the Currency interface other pallets use -------------------------------------------------


def free_balance(state: ReadState, who: bytes) -> int:
    return system.get_account(state, who).data.free


def usable_balance(state: ReadState, who: bytes, ed: int, *, keep_alive: bool) -> int:
    """What `who` can move out: free above the frozen amount, and above ED when keeping the
    account alive or when it has frozen funds (which keep it alive, so it must stay above ED)."""
    return usable_of(system.get_account(state, who).data, ed, keep_alive=keep_alive)


def usable_of(data: system.AccountData, ed: int, *, keep_alive: bool) -> int:
    """`usable_balance` of an account's data, already read."""
    floor = max(data.frozen, ed if keep_alive or data.frozen > 0 else 0)
    return max(data.free - floor, 0)


def _set_free(
    ctx: Ctx,
    who: bytes,
    info: system.AccountInfo,
    new_free: int,
    reserved: int | None = None,
    *,
    stored: system.AccountInfo | None = None,
) -> None:
    """Write `new_free` (and `reserved`, when given); an account gains its balance provider when
    funded and is reaped (dust burned) when it falls below the existential deposit with nothing
    reserved. `stored`: the account as the state holds it, when the caller has it (read
    otherwise)."""
    ed = ctx.config.balances.existential_deposit
    data = info.data
    new_reserved = data.reserved if reserved is None else reserved
    if 0 < new_free < ed and new_reserved == 0 and data.frozen == 0:  # frozen keeps it alive
        TotalIssuance.put(ctx.state, TotalIssuance.get(ctx.state) - new_free)
        ctx.emit(DustLost(who, new_free))
        new_free = 0
    had_funds = data.free > 0 or data.reserved > 0
    has_funds = new_free > 0 or new_reserved > 0
    providers = info.providers + int(has_funds and not had_funds) - int(had_funds and not has_funds)
    new_data = system.AccountData(
        new_free, new_reserved, data.frozen if has_funds else 0, data.flags
    )
    new_info = system.AccountInfo(info.nonce, info.consumers, providers, info.sufficients, new_data)
    system.put_account(ctx, who, new_info, stored=stored)


def transfer(ctx: Ctx, source: bytes, dest: bytes, amount: int, *, keep_alive: bool) -> None:
    """Move `amount` of free balance. Checks first, then writes."""
    ed = ctx.config.balances.existential_deposit
    src = system.get_account(ctx.state, source)
    ensure(src.data.free >= amount, Error.INSUFFICIENT_BALANCE)
    ensure(src.data.free - amount >= src.data.frozen, Error.LIQUIDITY_RESTRICTIONS)
    if src.data.frozen > 0:  # frozen funds keep the account alive: it must stay above ED
        ensure(src.data.free - amount >= ed, Error.LIQUIDITY_RESTRICTIONS)
    if keep_alive:
        ensure(src.data.free - amount >= ed, Error.EXPENDABILITY)
    if dest == source or amount == 0:
        return
    dst = system.get_account(ctx.state, dest)
    ensure(dst.data.free + amount >= ed, Error.EXISTENTIAL_DEPOSIT)
    if dst.data.free + amount > U128_MAX:
        raise DispatchError.arithmetic("Overflow")
    _set_free(ctx, source, src, src.data.free - amount, stored=src)
    # `dst` is still what the state holds: the write above was the source's (dest != source)
    if dst.data.free == 0 and dst.data.reserved == 0:
        _set_free(ctx, dest, dst, amount, stored=dst)
        ctx.emit(Endowed(dest, amount))
    else:
        _set_free(ctx, dest, dst, dst.data.free + amount, stored=dst)
    ctx.emit(Transfer(source, dest, amount))


def withdraw(
    ctx: Ctx,
    who: bytes,
    amount: int,
    *,
    keep_alive: bool = True,
    account: tuple[system.AccountInfo, system.AccountInfo] | None = None,
) -> None:
    """Take `amount` out of circulation (fees, burns). Emits Withdraw. `account`: the account
    as the state holds it and as the caller has changed it without writing it yet (its nonce),
    when the caller has them (read otherwise); the write includes the caller's change."""
    ed = ctx.config.balances.existential_deposit
    stored, info = account if account is not None else (None, system.get_account(ctx.state, who))
    if usable_of(info.data, ed, keep_alive=keep_alive) < amount:
        raise ModuleError(Error.INSUFFICIENT_BALANCE)
    if amount == 0:
        return
    TotalIssuance.put(ctx.state, TotalIssuance.get(ctx.state) - amount)
    _set_free(ctx, who, info, info.data.free - amount, stored=stored or info)
    ctx.emit(Withdraw(who, amount))


def deposit_creating(ctx: Ctx, who: bytes, amount: int) -> None:
    """Mint `amount` into `who` (emission, faucet). Emits Minted (and Endowed for new accounts)."""
    if amount == 0:
        return
    info = system.get_account(ctx.state, who)
    ed = ctx.config.balances.existential_deposit
    if info.data.free + amount < ed and info.data.free == 0:
        raise ModuleError(Error.EXISTENTIAL_DEPOSIT)
    issuance = TotalIssuance.get(ctx.state)
    if issuance + amount > U128_MAX:
        raise DispatchError.arithmetic("Overflow")
    TotalIssuance.put(ctx.state, issuance + amount)
    is_new = info.data.free == 0 and info.data.reserved == 0
    _set_free(ctx, who, info, info.data.free + amount)
    if is_new:
        ctx.emit(Endowed(who, amount))
    ctx.emit(Minted(who, amount))


def slash(ctx: Ctx, who: bytes, amount: int) -> int:
    """Remove up to `amount` from `who`'s free balance, frozen funds included (punishment).
    Issuance drops. Emits Slashed. Returns what was removed."""
    info = system.get_account(ctx.state, who)
    taken = min(amount, info.data.free)
    if taken == 0:
        return 0
    TotalIssuance.put(ctx.state, TotalIssuance.get(ctx.state) - taken)
    _set_free(ctx, who, info, info.data.free - taken)
    ctx.emit(Slashed(who, taken))
    return taken


def reserve(ctx: Ctx, who: bytes, amount: int) -> None:
    """Move `amount` of `who`'s usable free balance (above frozen funds, keeping the account
    alive) into its reserve (escrows, deposits). Emits Reserved."""
    ed = ctx.config.balances.existential_deposit
    if usable_balance(ctx.state, who, ed, keep_alive=True) < amount:
        raise ModuleError(Error.INSUFFICIENT_BALANCE)
    if amount == 0:
        return
    info = system.get_account(ctx.state, who)
    _set_free(ctx, who, info, info.data.free - amount, info.data.reserved + amount)
    ctx.emit(Reserved(who, amount))


def _reserved(ctx: Ctx, who: bytes, amount: int) -> system.AccountInfo:
    info = system.get_account(ctx.state, who)
    if info.data.reserved < amount:  # a caller's bookkeeping error: never silently short
        raise DispatchError.arithmetic("Underflow")
    return info


def unreserve(ctx: Ctx, who: bytes, amount: int) -> None:
    """Move `amount` of `who`'s reserve back to its free balance. Emits Unreserved."""
    if amount == 0:
        return
    info = _reserved(ctx, who, amount)
    _set_free(ctx, who, info, info.data.free + amount, info.data.reserved - amount)
    ctx.emit(Unreserved(who, amount))


def repatriate_reserved(ctx: Ctx, who: bytes, dest: bytes, amount: int) -> int:
    """Pay `amount` out of `who`'s reserve into `dest`'s free balance. A payment that cannot
    create `dest` (below the existential deposit) is burned instead. Returns what `dest` got."""
    if amount == 0:
        return 0
    ed = ctx.config.balances.existential_deposit
    dst = system.get_account(ctx.state, dest)
    is_new = dst.data.free == 0 and dst.data.reserved == 0
    if dest == who:
        unreserve(ctx, who, amount)
        return amount
    if is_new and amount < ed:
        burn_reserved(ctx, who, amount)
        return 0
    info = _reserved(ctx, who, amount)
    _set_free(ctx, who, info, info.data.free, info.data.reserved - amount)
    dst = system.get_account(ctx.state, dest)
    if dst.data.free + amount > U128_MAX:
        raise DispatchError.arithmetic("Overflow")
    _set_free(ctx, dest, dst, dst.data.free + amount)
    if is_new:
        ctx.emit(Endowed(dest, amount))
    ctx.emit(ReserveRepatriated(who, dest, amount, BalanceStatus.FREE))
    return amount


def burn_reserved(ctx: Ctx, who: bytes, amount: int) -> None:
    """Destroy `amount` of `who`'s reserve (issuance drops). Emits Burned."""
    if amount == 0:
        return
    info = _reserved(ctx, who, amount)
    TotalIssuance.put(ctx.state, TotalIssuance.get(ctx.state) - amount)
    _set_free(ctx, who, info, info.data.free, info.data.reserved - amount)
    ctx.emit(Burned(who, amount))


def set_lock(ctx: Ctx, who: bytes, lock_id: bytes, amount: int) -> None:
    """Set `who`'s lock `lock_id` (8 bytes) to `amount` of its free balance, all withdraw reasons
    (FRAME's `LockableCurrency::set_lock`); 0 removes it. `AccountData.frozen` becomes the
    largest lock: locks overlap, they do not add up."""
    if len(lock_id) != 8:
        raise ValueError(f"a lock id is 8 bytes, not {len(lock_id)}")
    locks = [lock for lock in Locks.get(ctx.state, AccountId(who)) if lock.id != lock_id]
    if amount > 0:
        locks.append(BalanceLock(lock_id, amount, "All"))
    if locks:
        Locks.put(ctx.state, AccountId(who), locks)
    else:
        Locks.remove(ctx.state, AccountId(who))
    info = system.get_account(ctx.state, who)
    data = dataclasses.replace(info.data, frozen=max((lock.amount for lock in locks), default=0))
    system.put_account(ctx, who, dataclasses.replace(info, data=data))


def _lookup(dest: tuple[str, object]) -> AccountId:
    who = lookup_address(dest)
    if who is None:
        raise DispatchError.cannot_lookup()
    return who


# ---- calls (FRAME's indices) --------------------------------------------------------------------


@call(SPEC, 0, weight=weights.balances_transfer_allow_death())
def transfer_allow_death(ctx: Ctx, dest: AccountIdLookupOf, value: T.CompactBalance) -> None:
    """Transfer some liquid free balance to another account; the sender may be reaped.

    Errors: InsufficientBalance, LiquidityRestrictions, ExistentialDeposit. Emits: Transfer.
    """
    source = ctx.ensure_signed()
    transfer(ctx, source, _lookup(dest), value, keep_alive=False)


@call(SPEC, 2, weight=weights.balances_force_transfer())
def force_transfer(
    ctx: Ctx, source: AccountIdLookupOf, dest: AccountIdLookupOf, value: T.CompactBalance
) -> None:
    """Exactly as `transfer_allow_death`, except the origin must be root and the source account
    may be specified."""
    ctx.ensure_root()
    transfer(ctx, _lookup(source), _lookup(dest), value, keep_alive=False)


@call(SPEC, 3, weight=weights.balances_transfer_keep_alive())
def transfer_keep_alive(ctx: Ctx, dest: AccountIdLookupOf, value: T.CompactBalance) -> None:
    """Same as `transfer_allow_death`, but fails if the sender would be reaped.

    Errors: InsufficientBalance, LiquidityRestrictions, Expendability, ExistentialDeposit.
    """
    source = ctx.ensure_signed()
    transfer(ctx, source, _lookup(dest), value, keep_alive=True)


@call(SPEC, 4, weight=weights.balances_transfer_all())
def transfer_all(
    ctx: Ctx, dest: AccountIdLookupOf, keep_alive: Annotated[bool, BOOL, "bool"]
) -> None:
    """Transfer the entire transferable balance from the caller account."""
    source = ctx.ensure_signed()
    amount = usable_balance(
        ctx.state, source, ctx.config.balances.existential_deposit, keep_alive=keep_alive
    )
    transfer(ctx, source, _lookup(dest), amount, keep_alive=keep_alive)


@call(SPEC, 8, weight=weights.balances_force_set_balance())
def force_set_balance(ctx: Ctx, who: AccountIdLookupOf, new_free: T.CompactBalance) -> None:
    """Set the free balance of an account (root only). Issuance follows."""
    ctx.ensure_root()
    account = _lookup(who)
    info = system.get_account(ctx.state, account)
    ed = ctx.config.balances.existential_deposit
    new_free = new_free if new_free >= ed else 0
    issuance = TotalIssuance.get(ctx.state) + new_free - info.data.free
    if issuance > U128_MAX:
        raise DispatchError.arithmetic("Overflow")
    is_new = info.data.free == 0 and info.data.reserved == 0 and new_free > 0
    TotalIssuance.put(ctx.state, issuance)
    _set_free(ctx, account, info, new_free)
    if is_new:
        ctx.emit(Endowed(account, new_free))
    ctx.emit(BalanceSet(account, new_free))


# ---- genesis and invariants -------------------------------------------------------------------


def build_genesis(ctx: Ctx, balances: list[tuple[bytes, int]]) -> None:
    seen: set[bytes] = set()
    ed = ctx.config.balances.existential_deposit
    total = 0
    for who, amount in sorted(balances):
        if who in seen:
            raise ValueError(f"duplicate account {who.hex()} in genesis balances")
        if amount < ed:
            raise ValueError(f"genesis balance of {who.hex()} is below the existential deposit")
        seen.add(who)
        info = system.get_account(ctx.state, who)
        system.put_account(
            ctx,
            who,
            dataclasses.replace(
                info, providers=info.providers + 1, data=dataclasses.replace(info.data, free=amount)
            ),
        )
        total += amount
    TotalIssuance.put(ctx.state, TotalIssuance.get(ctx.state) + total)


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: issuance equals the sum of balances (free + reserved); frozen funds are
    within the free balance and are the largest of the account's locks."""
    total = sum(info.data.free + info.data.reserved for _, info in system.Account.iter(state))
    issued = TotalIssuance.get(state)
    if total != issued:
        raise AssertionError(f"issuance drift: accounts hold {total}, TotalIssuance is {issued}")
    for who, info in system.Account.iter(state):
        if info.data.frozen > info.data.free:
            raise AssertionError(f"account {who.hex()}: frozen {info.data.frozen} > free")
        locks = Locks.get(state, AccountId(who))
        largest = max((lock.amount for lock in locks), default=0)
        if info.data.frozen != largest:
            raise AssertionError(
                f"account {who.hex()}: frozen {info.data.frozen} != largest lock {largest}"
            )
    for holder, held in Locks.iter(state):
        ids = [lock.id for lock in held]
        if not held or len(set(ids)) != len(ids) or any(lock.amount <= 0 for lock in held):
            raise AssertionError(f"account {holder.hex()}: empty, repeated or zero locks {held}")
        if len(held) > config.balances.max_locks:
            raise AssertionError(f"account {holder.hex()}: more than MaxLocks locks")
