"""System: accounts (nonce, reference counts, balances data), block hashes, events, digest.

Invariant: an account record exists iff it has a provider or a non-zero nonce.
"""

from __future__ import annotations

import dataclasses
import enum

from chain.frame.common import (
    ACCOUNT_ID,
    BLOCK_NUMBER,
    DIGEST_ITEM,
    DISPATCH_ERROR,
    DISPATCH_INFO,
    H256,
    PHASE,
    AccountId,
    DispatchInfo,
    Weight,
)
from chain.frame.pallet import (
    Ctx,
    PalletSpec,
    ReadState,
    State,
    StorageMap,
    StorageValue,
)
from chain.frame.types import U16, U32, U128, Bytes, Lazy, NewType, Struct, Vec, fields_of
from chain.hashing import blake2_256

SPEC = PalletSpec("System", 0, module="frame_system")

# ---- config ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    block_hash_count: int = 2400  # how many recent block hashes are kept (mortal eras)
    ss58_prefix: int = 42


SPEC.constant(
    "BlockHashCount",
    BLOCK_NUMBER,
    lambda c: c.system.block_hash_count,
    "Maximum number of block number to block hash mappings to keep (oldest pruned first).",
)
SPEC.constant(
    "SS58Prefix", U16, lambda c: c.system.ss58_prefix, "The designated SS58 prefix of this chain."
)

# ---- types -----------------------------------------------------------------------------------

FLAGS_NEW_LOGIC = 1 << 127  # pallet_balances::ExtraFlags: the "new logic" bit FRAME sets


@dataclasses.dataclass(frozen=True, slots=True)
class AccountData:
    free: int = 0
    reserved: int = 0
    frozen: int = 0
    flags: int = FLAGS_NEW_LOGIC


@dataclasses.dataclass(frozen=True, slots=True)
class AccountInfo:
    nonce: int = 0
    consumers: int = 0
    providers: int = 0
    sufficients: int = 0
    data: AccountData = AccountData()


EXTRA_FLAGS = NewType("pallet_balances::types::ExtraFlags", U128, "u128")
ACCOUNT_DATA = Struct(
    "pallet_balances::types::AccountData",
    fields_of(
        [
            ("free", U128, "Balance"),
            ("reserved", U128, "Balance"),
            ("frozen", U128, "Balance"),
            ("flags", EXTRA_FLAGS, "ExtraFlags"),
        ]
    ),
    AccountData,
    params=[("Balance", U128)],
)
ACCOUNT_INFO = Struct(
    "frame_system::AccountInfo",
    fields_of(
        [
            ("nonce", U32, "Nonce"),
            ("consumers", U32, "RefCount"),
            ("providers", U32, "RefCount"),
            ("sufficients", U32, "RefCount"),
            ("data", ACCOUNT_DATA, "AccountData"),
        ]
    ),
    AccountInfo,
    params=[("Nonce", U32), ("AccountData", ACCOUNT_DATA)],
    cache_size=65_536,  # read several times per transaction; values are immutable
)

RUNTIME_EVENT = Lazy("RuntimeEvent")  # bound by the runtime assembly


@dataclasses.dataclass(frozen=True, slots=True)
class EventRecord:
    phase: tuple[str, int | None]
    event: object
    topics: list[bytes] = dataclasses.field(default_factory=list)


EVENT_RECORD = Struct(
    "frame_system::EventRecord",
    fields_of(
        [("phase", PHASE, "Phase"), ("event", RUNTIME_EVENT, "E"), ("topics", Vec(H256), "Vec<T>")]
    ),
    EventRecord,
    params=[("E", RUNTIME_EVENT), ("T", H256)],
)
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


@SPEC.event(0, [("dispatch_info", DISPATCH_INFO, "DispatchInfo")])
@dataclasses.dataclass(frozen=True, slots=True)
class ExtrinsicSuccess:
    """An extrinsic completed successfully."""

    dispatch_info: DispatchInfo


@SPEC.event(
    1,
    [
        ("dispatch_error", DISPATCH_ERROR, "DispatchError"),
        ("dispatch_info", DISPATCH_INFO, "DispatchInfo"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class ExtrinsicFailed:
    """An extrinsic failed."""

    dispatch_error: tuple[str, object]
    dispatch_info: DispatchInfo


@SPEC.event(3, [("account", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class NewAccount:
    """A new account was created."""

    account: bytes


@SPEC.event(4, [("account", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class KilledAccount:
    """An account was reaped."""

    account: bytes


@SPEC.event(5, [("sender", ACCOUNT_ID, "T::AccountId"), ("hash", H256, "T::Hash")])
@dataclasses.dataclass(frozen=True, slots=True)
class Remarked:
    """On on-chain remark happened."""

    sender: bytes
    hash: bytes


# ---- errors ----------------------------------------------------------------------------------


@SPEC.errors
class Error(enum.IntEnum):  # consensus-visible: append only
    INVALID_SPEC_NAME = 0
    SPEC_VERSION_NEEDS_TO_INCREASE = 1
    FAILED_TO_EXTRACT_RUNTIME_VERSION = 2
    NON_DEFAULT_COMPOSITE = 3
    NON_ZERO_REF_COUNT = 4
    CALL_FILTERED = 5


# ---- calls -----------------------------------------------------------------------------------

REMARK_BASE = Weight(1_500_000, 0)


@SPEC.call(0, weight=REMARK_BASE, args=[("remark", Bytes(), "Vec<u8>")])
def remark(ctx: Ctx, remark: bytes) -> None:
    """Make some on-chain remark. Can be executed by every origin."""
    del remark


@SPEC.call(7, weight=Weight(8_000_000, 0), args=[("remark", Bytes(), "Vec<u8>")])
def remark_with_event(ctx: Ctx, remark: bytes) -> None:
    """Make some on-chain remark and emit an event."""
    who = ctx.ensure_signed()
    ctx.emit(Remarked(who, blake2_256(remark)))


# ---- account helpers used by other pallets ----------------------------------------------------


def get_account(state: ReadState, who: bytes) -> AccountInfo:
    return Account.get(state, AccountId(who))


def put_account(ctx: Ctx, who: bytes, info: AccountInfo) -> None:
    """Write an account. It comes alive when its first provider (or sufficient) arrives
    (NewAccount) and is reaped, nonce included, when the last one leaves (KilledAccount), as in
    FRAME. A record with no provider may exist only for its nonce (a feeless first call)."""
    key = Account.key_for(AccountId(who))
    raw = ctx.state.get(key)
    old = ACCOUNT_INFO.decode_all(raw) if raw is not None else AccountInfo()
    was_alive = old.providers > 0 or old.sufficients > 0
    is_alive = info.providers > 0 or info.sufficients > 0
    if was_alive and not is_alive:
        ctx.state.delete(key)
        ctx.emit(KilledAccount(who))
        return
    if not is_alive and info.nonce == 0:
        if raw is not None:
            ctx.state.delete(key)
        return
    if is_alive and not was_alive:
        ctx.emit(NewAccount(who))
    ctx.state.put(key, ACCOUNT_INFO.encode(info))


def inc_nonce(state: State, who: bytes) -> None:
    info = Account.get(state, AccountId(who))
    Account.put(
        state,
        AccountId(who),
        AccountInfo(info.nonce + 1, info.consumers, info.providers, info.sufficients, info.data),
    )
