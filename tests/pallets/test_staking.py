"""Staking: bond, bond_extra, unbond, rebond, withdraw_unbonded, eras; every error path; frozen
funds track the ledger total.

The top of this file also holds the helpers the other staking-economy test files import
(test_registry, test_voting, test_rewards, test_slashing, test_economy_state_machine): accounts
endowed with realistic CAI amounts, a block runner that executes the runtime's `on_initialize`
hooks (MockRuntime.run_to_block only moves the block number), and registration shortcuts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chain.frame.pallet import Origin
from chain.storage.kv import MemoryKV
from chain.storage.overlay import Overlay
from genesis.builder import genesis_storage, load_spec
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.balances.pallet import BalanceLock
from pallets.balances.pallet import Error as BalancesError
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.staking import pallet as staking
from pallets.staking.pallet import (
    ACTIVE_ERA_INFO,
    STAKING_LOCK_ID,
    ActiveEraInfo,
    Bonded,
    CurrentEra,
    EraStarted,
    Error,
    Rebonded,
    StakingLedger,
    Unbonded,
    UnlockChunk,
    Withdrawn,
)
from pallets.system import pallet as system
from pallets.timestamp import pallet as timestamp
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, ED, EVE, MockRuntime, mock_config

# ---- shared helpers (imported by the other staking-economy test files) --------------------------

CAI = 10**18
MIN_MINER = 20_000 * CAI  # genesis/dev.json registry.minMinerStake
MIN_COORDINATOR = 2_000_000 * CAI  # genesis/dev.json registry.minCoordinatorStake
ERA_LENGTH = 10  # dev staking.eraLength
BONDING_DURATION = 2  # dev staking.bondingDuration
EMISSION = 1_000 * CAI  # dev rewards.emissionPerEra
MINER_POOL = 800 * CAI  # 80% miner share
COORDINATOR_POOL = EMISSION - MINER_POOL
PERBILL = 1_000_000_000

FERDIE = bytes([6]) * 32
OP1 = bytes([0x11]) * 32  # operator (hot) keys, not endowed
OP2 = bytes([0x12]) * 32
OP3 = bytes([0x13]) * 32
OP4 = bytes([0x14]) * 32
OP5 = bytes([0x15]) * 32

ECONOMY_BALANCES = {
    ALICE: 10_000_000 * CAI,
    BOB: 5_000_000 * CAI,
    CHARLIE: 1_000_000 * CAI,
    DAVE: 500_000 * CAI,
    EVE: 100_000 * CAI,
    FERDIE: 100_000 * CAI,
}

Factory = Callable[..., MockRuntime]


def economy(new_test_ext: Factory) -> MockRuntime:
    """A mock (dev economy parameters, ED 10) whose accounts hold realistic CAI amounts."""
    return new_test_ext(endowed=dict(ECONOMY_BALANCES))


def run_to_block(mock: MockRuntime, n: int, *, check: bool = True) -> list[Any]:
    """Execute blocks up to `n`, running every `on_initialize` hook in runtime order (Aura's
    needs a pre-runtime digest and is skipped), and every pallet's invariants after each block
    (unless a test corrupted the state on purpose: `check=False`). Returns the hooks' events."""
    events: list[Any] = []
    hooks = [h for h in mock.runtime.hooks("on_initialize") if h is not aura.on_initialize]
    while mock.block_number < n:
        mock.run_to_block(mock.block_number + 1)
        ctx = mock.ctx("root", events)
        for hook in hooks:
            hook(ctx)
        if check:
            mock.runtime.try_state(mock.state)
    return events


def next_era(mock: MockRuntime) -> list[Any]:
    """Run to the next era boundary (the block whose hooks start the era)."""
    length = mock.config.staking.era_length
    return run_to_block(mock, (mock.block_number // length + 1) * length)


def payouts_idle(mock: MockRuntime) -> bool:
    return rewards.CurrentPayout.get(mock.state) is None and not rewards.PendingEras.get(mock.state)


def finish_payouts(mock: MockRuntime, limit: int = 200) -> list[Any]:
    """Run blocks until no era payout is pending or in progress."""
    events: list[Any] = []
    for _ in range(limit):
        if payouts_idle(mock):
            return events
        events += run_to_block(mock, mock.block_number + 1)
    raise AssertionError("payouts did not finish")


def ledger(mock: MockRuntime, who: bytes) -> StakingLedger | None:
    return staking.get_ledger(mock.state, who)


def frozen(mock: MockRuntime, who: bytes) -> int:
    return mock.account(who).data.frozen


def reg_of(mock: MockRuntime, who: bytes) -> registry.Registration:
    found = registry.get_registration(mock.state, who)
    assert found is not None, "not registered"
    return found[1]


def register_miner(
    mock: MockRuntime, who: bytes, operator: bytes, stake: int = MIN_MINER, name: bytes = b"m"
) -> None:
    mock.dispatch(who, "Staking", "bond", value=stake)
    mock.dispatch(who, "Registry", "register_miner", operator=operator, info=miner_info(name))


def register_coordinator(
    mock: MockRuntime, who: bytes, operator: bytes, stake: int = MIN_COORDINATOR
) -> None:
    mock.dispatch(who, "Staking", "bond", value=stake)
    mock.dispatch(
        who, "Registry", "register_coordinator", operator=operator, info=coordinator_info()
    )


def miner_info(name: bytes = b"m") -> registry.Info:
    return registry.Info(name=name, description=b"a miner", gpu_model=b"H100")


def coordinator_info(url: bytes = b"https://coord.example") -> registry.Info:
    return registry.Info(name=b"c", description=b"a coordinator", url=url)


def check_economy(mock: MockRuntime) -> None:
    """Every pallet's try_state checks, now (the mock's teardown checks them again)."""
    mock.runtime.try_state(mock.state)


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


@pytest.fixture
def eco(new_test_ext: Factory) -> MockRuntime:
    return economy(new_test_ext)


# ---- bond ----------------------------------------------------------------------------------------


def test_bond_creates_ledger_and_freezes_total(eco: MockRuntime) -> None:
    free = eco.free(ALICE)
    eco.dispatch(ALICE, "Staking", "bond", value=1_000 * CAI)
    assert ledger(eco, ALICE) == StakingLedger(ALICE, 1_000 * CAI, 1_000 * CAI, [], 0)
    assert eco.events() == [Bonded(stash=ALICE, amount=1_000 * CAI)]
    assert frozen(eco, ALICE) == 1_000 * CAI
    assert eco.free(ALICE) == free  # bonded funds stay in the account
    check_economy(eco)


def test_bond_twice_is_already_bonded(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=CAI)
    eco.assert_noop(ALICE, "Staking", "bond", Error.ALREADY_BONDED, value=CAI)


@pytest.mark.parametrize("value", [0, 1, ED - 1])
def test_bond_below_existential_deposit_is_insufficient_bond(eco: MockRuntime, value: int) -> None:
    eco.assert_noop(ALICE, "Staking", "bond", Error.INSUFFICIENT_BOND, value=value)


def test_bond_existential_deposit_succeeds(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=ED)
    assert ledger(eco, ALICE) == StakingLedger(ALICE, ED, ED, [], 0)


def test_bond_must_leave_existential_deposit_free(eco: MockRuntime) -> None:
    free = eco.free(EVE)
    eco.assert_noop(EVE, "Staking", "bond", Error.INSUFFICIENT_FUNDS, value=free - ED + 1)
    eco.assert_noop(EVE, "Staking", "bond", Error.INSUFFICIENT_FUNDS, value=free * 2)
    eco.dispatch(EVE, "Staking", "bond", value=free - ED)
    assert frozen(eco, EVE) == free - ED


def test_bond_unfunded_account_is_insufficient_funds(eco: MockRuntime) -> None:
    eco.assert_noop(OP1, "Staking", "bond", Error.INSUFFICIENT_FUNDS, value=ED)


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()], ids=["root", "none"])
@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("bond", {"value": CAI}),
        ("bond_extra", {"max_additional": CAI}),
        ("unbond", {"value": CAI}),
        ("rebond", {"value": CAI}),
        ("withdraw_unbonded", {}),
    ],
)
def test_staking_calls_unsigned_are_bad_origin(
    eco: MockRuntime, origin: Origin, call: str, args: dict[str, int]
) -> None:
    eco.assert_noop(origin, "Staking", call, "BadOrigin", **args)


def test_bond_frozen_funds_are_not_transferable(eco: MockRuntime) -> None:
    free = eco.free(EVE)
    eco.dispatch(EVE, "Staking", "bond", value=60_000 * CAI)
    eco.assert_noop(
        EVE,
        "Balances",
        "transfer_allow_death",
        BalancesError.LIQUIDITY_RESTRICTIONS,
        dest=("Id", BOB),
        value=free - 60_000 * CAI + 1,
    )
    eco.dispatch(EVE, "Balances", "transfer_allow_death", dest=("Id", BOB), value=40_000 * CAI)
    check_economy(eco)


# ---- bond_extra ------------------------------------------------------------------------------


def test_bond_extra_adds_to_total_and_active(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "bond_extra", max_additional=50 * CAI)
    assert ledger(eco, ALICE) == StakingLedger(ALICE, 150 * CAI, 150 * CAI, [], 0)
    assert eco.events() == [Bonded(stash=ALICE, amount=50 * CAI)]
    assert frozen(eco, ALICE) == 150 * CAI


def test_bond_extra_not_bonded(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Staking", "bond_extra", Error.NOT_BONDED, max_additional=CAI)


def test_bond_extra_zero_amount(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=CAI)
    eco.assert_noop(ALICE, "Staking", "bond_extra", Error.ZERO_AMOUNT, max_additional=0)


def test_bond_extra_counts_frozen_funds(eco: MockRuntime) -> None:
    free = eco.free(EVE)
    eco.dispatch(EVE, "Staking", "bond", value=30_000 * CAI)
    room = free - 30_000 * CAI - ED
    eco.assert_noop(EVE, "Staking", "bond_extra", Error.INSUFFICIENT_FUNDS, max_additional=room + 1)
    eco.dispatch(EVE, "Staking", "bond_extra", max_additional=room)
    assert frozen(eco, EVE) == free - ED
    check_economy(eco)


# ---- unbond --------------------------------------------------------------------------------------


def test_unbond_creates_chunk_after_bonding_duration(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=30 * CAI)
    assert eco.events() == [Unbonded(stash=ALICE, amount=30 * CAI, era=BONDING_DURATION)]
    assert ledger(eco, ALICE) == StakingLedger(
        ALICE, 100 * CAI, 70 * CAI, [UnlockChunk(30 * CAI, BONDING_DURATION)], 0
    )
    assert frozen(eco, ALICE) == 100 * CAI  # unlocking funds stay frozen
    check_economy(eco)


def test_unbond_same_era_merges_into_one_chunk(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=10 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=5 * CAI)
    lg = ledger(eco, ALICE)
    assert lg is not None
    assert lg.unlocking == [UnlockChunk(15 * CAI, BONDING_DURATION)]


def test_unbond_later_era_appends_chunk(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=10 * CAI)
    next_era(eco)
    eco.dispatch(ALICE, "Staking", "unbond", value=5 * CAI)
    assert eco.events() == [Unbonded(stash=ALICE, amount=5 * CAI, era=1 + BONDING_DURATION)]
    lg = ledger(eco, ALICE)
    assert lg is not None
    assert lg.unlocking == [
        UnlockChunk(10 * CAI, BONDING_DURATION),
        UnlockChunk(5 * CAI, 1 + BONDING_DURATION),
    ]


def test_unbond_not_bonded(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Staking", "unbond", Error.NOT_BONDED, value=CAI)


def test_unbond_zero_amount(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=CAI)
    eco.assert_noop(ALICE, "Staking", "unbond", Error.ZERO_AMOUNT, value=0)


def test_unbond_allocated_stake_is_stake_allocated(eco: MockRuntime) -> None:
    register_miner(eco, BOB, OP1)
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Voting", "vote", target=BOB, value=60 * CAI)
    eco.assert_noop(ALICE, "Staking", "unbond", Error.STAKE_ALLOCATED, value=40 * CAI + 1)
    eco.dispatch(ALICE, "Staking", "unbond", value=40 * CAI)
    lg = ledger(eco, ALICE)
    assert lg is not None
    assert (lg.active, lg.allocated) == (60 * CAI, 60 * CAI)
    check_economy(eco)


def test_unbond_more_than_active_fails(eco: MockRuntime) -> None:
    # Only one error describes "more than the unallocated active stake".
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.assert_noop(ALICE, "Staking", "unbond", Error.STAKE_ALLOCATED, value=100 * CAI + 1)


def test_unbond_past_max_chunks_is_no_more_chunks(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    for era in range(staking.MAX_UNLOCKING_CHUNKS):
        CurrentEra.put(eco.state, era)
        eco.dispatch(ALICE, "Staking", "unbond", value=CAI)
    lg = ledger(eco, ALICE)
    assert lg is not None
    assert len(lg.unlocking) == staking.MAX_UNLOCKING_CHUNKS
    eco.dispatch(ALICE, "Staking", "unbond", value=CAI)  # same era: merges, no new chunk
    CurrentEra.put(eco.state, staking.MAX_UNLOCKING_CHUNKS)
    eco.assert_noop(ALICE, "Staking", "unbond", Error.NO_MORE_CHUNKS, value=CAI)
    check_economy(eco)


# ---- rebond --------------------------------------------------------------------------------------


def _three_chunks(mock: MockRuntime) -> None:
    mock.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    for value in (10, 20, 30):  # eras 2, 3, 4
        mock.dispatch(ALICE, "Staking", "unbond", value=value * CAI)
        next_era(mock)


def test_rebond_takes_newest_chunks_first(eco: MockRuntime) -> None:
    _three_chunks(eco)
    eco.dispatch(ALICE, "Staking", "rebond", value=40 * CAI)
    assert eco.events() == [Rebonded(stash=ALICE, amount=40 * CAI)]
    assert ledger(eco, ALICE) == StakingLedger(
        ALICE, 100 * CAI, 80 * CAI, [UnlockChunk(10 * CAI, 2), UnlockChunk(10 * CAI, 3)], 0
    )
    assert frozen(eco, ALICE) == 100 * CAI
    check_economy(eco)


def test_rebond_more_than_unlocking_moves_all(eco: MockRuntime) -> None:
    _three_chunks(eco)
    eco.dispatch(ALICE, "Staking", "rebond", value=1_000 * CAI)
    assert eco.events() == [Rebonded(stash=ALICE, amount=60 * CAI)]
    assert ledger(eco, ALICE) == StakingLedger(ALICE, 100 * CAI, 100 * CAI, [], 0)


def test_rebond_not_bonded(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Staking", "rebond", Error.NOT_BONDED, value=CAI)


def test_rebond_nothing_unlocking_is_no_unlock_chunk(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=CAI)
    eco.assert_noop(ALICE, "Staking", "rebond", Error.NO_UNLOCK_CHUNK, value=CAI)


def test_rebond_zero_amount(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=10 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=CAI)
    eco.assert_noop(ALICE, "Staking", "rebond", Error.ZERO_AMOUNT, value=0)


# ---- withdraw_unbonded -----------------------------------------------------------------------


def test_withdraw_unbonded_before_bonding_duration_is_a_noop(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=30 * CAI)
    for _ in range(BONDING_DURATION):
        before = eco.snapshot()
        eco.dispatch(ALICE, "Staking", "withdraw_unbonded")
        assert eco.events() == []
        assert eco.snapshot() == before
        next_era(eco)


def test_withdraw_unbonded_after_bonding_duration_unfreezes(eco: MockRuntime) -> None:
    free = eco.free(ALICE)
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=30 * CAI)
    next_era(eco)
    eco.dispatch(ALICE, "Staking", "unbond", value=20 * CAI)  # matures one era later
    next_era(eco)
    assert CurrentEra.get(eco.state) == BONDING_DURATION
    eco.dispatch(ALICE, "Staking", "withdraw_unbonded")
    assert eco.events() == [Withdrawn(stash=ALICE, amount=30 * CAI)]
    assert ledger(eco, ALICE) == StakingLedger(
        ALICE, 70 * CAI, 50 * CAI, [UnlockChunk(20 * CAI, 1 + BONDING_DURATION)], 0
    )
    assert frozen(eco, ALICE) == 70 * CAI
    assert eco.free(ALICE) == free  # withdrawing moves nothing, it unfreezes
    check_economy(eco)


def test_withdraw_unbonded_everything_removes_ledger(eco: MockRuntime) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=100 * CAI)
    eco.dispatch(ALICE, "Staking", "unbond", value=100 * CAI)
    for _ in range(BONDING_DURATION):
        next_era(eco)
    eco.dispatch(ALICE, "Staking", "withdraw_unbonded")
    assert eco.events() == [Withdrawn(stash=ALICE, amount=100 * CAI)]
    assert ledger(eco, ALICE) is None
    assert frozen(eco, ALICE) == 0
    eco.dispatch(ALICE, "Staking", "bond", value=CAI)  # can bond again from scratch
    check_economy(eco)


def test_withdraw_unbonded_not_bonded(eco: MockRuntime) -> None:
    eco.assert_noop(ALICE, "Staking", "withdraw_unbonded", Error.NOT_BONDED)


# ---- eras ----------------------------------------------------------------------------------------


def test_on_initialize_starts_era_every_era_length_blocks(eco: MockRuntime) -> None:
    assert CurrentEra.get(eco.state) == 0
    assert run_to_block(eco, ERA_LENGTH - 1) == []
    assert CurrentEra.get(eco.state) == 0
    assert of_type(run_to_block(eco, ERA_LENGTH), EraStarted) == [EraStarted(era=1)]
    assert of_type(run_to_block(eco, 3 * ERA_LENGTH), EraStarted) == [
        EraStarted(era=2),
        EraStarted(era=3),
    ]
    assert CurrentEra.get(eco.state) == 3


# ---- frozen == total through a sequence of calls -------------------------------------------------


def test_frozen_tracks_total_through_every_call(eco: MockRuntime) -> None:
    steps: list[tuple[str, dict[str, int]]] = [
        ("bond", {"value": 500 * CAI}),
        ("bond_extra", {"max_additional": 250 * CAI}),
        ("unbond", {"value": 300 * CAI}),
        ("rebond", {"value": 100 * CAI}),
        ("unbond", {"value": 50 * CAI}),
    ]
    for call, args in steps:
        eco.dispatch(BOB, "Staking", call, **args)
        lg = ledger(eco, BOB)
        assert lg is not None
        assert frozen(eco, BOB) == lg.total
        check_economy(eco)
    for _ in range(BONDING_DURATION):
        next_era(eco)
    eco.dispatch(BOB, "Staking", "withdraw_unbonded")
    lg = ledger(eco, BOB)
    assert lg is not None
    assert lg.total == frozen(eco, BOB) == 500 * CAI
    check_economy(eco)


# ---- what wallets read: the staking lock, the active era, FRAME's session/era items -------------


def staking_locks(mock: MockRuntime, who: bytes) -> list[BalanceLock]:
    return balances.Locks.get(mock.state, who)


def test_bonded_stake_is_one_staking_lock_through_every_call(eco: MockRuntime) -> None:
    """The lock Polkadot.js reads as "locked" follows the ledger's total, and frozen with it;
    the free balance (what the account holds) never moves."""
    free = eco.free(BOB)
    expected = [500, 750, 750, 750, 750]  # total after bond, bond_extra, unbond, rebond, unbond
    steps: list[tuple[str, dict[str, int]]] = [
        ("bond", {"value": 500 * CAI}),
        ("bond_extra", {"max_additional": 250 * CAI}),
        ("unbond", {"value": 300 * CAI}),
        ("rebond", {"value": 100 * CAI}),
        ("unbond", {"value": 50 * CAI}),
    ]
    for (call, args), total in zip(steps, expected, strict=True):
        eco.dispatch(BOB, "Staking", call, **args)
        assert staking_locks(eco, BOB) == [BalanceLock(STAKING_LOCK_ID, total * CAI, "All")]
        assert frozen(eco, BOB) == total * CAI
    for _ in range(BONDING_DURATION):
        next_era(eco)
    eco.dispatch(BOB, "Staking", "withdraw_unbonded")
    assert staking_locks(eco, BOB) == [BalanceLock(STAKING_LOCK_ID, 500 * CAI, "All")]
    eco.dispatch(BOB, "Staking", "unbond", value=500 * CAI)
    for _ in range(BONDING_DURATION):
        next_era(eco)
    eco.dispatch(BOB, "Staking", "withdraw_unbonded")
    assert staking_locks(eco, BOB) == []
    assert frozen(eco, BOB) == 0
    assert eco.free(BOB) == free
    check_economy(eco)


def test_a_slash_lowers_the_staking_lock_with_the_bond(eco: MockRuntime) -> None:
    eco.dispatch(BOB, "Staking", "bond", value=1_000 * CAI)
    taken = staking.apply_ledger_slash(eco.ctx("root", []), BOB, 300 * CAI)
    assert taken == 300 * CAI
    assert staking_locks(eco, BOB) == [BalanceLock(STAKING_LOCK_ID, 700 * CAI, "All")]
    assert frozen(eco, BOB) == 700 * CAI
    check_economy(eco)


def test_an_era_is_active_from_its_first_block_with_that_blocks_time(eco: MockRuntime) -> None:
    next_era(eco)
    assert staking.ActiveEra.get(eco.state) == ActiveEraInfo(1, None)
    timestamp.Now.put(eco.state, 1_700_000_000_000)
    staking.on_finalize(eco.ctx("root", []))
    assert staking.ActiveEra.get(eco.state) == ActiveEraInfo(1, 1_700_000_000_000)
    timestamp.Now.put(eco.state, 1_700_000_001_000)
    staking.on_finalize(eco.ctx("root", []))  # a later block of the era keeps its start
    assert staking.ActiveEra.get(eco.state) == ActiveEraInfo(1, 1_700_000_000_000)
    session_length = eco.config.session.length
    assert list(staking.ErasStartSessionIndex.iter(eco.state)) == [
        (1, ERA_LENGTH // session_length)
    ]
    next_era(eco)
    assert staking.ActiveEra.get(eco.state) == ActiveEraInfo(2, None)
    assert CurrentEra.get(eco.state) == 2
    assert list(staking.ErasStartSessionIndex.iter(eco.state)) == [
        (2, 2 * ERA_LENGTH // session_length)
    ]


def test_dev_genesis_starts_era_zero_and_counts_its_validator() -> None:
    """The dev chain spec's genesis: era 0 current and active (its start is block 1's time),
    session 0 its start, one validator, and //Alice's genesis bond locked."""
    state = Overlay(MemoryKV())
    for key, value in genesis_storage(load_spec("dev")).items():
        state.put(key, value)
    assert state.get(CurrentEra.key) is not None  # clients read Some(0), never None
    assert CurrentEra.get(state) == 0
    assert staking.ActiveEra.get(state) == ActiveEraInfo(0, None)
    assert list(staking.ErasStartSessionIndex.iter(state)) == [(0, 0)]
    assert staking.ValidatorCount.get(state) == 1
    [(alice, lg)] = list(staking.Ledger.iter(state))
    assert balances.Locks.get(state, alice) == [BalanceLock(STAKING_LOCK_ID, lg.total, "All")]
    assert system.get_account(state, alice).data.frozen == lg.total == 1_000_000 * CAI


def test_wallet_items_have_frames_shapes() -> None:
    """What @polkadot/api-derive reads (session.indexes, session.info and Apps' calendar) is in
    the metadata with FRAME's modifiers and types: CurrentEra and ActiveEra are options."""
    items = {item.name: item for item in staking.SPEC.storage}
    assert items["CurrentEra"].modifier == "Optional"
    assert items["ActiveEra"].modifier == "Optional"
    assert items["ValidatorCount"].modifier == "Default"
    assert items["ErasStartSessionIndex"].hashers == ("Twox64Concat",)
    assert items["UnappliedSlashes"].hashers == ("Twox64Concat",)
    assert items["UnappliedSlashes"].default == []
    assert ACTIVE_ERA_INFO.encode(ActiveEraInfo(3, 1_000)) == bytes.fromhex(
        "03000000" + "01" + "e803000000000000"
    )
    constants = {c.name: c for c in staking.SPEC.constants}
    assert constants["SessionsPerEra"].getter(mock_config()) == 1  # dev: 10-block eras and sessions
