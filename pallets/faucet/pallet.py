"""Faucet (test networks): anyone may `drip` a fixed amount, once per period per account.

`drip` pays no fee, so a fresh account can get its first tokens; the transaction pool refuses a
drip that is still rate-limited, so a free call cannot be used to spam blocks.
"""

from __future__ import annotations

from typing import Any

from chain.frame.prelude import *
from pallets import weights
from pallets.balances import pallet as balances
from pallets.config import Ctx, FaucetConfig, RuntimeConfig

SPEC = PalletSpec("Faucet", 6, module="pallet_cuckoo_faucet")
Config = FaucetConfig


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


@event(SPEC, 0)
class Dripped:
    """Tokens were minted to an account from the faucet."""

    who: T.AccountId
    amount: BalanceOf


@errors(SPEC)
class Error(PalletError):
    DISABLED = 0, "The faucet is not enabled on this chain."
    RATE_LIMITED = 1, "This account dripped less than DripPeriod blocks ago."


def is_drip_allowed(state: ReadState, config: Config, who: bytes, now: int) -> bool:
    last = LastDrip.get(state, who)
    return config.enabled and (last is None or now >= last + config.period_blocks)


def validate_drip(
    state: ReadState, config: RuntimeConfig, who: bytes, now: int, args: dict[str, Any]
) -> str | None:
    """Pool check: a drip that would fail is refused before it reaches a block (it pays no fee)."""
    if not is_drip_allowed(state, config.faucet, who, now):
        return "faucet drip is disabled or rate-limited for this account"
    return None


@call(SPEC, 0, weight=weights.faucet_drip(), pays_fee=False, validate=validate_drip)
def drip(ctx: Ctx) -> None:
    """Mint `DripAmount` to the caller. Free of fees; once per `DripPeriod` blocks."""
    who = ctx.ensure_signed()
    cfg: Config = ctx.config.faucet
    ensure(cfg.enabled, Error.DISABLED)
    ensure(is_drip_allowed(ctx.state, cfg, who, ctx.block_number), Error.RATE_LIMITED)
    LastDrip.put(ctx.state, who, ctx.block_number)
    balances.deposit_creating(ctx, who, cfg.amount)
    ctx.emit(Dripped(who, cfg.amount))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: a closed faucet has never dripped."""
    if not config.faucet.enabled and next(LastDrip.iter(state), None) is not None:
        raise AssertionError("a drip is recorded on a chain whose faucet is disabled")
