"""TransactionPayment: fees = base + length + weight (times the fee multiplier), plus tip.

Fees are withdrawn before dispatch (Balances.Withdraw) and burned; the event
TransactionFeePaid{who, actual_fee, tip} closes each signed extrinsic.
"""

from __future__ import annotations

import dataclasses

from chain.frame.common import ACCOUNT_ID, BALANCE, Weight
from chain.frame.pallet import PalletSpec, StorageValue
from chain.frame.types import U8, U128, NewType

SPEC = PalletSpec("TransactionPayment", 3)

FIXED_ONE = 10**18  # FixedU128 unit


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    byte_fee: int  # per encoded byte of the extrinsic
    weight_fee_per_ref_time: int  # per picosecond of ref_time (numerator)
    weight_fee_divisor: int = 1
    extrinsic_base_weight: Weight = Weight(125_000_000, 0)
    operational_fee_multiplier: int = 5


SPEC.constant(
    "OperationalFeeMultiplier", U8, lambda c: c.transaction_payment.operational_fee_multiplier
)

FIXED_U128 = NewType("sp_arithmetic::fixed_point::FixedU128", U128, "u128")
NextFeeMultiplier: StorageValue[int] = StorageValue(
    SPEC, "NextFeeMultiplier", FIXED_U128, default=FIXED_ONE
)


@SPEC.event(
    0,
    [
        ("who", ACCOUNT_ID, "T::AccountId"),
        ("actual_fee", BALANCE, "BalanceOf<T>"),
        ("tip", BALANCE, "BalanceOf<T>"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class TransactionFeePaid:
    """A transaction fee `actual_fee`, of which `tip` was added to the minimum inclusion fee, has
    been paid by `who`."""

    who: bytes
    actual_fee: int
    tip: int


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
