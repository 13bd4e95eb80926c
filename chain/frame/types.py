"""SCALE type descriptors: one object per type, used for both codec and metadata.

A descriptor encodes and decodes Python values with the hand-written codec (hot path) and
registers itself into a `TypeRegistry`, which becomes the metadata's portable type registry
(scale-info) with FRAME's type paths, so wallets decode our values without custom types.

Value conventions:
- integers: `int`; `bool`; strings: `str`; `Vec<u8>` and `[u8; N]`: `bytes`
- `Option<T>`: `None` or the value
- composites: an instance of the declared dataclass (or a dict when no class is given);
  a transparent newtype (e.g. `AccountId32`) is its single inner value
- enums (`Variant`): `(variant_name, payload)` with a dict (named fields), the value (one
  unnamed field) or a tuple (several); a unit variant is just its name (encode accepts both)
- tuples: `tuple`
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, dataclass_transform

from chain.codec import (
    CodecError,
    Decoder,
    encode_compact,
)
from chain.records import fast_init

JSONDict = dict[str, Any]


class TypeRegistry:
    """Assigns type ids to descriptors (each registered once) and collects scale-info entries."""

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._keep: list[ScaleType] = []  # keeps ids stable: id(desc) is only unique while alive
        self.types: list[JSONDict | None] = []

    def id_of(self, desc: ScaleType) -> int:
        while isinstance(desc, Lazy):
            desc = desc._t()
        key = id(desc)
        found = self._ids.get(key)
        if found is not None:
            return found
        type_id = len(self.types)
        self._ids[key] = type_id
        self._keep.append(desc)
        self.types.append(None)  # reserve: recursive types may refer to themselves
        self.types[type_id] = desc.scale_info(self)
        return type_id

    def alias(self, desc: ScaleType, target: ScaleType) -> int:
        """Register `desc` as the type `target` (a placeholder a declaration uses for a type only
        the assembled runtime knows, such as its extrinsic)."""
        type_id = self.id_of(target)
        self._ids[id(desc)] = type_id
        self._keep.append(desc)
        return type_id

    def portable(self) -> list[JSONDict]:
        out = []
        for i, entry in enumerate(self.types):
            if entry is None:
                raise CodecError(f"type {i} was reserved but never defined")
            out.append({"id": i, "type": entry})
        return out


def _info(
    def_: JSONDict,
    path: Sequence[str] = (),
    params: Sequence[tuple[str, int | None]] = (),
    docs: Sequence[str] = (),
) -> JSONDict:
    return {
        "path": list(path),
        "params": [{"name": n, "type": t} for n, t in params],
        "def": def_,
        "docs": list(docs),
    }


def field_info(name: str | None, type_id: int, type_name: str | None = None) -> JSONDict:
    return {"name": name, "type": type_id, "typeName": type_name, "docs": []}


class ScaleType:
    """Base descriptor."""

    type_name: str | None = None

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, d: Decoder) -> Any:
        raise NotImplementedError

    def decode_all(self, data: bytes) -> Any:
        d = Decoder(data)
        value = self.decode(d)
        d.finish()
        return value

    def is_immutable(self) -> bool:
        """Whether every value this type decodes to is immutable (ints, bytes, strings, frozen
        dataclasses and tuples of such): the storage value cache may then share one decoded
        object between readers."""
        return False

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        raise NotImplementedError


class _Atom(ScaleType):
    """A type whose values are ints, bools, bytes or strings."""

    def is_immutable(self) -> bool:
        return True


class _UInt(_Atom):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.width = bits // 8
        self.type_name = f"u{bits}"

    def encode(self, value: int) -> bytes:
        try:
            return value.to_bytes(self.width, "little")
        except (OverflowError, AttributeError) as exc:
            raise CodecError(f"{value!r} is not a valid u{self.bits}") from exc

    def decode(self, d: Decoder) -> int:
        return int.from_bytes(d.read(self.width), "little")

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"primitive": f"u{self.bits}"})


class _Bool(_Atom):
    type_name = "bool"

    def encode(self, value: bool) -> bytes:
        return b"\x01" if value else b"\x00"

    def decode(self, d: Decoder) -> bool:
        return d.bool()

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"primitive": "bool"})


class _Str(_Atom):
    type_name = "String"

    def encode(self, value: str) -> bytes:
        raw = value.encode()
        return encode_compact(len(raw)) + raw

    def decode(self, d: Decoder) -> str:
        return d.str()

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"primitive": "str"})


U8 = _UInt(8)
U16 = _UInt(16)
U32 = _UInt(32)
U64 = _UInt(64)
U128 = _UInt(128)
BOOL = _Bool()
STR = _Str()


class _Wrapper(ScaleType):
    """A generic type over one inner type (`Compact<T>`, `Vec<T>`, `Option<T>`)."""

    generic = ""

    def __init__(self, inner: ScaleType) -> None:
        self.inner = inner
        self.type_name = f"{self.generic}<{inner.type_name}>"


class Compact(_Wrapper):
    generic = "Compact"

    def encode(self, value: int) -> bytes:
        if isinstance(self.inner, _UInt) and value >> self.inner.bits:
            raise CodecError(f"{value} does not fit in Compact<u{self.inner.bits}>")
        return encode_compact(value)

    def is_immutable(self) -> bool:
        return True

    def decode(self, d: Decoder) -> int:
        value = d.compact()
        if isinstance(self.inner, _UInt) and value >> self.inner.bits:
            raise CodecError(f"compact value overflows u{self.inner.bits}")
        return value

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"compact": {"type": reg.id_of(self.inner)}})


class Bytes(_Atom):
    """`Vec<u8>` with an optional maximum length (a `BoundedVec`)."""

    type_name = "Vec<u8>"

    def __init__(self, max_len: int | None = None) -> None:
        self.max_len = max_len

    def encode(self, value: bytes) -> bytes:
        if self.max_len is not None and len(value) > self.max_len:
            raise CodecError(f"{len(value)} bytes exceed the bound of {self.max_len}")
        return encode_compact(len(value)) + bytes(value)

    def decode(self, d: Decoder) -> bytes:
        n = d.compact()
        if self.max_len is not None and n > self.max_len:
            raise CodecError(f"{n} bytes exceed the bound of {self.max_len}")
        return d.read(n)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"sequence": {"type": reg.id_of(U8)}})


class FixedBytes(_Atom):
    """`[u8; N]`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.type_name = f"[u8; {n}]"

    def encode(self, value: bytes) -> bytes:
        if len(value) != self.n:
            raise CodecError(f"expected {self.n} bytes, got {len(value)}")
        return bytes(value)

    def decode(self, d: Decoder) -> bytes:
        return d.read(self.n)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"array": {"len": self.n, "type": reg.id_of(U8)}})


class Vec(_Wrapper):
    generic = "Vec"

    def __init__(self, inner: ScaleType, max_len: int | None = None) -> None:
        super().__init__(inner)
        self.max_len = max_len

    def encode(self, value: Sequence[Any]) -> bytes:
        if self.max_len is not None and len(value) > self.max_len:
            raise CodecError(f"{len(value)} items exceed the bound of {self.max_len}")
        enc = self.inner.encode
        parts = [encode_compact(len(value))]
        for v in value:  # a loop, not a generator: one frame less per nesting level
            parts.append(enc(v))
        return b"".join(parts)

    def decode(self, d: Decoder) -> list[Any]:
        n = d.compact()
        if self.max_len is not None and n > self.max_len:
            raise CodecError(f"{n} items exceed the bound of {self.max_len}")
        zero_sized = isinstance(self.inner, Tuple) and not self.inner.items
        if n > d.remaining() and not zero_sized:  # every other item takes at least one byte
            raise CodecError(f"vector length {n} exceeds the input")
        dec = self.inner.decode
        out: list[Any] = []
        append = out.append
        for _ in range(n):  # a loop, not a comprehension: one frame less per nesting level
            append(dec(d))
        return out

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"sequence": {"type": reg.id_of(self.inner)}})


class Tuple(ScaleType):
    def __init__(self, *items: ScaleType) -> None:
        self.items = items
        self.type_name = "(" + ", ".join(str(i.type_name) for i in items) + ")"

    def encode(self, value: Sequence[Any]) -> bytes:
        if len(value) != len(self.items):
            raise CodecError(f"expected a {len(self.items)}-tuple")
        return b"".join(t.encode(v) for t, v in zip(self.items, value, strict=True))

    def decode(self, d: Decoder) -> tuple[Any, ...]:
        return tuple(t.decode(d) for t in self.items)

    def is_immutable(self) -> bool:
        return all(t.is_immutable() for t in self.items)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"tuple": [reg.id_of(t) for t in self.items]})


UNIT = Tuple()


class Option(_Wrapper):
    generic = "Option"

    def encode(self, value: Any) -> bytes:
        if value is None:
            return b"\x00"
        return b"\x01" + self.inner.encode(value)

    def decode(self, d: Decoder) -> Any:
        tag = d.u8()
        if tag == 0:
            return None
        if tag == 1:
            return self.inner.decode(d)
        raise CodecError(f"invalid Option tag {tag}")

    def is_immutable(self) -> bool:
        return self.inner.is_immutable()

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        inner = reg.id_of(self.inner)
        return _info(
            {
                "variant": {
                    "variants": [
                        {"name": "None", "fields": [], "index": 0, "docs": []},
                        {
                            "name": "Some",
                            "fields": [field_info(None, inner)],
                            "index": 1,
                            "docs": [],
                        },
                    ]
                }
            },
            path=["Option"],
            params=[("T", inner)],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    name: str | None
    ty: ScaleType
    type_name: str | None = None
    attr: str | None = None  # Python attribute when it differs from the name (e.g. from_)


def fields_of(spec: Sequence[tuple[str, ScaleType] | tuple[str, ScaleType, str]]) -> list[Field]:
    out = []
    for item in spec:
        name, ty = item[0], item[1]
        type_name = item[2] if len(item) > 2 else ty.type_name
        meta_name = name[:-1] if name.endswith("_") else name
        out.append(Field(meta_name, ty, type_name, name))
    return out


def unnamed(*items: tuple[ScaleType, str]) -> list[Field]:
    """Fields of a tuple-like variant: (type, Rust type name) pairs."""
    return [Field(None, ty, type_name) for ty, type_name in items]


def scale_field(name: str, hint: Any, where: str) -> Field:
    """The field declared by `name: Annotated[PyType, descriptor]` or `Annotated[PyType,
    descriptor, "RustTypeName"]` (the metadata's type name; default: the descriptor's)."""
    meta = getattr(hint, "__metadata__", ())
    if typing.get_origin(hint) is not Annotated or not meta or not isinstance(meta[0], ScaleType):
        raise CodecError(f"{where}.{name}: declare it as Annotated[<type>, <SCALE descriptor>]")
    ty: ScaleType = meta[0]
    type_name = meta[1] if len(meta) > 1 and isinstance(meta[1], str) else ty.type_name
    return Field(name.removesuffix("_"), ty, type_name, name)


def annotated_fields(cls: type) -> list[Field]:
    """The SCALE fields of a class, in declaration order, from its annotations (see
    `scale_field`). Names may refer to anything defined at module level before the class."""
    module = sys.modules.get(cls.__module__)
    hints = typing.get_type_hints(
        cls, globalns=vars(module) if module else None, include_extras=True
    )
    own = inspect.get_annotations(cls)
    return [scale_field(name, hints[name], cls.__qualname__) for name in own]


T = TypeVar("T")


def frozen_record(cls: type[T]) -> type[T]:
    """`dataclasses.dataclass(frozen=True, slots=True)(cls)`, with `chain.records.fast_init`'s
    constructor (values such as `AccountInfo` are made several times per transaction)."""
    return fast_init(dataclasses.dataclass(frozen=True, slots=True)(cls))


@dataclass_transform(frozen_default=True)
def struct(
    path: str,
    *,
    params: Sequence[tuple[str, ScaleType | None]] = (),
    cache_size: int = 0,
) -> Callable[[type[T]], type[T]]:
    """Declare a SCALE composite once: a frozen, slotted dataclass whose annotated fields (see
    `scale_field`) define both the Python value and its encoding; `scale_of(cls)` is its
    descriptor, with the Rust type path `path` in metadata."""

    def declare(cls: type[T]) -> type[T]:
        fields = annotated_fields(cls)
        out = frozen_record(cls)
        out.__scale__ = Struct(path, fields, out, params, cache_size=cache_size)  # type: ignore[attr-defined]
        return out

    return declare


def scale_of(cls: type) -> Struct:
    """The descriptor of a class declared with `@struct`."""
    desc = cls.__dict__.get("__scale__")
    if not isinstance(desc, Struct):
        raise CodecError(f"{cls.__qualname__} is not declared with @struct")
    return desc


class Struct(ScaleType):
    """A composite with named fields, decoded into `cls` (a dataclass) or a dict.

    Hot-path help, both invisible to callers: a struct made only of fixed-width integers (and
    such structs) is decoded by slicing at precomputed offsets; and with `cache_size` > 0 the
    decoded values of recently seen encodings are reused (only for immutable `cls` values, such
    as `AccountInfo`, read many times per transaction).
    """

    def __init__(
        self,
        path: str,
        fields: Sequence[Field],
        cls: Callable[..., Any] | None = None,
        params: Sequence[tuple[str, ScaleType | None]] = (),
        docs: Sequence[str] = (),
        *,
        cache_size: int = 0,
    ) -> None:
        self.path = path.split("::") if path else []
        self.fields = list(fields)
        self.cls = cls
        self.params = params
        self.docs = docs
        self.type_name = self.path[-1] if self.path else None
        self._attrs = [f.attr or f.name or "" for f in self.fields]
        self._layout = _fixed_layout(self)
        self._cache: dict[bytes, Any] | None = {} if cache_size > 0 and cls is not None else None
        self._cache_size = cache_size
        self._encode_obj: Callable[[Any], bytes] | None = None  # made at first use

    def decode_all(self, data: bytes) -> Any:
        cache = self._cache
        if cache is not None:
            hit = cache.get(data)
            if hit is not None:
                return hit
        if self._layout is not None and len(data) == self._layout[0]:
            value = self._build(data, 0)[0]
        else:
            value = ScaleType.decode_all(self, data)
        if cache is not None:
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[bytes(data)] = value
        return value

    def is_immutable(self) -> bool:
        cls = self.cls
        params = getattr(cls, "__dataclass_params__", None)
        return (
            params is not None
            and bool(params.frozen)
            and all(f.ty.is_immutable() for f in self.fields)
        )

    def _build(self, data: bytes, pos: int) -> tuple[Any, int]:
        values = []
        for f in self.fields:
            ty = f.ty
            if isinstance(ty, NewType):
                ty = ty.inner
            if isinstance(ty, Struct):
                v, pos = ty._build(data, pos)
            else:
                width = ty.width  # type: ignore[attr-defined]
                v = int.from_bytes(data[pos : pos + width], "little")
                pos += width
            values.append(v)
        if self.cls is None:
            return dict(zip(self._attrs, values, strict=True)), pos
        return self.cls(*values), pos

    def encode(self, value: Any) -> bytes:
        if isinstance(value, dict):
            return b"".join(
                f.ty.encode(value[a]) for f, a in zip(self.fields, self._attrs, strict=True)
            )
        encode = self._encode_obj
        if encode is None:  # made at first use: forward references are bound by then
            encode = self._encode_obj = self._make_encoder()
        return encode(value)

    def _make_encoder(self) -> Callable[[Any], bytes]:
        """The encoder of a `cls` value: one generated function that reads each field (nested
        fixed-width structs flattened: their integers encoded in place)."""
        if self._layout is not None:
            parts = _layout_parts(self, "v")
            if parts is not None:
                return compile_encoder(parts, {}, context=".".join(self.path))
        fields = [(attr, f.ty) for f, attr in zip(self.fields, self._attrs, strict=True)]
        return compile_field_encoder(fields, context=".".join(self.path))

    def decode(self, d: Decoder) -> Any:
        values = [f.ty.decode(d) for f in self.fields]
        if self.cls is None:
            return dict(zip(self._attrs, values, strict=True))
        return self.cls(*values)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info(
            {
                "composite": {
                    "fields": [
                        field_info(f.name, reg.id_of(f.ty), f.type_name) for f in self.fields
                    ]
                }
            },
            path=self.path,
            params=[(n, reg.id_of(t) if t is not None else None) for n, t in self.params],
            docs=self.docs,
        )


def _attr_expr(base: str, attr: str) -> str:
    return f"{base}.{attr}" if attr.isidentifier() else f"getattr({base}, {attr!r})"


def _layout_parts(st: Struct, base: str) -> list[str] | None:
    """Expressions encoding each integer of a fixed-layout struct read from `base`, in order
    (None when a field's attribute is not a plain identifier)."""
    parts: list[str] = []
    for f, attr in zip(st.fields, st._attrs, strict=True):
        if not attr.isidentifier():
            return None
        ty = f.ty.inner if isinstance(f.ty, NewType) else f.ty
        expr = f"{base}.{attr}"
        if isinstance(ty, Struct):
            inner = _layout_parts(ty, expr)
            if inner is None:
                return None
            parts.extend(inner)
        else:
            assert isinstance(ty, _UInt)
            parts.append(f"{expr}.to_bytes({ty.width}, 'little')")
    return parts


def compile_field_encoder(
    fields: Sequence[tuple[str, ScaleType]], *, context: str, head: bytes = b""
) -> Callable[[Any], bytes]:
    """`compile_encoder` of `head` then each (attribute, type) of a value, encoded by the
    type's encoder."""
    env = {f"_e{i}": ty.encode for i, (_, ty) in enumerate(fields)}
    parts = [f"_e{i}({_attr_expr('v', attr)})" for i, (attr, _) in enumerate(fields)]
    return compile_encoder(parts, env, context=context, head=head)


def compile_encoder(
    parts: Sequence[str], env: dict[str, Any], *, context: str, head: bytes = b""
) -> Callable[[Any], bytes]:
    """`lambda v: head + part0 + part1 + ...`, compiled once (the expressions read `v` and the
    names in `env`): per value, no loop over fields and no attribute lookups by name. A value
    that does not fit its type (a negative or too large integer, a missing field) raises
    CodecError, as the field encoders do."""
    env = dict(env, _head=head, CodecError=CodecError)
    body = " + ".join(["_head", *parts]) if head else " + ".join(parts) or "b''"
    src = (
        "def _encode(v):\n"
        "    try:\n"
        f"        return {body}\n"
        "    except (OverflowError, AttributeError) as exc:\n"
        f"        raise CodecError(f'{{v!r}} is not a valid {context}: {{exc}}') from exc\n"
    )
    exec(compile(src, f"<encoder of {context}>", "exec"), env)
    fn: Callable[[Any], bytes] = env["_encode"]
    return fn


def _fixed_layout(st: Struct) -> tuple[int] | None:
    """(total size,) when every field is a fixed-width integer or such a struct, else None."""
    size = 0
    for f in st.fields:
        ty = f.ty
        if isinstance(ty, NewType):
            ty = ty.inner
        if isinstance(ty, _UInt):
            size += ty.width
        elif isinstance(ty, Struct) and ty._layout is not None:
            size += ty._layout[0]
        else:
            return None
    return (size,)


class NewType(ScaleType):
    """A composite with one unnamed field whose value is the inner value (e.g. AccountId32)."""

    def __init__(
        self,
        path: str,
        inner: ScaleType,
        inner_name: str | None = None,
        type_name: str | None = None,
    ) -> None:
        self.path = path.split("::")
        self.inner = inner
        self.inner_name = inner_name or inner.type_name
        self.type_name = type_name or self.path[-1]
        self.encode = inner.encode  # type: ignore[method-assign]
        self.decode = inner.decode  # type: ignore[method-assign]

    def is_immutable(self) -> bool:
        return self.inner.is_immutable()

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info(
            {"composite": {"fields": [field_info(None, reg.id_of(self.inner), self.inner_name)]}},
            path=self.path,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class VariantDef:
    index: int
    name: str
    fields: list[Field]
    docs: tuple[str, ...] = ()
    named: bool = True


class Enum(ScaleType):
    """A variant type. Values are `(name, payload)` or just `name` for unit variants."""

    def __init__(
        self,
        path: str,
        variants: Sequence[VariantDef],
        params: Sequence[tuple[str, ScaleType | None]] = (),
        docs: Sequence[str] = (),
        *,
        py_enum: type[enum.StrEnum] | None = None,
    ) -> None:
        self.path = path.split("::") if path else []
        self.py_enum = py_enum  # unit variants decode to its members (values: variant names)
        self.variants = list(variants)
        self.params = params
        self.docs = docs
        self.type_name = self.path[-1] if self.path else None
        self.by_index = {v.index: v for v in self.variants}
        self.by_name = {v.name: v for v in self.variants}
        if len(self.by_index) != len(self.variants) or len(self.by_name) != len(self.variants):
            raise CodecError(f"duplicate variant in {path}")

    def encode(self, value: Any) -> bytes:
        payload: Any
        if isinstance(value, str):
            name, payload = value, ()
        else:
            name, payload = value
        v = self.by_name.get(name)
        if v is None:
            raise CodecError(f"{name!r} is not a variant of {'::'.join(self.path)}")
        out = bytes((v.index,))
        if not v.fields:
            return out
        if v.named:
            return out + b"".join(f.ty.encode(payload[f.attr or f.name]) for f in v.fields)
        if len(v.fields) == 1:
            return out + v.fields[0].ty.encode(payload)
        return out + b"".join(f.ty.encode(p) for f, p in zip(v.fields, payload, strict=True))

    def decode(self, d: Decoder) -> Any:
        idx = d.u8()
        v = self.by_index.get(idx)
        if v is None:
            raise CodecError(f"invalid variant index {idx} for {'::'.join(self.path)}")
        if not v.fields:
            return v.name if self.py_enum is None else self.py_enum(v.name)
        if v.named:
            return (v.name, {f.attr or f.name: f.ty.decode(d) for f in v.fields})
        if len(v.fields) == 1:  # the common case (`MultiAddress::Id`): no tuple made
            return (v.name, v.fields[0].ty.decode(d))
        return (v.name, tuple(f.ty.decode(d) for f in v.fields))

    def is_immutable(self) -> bool:
        """Unnamed payloads decode to tuples (named ones to dicts: mutable)."""
        return all(
            not v.fields or (not v.named and all(f.ty.is_immutable() for f in v.fields))
            for v in self.variants
        )

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        variants = [
            {
                "name": v.name,
                "fields": [
                    field_info(f.name if v.named else None, reg.id_of(f.ty), f.type_name)
                    for f in v.fields
                ],
                "index": v.index,
                "docs": list(v.docs),
            }
            for v in sorted(self.variants, key=lambda v: v.index)
        ]
        return _info(
            {"variant": {"variants": variants}},
            path=self.path,
            params=[(n, reg.id_of(t) if t is not None else None) for n, t in self.params],
            docs=self.docs,
        )


def unit_enum(path: str, names: Sequence[str] | type[enum.StrEnum]) -> Enum:
    """A fieldless Rust enum. Given a `StrEnum` (member values = variant names, in index
    order), values decode to its members; strings equal to a value still encode."""
    if isinstance(names, type):
        return Enum(path, [VariantDef(i, m.value, []) for i, m in enumerate(names)], py_enum=names)
    return Enum(path, [VariantDef(i, n, []) for i, n in enumerate(names)])


class Lazy(ScaleType):
    """A forward reference (for recursive types such as `RuntimeCall` inside `sudo`)."""

    def __init__(self, name: str) -> None:
        self.target: ScaleType | None = None
        self.type_name = name

    def bind(self, target: ScaleType) -> None:
        """Bind the reference (each runtime assembly does). Rebinding is allowed only to a type
        of the same shape (another runtime with the same pallets), so which runtime was built
        last never changes what a value decodes to."""
        shape = getattr(target, "shape", None)
        if self.target is not None and getattr(self.target, "shape", None) != shape:
            raise CodecError(f"{self.type_name} is already bound to a type of another shape")
        self.target = target
        # straight to the target: no frame of this reference's own per nesting level
        self.encode = target.encode  # type: ignore[method-assign]
        self.decode = target.decode  # type: ignore[method-assign]

    def is_immutable(self) -> bool:
        return False  # conservative: a reference may be recursive

    def _t(self) -> ScaleType:
        if self.target is None:
            raise CodecError(f"unbound type reference {self.type_name}")
        return self.target

    def encode(self, value: Any) -> bytes:
        return self._t().encode(value)

    def decode(self, d: Decoder) -> Any:
        return self._t().decode(d)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        raise CodecError("Lazy references are resolved by the registry")
