"""TransactionPayment: the fee formula (pure) and its use by the executive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.frame.common import Weight
from pallets.transaction_payment.pallet import (
    FIXED_ONE,
    Config,
    FeeDetails,
    NextFeeMultiplier,
    compute_fee_details,
    weight_to_fee,
)
from tests.pallets.mock import MockRuntime

CFG = Config(
    byte_fee=3,
    weight_fee_per_ref_time=7,
    weight_fee_divisor=10,
    extrinsic_base_weight=Weight(1_000, 0),
)


def test_compute_fee_details_components() -> None:
    fee = compute_fee_details(CFG, 100, Weight(50_000, 99), FIXED_ONE)
    assert fee == FeeDetails(
        base_fee=1_000 * 7 // 10, len_fee=300, adjusted_weight_fee=50_000 * 7 // 10
    )
    assert fee.inclusion_fee == 700 + 300 + 35_000


def test_compute_fee_details_multiplier_scales_weight_fee_only() -> None:
    one = compute_fee_details(CFG, 10, Weight(10_000, 0), FIXED_ONE)
    double = compute_fee_details(CFG, 10, Weight(10_000, 0), 2 * FIXED_ONE)
    half = compute_fee_details(CFG, 10, Weight(10_000, 0), FIXED_ONE // 2)
    assert (double.base_fee, double.len_fee) == (one.base_fee, one.len_fee)
    assert double.adjusted_weight_fee == 2 * one.adjusted_weight_fee
    assert half.adjusted_weight_fee == one.adjusted_weight_fee // 2


def test_compute_fee_details_zero() -> None:
    cfg = Config(byte_fee=0, weight_fee_per_ref_time=0)
    assert compute_fee_details(cfg, 1_000, Weight(10**9, 0), FIXED_ONE).inclusion_fee == 0


def test_weight_to_fee_ignores_proof_size_and_floors() -> None:
    assert weight_to_fee(CFG, Weight(19, 10**9)) == 13  # 19 * 7 // 10
    assert weight_to_fee(CFG, Weight(0, 10**9)) == 0


@settings(max_examples=200, deadline=None)
@given(
    byte_fee=st.integers(0, 10**12),
    per=st.integers(0, 10**6),
    div=st.integers(1, 10**6),
    length=st.integers(0, 5 * 1024 * 1024),
    ref_time=st.integers(0, 2 * 10**12),
    multiplier=st.integers(0, 10 * FIXED_ONE),
)
def test_compute_fee_details_formula(
    byte_fee: int, per: int, div: int, length: int, ref_time: int, multiplier: int
) -> None:
    cfg = Config(byte_fee=byte_fee, weight_fee_per_ref_time=per, weight_fee_divisor=div)
    fee = compute_fee_details(cfg, length, Weight(ref_time, 0), multiplier)
    assert fee.base_fee == cfg.extrinsic_base_weight.ref_time * per // div
    assert fee.len_fee == byte_fee * length
    assert fee.adjusted_weight_fee == (ref_time * per // div) * multiplier // FIXED_ONE
    assert fee.inclusion_fee == fee.base_fee + fee.len_fee + fee.adjusted_weight_fee
    longer = compute_fee_details(cfg, length + 1, Weight(ref_time + 1, 0), multiplier)
    assert longer.inclusion_fee >= fee.inclusion_fee


def test_next_fee_multiplier_defaults_to_one(mock: MockRuntime) -> None:
    assert NextFeeMultiplier.get(mock.state) == FIXED_ONE
