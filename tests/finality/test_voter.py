"""One voter driven by hand: verdicts, equivocation reports, catch-up, restarts, observers."""

from __future__ import annotations

import dataclasses

import pytest

from chain.consensus import (
    PRECOMMIT,
    PREVOTE,
    ConsensusError,
    Justification,
    Precommit,
    SignedVote,
    Vote,
    threshold,
    vote_payload,
)
from chain.primitives import Header
from chain.storage.kv import MemoryKV
from node.finality.store import KVVoteStore, MemoryVoteStore
from node.finality.voter import (
    Broadcast,
    BroadcastCommit,
    Finalize,
    ReportEquivocation,
    Verdict,
    Voter,
)
from node.keystore import Signer
from tests.finality.sim import GENESIS, NodeChain, Tree, signer

SIGNERS = [signer(i) for i in range(4)]
KEYS = [s.public for s in SIGNERS]
OUTSIDER = signer(5)


def signed(s: Signer, phase: int, block: Header, rnd: int, set_id: int = 0) -> SignedVote:
    vote = Vote(phase, block.hash(), block.number)
    return SignedVote(vote, rnd, set_id, s.public, s.sign(vote_payload(vote, rnd, set_id)))


@pytest.fixture
def chain() -> tuple[NodeChain, list[Header]]:
    tree = Tree()
    headers = tree.chain(GENESIS.hash(), 5)
    view = NodeChain(tree)
    for h in headers:
        view.learn(h)
    return view, headers


def make_voter(view: NodeChain, who: Signer | None = SIGNERS[0], store=None) -> Voter:  # type: ignore[no-untyped-def]
    return Voter(0, KEYS, view, store or MemoryVoteStore(), who, now=0.0)


def broadcasts(actions: list[object]) -> list[SignedVote]:
    return [a.vote for a in actions if isinstance(a, Broadcast)]


def test_a_voter_prevotes_its_best_head_at_round_start(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    voter = make_voter(view)
    out = broadcasts(voter.tick(0.0))
    assert [(v.round, v.vote) for v in out] == [(1, Vote(PREVOTE, headers[-1].hash(), 5))]
    assert out[0].verify()
    assert voter.tick(0.1) == []  # no second prevote


def test_verdicts(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    voter = make_voter(view)
    voter.tick(0.0)
    good = signed(SIGNERS[1], PREVOTE, headers[2], 1)
    assert voter.on_vote(good, 0.1)[0] is Verdict.ACCEPT
    assert voter.on_vote(good, 0.1)[0] is Verdict.IGNORE  # duplicate
    bad_sig = dataclasses.replace(signed(SIGNERS[2], PREVOTE, headers[2], 1), signature=b"\1" * 64)
    assert voter.on_vote(bad_sig, 0.1)[0] is Verdict.INVALID
    forged = dataclasses.replace(signed(SIGNERS[2], PREVOTE, headers[2], 1), round=2)
    assert voter.on_vote(forged, 0.1)[0] is Verdict.INVALID  # signature covers the round
    assert voter.on_vote(signed(OUTSIDER, PREVOTE, headers[2], 1), 0.1)[0] is Verdict.INVALID
    assert voter.on_vote(signed(SIGNERS[2], PREVOTE, headers[2], 1, 1), 0.1)[0] is Verdict.IGNORE
    assert voter.on_vote(signed(SIGNERS[2], PREVOTE, headers[2], 18), 0.1)[0] is Verdict.IGNORE
    assert voter.on_vote(signed(SIGNERS[2], PREVOTE, headers[2], 17), 0.1)[0] is Verdict.ACCEPT


def test_an_equivocation_is_reported_once_and_the_proof_checks(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    voter = make_voter(view)
    voter.tick(0.0)
    first = signed(SIGNERS[3], PREVOTE, headers[1], 1)
    second = signed(SIGNERS[3], PREVOTE, headers[3], 1)
    third = signed(SIGNERS[3], PREVOTE, headers[4], 1)
    reports = []
    for vote in (first, second, first, second, third, second):
        _, actions = voter.on_vote(vote, 0.2)
        reports += [a.proof for a in actions if isinstance(a, ReportEquivocation)]
    assert len(reports) == 1
    proof = reports[0]
    proof.check()
    assert (proof.offender, proof.round, proof.phase) == (KEYS[3], 1, PREVOTE)
    # A precommit equivocation in the same round is another offence.
    voter.on_vote(signed(SIGNERS[3], PRECOMMIT, headers[0], 1), 0.3)
    _, actions = voter.on_vote(signed(SIGNERS[3], PRECOMMIT, headers[1], 1), 0.3)
    assert [a.proof.phase for a in actions if isinstance(a, ReportEquivocation)] == [PRECOMMIT]


def test_an_equivocator_counts_for_every_block(chain) -> None:  # type: ignore[no-untyped-def]
    """Alice (us) and Bob prevote #5, Dave prevotes #1 and #3: Dave supports everything, so
    #5 has 3 of 4 and Alice precommits it once all four prevoters are in."""
    view, headers = chain
    voter = make_voter(view)
    voter.tick(0.0)
    voter.on_vote(signed(SIGNERS[1], PREVOTE, headers[4], 1), 0.1)
    voter.on_vote(signed(SIGNERS[3], PREVOTE, headers[0], 1), 0.1)
    _, actions = voter.on_vote(signed(SIGNERS[3], PREVOTE, headers[2], 1), 0.1)
    assert broadcasts(actions) == []  # Charlie not heard and the 2d timer not run out
    out = broadcasts(voter.tick(2.0))
    assert [v.vote for v in out] == [Vote(PRECOMMIT, headers[4].hash(), 5)]


def test_precommits_of_a_threshold_finalize_with_a_checkable_justification(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    voter = make_voter(view)
    voter.tick(0.0)
    actions = []
    for s in SIGNERS[1:]:
        actions += voter.on_vote(signed(s, PREVOTE, headers[4], 1), 0.1)[1]
    # All prevotes in: Alice precommits #5 at once, without waiting for the 2d timer.
    assert [v.vote.phase for v in broadcasts(actions)] == [PRECOMMIT]
    voter.on_vote(signed(SIGNERS[1], PRECOMMIT, headers[4], 1), 0.3)
    _, actions = voter.on_vote(signed(SIGNERS[2], PRECOMMIT, headers[3], 1), 0.3)
    finals = [a.justification for a in actions if isinstance(a, Finalize)]
    commits = [a.justification for a in actions if isinstance(a, BroadcastCommit)]
    assert len(finals) == 1
    assert commits == finals
    just = finals[0]
    assert (just.target_number, just.target_hash) == (4, headers[3].hash())
    just.verify(0, KEYS)
    assert Justification.decode(just.encode()) == just
    with pytest.raises(ConsensusError, match="expected 1"):
        just.verify(1, KEYS)
    short = dataclasses.replace(just, precommits=just.precommits[: threshold(4) - 1])
    with pytest.raises(ConsensusError, match="more than 2/3"):
        short.verify(0, KEYS)
    other = make_voter(view, SIGNERS[1])
    assert other.on_justification(short)[0] is Verdict.INVALID
    assert other.on_justification(dataclasses.replace(just, set_id=1))[0] is Verdict.IGNORE
    verdict, actions = other.on_justification(just)
    assert verdict is Verdict.ACCEPT
    assert [type(a) for a in actions if not isinstance(a, Broadcast)] == [Finalize]
    assert other.round == 2  # moved past the justified round
    assert other.on_justification(just)[0] is Verdict.IGNORE  # nothing new


def test_future_round_votes_from_a_threshold_move_the_voter(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    voter = make_voter(view)
    voter.tick(0.0)
    voter.on_vote(signed(SIGNERS[1], PREVOTE, headers[4], 5), 0.1)
    voter.on_vote(signed(SIGNERS[2], PRECOMMIT, headers[4], 5), 0.1)
    assert voter.round == 1
    _, actions = voter.on_vote(signed(SIGNERS[3], PREVOTE, headers[4], 5), 0.1)
    assert voter.round == 5
    assert [(v.round, v.vote.phase) for v in broadcasts(actions)] == [(5, PREVOTE)]


def test_a_restarted_voter_resumes_in_its_last_signed_round(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    store = MemoryVoteStore()
    old_prevote = Vote(PREVOTE, headers[1].hash(), 2)
    store.record(0, 7, old_prevote)
    voter = make_voter(view, store=store)
    assert voter.round == 7
    assert broadcasts(voter.tick(0.0)) == []  # its round-7 prevote is on record: no new one
    # The others' prevotes arrive: the precommit goes to the round's GHOST (#4: 3 of 4), and
    # the round-7 prevote stays the one on record (#2), not the new best head (#5).
    sent = []
    for s in SIGNERS[1:]:
        sent += broadcasts(voter.on_vote(signed(s, PREVOTE, headers[3], 7), 0.1)[1])
    assert [(v.round, v.vote) for v in sent] == [(7, Vote(PRECOMMIT, headers[3].hash(), 4))]
    for s in SIGNERS[1:]:
        sent += broadcasts(voter.on_vote(signed(s, PRECOMMIT, headers[3], 7), 0.2)[1])
    sent += broadcasts(voter.tick(1.0))  # everything in: on to round 8
    assert voter.round == 8
    ours = [v for v in sent if v.voter == KEYS[0]]
    assert [(v.round, v.vote) for v in ours] == [
        (7, Vote(PRECOMMIT, headers[3].hash(), 4)),
        (8, Vote(PREVOTE, headers[4].hash(), 5)),
    ]
    # Re-sends while stuck in round 8 repeat the votes held, our round-7 prevote as recorded.
    resent = broadcasts(voter.tick(6.0))
    assert Vote(PREVOTE, headers[1].hash(), 2) in {v.vote for v in resent if v.voter == KEYS[0]}
    assert {(v.round, v.vote.phase, v.vote) for v in resent if v.voter == KEYS[0]} == {
        (7, PREVOTE, old_prevote),
        (7, PRECOMMIT, Vote(PRECOMMIT, headers[3].hash(), 4)),
        (8, PREVOTE, Vote(PREVOTE, headers[4].hash(), 5)),
    }
    assert store.last_signed(0) == (8, {PREVOTE: Vote(PREVOTE, headers[4].hash(), 5)})


def test_a_restart_after_both_votes_signs_nothing_more_in_that_round(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    store = MemoryVoteStore()
    store.record(0, 3, Vote(PREVOTE, headers[0].hash(), 1))
    store.record(0, 3, Vote(PRECOMMIT, headers[0].hash(), 1))
    voter = make_voter(view, store=store)
    actions = voter.tick(0.0)
    for s in SIGNERS[1:]:
        actions += voter.on_vote(signed(s, PREVOTE, headers[4], 3), 0.1)[1]
    actions += voter.tick(2.5)
    assert [v for v in broadcasts(actions) if v.round == 3] == []
    assert voter.round == 3  # no precommits of the others yet: not completable


def test_a_store_that_already_holds_a_vote_wins(chain) -> None:  # type: ignore[no-untyped-def]
    """If the store holds a vote that the voter's memory lacks, the voter re-signs that one."""
    view, headers = chain
    store = MemoryVoteStore()
    voter = make_voter(view, store=store)
    recorded = Vote(PREVOTE, headers[0].hash(), 1)
    store.record(0, 1, recorded)
    assert [v.vote for v in broadcasts(voter.tick(0.0))] == [recorded]


def test_an_observer_never_signs_but_follows(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    for who in (None, OUTSIDER):
        voter = make_voter(view, who)
        assert voter.observer
        actions = []
        for s in SIGNERS[:3]:
            actions += voter.on_vote(signed(s, PREVOTE, headers[4], 1), 0.1)[1]
        for s in SIGNERS[:3]:
            actions += voter.on_vote(signed(s, PRECOMMIT, headers[4], 1), 0.2)[1]
        actions += voter.tick(10.0)
        assert broadcasts(actions) == []
        finals = [a.justification for a in actions if isinstance(a, Finalize)]
        assert [j.target_number for j in finals] == [5]
        assert voter.round == 2


def test_votes_for_unknown_blocks_count_once_imported() -> None:
    tree = Tree()
    headers = tree.chain(GENESIS.hash(), 3)
    view = NodeChain(tree)
    view.learn(headers[0])
    voter = Voter(0, KEYS, view, MemoryVoteStore(), None, now=0.0)
    for s in SIGNERS[:3]:
        voter.on_vote(signed(s, PRECOMMIT, headers[2], 1), 0.1)
    assert voter.finalized[1] == 0
    view.learn(headers[1])
    view.learn(headers[2])
    actions = voter.on_block_imported(0.2)
    assert [a.justification.target_number for a in actions if isinstance(a, Finalize)] == [3]


def test_a_justification_precommit_must_descend_from_its_target(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    target = headers[3]
    pcs = []
    for s in SIGNERS[:3]:
        vote = Vote(PRECOMMIT, headers[1].hash(), 2)  # below the target
        pcs.append(Precommit(vote.target_hash, 2, s.sign(vote_payload(vote, 1, 0)), s.public))
    just = Justification(1, 0, target.hash(), 4, tuple(pcs), ())
    voter = make_voter(view, SIGNERS[3])
    assert voter.on_justification(just)[0] is Verdict.INVALID
    assert voter.finalized[1] == 0


def test_a_voter_over_the_kv_store_resumes_after_a_restart(chain) -> None:  # type: ignore[no-untyped-def]
    view, headers = chain
    kv = MemoryKV()
    first = make_voter(view, store=KVVoteStore(kv))
    (prevote,) = broadcasts(first.tick(0.0))
    view.learn(Tree.child(view.tree, headers[-1].hash()))  # a new best head meanwhile
    again = make_voter(view, store=KVVoteStore(kv))
    assert again.round == 1
    assert broadcasts(again.tick(0.0)) == []
    resent = broadcasts(again.tick(10.0))
    assert resent == [prevote]  # the same signed vote, not one for the new head
