"""Registry: miners and coordinators, each a staker with an operational (hot) address.

`register_miner` needs the caller's own free-to-allocate bonded stake >= MinMinerStake,
`register_coordinator` >= MinCoordinatorStake and a public endpoint URL. An operator address
belongs to one registration only, and the staker's funds stay with the (cold) staker account.

`Miners` and `Coordinators` carry everything a client needs to choose by weight in one
`query_map`: operator, info, commission, own stake, votes and status. A registration is
`Active` while its own stake is at least its minimum; it drops to `Inactive` at once when the
stake falls (unbond, slash), back to `Active` when it recovers, and is `Suspended` by a slash
(deregister and register again to come back).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from chain.frame.common import (
    ACCOUNT_ID,
    BALANCE,
    BLOCK_NUMBER,
    PERBILL,
    PERBILL_ONE,
    AccountId,
    Weight,
)
from chain.frame.pallet import Ctx, ModuleError, PalletSpec, ReadState, StorageMap, ensure
from chain.frame.types import U32, Bytes, Struct, fields_of, unit_enum
from pallets.staking import pallet as staking

SPEC = PalletSpec("Registry", 11, module="pallet_cuckoo_registry")

MAX_NAME = 64
MAX_DESCRIPTION = 512
MAX_URL = 256
MAX_GPU = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    min_miner_stake: int
    min_coordinator_stake: int


SPEC.constant(
    "MinMinerStake", BALANCE, lambda c: c.registry.min_miner_stake, "Own stake a miner needs."
)
SPEC.constant(
    "MinCoordinatorStake",
    BALANCE,
    lambda c: c.registry.min_coordinator_stake,
    "Own stake a coordinator needs.",
)
SPEC.constant("MaxNameLen", U32, lambda c: MAX_NAME, "Bytes of a registration's name.")
SPEC.constant(
    "MaxDescriptionLen", U32, lambda c: MAX_DESCRIPTION, "Bytes of a registration's description."
)
SPEC.constant("MaxUrlLen", U32, lambda c: MAX_URL, "Bytes of a registration's URL.")
SPEC.constant("MaxGpuModelLen", U32, lambda c: MAX_GPU, "Bytes of a miner's GPU model.")


@dataclasses.dataclass(frozen=True, slots=True)
class Info:
    name: bytes = b""
    description: bytes = b""
    url: bytes = b""
    gpu_model: bytes = b""


INFO = Struct(
    "pallet_cuckoo_registry::Info",
    fields_of(
        [
            ("name", Bytes(), "BoundedVec<u8, MaxNameLen>"),
            ("description", Bytes(), "BoundedVec<u8, MaxDescriptionLen>"),
            ("url", Bytes(), "BoundedVec<u8, MaxUrlLen>"),
            ("gpu_model", Bytes(), "BoundedVec<u8, MaxGpuModelLen>"),
        ]
    ),
    Info,
)
STATUS = unit_enum("pallet_cuckoo_registry::Status", ["Active", "Inactive", "Suspended"])


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    operator: bytes
    info: Info
    commission: int  # Perbill
    own_stake: int  # the staker's free-to-allocate bonded stake
    votes: int  # stake voted for this registration by others
    status: str  # Active | Inactive | Suspended
    registered_at: int

    @property
    def weight(self) -> int:
        return self.own_stake + self.votes


REGISTRATION = Struct(
    "pallet_cuckoo_registry::Registration",
    fields_of(
        [
            ("operator", ACCOUNT_ID, "AccountId"),
            ("info", INFO, "Info"),
            ("commission", PERBILL, "Perbill"),
            ("own_stake", BALANCE, "Balance"),
            ("votes", BALANCE, "Balance"),
            ("status", STATUS, "Status"),
            ("registered_at", BLOCK_NUMBER, "BlockNumber"),
        ]
    ),
    Registration,
)
ROLE = unit_enum("pallet_cuckoo_registry::Role", ["Miner", "Coordinator"])


@dataclasses.dataclass(frozen=True, slots=True)
class Operator:
    role: str
    staker: bytes


OPERATOR = Struct(
    "pallet_cuckoo_registry::OperatorRecord",
    fields_of([("role", ROLE, "Role"), ("staker", ACCOUNT_ID, "AccountId")]),
    Operator,
)

Miners: StorageMap[bytes, Registration] = StorageMap(
    SPEC, "Miners", ACCOUNT_ID, REGISTRATION, docs="Registered miners by staker account."
)
Coordinators: StorageMap[bytes, Registration] = StorageMap(
    SPEC,
    "Coordinators",
    ACCOUNT_ID,
    REGISTRATION,
    docs="Registered coordinators by staker account.",
)
OperatorOf: StorageMap[bytes, Operator] = StorageMap(
    SPEC, "OperatorOf", ACCOUNT_ID, OPERATOR, docs="The registration each operator address serves."
)


# ---- events --------------------------------------------------------------------------------------


@SPEC.event(0, [("staker", ACCOUNT_ID, "T::AccountId"), ("operator", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class MinerRegistered:
    """A staker registered as a miner with this operator address."""

    staker: bytes
    operator: bytes


@SPEC.event(1, [("staker", ACCOUNT_ID, "T::AccountId"), ("operator", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class CoordinatorRegistered:
    """A staker registered as a coordinator with this operator address."""

    staker: bytes
    operator: bytes


@SPEC.event(2, [("staker", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class InfoUpdated:
    """A registration's info changed."""

    staker: bytes


@SPEC.event(
    3,
    [
        ("staker", ACCOUNT_ID, "T::AccountId"),
        ("old", ACCOUNT_ID, "T::AccountId"),
        ("new", ACCOUNT_ID, "T::AccountId"),
    ],
)
@dataclasses.dataclass(frozen=True, slots=True)
class OperatorChanged:
    """A registration rotated its operator key."""

    staker: bytes
    old: bytes
    new: bytes


@SPEC.event(4, [("staker", ACCOUNT_ID, "T::AccountId"), ("commission", PERBILL, "Perbill")])
@dataclasses.dataclass(frozen=True, slots=True)
class CommissionSet:
    """A registration set its commission on rewards before voters' shares."""

    staker: bytes
    commission: int


@SPEC.event(5, [("staker", ACCOUNT_ID, "T::AccountId")])
@dataclasses.dataclass(frozen=True, slots=True)
class Deregistered:
    """A registration was removed; votes on it stay until voters unvote."""

    staker: bytes


@SPEC.event(6, [("staker", ACCOUNT_ID, "T::AccountId"), ("status", STATUS, "Status")])
@dataclasses.dataclass(frozen=True, slots=True)
class StatusChanged:
    """A registration became Active, Inactive (own stake under the minimum) or Suspended."""

    staker: bytes
    status: str


@SPEC.errors
class Error(enum.IntEnum):  # consensus-visible: append only
    NOT_BONDED = 0
    INSUFFICIENT_STAKE = 1
    ALREADY_REGISTERED = 2
    OPERATOR_IN_USE = 3
    NOT_REGISTERED = 4
    INFO_TOO_LONG = 5
    MISSING_ENDPOINT = 6
    COMMISSION_TOO_HIGH = 7
    OPERATOR_IS_STAKER = 8


SPEC.error_docs = {
    "NOT_BONDED": "The caller has no staking ledger: bond first.",
    "INSUFFICIENT_STAKE": "The caller's free-to-allocate bonded stake is under the role's minimum.",
    "ALREADY_REGISTERED": "The caller already has a registration.",
    "OPERATOR_IN_USE": "The operator address already serves a registration.",
    "NOT_REGISTERED": "The caller has no registration.",
    "INFO_TOO_LONG": "A field of the info is over its byte limit.",
    "MISSING_ENDPOINT": "A coordinator needs an http(s) endpoint URL.",
    "COMMISSION_TOO_HIGH": "Commission is a Perbill: at most 1,000,000,000 (100%).",
    "OPERATOR_IS_STAKER": "The operator must be a different (hot) key than the staker.",
}


# ---- helpers -------------------------------------------------------------------------------------


def _map_of(
    state: ReadState, who: bytes
) -> tuple[StorageMap[bytes, Registration] | None, Registration | None]:
    for m in (Miners, Coordinators):
        reg = m.get(state, AccountId(who))
        if reg is not None:
            return m, reg
    return None, None


def get_registration(state: ReadState, who: bytes) -> tuple[str, Registration] | None:
    m, reg = _map_of(state, who)
    if m is None or reg is None:
        return None
    return ("Miner" if m is Miners else "Coordinator", reg)


def min_stake(config: object, role: str) -> int:
    cfg: Config = config.registry  # type: ignore[attr-defined]
    return cfg.min_miner_stake if role == "Miner" else cfg.min_coordinator_stake


def required_own_stake(ctx: Ctx, who: bytes) -> int:
    """Stake `who` must keep unallocated for its own registration (0 when not registered)."""
    found = get_registration(ctx.state, who)
    return min_stake(ctx.config, found[0]) if found is not None else 0


def is_active(state: ReadState, who: bytes) -> bool:
    found = get_registration(state, who)
    return found is not None and found[1].status == "Active"


def _put(ctx: Ctx, m: StorageMap[bytes, Registration], who: bytes, reg: Registration) -> None:
    role = "Miner" if m is Miners else "Coordinator"
    own = staking.free_to_allocate(ctx.state, who)
    status = reg.status
    if status != "Suspended":
        status = "Active" if own >= min_stake(ctx.config, role) else "Inactive"
    old_status = reg.status
    reg = dataclasses.replace(reg, own_stake=own, status=status)
    m.put(ctx.state, AccountId(who), reg)
    if status != old_status:
        ctx.emit(StatusChanged(who, status))


def refresh(ctx: Ctx, who: bytes) -> None:
    """Recompute own stake and status after `who`'s ledger changed (a staking listener)."""
    m, reg = _map_of(ctx.state, who)
    if m is not None and reg is not None:
        _put(ctx, m, who, reg)


def add_votes(ctx: Ctx, target: bytes, delta: int) -> None:
    m, reg = _map_of(ctx.state, target)
    if m is not None and reg is not None:
        _put(ctx, m, target, dataclasses.replace(reg, votes=max(reg.votes + delta, 0)))


def suspend(ctx: Ctx, who: bytes) -> None:
    m, reg = _map_of(ctx.state, who)
    if m is not None and reg is not None and reg.status != "Suspended":
        m.put(ctx.state, AccountId(who), dataclasses.replace(reg, status="Suspended"))
        ctx.emit(StatusChanged(who, "Suspended"))


staking.STAKE_LISTENERS.append(refresh)

# The Voting pallet registers how to read the votes standing on an account (it depends on this
# pallet, not the other way round); votes survive a deregistration and count again on return.
VOTES_ON: list[Callable[[ReadState, bytes], int]] = []


def standing_votes(state: ReadState, who: bytes) -> int:
    return sum(f(state, who) for f in VOTES_ON)


def _own_registration(ctx: Ctx) -> tuple[bytes, StorageMap[bytes, Registration], Registration]:
    """The signed caller, the map holding its registration, and the registration."""
    who = ctx.ensure_signed()
    m, reg = _map_of(ctx.state, who)
    if m is None or reg is None:
        raise ModuleError(Error.NOT_REGISTERED)
    return who, m, reg


def _validate_info(info: Info, *, needs_endpoint: bool) -> None:
    ensure(
        len(info.name) <= MAX_NAME
        and len(info.description) <= MAX_DESCRIPTION
        and len(info.url) <= MAX_URL
        and len(info.gpu_model) <= MAX_GPU,
        Error.INFO_TOO_LONG,
    )
    if needs_endpoint:
        ensure(info.url.startswith((b"http://", b"https://")), Error.MISSING_ENDPOINT)


def _register(ctx: Ctx, role: str, operator: bytes, info: Info) -> None:
    who = ctx.ensure_signed()
    ledger = staking.get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    ensure(get_registration(ctx.state, who) is None, Error.ALREADY_REGISTERED)
    ensure(operator != who, Error.OPERATOR_IS_STAKER)
    ensure(not OperatorOf.contains(ctx.state, AccountId(operator)), Error.OPERATOR_IN_USE)
    _validate_info(info, needs_endpoint=role == "Coordinator")
    own = staking.free_to_allocate(ctx.state, who)
    ensure(own >= min_stake(ctx.config, role), Error.INSUFFICIENT_STAKE)
    m = Miners if role == "Miner" else Coordinators
    OperatorOf.put(ctx.state, AccountId(operator), Operator(role, who))
    votes = standing_votes(ctx.state, who)
    m.put(
        ctx.state,
        AccountId(who),
        Registration(operator, info, 0, own, votes, "Active", ctx.block_number),
    )
    ctx.emit((MinerRegistered if role == "Miner" else CoordinatorRegistered)(who, operator))


# ---- calls ---------------------------------------------------------------------------------------

REG_WEIGHT = Weight(60_000_000, 5000)
INFO_ARG = ("info", INFO, "Info")


@SPEC.call(0, weight=REG_WEIGHT, args=[("operator", ACCOUNT_ID, "T::AccountId"), INFO_ARG])
def register_miner(ctx: Ctx, operator: bytes, info: Info) -> None:
    """Register the caller as a miner served by `operator` (its hot key).
    Needs own free-to-allocate bonded stake >= MinMinerStake. Errors: NotBonded, InsufficientStake,
    AlreadyRegistered, OperatorInUse, OperatorIsStaker, InfoTooLong. Emits: MinerRegistered."""
    _register(ctx, "Miner", operator, info)


@SPEC.call(1, weight=REG_WEIGHT, args=[("operator", ACCOUNT_ID, "T::AccountId"), INFO_ARG])
def register_coordinator(ctx: Ctx, operator: bytes, info: Info) -> None:
    """Register the caller as a coordinator served by `operator`; `info.url` is its public
    endpoint. Needs own stake >= MinCoordinatorStake. Errors: as register_miner, MissingEndpoint.
    Emits: CoordinatorRegistered."""
    _register(ctx, "Coordinator", operator, info)


@SPEC.call(2, weight=REG_WEIGHT, args=[INFO_ARG])
def update_info(ctx: Ctx, info: Info) -> None:
    """Replace the caller's registration info.
    Errors: NotRegistered, InfoTooLong, MissingEndpoint."""
    who, m, reg = _own_registration(ctx)
    _validate_info(info, needs_endpoint=m is Coordinators)
    m.put(ctx.state, AccountId(who), dataclasses.replace(reg, info=info))
    ctx.emit(InfoUpdated(who))


@SPEC.call(3, weight=REG_WEIGHT, args=[("operator", ACCOUNT_ID, "T::AccountId")])
def set_operator(ctx: Ctx, operator: bytes) -> None:
    """Rotate the operator (hot) key. Errors: NotRegistered, OperatorInUse, OperatorIsStaker."""
    who, m, reg = _own_registration(ctx)
    ensure(operator != who, Error.OPERATOR_IS_STAKER)
    ensure(not OperatorOf.contains(ctx.state, AccountId(operator)), Error.OPERATOR_IN_USE)
    OperatorOf.remove(ctx.state, AccountId(reg.operator))
    OperatorOf.put(
        ctx.state, AccountId(operator), Operator("Miner" if m is Miners else "Coordinator", who)
    )
    m.put(ctx.state, AccountId(who), dataclasses.replace(reg, operator=operator))
    ctx.emit(OperatorChanged(who, reg.operator, operator))


@SPEC.call(4, weight=REG_WEIGHT, args=[("commission", PERBILL, "Perbill")])
def set_commission(ctx: Ctx, commission: int) -> None:
    """Set the share of rewards kept before voters are paid. Errors: NotRegistered,
    CommissionTooHigh."""
    who, m, reg = _own_registration(ctx)
    ensure(commission <= PERBILL_ONE, Error.COMMISSION_TOO_HIGH)
    m.put(ctx.state, AccountId(who), dataclasses.replace(reg, commission=commission))
    ctx.emit(CommissionSet(who, commission))


@SPEC.call(5, weight=REG_WEIGHT)
def deregister(ctx: Ctx) -> None:
    """Remove the caller's registration and free its operator address. Errors: NotRegistered."""
    who, m, reg = _own_registration(ctx)
    m.remove(ctx.state, AccountId(who))
    OperatorOf.remove(ctx.state, AccountId(reg.operator))
    ctx.emit(Deregistered(who))
