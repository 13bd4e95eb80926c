"""The runtime APIs served through `state_call` (FRAME's `impl_runtime_apis!`), declared once.

Each method declares its SCALE inputs and output (`chain.frame.apis`); `call_runtime_api`
decodes a call's input and encodes its result with those types, metadata V15 describes the same
types, and `Core_version` advertises exactly the APIs listed in `RUNTIME_API_DECLS`. The
encodings follow FRAME's (`sp_api`, `sp_block_builder`, `sp_transaction_pool`,
`pallet_transaction_payment_rpc_runtime_api`, ...).

Every call runs on the post-state of the block it is made at, as in Substrate (where
`state_call` starts no block): `BlockBuilder_apply_extrinsic` applies the extrinsic to that
state as `system_dryRun` does; `BlockBuilder_finalize_block` has no block under construction to
finalize and fails, as FRAME's does (its timestamp was already taken); `Core_execute_block`
executes a child of that block and checks its roots; `Core_initialize_block` initializes one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from chain import ChainError
from chain.codec import CodecError, Decoder
from chain.frame.apis import ApiMethod, RuntimeApi
from chain.frame.code import RUNTIME_VERSION
from chain.frame.common import (
    ACCOUNT_ID,
    DISPATCH_CLASS,
    DISPATCH_RESULT,
    H256,
    UNCHECKED_EXTRINSIC,
    WEIGHT,
    DispatchInfo,
    Weight,
)
from chain.frame.pallet import DispatchError
from chain.frame.types import (
    BOOL,
    U8,
    U32,
    U64,
    U128,
    Bytes,
    Compact,
    Enum,
    FixedBytes,
    NewType,
    Option,
    ScaleType,
    Struct,
    Tuple,
    VariantDef,
    Vec,
    fields_of,
    unit_enum,
    unnamed,
)
from chain.frame.validity import InvalidTransaction
from chain.primitives import Block, Extrinsic, Header, encode_unsigned_extrinsic
from chain.storage.trie import Trie
from pallets.aura import pallet as aura
from pallets.executive import Executive, InvalidBlock, execute_block
from pallets.system import pallet as system
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment import pallet as transaction_payment

__all__ = [
    "METADATA_VERSIONS",
    "RUNTIME_API_DECLS",
    "RuntimeApiError",
    "call_runtime_api",
]

METADATA_VERSIONS = (14, 15)
TIMESTAMP_INHERENT = b"timstap0"  # sp_timestamp::INHERENT_IDENTIFIER
MAX_TIMESTAMP_DRIFT_MS = 30_000  # pallet_timestamp's check_inherent


class RuntimeApiError(ChainError):
    """A runtime API call that cannot be answered (the node reports an execution error)."""


# ---- types -----------------------------------------------------------------------------------


def _result(ok: ScaleType, ok_name: str, err: ScaleType, err_name: str) -> Enum:
    return Enum(
        "Result",
        [
            VariantDef(0, "Ok", unnamed((ok, ok_name)), named=False),
            VariantDef(1, "Err", unnamed((err, err_name)), named=False),
        ],
        params=[("T", ok), ("E", err)],
    )


class _HeaderType(ScaleType):
    """`sp_runtime::generic::header::Header<u32, BlakeTwo256>`; values are `Header`s."""

    type_name = "Header"

    def __init__(self) -> None:
        self.desc = Struct(
            "sp_runtime::generic::header::Header",
            fields_of(
                [
                    ("parent_hash", H256, "Hash::Output"),
                    ("number", Compact(U32), "Number"),
                    ("state_root", H256, "Hash::Output"),
                    ("extrinsics_root", H256, "Hash::Output"),
                    ("digest", system.DIGEST, "Digest"),
                ]
            ),
            params=[("Number", U32), ("Hash", Struct("sp_runtime::traits::BlakeTwo256", []))],
        )

    def encode(self, value: Header) -> bytes:
        return value.encode()

    def decode(self, d: Decoder) -> Header:
        return Header.decode_from(d)

    def scale_info(self, reg: Any) -> Any:
        return self.desc.scale_info(reg)


class _BlockType(ScaleType):
    """`sp_runtime::generic::block::Block<Header, UncheckedExtrinsic>`; values are `Block`s."""

    type_name = "Block"

    def __init__(self, header: _HeaderType) -> None:
        self.header = header
        self.desc = Struct(
            "sp_runtime::generic::block::Block",
            fields_of(
                [
                    ("header", header, "Header"),
                    ("extrinsics", Vec(UNCHECKED_EXTRINSIC), "Vec<Extrinsic>"),
                ]
            ),
            params=[("Header", header), ("Extrinsic", UNCHECKED_EXTRINSIC)],
        )

    def encode(self, value: Block) -> bytes:
        return value.encode()

    def decode(self, d: Decoder) -> Block:
        header = Header.decode_from(d)
        extrinsics = Vec(UNCHECKED_EXTRINSIC).decode(d)
        try:
            return Block(header, tuple(extrinsics))
        except ValueError as exc:
            raise CodecError(str(exc)) from exc

    def scale_info(self, reg: Any) -> Any:
        return self.desc.scale_info(reg)


class _BTreeMap(NewType):
    """`BTreeMap<K, V>` as scale-info describes it: a composite of `Vec<(K, V)>` with params K
    and V; values are lists of (key, value) pairs, in key order."""

    def __init__(self, key: ScaleType, value: ScaleType, key_name: str, value_name: str) -> None:
        super().__init__(
            "BTreeMap",
            Vec(Tuple(key, value)),
            f"Vec<({key_name}, {value_name})>",
            f"BTreeMap<{key_name}, {value_name}>",
        )
        self.key = key
        self.value = value

    def scale_info(self, reg: Any) -> Any:
        info = super().scale_info(reg)
        info["params"] = [
            {"name": "K", "type": reg.id_of(self.key)},
            {"name": "V", "type": reg.id_of(self.value)},
        ]
        return info


HEADER = _HeaderType()
BLOCK = _BlockType(HEADER)
UNIT = Tuple()
OPAQUE_METADATA = NewType("sp_core::OpaqueMetadata", Bytes(), "Vec<u8>")
INHERENT_DATA = Struct(
    "sp_inherents::InherentData",
    fields_of(
        [
            (
                "data",
                _BTreeMap(FixedBytes(8), Bytes(), "InherentIdentifier", "Vec<u8>"),
                "BTreeMap<InherentIdentifier, Vec<u8>>",
            )
        ]
    ),
)
CHECK_INHERENTS_RESULT = Struct(
    "sp_inherents::CheckInherentsResult",
    fields_of([("okay", BOOL, "bool"), ("fatal_error", BOOL, "bool"), ("errors", INHERENT_DATA)]),
)
TIMESTAMP_INHERENT_ERROR = unit_enum("sp_timestamp::InherentError", ["TooEarly", "TooFarInFuture"])

INVALID_TRANSACTION = Enum(
    "sp_runtime::transaction_validity::InvalidTransaction",
    [
        VariantDef(i, name, unnamed((U8, "u8")) if name == "Custom" else [], named=False)
        for i, name in enumerate(
            [
                "Call",
                "Payment",
                "Future",
                "Stale",
                "BadProof",
                "AncientBirthBlock",
                "ExhaustsResources",
                "Custom",
                "BadMandatory",
                "MandatoryValidation",
                "BadSigner",
                "IndeterminateImplicit",
                "UnknownOrigin",
            ]
        )
    ],
)
UNKNOWN_TRANSACTION = Enum(
    "sp_runtime::transaction_validity::UnknownTransaction",
    [
        VariantDef(0, "CannotLookup", []),
        VariantDef(1, "NoUnsignedValidator", []),
        VariantDef(2, "Custom", unnamed((U8, "u8")), named=False),
    ],
)
TRANSACTION_VALIDITY_ERROR = Enum(
    "sp_runtime::transaction_validity::TransactionValidityError",
    [
        VariantDef(0, "Invalid", unnamed((INVALID_TRANSACTION, "InvalidTransaction")), named=False),
        VariantDef(1, "Unknown", unnamed((UNKNOWN_TRANSACTION, "UnknownTransaction")), named=False),
    ],
)
TRANSACTION_SOURCE = unit_enum(
    "sp_runtime::transaction_validity::TransactionSource", ["InBlock", "Local", "External"]
)
VALID_TRANSACTION = Struct(
    "sp_runtime::transaction_validity::ValidTransaction",
    fields_of(
        [
            ("priority", U64, "TransactionPriority"),
            ("requires", Vec(Bytes()), "Vec<TransactionTag>"),
            ("provides", Vec(Bytes()), "Vec<TransactionTag>"),
            ("longevity", U64, "TransactionLongevity"),
            ("propagate", BOOL, "bool"),
        ]
    ),
)
TRANSACTION_VALIDITY = _result(
    VALID_TRANSACTION, "ValidTransaction", TRANSACTION_VALIDITY_ERROR, "TransactionValidityError"
)
APPLY_EXTRINSIC_RESULT = _result(
    DISPATCH_RESULT, "DispatchOutcome", TRANSACTION_VALIDITY_ERROR, "TransactionValidityError"
)
RUNTIME_DISPATCH_INFO = Struct(
    "pallet_transaction_payment::types::RuntimeDispatchInfo",
    fields_of(
        [("weight", WEIGHT, "Weight"), ("class", DISPATCH_CLASS), ("partial_fee", U128, "Balance")]
    ),
    params=[("Balance", U128), ("Weight", WEIGHT)],
)
INCLUSION_FEE = Struct(
    "pallet_transaction_payment::types::InclusionFee",
    fields_of(
        [
            ("base_fee", U128, "Balance"),
            ("len_fee", U128, "Balance"),
            ("adjusted_weight_fee", U128, "Balance"),
        ]
    ),
    params=[("Balance", U128)],
)
FEE_DETAILS = Struct(
    "pallet_transaction_payment::types::FeeDetails",
    fields_of(
        [
            ("inclusion_fee", Option(INCLUSION_FEE), "Option<InclusionFee<Balance>>"),
            ("tip", U128, "Balance"),
        ]
    ),
    params=[("Balance", U128)],
)
SLOT_DURATION = NewType("sp_consensus_slots::SlotDuration", U64, "u64")
AURA_ID = NewType(
    "sp_consensus_aura::sr25519::app_sr25519::Public",
    NewType("sp_core::sr25519::Public", FixedBytes(32), "[u8; 32]"),
    "sr25519::Public",
)


# ---- the calls -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    """Where a runtime API call runs: the post-state of block `at_hash`."""

    executive: Executive
    state: Trie
    at_hash: bytes


Handler = Callable[..., Any]


def _core_version(c: ApiContext) -> dict[str, object]:
    return c.executive.version_at(c.state).to_value()


def _core_execute_block(c: ApiContext, block: Block) -> tuple[()]:
    unsealed, _ = block.header.without_seal()
    if unsealed.parent_hash != c.at_hash:
        raise RuntimeApiError("the block is not a child of the block the call is made at")
    try:
        execute_block(c.executive, c.state, unsealed, block.extrinsics)
    except (InvalidBlock, InvalidTransaction) as exc:
        raise RuntimeApiError(f"invalid block: {exc}") from exc
    return ()


def _core_initialize_block(c: ApiContext, header: Header) -> tuple[()]:
    if header.parent_hash != c.at_hash or header.number != c.executive.block_number(c.state) + 1:
        raise RuntimeApiError("the header is not a child of the block the call is made at")
    try:
        c.executive.begin_block(c.state, header.parent_hash, header.number, header.digest)
    except InvalidBlock as exc:
        raise RuntimeApiError(f"cannot initialize the block: {exc}") from exc
    return ()


def _metadata(c: ApiContext) -> bytes:
    return c.executive.metadata_at(c.state)


def _metadata_at_version(c: ApiContext, version: int) -> bytes | None:
    if version not in METADATA_VERSIONS:
        return None
    return c.executive.metadata_at(c.state, at=version)


def _metadata_versions(c: ApiContext) -> list[int]:
    return list(METADATA_VERSIONS)


def _validity_error(exc: InvalidTransaction) -> tuple[str, Any]:
    kind = exc.kind
    if kind == "CannotLookup":
        return ("Unknown", "CannotLookup")
    if kind in ("BadFormat", "Custom"):  # an extrinsic FRAME could not decode: its call
        return ("Invalid", "Call")
    return ("Invalid", kind)


def _apply_extrinsic(c: ApiContext, extrinsic: bytes) -> tuple[str, Any]:
    """As `system_dryRun`: the extrinsic applied to the post-state of the block (its number, its
    state), nothing kept."""
    try:
        outcome = c.executive.dry_run(c.state, extrinsic)
    except InvalidTransaction as exc:
        return ("Err", _validity_error(exc))
    error: DispatchError | None = outcome.error
    return ("Ok", ("Ok", ()) if error is None else ("Err", error.to_value()))


def _finalize_block(c: ApiContext) -> Header:
    raise RuntimeApiError(
        "no block is being built: a state_call session starts none (FRAME's finalize_block fails "
        "here too); build blocks with the node"
    )


def _inherent_extrinsics(c: ApiContext, inherent: dict[str, Any]) -> list[bytes]:
    """The inherents a block with this inherent data carries: the timestamp, if given."""
    data = dict(inherent["data"])
    raw = data.get(TIMESTAMP_INHERENT)
    if raw is None:
        return []
    now = _moment(raw)
    rt = c.executive.runtime
    call = rt.call_type.encode(rt.call("Timestamp", "set", now=now))
    return [encode_unsigned_extrinsic(call)]


def _moment(raw: bytes) -> int:
    if len(raw) != 8:
        raise RuntimeApiError("the timestamp inherent data is not a u64")
    return int.from_bytes(raw, "little")


def _check_inherents(c: ApiContext, block: Block, data: dict[str, Any]) -> dict[str, Any]:
    """pallet_timestamp's `check_inherent` for the block's `Timestamp.set`, against this
    state (the block's parent): at least `MinimumPeriod` after the parent's time, at most 30 s
    after the inherent data's. A block without it is not okay."""
    rt = c.executive.runtime
    moment: int | None = None
    for raw in block.extrinsics:
        try:
            xt = Extrinsic.decode(raw)
            call = rt.decode_call(xt.call)
        except CodecError as exc:
            raise RuntimeApiError(f"cannot decode the block's extrinsic: {exc}") from exc
        if not xt.signed and call.name == "Timestamp.set":
            moment = int(call.args["now"])
    given = dict(data["data"]).get(TIMESTAMP_INHERENT)
    error: str | None = None
    if moment is None:
        return {"okay": False, "fatal_error": True, "errors": {"data": []}}
    minimum = timestamp.Now.get(c.state) + rt.config.timestamp.minimum_period_ms
    if given is not None and moment > _moment(given) + MAX_TIMESTAMP_DRIFT_MS:
        error = "TooFarInFuture"
    elif moment < minimum:
        error = "TooEarly"
    if error is None:
        return {"okay": True, "fatal_error": False, "errors": {"data": []}}
    encoded = TIMESTAMP_INHERENT_ERROR.encode(error)
    return {"okay": False, "fatal_error": True, "errors": {"data": [(TIMESTAMP_INHERENT, encoded)]}}


def _validate_transaction(
    c: ApiContext, source: str, tx: bytes, block_hash: bytes
) -> tuple[str, Any]:
    """The pool's validity of `tx` on top of this block (as in the block after it)."""
    del source  # local, external and in-block transactions are validated alike
    ex = c.executive
    try:
        valid, _ = ex.validate_transaction(c.state, block_hash, ex.block_number(c.state), tx)
    except InvalidTransaction as exc:
        return ("Err", _validity_error(exc))
    return (
        "Ok",
        {
            "priority": valid.priority,
            "requires": list(valid.requires),
            "provides": list(valid.provides),
            "longevity": valid.longevity,
            "propagate": True,
        },
    )


def _account_nonce(c: ApiContext, account: bytes) -> int:
    return c.executive.account_nonce(c.state, account)


def _decode_call(c: ApiContext, uxt: bytes) -> tuple[Extrinsic, Any]:
    try:
        xt = Extrinsic.decode(uxt)
        return xt, c.executive.runtime.decode_call(xt.call)
    except CodecError as exc:
        raise RuntimeApiError(f"cannot decode the extrinsic: {exc}") from exc


def _query_info(c: ApiContext, uxt: bytes, len: int) -> dict[str, Any]:
    xt, call = _decode_call(c, uxt)
    info: DispatchInfo = c.executive.dispatch_info(call)
    fee = c.executive.fee_details(c.state, len, call).inclusion_fee if xt.signed else 0
    return {"weight": info.weight, "class": info.class_, "partial_fee": fee}


def _query_fee_details(c: ApiContext, uxt: bytes, len: int) -> dict[str, Any]:
    xt, call = _decode_call(c, uxt)
    d = c.executive.fee_details(c.state, len, call)
    inclusion = (
        {"base_fee": d.base_fee, "len_fee": d.len_fee, "adjusted_weight_fee": d.adjusted_weight_fee}
        if xt.signed
        else None
    )
    return {"inclusion_fee": inclusion, "tip": xt.tip}


def _query_weight_to_fee(c: ApiContext, weight: Weight) -> int:
    return transaction_payment.weight_to_fee(c.executive.config.transaction_payment, weight)


def _query_length_to_fee(c: ApiContext, length: int) -> int:
    fee: int = c.executive.config.transaction_payment.byte_fee * length
    return fee


def _slot_duration(c: ApiContext) -> int:
    slot_ms: int = c.executive.config.aura.slot_duration_ms
    return slot_ms


def _authorities(c: ApiContext) -> list[bytes]:
    return list(aura.Authorities.get(c.state))


# ---- the declarations ------------------------------------------------------------------------


def _m(
    name: str, inputs: tuple[tuple[str, ScaleType], ...], output: ScaleType, doc: str
) -> ApiMethod:
    return ApiMethod(name, inputs, output, (doc,))


XT = ("extrinsic", UNCHECKED_EXTRINSIC)
RUNTIME_API_DECLS: tuple[tuple[RuntimeApi, Mapping[str, Handler]], ...] = (
    (
        RuntimeApi(
            "Core",
            4,
            (
                _m("version", (), RUNTIME_VERSION, "Returns the version of the runtime."),
                _m("execute_block", (("block", BLOCK),), UNIT, "Execute the given block."),
                _m(
                    "initialize_block",
                    (("header", HEADER),),
                    UNIT,
                    "Initialize a block with the given header.",
                ),
            ),
            ("The `Core` runtime api that every Substrate runtime needs to implement.",),
        ),
        {
            "version": _core_version,
            "execute_block": _core_execute_block,
            "initialize_block": _core_initialize_block,
        },
    ),
    (
        RuntimeApi(
            "Metadata",
            2,
            (
                _m("metadata", (), OPAQUE_METADATA, "Returns the metadata of a runtime."),
                _m(
                    "metadata_at_version",
                    (("version", U32),),
                    Option(OPAQUE_METADATA),
                    "Returns the metadata at a given version.",
                ),
                _m(
                    "metadata_versions",
                    (),
                    Vec(U32),
                    "Returns the supported metadata versions.",
                ),
            ),
            ("The `Metadata` api trait that returns metadata for the runtime.",),
        ),
        {
            "metadata": _metadata,
            "metadata_at_version": _metadata_at_version,
            "metadata_versions": _metadata_versions,
        },
    ),
    (
        RuntimeApi(
            "BlockBuilder",
            6,
            (
                _m(
                    "apply_extrinsic",
                    (XT,),
                    APPLY_EXTRINSIC_RESULT,
                    "Apply the given extrinsic (here: to the block's post-state, as a dry run).",
                ),
                _m("finalize_block", (), HEADER, "Finish the current block."),
                _m(
                    "inherent_extrinsics",
                    (("inherent", INHERENT_DATA),),
                    Vec(UNCHECKED_EXTRINSIC),
                    "Generate inherent extrinsics.",
                ),
                _m(
                    "check_inherents",
                    (("block", BLOCK), ("data", INHERENT_DATA)),
                    CHECK_INHERENTS_RESULT,
                    "Check that the inherents are valid.",
                ),
            ),
            (
                "The `BlockBuilder` api trait that provides the required functionality for "
                "building a block.",
            ),
        ),
        {
            "apply_extrinsic": _apply_extrinsic,
            "finalize_block": _finalize_block,
            "inherent_extrinsics": _inherent_extrinsics,
            "check_inherents": _check_inherents,
        },
    ),
    (
        RuntimeApi(
            "TaggedTransactionQueue",
            3,
            (
                _m(
                    "validate_transaction",
                    (
                        ("source", TRANSACTION_SOURCE),
                        ("tx", UNCHECKED_EXTRINSIC),
                        ("block_hash", H256),
                    ),
                    TRANSACTION_VALIDITY,
                    "Validate the transaction.",
                ),
            ),
            ("The `TaggedTransactionQueue` api trait for interfering with the transaction queue.",),
        ),
        {"validate_transaction": _validate_transaction},
    ),
    (
        RuntimeApi(
            "AccountNonceApi",
            1,
            (
                _m(
                    "account_nonce",
                    (("account", ACCOUNT_ID),),
                    U32,
                    "Get current account nonce of given `AccountId`.",
                ),
            ),
            ("The API to query account nonce.",),
        ),
        {"account_nonce": _account_nonce},
    ),
    (
        RuntimeApi(
            "TransactionPaymentApi",
            4,
            (
                _m(
                    "query_info",
                    (("uxt", UNCHECKED_EXTRINSIC), ("len", U32)),
                    RUNTIME_DISPATCH_INFO,
                    "The dispatch info and partial fee of an extrinsic of `len` bytes.",
                ),
                _m(
                    "query_fee_details",
                    (("uxt", UNCHECKED_EXTRINSIC), ("len", U32)),
                    FEE_DETAILS,
                    "The fee of an extrinsic of `len` bytes, in its parts.",
                ),
                _m(
                    "query_weight_to_fee",
                    (("weight", WEIGHT),),
                    U128,
                    "The fee of a weight (without the fee multiplier).",
                ),
                _m(
                    "query_length_to_fee",
                    (("length", U32),),
                    U128,
                    "The fee of a length in bytes.",
                ),
            ),
        ),
        {
            "query_info": _query_info,
            "query_fee_details": _query_fee_details,
            "query_weight_to_fee": _query_weight_to_fee,
            "query_length_to_fee": _query_length_to_fee,
        },
    ),
    (
        RuntimeApi(
            "AuraApi",
            1,
            (
                _m("slot_duration", (), SLOT_DURATION, "Returns the slot duration for Aura."),
                _m(
                    "authorities",
                    (),
                    Vec(AURA_ID),
                    "Return the current set of authorities.",
                ),
            ),
            ("API necessary for block authorship with aura.",),
        ),
        {"slot_duration": _slot_duration, "authorities": _authorities},
    ),
)


def call_runtime_api(
    executive: Executive, state: Trie, at_hash: bytes, method: str, data: bytes
) -> bytes:
    """Run `<Api>_<method>` on the post-state of block `at_hash`; returns its SCALE output.
    Raises RuntimeApiError (unknown method, or a call that cannot be answered) and CodecError
    (input that does not decode, or has bytes left over)."""
    api_name, _, method_name = method.partition("_")
    for api, handlers in RUNTIME_API_DECLS:
        if api.name != api_name:
            continue
        m = api.method(method_name)
        if m is None:
            break
        d = Decoder(data)
        args = {name: ty.decode(d) for name, ty in m.inputs}
        d.finish()
        value = handlers[m.name](ApiContext(executive, state, at_hash), **args)
        return m.output.encode(value)
    raise RuntimeApiError(f"Exported method {method} is not found")
