"""Adversaries of checked work end to end (docs/verification.md, "Threat model"): a dev node, a
coordinator and miners as real processes on loopback, the pattern solver for every image.

1. a strategic cheater holding half the miner stake fakes every result of its own at the dev
   chain's check rate (10%): it is drawn, found Guilty and slashed far more than it earned;
2. a lazy checker answers the checks it is drawn for with a guess: CheckFault for it, the
   honest results it checked Upheld;
3. a hostile coordinator (a) disputes a correct result: FalseDispute for it, nothing lost by the
   miner; (b) goes silent while its task's check waits for the spec: WithheldSpec for it, the
   task Accepted; (c) runs sybil checkers with most of the stake that lie in every check: the
   honest miner they outvote in round 1 appeals and fresh checkers uphold it.

Each test prints its figures. Cheating solvers: tests/miner/cheating.py (they cheat only with
CUCKOO_TEST_CHEAT=1). Actors: coordinator //Charlie (2,000,000 CAI bonded, operator
//Charlie//operator); miners //<Name> with operator //<Name>//operator, 25,000 CAI bonded unless
a test says otherwise; accounts beyond the funded dev ones get their CAI from //Alice.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

import pytest
from substrateinterface import Keypair

from miner.chain import ChainAccess
from miner.checker import CheckWatcher
from miner.records import RecordStore
from miner.solver import PatternSolver, Solver, load_solver
from tests.e2e.conftest import COORDINATOR_BOND, MINER_BOND, Net, http, poll_until
from tests.integration.conftest import free_ports
from tests.miner.chainkit import CAI, ChainKit
from tests.miner.fakes import make_spec

PERBILL = 10**9
TERMINAL = ("unchecked", "verified", "upheld", "guilty")
CHEAT = {"CUCKOO_TEST_CHEAT": "1"}
SOLVERS = "tests.miner.cheating:"


def h(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


def cai(amount: int | float) -> str:
    return f"{amount / CAI:,.1f} CAI"


# ---- chain set-up and reading --------------------------------------------------------------------


def fund(net: Net, amounts: dict[str, int]) -> None:
    """Give dev accounts that genesis does not endow (e.g. //Heidi) CAI from //Alice."""
    alice = Keypair.create_from_uri("//Alice")
    net.kit.run_parallel(
        [
            [
                (
                    alice,
                    "Balances",
                    "transfer_keep_alive",
                    {"dest": Keypair.create_from_uri(f"//{name}").ss58_address, "value": amount},
                )
                for name, amount in amounts.items()
            ]
        ]
    )


def addr(net: Net, name: str) -> str:
    return str(net.actors[name].staker.ss58_address)


def charlie(net: Net) -> str:
    return str(net.coordinator.staker.ss58_address)


def next_block(kit: ChainKit, after: int) -> int:
    """Wait for a block after `after`; its number."""
    return poll_until(f"a block after #{after}", lambda: max(kit.best() - after, 0), 30) + after


def unapplied_slashes(kit: ChainKit) -> list[dict[str, Any]]:
    return [s for _, queue in kit.si.query_map("Slashing", "UnappliedSlashes") for s in queue.value]


def wait_chain_settled(net: Net, timeout: float = 120) -> int:
    """Wait until no task is open on chain, every queued slash is applied and every ended era
    with work is paid out; the best block then."""
    kit = net.kit
    poll_until(
        "no open task on chain",
        lambda: kit.q("Tasks", "OpenTasks") == 0,
        timeout,
        on_fail=net.logs,
        interval=0.5,
    )
    era = kit.q("Staking", "CurrentEra")

    def settled() -> bool:
        return (
            not unapplied_slashes(kit)
            and kit.q("Staking", "CurrentEra") > era
            and not kit.q("Rewards", "PendingEras")
            and kit.q("Rewards", "CurrentPayout") is None
        )

    poll_until("the slashes applied and the rewards paid", settled, timeout, interval=0.5)
    return kit.best()


def metrics(net: Net) -> dict[str, float]:
    """The coordinator's /metrics samples, by `name{labels}`."""
    status, body = http("GET", net.coordinator_url + "/metrics", timeout=5)
    assert status == 200, (status, body)
    assert isinstance(body, bytes)
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"^(\w+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def wait_jobs_final(net: Net, ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Every job's view once its receipt carries the chain's final word on the result."""
    pending = set(ids)
    views: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        for task_id in sorted(pending):
            view = net.get_task(task_id)
            if view["status"] == "failed":
                raise AssertionError(f"task {task_id} failed: {view}\n{net.logs()}")
            if (view.get("receipt") or {}).get("verification") in TERMINAL:
                views[task_id] = view
                pending.discard(task_id)
        return not pending

    poll_until("every job's final verification", done, timeout, on_fail=net.logs, interval=1.0)
    return views


@dataclasses.dataclass(frozen=True)
class Ev:
    block: int
    index: int  # position in the trail
    name: str
    a: dict[str, Any]


class Trail:
    """The events of blocks `first`..best, in order, with the questions the tests ask them."""

    def __init__(self, kit: ChainKit, first: int) -> None:
        self.events = [Ev(b, i, n, a) for i, (b, n, a) in enumerate(kit.events(first))]

    def named(self, name: str) -> list[Ev]:
        return [e for e in self.events if e.name == name]

    def miner_of(self) -> dict[str, str]:
        return {e.a["task_id"]: e.a["miner"] for e in self.named("Tasks.TaskCommitted")}

    def final(self) -> dict[str, tuple[str, str]]:
        """task id -> (status, outcome) of the tasks that reached a final status."""
        return {
            e.a["task_id"]: (e.a["status"], e.a["outcome"]) for e in self.named("Tasks.TaskSettled")
        }

    def rounds(self) -> list[Ev]:
        return self.named("Tasks.CheckOpened")

    def offences(self, who: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(offender, kind) of every offence reported (of `who` only, if given)."""
        wanted = None if who is None else set(who)
        return [
            (e.a["offender"], e.a["kind"])
            for e in self.named("Slashing.OffenceReported")
            if wanted is None or e.a["offender"] in wanted
        ]

    def slashed(self, who: str) -> int:
        """Stake slashed from `who` and its voters by the slashes applied."""
        return sum(
            e.a["own"] + e.a["voters"]
            for e in self.named("Slashing.OffenderSlashed")
            if e.a["offender"] == who
        )


def assert_untouched(net: Net, trail: Trail, names: Iterable[str]) -> None:
    """Honest miners: no offence reported, nothing slashed, no task Rejected."""
    who = {addr(net, n) for n in names}
    assert not trail.offences(who), trail.offences(who)
    assert not [e for e in trail.named("Slashing.OffenderSlashed") if e.a["offender"] in who]
    for name in names:
        stats = net.kit.q("Tasks", "MinerStats", addr(net, name))
        assert stats["rejected"] == 0, (name, stats)


# ---- the cheating solvers tell checks from their own tasks (no processes) ------------------------


class _Service:
    """What the miner daemon hands its check watcher: its own `_solve_spec`, which runs its
    solver (miner/service.py)."""

    def __init__(self, solver: Solver) -> None:
        self._solver = solver

    async def _solve_spec(self, spec: dict[str, Any]) -> bytes:
        return self._solver.solve(dict(spec))


def as_checker(solver: Solver, spec: dict[str, Any]) -> bytes:
    """What a miner daemon running `solver` commits to when it checks a task of `spec`."""
    no_chain = cast(ChainAccess, None)  # solving touches no chain
    watcher = CheckWatcher(
        no_chain, RecordStore(None), b"\1" * 32, b"\2" * 32, _Service(solver)._solve_spec
    )
    return asyncio.run(cast(Coroutine[Any, Any, bytes], watcher._solve(spec)))


@pytest.mark.parametrize(
    ("solver", "own_honest", "check_honest"),
    [
        ("StrategicCheatingSolver", False, True),
        ("LazyCheckerSolver", True, False),
        ("LyingCheckerSolver", True, False),
    ],
)
def test_role_aware_solvers_cheat_in_one_role(
    monkeypatch: pytest.MonkeyPatch, solver: str, own_honest: bool, check_honest: bool
) -> None:
    monkeypatch.setenv("CUCKOO_TEST_CHEAT", "1")
    spec = make_spec()
    honest = PatternSolver().solve(spec)
    cheat = load_solver(SOLVERS + solver)
    assert (cheat.solve(spec) == honest) is own_honest  # as the task's miner
    assert (as_checker(cheat, spec) == honest) is check_honest
    assert as_checker(PatternSolver(), spec) == honest  # other solvers' watchers are left alone
    monkeypatch.delenv("CUCKOO_TEST_CHEAT")
    assert cheat.solve(spec) == as_checker(cheat, spec) == honest  # no flag: honest in both


# ---- 1. a strategic cheater ----------------------------------------------------------------------

TASKS = 150
TASKS_PER_BLOCK = 3


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_strategic_cheater_at_the_sampling_rate_is_caught_and_loses_more_than_it_gains(
    net_factory: Callable[..., Net],
) -> None:
    """Dave bonds as much as the four honest miners together (so it gets about half the tasks)
    and fakes every result of its own; it checks others honestly, since a wrong check always
    loses (StrategicCheatingSolver). Faking selectively would not help it: when it commits to a
    result, nothing public predicts whether that result will be checked (the draw uses the
    randomness of the block that settles it, which does not exist yet), so "fake only when
    unchecked" is faking at random. With the dev check rate p = 10%, the number of fakes until
    the first one is drawn is geometric with mean 1/p = 10; with ~75 fakes the chance of never
    being drawn is 0.9^75 = 0.04%. The tasks arrive as a steady stream through the app API (3
    per block) so that the cheater is stopped (suspended by its slash) while work still flows."""
    started = time.monotonic()
    net = net_factory()  # the dev chain spec as it is: checkRate 10%
    kit = net.kit
    assert kit.si.get_constant("Tasks", "CheckRate").value == PERBILL // 10
    honest = ["Eve", "Bob", "Ferdie", "Heidi"]
    fund(net, {"Heidi": MINER_BOND + 1_000 * CAI})
    cheater_bond = MINER_BOND * len(honest)
    net.register(["Dave", *honest], bonds={"Dave": cheater_bond})
    start = kit.best()
    dave = addr(net, "Dave")
    net.start_coordinator(task_timeout_blocks=30)
    net.start_miner("Dave", solver=SOLVERS + "StrategicCheatingSolver", env=CHEAT, wait=False)
    for name in honest:
        net.start_miner(name, wait=False)
    for miner in net.miners.values():
        net.wait_miner_ready(miner)
    net.wait_miners_live(5)
    bonded_before = kit.q("Staking", "Ledger", dave)["total"]

    ids: list[str] = []
    block = kit.best()
    while len(ids) < TASKS:
        block = next_block(kit, block)
        ids += [net.create_task("a faked harbour", len(ids) + i) for i in range(TASKS_PER_BLOCK)]
    views = wait_jobs_final(net, ids, 240)
    end = wait_chain_settled(net)
    trail = Trail(kit, start)

    # the cheater's results, in the order the chain settled them (drawn for a check or not)
    miner_of = trail.miner_of()
    fakes = [e for e in trail.named("Tasks.ResultSubmitted") if e.a["miner"] == dave]
    fake_ids = {e.a["task_id"] for e in fakes}
    first_settle: dict[str, Ev] = {}
    for e in trail.events:
        settles = e.name == "Tasks.TaskSettled"
        drawn_now = e.name == "Tasks.CheckOpened" and e.a["round"] == 0
        if (settles or drawn_now) and e.a["task_id"] in fake_ids:
            first_settle.setdefault(e.a["task_id"], e)
    order = sorted(first_settle.values(), key=lambda e: e.index)
    drawn = [e for e in order if e.name == "Tasks.CheckOpened"]
    final = trail.final()
    guilty = [t for t in fake_ids if final.get(t) == ("Rejected", "Guilty")]
    guilty_verdicts = [
        e
        for e in trail.named("Tasks.Verdict")
        if e.a["task_id"] in fake_ids and e.a["final"] and e.a["outcome"] == "Guilty"
    ]
    applied = [e for e in trail.named("Slashing.OffenderSlashed") if e.a["offender"] == dave]

    # gain: the work units its accepted fakes earned, and what they were worth in their era
    pool = (
        kit.si.get_constant("Rewards", "EmissionPerEra").value
        * kit.si.get_constant("Rewards", "MinerShare").value
        // PERBILL
    )
    era_units: collections.Counter[int] = collections.Counter()
    dave_units: collections.Counter[int] = collections.Counter()
    fake_units: collections.Counter[int] = collections.Counter()
    open_credits: list[Ev] = []  # Dave's credits not yet matched with an accepted fake
    for e in trail.events:
        if e.name == "Rewards.WorkCredited" and e.a["role"] == "Miner":
            era_units[e.a["era"]] += e.a["units"]
            if e.a["who"] == dave:
                dave_units[e.a["era"]] += e.a["units"]
                open_credits.append(e)
        elif e.name == "Tasks.TaskSettled" and e.a["task_id"] in fake_ids:
            if e.a["status"] == "Accepted":  # _finalize credits the miner just before
                credit = open_credits.pop()
                assert credit.block == e.block, (credit, e)
                fake_units[credit.a["era"]] += credit.a["units"]
            open_credits.clear()
    earned = sum(pool * units // era_units[era] for era, units in fake_units.items())
    paid_by_era: collections.Counter[int] = collections.Counter()
    for e in trail.named("Rewards.Rewarded"):
        if e.a["who"] == dave:
            paid_by_era[e.a["era"]] += e.a["amount"]
    paid = sum(paid_by_era[era] * fake_units[era] // dave_units[era] for era in fake_units)
    loss = trail.slashed(dave)
    bonded_after = kit.q("Staking", "Ledger", dave)["total"]
    elapsed = time.monotonic() - started

    dave_final = collections.Counter(final[t] for t, m in miner_of.items() if m == dave)
    first_guilty = min((e.block for e in guilty_verdicts), default=None)
    suspended_at = min((e.block for e in applied), default=None)
    print(
        f"\nstrategic cheater, checkRate 10%: {len(ids)} tasks by the app API "
        f"({len(miner_of)} on chain), blocks #{start}..#{end}, {elapsed:.0f} s\n"
        f"  Dave: {cai(cheater_bond)} bonded of {cai(cheater_bond * 2)} miner stake, "
        f"{sum(1 for m in miner_of.values() if m == dave)} tasks assigned, {len(fakes)} faked; "
        f"they ended {dict(dave_final)}\n"
        f"  fakes drawn for a check: {len(drawn)}, found Guilty: {len(guilty)}; "
        f"fakes until the first draw: "
        f"{order.index(drawn[0]) + 1 if drawn else 'never'} (theory: geometric, mean 10)\n"
        f"  fakes submitted before the first Guilty verdict (#{first_guilty}): "
        f"{sum(1 for e in fakes if first_guilty is not None and e.block < first_guilty)}, "
        f"before the first slash suspended it (#{suspended_at}): "
        f"{sum(1 for e in fakes if suspended_at is not None and e.block < suspended_at)}\n"
        f"  gain: {sum(fake_units.values())} work units on fakes, worth {cai(earned)} "
        f"(miner pool {cai(pool)}/era), paid {cai(paid)} (a suspended miner's unpaid eras are "
        f"not minted)\n"
        f"  loss: {cai(loss)} slashed in {len(applied)} slashes "
        f"({', '.join(k for _, k in trail.offences([dave]))}); bonded "
        f"{cai(bonded_before)} -> {cai(bonded_after)}\n"
        f"  loss/gain: {loss / max(earned, 1):,.0f}x the worth of its fake units, "
        f"{loss / max(paid, 1):,.0f}x what it was paid; receipts "
        f"{dict(collections.Counter(v['receipt']['verification'] for v in views.values()))}"
    )
    assert fakes, "the cheater got no task"
    assert guilty, f"none of {len(fakes)} fakes was found Guilty (drawn: {len(drawn)})"
    assert set(drawn_ids := {e.a["task_id"] for e in drawn}) == set(guilty), (drawn_ids, guilty)
    assert {k for _, k in trail.offences([dave])} == {"InvalidResult"}
    assert applied, "the cheater's slash was not applied"
    assert kit.q("Registry", "Miners", dave)["status"] == "Suspended"
    assert_untouched(net, trail, honest)
    assert not [t for t, m in miner_of.items() if m != dave and final[t][0] == "Rejected"]
    assert loss >= 10 * earned, f"loss {cai(loss)} is under 10x the gain {cai(earned)}"


# ---- 2. a lazy checker ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_lazy_checker_is_reported_and_the_results_it_checked_are_upheld(
    net_factory: Callable[..., Net],
) -> None:
    """Every result is checked (checkRate 100%). Dave computes its own tasks but answers each
    check with a flat grey image (LazyCheckerSolver); it bonds three times the minimum so that it
    is often the round-0 checker. Its disagreement sends the task to three more checkers, who
    agree with the miner: the result is Upheld and Dave reported (CheckFault) each time."""
    started = time.monotonic()
    net = net_factory(verification={"checkRate": PERBILL})
    kit = net.kit
    honest = ["Eve", "Bob", "Ferdie", "Heidi"]
    fund(net, {"Heidi": MINER_BOND + 1_000 * CAI})
    net.register(["Dave", *honest], bonds={"Dave": 3 * MINER_BOND})
    start = kit.best()
    dave = addr(net, "Dave")
    net.start_coordinator(task_timeout_blocks=60)
    net.start_miner("Dave", solver=SOLVERS + "LazyCheckerSolver", env=CHEAT, wait=False)
    for name in honest:
        net.start_miner(name, wait=False)
    for miner in net.miners.values():
        net.wait_miner_ready(miner)
    net.wait_miners_live(5)

    ids: list[str] = []
    for batch in range(4):  # until Dave was drawn to check at least 3 honest results
        ids += [net.create_task("a lazily checked harbour", 10 * batch + i) for i in range(8)]
        wait_jobs_final(net, ids, 180)
        drawn = [e for e in Trail(kit, start).rounds() if dave in e.a["checkers"]]
        if len(drawn) >= 3:
            break
    wait_chain_settled(net)
    trail = Trail(kit, start)
    elapsed = time.monotonic() - started

    miner_of, final = trail.miner_of(), trail.final()
    lazy_rounds = [e for e in trail.rounds() if dave in e.a["checkers"]]
    checked = [e.a["task_id"] for e in lazy_rounds]
    faults = trail.offences([dave])
    own = collections.Counter(final[t] for t, m in miner_of.items() if m == dave)
    print(
        f"\nlazy checker, checkRate 100%: {len(ids)} tasks, {elapsed:.0f} s; Dave drawn to check "
        f"{len(checked)} (rounds {[e.a['round'] for e in lazy_rounds]}), those results ended "
        f"{dict(collections.Counter(final[t] for t in checked))}; Dave reported "
        f"{dict(collections.Counter(k for _, k in faults))}, slashed {cai(trail.slashed(dave))}; "
        f"Dave's own results {dict(own)}; "
        f"all outcomes {dict(collections.Counter(final.values()))}"
    )
    assert len(checked) >= 3, f"Dave was drawn for {len(checked)} checks only"
    for task_id in checked:
        assert miner_of[task_id] != dave
        assert final[task_id] == ("Accepted", "Upheld"), (task_id, final[task_id])
    assert sorted(faults) == [(dave, "CheckFault")] * len(checked), faults
    assert trail.slashed(dave) > 0
    assert_untouched(net, trail, honest)
    assert "Rejected" not in {status for status, _ in final.values()}, final


# ---- 3. a hostile coordinator --------------------------------------------------------------------


def hold_coordinator_on_a_result(net: Net, seed: int) -> str | None:
    """Create a task and stop the coordinator (SIGSTOP) as soon as it has sent the task's
    commitment and taken the miner's upload, which is before the miner's result can be on chain
    and so before the coordinator can accept it. Returns the task id once the result is on chain
    (Submitted) with the coordinator still stopped; None, the coordinator running again, when
    the coordinator was not stopped in time and settled it."""
    coordinator = net.coordinator_daemon
    assert coordinator is not None
    commits = 'cuckoo_coordinator_chain_items_total{kind="commit"}'
    uploads = 'cuckoo_coordinator_events_total{event="results_uploaded"}'
    before = metrics(net)
    task_id = net.create_task("a contested harbour", seed)

    def sent_and_uploaded() -> bool:
        now = metrics(net)
        return now.get(commits, 0) > before.get(commits, 0) and now.get(uploads, 0) > before.get(
            uploads, 0
        )

    poll_until("the commitment sent and the result uploaded", sent_and_uploaded, 30, interval=0.02)
    coordinator.signal(signal.SIGSTOP)

    def on_chain() -> str | None:
        task = net.kit.task(h(task_id))
        return None if task is None or task["status"] == "Committed" else str(task["status"])

    status = poll_until("the result on chain", on_chain, 30, on_fail=net.logs)
    if status in ("Submitted", "Checking"):  # Checking: drawn a block after the result
        return task_id
    coordinator.signal(signal.SIGCONT)
    return None


def wait_task_final(net: Net, task_id: str, timeout: float = 90) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        task = net.kit.task(h(task_id))
        return task if task and task["status"] in ("Accepted", "Rejected", "Missed") else None

    return poll_until(f"task {task_id} final on chain", final, timeout, on_fail=net.logs)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_hostile_coordinator_pays_for_a_false_dispute_and_a_withheld_spec(
    net_factory: Callable[..., Net],
) -> None:
    """Every result is checked (checkRate 100%); four honest miners. The test plays the hostile
    coordinator with the coordinator's own operator key while the daemon is stopped (SIGSTOP),
    so that the daemon neither accepts the result first nor reveals the spec:
    (a) it disputes a correct result right after the miner's ResultSubmitted: three checkers
        re-run it, the miner is Upheld and keeps its record and stake; the coordinator is
        reported (FalseDispute);
    (b) it stays silent while the chain's check of a result waits for the spec (from the task's
        deadline, where the chain draws it, until the spec window closes): the coordinator is
        reported (WithheldSpec) and the task Accepted in the miner's favour."""
    started = time.monotonic()
    net = net_factory(verification={"checkRate": PERBILL})
    kit = net.kit
    names = ["Dave", "Eve", "Bob", "Ferdie"]
    # twice the minimum: a coordinator bonded at the minimum turns Inactive at its first slash
    net.register(names, coordinator_bond=2 * COORDINATOR_BOND)
    start = kit.best()
    coordinator = net.start_coordinator(task_timeout_blocks=20)
    for name in names:
        net.start_miner(name, wait=False)
    for miner in net.miners.values():
        net.wait_miner_ready(miner)
    net.wait_miners_live(4)
    by_addr = {addr(net, n): n for n in names}
    stake = {n: kit.q("Staking", "Ledger", addr(net, n))["total"] for n in names}
    coordinator_stake = kit.q("Staking", "Ledger", charlie(net))["total"]
    tries = {"dispute": 0, "withhold": 0}

    def held(kind: str) -> str:
        for _ in range(6):  # the stop may come too late: then another task
            tries[kind] += 1
            task_id = hold_coordinator_on_a_result(net, sum(tries.values()))
            if task_id is not None:
                return task_id
        raise AssertionError(f"the coordinator could never be stopped in time\n{net.logs()}")

    # (a) a false dispute, signed with the coordinator's operator key
    for _ in range(3):
        disputed = held("dispute")
        outcome = kit.submit(
            net.coordinator.operator, "Tasks", "dispute_task", {"task_id": disputed}
        )
        coordinator.signal(signal.SIGCONT)  # it reveals the spec: the dispute is its own
        if outcome.is_success:
            break
        # a settlement the daemon sent just before it was stopped came first
        assert "NotSubmitted" in str(outcome.error_message), outcome.error_message
    else:
        raise AssertionError("no dispute got in before the coordinator's settlement")
    task = wait_task_final(net, disputed)
    assert (task["status"], task["outcome"]) == ("Accepted", "Upheld"), task
    owner = by_addr[task["miner"]]

    # (b) a withheld spec
    withheld = held("withhold")
    task = wait_task_final(net, withheld)  # deadline, check drawn, spec window over
    coordinator.signal(signal.SIGCONT)
    assert (task["status"], task["outcome"]) == ("Accepted", "Unchecked"), task

    views = wait_jobs_final(net, [disputed, withheld], 60)  # the daemon caught up
    wait_chain_settled(net)
    trail = Trail(kit, start)
    elapsed = time.monotonic() - started
    rounds = {t: [e.a for e in trail.rounds() if e.a["task_id"] == t] for t in (disputed, withheld)}
    closed = [
        (e.a["round"], e.a["agree"], e.a["disagree"], e.a["absent"])
        for e in trail.named("Tasks.RoundClosed")
        if e.a["task_id"] == disputed
    ]
    final = trail.final()
    owner_accepted = [
        t
        for t, m in trail.miner_of().items()
        if m == addr(net, owner) and final[t][0] == "Accepted"
    ]
    stats = kit.q("Tasks", "MinerStats", addr(net, owner))
    spec_revealed = {e.a["task_id"] for e in trail.named("Tasks.SpecRevealed")}
    print(
        f"\nhostile coordinator, checkRate 100%: {elapsed:.0f} s; tasks created until the "
        f"coordinator was stopped in time: {tries}\n"
        f"  (a) dispute of {owner}'s correct result: rounds "
        f"{[(r['round'], len(r['checkers'])) for r in rounds[disputed]]}, closed (round, "
        f"agree, disagree, absent) {closed}, receipt "
        f"{views[disputed]['receipt']['verification']}; {owner}'s MinerStats {stats}\n"
        f"  (b) withheld spec: rounds {[(r['round'], r['phase']) for r in rounds[withheld]]}, "
        f"spec revealed {withheld in spec_revealed}, receipt "
        f"{views[withheld]['receipt']['verification']}\n"
        f"  coordinator reported {[k for _, k in trail.offences([charlie(net)])]}, slashed "
        f"{cai(trail.slashed(charlie(net)))} of {cai(coordinator_stake)}; miners slashed "
        f"{ {n: trail.slashed(addr(net, n)) for n in names} }"
    )
    # the dispute landed before the result's draw (round 1 at once, three checkers) or after
    # it (round 0 runs, then round 1 with the two miners left): upheld either way
    opened = [(r["round"], len(r["checkers"])) for r in rounds[disputed]]
    assert opened in ([(1, 3)], [(0, 1), (1, 2)]), opened
    assert closed in ([(1, 3, 0, 0)], [(0, 1, 0, 0), (1, 2, 0, 0)]), closed
    assert disputed in owner_accepted
    assert stats["accepted"] == len(owner_accepted), (stats, owner_accepted)
    assert [r["round"] for r in rounds[withheld]] == [0]
    assert withheld not in spec_revealed
    assert sorted(trail.offences([charlie(net)])) == sorted(
        [(charlie(net), "FalseDispute"), (charlie(net), "WithheldSpec")]
    )
    assert trail.slashed(charlie(net)) > 0
    assert kit.q("Registry", "Coordinators", charlie(net))["status"] == "Active"
    assert_untouched(net, trail, names)
    assert {n: kit.q("Staking", "Ledger", addr(net, n))["total"] for n in names} == stake
    assert views[disputed]["receipt"]["verification"] == "upheld"
    assert views[withheld]["receipt"]["verification"] == "unchecked"


SYBILS = ["Mallory", "Niaj", "Oscar"]
HONEST = ["Dave", "Eve", "Bob", "Ferdie", "Heidi", "Ivan", "Judy"]
SYBIL_BOND = 8 * MINER_BOND


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_sybil_checkers_that_outvote_an_honest_miner_lose_its_appeal(
    net_factory: Callable[..., Net],
) -> None:
    """Every result is checked (checkRate 100%). Three sybil miners of the adversary bond 8x
    the minimum each (600,000 of the 775,000 CAI of miner stake), take no tasks and alter
    the image of every check they are drawn for (LyingCheckerSolver); seven honest miners take
    the tasks. A round-0 sybil sends the task to round 1; when the two other sybils are drawn
    there too they outvote the honest checker (Guilty, not final), the miner's daemon appeals,
    and five fresh checkers (necessarily honest: every sybil was used) uphold it. Ten miners
    are what a full appeal needs: the miner, 1 + 3 earlier checkers and 5 fresh ones."""
    started = time.monotonic()
    net = net_factory(verification={"checkRate": PERBILL})
    kit = net.kit
    fund(
        net,
        {n: MINER_BOND + 1_000 * CAI for n in HONEST[4:]}
        | {n: SYBIL_BOND + 1_000 * CAI for n in SYBILS},
    )
    net.register(HONEST + SYBILS, bonds={n: SYBIL_BOND for n in SYBILS})
    start = kit.best()
    net.start_coordinator(task_timeout_blocks=80)
    (nobody,) = free_ports(1)  # the sybils poll a port nobody serves: they only check
    for name in SYBILS:
        net.start_miner(
            name,
            solver=SOLVERS + "LyingCheckerSolver",
            env=CHEAT,
            wait=False,
            coordinator_url=f"http://127.0.0.1:{nobody}",
        )
    for name in HONEST:
        net.start_miner(name, wait=False)
    for miner in net.miners.values():
        net.wait_miner_ready(miner)
    net.wait_miners_live(len(HONEST))
    sybils = {addr(net, n) for n in SYBILS}

    ids: list[str] = []
    for batch in range(4):  # until an honest miner was outvoted and appealed
        ids += [net.create_task("an outvoted harbour", 10 * batch + i) for i in range(7)]
        wait_jobs_final(net, ids, 240)
        if any(e.a["round"] == 2 for e in Trail(kit, start).rounds()):
            break
    wait_chain_settled(net)
    trail = Trail(kit, start)
    elapsed = time.monotonic() - started

    miner_of, final = trail.miner_of(), trail.final()
    rounds = trail.rounds()
    outvoted = [
        e.a["task_id"]
        for e in trail.named("Tasks.Verdict")
        if e.a["outcome"] == "Guilty" and not e.a["final"]
    ]
    appeals = [e.a for e in rounds if e.a["round"] == 2]
    sybil_draws = [(e.a["task_id"], s) for e in rounds for s in e.a["checkers"] if s in sybils]
    lies = [e.a for e in trail.named("Tasks.ResultRevealed") if e.a["who"] in sybils]
    print(
        f"\nsybil checkers, checkRate 100%: {len(ids)} tasks, {elapsed:.0f} s; sybils hold "
        f"{3 * SYBIL_BOND * 100 // (3 * SYBIL_BOND + len(HONEST) * MINER_BOND)}% of the miner "
        f"stake; check rounds opened {dict(collections.Counter(e.a['round'] for e in rounds))}\n"
        f"  sybils drawn {len(sybil_draws)} times on {len({t for t, _ in sybil_draws})} tasks, "
        f"lied in {len(lies)} (revealed an altered image); honest miners outvoted in round 1: "
        f"{len(outvoted)}, appealed: {len(appeals)} (fresh checkers "
        f"{[len(a['checkers']) for a in appeals]}), outcomes of the appeals "
        f"{[final[a['task_id']] for a in appeals]}\n"
        f"  sybils reported {dict(collections.Counter(k for _, k in trail.offences(sybils)))}, "
        f"slashed {cai(sum(trail.slashed(s) for s in sybils))}; all outcomes "
        f"{dict(collections.Counter(final.values()))}"
    )
    assert appeals, f"no honest miner was outvoted in {len(ids)} tasks"
    assert sorted(outvoted) == sorted(a["task_id"] for a in appeals)
    for appeal in appeals:
        assert len(appeal["checkers"]) == 5, appeal
        assert not set(appeal["checkers"]) & sybils, appeal
        assert final[appeal["task_id"]] == ("Accepted", "Upheld")
    assert all(m not in sybils for m in miner_of.values())
    assert "Rejected" not in {status for status, _ in final.values()}, final
    assert {k for _, k in trail.offences(sybils)} == {"CheckFault"}
    assert len(trail.offences(sybils)) == len(set(sybil_draws))
    assert_untouched(net, trail, HONEST)
