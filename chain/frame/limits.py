"""Block limits as FRAME states them (`frame_system::limits`): the weight and length a block may
use per dispatch class, and the weight consumed so far (`System.BlockWeight`).

The shapes and type paths are FRAME's, so wallets decode the `System.BlockWeights`,
`System.BlockLength` and `System.DbWeight` constants and the `System.BlockWeight` storage
without custom types. `check_consumed` is FRAME's `calculate_consumed_weight`: the one rule that
decides whether one more extrinsic fits in a block.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Generic, TypeVar

from chain.codec import U64_MAX
from chain.frame.common import DISPATCH_CLASSES, WEIGHT, Weight
from chain.frame.types import U32, U64, Option, ScaleType, Struct, fields_of, scale_of, struct
from chain.frame.validity import InvalidTransaction
from chain.records import fast_init

V = TypeVar("V")


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class PerDispatchClass(Generic[V]):
    """`frame_support::dispatch::PerDispatchClass<T>`: one value per dispatch class."""

    normal: V
    operational: V
    mandatory: V

    def get(self, dispatch_class: str) -> V:
        if dispatch_class == "Normal":  # the common case, per extrinsic
            return self.normal
        value: V = getattr(self, _attr(dispatch_class))
        return value

    def replace(self, dispatch_class: str, value: V) -> PerDispatchClass[V]:
        if dispatch_class == "Normal":  # the common case, without dataclasses.replace
            return PerDispatchClass(value, self.operational, self.mandatory)
        return dataclasses.replace(self, **{_attr(dispatch_class): value})


def _attr(dispatch_class: str) -> str:
    if dispatch_class not in DISPATCH_CLASSES:
        raise ValueError(f"unknown dispatch class {dispatch_class!r}")
    return dispatch_class.lower()


def per_dispatch_class(inner: ScaleType, inner_name: str) -> Struct:
    """The descriptor of `PerDispatchClass<inner>` (one per inner type, as scale-info has)."""
    return Struct(
        "frame_support::dispatch::PerDispatchClass",
        fields_of([(name, inner, inner_name) for name in ("normal", "operational", "mandatory")]),
        PerDispatchClass,
        params=[("T", inner)],
    )


OPTIONAL_WEIGHT = Option(WEIGHT)
OptionalWeight = Annotated[Weight | None, OPTIONAL_WEIGHT, "Option<Weight>"]
WeightField = Annotated[Weight, WEIGHT, "Weight"]


@struct("frame_system::limits::WeightsPerClass")
class WeightsPerClass:
    """The limits of one dispatch class; None: no limit."""

    base_extrinsic: WeightField  # added to every extrinsic of the class
    max_extrinsic: OptionalWeight  # the most one extrinsic may weigh (without its base)
    max_total: OptionalWeight  # the most the class may use in a block
    reserved: OptionalWeight  # room the class keeps once the block's max_block is used up


PER_CLASS_WEIGHTS = per_dispatch_class(scale_of(WeightsPerClass), "WeightsPerClass")


@struct("frame_system::limits::BlockWeights")
class BlockWeights:
    base_block: WeightField  # what executing an empty block weighs
    max_block: WeightField  # the most a block may weigh, all classes together
    per_class: Annotated[
        PerDispatchClass[WeightsPerClass], PER_CLASS_WEIGHTS, "PerDispatchClass<WeightsPerClass>"
    ]


BLOCK_WEIGHTS = scale_of(BlockWeights)
PER_CLASS_LENGTH = per_dispatch_class(U32, "u32")


@struct("frame_system::limits::BlockLength")
class BlockLength:
    max: Annotated[PerDispatchClass[int], PER_CLASS_LENGTH, "PerDispatchClass<u32>"]


BLOCK_LENGTH = scale_of(BlockLength)


@struct("sp_weights::RuntimeDbWeight")
class RuntimeDbWeight:
    read: Annotated[int, U64, "u64"]  # ref_time of one storage read
    write: Annotated[int, U64, "u64"]  # ref_time of one storage write


DB_WEIGHT = scale_of(RuntimeDbWeight)

# `System.BlockWeight`: the weight each class has consumed in the current block.
CONSUMED_WEIGHT = per_dispatch_class(WEIGHT, "Weight")
ConsumedWeight = PerDispatchClass[Weight]
NO_WEIGHT = PerDispatchClass(Weight(), Weight(), Weight())


def _any_gt(a: Weight, b: Weight) -> bool:
    return a.ref_time > b.ref_time or a.proof_size > b.proof_size


def total(consumed: ConsumedWeight) -> Weight:
    return consumed.normal + consumed.operational + consumed.mandatory


def check_extrinsic_weight(limits: BlockWeights, call_weight: Weight, dispatch_class: str) -> None:
    """FRAME's `check_extrinsic_weight`: one extrinsic's own weight against its class's
    `max_extrinsic`. Raises InvalidTransaction("ExhaustsResources")."""
    max_extrinsic = limits.per_class.get(dispatch_class).max_extrinsic
    if max_extrinsic is not None and _any_gt(call_weight, max_extrinsic):
        raise InvalidTransaction("ExhaustsResources", "the call weighs more than an extrinsic may")


def check_consumed(
    limits: BlockWeights, consumed: ConsumedWeight, call_weight: Weight, dispatch_class: str
) -> ConsumedWeight:
    """FRAME's `calculate_consumed_weight`: the block's consumed weight with one more extrinsic
    of `dispatch_class` (its weight plus the class's base), or InvalidTransaction
    ("ExhaustsResources") when it does not fit. A class without `max_total` and `reserved`
    (Mandatory) always fits."""
    per_class = limits.per_class.get(dispatch_class)
    # saturating sums in plain integers (min(min(a + b, MAX) + c, MAX) == min(a + b + c, MAX)
    # for non-negative terms): one Weight made, not one per addition
    now = consumed.get(dispatch_class)
    base = per_class.base_extrinsic
    added = Weight(
        min(now.ref_time + call_weight.ref_time + base.ref_time, U64_MAX),
        min(now.proof_size + call_weight.proof_size + base.proof_size, U64_MAX),
    )
    after = consumed.replace(dispatch_class, added)
    if per_class.max_total is None and per_class.reserved is None:
        return after
    if per_class.max_total is not None and _any_gt(added, per_class.max_total):
        raise InvalidTransaction("ExhaustsResources")
    if per_class.reserved is not None and _any_gt(added, per_class.reserved):
        n, o, m = after.normal, after.operational, after.mandatory
        max_block = limits.max_block
        if (
            min(n.ref_time + o.ref_time + m.ref_time, U64_MAX) > max_block.ref_time
            or min(n.proof_size + o.proof_size + m.proof_size, U64_MAX) > max_block.proof_size
        ):
            raise InvalidTransaction("ExhaustsResources")
    return after


def check_length(limits: BlockLength, length: int, added: int, dispatch_class: str) -> int:
    """FRAME's `check_block_length`: the block's extrinsics' length with one more of `added`
    bytes, or InvalidTransaction("ExhaustsResources") over the class's maximum."""
    after = length + added
    if after > limits.max.get(dispatch_class):
        raise InvalidTransaction("ExhaustsResources", "the block is full (length)")
    return after


__all__ = [
    "BLOCK_LENGTH",
    "BLOCK_WEIGHTS",
    "CONSUMED_WEIGHT",
    "DB_WEIGHT",
    "NO_WEIGHT",
    "BlockLength",
    "BlockWeights",
    "ConsumedWeight",
    "PerDispatchClass",
    "RuntimeDbWeight",
    "WeightsPerClass",
    "check_consumed",
    "check_extrinsic_weight",
    "check_length",
    "per_dispatch_class",
    "total",
]
