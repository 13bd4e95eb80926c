"""The staking economy as a hypothesis state machine: random sequences of transfers, staking,
registration, voting, work credits, eras with automatic payouts, offences and cancellations over
five accounts holding realistic CAI amounts (dev parameters, ED 10).

Failed calls must fail with a DispatchError and leave storage unchanged. After every block
(`run_to_block`) and every step, every pallet's try_state checks (`runtime.try_state`: votes add
up everywhere, ledgers, freezes, registrations, operators, slash and payout queues agree); after
every step, issuance moved only by the events that mint or burn and balances stay within u128.

Known bugs are steered around so that the machine keeps checking everything else (each one has a
strict xfail test): u64 overflow of credited work (test_rewards: units here stay small), slashes
of ledgers holding a few units (test_slashing: amounts here are CAI-sized).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain.codec import U128_MAX
from chain.frame.pallet import DispatchError
from pallets.balances.pallet import Burned, DustLost, Minted, Slashed, Withdraw
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.rewards import pallet as rewards
from pallets.rewards.pallet import EraPaid, Rewarded
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenderSlashed
from pallets.staking import pallet as staking
from pallets.system import pallet as system
from pallets.voting import pallet as voting
from tests.pallets.mock import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    ED,
    EVE,
    SUDO_KEY,
    MockRuntime,
    mock_config,
)
from tests.pallets.test_staking import (
    CAI,
    EMISSION,
    MIN_COORDINATOR,
    MIN_MINER,
    OP1,
    OP2,
    OP3,
    PERBILL,
    check_economy,
    coordinator_info,
    miner_info,
    next_era,
    payouts_idle,
    run_to_block,
)

STAKERS = [ALICE, BOB, CHARLIE, DAVE, EVE]
BALANCES = {
    ALICE: 6_000_000 * CAI,  # can be a coordinator
    BOB: 2_500_000 * CAI,  # can be a coordinator
    CHARLIE: 300_000 * CAI,
    DAVE: 60_000 * CAI,
    EVE: 25_000 * CAI,  # barely a miner
}
OPERATORS = [OP1, OP2, OP3, *STAKERS]
ABSOLUTE = [0, 1, ED - 1, ED, CAI, 1_000 * CAI, MIN_MINER, MIN_COORDINATOR, U128_MAX]

stakers = st.sampled_from(STAKERS)
operators = st.sampled_from(OPERATORS)
# an amount: a permille of what the call could use (over 1000 overshoots), or a fixed value
amounts = st.one_of(
    st.tuples(st.just("frac"), st.integers(0, 1_100)),
    st.tuples(st.just("abs"), st.sampled_from(ABSOLUTE)),
)
roles = st.sampled_from(["Miner", "Coordinator"])


def resolve(spec: tuple[str, int], base: int) -> int:
    kind, value = spec
    return max(base, 0) * value // 1_000 if kind == "frac" else value


class EconomyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mock = MockRuntime(mock_config(), dict(BALANCES), SUDO_KEY)
        self.expected_issuance = self.mock.issuance()
        self.rewarded: dict[int, int] = {}  # era -> sum of Rewarded so far
        self.slashed_since: int = 0  # Slashed amounts since the last OffenderSlashed

    # ---- plumbing ---------------------------------------------------------------------------

    def account_events(self, events: list[Any]) -> None:
        """Follow issuance through the events that mint or burn; cross-check payouts/slashes."""
        for e in events:
            if isinstance(e, Minted):
                self.expected_issuance += e.amount
            elif isinstance(e, (Slashed, DustLost, Withdraw, Burned)):
                self.expected_issuance -= e.amount
            if isinstance(e, Slashed):
                self.slashed_since += e.amount
            elif isinstance(e, OffenderSlashed):
                total = e.own + e.voters
                assert total == self.slashed_since, (total, self.slashed_since)
                fee_share = self.mock.config.slashing.finder_fee
                assert e.reporter_fee in (0, total * fee_share // PERBILL)
                self.slashed_since = 0
            elif isinstance(e, Rewarded):
                self.rewarded[e.era] = self.rewarded.get(e.era, 0) + e.amount
            elif isinstance(e, EraPaid):
                assert e.minted == self.rewarded.pop(e.era, 0)
                assert e.minted <= EMISSION
        assert self.slashed_since == 0, "Slashed without OffenderSlashed"

    def call(self, origin: Any, pallet: str, name: str, **args: Any) -> bool:
        mock = self.mock
        before = mock.snapshot()
        try:
            mock.dispatch(origin, pallet, name, **args)
        except DispatchError:
            assert mock.snapshot() == before, f"failed {pallet}.{name} changed storage"
            assert mock.events() == []
            return False
        self.account_events(mock.events())
        return True

    def ledger(self, who: bytes) -> staking.StakingLedger | None:
        return staking.get_ledger(self.mock.state, who)

    def spendable(self, who: bytes) -> int:
        data = self.mock.account(who).data
        return data.free - data.frozen - ED

    # ---- setup -------------------------------------------------------------------------------

    @initialize(
        bonds=st.lists(st.integers(0, 900), min_size=len(STAKERS), max_size=len(STAKERS)),
        miners=st.booleans(),
        coordinator=st.booleans(),
        votes=st.booleans(),
    )
    def setup(self, bonds: list[int], miners: bool, coordinator: bool, votes: bool) -> None:
        """Some stake, and possibly registrations and votes, to start from."""
        if miners:
            for who, op in ((CHARLIE, OP1), (DAVE, OP2)):
                assert self.call(who, "Staking", "bond", value=MIN_MINER + 1_000 * CAI)
                assert self.call(who, "Registry", "register_miner", operator=op, info=miner_info())
        if coordinator:
            assert self.call(BOB, "Staking", "bond", value=MIN_COORDINATOR)
            assert self.call(
                BOB, "Registry", "register_coordinator", operator=OP3, info=coordinator_info()
            )
        for who, permille in zip(STAKERS, bonds, strict=True):
            if permille and self.ledger(who) is None:
                assert self.call(
                    who, "Staking", "bond", value=self.spendable(who) * permille // 1000
                )
        targets = self.registered()
        if votes and targets:
            for i, voter in enumerate((ALICE, EVE)):
                lg = self.ledger(voter)
                if lg is not None and lg.free_to_allocate > 1:
                    value = lg.free_to_allocate // 2
                    target = targets[i % len(targets)]
                    assert self.call(voter, "Voting", "vote", target=target, value=value)

    def pick(self, data: st.DataObject, options: list[bytes]) -> bytes:
        """Mostly one of `options` (taken from the state), sometimes any staker."""
        if options and data.draw(st.integers(0, 9)) < 8:
            return data.draw(st.sampled_from(sorted(options)))
        return data.draw(stakers)

    def bonded(self) -> list[bytes]:
        return [w for w, _ in staking.Ledger.iter(self.mock.state)]

    def registered(self) -> list[bytes]:
        state = self.mock.state
        return [w for w, _ in registry.Miners.iter(state)] + [
            w for w, _ in registry.Coordinators.iter(state)
        ]

    # ---- balances & staking ----------------------------------------------------------------------

    @rule(src=stakers, dst=st.sampled_from([*STAKERS, OP1]), amount=amounts)
    def transfer(self, src: bytes, dst: bytes, amount: tuple[str, int]) -> None:
        value = resolve(amount, self.mock.free(src) - self.mock.account(src).data.frozen)
        self.call(src, "Balances", "transfer_allow_death", dest=("Id", dst), value=value)

    @rule(who=stakers, amount=amounts)
    def bond(self, who: bytes, amount: tuple[str, int]) -> None:
        value = resolve(amount, self.spendable(who))
        if self.call(who, "Staking", "bond", value=value):
            assert self.ledger(who) == staking.StakingLedger(who, value, value, [], 0)

    @rule(amount=amounts, data=st.data())
    def bond_extra(self, amount: tuple[str, int], data: st.DataObject) -> None:
        who = self.pick(data, self.bonded())
        before = self.ledger(who)
        value = resolve(amount, self.spendable(who))
        if self.call(who, "Staking", "bond_extra", max_additional=value):
            after = self.ledger(who)
            assert before is not None
            assert after is not None
            assert (after.total, after.active) == (before.total + value, before.active + value)

    @rule(amount=amounts, data=st.data())
    def unbond(self, amount: tuple[str, int], data: st.DataObject) -> None:
        who = self.pick(data, self.bonded())
        before = self.ledger(who)
        value = resolve(amount, before.free_to_allocate if before else 0)
        if self.call(who, "Staking", "unbond", value=value):
            after = self.ledger(who)
            assert before is not None
            assert after is not None
            assert (after.total, after.active) == (before.total, before.active - value)

    @rule(amount=amounts, data=st.data())
    def rebond(self, amount: tuple[str, int], data: st.DataObject) -> None:
        who = self.pick(data, self.bonded())
        before = self.ledger(who)
        unlocking = sum(c.value for c in before.unlocking) if before else 0
        value = resolve(amount, unlocking)
        if self.call(who, "Staking", "rebond", value=value):
            after = self.ledger(who)
            assert before is not None
            assert after is not None
            assert after.active == before.active + min(value, unlocking)
            assert after.total == before.total

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        who = self.pick(data, self.bonded())
        before = self.ledger(who)
        if self.call(who, "Staking", "withdraw_unbonded"):
            after = self.ledger(who)
            assert before is not None
            era = staking.CurrentEra.get(self.mock.state)
            due = sum(c.value for c in before.unlocking if c.era <= era)
            assert (after.total if after else 0) == before.total - due

    # ---- registry --------------------------------------------------------------------------------

    @rule(who=stakers, role=roles, operator=operators, url_ok=st.booleans())
    def register(self, who: bytes, role: str, operator: bytes, url_ok: bool) -> None:
        registered = registry.get_registration(self.mock.state, who) is not None
        info = (
            coordinator_info(b"https://c" if url_ok else b"c")
            if role == "Coordinator"
            else (miner_info())
        )
        call = "register_miner" if role == "Miner" else "register_coordinator"
        if self.call(who, "Registry", call, operator=operator, info=info):
            assert not registered
            assert operator != who
            found = registry.get_registration(self.mock.state, who)
            assert found is not None
            assert found[0] == role
            assert found[1].status == "Active"

    @rule(data=st.data())
    def deregister(self, data: st.DataObject) -> None:
        who = self.pick(data, self.registered())
        if self.call(who, "Registry", "deregister"):
            assert registry.get_registration(self.mock.state, who) is None

    @rule(operator=operators, data=st.data())
    def set_operator(self, operator: bytes, data: st.DataObject) -> None:
        who = self.pick(data, self.registered())
        self.call(who, "Registry", "set_operator", operator=operator)

    @rule(commission=st.sampled_from([0, 50_000_000, PERBILL, PERBILL + 1]), data=st.data())
    def set_commission(self, commission: int, data: st.DataObject) -> None:
        who = self.pick(data, self.registered())
        ok = self.call(who, "Registry", "set_commission", commission=commission)
        assert not ok or commission <= PERBILL

    # ---- voting ----------------------------------------------------------------------------------

    @rule(amount=amounts, data=st.data())
    def vote(self, amount: tuple[str, int], data: st.DataObject) -> None:
        registered = self.registered()
        voter = self.pick(data, [w for w in self.bonded() if w not in registered])
        target = self.pick(data, registered)
        lg = self.ledger(voter)
        found = registry.get_registration(self.mock.state, voter)
        need = registry.min_stake(self.mock.config, found[0]) if found else 0
        value = resolve(amount, (lg.free_to_allocate - need) if lg else 0)
        old = voting.get_vote(self.mock.state, voter, target)
        if self.call(voter, "Voting", "vote", target=target, value=value):
            assert voting.get_vote(self.mock.state, voter, target) == old + value
            assert registry.is_active(self.mock.state, target)
            assert voter != target

    @rule(amount=amounts, data=st.data())
    def unvote(self, amount: tuple[str, int], data: st.DataObject) -> None:
        votes = sorted((v, t) for v, t, _ in voting.Votes.iter(self.mock.state))
        if votes and data.draw(st.integers(0, 9)) < 8:
            voter, target = data.draw(st.sampled_from(votes))
        else:
            voter, target = data.draw(stakers), data.draw(stakers)
        old = voting.get_vote(self.mock.state, voter, target)
        value = resolve(amount, old)
        if self.call(voter, "Voting", "unvote", target=target, value=value):
            assert voting.get_vote(self.mock.state, voter, target) == old - value

    # ---- rewards & slashing ----------------------------------------------------------------------

    @rule(units=st.integers(0, 1_000), root=st.integers(0, 9), data=st.data())
    def credit_work(self, units: int, root: int, data: st.DataObject) -> None:
        who = self.pick(data, self.registered())
        found = registry.get_registration(self.mock.state, who)
        role = found[0] if found and data.draw(st.integers(0, 9)) else data.draw(roles)
        origin = "root" if root else who
        ok = self.call(origin, "Rewards", "credit_work", who=who, role=role, units=units)
        assert not ok or (origin == "root" and units > 0)

    @rule(
        reporter=st.one_of(st.none(), stakers, st.just(OP2)),
        kind=st.sampled_from(["InvalidResult", "Equivocation"]),
        evidence=st.integers(0, 4),
        data=st.data(),
    )
    def report(self, reporter: bytes | None, kind: str, evidence: int, data: st.DataObject) -> None:
        if data.draw(st.integers(0, 2)):
            return  # offences suspend targets: keep them rarer than the other calls
        offender = self.pick(data, self.registered())
        oid = slashing.offence_id(kind, bytes([evidence]))
        seen = slashing.Offences.contains(self.mock.state, oid)
        ok = self.call(
            "root",
            "Slashing",
            "force_report_offence",
            offender=offender,
            reporter=reporter,
            kind=kind,
            evidence=bytes([evidence]),
        )
        assert not (ok and seen), "an offence was reported twice"

    @rule(offset=st.integers(0, 2), indices=st.lists(st.integers(0, 3), max_size=3))
    def cancel(self, offset: int, indices: list[int]) -> None:
        era = staking.CurrentEra.get(self.mock.state) + offset
        queued = len(slashing.UnappliedSlashes.get(self.mock.state, era))
        ok = self.call("root", "Slashing", "cancel_deferred_slash", era=era, slash_indices=indices)
        assert ok == (bool(indices) and max(indices) < queued)

    @rule()
    def new_era(self) -> None:
        self.advance_era()

    # burned CAI backing the work: from a few planck (the rebate pays less than the pool) to
    # more than the pool can rebate (the pool is split pro rata)
    @rule(units=st.lists(st.integers(1, 5_000 * CAI), min_size=1, max_size=5))
    def work_then_new_era(self, units: list[int]) -> None:
        """Root credits work to registered targets (in the registered role), then the era ends."""
        regs = self.registered()
        for who, n in zip(regs, units, strict=False):
            found = registry.get_registration(self.mock.state, who)
            assert found is not None
            assert self.call("root", "Rewards", "credit_work", who=who, role=found[0], units=n)
        self.advance_era()

    def advance_era(self) -> None:
        """Run to the next era boundary (payouts start, slashes apply), then until payouts end;
        check every account was paid exactly its share of the ended era."""
        state = self.mock.state
        era = staking.CurrentEra.get(state)
        work = [
            (role, who, units)
            for role, m in (("Miner", rewards.MinerWork), ("Coordinator", rewards.CoordinatorWork))
            for e, who, units in m.iter(state)
            if e == era
        ]
        totals = rewards.EraTotals.get(state, era)
        funded = {who for who, info in system.Account.iter(state) if info.data.free >= ED}
        events = next_era(self.mock)
        assert staking.CurrentEra.get(state) == era + 1
        assert slashing.UnappliedSlashes.get(state, era + 1) == []
        for _ in range(50):
            if payouts_idle(self.mock):
                break
            events += run_to_block(self.mock, self.mock.block_number + 1)
        assert payouts_idle(self.mock)
        self.account_events(events)
        assert self.rewarded == {}, "Rewarded without EraPaid"
        # Registrations, stakes and votes do not change while an era is paid (slashes apply
        # before the payout starts), so the expected shares can be computed afterwards.
        expected = self.expected_rewards(work, totals)
        paid: dict[bytes, int] = {}
        for e in events:
            if isinstance(e, Rewarded):
                assert e.era == era
                paid[e.who] = paid.get(e.who, 0) + e.amount
        for who in set(paid) | set(expected):
            if who in funded:
                assert paid.get(who, 0) == expected.get(who, 0), who.hex()
            else:  # a share too small to create an account is not paid
                assert paid.get(who, 0) in (0, expected.get(who, 0))

    def expected_rewards(
        self, work: list[tuple[str, bytes, int]], totals: rewards.EraTotal | None
    ) -> dict[bytes, int]:
        state = self.mock.state
        cfg = self.mock.config.rewards
        out: dict[bytes, int] = {}
        for role, who, units in work:
            assert totals is not None
            found = registry.get_registration(state, who)
            if found is None or found[0] != role or found[1].status == "Suspended":
                continue  # earns nothing, and nothing is minted for it
            total = totals.miner_work if role == "Miner" else totals.coordinator_work
            # the role's rebate of the burns, at most its pool, split by credit
            reward = rewards.role_emission(cfg, Role(role), total) * units // total
            votes = sorted(voting.Voters.iter_prefix(state, who))
            plan = rewards.compute_target_payout(
                reward, found[1].commission, found[1].own_stake, votes
            )
            for account, amount in [(who, plan.to_target), *plan.to_voters]:
                if amount > 0:
                    out[account] = out.get(account, 0) + amount
        return out

    @precondition(lambda self: self.mock.block_number % 10 != 9)
    @rule(blocks=st.integers(1, 3))
    def some_blocks(self, blocks: int) -> None:
        length = self.mock.config.staking.era_length
        target = min(
            self.mock.block_number + blocks, (self.mock.block_number // length + 1) * length - 1
        )
        self.account_events(run_to_block(self.mock, target))

    # ---- invariants ------------------------------------------------------------------------------

    @invariant()
    def pallets_try_state(self) -> None:
        assert self.mock.state.depth == 0
        check_economy(self.mock)

    @invariant()
    def issuance_moves_only_by_mint_and_burn(self) -> None:
        issuance = self.mock.issuance()
        assert issuance == self.expected_issuance
        assert 0 <= issuance <= U128_MAX
        for _, info in system.Account.iter(self.mock.state):
            assert 0 <= info.data.free <= U128_MAX
            assert 0 <= info.data.frozen <= info.data.free


EconomyMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_economy_state_machine = EconomyMachine.TestCase
