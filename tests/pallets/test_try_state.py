"""try_state: every pallet's invariants hold on a busy economy and catch each kind of corruption.

The mock runtime runs `runtime.try_state` after every test; here each pallet's check is shown to
fail on state that breaks its invariant (written directly, under a checkpoint that is reverted
before the teardown checks run again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from chain.frame.common import AccountId
from chain.storage.overlay import Overlay
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.faucet import pallet as faucet
from pallets.finality import pallet as finality
from pallets.randomness import pallet as randomness
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.runtime import PALLETS
from pallets.session import pallet as session
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceKind
from pallets.staking import pallet as staking
from pallets.sudo import pallet as sudo
from pallets.system import pallet as system
from pallets.tasks import pallet as tasks
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment import pallet as transaction_payment
from pallets.voting import pallet as voting
from tests.pallets.conftest import MockFactory
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, MockRuntime, add_validators
from tests.pallets.test_staking import CAI, eco, run_to_block
from tests.pallets.test_tasks import commit, net, rc, submit, tc, tid

__all__ = ["eco", "net"]  # the fixtures

Corruption = Callable[[MockRuntime, Overlay], None]

# Pallets whose state admits no invariant beyond what its codec already enforces.
WITHOUT_INVARIANTS = {sudo.SPEC.name: "its state is one optional key, and any key is valid"}


@pytest.fixture
def busy(net: MockRuntime) -> MockRuntime:
    """Validators with session keys, votes, open and settled tasks, work credited, a pending
    era payout and a deferred slash."""
    add_validators(net, [DAVE], bond=0)
    net.dispatch(BOB, "Staking", "bond_extra", max_additional=10_000 * CAI)
    net.dispatch(BOB, "Voting", "vote", target=CHARLIE, value=10_000 * CAI)
    commit(net, tc("done"), tc("late", miner=DAVE))
    submit(net, CHARLIE, rc("done"))
    run_to_block(net, 12)  # "done" accepted and "late" missed at their deadline; era 1 starts
    commit(net, tc("fresh", deadline=30))
    net.dispatch(
        "root",
        "Slashing",
        "force_report_offence",
        offender=CHARLIE,
        reporter=None,
        kind=OffenceKind.INVALID_RESULT,
        evidence=b"e",
    )
    net.runtime.try_state(net.state)
    return net


def _bump_issuance(m: MockRuntime, s: Overlay) -> None:
    balances.TotalIssuance.put(s, balances.TotalIssuance.get(s) + 1)


def _empty_account(m: MockRuntime, s: Overlay) -> None:
    system.Account.put(s, AccountId(b"\x99" * 32), system.AccountInfo())


def _half_set_timestamp(m: MockRuntime, s: Overlay) -> None:
    timestamp.DidUpdate.put(s, True)
    timestamp.Now.kill(s)


def _twice_an_authority(m: MockRuntime, s: Overlay) -> None:
    aura.Authorities.put(s, [ALICE, ALICE])


def _overrevealed_onion(m: MockRuntime, s: Overlay) -> None:
    randomness.Onions.put(s, ALICE, randomness.Onion(b"\x01" * 32, 2**32 - 1, 1))


def _validator_without_keys(m: MockRuntime, s: Overlay) -> None:
    session.NextKeys.remove(s, AccountId(DAVE))


def _bls_keys_of_another_set(m: MockRuntime, s: Overlay) -> None:
    finality.BlsKeys.put(s, [b"\x01" * 48])


def _free_weight(m: MockRuntime, s: Overlay) -> None:
    transaction_payment.NextFeeMultiplier.put(s, 0)


def _ledger_total_off(m: MockRuntime, s: Overlay) -> None:
    ledger = staking.get_ledger(s, CHARLIE)
    assert ledger is not None
    staking.Ledger.put(s, AccountId(CHARLIE), dataclasses.replace(ledger, total=ledger.total + 1))


def _lock_not_the_freeze(m: MockRuntime, s: Overlay) -> None:
    balances.Locks.put(s, AccountId(BOB), [balances.BalanceLock(b"other   ", 1, "All")])


def _staking_lock_off(m: MockRuntime, s: Overlay) -> None:
    [lock] = balances.Locks.get(s, AccountId(CHARLIE))
    balances.Locks.put(s, AccountId(CHARLIE), [dataclasses.replace(lock, amount=lock.amount - 1)])


def _active_era_behind(m: MockRuntime, s: Overlay) -> None:
    staking.ActiveEra.put(s, staking.ActiveEraInfo(staking.CurrentEra.get(s) - 1, None))


def _validator_count_off(m: MockRuntime, s: Overlay) -> None:
    staking.ValidatorCount.put(s, 99)


def _stale_own_stake(m: MockRuntime, s: Overlay) -> None:
    reg = registry.Miners.get(s, AccountId(CHARLIE))
    registry.Miners.put(s, AccountId(CHARLIE), dataclasses.replace(reg, own_stake=1))


def _stray_operator(m: MockRuntime, s: Overlay) -> None:
    registry.OperatorOf.put(
        s, AccountId(b"\x77" * 32), registry.Operator(registry.Role.MINER, DAVE)
    )


def _total_votes_off(m: MockRuntime, s: Overlay) -> None:
    voting.TotalVotes.put(s, AccountId(CHARLIE), 1)


def _voter_count_off(m: MockRuntime, s: Overlay) -> None:
    voting.VoterCount.put(s, AccountId(CHARLIE), 7)


def _era_totals_off(m: MockRuntime, s: Overlay) -> None:
    era = staking.CurrentEra.get(s)
    rewards.EraTotals.put(s, era, rewards.EraTotal(miner_work=99))


def _slash_without_offence(m: MockRuntime, s: Overlay) -> None:
    era = staking.CurrentEra.get(s) + 1
    [queued] = slashing.UnappliedSlashes.get(s, era)
    slashing.UnappliedSlashes.put(s, era, [dataclasses.replace(queued, offence_id=b"\x00" * 32)])


def _open_count_off(m: MockRuntime, s: Overlay) -> None:
    tasks.OpenTasks.put(s, tasks.OpenTasks.get(s) + 1)


def _task_without_deadline(m: MockRuntime, s: Overlay) -> None:
    t = tasks.Tasks.get(s, tid("fresh"))
    assert t is not None
    tasks.Deadlines.remove(s, t.deadline, tid("fresh"))


def _stats_off(m: MockRuntime, s: Overlay) -> None:
    stats = tasks.Stats.get(s, AccountId(CHARLIE))
    tasks.Stats.put(s, AccountId(CHARLIE), dataclasses.replace(stats, assigned=stats.assigned - 1))


def _escrow_off(m: MockRuntime, s: Overlay) -> None:
    t = tasks.Tasks.get(s, tid("fresh"))
    assert t is not None
    info = system.get_account(s, t.payer)
    data = dataclasses.replace(info.data, free=info.data.free + 1, reserved=info.data.reserved - 1)
    system.Account.put(s, AccountId(t.payer), dataclasses.replace(info, data=data))


CORRUPTIONS: list[tuple[str, Corruption, str]] = [
    ("System", _empty_account, "neither a provider nor a nonce"),
    ("Balances", _bump_issuance, "issuance drift"),
    ("Balances", _lock_not_the_freeze, "largest lock"),
    ("Timestamp", _half_set_timestamp, "DidUpdate"),
    ("Aura", _twice_an_authority, "appears twice"),
    ("Randomness", _overrevealed_onion, "revealed"),
    ("Session", _validator_without_keys, "has no session keys"),
    ("Session", _validator_count_off, "ValidatorCount"),
    ("Finality", _bls_keys_of_another_set, "BlsKeys differ"),
    ("TransactionPayment", _free_weight, "NextFeeMultiplier"),
    ("Staking", _ledger_total_off, r"active \+ unlocking"),
    ("Staking", _staking_lock_off, "staking lock"),
    ("Staking", _active_era_behind, "ActiveEra"),
    ("Registry", _stale_own_stake, "own stake"),
    ("Registry", _stray_operator, "OperatorOf"),
    ("Voting", _total_votes_off, "TotalVotes"),
    ("Voting", _voter_count_off, "VoterCount"),
    ("Rewards", _era_totals_off, "totals differ"),
    ("Slashing", _slash_without_offence, "no recorded offence"),
    ("Tasks", _open_count_off, "OpenTasks"),
    ("Tasks", _task_without_deadline, "Deadlines"),
    ("Tasks", _stats_off, "counts fewer tasks"),
    ("Tasks", _escrow_off, "is not its escrow"),
]


@pytest.mark.parametrize(
    ("pallet", "corrupt", "message"),
    CORRUPTIONS,
    ids=[f"{p}-{c.__name__}" for p, c, _ in CORRUPTIONS],
)
def test_try_state_detects(
    busy: MockRuntime, pallet: str, corrupt: Corruption, message: str
) -> None:
    state = busy.state
    state.checkpoint()
    try:
        corrupt(busy, state)
        with pytest.raises(AssertionError, match=message):
            busy.runtime.by_name[pallet].hooks["try_state"](state, busy.config)
        with pytest.raises(AssertionError):
            busy.runtime.try_state(state)
    finally:
        state.revert_checkpoint()


def test_try_state_detects_drips_on_a_closed_faucet(new_test_ext: MockFactory) -> None:
    closed = new_test_ext(enabled=False)
    closed.state.checkpoint()
    faucet.LastDrip.put(closed.state, ALICE, 1)
    with pytest.raises(AssertionError, match="faucet is disabled"):
        closed.runtime.try_state(closed.state)
    closed.state.revert_checkpoint()


def test_every_pallet_declares_invariants() -> None:
    missing = {p.name for p in PALLETS if "try_state" not in p.hooks}
    assert missing == set(WITHOUT_INVARIANTS), missing
    for name in {c[0] for c in CORRUPTIONS} | {"Faucet"}:
        assert name not in WITHOUT_INVARIANTS
    assert {p.name for p in PALLETS} - set(WITHOUT_INVARIANTS) == {c[0] for c in CORRUPTIONS} | {
        "Faucet"
    }, "every pallet's invariants have a corruption test"
