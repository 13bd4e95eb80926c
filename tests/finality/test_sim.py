"""Several voters over a simulated network. Every finalization in every run is checked by the
simulator's ledger (never two blocks final at one height, never a revert)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.consensus import PREVOTE, SignedVote, Vote, vote_payload
from tests.finality.sim import GENESIS, Sim


def same_final(sim: Sim) -> bool:
    return len({n.chain.final for n in sim.nodes}) == 1


def no_double_votes(sim: Sim) -> None:
    seen: dict[tuple[bytes, int, int], Vote] = {}
    for _, vote in sim.sent:
        first = seen.setdefault((vote.voter, vote.round, vote.vote.phase), vote.vote)
        assert first == vote.vote, "a voter signed two different votes in one round and phase"


def test_four_honest_voters_finalize_the_head() -> None:
    sim = Sim(4, seed=1)
    sim.give_all(sim.tree.chain(GENESIS.hash(), 5))
    sim.run(6)
    assert sim.finalized_numbers() == [5, 5, 5, 5]
    for node in sim.nodes:
        assert node.chain.justifications
        for just in node.chain.justifications:
            just.verify(0, sim.authorities)
    assert sim.reports == []


def test_a_growing_chain_is_finalized_by_everyone_with_little_lag() -> None:
    sim = Sim(4, seed=2, delay=(0.05, 0.4))
    sim.run(30, block_every=1.0)
    finals = sim.finalized_numbers()
    assert min(finals) >= sim.head() - 3
    no_double_votes(sim)


def test_one_silent_voter_of_four_still_finality_lags_a_few_blocks() -> None:
    sim = Sim(4, seed=3)
    sim.nodes[3].online = False
    sim.run(30, block_every=1.0)
    assert sim.nodes[3].chain.final[1] == 0
    finals = sim.finalized_numbers()[:3]
    assert min(finals) >= sim.head() - 5
    assert min(finals) > 15


def _two_down_then_back(restart: bool) -> None:
    sim = Sim(4, seed=4)
    sim.run(6, block_every=1.0)
    before = max(sim.finalized_numbers())
    assert before >= 3
    sim.nodes[2].online = sim.nodes[3].online = False
    sim.run(20, block_every=1.0)
    stalled = sim.finalized_numbers()
    assert max(stalled) <= before + 1  # a commit in flight at most, then nothing
    assert sim.head() > max(stalled) + 15
    for i in (2, 3):
        sim.nodes[i].online = True
        if restart:
            last = sim.nodes[i].store.last_signed(0)
            assert last is not None
            assert sim.restart(i).round == last[0]
        sim.sync(i)
    sim.run(15, block_every=1.0)
    assert min(sim.finalized_numbers()) >= sim.head() - 3
    assert sim.reports == []
    no_double_votes(sim)


def test_two_silent_voters_stop_finality_which_resumes_when_they_return() -> None:
    _two_down_then_back(restart=False)


def test_two_restarted_voters_rejoin_without_equivocating() -> None:
    _two_down_then_back(restart=True)


def test_forks_converge() -> None:
    """Alice and Bob first see a 4-block fork, Charlie and Dave a 3-block one, and they vote
    for their own. Once every block reaches every node, all finalize the longer fork."""
    sim = Sim(4, seed=5)
    fork_a = sim.tree.chain(GENESIS.hash(), 4)
    fork_b = sim.tree.chain(GENESIS.hash(), 3)
    sim.give_all(fork_a, [0, 1])
    sim.give_all(fork_b, [2, 3])
    sim.run(1)
    assert sim.finalized_numbers() == [0, 0, 0, 0]
    prevoted = {v.vote.target_hash for _, v in sim.sent if v.vote.phase == PREVOTE}
    assert prevoted & {h.hash() for h in fork_a}
    assert prevoted & {h.hash() for h in fork_b}
    sim.give_all(fork_a + fork_b)
    sim.run(8)
    assert {n.chain.final for n in sim.nodes} == {(fork_a[-1].hash(), 4)}


def test_voters_with_different_best_heads_finalize_what_a_threshold_votes_for() -> None:
    sim = Sim(4, seed=6, preload=6)
    chain = sim.preloaded
    for node, length in zip(sim.nodes, (6, 5, 3, 2), strict=True):
        node.chain.best = (chain[length - 1].hash(), length)
    sim.run(2)
    # Round 1: #3 is the highest block 3 of 4 voted for. Then Dave's head #2 is below the
    # finalized block: his chain moves on to #6, so in round 2 Alice, Bob and Dave support #5.
    for node in sim.nodes:
        assert [(j.round, j.target_number) for j in node.chain.justifications] == [(1, 3), (2, 5)]
    for node in sim.nodes:
        node.chain.best = (chain[-1].hash(), 6)
    sim.run(3)
    assert sim.finalized_numbers() == [6, 6, 6, 6]


def test_an_equivocating_voter_is_reported_once_per_round_by_each_honest_voter() -> None:
    sim = Sim(4, seed=7)
    bad = sim.signers[3]
    sim.nodes[3].online = False  # its honest voter is replaced by the double-signer below
    spare = sim.tree.chain(GENESIS.hash(), 1)[0]  # a fork block, never built on
    sim.give_all([spare], [0, 1, 2])
    done: set[int] = set()
    for _ in range(150):
        if sim.now > 0 and int(sim.now * 10) % 10 == 0:
            sim.author(int(sim.now) % 3)
        rnd = sim.nodes[0].voter.round
        if rnd not in done:
            done.add(rnd)
            best = sim.nodes[0].chain.best
            for target in ((best[0], best[1]), (spare.hash(), 1)):
                vote = Vote(PREVOTE, *target)
                sv = SignedVote(vote, rnd, 0, bad.public, bad.sign(vote_payload(vote, rnd, 0)))
                for _ in range(2):  # and each twice
                    sim.broadcast(3, sv)
        sim.step()
    assert min(sim.finalized_numbers()[:3]) >= 8
    proofs = sim.honest_reports_about(bad.public)
    assert len(proofs) == len(sim.reports)  # nobody else reported
    per_reporter_round = [(i, p.round) for i, p in sim.reports]
    assert len(per_reporter_round) == len(set(per_reporter_round))
    assert len(proofs) >= 3 * 5
    for proof in proofs[:3]:
        proof.check()


def test_an_observer_finalizes_from_commits_alone() -> None:
    sim = Sim(4, observers=1, seed=8)
    sim.link = lambda src, dst, msg: dst != 4 or not isinstance(msg, SignedVote)
    sim.run(20, block_every=1.0)
    observer = sim.nodes[4]
    assert observer.voter.observer
    assert observer.chain.final[1] >= sim.head() - 3
    assert observer.chain.final in {n.chain.final for n in sim.nodes[:4]} | {
        (j.target_hash, j.target_number) for n in sim.nodes[:4] for j in n.chain.justifications
    }
    assert observer.voter.round > 10  # it follows the rounds through the commits
    assert all(i != 4 for i, _ in sim.sent)


def test_a_lagging_voter_catches_up_on_future_round_votes() -> None:
    sim = Sim(4, seed=9)
    sim.nodes[3].online = False
    sim.run(20, block_every=1.0)
    assert sim.nodes[3].voter.round == 1
    sim.nodes[3].online = True
    sim.sync(3)
    sim.run(6, block_every=1.0)
    rounds = [n.voter.round for n in sim.nodes]
    assert rounds[3] >= min(rounds[:3]) - 1
    assert sim.nodes[3].chain.final[1] >= sim.head() - 3


# ---- randomized schedules ----------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, object]:
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "hi": draw(st.sampled_from([0.05, 0.3, 1.0, 3.0])),
        "drop": draw(st.sampled_from([0.0, 0.05, 0.2, 0.5])),
        "events": draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["block", "fork", "down", "up", "restart"]), st.integers(0, 3)
                ),
                min_size=8,
                max_size=25,
            )
        ),
    }


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schedules())
def test_random_schedules_never_finalize_conflicting_blocks(plan: dict[str, object]) -> None:
    """Random delays, drops, forks, outages and restarts over a few hundred steps: the ledger
    never sees two blocks final at one height, no honest voter equivocates, and once the
    network heals finality catches up with a growing chain."""
    hi = plan["hi"]
    drop = plan["drop"]
    seed = plan["seed"]
    events = plan["events"]
    assert isinstance(hi, float)
    assert isinstance(drop, float)
    assert isinstance(seed, int)
    assert isinstance(events, list)
    sim = Sim(4, seed=seed, delay=(0.01, hi), drop=drop)
    for kind, who in events:
        node = sim.nodes[who]
        if kind == "block" and node.online:
            sim.author(who)
        elif kind == "fork" and node.online:
            # Build on a random known block at or above the finalized one.
            base = sim.rng.choice(
                sorted(
                    h
                    for h in node.chain.known
                    if node.chain.is_descendant(node.chain.final, (h, sim.tree.headers[h].number))
                )
            )
            sim.author(who, base)
        elif kind == "down":
            node.online = False
        elif kind == "up" and not node.online:
            node.online = True
            sim.sync(who)
        elif kind == "restart":
            sim.restart(who)
        for _ in range(6):
            sim.step()
    # Heal: everyone online, no drops, every block known; then one author extends its chain.
    for node in sim.nodes:
        node.online = True
    for node in sim.nodes:
        sim.sync(node.index)
    sim.drop = 0.0
    for _ in range(10):
        sim.author(0)
        sim.run(1)
    sim.run(4)
    assert sim.reports == []
    no_double_votes(sim)
    lag = 3 if hi < 1 else 8  # rounds take longer than the messages
    assert min(sim.finalized_numbers()) >= sim.nodes[0].chain.best[1] - lag
    finals = {n.chain.final for n in sim.nodes}
    by_number = {}
    for h, n in finals:
        assert by_number.setdefault(n, h) == h
