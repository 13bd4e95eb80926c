"""Paid tasks as a hypothesis state machine on the real runtime (issue 12): two coordinators whose
operators pay for tasks, six miners, and checks at a rate drawn per example (none, 10%, all).

Rules commit batches at random prices (MinTaskPrice - 1, exactly MinTaskPrice, odd amounts whose
burn share leaves rounding dust, everything the operator can reserve and one planck more, far
more), reuse the ids of pruned tasks, submit honest or fake results, settle early, dispute, play
check rounds (the spec revealed or withheld; checkers honest, lying or absent; the miner
revealing or hiding its result), appeal, let deadlines and windows pass, run past
RetentionBlocks (pruning) and into new eras (rewards paid), and move operators' funds.

The test keeps its own model of every task (price, payer, the miner's result, each drawn
checker's answer) and, after every block and every call, checks:
- every pallet's try_state (which includes: each reserve == open prices + live deposits), and
  the same escrow from the model;
- a failed call failed with the error the model predicts and left storage unchanged;
- the referee: each round's agree/disagree/absent counts, and each settlement's status and
  outcome, follow docs/verification.md §7 from the answers the model gave; the offences reported
  are the wrong parties of each verdict, once each;
- each TaskPaid moves the price as docs/economics.md §1 says (recomputed here from the price,
  the outcome and the checkers that were right, not with `split_price`), and the payer's free
  and reserved balances, the miner's and every checker's balance moved by exactly that;
- emission credit (WorkCredited) is an accepted unchecked task's burn, to its miner and its
  coordinator, and nothing else;
- issuance moves only by the events that mint or burn;
- a task waits no longer than its deadline or check phase, and a settled task stays in state
  until exactly settled_at + RetentionBlocks, when it is pruned and its deposit comes back.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain.frame.common import PERBILL_ONE
from chain.frame.pallet import DispatchError
from chain.taskproto import result_commitment
from pallets.balances.pallet import Burned, DustLost, Minted, Slashed, Transfer, Withdraw
from pallets.config import VerificationConfig
from pallets.registry import pallet as registry
from pallets.registry.pallet import Role
from pallets.rewards.pallet import WorkCredited
from pallets.slashing.pallet import OffenceReported
from pallets.staking import pallet as staking
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import (
    CheckOpened,
    CheckPhaseChanged,
    Checks,
    Error,
    ResultCommit,
    Reveal,
    RoundClosed,
    TaskCommit,
    TaskCommitted,
    TaskPaid,
    Tasks,
    TaskSettled,
    TasksPruned,
    Verdict,
)
from tests.pallets.mock import ALICE, BOB, ED, MockRuntime, assert_error, mock_config
from tests.pallets.test_staking import (
    CAI,
    ECONOMY_BALANCES,
    MIN_MINER,
    OP1,
    OP2,
    miner_info,
    payouts_idle,
    register_coordinator,
    register_miner,
    run_to_block,
)
from tests.pallets.test_tasks import FAKE, GUESS, HONEST, M_OP, SPEC_H, SPEC_JSON, salt_of

# A failure shrinks for up to five minutes (hypothesis' own limit): let it finish and report.
pytestmark = pytest.mark.timeout(600)

RATES = [PERBILL_ONE, 100_000_000, 0]  # every result checked, the dev rate, no checks
RETENTION = 20  # the least a dev chain spec allows: (SlashDeferDuration + 1) * EraLength
BASE = mock_config()
CONFIGS = {
    rate: dataclasses.replace(
        BASE,
        verification=VerificationConfig(
            check_rate=rate, spec_window=4, commit_window=5, reveal_window=4, appeal_window=4
        ),
        tasks=dataclasses.replace(BASE.tasks, retention_blocks=RETENTION),
    )
    for rate in RATES
}
MIN_PRICE = BASE.tasks.min_task_price
BURN_SHARE = BASE.tasks.burn_share
DEPOSIT = BASE.tasks.task_deposit

COORDINATORS = {ALICE: OP1, BOB: OP2}  # staker -> operator (the payer)
COORDINATOR_STAKE = {ALICE: 3_000_000 * CAI, BOB: 2_500_000 * CAI}  # a few slashes keep them Active
MINERS = {w: M_OP[w] for w in sorted(M_OP)[:6]}  # staker -> operator
SINK = bytes([0x99]) * 32  # where drained operator funds go
FUNDS = {
    **{w: ECONOMY_BALANCES.get(w, 100_000 * CAI) for w in [*COORDINATORS, *MINERS]},
    OP1: 1_000 * CAI,
    OP2: 10 * CAI,  # runs out quickly: InsufficientFunds
    SINK: CAI,
}
TRACKED = sorted([*COORDINATORS, *COORDINATORS.values(), *MINERS, SINK])
PRICES = {
    "tenth": CAI // 10,
    "below-min": MIN_PRICE - 1,
    "min": MIN_PRICE,
    "min+7": MIN_PRICE + 7,
    "odd": 123_456_789_012_345_679,
    "one": CAI + 1,
    "seven": 7 * CAI + 3,
    "huge": 1_000_000 * CAI,
}
ISSUANCE_UP = (Minted,)
ISSUANCE_DOWN = (Burned, Slashed, DustLost, Withdraw)

TOTALS: Counter[str] = Counter()  # over all examples, printed with -s

coordinators = st.sampled_from(sorted(COORDINATORS))
miners = st.sampled_from(sorted(MINERS))


def sealed(who: bytes, task_id: bytes, reveal: Reveal) -> bytes:
    """`who`'s blind commitment to `reveal` for the task."""
    return result_commitment(
        who, task_id, reveal.result_hash, reveal.device_hash, reveal.sketch, salt_of(who)
    )


def expected_payment(price: int, status: str, outcome: str, right: int) -> tuple[int, ...]:
    """(to_miner, burned, to_checkers, refunded) by docs/economics.md §1: the burn share is
    burned when an accepted task was not checked; otherwise it pays the `right` checkers in
    equal parts, the rounding dust burned. A rejected task's payer gets the rest back (all of
    it when no checker was right: nobody earned the fee); a missed task's payer gets it all."""
    share = price * BURN_SHARE // PERBILL_ONE
    if status == "Missed":
        return (0, 0, 0, price)
    if status == "Accepted" and outcome == "Unchecked":
        return (price - share, share, 0, 0)
    each = share // right if right else 0
    if status == "Accepted":
        assert right > 0, "accepted after a check with no checker right"
        return (price - share, share - each * right, each * right, 0)
    assert (status, outcome) == ("Rejected", "Guilty")
    if right == 0:
        return (0, 0, 0, price)
    return (0, share - each * right, each * right, price - share)


@dataclasses.dataclass
class Job:
    """One committed task, as the test sees it."""

    task_id: bytes
    coordinator: bytes
    payer: bytes
    miner: bytes
    price: int
    deadline: int
    state: str = "Committed"  # or Submitted, Checking, Accepted, Rejected, Missed
    result: Reveal | None = None  # what the miner committed to
    draw_at: int = 0
    miner_revealed: bool = False
    disputed: bool = False
    round: int = 0
    phase: str = ""
    drawn: list[tuple[bytes, int]] = dataclasses.field(default_factory=list)  # (checker, round)
    answers: dict[bytes, Reveal] = dataclasses.field(default_factory=dict)  # committed answers
    revealed: set[bytes] = dataclasses.field(default_factory=set)
    appealable: bool = False
    expect: str | None = None  # what must follow a round's close in the same call or block
    outcome: str = "Unchecked"
    settled_at: int | None = None

    @property
    def is_open(self) -> bool:
        return self.state in ("Committed", "Submitted", "Checking")

    def agrees(self, checker: bytes) -> bool:
        assert self.result is not None
        return self.answers[checker].result_hash == self.result.result_hash

    def counts(self, revealed_by: list[bytes]) -> tuple[int, int]:
        agree = sum(self.agrees(c) for c in revealed_by)
        return agree, len(revealed_by) - agree

    def right(self) -> list[bytes]:
        """The checkers on the winning side of the final verdict (docs/verification.md §7)."""
        guilty = self.outcome == "Guilty"
        return [
            c
            for c, _ in self.drawn
            if c in self.revealed and (not self.miner_revealed or self.agrees(c) != guilty)
        ]


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mock: MockRuntime | None = None
        self.jobs: dict[bytes, Job] = {}  # tasks in state
        self.pruned: dict[bytes, bytes] = {}  # ids of pruned tasks (free again) -> their miner
        self.made = 0
        self.expected_issuance = 0
        self.before: dict[bytes, tuple[int, int]] = {}
        self.figures: Counter[str] = Counter()

    # ---- setup -----------------------------------------------------------------------------------

    @initialize(rate=st.sampled_from(RATES))
    def setup(self, rate: int) -> None:
        m = MockRuntime(CONFIGS[rate], dict(FUNDS), None)
        for who, op in COORDINATORS.items():
            register_coordinator(m, who, op, stake=COORDINATOR_STAKE[who])
        for who, op in MINERS.items():
            register_miner(m, who, op, stake=2 * MIN_MINER)
        self.mock = m
        self.expected_issuance = m.issuance()

    @property
    def m(self) -> MockRuntime:
        assert self.mock is not None
        return self.mock

    # ---- plumbing --------------------------------------------------------------------------------

    def wallets(self) -> dict[bytes, tuple[int, int]]:
        return {w: (self.m.free(w), self.m.account(w).data.reserved) for w in TRACKED}

    def usable(self, who: bytes) -> int:
        data = self.m.account(who).data
        return max(data.free - max(data.frozen, ED), 0)

    def call(
        self, origin: bytes, expected: Error | None, pallet: str, name: str, **args: Any
    ) -> list[Any] | None:
        """Dispatch; a failure must be `expected` and change nothing. Returns the events (None
        when it failed); the caller updates the model, then calls `after`."""
        m = self.m
        snapshot = m.snapshot()
        self.before = self.wallets()
        failed: DispatchError | None = None
        try:
            m.dispatch(origin, pallet, name, **args)
        except DispatchError as err:
            failed = err
        if failed is None:
            assert expected is None, f"{pallet}.{name} succeeded where {expected!r} was expected"
            return m.events()
        assert expected is not None, f"{pallet}.{name} failed: {failed}"
        assert_error(failed, expected)
        assert m.snapshot() == snapshot, f"failed {pallet}.{name} changed storage"
        assert m.events() == []
        self.figures[f"failed {expected.name}"] += 1
        return None

    def block(self) -> None:
        """One block: its hooks, every pallet's try_state (`run_to_block`), then the model."""
        self.before = self.wallets()
        events = run_to_block(self.m, self.m.block_number + 1)
        self.after(events, is_block=True)

    def after(
        self,
        events: list[Any],
        moves: dict[bytes, tuple[int, int]] | None = None,
        *,
        is_block: bool = False,
    ) -> None:
        """Follow a call's or a block's events through the model and check the money."""
        m = self.m
        if not is_block:  # a block ran every try_state already (`run_to_block`)
            m.runtime.try_state(m.state)
        delta = {w: [0, 0] for w in TRACKED}  # (free, reserved) each account should have moved
        for who, (free, reserved) in (moves or {}).items():
            delta[who][0] += free
            delta[who][1] += reserved
        paying: TaskPaid | None = None
        credits: list[WorkCredited] = []
        offences: Counter[tuple[bytes, str]] = Counter()
        expected_offences: Counter[tuple[bytes, str]] = Counter()
        pruned = 0
        for e in events:
            if isinstance(e, ISSUANCE_UP):
                self.expected_issuance += e.amount
            elif isinstance(e, ISSUANCE_DOWN):
                self.expected_issuance -= e.amount
            # Burned is not here: it comes only out of payers' reserves (`_pay`), in the model
            if isinstance(e, Minted) and e.who in delta:
                delta[e.who][0] += e.amount
            elif isinstance(e, (Slashed, Withdraw)) and e.who in delta:
                delta[e.who][0] -= e.amount
            elif isinstance(e, DustLost) and e.account in delta:
                delta[e.account][0] -= e.amount
            elif isinstance(e, Transfer):
                delta[e.from_][0] -= e.amount
                delta[e.to][0] += e.amount
            elif isinstance(e, OffenceReported):
                offences[(e.offender, str(e.kind))] += 1
            elif isinstance(e, CheckOpened):
                self.on_check_opened(e)
            elif isinstance(e, CheckPhaseChanged):
                job = self.jobs[e.task_id]
                job.phase = str(e.phase)
                if job.phase == "Appealable":
                    assert job.expect == "Appealable", (job.expect, "Appealable")
                    job.expect, job.appealable = None, True
            elif isinstance(e, RoundClosed):
                self.on_round_closed(e)
                self.figures[f"round {e.round} closed"] += 1
            elif isinstance(e, Verdict):
                job = self.jobs[e.task_id]
                assert (str(e.outcome), e.final) == (
                    (job.outcome, True) if e.final else ("Guilty", False)
                )
                assert e.final == (not job.is_open)
            elif isinstance(e, TaskPaid):
                assert paying is None
                paying, credits = e, []
            elif isinstance(e, WorkCredited):
                assert paying is not None, "work credited outside a settlement"
                credits.append(e)
            elif isinstance(e, TaskSettled):
                assert paying is not None
                assert paying.task_id == e.task_id
                job = self.jobs[e.task_id]
                self.settle(job, e, paying, credits, delta, expected_offences)
                paying = None
            elif isinstance(e, TasksPruned):
                pruned += e.count
        assert paying is None, "TaskPaid without TaskSettled"
        assert offences == expected_offences, (offences, expected_offences)
        self.prune(pruned, delta, is_block=is_block)
        # the money: every tracked account moved by exactly what the model says
        after = self.wallets()
        for who in TRACKED:
            moved = (after[who][0] - self.before[who][0], after[who][1] - self.before[who][1])
            assert moved == tuple(delta[who]), (who.hex()[:8], moved, delta[who])
        assert m.issuance() == self.expected_issuance
        # every round's close was followed by what §7 says, in the same call or block
        assert all(job.expect is None for job in self.jobs.values())
        self.check_model(is_block=is_block)

    # ---- the referee -----------------------------------------------------------------------------

    def on_check_opened(self, e: CheckOpened) -> None:
        job = self.jobs[e.task_id]
        if job.expect is not None:
            assert job.expect == f"round {e.round}", (job.expect, e.round)
            job.expect = None
        else:  # a draw (round 0), a dispute (round 1) or an appeal (round 2)
            assert (e.round, job.state) in (
                (0, "Submitted"),
                (1, "Submitted"),
                (2, "Checking"),
            ), (e.round, job.state)
            assert e.round != 1 or job.disputed
            assert e.round != 2 or job.appealable
        earlier = [c for c, _ in job.drawn]
        assert e.checkers, "a round opened with nobody"
        assert len(set(e.checkers)) == len(e.checkers)
        assert job.miner not in e.checkers
        assert not set(e.checkers) & set(earlier)
        job.drawn += [(c, e.round) for c in e.checkers]
        job.state, job.round, job.phase = "Checking", e.round, str(e.phase)
        job.appealable = False
        self.figures[f"round {e.round} opened"] += 1

    def on_round_closed(self, e: RoundClosed) -> None:
        job = self.jobs[e.task_id]
        assert job.miner_revealed, "a round closed by comparison although the miner hid"
        assert e.round == job.round
        current = [c for c, r in job.drawn if r == e.round]
        agree, disagree = job.counts([c for c in current if c in job.revealed])
        assert (e.agree, e.disagree, e.absent) == (agree, disagree, len(current) - agree - disagree)
        if e.round > 0 and agree == disagree == 0:
            job.expect = f"round {e.round}"  # drawn again (or nobody is left)
        elif e.round == 0:
            verified = agree >= 1 and disagree == 0 and e.absent == 0 and not job.disputed
            job.expect = "Verified" if verified else "round 1"
        elif e.round == 1 and disagree > agree:
            job.expect = "Appealable"
        else:
            job.expect = "Guilty" if disagree > agree else "Upheld"

    def referee(self, job: Job) -> tuple[str, str, list[tuple[bytes, str]]]:
        """The status and outcome a settlement must have, and the offences it reports."""
        path, outcome = self.verdict(job)
        self.figures[f"settled: {path}"] += 1
        if outcome == "Unchecked":
            status = "Missed" if job.result is None else "Accepted"
            withheld = path == "spec withheld"
            return status, outcome, [(job.coordinator, "WithheldSpec")] if withheld else []
        job.outcome = outcome
        right = job.right()
        blamed = [(c, "CheckFault") for c, _ in job.drawn if c not in right]
        if outcome == "Guilty":
            blamed.append((job.miner, "InvalidResult"))
        elif job.disputed:
            blamed.append((job.coordinator, "FalseDispute"))
        return ("Rejected" if outcome == "Guilty" else "Accepted"), outcome, blamed

    @staticmethod
    def verdict(job: Job) -> tuple[str, str]:
        """How the task came to settle (docs/verification.md §7), and its outcome."""
        if job.expect in ("Verified", "Upheld", "Guilty"):
            return "round closed", job.expect
        if job.expect == "round 2":
            return "appeal nobody is left to hear", "Guilty"  # round 1 stands
        if job.expect is not None:  # nobody left to draw: every round's reveals decide
            assert job.expect.startswith("round"), job.expect
            agree, disagree = job.counts([c for c, _ in job.drawn if c in job.revealed])
            if disagree > agree:
                return "evidence", "Guilty"
            return ("evidence", "Upheld") if agree else ("nobody revealed", "Unchecked")
        if job.result is None:
            return "missed", "Unchecked"
        if job.appealable:
            return "not appealed, or nobody to hear it", "Guilty"
        if not job.drawn:
            return "not checked", "Unchecked"  # never drawn, or nobody could be
        if job.phase == "SpecDue":
            return "spec withheld", "Unchecked"
        assert not job.miner_revealed, "settled without a round closing"
        return "miner hid its result", "Guilty"

    def settle(
        self,
        job: Job,
        e: TaskSettled,
        paid: TaskPaid,
        credits: list[WorkCredited],
        delta: dict[bytes, list[int]],
        offences: Counter[tuple[bytes, str]],
    ) -> None:
        assert job.is_open
        status, outcome, blamed = self.referee(job)
        job.expect = None
        assert (str(e.status), str(e.outcome)) == (status, outcome), (e, status, outcome)
        job.state, job.outcome, job.settled_at = status, outcome, self.m.block_number
        offences.update(blamed)
        right = job.right() if outcome in ("Verified", "Upheld", "Guilty") else []
        to_miner, burned, to_checkers, refunded = expected_payment(
            job.price, status, outcome, len(right)
        )
        assert paid == TaskPaid(job.task_id, job.miner, to_miner, burned, to_checkers, refunded)
        delta[job.payer][1] -= job.price  # the escrow leaves the reserve...
        delta[job.payer][0] += refunded  # ... back to the payer, or to the miner and checkers
        delta[job.miner][0] += to_miner
        for c in right:
            delta[c][0] += to_checkers // len(right)
        era = staking.CurrentEra.get(self.m.state)
        if (status, outcome) == ("Accepted", "Unchecked"):
            expected = [
                WorkCredited(job.miner, Role.MINER, burned, era),
                WorkCredited(job.coordinator, Role.COORDINATOR, burned, era),
            ]
        else:
            expected = []
        assert credits == expected, (credits, expected)
        self.figures[f"{status} {outcome}"] += 1
        self.figures["rounding dust burned"] += int(bool(right) and burned > 0)

    def prune(self, pruned: int, delta: dict[bytes, list[int]], *, is_block: bool) -> None:
        """Tasks leave state at exactly settled_at + RetentionBlocks, their deposits returned."""
        now = self.m.block_number
        gone = [t for t in self.jobs if not Tasks.contains(self.m.state, t)]
        due = [
            t
            for t, job in self.jobs.items()
            if job.settled_at is not None and job.settled_at + RETENTION <= now
        ]
        assert gone == due, "a task left state before or after settled_at + RetentionBlocks"
        assert pruned == len(gone)
        assert is_block or not gone
        for t in gone:
            job = self.jobs.pop(t)
            assert job.settled_at is not None
            assert job.settled_at + RETENTION == now
            assert not Checks.contains(self.m.state, t)
            assert not tasks.Specs.contains(self.m.state, t)
            delta[job.payer][0] += DEPOSIT
            delta[job.payer][1] -= DEPOSIT
            self.pruned[t] = job.miner
            self.figures["pruned"] += 1

    def check_model(self, *, is_block: bool) -> None:
        """The chain's tasks and checks are the model's; nothing waits past its time."""
        state, now = self.m.state, self.m.block_number
        escrow = {op: 0 for op in COORDINATORS.values()}
        for t, job in self.jobs.items():
            task = Tasks.get(state, t)
            assert task is not None
            assert (task.price, task.payer, task.deposit, task.miner) == (
                job.price,
                job.payer,
                DEPOSIT,
                job.miner,
            )
            assert str(task.status) == job.state, (str(task.status), job.state)
            escrow[job.payer] += DEPOSIT + (job.price if job.is_open else 0)
            check = Checks.get(state, t)
            if not job.drawn:
                assert check is None
                continue
            assert check is not None
            assert [(c.account, c.round) for c in check.checkers] == job.drawn
            for c in check.checkers:
                assert c.commitment == (
                    sealed(c.account, t, job.answers[c.account])
                    if c.account in job.answers
                    else None
                )
                assert c.reveal == (job.answers[c.account] if c.account in job.revealed else None)
            assert check.miner_reveal == (job.result if job.miner_revealed else None)
            assert check.disputed_by == (job.coordinator if job.disputed else None)
            if job.is_open:
                assert (check.round, str(check.phase)) == (job.round, job.phase)
            if is_block and job.state == "Checking":
                assert check.phase_ends >= now, "a check phase outlived its end"
        for op, held in escrow.items():
            assert self.m.account(op).data.reserved == held, "reserve is not the model's escrow"
        if is_block:
            for job in self.jobs.values():
                if job.state == "Committed":
                    assert job.deadline >= now, "a task without a result outlived its deadline"
                elif job.state == "Submitted":
                    assert job.deadline >= now or job.draw_at > now, "not settled at deadline"

    # ---- tasks -----------------------------------------------------------------------------------

    def fresh_id(self) -> bytes:
        self.made += 1
        return f"pay{self.made}".encode().ljust(32, b"\x00")

    def commit_error(self, coordinator: bytes, batch: list[TaskCommit]) -> Error | None:
        """The first check commit_tasks fails, in its order (docs in pallets/tasks)."""
        state = self.m.state
        if not registry.is_active(state, coordinator):
            return Error.COORDINATOR_INACTIVE
        for item in batch:
            if item.task_id in self.jobs:
                return Error.TASK_EXISTS
            if not registry.is_active(state, item.miner):
                return Error.MINER_INACTIVE
            if item.price < MIN_PRICE:
                return Error.PRICE_TOO_LOW
        escrow = sum(item.price + DEPOSIT for item in batch)
        if escrow > self.usable(COORDINATORS[coordinator]):
            return Error.INSUFFICIENT_FUNDS
        return None

    def commit(self, coordinator: bytes, batch: list[TaskCommit]) -> None:
        payer = COORDINATORS[coordinator]
        expected = self.commit_error(coordinator, batch)
        events = self.call(payer, expected, "Tasks", "commit_tasks", batch=batch)
        if events is None:
            return
        # a miner sees what each task pays before it works: in the event and in storage
        assert [e for e in events if isinstance(e, TaskCommitted)] == [
            TaskCommitted(i.task_id, coordinator, i.miner, i.deadline, i.price) for i in batch
        ]
        for item in batch:
            stored = Tasks.get(self.m.state, item.task_id)
            assert stored is not None
            assert stored.price == item.price
            self.jobs[item.task_id] = Job(
                item.task_id, coordinator, payer, item.miner, item.price, item.deadline
            )
            if self.pruned.pop(item.task_id, None) is not None:
                self.figures["pruned id committed again"] += 1
        escrow = sum(item.price + DEPOSIT for item in batch)
        self.after(events, {payer: (-escrow, escrow)})
        self.figures["tasks committed"] += len(batch)

    @rule(
        order=st.tuples(
            coordinators,
            st.lists(
                st.tuples(
                    miners,
                    st.sampled_from(list(PRICES)),
                    st.integers(1, 20),
                    st.sampled_from(["new", "new", "pruned", "pruned", "live"]),
                ),
                min_size=1,
                max_size=4,
            ),
        )
    )
    def commit_tasks(self, order: tuple[bytes, list[tuple[bytes, str, int, str]]]) -> None:
        """A batch to the miners at these prices and deadlines, under new ids, ids still in
        state (TaskExists), or the id of a pruned task (to the same miner: a request sent
        again)."""
        coordinator, items = order
        now = self.m.block_number
        batch: list[TaskCommit] = []
        for miner, price, ahead, which in items:
            taken = {item.task_id for item in batch}
            pool = {"pruned": list(self.pruned), "live": list(self.jobs), "new": []}[which]
            free = [t for t in pool if t not in taken]
            task_id = free[0] if free else self.fresh_id()
            to = self.pruned.get(task_id, miner)
            batch.append(TaskCommit(task_id, SPEC_H, to, now + ahead, PRICES[price]))
        self.commit(coordinator, batch)

    def low_on_funds(self) -> list[bytes]:
        if self.mock is None:
            return []
        return [c for c, op in COORDINATORS.items() if self.usable(op) < 20 * CAI]

    @precondition(lambda self: bool(self.low_on_funds()))
    @rule(order=st.tuples(st.integers(0, 1), miners, st.booleans()))
    def commit_up_to_funds(self, order: tuple[int, bytes, bool]) -> None:
        """One task at all a payer low on funds can reserve (keeping its account alive), or a
        planck more."""
        which, miner, over = order
        low = self.low_on_funds()
        coordinator = low[which % len(low)]
        price = self.usable(COORDINATORS[coordinator]) - DEPOSIT + int(over)
        if price >= 0:
            now = self.m.block_number
            self.commit(coordinator, [TaskCommit(self.fresh_id(), SPEC_H, miner, now + 8, price)])

    def jobs_where(self, state: str, phase: str | None = None) -> list[Job]:
        return [
            j
            for j in self.jobs.values()
            if j.state == state and (phase is None or j.phase == phase)
        ]

    def submit_results(self, data: st.DataObject) -> None:
        """Miners with open tasks commit (blind) to honest or fake results for some of them."""
        now = self.m.block_number
        open_ = [j for j in self.jobs_where("Committed") if j.deadline >= now]
        for miner in sorted({j.miner for j in open_}):
            mine = [j for j in open_ if j.miner == miner]
            # each task: an honest result, a fake, or nothing yet
            picks = [data.draw(st.sampled_from([HONEST, HONEST, HONEST, FAKE, None])) for _ in mine]
            chosen = [j for j, r in zip(mine, picks, strict=True) if r is not None]
            results = [r for r in picks if r is not None]
            if not chosen:
                continue
            batch = [
                ResultCommit(j.task_id, sealed(miner, j.task_id, r))
                for j, r in zip(chosen, results, strict=True)
            ]
            events = self.call(MINERS[miner], None, "Tasks", "submit_results", batch=batch)
            assert events is not None
            for job, result in zip(chosen, results, strict=True):
                job.state, job.result, job.draw_at = "Submitted", result, now + 1  # 1 authority
            self.after(events)

    def settle_tasks(self, data: st.DataObject) -> None:
        """Settle own results early; sometimes one that is not Submitted (all or nothing)."""
        now = self.m.block_number
        coordinator = data.draw(coordinators)
        own = [j for j in self.jobs.values() if j.coordinator == coordinator]
        submitted = [j for j in own if j.state == "Submitted"]
        if not submitted:
            return
        chosen = data.draw(
            st.lists(
                st.sampled_from(submitted),
                min_size=1,
                max_size=3,
                unique_by=lambda job: job.task_id,
            )
        )
        others = [j for j in own if j.state != "Submitted"]
        if others and data.draw(st.integers(0, 4)) == 0:
            chosen.append(data.draw(st.sampled_from(others)))
        expected = None
        for job in chosen:
            if job.state != "Submitted":
                expected = expected or Error.NOT_SUBMITTED
            elif now > job.deadline:
                expected = expected or Error.DEADLINE_PASSED
        ids = [j.task_id for j in chosen]
        events = self.call(
            COORDINATORS[coordinator], expected, "Tasks", "settle_tasks", task_ids=ids
        )
        if events is None:
            return
        settled = {e.task_id for e in events if isinstance(e, TaskSettled)}
        self.after(events)
        # a result whose draw is still pending stays as it is; a drawn one is accepted
        assert settled == {j.task_id for j in chosen if j.draw_at <= now}

    @precondition(lambda self: any(j.is_open for j in self.jobs.values()))
    @rule(data=st.data())
    def dispute_task(self, data: st.DataObject) -> None:
        """The coordinator contests a result (mostly one it may contest)."""
        now = self.m.block_number
        open_ = [j for j in self.jobs.values() if j.is_open]
        contestable = [j for j in open_ if j.state == "Submitted" or j.state == "Checking"]
        if data.draw(st.integers(0, 4)) > 0 and contestable:
            open_ = contestable
        job = data.draw(st.sampled_from(open_))
        if job.state == "Committed":
            expected: Error | None = Error.NOT_SUBMITTED
        elif job.state == "Submitted":
            expected = Error.DEADLINE_PASSED if now > job.deadline else None
        else:  # it rides on a round-0 check not disputed yet
            expected = None if job.round == 0 and not job.disputed else Error.NOT_SUBMITTED
        payer = COORDINATORS[job.coordinator]
        events = self.call(payer, expected, "Tasks", "dispute_task", task_id=job.task_id)
        if events is not None:
            job.disputed = True
            self.figures["disputed"] += 1
            self.after(events)

    # ---- checks ----------------------------------------------------------------------------------

    def play_check(self, data: st.DataObject) -> None:
        """Every checked task's current phase: the coordinator reveals the spec (or withholds
        it), the checkers commit (honest, lying or absent), everyone reveals (or some do not),
        the miner found Guilty appeals (or not)."""
        for job in self.jobs_where("Checking"):
            if not job.is_open or data.draw(st.integers(0, 9)) == 0:
                continue  # nobody acts on this one this time: the phase may run out
            if job.phase == "SpecDue":
                self.reveal_spec(job)
            elif job.phase == "Committing":
                self.commit_checks(job, data)
            elif job.phase == "Revealing":
                self.reveal_results(job, data)
            else:
                assert job.phase == "Appealable"
                self.appeal(job)

    @rule(data=st.data())
    def work(self, data: st.DataObject) -> None:
        """A busy moment: miners submit, checks go on, coordinators settle some results."""
        self.submit_results(data)
        self.play_check(data)
        if data.draw(st.booleans()) and self.jobs_where("Submitted"):
            self.settle_tasks(data)

    def reveal_spec(self, job: Job) -> None:
        payer = COORDINATORS[job.coordinator]
        events = self.call(payer, None, "Tasks", "reveal_spec", task_id=job.task_id, spec=SPEC_JSON)
        assert events is not None
        self.after(events)

    def commit_checks(self, job: Job, data: st.DataObject) -> None:
        for checker, r in list(job.drawn):
            if r != job.round or checker in job.answers or job.phase != "Committing":
                continue
            answer = data.draw(st.sampled_from([HONEST, HONEST, HONEST, GUESS, None]))
            if answer is None:
                continue  # absent
            commitment = sealed(checker, job.task_id, answer)
            events = self.call(
                MINERS[checker],
                None,
                "Tasks",
                "commit_check",
                task_id=job.task_id,
                commitment=commitment,
            )
            assert events is not None
            job.answers[checker] = answer
            self.after(events)

    def reveal_results(self, job: Job, data: st.DataObject) -> None:
        people = [] if job.miner_revealed else [job.miner]
        people += [
            c for c, r in job.drawn if r == job.round and c in job.answers and c not in job.revealed
        ]
        for who in data.draw(st.permutations(people)):
            if job.phase != "Revealing" or not job.is_open:
                break  # the last reveal closed the round
            if data.draw(st.integers(0, 9)) == 0:
                continue  # hides, or stays silent
            opened = job.result if who == job.miner else job.answers[who]
            assert opened is not None
            events = self.call(
                MINERS[who],
                None,
                "Tasks",
                "reveal_result",
                task_id=job.task_id,
                result_hash=opened.result_hash,
                device_hash=opened.device_hash,
                sketch=opened.sketch,
                salt=salt_of(who),
            )
            assert events is not None
            if who == job.miner:
                job.miner_revealed = True
            else:
                job.revealed.add(who)
            self.after(events)

    def appeal(self, job: Job) -> None:
        events = self.call(MINERS[job.miner], None, "Tasks", "appeal", task_id=job.task_id)
        assert events is not None
        self.figures["appealed"] += 1
        self.after(events)

    # ---- time ------------------------------------------------------------------------------------

    @rule(data=st.data())
    def wait_blocks(self, data: st.DataObject) -> None:
        """A few blocks, the network busy before each (`work`) or idle."""
        is_busy = data.draw(st.booleans())
        for _ in range(data.draw(st.integers(1, 6))):
            if is_busy:
                self.work(data)
            self.block()

    def is_quiet(self) -> bool:
        """No check is open: long waits would end every phase (wait_blocks still does some)."""
        return not self.jobs_where("Checking")

    @precondition(lambda self: self.is_quiet())
    @rule(extra=st.integers(0, 3))
    def wait_retention(self, extra: int) -> None:
        """Past RetentionBlocks: everything settled until now is pruned."""
        for _ in range(RETENTION + extra):
            self.block()

    @precondition(lambda self: self.is_quiet())
    @rule(data=st.data())
    def wait_era(self, data: st.DataObject) -> None:
        """To the next era (rewards for the burns credited, slashes applied) and through its
        payouts, the network busy or idle."""
        is_busy = data.draw(st.booleans())
        length = self.m.config.staking.era_length
        for _ in range(length + 50):
            if is_busy:
                self.work(data)
            self.block()
            if self.m.block_number % length == 0:
                break
        for _ in range(50):
            if payouts_idle(self.m):
                break
            self.block()
        assert payouts_idle(self.m)
        self.figures["eras"] += 1

    # ---- funds and registrations -----------------------------------------------------------------

    @rule(order=st.tuples(coordinators, st.booleans(), st.integers(0, 1000)))
    def move_operator_funds(self, order: tuple[bytes, bool, int]) -> None:
        """The operator spends part of what it could reserve (InsufficientFunds comes sooner),
        or its coordinator tops it up."""
        coordinator, is_spending, permille = order
        payer = COORDINATORS[coordinator]
        if is_spending:
            value = self.usable(payer) * permille // 1000
            origin, dest = payer, SINK
        else:
            value = permille * CAI // 10
            origin, dest = coordinator, payer
        events = self.call(
            origin, None, "Balances", "transfer_keep_alive", dest=("Id", dest), value=value
        )
        assert events is not None
        self.after(events)

    def suspended(self) -> list[bytes]:
        """Miners suspended for fraud that can stake enough to register again."""
        if self.mock is None:
            return []
        state = self.m.state
        return [
            w
            for w, reg in registry.Miners.iter(state)
            if reg.status == "Suspended"
            and (staking.free_to_allocate(state, w) >= MIN_MINER or self.usable(w) > MIN_MINER)
        ]

    @precondition(lambda self: bool(self.suspended()))
    @rule(data=st.data())
    def register_again(self, data: st.DataObject) -> None:
        """A miner suspended for fraud registers again (so pruned ids can meet it again)."""
        miner = data.draw(st.sampled_from(self.suspended()))
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("Registry", "deregister", {}),
            ("Registry", "register_miner", {"operator": MINERS[miner], "info": miner_info()}),
        ]
        if staking.free_to_allocate(self.m.state, miner) < MIN_MINER:
            calls.insert(0, ("Staking", "bond_extra", {"max_additional": MIN_MINER}))
        self.figures["registered again"] += 1
        for pallet, name, args in calls:
            events = self.call(miner, None, pallet, name, **args)
            assert events is not None
            self.after(events)

    # ---- invariants ------------------------------------------------------------------------------

    @invariant()
    def pallets_try_state(self) -> None:
        if self.mock is not None:
            assert self.mock.state.depth == 0
            self.mock.runtime.try_state(self.mock.state)

    def teardown(self) -> None:
        TOTALS.update(self.figures)
        TOTALS["examples"] += 1
        TOTALS["blocks"] += self.m.block_number if self.mock is not None else 0
        print("task payments so far:", dict(sorted(TOTALS.items())))


PaymentsMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_task_payments_state_machine = PaymentsMachine.TestCase
