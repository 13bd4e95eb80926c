"""Faucet (test networks): anyone may `drip` a fixed amount, once per period per account.

`drip` pays no fee, so a fresh account can get its first tokens; the transaction pool refuses a
drip that is still rate-limited, so a free call cannot be used to spam blocks.
"""

from __future__ import annotations

import dataclasses
import enum

from chain.frame.common import ACCOUNT_ID, BALANCE, BLOCK_NUMBER, Weight
from chain.frame.pallet import Ctx, PalletSpec, ReadState, StorageMap, ensure
from chain.frame.types import BOOL
from pallets.balances import pallet as balances

SPEC = PalletSpec("Faucet", 6, module="pallet_cuckoo_faucet")


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    enabled: bool = False
    amount: int = 0
    period_blocks: int = 1


SPEC.constant(
    "Enabled", BOOL, lambda c: c.faucet.enabled, "Whether the faucet is open on this chain."
)
SPEC.constant("DripAmount", BALANCE, lambda c: c.faucet.amount, "Amount minted per drip.")
SPEC.constant(
    "DripPeriod",
    BLOCK_NUMBER,
    lambda c: c.faucet.period_blocks,
    "Blocks an account must wait between drips.",
)

LastDrip: StorageMap[bytes, int] = StorageMap(
    SPEC, "LastDrip", ACCOUNT_ID, BLOCK_NUMBER, docs="Block of each account's last drip."
)


@SPEC.event(0, [("who", ACCOUNT_ID, "T::AccountId"), ("amount", BALANCE, "BalanceOf<T>")])
@dataclasses.dataclass(frozen=True, slots=True)
class Dripped:
    """Tokens were minted to an account from the faucet."""

    who: bytes
    amount: int


@SPEC.errors
class Error(enum.IntEnum):
    DISABLED = 0
    RATE_LIMITED = 1


SPEC.error_docs = {
    "DISABLED": "The faucet is not enabled on this chain.",
    "RATE_LIMITED": "This account dripped less than DripPeriod blocks ago.",
}


def is_drip_allowed(state: ReadState, config: Config, who: bytes, now: int) -> bool:
    last = LastDrip.get(state, who)
    return config.enabled and (last is None or now >= last + config.period_blocks)


def validate_drip(
    state: ReadState, config: object, who: bytes, now: int, args: object
) -> str | None:
    """Pool check: a drip that would fail is refused before it reaches a block (it pays no fee)."""
    cfg: Config = config.faucet  # type: ignore[attr-defined]
    if not is_drip_allowed(state, cfg, who, now):
        return "faucet drip is disabled or rate-limited for this account"
    return None


@SPEC.call(0, weight=Weight(50_000_000, 3593), pays_fee=False, validate=validate_drip)
def drip(ctx: Ctx) -> None:
    """Mint `DripAmount` to the caller. Free of fees; once per `DripPeriod` blocks."""
    who = ctx.ensure_signed()
    cfg: Config = ctx.config.faucet
    ensure(cfg.enabled, Error.DISABLED)
    ensure(is_drip_allowed(ctx.state, cfg, who, ctx.block_number), Error.RATE_LIMITED)
    LastDrip.put(ctx.state, who, ctx.block_number)
    balances.deposit_creating(ctx, who, cfg.amount)
    ctx.emit(Dripped(who, cfg.amount))
