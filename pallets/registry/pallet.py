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
from typing import Annotated, TypeAlias

from chain.frame.prelude import *
from pallets import weights
from pallets.config import Ctx, RegistryConfig, RuntimeConfig
from pallets.staking import pallet as staking

SPEC = PalletSpec("Registry", 11, module="pallet_cuckoo_registry")
Config = RegistryConfig

MAX_NAME = 64
MAX_DESCRIPTION = 512
MAX_URL = 256
MAX_GPU = 64


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


@struct("pallet_cuckoo_registry::Info")
class Info:
    name: Annotated[bytes, Bytes(), "BoundedVec<u8, MaxNameLen>"] = b""
    description: Annotated[bytes, Bytes(), "BoundedVec<u8, MaxDescriptionLen>"] = b""
    url: Annotated[bytes, Bytes(), "BoundedVec<u8, MaxUrlLen>"] = b""
    gpu_model: Annotated[bytes, Bytes(), "BoundedVec<u8, MaxGpuModelLen>"] = b""


INFO = scale_of(Info)


class Status(enum.StrEnum):
    """A registration's state: `Active` while its own stake meets the minimum."""

    ACTIVE = "Active"
    INACTIVE = "Inactive"  # own stake under the minimum (unbond, slash)
    SUSPENDED = "Suspended"  # slashed: deregister and register again to come back


class Role(enum.StrEnum):
    MINER = "Miner"
    COORDINATOR = "Coordinator"


STATUS = unit_enum("pallet_cuckoo_registry::Status", Status)
ROLE = unit_enum("pallet_cuckoo_registry::Role", Role)
StatusField: TypeAlias = Annotated[Status, STATUS, "Status"]
RoleField: TypeAlias = Annotated[Role, ROLE, "Role"]


@struct("pallet_cuckoo_registry::Registration")
class Registration:
    operator: AccountIdField
    info: Annotated[Info, INFO, "Info"]
    commission: Perbill
    own_stake: Balance  # the staker's free-to-allocate bonded stake
    votes: Balance  # stake voted for this registration by others
    status: StatusField
    registered_at: BlockNumber

    @property
    def weight(self) -> int:
        return self.own_stake + self.votes


REGISTRATION = scale_of(Registration)


@struct("pallet_cuckoo_registry::OperatorRecord")
class Operator:
    role: RoleField
    staker: AccountIdField


OPERATOR = scale_of(Operator)

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


@event(SPEC, 0)
class MinerRegistered:
    """A staker registered as a miner with this operator address."""

    staker: T.AccountId
    operator: T.AccountId


@event(SPEC, 1)
class CoordinatorRegistered:
    """A staker registered as a coordinator with this operator address."""

    staker: T.AccountId
    operator: T.AccountId


@event(SPEC, 2)
class InfoUpdated:
    """A registration's info changed."""

    staker: T.AccountId


@event(SPEC, 3)
class OperatorChanged:
    """A registration rotated its operator key."""

    staker: T.AccountId
    old: T.AccountId
    new: T.AccountId


@event(SPEC, 4)
class CommissionSet:
    """A registration set its commission on rewards before voters' shares."""

    staker: T.AccountId
    commission: Perbill


@event(SPEC, 5)
class Deregistered:
    """A registration was removed; votes on it stay until voters unvote."""

    staker: T.AccountId


@event(SPEC, 6)
class StatusChanged:
    """A registration became Active, Inactive (own stake under the minimum) or Suspended."""

    staker: T.AccountId
    status: StatusField


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    NOT_BONDED = 0, "The caller has no staking ledger: bond first."
    INSUFFICIENT_STAKE = (
        1,
        "The caller's free-to-allocate bonded stake is under the role's minimum.",
    )
    ALREADY_REGISTERED = 2, "The caller already has a registration."
    OPERATOR_IN_USE = 3, "The operator address already serves a registration."
    NOT_REGISTERED = 4, "The caller has no registration."
    INFO_TOO_LONG = 5, "A field of the info is over its byte limit."
    MISSING_ENDPOINT = 6, "A coordinator needs an http(s) endpoint URL."
    COMMISSION_TOO_HIGH = 7, "Commission is a Perbill: at most 1,000,000,000 (100%)."
    OPERATOR_IS_STAKER = 8, "The operator must be a different (hot) key than the staker."


# ---- helpers -------------------------------------------------------------------------------------


def _map_of(role: Role) -> StorageMap[bytes, Registration]:
    return Miners if role == Role.MINER else Coordinators


def get_registration(state: ReadState, who: bytes) -> tuple[Role, Registration] | None:
    """`who`'s registration and its role, if it has one."""
    for role in Role:
        reg = _map_of(role).get(state, AccountId(who))
        if reg is not None:
            return role, reg
    return None


def min_stake(config: RuntimeConfig, role: Role) -> int:
    cfg = config.registry
    return cfg.min_miner_stake if role == Role.MINER else cfg.min_coordinator_stake


def required_own_stake(ctx: Ctx, who: bytes) -> int:
    """Stake `who` must keep unallocated for its own registration (0 when not registered)."""
    found = get_registration(ctx.state, who)
    return min_stake(ctx.config, found[0]) if found is not None else 0


def is_active(state: ReadState, who: bytes) -> bool:
    found = get_registration(state, who)
    return found is not None and found[1].status == Status.ACTIVE


def _put(ctx: Ctx, role: Role, who: bytes, reg: Registration) -> None:
    """Write a registration with its own stake and Active/Inactive status brought up to date."""
    own = staking.free_to_allocate(ctx.state, who)
    status = reg.status
    if status != Status.SUSPENDED:
        status = Status.ACTIVE if own >= min_stake(ctx.config, role) else Status.INACTIVE
    old_status = reg.status
    reg = dataclasses.replace(reg, own_stake=own, status=status)
    _map_of(role).put(ctx.state, AccountId(who), reg)
    if status != old_status:
        ctx.emit(StatusChanged(who, status))


def on_stake_changed(ctx: Ctx, who: bytes) -> None:
    """Recompute own stake and status after `who`'s ledger changed (wired to Staking)."""
    found = get_registration(ctx.state, who)
    if found is not None:
        _put(ctx, found[0], who, found[1])


def add_votes(ctx: Ctx, target: bytes, delta: int) -> None:
    found = get_registration(ctx.state, target)
    if found is not None:
        role, reg = found
        _put(ctx, role, target, dataclasses.replace(reg, votes=max(reg.votes + delta, 0)))


def suspend(ctx: Ctx, who: bytes) -> None:
    found = get_registration(ctx.state, who)
    if found is not None and found[1].status != Status.SUSPENDED:
        role, reg = found
        _map_of(role).put(
            ctx.state, AccountId(who), dataclasses.replace(reg, status=Status.SUSPENDED)
        )
        ctx.emit(StatusChanged(who, Status.SUSPENDED))


def standing_votes(state: ReadState, config: RuntimeConfig, who: bytes) -> int:
    """The votes standing on `who` (wired from Voting: they survive a deregistration and count
    again on return)."""
    return sum(v.standing_votes(state, who) for v in config.wiring.standing_votes)


def _own_registration(ctx: Ctx) -> tuple[bytes, Role, Registration]:
    """The signed caller, its role, and its registration."""
    who = ctx.ensure_signed()
    found = get_registration(ctx.state, who)
    if found is None:
        raise ModuleError(Error.NOT_REGISTERED)
    return who, found[0], found[1]


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


def _register(ctx: Ctx, role: Role, operator: bytes, info: Info) -> None:
    who = ctx.ensure_signed()
    ledger = staking.get_ledger(ctx.state, who)
    ensure(ledger is not None, Error.NOT_BONDED)
    ensure(get_registration(ctx.state, who) is None, Error.ALREADY_REGISTERED)
    ensure(operator != who, Error.OPERATOR_IS_STAKER)
    ensure(not OperatorOf.contains(ctx.state, AccountId(operator)), Error.OPERATOR_IN_USE)
    _validate_info(info, needs_endpoint=role == Role.COORDINATOR)
    own = staking.free_to_allocate(ctx.state, who)
    ensure(own >= min_stake(ctx.config, role), Error.INSUFFICIENT_STAKE)
    OperatorOf.put(ctx.state, AccountId(operator), Operator(role, who))
    votes = standing_votes(ctx.state, ctx.config, who)
    registration = Registration(operator, info, 0, own, votes, Status.ACTIVE, ctx.block_number)
    _map_of(role).put(ctx.state, AccountId(who), registration)
    ctx.emit((MinerRegistered if role == Role.MINER else CoordinatorRegistered)(who, operator))


# ---- calls ---------------------------------------------------------------------------------------

InfoArg: TypeAlias = Annotated[Info, INFO, "Info"]


@call(SPEC, 0, weight=weights.registry_register_miner())
def register_miner(ctx: Ctx, operator: T.AccountId, info: InfoArg) -> None:
    """Register the caller as a miner served by `operator` (its hot key).
    Needs own free-to-allocate bonded stake >= MinMinerStake. Errors: NotBonded, InsufficientStake,
    AlreadyRegistered, OperatorInUse, OperatorIsStaker, InfoTooLong. Emits: MinerRegistered."""
    _register(ctx, Role.MINER, operator, info)


@call(SPEC, 1, weight=weights.registry_register_coordinator())
def register_coordinator(ctx: Ctx, operator: T.AccountId, info: InfoArg) -> None:
    """Register the caller as a coordinator served by `operator`; `info.url` is its public
    endpoint. Needs own stake >= MinCoordinatorStake. Errors: as register_miner, MissingEndpoint.
    Emits: CoordinatorRegistered."""
    _register(ctx, Role.COORDINATOR, operator, info)


@call(SPEC, 2, weight=weights.registry_update_info())
def update_info(ctx: Ctx, info: InfoArg) -> None:
    """Replace the caller's registration info.
    Errors: NotRegistered, InfoTooLong, MissingEndpoint."""
    who, role, reg = _own_registration(ctx)
    _validate_info(info, needs_endpoint=role == Role.COORDINATOR)
    _map_of(role).put(ctx.state, AccountId(who), dataclasses.replace(reg, info=info))
    ctx.emit(InfoUpdated(who))


@call(SPEC, 3, weight=weights.registry_set_operator())
def set_operator(ctx: Ctx, operator: T.AccountId) -> None:
    """Rotate the operator (hot) key. Errors: NotRegistered, OperatorInUse, OperatorIsStaker."""
    who, role, reg = _own_registration(ctx)
    ensure(operator != who, Error.OPERATOR_IS_STAKER)
    ensure(not OperatorOf.contains(ctx.state, AccountId(operator)), Error.OPERATOR_IN_USE)
    OperatorOf.remove(ctx.state, AccountId(reg.operator))
    OperatorOf.put(ctx.state, AccountId(operator), Operator(role, who))
    _map_of(role).put(ctx.state, AccountId(who), dataclasses.replace(reg, operator=operator))
    ctx.emit(OperatorChanged(who, reg.operator, operator))


@call(SPEC, 4, weight=weights.registry_set_commission())
def set_commission(ctx: Ctx, commission: Perbill) -> None:
    """Set the share of rewards kept before voters are paid. Errors: NotRegistered,
    CommissionTooHigh."""
    who, role, reg = _own_registration(ctx)
    ensure(commission <= PERBILL_ONE, Error.COMMISSION_TOO_HIGH)
    _map_of(role).put(ctx.state, AccountId(who), dataclasses.replace(reg, commission=commission))
    ctx.emit(CommissionSet(who, commission))


@call(SPEC, 5, weight=weights.registry_deregister())
def deregister(ctx: Ctx) -> None:
    """Remove the caller's registration and free its operator address. Errors: NotRegistered."""
    who, role, reg = _own_registration(ctx)
    _map_of(role).remove(ctx.state, AccountId(who))
    OperatorOf.remove(ctx.state, AccountId(reg.operator))
    ctx.emit(Deregistered(who))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: a staker has one registration; each shows its staker's current own stake and
    the votes standing on it (its weight), and is Active exactly when that own stake meets the
    role's minimum (unless Suspended); OperatorOf indexes exactly the registrations' operators."""
    operators: dict[bytes, Operator] = {}
    for role in Role:
        for who, reg in _map_of(role).iter(state):
            if role == Role.MINER and Coordinators.contains(state, AccountId(who)):
                raise AssertionError(f"{who.hex()} is registered as miner and coordinator")
            own = staking.free_to_allocate(state, who)
            if reg.own_stake != own:
                raise AssertionError(
                    f"registration {who.hex()}: own stake {reg.own_stake} != {own}"
                )
            votes = standing_votes(state, config, who)
            if reg.votes != votes:
                raise AssertionError(f"registration {who.hex()}: votes {reg.votes} != {votes}")
            if reg.status != Status.SUSPENDED:
                active = own >= min_stake(config, role)
                if (reg.status == Status.ACTIVE) != active:
                    raise AssertionError(f"registration {who.hex()}: status {reg.status}")
            if reg.operator == who or reg.operator in operators:
                raise AssertionError(f"registration {who.hex()}: operator reused")
            if reg.commission > PERBILL_ONE:
                raise AssertionError(f"registration {who.hex()}: commission over 100%")
            operators[reg.operator] = Operator(role, who)
    if dict(OperatorOf.iter(state)) != operators:
        raise AssertionError("OperatorOf differs from the registrations' operators")
