"""Metadata V14 and V15 generated from the pallets' declarations, with FRAME's type paths.

The portable type registry comes from the type descriptors; the outer structure is encoded with
scalecodec (a cold path: built once per runtime and version, and cached). `state_getMetadata`
serves V14, because substrate-interface cannot decode V15 (COMPAT.md 6.1); V15 adds what
polkadot-api's typed client needs (the runtime APIs with their types, the outer enums, pallet
docs) and is served by `Metadata_metadata_at_version(15)`. scalecodec 1.2 has no V15 types: they
are declared here (`_V15_TYPES`), field for field as frame-metadata's `v15.rs` has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chain.frame.apis import RuntimeApi
from chain.frame.code import RuntimeVersion
from chain.frame.common import (
    ACCOUNT_ID,
    H256,
    MULTI_ADDRESS,
    MULTI_SIGNATURE,
    UNCHECKED_EXTRINSIC,
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
    """What metadata is built from: an assembled runtime (`chain.frame.runtime.Runtime`) at a
    version."""

    @property
    def version(self) -> RuntimeVersion: ...

    @property
    def apis(self) -> Sequence[RuntimeApi]: ...

    @property
    def pallet_docs(self) -> Mapping[int, Sequence[str]]: ...

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
METADATA_V15 = 15

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


class _RuntimeError(Enum):
    """`<runtime>::RuntimeError`: a variant per pallet with errors (V15's outer error enum)."""

    def __init__(self, name: str, errors: Sequence[tuple[PalletSpec, Enum]]) -> None:
        super().__init__(
            f"{name}_runtime::RuntimeError",
            [
                VariantDef(
                    p.index, p.name, unnamed((err, f"{p.module}::Error<Runtime>")), named=False
                )
                for p, err in errors
            ],
        )


def _constant_value(runtime: MetadataSource, c: Any) -> str:
    value = c.getter(runtime if c.of_runtime else runtime.config)
    encoded: bytes = c.ty.encode(value)
    return "0x" + encoded.hex()


def _pallets(
    reg: TypeRegistry, runtime: MetadataSource, errors: Mapping[int, Enum], *, docs: bool
) -> list[JSONDict]:
    pallets = []
    for p in sorted(runtime.pallets, key=lambda p: p.index):
        storage = (
            {"prefix": p.name, "entries": [_storage_entry(reg, s) for s in p.storage]}
            if p.storage
            else None
        )
        call_enum = runtime.call_type.call_enums.get(p.index)
        calls = {"ty": reg.id_of(call_enum)} if call_enum is not None else None
        # the RuntimeEvent registration already created an equal enum; take its id
        event = {"ty": _find(reg, f"{p.module}::pallet::Event")} if p.events else None
        err = errors.get(p.index)
        error = {"ty": reg.id_of(err)} if err is not None else None
        constants = [
            {
                "name": c.name,
                "type": reg.id_of(c.ty),
                "value": _constant_value(runtime, c),
                "documentation": list(c.docs),
            }
            for c in p.constants
        ]
        entry: JSONDict = {
            "name": p.name,
            "storage": storage,
            "calls": calls,
            "event": event,
            "constants": constants,
            "error": error,
            "index": p.index,
        }
        if docs:
            entry["docs"] = list(runtime.pallet_docs.get(p.index, ()))
        pallets.append(entry)
    return pallets


def _registry(runtime: MetadataSource) -> tuple[TypeRegistry, dict[int, Enum], Tuple, Any]:
    """A registry that starts with the types clients look up by path, the outer enums, the
    pallets' error enums and the extrinsic (as `UNCHECKED_EXTRINSIC` too)."""
    reg = TypeRegistry()
    for t in (ACCOUNT_ID, H256, MULTI_ADDRESS, MULTI_SIGNATURE):
        reg.id_of(t)
    reg.id_of(runtime.call_type)
    reg.id_of(runtime.event_type)
    errors: dict[int, Enum] = {}
    for p in sorted(runtime.pallets, key=lambda p: p.index):
        err = error_enum(p)
        if err is not None:
            errors[p.index] = err
    extra = Tuple(*[ext for _, ext, _ in SIGNED_EXTENSIONS])
    xt = _UncheckedExtrinsic(runtime.call_type, extra)
    return reg, errors, extra, xt


def _signed_extensions(reg: TypeRegistry) -> list[JSONDict]:
    return [
        {"identifier": name, "ty": reg.id_of(ext), "additional_signed": reg.id_of(add)}
        for name, ext, add in SIGNED_EXTENSIONS
    ]


def build_metadata_dict(runtime: MetadataSource) -> JSONDict:
    reg, errors, _, xt = _registry(runtime)
    pallets = _pallets(reg, runtime, errors, docs=False)
    extrinsic = {
        "ty": reg.id_of(xt),
        "version": 4,
        "signed_extensions": _signed_extensions(reg),
    }
    runtime_ty = reg.id_of(_RuntimeMarker(runtime.name))
    return {
        "types": {"types": reg.portable()},
        "pallets": pallets,
        "extrinsic": extrinsic,
        "runtime_type": runtime_ty,
    }


def _apis(reg: TypeRegistry, apis: Sequence[RuntimeApi]) -> list[JSONDict]:
    return [
        {
            "name": api.name,
            "methods": [
                {
                    "name": m.name,
                    "inputs": [{"name": n, "ty": reg.id_of(t)} for n, t in m.inputs],
                    "output": reg.id_of(m.output),
                    "docs": list(m.docs),
                }
                for m in api.methods
            ],
            "docs": list(api.docs),
        }
        for api in apis
    ]


def build_metadata_v15_dict(runtime: MetadataSource) -> JSONDict:
    reg, errors, extra, xt = _registry(runtime)
    reg.alias(UNCHECKED_EXTRINSIC, xt)
    runtime_error = _RuntimeError(
        runtime.name, [(p, errors[p.index]) for p in runtime.pallets if p.index in errors]
    )
    reg.id_of(runtime_error)
    pallets = _pallets(reg, runtime, errors, docs=True)
    extrinsic = {
        "version": 4,
        "address_ty": reg.id_of(MULTI_ADDRESS),
        "call_ty": reg.id_of(runtime.call_type),
        "signature_ty": reg.id_of(MULTI_SIGNATURE),
        "extra_ty": reg.id_of(extra),
        "signed_extensions": _signed_extensions(reg),
    }
    runtime_ty = reg.id_of(_RuntimeMarker(runtime.name))
    apis = _apis(reg, runtime.apis)
    return {
        "types": {"types": reg.portable()},
        "pallets": pallets,
        "extrinsic": extrinsic,
        "runtime_type": runtime_ty,
        "apis": apis,
        "outer_enums": {
            "call_enum_ty": reg.id_of(runtime.call_type),
            "event_enum_ty": reg.id_of(runtime.event_type),
            "error_enum_ty": reg.id_of(runtime_error),
        },
        "custom": [],
    }


def _find(reg: TypeRegistry, path: str) -> int:
    want = path.split("::")
    for i, entry in enumerate(reg.types):
        if entry is not None and entry["path"] == want:
            return i
    raise KeyError(path)


def _v15_types() -> JSONDict:
    """frame-metadata's v15.rs in scalecodec's type-registry notation (the V14 parts are
    scalecodec's own)."""
    return {
        "types": {
            "CuckooMetadataV15": {
                "type": "struct",
                "type_mapping": [
                    ["types", "PortableRegistry"],
                    ["pallets", "Vec<CuckooPalletMetadataV15>"],
                    ["extrinsic", "CuckooExtrinsicMetadataV15"],
                    ["runtime_type", "SiLookupTypeId"],
                    ["apis", "Vec<CuckooRuntimeApiMetadataV15>"],
                    ["outer_enums", "CuckooOuterEnumsV15"],
                    ["custom", "Vec<(Text, CuckooCustomValueMetadataV15)>"],
                ],
            },
            "CuckooPalletMetadataV15": {
                "type": "struct",
                "type_mapping": [
                    ["name", "Text"],
                    ["storage", "Option<StorageMetadataV14>"],
                    ["calls", "Option<PalletCallMetadataV14>"],
                    ["event", "Option<PalletEventMetadataV14>"],
                    ["constants", "Vec<PalletConstantMetadataV14>"],
                    ["error", "Option<PalletErrorMetadataV14>"],
                    ["index", "u8"],
                    ["docs", "Vec<Text>"],
                ],
            },
            "CuckooExtrinsicMetadataV15": {
                "type": "struct",
                "type_mapping": [
                    ["version", "u8"],
                    ["address_ty", "SiLookupTypeId"],
                    ["call_ty", "SiLookupTypeId"],
                    ["signature_ty", "SiLookupTypeId"],
                    ["extra_ty", "SiLookupTypeId"],
                    ["signed_extensions", "Vec<SignedExtensionMetadataV14>"],
                ],
            },
            "CuckooRuntimeApiMetadataV15": {
                "type": "struct",
                "type_mapping": [
                    ["name", "Text"],
                    ["methods", "Vec<CuckooRuntimeApiMethodMetadataV15>"],
                    ["docs", "Vec<Text>"],
                ],
            },
            "CuckooRuntimeApiMethodMetadataV15": {
                "type": "struct",
                "type_mapping": [
                    ["name", "Text"],
                    ["inputs", "Vec<CuckooRuntimeApiMethodParamMetadataV15>"],
                    ["output", "SiLookupTypeId"],
                    ["docs", "Vec<Text>"],
                ],
            },
            "CuckooRuntimeApiMethodParamMetadataV15": {
                "type": "struct",
                "type_mapping": [["name", "Text"], ["ty", "SiLookupTypeId"]],
            },
            "CuckooOuterEnumsV15": {
                "type": "struct",
                "type_mapping": [
                    ["call_enum_ty", "SiLookupTypeId"],
                    ["event_enum_ty", "SiLookupTypeId"],
                    ["error_enum_ty", "SiLookupTypeId"],
                ],
            },
            "CuckooCustomValueMetadataV15": {
                "type": "struct",
                "type_mapping": [["ty", "SiLookupTypeId"], ["value", "Bytes"]],
            },
        }
    }


def _scale_config() -> Any:
    from scalecodec.base import RuntimeConfigurationObject
    from scalecodec.type_registry import load_type_registry_preset

    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    rc.update_type_registry(_v15_types())
    return rc


def build_metadata(runtime: MetadataSource) -> bytes:
    """`RuntimeMetadataPrefixed` bytes: b"meta" ++ 0x0e ++ RuntimeMetadataV14."""
    md = build_metadata_dict(runtime)
    obj = _scale_config().create_scale_object("MetadataVersioned")
    data = obj.encode(["0x" + METADATA_MAGIC.hex(), {"V14": md}])
    return bytes(data.data)


def build_metadata_v15(runtime: MetadataSource) -> bytes:
    """`RuntimeMetadataPrefixed` bytes: b"meta" ++ 0x0f ++ RuntimeMetadataV15."""
    md = build_metadata_v15_dict(runtime)
    obj = _scale_config().create_scale_object("CuckooMetadataV15")
    data = obj.encode(md)
    return METADATA_MAGIC + bytes((METADATA_V15,)) + bytes(data.data)
