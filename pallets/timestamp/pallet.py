"""Timestamp: the block author's time, set once per block by an inherent.

The runtime has no clock: time enters only through this inherent, checked against the previous
block's time and the slot in the Aura digest.
"""

from __future__ import annotations

from typing import Annotated

from chain.frame.prelude import *
from pallets import weights
from pallets.aura import pallet as aura
from pallets.config import Ctx, RuntimeConfig, TimestampConfig

SPEC = PalletSpec("Timestamp", 1)
Config = TimestampConfig

SPEC.constant(
    "MinimumPeriod",
    U64,
    lambda c: c.timestamp.minimum_period_ms,
    "The minimum period between blocks (milliseconds).",
)

Now: StorageValue[int] = StorageValue(
    SPEC, "Now", U64, default=0, docs="The current time for the current block."
)
DidUpdate: StorageValue[bool] = StorageValue(
    SPEC,
    "DidUpdate",
    BOOL,
    default=False,
    docs="Whether the timestamp has been updated in this block.",
)


@errors(SPEC)
class Error(PalletError):
    TIMESTAMP_ALREADY_SET = 0
    TOO_EARLY = 1


@call(SPEC, 0, weight=weights.timestamp_set(), dispatch_class="Mandatory", pays_fee=False)
def set(ctx: Ctx, now: Annotated[int, Compact(U64), "T::Moment"]) -> None:
    """Set the current time (inherent; unsigned, once per block, at least MinimumPeriod after the
    previous block)."""
    ctx.ensure_none()
    if DidUpdate.get(ctx.state):
        raise DispatchError("Other", detail="Timestamp must be updated only once in the block")
    prev = Now.get(ctx.state)
    if prev != 0 and now < prev + ctx.config.timestamp.minimum_period_ms:
        raise DispatchError("Other", detail="Timestamp must increment by at least MinimumPeriod")
    # the time must fall in the block's Aura slot (set by Aura's on_initialize), or an author
    # could push the chain's clock ahead and make every honest author's timestamp "too early"
    slot = aura.CurrentSlot.get(ctx.state)
    if slot and now // ctx.config.aura.slot_duration_ms != slot:
        raise DispatchError("Other", detail="Timestamp does not fall in the block's Aura slot")
    Now.put(ctx.state, now)
    DidUpdate.put(ctx.state, True)


@hook(SPEC, "on_finalize")
def on_finalize(ctx: Ctx) -> None:
    if not DidUpdate.get(ctx.state):
        raise DispatchError("Other", detail="Timestamp must be updated once in the block")
    DidUpdate.kill(ctx.state)


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: a block that set its time set a time (DidUpdate implies Now)."""
    if DidUpdate.get(state) and Now.get(state) == 0:
        raise AssertionError("DidUpdate is set but Now is not")
