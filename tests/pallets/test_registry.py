"""Registry: miner/coordinator registration with operator keys and info, commission, operator
rotation, deregistration; status follows own stake (Active/Inactive) and slashes (Suspended)."""

from __future__ import annotations

import pytest

from chain.frame.pallet import Origin
from pallets.registry import pallet as registry
from pallets.registry.pallet import (
    CommissionSet,
    CoordinatorRegistered,
    Deregistered,
    Error,
    Info,
    InfoUpdated,
    MinerRegistered,
    Operator,
    OperatorChanged,
    OperatorOf,
    Registration,
    StatusChanged,
)
from pallets.staking.pallet import Bonded, Rebonded, Unbonded
from pallets.voting import pallet as voting
from tests.pallets.mock import ALICE, BOB, CHARLIE, MockRuntime
from tests.pallets.test_staking import (
    BONDING_DURATION,
    CAI,
    MIN_COORDINATOR,
    MIN_MINER,
    OP1,
    OP2,
    OP3,
    PERBILL,
    check_economy,
    coordinator_info,
    eco,
    miner_info,
    reg_of,
    register_coordinator,
    register_miner,
)

__all__ = ["eco"]  # the fixture

LIMITS = {
    "name": registry.MAX_NAME,
    "description": registry.MAX_DESCRIPTION,
    "url": registry.MAX_URL,
    "gpu_model": registry.MAX_GPU,
}


def _info_with(field: str, length: int, *, coordinator: bool) -> Info:
    base = coordinator_info() if coordinator else miner_info()
    value = b"x" * length
    if field == "url" and coordinator:
        value = (b"https://" + value)[:length]
    return Info(**{**{f: getattr(base, f) for f in LIMITS}, field: value})


# ---- register_miner / register_coordinator -----------------------------------------------------


def test_register_miner_stores_registration_and_operator(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_MINER + 5 * CAI)
    eco.run_to_block(7)
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP1, info=miner_info())
    assert eco.events() == [MinerRegistered(staker=ALICE, operator=OP1)]
    assert registry.Miners.get(eco.state, ALICE) == Registration(
        OP1, miner_info(), 0, MIN_MINER + 5 * CAI, 0, "Active", 7
    )
    assert registry.Coordinators.get(eco.state, ALICE) is None
    assert OperatorOf.get(eco.state, OP1) == Operator("Miner", ALICE)
    check_economy(eco)


def test_register_coordinator_stores_registration_and_operator(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    eco.dispatch(ALICE, "Registry", "register_coordinator", operator=OP1, info=coordinator_info())
    assert eco.events() == [CoordinatorRegistered(staker=ALICE, operator=OP1)]
    reg = registry.Coordinators.get(eco.state, ALICE)
    assert reg is not None
    assert (reg.operator, reg.own_stake, reg.votes, reg.status) == (
        OP1,
        MIN_COORDINATOR,
        0,
        "Active",
    )
    assert OperatorOf.get(eco.state, OP1) == Operator("Coordinator", ALICE)


def test_register_miner_not_bonded(eco: MockRuntime) -> None:
    eco.assert_noop(
        ALICE, "Registry", "register_miner", Error.NOT_BONDED, operator=OP1, info=miner_info()
    )


def test_register_miner_below_minimum_stake(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_MINER - 1)
    eco.assert_noop(
        ALICE,
        "Registry",
        "register_miner",
        Error.INSUFFICIENT_STAKE,
        operator=OP1,
        info=miner_info(),
    )


def test_register_coordinator_below_minimum_stake(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR - 1)
    eco.assert_noop(
        ALICE,
        "Registry",
        "register_coordinator",
        Error.INSUFFICIENT_STAKE,
        operator=OP1,
        info=coordinator_info(),
    )
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP1, info=miner_info())


def test_register_miner_voted_stake_does_not_count(eco: MockRuntime) -> None:
    register_miner(eco, BOB, OP1)
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_MINER + 10 * CAI)
    eco.dispatch(ALICE, "Voting", "vote", target=BOB, value=10 * CAI + 1)
    eco.assert_noop(
        ALICE,
        "Registry",
        "register_miner",
        Error.INSUFFICIENT_STAKE,
        operator=OP2,
        info=miner_info(),
    )
    eco.dispatch(ALICE, "Voting", "unvote", target=BOB, value=1)
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP2, info=miner_info())
    assert reg_of(eco, ALICE).own_stake == MIN_MINER
    check_economy(eco)


def test_register_unlocking_stake_does_not_count(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_MINER)
    eco.dispatch(ALICE, "Staking", "unbond", value=1)
    eco.assert_noop(
        ALICE,
        "Registry",
        "register_miner",
        Error.INSUFFICIENT_STAKE,
        operator=OP1,
        info=miner_info(),
    )


@pytest.mark.parametrize("second", ["register_miner", "register_coordinator"])
def test_register_second_registration_is_already_registered(eco: MockRuntime, second: str) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR * 2)
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP1, info=miner_info())
    eco.assert_noop(
        ALICE, "Registry", second, Error.ALREADY_REGISTERED, operator=OP2, info=coordinator_info()
    )


@pytest.mark.parametrize("call", ["register_miner", "register_coordinator"])
def test_register_operator_in_use(eco: MockRuntime, call: str) -> None:
    register_miner(eco, BOB, OP1)
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    eco.assert_noop(
        ALICE, "Registry", call, Error.OPERATOR_IN_USE, operator=OP1, info=coordinator_info()
    )


@pytest.mark.parametrize("call", ["register_miner", "register_coordinator"])
def test_register_operator_is_staker(eco: MockRuntime, call: str) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    eco.assert_noop(
        ALICE, "Registry", call, Error.OPERATOR_IS_STAKER, operator=ALICE, info=coordinator_info()
    )


@pytest.mark.parametrize("field", list(LIMITS))
@pytest.mark.parametrize("coordinator", [False, True], ids=["miner", "coordinator"])
def test_register_info_over_limit_is_info_too_long(
    eco: MockRuntime, field: str, coordinator: bool
) -> None:
    call = "register_coordinator" if coordinator else "register_miner"
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    too_long = _info_with(field, LIMITS[field] + 1, coordinator=coordinator)
    eco.assert_noop(ALICE, "Registry", call, Error.INFO_TOO_LONG, operator=OP1, info=too_long)
    at_limit = _info_with(field, LIMITS[field], coordinator=coordinator)
    eco.dispatch(ALICE, "Registry", call, operator=OP1, info=at_limit)
    assert reg_of(eco, ALICE).info == at_limit


@pytest.mark.parametrize("url", [b"", b"coord.example", b"ftp://coord.example", b"ws://c:9944"])
def test_register_coordinator_without_http_url_is_missing_endpoint(
    eco: MockRuntime, url: bytes
) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    eco.assert_noop(
        ALICE,
        "Registry",
        "register_coordinator",
        Error.MISSING_ENDPOINT,
        operator=OP1,
        info=coordinator_info(url),
    )


@pytest.mark.parametrize("url", [b"http://10.0.0.1:8080", b"https://coord.example/api"])
def test_register_coordinator_http_or_https_url(eco: MockRuntime, url: bytes) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_COORDINATOR)
    eco.dispatch(
        ALICE, "Registry", "register_coordinator", operator=OP1, info=coordinator_info(url)
    )


def test_register_miner_needs_no_url(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    assert reg_of(eco, ALICE).info.url == b""


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()], ids=["root", "none"])
@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("register_miner", {"operator": OP1, "info": Info()}),
        ("register_coordinator", {"operator": OP1, "info": Info()}),
        ("update_info", {"info": Info()}),
        ("set_operator", {"operator": OP1}),
        ("set_commission", {"commission": 0}),
        ("deregister", {}),
    ],
)
def test_registry_calls_unsigned_are_bad_origin(
    eco: MockRuntime, origin: Origin, call: str, args: dict[str, object]
) -> None:
    eco.assert_noop(origin, "Registry", call, "BadOrigin", **args)


# ---- update_info ---------------------------------------------------------------------------------


def test_update_info_replaces_info(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    new = Info(name=b"renamed", gpu_model=b"H200")
    eco.dispatch(ALICE, "Registry", "update_info", info=new)
    assert eco.events() == [InfoUpdated(staker=ALICE)]
    assert reg_of(eco, ALICE).info == new


def test_update_info_not_registered(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Registry", "update_info", Error.NOT_REGISTERED, info=Info())


@pytest.mark.parametrize("field", list(LIMITS))
def test_update_info_over_limit_is_info_too_long(eco: MockRuntime, field: str) -> None:
    register_miner(eco, ALICE, OP1)
    eco.assert_noop(
        ALICE,
        "Registry",
        "update_info",
        Error.INFO_TOO_LONG,
        info=_info_with(field, LIMITS[field] + 1, coordinator=False),
    )


def test_update_info_coordinator_keeps_endpoint(eco: MockRuntime) -> None:
    register_coordinator(eco, ALICE, OP1)
    eco.assert_noop(
        ALICE, "Registry", "update_info", Error.MISSING_ENDPOINT, info=Info(name=b"no url")
    )
    eco.dispatch(ALICE, "Registry", "update_info", info=coordinator_info(b"http://new"))
    assert reg_of(eco, ALICE).info.url == b"http://new"


# ---- set_commission -----------------------------------------------------------------------------


@pytest.mark.parametrize("commission", [0, 50_000_000, PERBILL])
def test_set_commission_up_to_100_percent(eco: MockRuntime, commission: int) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch(ALICE, "Registry", "set_commission", commission=commission)
    assert eco.events() == [CommissionSet(staker=ALICE, commission=commission)]
    assert reg_of(eco, ALICE).commission == commission


@pytest.mark.parametrize("commission", [PERBILL + 1, 2**32 - 1])
def test_set_commission_above_100_percent_is_too_high(eco: MockRuntime, commission: int) -> None:
    register_coordinator(eco, ALICE, OP1)
    eco.assert_noop(
        ALICE, "Registry", "set_commission", Error.COMMISSION_TOO_HIGH, commission=commission
    )


def test_set_commission_not_registered(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Registry", "set_commission", Error.NOT_REGISTERED, commission=1)


# ---- set_operator --------------------------------------------------------------------------------


def test_set_operator_rotates_and_frees_old_operator(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch(ALICE, "Registry", "set_operator", operator=OP2)
    assert eco.events() == [OperatorChanged(staker=ALICE, old=OP1, new=OP2)]
    assert reg_of(eco, ALICE).operator == OP2
    assert OperatorOf.get(eco.state, OP2) == Operator("Miner", ALICE)
    assert OperatorOf.get(eco.state, OP1) is None
    register_coordinator(eco, BOB, OP1)  # the old operator is free again
    assert OperatorOf.get(eco.state, OP1) == Operator("Coordinator", BOB)


def test_set_operator_in_use(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    eco.assert_noop(ALICE, "Registry", "set_operator", Error.OPERATOR_IN_USE, operator=OP2)
    eco.assert_noop(ALICE, "Registry", "set_operator", Error.OPERATOR_IN_USE, operator=OP1)


def test_set_operator_is_staker(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.assert_noop(ALICE, "Registry", "set_operator", Error.OPERATOR_IS_STAKER, operator=ALICE)


def test_set_operator_not_registered(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Registry", "set_operator", Error.NOT_REGISTERED, operator=OP1)


# ---- deregister ---------------------------------------------------------------------------------


def test_deregister_removes_registration_and_operator(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch(ALICE, "Registry", "deregister")
    assert eco.events() == [Deregistered(staker=ALICE)]
    assert registry.get_registration(eco.state, ALICE) is None
    assert OperatorOf.get(eco.state, OP1) is None
    register_miner(eco, BOB, OP1)  # the operator is free
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP3, info=miner_info())
    check_economy(eco)


def test_deregister_not_registered(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Registry", "deregister", Error.NOT_REGISTERED)


# ---- status --------------------------------------------------------------------------------------


def test_status_inactive_at_once_when_unbonding_below_minimum(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1, stake=MIN_MINER + 100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=100 * CAI)
    assert reg_of(eco, ALICE).status == "Active"
    eco.dispatch(ALICE, "Staking", "unbond", value=1)
    assert eco.events() == [
        StatusChanged(staker=ALICE, status="Inactive"),
        Unbonded(stash=ALICE, amount=1, era=BONDING_DURATION),
    ]
    reg = reg_of(eco, ALICE)
    assert (reg.status, reg.own_stake) == ("Inactive", MIN_MINER - 1)


def test_status_active_again_on_bond_extra(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch(ALICE, "Staking", "unbond", value=5 * CAI)
    eco.dispatch(ALICE, "Staking", "bond_extra", max_additional=5 * CAI)
    assert eco.events() == [
        StatusChanged(staker=ALICE, status="Active"),
        Bonded(stash=ALICE, amount=5 * CAI),
    ]
    reg = reg_of(eco, ALICE)
    assert (reg.status, reg.own_stake) == ("Active", MIN_MINER)


def test_status_active_again_on_rebond(eco: MockRuntime) -> None:
    register_coordinator(eco, ALICE, OP1)
    eco.dispatch(ALICE, "Staking", "unbond", value=CAI)
    assert reg_of(eco, ALICE).status == "Inactive"
    eco.dispatch(ALICE, "Staking", "rebond", value=CAI)
    assert eco.events() == [
        StatusChanged(staker=ALICE, status="Active"),
        Rebonded(stash=ALICE, amount=CAI),
    ]


def test_status_votes_and_own_stake_follow_voting(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1, stake=MIN_MINER + 7 * CAI)
    eco.dispatch(BOB, "Staking", "bond", value=100 * CAI)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=40 * CAI)
    reg = reg_of(eco, ALICE)
    assert (reg.own_stake, reg.votes, reg.weight) == (
        MIN_MINER + 7 * CAI,
        40 * CAI,
        MIN_MINER + 47 * CAI,
    )
    # a registered staker may vote only what it does not need for its own registration
    register_miner(eco, CHARLIE, OP2)
    eco.dispatch(ALICE, "Voting", "vote", target=CHARLIE, value=7 * CAI)
    reg = reg_of(eco, ALICE)
    assert (reg.own_stake, reg.status) == (MIN_MINER, "Active")
    check_economy(eco)


def test_register_again_after_deregister_keeps_outstanding_votes(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch(BOB, "Staking", "bond", value=100 * CAI)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=40 * CAI)
    eco.dispatch(ALICE, "Registry", "deregister")
    eco.dispatch(ALICE, "Registry", "register_miner", operator=OP1, info=miner_info())
    assert reg_of(eco, ALICE).votes == voting.TotalVotes.get(eco.state, ALICE) == 40 * CAI
    check_economy(eco)
