"""System: accounts (nonce, reference counts, balances data), block hashes, events, digest,
the block's weight, and the runtime's identity (`:code`, `set_code`).

Invariant: an account record exists iff it has a provider or a non-zero nonce.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated, Any, TypeAlias

from chain.codec import CodecError, encode_compact
from chain.frame.code import CODE_KEY, RUNTIME_VERSION, RuntimeCode
from chain.frame.limits import (
    BLOCK_LENGTH,
    BLOCK_WEIGHTS,
    CONSUMED_WEIGHT,
    DB_WEIGHT,
    NO_WEIGHT,
    BlockLength,
    BlockWeights,
    ConsumedWeight,
    PerDispatchClass,
    RuntimeDbWeight,
    WeightsPerClass,
)
from chain.frame.prelude import *
from chain.hashing import blake2_256
from pallets import weights
from pallets.config import Ctx, RuntimeConfig, SystemConfig

SPEC = PalletSpec("System", 0, module="frame_system")

Config = SystemConfig


def block_weights(config: RuntimeConfig) -> BlockWeights:
    """The weight limits the executive enforces (FRAME's `BlockWeights`): Normal and
    Operational extrinsics share `max_block_weight`, each extrinsic counting its weight plus
    `ExtrinsicBaseWeight`; Mandatory ones (inherents) are not limited. Neither the hooks nor
    the block's own overhead are weighed (`base_block` is zero, docs/runtime.md)."""
    base = config.transaction_payment.extrinsic_base_weight
    max_block = config.max_block_weight
    max_extrinsic = Weight(
        max(max_block.ref_time - base.ref_time, 0), max(max_block.proof_size - base.proof_size, 0)
    )
    limited = WeightsPerClass(base, max_extrinsic, max_block, Weight())
    mandatory = WeightsPerClass(base, None, None, None)
    return BlockWeights(Weight(), max_block, PerDispatchClass(limited, limited, mandatory))


def block_length(config: RuntimeConfig) -> BlockLength:
    """The most bytes of extrinsics a block holds, the same for every class."""
    n = config.max_block_length
    return BlockLength(PerDispatchClass(n, n, n))


SPEC.constant(
    "BlockWeights",
    BLOCK_WEIGHTS,
    block_weights,
    "Block & extrinsics weights: base values and limits.",
)
SPEC.constant(
    "BlockLength", BLOCK_LENGTH, block_length, "The maximum length of a block (in bytes)."
)
SPEC.constant(
    "BlockHashCount",
    BLOCK_NUMBER,
    lambda c: c.system.block_hash_count,
    "Maximum number of block number to block hash mappings to keep (oldest pruned first).",
)
SPEC.constant(
    "DbWeight",
    DB_WEIGHT,
    lambda c: RuntimeDbWeight(weights.db_read().ref_time, weights.db_write().ref_time),
    "The weight of runtime database operations the runtime can invoke.",
)
SPEC.constant(
    "Version",
    RUNTIME_VERSION,
    lambda runtime: runtime.version.to_value(),
    "Get the chain's in-code version.",
    of_runtime=True,
)
SPEC.constant(
    "SS58Prefix", U16, lambda c: c.system.ss58_prefix, "The designated SS58 prefix of this chain."
)

# ---- types -----------------------------------------------------------------------------------

FLAGS_NEW_LOGIC = 1 << 127  # pallet_balances::ExtraFlags: the "new logic" bit FRAME sets
EXTRA_FLAGS = NewType("pallet_balances::types::ExtraFlags", U128, "u128")
RefCount: TypeAlias = Annotated[int, U32, "RefCount"]


@struct("pallet_balances::types::AccountData", params=[("Balance", U128)])
class AccountData:
    free: Balance = 0
    reserved: Balance = 0
    frozen: Balance = 0
    flags: Annotated[int, EXTRA_FLAGS, "ExtraFlags"] = FLAGS_NEW_LOGIC


ACCOUNT_DATA = scale_of(AccountData)


@struct(
    "frame_system::AccountInfo",
    params=[("Nonce", U32), ("AccountData", ACCOUNT_DATA)],
    cache_size=65_536,  # read several times per transaction; values are immutable
)
class AccountInfo:
    nonce: Annotated[int, U32, "Nonce"] = 0
    consumers: RefCount = 0
    providers: RefCount = 0
    sufficients: RefCount = 0
    data: Annotated[AccountData, ACCOUNT_DATA, "AccountData"] = AccountData()


ACCOUNT_INFO = scale_of(AccountInfo)
RUNTIME_EVENT = Lazy("RuntimeEvent")  # bound by the runtime assembly


@struct("frame_system::EventRecord", params=[("E", RUNTIME_EVENT), ("T", H256)])
class EventRecord:
    phase: Annotated[tuple[str, int | None], PHASE, "Phase"]
    event: Annotated[Any, RUNTIME_EVENT, "E"]
    topics: Annotated[list[bytes], Vec(H256), "Vec<T>"] = dataclasses.field(default_factory=list)


EVENT_RECORD = scale_of(EventRecord)
DIGEST = Struct(
    "sp_runtime::generic::digest::Digest",
    fields_of([("logs", Vec(DIGEST_ITEM), "Vec<DigestItem>")]),
)

# ---- storage ---------------------------------------------------------------------------------

Account: StorageMap[AccountId, AccountInfo] = StorageMap(
    SPEC,
    "Account",
    ACCOUNT_ID,
    ACCOUNT_INFO,
    default=AccountInfo(),
    docs="The full account information for a particular account ID.",
)
Number: StorageValue[int] = StorageValue(
    SPEC, "Number", BLOCK_NUMBER, default=0, docs="The current block number being processed."
)
ParentHash: StorageValue[bytes] = StorageValue(
    SPEC, "ParentHash", H256, default=bytes(32), docs="Hash of the previous block."
)
BlockHash: StorageMap[int, bytes] = StorageMap(
    SPEC,
    "BlockHash",
    BLOCK_NUMBER,
    H256,
    hasher="Twox64Concat",
    default=bytes(32),
    docs="Map of block numbers to block hashes.",
)
ExtrinsicCount: StorageValue[int] = StorageValue(
    SPEC, "ExtrinsicCount", U32, docs="Total extrinsics count for the current block."
)
BlockWeight: StorageValue[ConsumedWeight] = StorageValue(
    SPEC,
    "BlockWeight",
    CONSUMED_WEIGHT,
    default=NO_WEIGHT,
    docs="The current weight for the block.",
)
Digest: StorageValue[dict[str, list[object]]] = StorageValue(
    SPEC, "Digest", DIGEST, default={"logs": []}, docs="Digest of the current block."
)
Events: StorageValue[list[EventRecord]] = StorageValue(
    SPEC, "Events", Vec(EVENT_RECORD), default=[], docs="Events deposited for the current block."
)
EventCount: StorageValue[int] = StorageValue(
    SPEC, "EventCount", U32, default=0, docs="The number of events in the `Events<T>` list."
)

# ---- events ----------------------------------------------------------------------------------


DispatchInfoField: TypeAlias = Annotated[DispatchInfo, DISPATCH_INFO, "DispatchInfo"]


@event(SPEC, 0)
class ExtrinsicSuccess:
    """An extrinsic completed successfully."""

    dispatch_info: DispatchInfoField


@event(SPEC, 1)
class ExtrinsicFailed:
    """An extrinsic failed."""

    dispatch_error: Annotated[tuple[str, object], DISPATCH_ERROR, "DispatchError"]
    dispatch_info: DispatchInfoField


@event(SPEC, 2)
class CodeUpdated:
    """`:code` was updated."""


@event(SPEC, 3)
class NewAccount:
    """A new account was created."""

    account: T.AccountId


@event(SPEC, 4)
class KilledAccount:
    """An account was reaped."""

    account: T.AccountId


@event(SPEC, 5)
class Remarked:
    """On on-chain remark happened."""

    sender: T.AccountId
    hash: T.Hash


# ---- errors ----------------------------------------------------------------------------------


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    INVALID_SPEC_NAME = 0
    SPEC_VERSION_NEEDS_TO_INCREASE = 1
    FAILED_TO_EXTRACT_RUNTIME_VERSION = 2
    NON_DEFAULT_COMPOSITE = 3
    NON_ZERO_REF_COUNT = 4
    CALL_FILTERED = 5
    UNSUPPORTED_CODE = (
        6,
        "The code is not the running runtime's: only its own code (same code hash, APIs, "
        "implementation name and state version) can be set, at a higher spec version.",
    )


# ---- calls -----------------------------------------------------------------------------------


@call(SPEC, 0, weight=weights.system_remark())
def remark(ctx: Ctx, remark: Annotated[bytes, Bytes(), "Vec<u8>"]) -> None:
    """Make some on-chain remark. Can be executed by every origin."""
    del remark


@call(SPEC, 7, weight=lambda a: weights.system_remark_with_event(len(a["remark"])))
def remark_with_event(ctx: Ctx, remark: Annotated[bytes, Bytes(), "Vec<u8>"]) -> None:
    """Make some on-chain remark and emit an event."""
    who = ctx.ensure_signed()
    ctx.emit(Remarked(who, blake2_256(remark)))


@call(SPEC, 2, weight=weights.system_set_code(), dispatch_class="Operational")
def set_code(ctx: Ctx, code: Annotated[bytes, Bytes(), "Vec<u8>"]) -> None:
    """Set the new runtime code.

    The runtime is Python code that ships with the node, and `:code` holds a descriptor of it
    (docs/runtime.md): the only code that can be set is the running runtime's own, at a higher
    spec version (a new version of the same code, which invalidates transactions signed for
    the old one). The block carries a `RuntimeEnvironmentUpdated` digest item, and the new
    version applies from the next block. Root only.

    Errors: FailedToExtractRuntimeVersion, InvalidSpecName, SpecVersionNeedsToIncrease,
    UnsupportedCode. Emits: CodeUpdated.
    """
    ctx.ensure_root()
    current_raw = ctx.state.get(CODE_KEY)
    try:
        new = RuntimeCode.decode(code)
        current = RuntimeCode.decode(current_raw if current_raw is not None else b"")
    except CodecError as exc:
        raise ModuleError(Error.FAILED_TO_EXTRACT_RUNTIME_VERSION) from exc
    ensure(new.spec_name == current.spec_name, Error.INVALID_SPEC_NAME)
    ensure(new.spec_version > current.spec_version, Error.SPEC_VERSION_NEEDS_TO_INCREASE)
    ensure(new.is_same_code(current), Error.UNSUPPORTED_CODE)
    update_code(ctx, code)


def update_code(ctx: Ctx, code: bytes) -> None:
    """FRAME's `update_code_in_storage`: write `:code`, put `RuntimeEnvironmentUpdated` in the
    block's digest, emit CodeUpdated."""
    ctx.state.put(CODE_KEY, code)
    deposit_log(ctx.state, "RuntimeEnvironmentUpdated")
    ctx.emit(CodeUpdated())


def deposit_log(state: State, item: object) -> None:
    """Append a digest item (a `DIGEST_ITEM` value) to the block's digest: the executive puts
    the items deposited during the block into its header, after the pre-runtime ones."""
    logs = list(Digest.get(state)["logs"])
    logs.append(item)
    Digest.put(state, {"logs": logs})


# ---- account helpers used by other pallets ----------------------------------------------------


def encode_event_records(
    phase: tuple[str, int | None], events: Sequence[Any], encoded: Sequence[bytes] = ()
) -> list[bytes]:
    """`EVENT_RECORD.encode(EventRecord(phase, event, []))` of each event, then of each event
    already encoded (`RUNTIME_EVENT.encode` bytes) in `encoded`: the phase, the `RuntimeEvent`,
    no topics (the phase is encoded once for them all)."""
    head = PHASE.encode(phase)
    encode = RUNTIME_EVENT.encode
    records = [head + encode(event) + b"\x00" for event in events]
    for event in encoded:
        records.append(head + event + b"\x00")
    return records


def put_events(state: State, records: Sequence[bytes]) -> None:
    """Write the block's events, each an `EventRecord` encoded when it was deposited: the
    `Vec` is their concatenation after its length, so no record is encoded twice; and
    `EventCount`."""
    state.put(Events.key, encode_compact(len(records)) + b"".join(records))
    EventCount.put(state, len(records))


def get_account(state: ReadState, who: bytes) -> AccountInfo:
    return Account.get(state, AccountId(who))


def put_account(
    ctx: Ctx, who: bytes, info: AccountInfo, *, stored: AccountInfo | None = None
) -> None:
    """Write an account. It comes alive when its first provider (or sufficient) arrives
    (NewAccount) and is reaped, nonce included, when the last one leaves (KilledAccount), as in
    FRAME. A record with no provider may exist only for its nonce (a feeless first call).
    `stored`: the account as the state holds it, when the caller has it (read otherwise)."""
    key = Account.key_for(AccountId(who))
    # the default AccountInfo() when absent
    old = Account.get_at(ctx.state, key) if stored is None else stored
    was_alive = old.providers > 0 or old.sufficients > 0
    is_alive = info.providers > 0 or info.sufficients > 0
    if was_alive and not is_alive:
        ctx.state.delete(key)
        ctx.emit(KilledAccount(who))
        return
    if not is_alive and info.nonce == 0:
        if Account.contains(ctx.state, AccountId(who)):
            ctx.state.delete(key)
        return
    if is_alive and not was_alive:
        ctx.emit(NewAccount(who))
    Account.put_at(ctx.state, key, info)


def with_nonce(info: AccountInfo, nonce: int) -> AccountInfo:
    return AccountInfo(nonce, info.consumers, info.providers, info.sufficients, info.data)


def inc_nonce(state: State, who: bytes) -> None:
    info = Account.get(state, AccountId(who))
    Account.put(state, AccountId(who), with_nonce(info, info.nonce + 1))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: an account record exists iff it has a provider, a sufficient or a nonce; a
    funded account has exactly its balance provider and at least the existential deposit;
    EventCount counts Events."""
    ed = config.balances.existential_deposit
    for who, info in Account.iter(state):
        if info.providers == 0 and info.sufficients == 0 and info.nonce == 0:
            raise AssertionError(f"account {who.hex()} has neither a provider nor a nonce")
        funded = info.data.free > 0 or info.data.reserved > 0
        if info.providers != int(funded):
            raise AssertionError(
                f"account {who.hex()}: {info.providers} providers, funded={funded}"
            )
        if info.data.free != 0 and info.data.free + info.data.reserved < ed:
            raise AssertionError(f"account {who.hex()} holds less than the existential deposit")
    if EventCount.get(state) != len(Events.get(state)):
        raise AssertionError("EventCount does not count Events")
