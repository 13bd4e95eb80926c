"""Types shared by every pallet, declared with FRAME's type paths (COMPAT.md section 6.3).

Clients switch behaviour on these paths, so they are spelled exactly as in Substrate.
"""

from __future__ import annotations

from typing import Annotated, NewType, TypeAlias

from chain.codec import U64_MAX, Decoder, encode_compact
from chain.frame.types import (
    U8,
    U32,
    U64,
    U128,
    Bytes,
    Compact,
    Enum,
    FixedBytes,
    JSONDict,
    ScaleType,
    Struct,
    Tuple,
    TypeRegistry,
    VariantDef,
    _info,
    field_info,
    fields_of,
    scale_of,
    struct,
    unit_enum,
    unnamed,
)
from chain.frame.types import (
    NewType as NewTypeDesc,
)

AccountId = NewType("AccountId", bytes)

BYTES32 = FixedBytes(32)
ACCOUNT_ID = NewTypeDesc("sp_core::crypto::AccountId32", BYTES32, "[u8; 32]", "AccountId")
H256 = NewTypeDesc("primitive_types::H256", BYTES32, "[u8; 32]", "Hash")
BALANCE = U128
BALANCE.type_name = "u128"
COMPACT_BALANCE = Compact(U128)
BLOCK_NUMBER = U32

MULTI_ADDRESS = Enum(
    "sp_runtime::multiaddress::MultiAddress",
    [
        VariantDef(0, "Id", unnamed((ACCOUNT_ID, "AccountId")), named=False),
        VariantDef(1, "Index", unnamed((Compact(U32), "AccountIndex")), named=False),
        VariantDef(2, "Raw", unnamed((Bytes(), "Vec<u8>")), named=False),
        VariantDef(3, "Address32", fields_of([("", BYTES32, "[u8; 32]")]), named=False),
        VariantDef(4, "Address20", fields_of([("", FixedBytes(20), "[u8; 20]")]), named=False),
    ],
    params=[("AccountId", ACCOUNT_ID), ("AccountIndex", U32)],
)
MULTI_ADDRESS.type_name = "AccountIdLookupOf<T>"

MULTI_SIGNATURE = Enum(
    "sp_runtime::MultiSignature",
    [
        VariantDef(0, "Ed25519", fields_of([("", FixedBytes(64), "[u8; 64]")]), named=False),
        VariantDef(1, "Sr25519", fields_of([("", FixedBytes(64), "[u8; 64]")]), named=False),
        VariantDef(2, "Ecdsa", fields_of([("", FixedBytes(65), "[u8; 65]")]), named=False),
    ],
)


def lookup_address(value: tuple[str, object]) -> AccountId | None:
    """The account a `MultiAddress` names, or None when it needs a lookup we do not have."""
    kind, payload = value
    if kind in ("Id", "Address32") and isinstance(payload, bytes):
        return AccountId(payload)
    return None


# ---- weights and dispatch info ---------------------------------------------------------------


@struct("sp_weights::weight_v2::Weight")
class Weight:
    ref_time: Annotated[int, Compact(U64), "u64"] = 0  # picoseconds on reference hardware
    proof_size: Annotated[int, Compact(U64), "u64"] = 0

    def __add__(self, other: Weight) -> Weight:
        return Weight(
            min(self.ref_time + other.ref_time, U64_MAX),
            min(self.proof_size + other.proof_size, U64_MAX),
        )


WEIGHT = scale_of(Weight)

DISPATCH_CLASSES = ("Normal", "Operational", "Mandatory")
DISPATCH_CLASS = unit_enum("frame_support::dispatch::DispatchClass", DISPATCH_CLASSES)
PAYS = unit_enum("frame_support::dispatch::Pays", ["Yes", "No"])


@struct("frame_support::dispatch::DispatchInfo")
class DispatchInfo:
    weight: Annotated[Weight, WEIGHT, "Weight"]
    class_: Annotated[str, DISPATCH_CLASS, "DispatchClass"] = "Normal"
    pays_fee: Annotated[str, PAYS, "Pays"] = "Yes"


DISPATCH_INFO = scale_of(DispatchInfo)

MODULE_ERROR = Struct(
    "sp_runtime::ModuleError",
    fields_of(
        [("index", U8, "u8"), ("error", FixedBytes(4), "[u8; MAX_MODULE_ERROR_ENCODED_SIZE]")]
    ),
)
TOKEN_ERROR = unit_enum(
    "sp_runtime::TokenError",
    [
        "FundsUnavailable",
        "OnlyProvider",
        "BelowMinimum",
        "CannotCreate",
        "UnknownAsset",
        "Frozen",
        "Unsupported",
        "CannotCreateHold",
        "NotExpendable",
        "Blocked",
    ],
)
ARITHMETIC_ERROR = unit_enum(
    "sp_arithmetic::ArithmeticError", ["Underflow", "Overflow", "DivisionByZero"]
)
TRANSACTIONAL_ERROR = unit_enum("sp_runtime::TransactionalError", ["LimitReached", "NoLayer"])

DISPATCH_ERROR = Enum(
    "sp_runtime::DispatchError",
    [
        VariantDef(0, "Other", []),
        VariantDef(1, "CannotLookup", []),
        VariantDef(2, "BadOrigin", []),
        VariantDef(3, "Module", unnamed((MODULE_ERROR, "ModuleError")), named=False),
        VariantDef(4, "ConsumerRemaining", []),
        VariantDef(5, "NoProviders", []),
        VariantDef(6, "TooManyConsumers", []),
        VariantDef(7, "Token", unnamed((TOKEN_ERROR, "TokenError")), named=False),
        VariantDef(8, "Arithmetic", unnamed((ARITHMETIC_ERROR, "ArithmeticError")), named=False),
        VariantDef(
            9, "Transactional", unnamed((TRANSACTIONAL_ERROR, "TransactionalError")), named=False
        ),
        VariantDef(10, "Exhausted", []),
        VariantDef(11, "Corruption", []),
        VariantDef(12, "Unavailable", []),
        VariantDef(13, "RootNotAllowed", []),
    ],
)

UNIT_TYPE = Tuple()
DISPATCH_RESULT = Enum(
    "Result",
    [
        VariantDef(0, "Ok", unnamed((UNIT_TYPE, "()")), named=False),
        VariantDef(1, "Err", unnamed((DISPATCH_ERROR, "DispatchError")), named=False),
    ],
    params=[("T", UNIT_TYPE), ("E", DISPATCH_ERROR)],
)

PERBILL = NewTypeDesc("sp_arithmetic::per_things::Perbill", U32, "u32", "Perbill")
PERBILL_ONE = 1_000_000_000


# ---- field types: `Annotated[PyType, descriptor, "RustTypeName"]` -----------------------------
# The Rust type name is what metadata shows for a field; these are the ones pallets share.


class T:
    """Field types spelled `T::X` in metadata: a pallet's Config types (FRAME's `T: Config`)."""

    AccountId: TypeAlias = Annotated[bytes, ACCOUNT_ID, "T::AccountId"]
    Balance: TypeAlias = Annotated[int, BALANCE, "T::Balance"]
    CompactBalance: TypeAlias = Annotated[int, COMPACT_BALANCE, "T::Balance"]
    Hash: TypeAlias = Annotated[bytes, H256, "T::Hash"]


AccountIdField: TypeAlias = Annotated[bytes, ACCOUNT_ID, "AccountId"]
AccountIdLookupOf: TypeAlias = Annotated[tuple[str, object], MULTI_ADDRESS, "AccountIdLookupOf<T>"]
Balance: TypeAlias = Annotated[int, BALANCE, "Balance"]
BalanceOf: TypeAlias = Annotated[int, BALANCE, "BalanceOf<T>"]
CompactBalanceOf: TypeAlias = Annotated[int, COMPACT_BALANCE, "BalanceOf<T>"]
BlockNumber: TypeAlias = Annotated[int, BLOCK_NUMBER, "BlockNumber"]
EraIndex: TypeAlias = Annotated[int, U32, "EraIndex"]
Hash256: TypeAlias = Annotated[bytes, H256, "H256"]
Perbill: TypeAlias = Annotated[int, PERBILL, "Perbill"]


# ---- events and digests ----------------------------------------------------------------------

PHASE = Enum(
    "frame_system::Phase",
    [
        VariantDef(0, "ApplyExtrinsic", unnamed((U32, "u32")), named=False),
        VariantDef(1, "Finalization", []),
        VariantDef(2, "Initialization", []),
    ],
)

ENGINE_ID = FixedBytes(4)
DIGEST_ITEM = Enum(
    "sp_runtime::generic::digest::DigestItem",
    [
        VariantDef(0, "Other", unnamed((Bytes(), "Vec<u8>")), named=False),
        VariantDef(
            4,
            "Consensus",
            unnamed((ENGINE_ID, "ConsensusEngineId"), (Bytes(), "Vec<u8>")),
            named=False,
        ),
        VariantDef(
            5, "Seal", unnamed((ENGINE_ID, "ConsensusEngineId"), (Bytes(), "Vec<u8>")), named=False
        ),
        VariantDef(
            6,
            "PreRuntime",
            unnamed((ENGINE_ID, "ConsensusEngineId"), (Bytes(), "Vec<u8>")),
            named=False,
        ),
        VariantDef(8, "RuntimeEnvironmentUpdated", []),
    ],
)

SLOT = NewTypeDesc("sp_consensus_slots::Slot", U64, "u64", "Slot")


class OpaqueExtrinsic(ScaleType):
    """An extrinsic as a runtime API takes it: `Vec<u8>` (a compact length, then the body); the
    value is the whole encoding, length included (what `Extrinsic.decode` takes). In metadata it
    is the runtime's `UncheckedExtrinsic` type (the builder registers it as that)."""

    type_name = "Extrinsic"

    def encode(self, value: bytes) -> bytes:
        return bytes(value)

    def decode(self, d: Decoder) -> bytes:
        body = d.read(d.compact())
        return encode_compact(len(body)) + body

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        return _info(
            {"composite": {"fields": [field_info(None, reg.id_of(Bytes()), "Vec<u8>")]}},
            path=["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"],
        )


UNCHECKED_EXTRINSIC = OpaqueExtrinsic()
