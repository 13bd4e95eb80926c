"""Attacks on the checked-work protocol (docs/verification.md), played on the real runtime in
process (tests/pallets/verification_sim.py): a strategic cheater is caught at the sampling rate
and loses more than 10x what it gains; lazy checkers (guessing, copying) are caught and slashed;
a hostile coordinator (false disputes, a withheld spec) pays and the honest miner keeps its stake
and record; its sybil checkers win only when the stake draw gives them the majority of every
round, at the measured rate; honest miners with checks on lose nothing. Three tests hold runtime
bugs found here and fixed (colluding settlement timing, a full slash queue, absent rounds). Each
test prints its figures (`pytest -s`); bench/verification_bench.py runs the same bigger."""

from __future__ import annotations

import collections

import pytest

from chain.frame.common import PERBILL_ONE
from pallets.staking import pallet as staking
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import CheckPhase, Error, TaskStatus
from tests.pallets import verification_sim as vs
from tests.pallets.verification_sim import CAI, MIN_MINER, Sim

P = vs.perbill(0.1)  # the dev chain's checkRate
CONFIDENCE = 0.99


def cai(amount: float) -> str:
    return f"{amount / CAI:,.0f} CAI"


def offence_counts(sim: Sim) -> collections.Counter[tuple[bytes, str]]:
    return collections.Counter(sim.tally.offences)


def slash_of(stake: int, fraction: int, times: int) -> int:
    """What `times` slashes of `fraction` (Perbill) take from `stake`, one after the other, as
    Slashing applies them (each of the stake left)."""
    left = stake
    for _ in range(times):
        left -= left * fraction // PERBILL_ONE
    return stake - left


# ---- (a) the strategic cheater -------------------------------------------------------------------


@pytest.mark.slow
def test_cheater_faking_every_task_is_caught_at_the_sampling_rate() -> None:
    """1,000 runs, fresh randomness each: the cheater fakes every task until a fake of it is
    found Guilty (final, after its appeal). Fakes to the first catch are geometric with mean
    1/p = 10; P(caught within 50) = 1 - 0.9^50 = 99.48%.

    Two checks of "caught within 50 fakes in at least 99% of runs": (1) the runs' own count is
    not significantly below 99% (fewer than 1% of draws from Binomial(1000, 0.99) fall below the
    bound asserted); (2) the per-fake catch probability's 99% lower confidence bound p_L (catches
    per fake faced, Clopper-Pearson) gives 1 - (1 - p_L)^50 >= 99%."""
    runs = vs.cheater_runs(P, 1000)
    s = vs.catch_stats(P, runs)
    tolerance = next(k for k in range(s.runs) if vs.binom_sf(k + 1, s.runs, 0.01) < 0.01)
    print(
        f"\ncaught within 50 fakes: {s.within_50}/{s.runs} = {s.within_50 / s.runs:.2%} "
        f"(theory {s.within_50_theory:.2%}; 99% lower bound {s.within_50_lower():.2%}; "
        f"at most {tolerance} misses allowed)"
    )
    print(
        f"mean fakes to catch {s.mean_fakes:.2f} (theory {1 / s.p:.0f}); per-fake catch "
        f"{s.p_hat:.4f}, 99% CI [{s.p_lower():.4f}, {s.p_upper():.4f}] (p = {s.p}); "
        f"=> P(caught within 50) >= {s.within_50_model_lower():.2%}"
    )
    assert s.caught == s.runs  # nobody survives the 200-fake cap
    assert s.runs - s.within_50 <= tolerance
    assert s.within_50_model_lower(CONFIDENCE) >= 0.99
    assert s.p_lower() <= s.p <= s.p_upper()  # the rate is the protocol's p, not more or less
    assert s.p_lower() <= 1 / s.mean_fakes <= s.p_upper()
    assert all(r.fakes_drawn >= 1 for r in runs)  # a catch needs a draw: nothing else convicts


@pytest.mark.slow
def test_cheater_predicting_the_draw_from_the_public_mix_does_no_better() -> None:
    """The best predictor public information gives: the draw under the mix of the block the
    cheater commits in. It fakes only where that says "unchecked". The settling block's mix is
    fresh, so its fakes are drawn at rate p like anybody's, and so are the tasks it does
    honestly: it is caught at the protocol's rate, like the cheater that fakes every task."""
    runs = vs.cheater_runs(P, 400, "predictor")
    s = vs.catch_stats(P, runs)
    honest = sum(r.honest for r in runs)
    honest_drawn = sum(r.honest_drawn for r in runs)
    print(
        f"\npredictor: caught within 50 {s.within_50}/{s.runs}, mean fakes to catch "
        f"{s.mean_fakes:.2f}, per-fake catch {s.p_hat:.4f} [{s.p_lower():.4f}, {s.p_upper():.4f}]"
        f"\n  its fakes drawn {s.fakes_drawn}/{s.fakes_total} = "
        f"{s.fakes_drawn / s.fakes_total:.2%}; the tasks it did honestly (predicted 'checked') "
        f"drawn {honest_drawn}/{honest} = {honest_drawn / honest:.2%}"
    )
    assert s.caught == s.runs
    assert s.p_lower() <= s.p <= s.p_upper()
    assert vs.lower_bound(s.fakes_drawn, s.fakes_total) <= s.p
    assert s.p <= vs.upper_bound(s.fakes_drawn, s.fakes_total)
    assert vs.lower_bound(honest_drawn, honest) <= s.p <= vs.upper_bound(honest_drawn, honest)


def test_cheater_with_a_colluding_author_and_coordinator_is_caught_at_p_eff() -> None:
    """docs/verification.md section 9: with a colluding author holding a share a = 1/3 of the
    slots, the effective check rate is at least p_eff = p x (1 - a + a x p) (= 0.0700; the
    document prints 0.0733, which is a = 0.3). Here the cheater's coordinator colludes too and
    hands its settlements of the cheater's tasks to that author only, who includes them when its
    own block's mix (which it knows in advance) draws them unchecked; the task's deadline is 100
    blocks away, so there are ~33 such blocks to try."""
    a = 1 / 3
    runs = vs.cheater_runs(P, 20, collusive=True, max_fakes=100)
    s = vs.catch_stats(P, runs)
    p_eff = s.p * (1 - a + a * s.p)
    print(
        f"\ncolluding author (a = 1/3) + coordinator: {s.caught} catches in {s.trials} fakes, "
        f"per-fake catch {s.p_hat:.4f} <= {s.p_upper():.4f} (99%), drawn {s.fakes_drawn}; "
        f"the document's p_eff {p_eff:.4f}"
    )
    assert s.p_upper() >= p_eff


def test_every_guilty_fake_is_slashed_even_in_a_busy_era() -> None:
    """A big miner is offline (drawn to check, it never commits) while 400 tasks settle in one
    block, every result checked: its absences close ~30 blocks later, together, and fill the
    era's slash queue with 256 CheckFaults. Ten fakes of a cheater, submitted in the same block
    and convicted in the same block as those absences, must still be reported and slashed."""
    r = vs.busy_era(vs.run_seed("busy-era", 0))
    print(
        f"\nGuilty fakes {r.guilty}/{r.fakes}; offences reported {r.offences}; the cheater's "
        f"InvalidResult reports {r.reported}, slashed {cai(r.cheater_slashed)}, still active: "
        f"{r.cheater_active}"
    )
    assert r.guilty == r.fakes
    assert r.reported == r.guilty
    assert r.cheater_slashed > 0
    assert not r.cheater_active


def test_a_fake_is_not_upheld_by_absent_checkers() -> None:
    """One honest miner with most of the stake and eight offline ones (drawn, they never
    commit): every fake is checked (p = 100%). When the honest miner checks one it disagrees; the
    other rounds' checkers are offline. The fake must not be accepted, and the checker that
    re-ran it correctly must not pay."""
    r = vs.absent_round(vs.run_seed("absent-round", 0))
    print(
        f"\nfakes the honest checker caught {r.caught}/{r.fakes}, Rejected in the end "
        f"{r.caught_rejected}; the honest checker reported {r.right_checker_offences} times"
    )
    assert r.caught > 0
    assert r.caught_rejected == r.caught
    assert r.right_checker_offences == 0


def test_cheater_with_accomplice_checkers_escapes_only_by_their_majorities() -> None:
    """Outside the document's threat model, for scale: the cheater also runs accomplice miners
    (11 at the minimum stake, 20% of the miner stake beside the honest ten) that, drawn to check
    one of its fakes, reveal the fake as theirs whenever they hold the round's majority (round 0
    has a single checker). A drawn fake escapes only through such a majority, at the rate the
    stake draw gives them; honest checkers that re-ran the task correctly are slashed in those
    escapes (they are on the losing side of an Upheld verdict, which nobody can appeal)."""
    runs = vs.cheater_runs(P, 200, accomplices=vs.sybil_count(0.2))
    s = vs.catch_stats(P, runs)
    escape = vs.ring_theory(0.2, (1, 3, 5), every=False, target_is_honest=False)
    drawn, upheld = s.fakes_drawn, sum(r.fakes_upheld for r in runs)
    print(
        f"\naccomplices at 20% of the stake: drawn fakes upheld {upheld}/{drawn} = "
        f"{upheld / drawn:.1%} (stake-draw theory {escape:.1%}); per-fake catch {s.p_hat:.4f} "
        f"[{s.p_lower():.4f}, {s.p_upper():.4f}] vs p x (1 - escape) = {s.p * (1 - escape):.4f};"
        f" honest checkers reported in the escapes: {sum(r.honest_checker_offences for r in runs)}"
    )
    assert sum(r.upheld_without_ring for r in runs) == 0
    assert vs.lower_bound(upheld, drawn) <= escape <= vs.upper_bound(upheld, drawn)
    assert s.p_lower() <= s.p * (1 - escape) <= s.p_upper()


def test_cheater_expected_loss_is_over_ten_times_its_gain() -> None:
    """Ten cheaters at the minimum stake (20,000 CAI) among ten honest miners, one task per
    miner per block, fake every task for ten eras (and two more while the slashes apply). Gain
    per fake: at most what an accepted task earns its miner (its price less the burn share,
    plus the emission its burn backs: docs/economics.md). Loss: the slashes applied (50% of the
    stake per Guilty fake) and the rewards forfeited (the rejected fake's, and all work credited
    in an era whose payout found the cheater suspended). Theory: p x (s x B + r) per fake."""
    e = vs.economy(vs.run_seed("economy", 0), P, cheaters=10, eras=10)
    books = e.books
    caught = [b for b in books if b.fakes_rejected]
    units = sorted(e.era_work.values())
    print(
        f"\n{len(books)} cheaters, {e.fakes} fakes ({sum(b.fakes_rejected for b in books)} "
        f"Guilty), {len(caught)} caught; miner work credited per era "
        f"{cai(units[len(units) // 2])} burned (median), an accepted task earns "
        f"{sorted(e.unit_reward.values())[len(units) // 2] / CAI:.3f} CAI"
        f"\ngain per fake (bound) {e.gain_per_fake / CAI:.2f} CAI; loss per fake "
        f"{e.loss_per_fake / CAI:.2f} CAI (slashed {cai(sum(b.slashed for b in books))}, "
        f"forfeited {cai(sum(b.forfeited for b in books))}; actually paid for fakes "
        f"{cai(sum(b.paid_for_fakes for b in books))}); ratio {e.ratio:.0f}x "
        f"(theory p x (s x B + r) / r = {e.theory_loss_per_fake / e.gain_per_fake:.0f}x)"
    )
    assert len(caught) == len(books)  # every cheater was caught ...
    for b in caught:  # ... and slashed half its stake per Guilty fake
        assert b.slashed == slash_of(MIN_MINER, 500_000_000, b.fakes_rejected)
        assert b.paid_for_fakes <= b.gain_bound
    assert e.honest_slashed == 0
    assert e.honest_rejected == 0
    assert e.ratio >= 10
    # the realised loss per fake is the theory's within sampling error (fakes are geometric)
    assert 0.5 <= e.loss_per_fake / e.theory_loss_per_fake <= 2


def test_cheater_at_low_traffic_gains_no_more_than_a_task_pays() -> None:
    """One task per block in the whole network (about 11-13 miner work units per era). Before
    emission was backed by burns (docs/economics.md), one unit's reward here was the era's pool
    over a dozen units, ~60 CAI, and the 10x margin held only just. Now a fake earns at most the
    task's price less its burn plus the rebate of that burn, whatever the traffic."""
    e = vs.economy(vs.run_seed("economy-low", 0), P, cheaters=10, eras=30, tasks_per_block=1)
    print(
        f"\nlow traffic: gain per fake {e.gain_per_fake / CAI:.3f} CAI, loss per fake "
        f"{e.loss_per_fake / CAI:.2f} CAI, ratio {e.ratio:.0f}x "
        f"(theory {e.theory_loss_per_fake / e.gain_per_fake:.0f}x)"
    )
    assert e.gain_per_fake <= vs.PRICE
    assert e.theory_loss_per_fake / e.gain_per_fake >= 10
    assert e.ratio >= 10


# ---- (b) lazy checkers ---------------------------------------------------------------------------


def test_lazy_checker_that_guesses_is_caught_and_slashed() -> None:
    """A lazy miner with a large stake (so it is drawn often) makes its checks up. Every time it
    checks alone (round 0) it disagrees with an honest miner, the task escalates, three checkers
    uphold the miner, and the guesser is reported; each report costs it 5% of its stake."""
    stake = 300_000
    r = vs.lazy_population(
        vs.run_seed("guesser", 0), P, lazy=[vs.LazyGuesser()], lazy_stakes=[stake], blocks=60
    )
    print(
        f"\n{r.tasks} tasks, {r.checked} checked, {r.escalated} escalated: the guesser was "
        f"reported {r.lazy_offences} times and lost {cai(r.lazy_slashed)} of {cai(stake * CAI)}"
    )
    assert r.lazy_offences >= 3
    assert r.lazy_slashed == slash_of(stake * CAI, 50_000_000, r.lazy_offences)
    assert (r.honest_convicted, r.honest_offences, r.honest_slashed) == (0, 0, 0)


def test_lazy_checker_cannot_open_a_copied_commitment() -> None:
    """Round 0: the only thing public is the miner's blind commitment. A checker that commits it
    verbatim cannot open it, even with every value of the miner's: the commitment binds the
    committer's account. It is absent at the reveal, the task escalates, and it pays."""
    copier = vs.LazyCopier()
    miners = [*vs.honest_miners(), (500_000 * CAI, vs.DEVICE_CLASSES[1], copier)]
    sim = Sim(vs.run_seed("copier", 0), PERBILL_ONE, miners, [vs.CoordinatorPolicy()])
    lazy = next(w for w in sim.miners.values() if w.policy is copier)
    workers = [w for w in sim.miners.values() if w is not lazy]
    job = None
    while job is None:
        jobs = sim.assign(sim.coordinators[0], workers)
        sim.step()
        job = next((j for j in jobs if (0, lazy.staker) in j.answers), None)
    check = tasks.Checks.get(sim.m.state, job.task_id)
    assert check is not None
    assert (check.round, check.phase) == (0, CheckPhase.REVEALING)  # it waits for the copier
    [mine] = check.current()
    assert mine.commitment == sim.task(job.task_id).commitment  # copied verbatim
    honest = job.committed
    assert honest is not None
    sim.m.assert_noop(
        lazy.operator,
        "Tasks",
        "reveal_result",
        Error.BAD_REVEAL,
        task_id=job.task_id,
        result_hash=honest.result_hash,
        device_hash=honest.device_hash,
        sketch=honest.sketch,
        salt=vs.salt_of(job.miner.staker, job.task_id),
    )
    sim.drain()
    sim.finish_eras(2)
    assert (job.status, job.outcome) == (TaskStatus.ACCEPTED, "Upheld")
    counts = offence_counts(sim)
    print(f"\nthe copier's offences: {counts[(lazy.staker, 'CheckFault')]}")
    assert counts[(lazy.staker, "CheckFault")] >= 1
    assert all(who == lazy.staker for who, _ in sim.tally.offences)
    assert sim.tally.slashed[lazy.staker] == slash_of(
        lazy.stake, 50_000_000, counts[(lazy.staker, "CheckFault")]
    )


def test_checker_copying_a_public_reveal_pays_when_it_backs_a_cheater() -> None:
    """Escalation rounds see the earlier reveals. A lazy checker that copies the miner's (a bet
    that the miner is honest) is on the losing side whenever the miner faked, and pays."""
    copier = vs.LazyCopier("miner")
    cheater = vs.Cheater("always")
    miners = [
        *vs.honest_miners(),
        (100_000 * CAI, vs.DEVICE_CLASSES[1], copier),
        (MIN_MINER, vs.DEVICE_CLASSES[0], cheater),
    ]
    sim = Sim(vs.run_seed("copier-cheater", 0), PERBILL_ONE, miners, [vs.CoordinatorPolicy()])
    lazy = next(w for w in sim.miners.values() if w.policy is copier)
    me = next(w for w in sim.miners.values() if w.policy is cheater)
    backed = []
    for _ in range(40):
        [job] = sim.assign(sim.coordinators[0], [me])
        sim.step()
        sim.drain()
        if any(r > 0 and w == lazy.staker for r, w in job.answers):
            backed.append(job)
        if len(backed) == 3:
            break
    sim.finish_eras(2)
    faults = offence_counts(sim)[(lazy.staker, "CheckFault")]
    convicted = [j for j in backed if j.status == TaskStatus.REJECTED]
    print(
        f"\nthe copier backed {len(backed)} fakes in escalation rounds; {len(convicted)} "
        f"convicted anyway; it was reported {faults} times, slashed "
        f"{cai(sim.tally.slashed.get(lazy.staker, 0))}"
    )
    assert len(backed) == 3
    assert convicted  # an honest majority convicts despite the copier ...
    assert faults >= len(convicted)  # ... and the copier pays for each
    assert sim.tally.slashed[lazy.staker] == slash_of(lazy.stake, 50_000_000, faults)


@pytest.mark.parametrize("kind", ["guess", "copy"])
def test_lazy_population_never_convicts_an_honest_miner(kind: str) -> None:
    """Five lazy checkers hold ~20% of the miner stake (5 x 45,000 CAI of 1,125,000) while ten
    honest miners do 1,000 tasks at p = 0.1. Honest miners: none Guilty, none reported, nothing
    slashed, every task accepted. The lazy checkers pay 5% per lazy round-0 check."""
    policies = [vs.LazyGuesser() if kind == "guess" else vs.LazyCopier() for _ in range(5)]
    r = vs.lazy_population(
        vs.run_seed(f"lazy-{kind}", 0), P, lazy=policies, lazy_stakes=[45_000] * 5, blocks=100
    )
    print(
        f"\n{kind}: {r.tasks} tasks, {r.checked} checked, {r.escalated} escalated, {r.appealed} "
        f"appealed; honest miners Guilty {r.honest_convicted}, reported {r.honest_offences}; "
        f"lazy checkers reported {r.lazy_offences} times, slashed {cai(r.lazy_slashed)} of "
        f"{cai(r.lazy_stake)} ({r.lazy_slashed / r.lazy_stake:.1%})"
    )
    assert r.tasks == 1000
    assert (r.honest_convicted, r.honest_rejected_stats) == (0, 0)
    assert (r.honest_offences, r.honest_slashed) == (0, 0)
    assert r.lazy_offences >= 5
    assert r.lazy_slashed > 0


# ---- (c) the hostile coordinator -----------------------------------------------------------------


def hostile_network(mode: str, check_rate: int) -> tuple[Sim, list[vs.Miner]]:
    targets = [vs.account("miner", i) for i in range(len(vs.HONEST_STAKES))]
    policy = vs.Hostile(targets, mode)
    sim = Sim(vs.run_seed(f"hostile-{mode}", 0), check_rate, vs.honest_miners(), [policy])
    return sim, list(sim.miners.values())


def test_coordinator_disputing_correct_results_pays_and_miners_keep_everything() -> None:
    """The coordinator disputes every result, 3 blocks in a row x 10 miners. Every dispute is
    upheld: the coordinator is reported FalseDispute 30 times and slashed 1% each; the miners
    keep every result (accepted), are never reported, lose nothing."""
    sim, miners = hostile_network("dispute", P)
    jobs = []
    for _ in range(3):
        jobs += sim.assign(sim.coordinators[0], miners)
        sim.step()
    sim.drain()
    sim.finish_eras(2)
    coordinator = sim.coordinators[0].staker
    counts = offence_counts(sim)
    print(
        f"\n{len(jobs)} disputes: outcomes {collections.Counter(j.outcome for j in jobs)}; "
        f"FalseDispute {counts[(coordinator, 'FalseDispute')]}, coordinator slashed "
        f"{cai(sim.tally.slashed.get(coordinator, 0))}; miners slashed "
        f"{cai(sum(sim.tally.slashed.get(w.staker, 0) for w in miners))}"
    )
    # a result drawn for a check before the dispute lands is checked instead (Verified); every
    # disputed one is Upheld and costs the coordinator
    disputed = [j for j in jobs if j.outcome == "Upheld"]
    assert all(j.status == TaskStatus.ACCEPTED for j in jobs)
    assert all(j.outcome in ("Upheld", "Verified") for j in jobs)
    assert len(disputed) >= len(jobs) // 2
    assert sim.tally.offences == [(coordinator, "FalseDispute")] * len(disputed)
    assert sim.tally.slashed == {
        coordinator: slash_of(vs.MIN_COORDINATOR, 10_000_000, len(disputed))
    }
    for w in miners:
        assert tasks.Stats.get(sim.m.state, w.staker) == tasks.MinerStats(3, 3, 3, 0, 0)
        ledger = staking.get_ledger(sim.m.state, w.staker)
        assert ledger is not None
        assert ledger.total == w.stake


def test_coordinator_withholding_a_selected_spec_pays_and_the_miner_is_accepted() -> None:
    """Every result is drawn (p = 100%) and the coordinator never reveals the spec: each task is
    accepted for its miner when the spec window ends, and the coordinator is reported
    WithheldSpec for each (1%)."""
    sim, miners = hostile_network("withhold", PERBILL_ONE)
    jobs = []
    for _ in range(2):
        jobs += sim.assign(sim.coordinators[0], miners)
        sim.step()
    sim.drain()
    sim.finish_eras(2)
    coordinator = sim.coordinators[0].staker
    print(
        f"\n{len(jobs)} checked tasks with the spec withheld: "
        f"{collections.Counter((str(j.status), j.outcome) for j in jobs)}; coordinator slashed "
        f"{cai(sim.tally.slashed.get(coordinator, 0))}"
    )
    assert all((j.status, j.outcome) == (TaskStatus.ACCEPTED, "Unchecked") for j in jobs)
    assert all(j.drawn for j in jobs)
    assert sim.tally.offences == [(coordinator, "WithheldSpec")] * len(jobs)
    assert sim.tally.slashed == {coordinator: slash_of(vs.MIN_COORDINATOR, 10_000_000, len(jobs))}
    for w in miners:
        assert tasks.Stats.get(sim.m.state, w.staker) == tasks.MinerStats(2, 2, 2, 0, 0)


@pytest.mark.parametrize("mode", ["dispute", "ambush"])
def test_sybil_checkers_of_a_hostile_coordinator(mode: str) -> None:
    """A hostile coordinator whose sybil miners (19 at the minimum stake: 30% of the miner stake)
    vote against an honest miner whenever they hold a round's majority, after a dispute
    (`dispute`) or when the draw checks the miner's result and picks a sybil (`ambush`, every
    result checked). The miner appeals a Guilty verdict. It ends Guilty only when the sybils
    held the majority of every round to the end, which the stake draw gives them at the rate
    measured here (printed); in every other run the miner keeps its stake and its record, and
    the attackers pay: the coordinator FalseDispute for a dispute, the sybils that voted
    against the miner CheckFault."""
    runs = vs.sybil_attacks(0.3, mode, 300)
    rounds = (3, 5) if mode == "dispute" else (1, 3, 5)
    all_rounds = frozenset(range(3 - len(rounds), 3))
    theory = vs.ring_theory(0.3, rounds)
    convicted = [r for r in runs if r.convicted]
    upheld = [r for r in runs if not r.convicted]
    print(
        f"\n{mode}: honest miner convicted in {len(convicted)}/{len(runs)} = "
        f"{len(convicted) / len(runs):.1%} of the attacks (stake-draw theory {theory:.1%}); "
        f"sybils slashed {cai(sum(r.sybil_slashed for r in runs))} in all, coordinator "
        f"{cai(sum(r.coordinator_slashed for r in runs))}; right honest checkers reported "
        f"in the convictions: {sum(r.honest_checker_offences for r in convicted)}"
    )
    for r in convicted:  # it took a sybil majority in every round, the appeal included
        assert r.majorities == all_rounds
        assert r.miner_slashed == slash_of(vs.HONEST_STAKES[0] * CAI, 500_000_000, 1)
        assert (r.coordinator_offences, r.sybil_offences) == (0, 0)
    for r in upheld:
        assert r.majorities != all_rounds
        assert (r.miner_slashed, r.miner_accepted, r.honest_checker_offences) == (0, 1, 0)
        assert r.coordinator_offences == (mode == "dispute")
        assert (r.sybil_offences > 0) == bool(r.majorities)  # the sybils that voted pay
        assert (r.sybil_slashed > 0) == bool(r.majorities)
    # the conviction rate is the draw's: within the 99% band of Binomial(runs, theory)
    k = len(convicted)
    assert vs.binom_cdf(k, len(runs), theory) >= 0.005
    assert vs.binom_sf(k, len(runs), theory) >= 0.005


# ---- honest miners -------------------------------------------------------------------------------


def test_honest_miners_with_checks_on_lose_nothing() -> None:
    """Ten honest miners on three device classes do 1,000 tasks at p = 0.1 (results agree
    exactly within a class, by sketch across classes). None is reported, slashed or rejected;
    the checking costs about p re-executions per task."""
    r = vs.lazy_population(vs.run_seed("honest", 0), P, lazy=[], lazy_stakes=[], blocks=100)
    lo, hi = vs.lower_bound(r.checked, r.tasks), vs.upper_bound(r.checked, r.tasks)
    print(
        f"\n{r.tasks} tasks: {r.checked} checked ({r.checked / r.tasks:.1%}, 99% CI "
        f"[{lo:.1%}, {hi:.1%}]), {r.escalated} escalated; re-executions {r.reruns} = "
        f"{r.reruns / r.tasks:.3f} per task, {r.reruns / (r.tasks + r.reruns):.1%} of all work; "
        f"rejected {r.honest_rejected_stats}, reported {r.honest_offences}, slashed "
        f"{cai(r.honest_slashed)}"
    )
    assert r.tasks == 1000
    assert (r.honest_convicted, r.honest_rejected_stats) == (0, 0)
    assert (r.honest_offences, r.honest_slashed) == (0, 0)
    assert (r.escalated, r.appealed) == (0, 0)
    assert r.reruns == r.checked  # one re-execution per checked task, no more
    assert lo <= 0.1 <= hi
