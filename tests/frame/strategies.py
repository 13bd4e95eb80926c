"""Hypothesis strategies derived from the runtime's SCALE type descriptors, and a scalecodec
bridge (portable registries built from descriptors, values converted to scalecodec's shape)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from chain.frame.outer import DecodedCall, RuntimeCallType
from chain.frame.runtime import Runtime
from chain.frame.types import (
    Bytes,
    Compact,
    Enum,
    FixedBytes,
    Lazy,
    NewType,
    Option,
    ScaleType,
    Struct,
    Tuple,
    TypeRegistry,
    Vec,
    _Bool,
    _Str,
    _UInt,
)

MAX_LIST = 3
MAX_BYTES = 40


def _resolve(desc: ScaleType) -> ScaleType:
    while isinstance(desc, Lazy):
        desc = desc._t()
    return desc


def _bits(desc: ScaleType) -> int:
    desc = _resolve(desc)
    if isinstance(desc, NewType):
        return _bits(desc.inner)
    assert isinstance(desc, _UInt), desc
    return desc.bits


def values(
    desc: ScaleType, runtime: Runtime | None = None, depth: int = 0
) -> st.SearchStrategy[Any]:
    """Valid Python values for `desc`, in the shape our descriptors encode and decode."""
    desc = _resolve(desc)
    if isinstance(desc, _UInt):
        return st.integers(0, (1 << desc.bits) - 1)
    if isinstance(desc, _Bool):
        return st.booleans()
    if isinstance(desc, _Str):
        return st.text(max_size=12)
    if isinstance(desc, Compact):
        return st.integers(0, (1 << _bits(desc.inner)) - 1)
    if isinstance(desc, Bytes):
        return st.binary(max_size=min(desc.max_len or MAX_BYTES, MAX_BYTES))
    if isinstance(desc, FixedBytes):
        return st.binary(min_size=desc.n, max_size=desc.n)
    if isinstance(desc, Vec):
        return st.lists(
            values(desc.inner, runtime, depth), max_size=min(desc.max_len or MAX_LIST, MAX_LIST)
        )
    if isinstance(desc, Tuple):
        return st.tuples(*[values(t, runtime, depth) for t in desc.items])
    if isinstance(desc, Option):
        return st.none() | values(desc.inner, runtime, depth)
    if isinstance(desc, NewType):
        return values(desc.inner, runtime, depth)
    if isinstance(desc, Struct):
        fields = [values(f.ty, runtime, depth) for f in desc.fields]
        if desc.cls is not None:
            return st.builds(desc.cls, *fields)
        return st.fixed_dictionaries(
            {f.attr or f.name or "": s for f, s in zip(desc.fields, fields, strict=True)}
        )
    if isinstance(desc, Enum):
        options = []
        for v in desc.variants:
            if not v.fields:
                options.append(st.just(v.name))  # unit variants decode to their bare name
            elif v.named:
                payload = st.fixed_dictionaries(
                    {f.attr or f.name or "": values(f.ty, runtime, depth) for f in v.fields}
                )
                options.append(st.tuples(st.just(v.name), payload))
            elif len(v.fields) == 1:
                options.append(st.tuples(st.just(v.name), values(v.fields[0].ty, runtime, depth)))
            else:
                inner = st.tuples(*[values(f.ty, runtime, depth) for f in v.fields])
                options.append(st.tuples(st.just(v.name), inner))
        return st.one_of(options)
    if isinstance(desc, RuntimeCallType):
        assert runtime is not None, "RuntimeCall values need the runtime"
        return calls(runtime, depth=depth + 1)
    raise TypeError(f"no strategy for {type(desc).__name__}")


def _is_recursive(call: Any) -> bool:
    return any(isinstance(_resolve(f.ty), RuntimeCallType) for f in call.args)


def call_values(runtime: Runtime, call: Any, depth: int = 0) -> st.SearchStrategy[DecodedCall]:
    args = st.fixed_dictionaries(
        {f.attr or f.name or "": values(f.ty, runtime, depth) for f in call.args}
    )
    return args.map(lambda a: DecodedCall(call, a))


def calls(runtime: Runtime, depth: int = 0) -> st.SearchStrategy[DecodedCall]:
    """Any call of the runtime; calls nested in sudo-style wrappers go one level deep."""
    options = [
        call_values(runtime, c, depth)
        for p in runtime.pallets
        for c in p.calls.values()
        if depth < 2 and not (depth >= 1 and _is_recursive(c))
    ]
    return st.one_of(options)


def events(runtime: Runtime, cls: type) -> st.SearchStrategy[Any]:
    ev = runtime.event_type.by_class[cls]
    return st.builds(cls, *[values(f.ty, runtime) for f in ev.fields])


# ---- scalecodec bridge ---------------------------------------------------------------------


def new_rc() -> RuntimeConfigurationObject:
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    return rc


def decode_metadata(raw: bytes) -> tuple[RuntimeConfigurationObject, Any]:
    rc = new_rc()
    m = rc.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
    m.decode()
    rc.add_portable_registry(m)
    return rc, m


@dataclasses.dataclass(repr=False)
class Portable:
    """A scalecodec runtime config holding a portable registry built from our descriptors."""

    rc: RuntimeConfigurationObject
    metadata: Any
    ids: list[int]

    def obj(self, type_id: int, data: bytes | None = None) -> Any:
        if data is None:
            return self.rc.create_scale_object(f"scale_info::{type_id}", metadata=self.metadata)
        return self.rc.create_scale_object(
            f"scale_info::{type_id}", data=ScaleBytes(data), metadata=self.metadata
        )

    def decode(self, type_id: int, data: bytes) -> Any:
        obj = self.obj(type_id, data)
        value = obj.decode(check_remaining=True)
        return value

    def encode(self, type_id: int, value: Any) -> bytes:
        return bytes(self.obj(type_id).encode(value).data)


def portable(*descs: ScaleType) -> Portable:
    """A minimal metadata V14 whose registry holds `descs` (ids in the same order)."""
    reg = TypeRegistry()
    ids = [reg.id_of(d) for d in descs]
    md = {
        "types": {"types": reg.portable()},
        "pallets": [],
        "extrinsic": {"ty": 0, "version": 4, "signed_extensions": []},
        "runtime_type": 0,
    }
    raw = bytes(
        new_rc().create_scale_object("MetadataVersioned").encode(["0x6d657461", {"V14": md}]).data
    )
    rc, m = decode_metadata(raw)
    return Portable(rc, m, ids)


def to_scalecodec(desc: ScaleType, value: Any) -> Any:
    """Our value in the shape scalecodec's encoder takes for the same portable type."""
    desc = _resolve(desc)
    if isinstance(desc, (_UInt, _Bool, _Str, Compact)):
        return value
    if isinstance(desc, (Bytes, FixedBytes)):
        return "0x" + bytes(value).hex()
    if isinstance(desc, Vec):
        if isinstance(_resolve(desc.inner), _UInt) and _resolve(desc.inner).bits == 8:
            return "0x" + bytes(value).hex()
        return [to_scalecodec(desc.inner, v) for v in value]
    if isinstance(desc, Tuple):
        if len(desc.items) == 1:
            return to_scalecodec(desc.items[0], value[0])
        return tuple(to_scalecodec(t, v) for t, v in zip(desc.items, value, strict=True))
    if isinstance(desc, Option):
        return None if value is None else to_scalecodec(desc.inner, value)
    if isinstance(desc, NewType):
        return to_scalecodec(desc.inner, value)
    if isinstance(desc, Struct):
        get = (lambda a: value[a]) if isinstance(value, dict) else (lambda a: getattr(value, a))
        items = [(f, get(f.attr or f.name or "")) for f in desc.fields]
        if all(not f.name for f in desc.fields):
            if len(items) == 1:
                return to_scalecodec(items[0][0].ty, items[0][1])
            return tuple(to_scalecodec(f.ty, v) for f, v in items)
        return {f.name: to_scalecodec(f.ty, v) for f, v in items}
    if isinstance(desc, Enum):
        name, payload = (value, None) if isinstance(value, str) else value
        v = desc.by_name[name]
        if not v.fields:
            return name
        if v.named:
            return {
                name: {f.name: to_scalecodec(f.ty, payload[f.attr or f.name]) for f in v.fields}
            }
        if len(v.fields) == 1:
            return {name: to_scalecodec(v.fields[0].ty, payload)}
        return {name: tuple(to_scalecodec(f.ty, p) for f, p in zip(v.fields, payload, strict=True))}
    if isinstance(desc, RuntimeCallType):
        return call_as_scalecodec(value)
    raise TypeError(f"no scalecodec shape for {type(desc).__name__}")


def call_as_scalecodec(call: DecodedCall) -> dict[str, Any]:
    """Our DecodedCall as the dict scalecodec's Call encoder takes."""
    return {
        "call_module": call.call.pallet.name,
        "call_function": call.call.name,
        "call_args": {
            f.name: to_scalecodec(f.ty, call.args[f.attr or f.name or ""]) for f in call.call.args
        },
    }


def call_to_scalecodec(value: Any) -> Any:
    """scalecodec's decoded Call value -> the dict its Call encoder accepts (recursively)."""
    if isinstance(value, dict) and isinstance(value.get("call_args"), list):
        return {
            "call_module": value["call_module"],
            "call_function": value["call_function"],
            "call_args": {a["name"]: call_to_scalecodec(a["value"]) for a in value["call_args"]},
        }
    return value
