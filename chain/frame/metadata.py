"""Metadata V14 generated from the pallets' declarations, with FRAME's type paths.

The portable type registry comes from the type descriptors; the outer structure is encoded with
scalecodec (a cold path: built once per runtime and cached). `state_getMetadata` serves V14 only,
because substrate-interface cannot decode V15 (COMPAT.md 6.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from chain.frame.common import (
    ACCOUNT_ID,
    H256,
    MULTI_ADDRESS,
    MULTI_SIGNATURE,
)
from chain.frame.outer import RuntimeCallType, RuntimeEventType
from chain.frame.pallet import PalletSpec, StorageDoubleMap, StorageMap, StorageValue
from chain.frame.types import (
    U8,
    U32,
    U128,
    Bytes,
    Compact,
    Enum,
    JSONDict,
    ScaleType,
    Struct,
    Tuple,
    TypeRegistry,
    VariantDef,
    _info,
    field_info,
    unnamed,
)


class MetadataSource(Protocol):
    """What metadata is built from: an assembled runtime (`chain.frame.runtime.Runtime`)."""

    @property
    def name(self) -> str: ...

    @property
    def pallets(self) -> Sequence[PalletSpec]: ...

    @property
    def config(self) -> Any: ...

    @property
    def call_type(self) -> RuntimeCallType: ...

    @property
    def event_type(self) -> RuntimeEventType: ...


METADATA_MAGIC = b"meta"
METADATA_V14 = 14

ERA = Enum(
    "sp_runtime::generic::era::Era",
    [VariantDef(0, "Immortal", [])]
    + [VariantDef(i, f"Mortal{i}", unnamed((U8, "u8")), named=False) for i in range(1, 256)],
)


def _ext(path: str, *inner: tuple[ScaleType, str]) -> Struct:
    return Struct(path, unnamed(*inner), params=[("T", None)])


UNIT = Tuple()
SIGNED_EXTENSIONS: tuple[tuple[str, ScaleType, ScaleType], ...] = (
    (
        "CheckNonZeroSender",
        _ext("frame_system::extensions::check_non_zero_sender::CheckNonZeroSender"),
        UNIT,
    ),
    (
        "CheckSpecVersion",
        _ext("frame_system::extensions::check_spec_version::CheckSpecVersion"),
        U32,
    ),
    ("CheckTxVersion", _ext("frame_system::extensions::check_tx_version::CheckTxVersion"), U32),
    ("CheckGenesis", _ext("frame_system::extensions::check_genesis::CheckGenesis"), H256),
    (
        "CheckMortality",
        _ext("frame_system::extensions::check_mortality::CheckMortality", (ERA, "Era")),
        H256,
    ),
    (
        "CheckNonce",
        _ext("frame_system::extensions::check_nonce::CheckNonce", (Compact(U32), "T::Nonce")),
        UNIT,
    ),
    ("CheckWeight", _ext("frame_system::extensions::check_weight::CheckWeight"), UNIT),
    (
        "ChargeTransactionPayment",
        _ext(
            "pallet_transaction_payment::ChargeTransactionPayment", (Compact(U128), "BalanceOf<T>")
        ),
        UNIT,
    ),
)


class _UncheckedExtrinsic(ScaleType):
    def __init__(self, call: ScaleType, extra: ScaleType) -> None:
        self.call = call
        self.extra = extra

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        u8_vec = reg.id_of(_BYTES)
        return _info(
            {"composite": {"fields": [field_info(None, u8_vec, "Vec<u8>")]}},
            path=["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"],
            params=[
                ("Address", reg.id_of(MULTI_ADDRESS)),
                ("Call", reg.id_of(self.call)),
                ("Signature", reg.id_of(MULTI_SIGNATURE)),
                ("Extra", reg.id_of(self.extra)),
            ],
        )


class _RuntimeMarker(ScaleType):
    def __init__(self, name: str) -> None:
        self.path = [f"{name}_runtime", "Runtime"]

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info({"composite": {"fields": []}}, path=self.path)


_BYTES = Bytes()


def _storage_entry(reg: TypeRegistry, item: Any) -> JSONDict:
    if isinstance(item, StorageValue):
        ty: JSONDict = {"Plain": reg.id_of(item.value_ty)}
    elif isinstance(item, StorageMap):
        ty = {
            "Map": {
                "hashers": list(item.hashers),
                "key": reg.id_of(item.key_tys[0]),
                "value": reg.id_of(item.value_ty),
            }
        }
    elif isinstance(item, StorageDoubleMap):
        key = Tuple(*item.key_tys)
        ty = {
            "Map": {
                "hashers": list(item.hashers),
                "key": reg.id_of(key),
                "value": reg.id_of(item.value_ty),
            }
        }
    else:  # pragma: no cover - declarations are one of the three
        raise TypeError(type(item))
    return {
        "name": item.name,
        "modifier": item.modifier,
        "type": ty,
        "default": "0x" + item.default_bytes().hex(),
        "documentation": list(item.docs),
    }


def error_enum(p: PalletSpec) -> Enum | None:
    if p.error is None:
        return None
    return Enum(
        f"{p.module}::pallet::Error",
        [VariantDef(int(m), m.metadata_name, [], (m.doc,) if m.doc else ()) for m in p.error],
        params=[("T", None)],
        docs=["The `Error` enum of this pallet."],
    )


def build_metadata_dict(runtime: MetadataSource) -> JSONDict:
    reg = TypeRegistry()
    # The portable registry starts with the types clients look up by path.
    for t in (ACCOUNT_ID, H256, MULTI_ADDRESS, MULTI_SIGNATURE):
        reg.id_of(t)
    reg.id_of(runtime.call_type)
    reg.id_of(runtime.event_type)
    keep: list[Any] = []
    pallets = []
    for p in sorted(runtime.pallets, key=lambda p: p.index):
        storage = (
            {"prefix": p.name, "entries": [_storage_entry(reg, s) for s in p.storage]}
            if p.storage
            else None
        )
        call_enum = runtime.call_type.call_enums.get(p.index)
        calls = {"ty": reg.id_of(call_enum)} if call_enum is not None else None
        event = None
        if p.events:
            ev = runtime.event_type.event_enum(p)
            keep.append(ev)
            # the RuntimeEvent registration already created an equal enum; register this one's id
            event = {"ty": _find(reg, f"{p.module}::pallet::Event")}
        err = error_enum(p)
        error = None
        if err is not None:
            keep.append(err)
            error = {"ty": reg.id_of(err)}
        constants = [
            {
                "name": c.name,
                "type": reg.id_of(c.ty),
                "value": "0x" + c.ty.encode(c.getter(runtime.config)).hex(),
                "documentation": list(c.docs),
            }
            for c in p.constants
        ]
        pallets.append(
            {
                "name": p.name,
                "storage": storage,
                "calls": calls,
                "event": event,
                "constants": constants,
                "error": error,
                "index": p.index,
            }
        )
    extra = Tuple(*[ext for _, ext, _ in SIGNED_EXTENSIONS])
    xt = _UncheckedExtrinsic(runtime.call_type, extra)
    extrinsic = {
        "ty": reg.id_of(xt),
        "version": 4,
        "signed_extensions": [
            {"identifier": name, "ty": reg.id_of(ext), "additional_signed": reg.id_of(add)}
            for name, ext, add in SIGNED_EXTENSIONS
        ],
    }
    runtime_ty = reg.id_of(_RuntimeMarker(runtime.name))
    keep.extend([extra, xt])
    return {
        "types": {"types": reg.portable()},
        "pallets": pallets,
        "extrinsic": extrinsic,
        "runtime_type": runtime_ty,
    }


def _find(reg: TypeRegistry, path: str) -> int:
    want = path.split("::")
    for i, entry in enumerate(reg.types):
        if entry is not None and entry["path"] == want:
            return i
    raise KeyError(path)


def build_metadata(runtime: MetadataSource) -> bytes:
    """`RuntimeMetadataPrefixed` bytes: b"meta" ++ 0x0e ++ RuntimeMetadataV14."""
    from scalecodec.base import RuntimeConfigurationObject
    from scalecodec.type_registry import load_type_registry_preset

    md = build_metadata_dict(runtime)
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    obj = rc.create_scale_object("MetadataVersioned")
    data = obj.encode(["0x" + METADATA_MAGIC.hex(), {"V14": md}])
    return bytes(data.data)
