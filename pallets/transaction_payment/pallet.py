"""TransactionPayment: fees = base + length + weight (times the fee multiplier), plus tip.

Fees are withdrawn before dispatch (Balances.Withdraw) and burned; the event
TransactionFeePaid{who, actual_fee, tip} closes each signed extrinsic.
"""

from __future__ import annotations

import dataclasses

from chain.frame.prelude import *
from pallets.config import RuntimeConfig, TransactionPaymentConfig

SPEC = PalletSpec("TransactionPayment", 3)

FIXED_ONE = 10**18  # FixedU128 unit


Config = TransactionPaymentConfig


SPEC.constant(
    "OperationalFeeMultiplier", U8, lambda c: c.transaction_payment.operational_fee_multiplier
)

FIXED_U128 = NewType("sp_arithmetic::fixed_point::FixedU128", U128, "u128")
NextFeeMultiplier: StorageValue[int] = StorageValue(
    SPEC, "NextFeeMultiplier", FIXED_U128, default=FIXED_ONE
)


@event(SPEC, 0)
class TransactionFeePaid:
    """A transaction fee `actual_fee`, of which `tip` was added to the minimum inclusion fee, has
    been paid by `who`."""

    who: T.AccountId
    actual_fee: BalanceOf
    tip: BalanceOf


@dataclasses.dataclass(frozen=True, slots=True)
class FeeDetails:
    base_fee: int
    len_fee: int
    adjusted_weight_fee: int

    @property
    def inclusion_fee(self) -> int:
        return self.base_fee + self.len_fee + self.adjusted_weight_fee


def weight_to_fee(config: Config, weight: Weight) -> int:
    return weight.ref_time * config.weight_fee_per_ref_time // config.weight_fee_divisor


def compute_fee_details(config: Config, length: int, weight: Weight, multiplier: int) -> FeeDetails:
    """Pure: the inclusion fee of an extrinsic of `length` bytes dispatching `weight`."""
    return FeeDetails(
        base_fee=weight_to_fee(config, config.extrinsic_base_weight),
        len_fee=config.byte_fee * length,
        adjusted_weight_fee=weight_to_fee(config, weight) * multiplier // FIXED_ONE,
    )


def inclusion_fee(config: Config, length: int, weight: Weight, multiplier: int) -> int:
    """`compute_fee_details(...).inclusion_fee`, without the details (per transaction)."""
    return (
        weight_to_fee(config, config.extrinsic_base_weight)
        + config.byte_fee * length
        + weight_to_fee(config, weight) * multiplier // FIXED_ONE
    )


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: the fee multiplier is positive (a zero multiplier makes weight free)."""
    if NextFeeMultiplier.get(state) <= 0:
        raise AssertionError("NextFeeMultiplier is not positive")
