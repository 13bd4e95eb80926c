"""Rewards: credit_work (root), the pure payout split, and automatic era payouts bounded per block:
pools by role, split by work, commission, pro-rata voters, unpaid suspended/deregistered targets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.frame.pallet import Origin
from pallets.balances.pallet import Minted
from pallets.registry.pallet import Role
from pallets.rewards import pallet as rewards
from pallets.rewards.pallet import (
    EraPaid,
    EraTotal,
    EraTotals,
    Error,
    MinerWork,
    Rewarded,
    TargetPayout,
    TargetRewarded,
    WorkCredited,
    compute_target_payout,
)
from pallets.staking import pallet as staking
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, EVE, MockRuntime
from tests.pallets.test_staking import (
    CAI,
    COORDINATOR_POOL,
    EMISSION,
    ERA_LENGTH,
    FERDIE,
    MIN_MINER,
    MINER_POOL,
    OP1,
    OP2,
    OP3,
    OP4,
    OP5,
    PERBILL,
    check_economy,
    eco,
    finish_payouts,
    next_era,
    of_type,
    payouts_idle,
    register_coordinator,
    register_miner,
    run_to_block,
)

__all__ = ["eco"]  # the fixture


# Work is credited in burned CAI. UNIT is so much burn that any credit of a unit or more backs
# more emission than a role's pool holds: the pool is then split pro rata by credit, which the
# payout tests below check. Below the pool, emission is the rebate of the burns
# (test_era_payout_below_the_pool_is_the_rebate_of_the_burns).
UNIT = 10_000 * CAI


def credit(mock: MockRuntime, who: bytes, units: int, role: str = "Miner") -> None:
    mock.dispatch("root", "Rewards", "credit_work", who=who, role=role, units=units * UNIT)


def rewarded(events: list[Any]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for e in of_type(events, Rewarded):
        out[e.who] = out.get(e.who, 0) + e.amount
    return out


def pay_era(mock: MockRuntime) -> list[Any]:
    """End the current era and run until its payout is done."""
    events = next_era(mock)
    return events + finish_payouts(mock)


# ---- credit_work ---------------------------------------------------------------------------------


def test_credit_work_root_credits_current_era(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_coordinator(eco, BOB, OP2)
    next_era(eco)
    credit(eco, ALICE, 3)
    assert eco.events() == [WorkCredited(who=ALICE, role="Miner", units=3 * UNIT, era=1)]
    credit(eco, ALICE, 2)
    credit(eco, BOB, 7, role="Coordinator")
    assert MinerWork.get(eco.state, 1, ALICE) == 5 * UNIT
    assert rewards.CoordinatorWork.get(eco.state, 1, BOB) == 7 * UNIT
    assert EraTotals.get(eco.state, 1) == EraTotal(miner_work=5 * UNIT, coordinator_work=7 * UNIT)
    assert EraTotals.get(eco.state, 0) is None


@pytest.mark.parametrize("origin", [ALICE, Origin.none()], ids=["signed", "none"])
def test_credit_work_non_root_is_bad_origin(eco: MockRuntime, origin: Any) -> None:
    register_miner(eco, ALICE, OP1)
    eco.assert_noop(origin, "Rewards", "credit_work", "BadOrigin", who=ALICE, role="Miner", units=1)


def test_credit_work_zero_work(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.assert_noop(
        "root", "Rewards", "credit_work", Error.ZERO_WORK, who=ALICE, role="Miner", units=0
    )


@pytest.mark.parametrize("role", ["Miner", "Coordinator"])
def test_credit_work_not_registered(eco: MockRuntime, role: str) -> None:
    eco.dispatch(ALICE, "Staking", "bond", value=MIN_MINER)
    eco.assert_noop(
        "root", "Rewards", "credit_work", Error.NOT_REGISTERED, who=ALICE, role=role, units=1
    )


def test_credit_work_wrong_role_is_not_registered(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.assert_noop(
        "root",
        "Rewards",
        "credit_work",
        Error.NOT_REGISTERED,
        who=ALICE,
        role="Coordinator",
        units=1,
    )


def test_credit_work_saturates_at_u128_max(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    eco.dispatch("root", "Rewards", "credit_work", who=ALICE, role="Miner", units=2**128 - 1)
    credit(eco, ALICE, 1)  # saturating arithmetic: the call succeeds and the counter stays put
    era = staking.CurrentEra.get(eco.state)
    assert rewards.MinerWork.get(eco.state, era, ALICE) == 2**128 - 1
    assert rewards.EraTotals.get(eco.state, era).miner_work == 2**128 - 1


# ---- compute_target_payout (pure) ---------------------------------------------------------------


def test_compute_target_payout_pro_rata_without_commission() -> None:
    assert compute_target_payout(1_000, 0, 500, [(BOB, 300), (CHARLIE, 200)]) == TargetPayout(
        1_000, 500, [(BOB, 300), (CHARLIE, 200)]
    )


def test_compute_target_payout_commission_first() -> None:
    # 10% kept (100), the remaining 900 shared by stake 300 : 600
    assert compute_target_payout(1_000, 100_000_000, 300, [(BOB, 600)]) == TargetPayout(
        1_000, 400, [(BOB, 600)], commission=100
    )


def test_compute_target_payout_rounding_dust_goes_to_target() -> None:
    plan = compute_target_payout(100, 0, 1, [(BOB, 1), (CHARLIE, 1)])
    assert plan == TargetPayout(100, 34, [(BOB, 33), (CHARLIE, 33)])


def test_compute_target_payout_full_commission_leaves_voters_nothing() -> None:
    plan = compute_target_payout(777, PERBILL, 10, [(BOB, 90)])
    assert plan == TargetPayout(777, 777, [(BOB, 0)], commission=777)


def test_compute_target_payout_no_stake_all_to_target() -> None:
    assert compute_target_payout(123, 5, 0, []) == TargetPayout(123, 123, [])


@settings(max_examples=200, deadline=None)
@given(
    reward=st.integers(0, 10**27),
    commission=st.integers(0, PERBILL),
    own=st.integers(0, 10**26),
    votes=st.lists(st.integers(0, 10**26), max_size=6),
)
def test_compute_target_payout_parts_sum_exactly(
    reward: int, commission: int, own: int, votes: list[int]
) -> None:
    voters = [(bytes([i + 1]) * 32, v) for i, v in enumerate(votes)]
    plan = compute_target_payout(reward, commission, own, voters)
    assert plan.total == reward
    assert plan.to_target + sum(a for _, a in plan.to_voters) == reward
    stake = own + sum(votes)
    keep = reward * commission // PERBILL
    if stake == 0:
        assert (plan.to_target, plan.to_voters) == (reward, [])
        return
    assert plan.to_voters == [(w, (reward - keep) * v // stake) for w, v in voters]
    assert plan.to_target >= keep + (reward - keep) * own // stake
    assert plan.to_target - keep - (reward - keep) * own // stake <= len(voters) + 1  # dust only


# ---- era payouts ---------------------------------------------------------------------------------


def test_era_payout_commission_and_voter_shares(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)  # own stake 20,000 CAI
    eco.dispatch(ALICE, "Registry", "set_commission", commission=100_000_000)  # 10%
    eco.dispatch(BOB, "Staking", "bond", value=5_000 * CAI)
    eco.dispatch(BOB, "Voting", "vote", target=ALICE, value=5_000 * CAI)
    credit(eco, ALICE, 5)
    issuance = eco.issuance()
    assert run_to_block(eco, ERA_LENGTH - 1) == []  # nothing before the era ends
    events = next_era(eco)
    # 800 CAI: 80 commission, 720 by stake 20,000 : 5,000
    assert of_type(events, Rewarded) == [
        Rewarded(who=ALICE, era=0, amount=656 * CAI, target=ALICE),
        Rewarded(who=BOB, era=0, amount=144 * CAI, target=ALICE),  # a voter, paid for ALICE's work
    ]
    assert of_type(events, TargetRewarded) == [
        TargetRewarded(ALICE, "Miner", 0, 5 * UNIT, 800 * CAI, 80 * CAI, 144 * CAI)
    ]
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=MINER_POOL)]
    assert eco.issuance() == issuance + MINER_POOL
    assert payouts_idle(eco)
    assert EraTotals.get(eco.state, 0) is None
    assert list(MinerWork.iter(eco.state)) == []
    check_economy(eco)


def test_era_payout_split_by_work(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    credit(eco, ALICE, 3)
    credit(eco, BOB, 1)
    events = pay_era(eco)
    assert rewarded(events) == {ALICE: 600 * CAI, BOB: 200 * CAI}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=MINER_POOL)]


def test_era_payout_rounding_dust_is_not_minted(eco: MockRuntime) -> None:
    for who, op in ((ALICE, OP1), (BOB, OP2), (CHARLIE, OP3)):
        register_miner(eco, who, op)
        credit(eco, who, 1)
    issuance = eco.issuance()
    events = pay_era(eco)
    share = MINER_POOL // 3
    assert rewarded(events) == {ALICE: share, BOB: share, CHARLIE: share}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=3 * share)]
    assert eco.issuance() == issuance + 3 * share


def test_era_payout_spans_blocks_when_more_than_max_targets(eco: MockRuntime) -> None:
    miners = [(ALICE, OP1), (BOB, OP2), (CHARLIE, OP3), (DAVE, OP4), (EVE, OP5)]
    assert len(miners) > 2 * rewards.MAX_TARGETS_PER_BLOCK
    for who, op in miners:
        register_miner(eco, who, op)
        credit(eco, who, 1)
    eco.dispatch(FERDIE, "Staking", "bond", value=1_000 * CAI)
    eco.dispatch(FERDIE, "Voting", "vote", target=ALICE, value=1_000 * CAI)
    issuance = eco.issuance()
    per_block: list[list[Any]] = [next_era(eco)]
    while not payouts_idle(eco):
        per_block.append(run_to_block(eco, eco.block_number + 1))
    assert len(per_block) == 3
    targets = {who for who, _ in miners}
    for events in per_block:
        paid_targets = {e.who for e in of_type(events, Rewarded)} & targets
        assert len(paid_targets) <= rewards.MAX_TARGETS_PER_BLOCK
    assert [len(of_type(events, EraPaid)) for events in per_block] == [0, 0, 1]
    all_events = [e for events in per_block for e in events]
    total = sum(e.amount for e in of_type(all_events, Rewarded))
    assert of_type(all_events, EraPaid) == [EraPaid(era=0, minted=total)]
    assert total == MINER_POOL == sum(e.amount for e in of_type(all_events, Minted))
    assert set(rewarded(all_events)) == targets | {FERDIE}
    assert eco.issuance() == issuance + total
    check_economy(eco)


def test_era_payout_queue_carries_over_one_target_per_block(
    eco: MockRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rewards, "MAX_TARGETS_PER_BLOCK", 1)
    for who, op in ((ALICE, OP1), (BOB, OP2), (CHARLIE, OP3)):
        register_miner(eco, who, op)
        credit(eco, who, 1)
    first = next_era(eco)
    assert len(of_type(first, Rewarded)) == 1
    rest = finish_payouts(eco)
    assert len(of_type(rest, Rewarded)) == 2
    assert of_type(rest, EraPaid) == [EraPaid(era=0, minted=3 * (MINER_POOL // 3))]


def test_era_payout_coordinator_pool(eco: MockRuntime) -> None:
    register_coordinator(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    credit(eco, ALICE, 2, role="Coordinator")
    credit(eco, BOB, 1)
    events = pay_era(eco)
    assert rewarded(events) == {ALICE: COORDINATOR_POOL, BOB: MINER_POOL}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=EMISSION)]


def test_era_payout_only_coordinator_work_leaves_miner_pool_unminted(eco: MockRuntime) -> None:
    register_coordinator(eco, ALICE, OP1)
    credit(eco, ALICE, 1, role="Coordinator")
    issuance = eco.issuance()
    events = pay_era(eco)
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=COORDINATOR_POOL)]
    assert eco.issuance() == issuance + COORDINATOR_POOL


def test_era_without_work_pays_nothing(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    issuance = eco.issuance()
    events = next_era(eco)
    assert of_type(events, Rewarded) == of_type(events, EraPaid) == []
    assert payouts_idle(eco)
    assert eco.issuance() == issuance


def test_era_payout_suspended_target_unpaid_and_unminted(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    eco.dispatch(CHARLIE, "Staking", "bond", value=1_000 * CAI)
    eco.dispatch(CHARLIE, "Voting", "vote", target=ALICE, value=1_000 * CAI)
    credit(eco, ALICE, 1)
    credit(eco, BOB, 1)
    eco.dispatch(
        "root",
        "Slashing",
        "force_report_offence",
        offender=ALICE,
        reporter=None,
        kind="InvalidResult",
        evidence=b"bad result",
    )
    events = pay_era(eco)  # the slash is applied as era 1 starts, before era 0 is paid
    assert rewarded(events) == {BOB: MINER_POOL // 2}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=MINER_POOL // 2)]
    check_economy(eco)


def test_era_payout_deregistered_target_unpaid_and_unminted(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    eco.dispatch(CHARLIE, "Staking", "bond", value=1_000 * CAI)
    eco.dispatch(CHARLIE, "Voting", "vote", target=ALICE, value=1_000 * CAI)
    credit(eco, ALICE, 3)
    credit(eco, BOB, 1)
    eco.dispatch(ALICE, "Registry", "deregister")
    issuance = eco.issuance()
    events = pay_era(eco)
    assert rewarded(events) == {BOB: MINER_POOL // 4}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=MINER_POOL // 4)]
    assert eco.issuance() == issuance + MINER_POOL // 4


def test_era_payout_target_reregistered_in_other_role_unpaid(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1, stake=2_000_000 * CAI)
    credit(eco, ALICE, 1)
    eco.dispatch(ALICE, "Registry", "deregister")
    eco.dispatch(
        ALICE,
        "Registry",
        "register_coordinator",
        operator=OP1,
        info=rewards.registry.Info(url=b"https://c"),
    )
    events = pay_era(eco)
    assert rewarded(events) == {}
    assert of_type(events, EraPaid) == [EraPaid(era=0, minted=0)]


def test_era_payouts_of_consecutive_eras_are_kept_apart(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, BOB, OP2)
    credit(eco, ALICE, 1)
    next_era(eco)  # era 0 paid at once (one target)
    credit(eco, BOB, 1)
    credit(eco, ALICE, 1)
    events = pay_era(eco)
    assert [e.era for e in of_type(events, Rewarded)] == [1, 1]
    assert rewarded(events) == {ALICE: MINER_POOL // 2, BOB: MINER_POOL // 2}
    assert of_type(events, EraPaid) == [EraPaid(era=1, minted=MINER_POOL)]


# ---- the rebate: emission backed by burns -------------------------------------------------------


def test_role_emission_is_the_rebate_of_the_burns_up_to_the_pool() -> None:
    cfg = rewards.Config(
        emission_per_era=1_000 * CAI, miner_share=800_000_000, burn_rebate=500_000_000
    )
    # 10 CAI burned: miners get 50% x 80% of it, coordinators 50% x 20%
    assert rewards.role_emission(cfg, Role.MINER, 10 * CAI) == 4 * CAI
    assert rewards.role_emission(cfg, Role.COORDINATOR, 10 * CAI) == 1 * CAI
    # the two roles together get back half of what was burned: never more than the burn
    assert (
        rewards.role_emission(cfg, Role.MINER, 7) + rewards.role_emission(cfg, Role.COORDINATOR, 7)
        <= 7 * 500_000_000 // PERBILL
    )
    # past the pools (800 / 200 CAI) the pool is all there is
    assert rewards.role_emission(cfg, Role.MINER, 10_000 * CAI) == 800 * CAI
    assert rewards.role_emission(cfg, Role.COORDINATOR, 10_000 * CAI) == 200 * CAI


@settings(max_examples=200, deadline=None)
@given(
    burned=st.integers(0, 10**30),
    rebate=st.integers(0, PERBILL - 1),
    share=st.integers(0, PERBILL),
)
def test_role_emission_never_pays_back_what_was_burned(
    burned: int, rebate: int, share: int
) -> None:
    cfg = rewards.Config(1_000 * CAI, share, rebate)
    both = rewards.role_emission(cfg, Role.MINER, burned) + rewards.role_emission(
        cfg, Role.COORDINATOR, burned
    )
    assert both <= burned * rebate // PERBILL + 1
    assert both < burned or burned == 0


def test_era_payout_below_the_pool_is_the_rebate_of_the_burns(eco: MockRuntime) -> None:
    register_miner(eco, ALICE, OP1)
    register_miner(eco, CHARLIE, OP3)
    register_coordinator(eco, BOB, OP2)
    burn = {ALICE: 30 * CAI, CHARLIE: 10 * CAI}
    for who, amount in burn.items():
        eco.dispatch("root", "Rewards", "credit_work", who=who, role="Miner", units=amount)
    eco.dispatch("root", "Rewards", "credit_work", who=BOB, role="Coordinator", units=40 * CAI)
    issuance = eco.issuance()
    events = pay_era(eco)
    # 40 CAI burned: the miners share 50% x 80% = 16 CAI by burn, the coordinator 4 CAI
    assert rewarded(events) == {ALICE: 12 * CAI, CHARLIE: 4 * CAI, BOB: 4 * CAI}
    assert eco.issuance() - issuance == 20 * CAI
    assert of_type(events, EraPaid) == [EraPaid(0, 20 * CAI)]
    check_economy(eco)
