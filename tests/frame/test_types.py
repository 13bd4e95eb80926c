"""SCALE type descriptors: round trips, byte equality with scalecodec, strictness, scale_info."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scalecodec.base import ScaleBytes

from chain.codec import CodecError, Decoder
from chain.frame.common import (
    DIGEST_ITEM,
    DISPATCH_ERROR,
    DISPATCH_RESULT,
    MULTI_ADDRESS,
    MULTI_SIGNATURE,
    PHASE,
    WEIGHT,
)
from chain.frame.types import (
    BOOL,
    STR,
    U8,
    U16,
    U32,
    U64,
    U128,
    UNIT,
    Bytes,
    Compact,
    Enum,
    FixedBytes,
    Lazy,
    NewType,
    Option,
    Struct,
    Tuple,
    TypeRegistry,
    VariantDef,
    Vec,
    fields_of,
    unit_enum,
    unnamed,
)
from pallets.system.pallet import ACCOUNT_INFO
from tests.frame.strategies import Portable, new_rc, portable, to_scalecodec, values


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: bytes


POINT = Struct("test::Point", fields_of([("x", U32, "u32"), ("y", Bytes(), "Vec<u8>")]), Point)
RECORD = Struct(
    "test::Record",
    fields_of(
        [
            ("id", Compact(U64), "u64"),
            ("tags", Vec(U16), "Vec<u16>"),
            ("flag", BOOL, "bool"),
            ("owner", Option(FixedBytes(32))),
        ]
    ),
)
SINGLE = Struct("test::Single", unnamed((U64, "u64")))  # a tuple struct with one field
WRAPPED = NewType("test::Wrapped", U128, "u128")
MIXED = Enum(
    "test::Mixed",
    [
        VariantDef(0, "Unit", []),
        VariantDef(1, "One", unnamed((U32, "u32")), named=False),
        VariantDef(2, "Named", fields_of([("a", U16), ("b", Bytes())])),
        VariantDef(3, "Two", unnamed((U8, "u8"), (BOOL, "bool")), named=False),
        VariantDef(7, "Sparse", unnamed((POINT, "Point")), named=False),
    ],
)
COLOR = unit_enum("test::Color", ["Red", "Green", "Blue"])

CATALOGUE: dict[str, Any] = {
    "u8": U8,
    "u16": U16,
    "u32": U32,
    "u64": U64,
    "u128": U128,
    "bool": BOOL,
    "str": STR,
    "compact_u8": Compact(U8),
    "compact_u32": Compact(U32),
    "compact_u64": Compact(U64),
    "compact_u128": Compact(U128),
    "bytes": Bytes(),
    "bounded_bytes": Bytes(8),
    "fixed_4": FixedBytes(4),
    "fixed_32": FixedBytes(32),
    "vec_u32": Vec(U32),
    "vec_bytes": Vec(Bytes()),
    "vec_u8": Vec(U8),
    "vec_compact": Vec(Compact(U128)),
    "vec_struct": Vec(POINT),
    "option_u32": Option(U32),
    "option_bytes": Option(Bytes()),
    "option_struct": Option(POINT),
    "option_option": Option(Option(U8)),
    "vec_unit": Vec(UNIT),
    "tuple_2": Tuple(U8, U16),
    "tuple_3": Tuple(Compact(U32), BOOL, Bytes()),
    "tuple_0": UNIT,
    "tuple_nested": Tuple(Tuple(U8, U8), Vec(Tuple(U16, BOOL))),
    "struct_cls": POINT,
    "struct_dict": RECORD,
    "struct_unnamed": SINGLE,
    "newtype": WRAPPED,
    "enum_mixed": MIXED,
    "enum_unit": COLOR,
    "multi_address": MULTI_ADDRESS,
    "multi_signature": MULTI_SIGNATURE,
    "dispatch_error": DISPATCH_ERROR,
    "dispatch_result": DISPATCH_RESULT,
    "weight": WEIGHT,
    "phase": PHASE,
    "digest_item": DIGEST_ITEM,
    "account_info": ACCOUNT_INFO,
}
NAMES = sorted(CATALOGUE)


@pytest.fixture(scope="module")
def registry() -> Portable:
    return portable(*[CATALOGUE[n] for n in NAMES])


def type_id(registry: Portable, name: str) -> int:
    return registry.ids[NAMES.index(name)]


# ---- round trips ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_descriptor_round_trip(name: str, data: st.DataObject) -> None:
    desc = CATALOGUE[name]
    value = data.draw(values(desc))
    raw = desc.encode(value)
    assert desc.decode_all(raw) == value
    d = Decoder(raw + b"\xff")
    assert desc.decode(d) == value
    assert d.remaining() == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_descriptor_matches_scalecodec(registry: Portable, name: str, data: st.DataObject) -> None:
    desc = CATALOGUE[name]
    value = data.draw(values(desc))
    raw = desc.encode(value)
    tid = type_id(registry, name)
    assert (
        registry.encode(tid, to_scalecodec(desc, value)) == raw
    )  # scalecodec encodes the same bytes
    decoded = registry.decode(
        tid, raw
    )  # and decodes ours fully, to a value it re-encodes identically
    assert registry.encode(tid, decoded) == raw


@pytest.mark.parametrize(
    "value",
    [0, 1, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**32 - 1, 2**32, 2**64 - 1, 2**64, 2**128 - 1],
)
def test_compact_boundaries_match_scalecodec(value: int) -> None:
    ours = Compact(U128).encode(value)
    theirs = bytes(new_rc().create_scale_object("Compact<u128>").encode(value).data)
    assert ours == theirs
    assert Compact(U128).decode_all(ours) == value


@pytest.mark.parametrize(
    ("type_string", "desc", "value"),
    [
        ("Vec<u32>", Vec(U32), [1, 2, 2**32 - 1]),
        ("Option<u64>", Option(U64), 7),
        ("Option<u64>", Option(U64), None),
        ("(u8, u16, bool)", Tuple(U8, U16, BOOL), (1, 2, True)),
        ("Bytes", Bytes(), b"\x00\xff"),
        ("[u8; 4]", FixedBytes(4), b"abcd"),
        ("Compact<u32>", Compact(U32), 2**20),
        ("Text", STR, "cuckoo"),
    ],
)
def test_descriptor_matches_scalecodec_type_string(type_string: str, desc: Any, value: Any) -> None:
    raw = desc.encode(value)
    obj = new_rc().create_scale_object(type_string, data=ScaleBytes(raw))
    obj.decode(check_remaining=True)
    assert bytes(new_rc().create_scale_object(type_string).encode(obj.value).data) == raw


# ---- strictness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desc", "value"),
    [
        (U8, 256),
        (U32, -1),
        (U128, 2**128),
        (FixedBytes(4), b"abc"),
        (Bytes(2), b"abc"),
        (Vec(U8, max_len=1), [1, 2]),
        (Tuple(U8, U8), (1,)),
        (COLOR, "Purple"),
        (MIXED, ("One", None)),
        (Compact(U8), -1),
    ],
)
def test_encode_rejects_invalid_value(desc: Any, value: Any) -> None:
    with pytest.raises((CodecError, TypeError)):
        desc.encode(value)


@pytest.mark.parametrize(
    ("desc", "raw"),
    [
        (BOOL, b"\x02"),
        (Option(U8), b"\x02\x00"),
        (COLOR, b"\x03"),
        (MIXED, b"\x04"),
        (Compact(U32), b"\x01\x00"),
        (Compact(U8), Compact(U32).encode(256)),
        (Bytes(2), b"\x0c" + b"abc"),
        (FixedBytes(4), b"abc"),
        (Vec(U32), b"\x08\x00\x00\x00\x00"),
        (Vec(U8), b"\xfe\xff\xff\xff"),
        (U16, b"\x01"),
        (STR, b"\x04\xff"),
        (U8, b"\x01\x02"),
    ],
)
def test_decode_rejects_invalid_bytes(desc: Any, raw: bytes) -> None:
    with pytest.raises(CodecError):
        desc.decode_all(raw)


@pytest.mark.parametrize(("desc", "value"), [(Compact(U8), 256), (Compact(U128), 2**128)])
def test_compact_encode_rejects_overflow(desc: Any, value: int) -> None:
    with pytest.raises(CodecError):
        desc.encode(value)


def test_vec_of_unit_round_trips() -> None:
    desc = Vec(UNIT)
    assert desc.decode_all(desc.encode([(), (), ()])) == [(), (), ()]


# ---- value shapes ------------------------------------------------------------------------------


def test_struct_decodes_into_class_or_dict() -> None:
    assert POINT.decode_all(POINT.encode(Point(1, b"z"))) == Point(1, b"z")
    assert POINT.encode({"x": 1, "y": b"z"}) == POINT.encode(Point(1, b"z"))
    value = {"id": 3, "tags": [1], "flag": False, "owner": None}
    assert RECORD.decode_all(RECORD.encode(value)) == value


def test_enum_unit_variant_by_name_or_pair() -> None:
    assert COLOR.encode("Blue") == COLOR.encode(("Blue", None)) == b"\x02"
    assert COLOR.decode_all(b"\x02") == "Blue"


def test_enum_uses_declared_indices() -> None:
    raw = MIXED.encode(("Sparse", Point(1, b"")))
    assert raw[0] == 7
    assert MIXED.decode_all(raw) == ("Sparse", Point(1, b""))


def test_enum_duplicate_variant_is_rejected() -> None:
    with pytest.raises(CodecError):
        Enum("test::Dup", [VariantDef(0, "A", []), VariantDef(0, "B", [])])


def test_newtype_encodes_as_inner() -> None:
    assert WRAPPED.encode(5) == U128.encode(5)
    assert WRAPPED.decode_all(U128.encode(5)) == 5


# ---- scale_info ----------------------------------------------------------------------------------


def test_registry_deduplicates_and_orders_ids() -> None:
    reg = TypeRegistry()
    first = reg.id_of(POINT)
    assert reg.id_of(POINT) == first
    assert [t["id"] for t in reg.portable()] == list(range(len(reg.types)))


def test_registry_resolves_lazy_references() -> None:
    reg = TypeRegistry()
    lazy = Lazy("Point")
    lazy.bind(POINT)
    assert reg.id_of(lazy) == reg.id_of(POINT)
    with pytest.raises(CodecError):
        Lazy("Unbound").encode(1)


def test_lazy_rebinds_only_to_a_type_of_the_same_shape() -> None:
    """Each runtime assembly binds Sudo's `RuntimeCall` reference: a second runtime with the
    same pallets may, one with other pallets may not (what a call decodes to would change)."""
    from chain.frame.runtime import Runtime
    from genesis.builder import load_spec
    from pallets.runtime import PALLETS, build_runtime, runtime_config
    from pallets.sudo import pallet as sudo

    config = runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
    first = build_runtime(config)
    build_runtime(config)  # same pallets: allowed
    assert sudo.RUNTIME_CALL.target is not first.call_type  # rebound to the newest
    with pytest.raises(CodecError, match="another shape"):
        Runtime(
            name="t",
            version=first.version,
            pallets=PALLETS[:-1],
            config=config,
            call_refs=(sudo.RUNTIME_CALL,),
        )


def test_scale_info_shapes() -> None:
    reg = TypeRegistry()
    opt = reg.types[reg.id_of(Option(U32))]
    assert opt is not None
    assert opt["path"] == ["Option"]
    assert opt["params"] == [{"name": "T", "type": reg.id_of(U32)}]
    assert [v["name"] for v in opt["def"]["variant"]["variants"]] == ["None", "Some"]
    comp = reg.types[reg.id_of(Compact(U64))]
    assert comp is not None
    assert comp["def"] == {"compact": {"type": reg.id_of(U64)}}
    arr = reg.types[reg.id_of(FixedBytes(32))]
    assert arr is not None
    assert arr["def"] == {"array": {"len": 32, "type": reg.id_of(U8)}}
    point = reg.types[reg.id_of(POINT)]
    assert point is not None
    assert point["path"] == ["test", "Point"]
    assert [f["name"] for f in point["def"]["composite"]["fields"]] == ["x", "y"]
    mixed = reg.types[reg.id_of(MIXED)]
    assert mixed is not None
    assert [v["index"] for v in mixed["def"]["variant"]["variants"]] == [0, 1, 2, 3, 7]


def test_is_immutable_admits_only_values_that_cannot_change() -> None:
    """The storage value cache shares decoded values: only types whose values are immutable."""
    from chain.frame.types import Compact, FixedBytes, Option, Tuple, Vec
    from pallets.system import pallet as system

    assert system.ACCOUNT_INFO.is_immutable()  # a frozen dataclass of integers
    assert Option(Tuple(U32, FixedBytes(32))).is_immutable()
    assert Compact(U128).is_immutable()
    assert not Vec(U32).is_immutable()  # a list
    assert not system.Events.value_ty.is_immutable()
    assert not system.Digest.value_ty.is_immutable()  # a dict
    assert not Option(Vec(U8)).is_immutable()
