"""Block limits (`chain/frame/limits.py`) and the runtime version's encoding: FRAME's shapes,
decoded by scalecodec from their scale-info, and FRAME's `calculate_consumed_weight` rule."""

from __future__ import annotations

import pytest

from chain.frame.code import RUNTIME_VERSION, RuntimeCode
from chain.frame.common import Weight
from chain.frame.limits import (
    BLOCK_LENGTH,
    BLOCK_WEIGHTS,
    CONSUMED_WEIGHT,
    DB_WEIGHT,
    NO_WEIGHT,
    BlockLength,
    BlockWeights,
    PerDispatchClass,
    RuntimeDbWeight,
    WeightsPerClass,
    check_consumed,
    check_extrinsic_weight,
    check_length,
)
from chain.frame.validity import InvalidTransaction
from pallets.runtime import VERSION
from pallets.system.pallet import block_length, block_weights
from tests.frame.strategies import portable
from tests.pallets.mock import mock_config

BASE = Weight(10, 0)
MAX = Weight(100, 1_000)
LIMITED = WeightsPerClass(BASE, Weight(90, 1_000), MAX, Weight())
LIMITS = BlockWeights(
    Weight(), MAX, PerDispatchClass(LIMITED, LIMITED, WeightsPerClass(BASE, None, None, None))
)


def test_block_weights_decode_as_frame_system_limits() -> None:
    p = portable(BLOCK_WEIGHTS, BLOCK_LENGTH, DB_WEIGHT, CONSUMED_WEIGHT)
    config = mock_config()
    weights = p.decode(p.ids[0], BLOCK_WEIGHTS.encode(block_weights(config)))
    assert weights["max_block"] == {
        "ref_time": config.max_block_weight.ref_time,
        "proof_size": config.max_block_weight.proof_size,
    }
    normal = weights["per_class"]["normal"]
    base = config.transaction_payment.extrinsic_base_weight
    assert normal["base_extrinsic"]["ref_time"] == base.ref_time
    assert normal["max_total"] == weights["max_block"]
    assert normal["reserved"] == {"ref_time": 0, "proof_size": 0}
    assert weights["per_class"]["mandatory"]["max_total"] is None
    length = p.decode(p.ids[1], BLOCK_LENGTH.encode(block_length(config)))
    assert length == {"max": dict.fromkeys(("normal", "operational", "mandatory"), 5 * 2**20)}
    assert p.decode(p.ids[2], DB_WEIGHT.encode(RuntimeDbWeight(7, 9))) == {"read": 7, "write": 9}
    consumed = PerDispatchClass(Weight(1, 2), Weight(3, 4), Weight(5, 6))
    raw = CONSUMED_WEIGHT.encode(consumed)
    assert p.decode(p.ids[3], raw)["operational"] == {"ref_time": 3, "proof_size": 4}
    assert CONSUMED_WEIGHT.decode_all(raw) == consumed
    assert BLOCK_WEIGHTS.decode_all(BLOCK_WEIGHTS.encode(LIMITS)) == LIMITS
    assert BLOCK_LENGTH.decode_all(BLOCK_LENGTH.encode(BlockLength(PerDispatchClass(1, 2, 3))))


def test_runtime_version_decodes_as_sp_version() -> None:
    p = portable(RUNTIME_VERSION)
    value = p.decode(p.ids[0], VERSION.encode())
    assert (value["spec_name"], value["spec_version"]) == (VERSION.spec_name, VERSION.spec_version)
    assert value["system_version"] == VERSION.state_version
    assert len(value["apis"]) == len(VERSION.apis)
    code = RuntimeCode.of(VERSION, bytes(range(32)))
    assert code.version([n for n, _ in VERSION.apis]) == VERSION


def test_an_extrinsic_fits_until_the_block_is_full() -> None:
    consumed = check_consumed(LIMITS, NO_WEIGHT, Weight(40, 0), "Normal")
    assert consumed.normal == Weight(50, 0)  # its weight and the class's base
    consumed = check_consumed(LIMITS, consumed, Weight(40, 0), "Operational")
    assert consumed.operational == Weight(50, 0)
    with pytest.raises(InvalidTransaction, match="exhaust"):  # 100 + 1 + 10 > max_block
        check_consumed(LIMITS, consumed, Weight(1, 0), "Normal")


def test_mandatory_is_never_refused() -> None:
    full = PerDispatchClass(MAX, Weight(), Weight())
    after = check_consumed(LIMITS, full, Weight(10**12, 10**12), "Mandatory")
    assert after.mandatory == Weight(10**12 + 10, 10**12)


def test_proof_size_counts_too() -> None:
    with pytest.raises(InvalidTransaction):
        check_consumed(LIMITS, NO_WEIGHT, Weight(1, 1_001), "Normal")


def test_one_extrinsic_over_max_extrinsic_is_refused() -> None:
    check_extrinsic_weight(LIMITS, Weight(90, 0), "Normal")
    with pytest.raises(InvalidTransaction):
        check_extrinsic_weight(LIMITS, Weight(91, 0), "Normal")
    check_extrinsic_weight(LIMITS, Weight(10**15, 0), "Mandatory")


def test_block_length_per_class() -> None:
    limits = BlockLength(PerDispatchClass(10, 20, 30))
    assert check_length(limits, 5, 5, "Normal") == 10
    with pytest.raises(InvalidTransaction):
        check_length(limits, 5, 6, "Normal")
    assert check_length(limits, 5, 15, "Operational") == 20
