"""The finality voter: a GRANDPA-style round state machine, without I/O.

The node feeds it events (`tick`, `on_vote`, `on_block_imported`, `on_justification`) with the
time, and applies the actions it returns (`Broadcast`, `Finalize`, `BroadcastCommit`,
`ReportEquivocation`). It owns no clock, socket, thread or file: the chain is read through a
`ChainView`, and the only write, the record of a vote before it is sent, goes through a
`VoteStore`. That keeps it deterministic, so the tests drive several voters over a simulated
network with simulated time.

Protocol (one validator set `set_id` of `n` voters, `t = threshold(n)` = more than 2/3 of `n`;
`d` = round duration; a vote for block B supports B and all its ancestors; a voter that signed
two different votes of one phase in one round is an *equivocator* and counts for every block):

1. Round `r` (1 for a new set) starts at time T with a base `E(r-1)`, the estimate of the
   previous round (the finalized block for the first round of a set, the justified block after
   a jump on a justification). The voter at once prevotes `best_head()` if that descends from
   `E(r-1)`, else `E(r-1)` itself.
2. `g(r)`, the prevote GHOST, is the highest block with prevote support >= t (walking down from
   the finalized block, always into the child that keeps support >= t). The voter precommits
   `g(r)` once it exists, descends from `E(r-1)`, and T + 2d has passed, or all n prevotes are
   in, or the round is completable.
3. A block with precommits (real votes, one per voter) from >= t voters of one round is final.
   The voter emits `Finalize` with a `Justification` of those precommits and the headers from
   each precommit target back to the block, then `BroadcastCommit` with the same justification.
4. `E(r)`, the estimate, is the highest ancestor-or-self of `g(r)` that could still reach t
   precommits: real support + equivocators + voters not heard from + voters whose precommit
   names a block we do not know. The round is *completable* when `g(r)` exists and either
   `E(r)` is strictly below `g(r)` or no child of `g(r)` could still reach t precommits.
   Round r+1 starts when round r is completable and T + 4d has passed (or T + d, when all n
   prevotes and all n precommits are in). Votes of rounds r-2 and r-1 are still imported and
   may finalize more; a voter that left r-1 having prevoted but not precommitted there (on
   a catch-up) can still precommit in it.
5. Without completability the voter never advances. While stuck it re-sends the votes it
   holds of rounds r-1 and r (its own and others') and the last commit it knows, every 3d
   (first at T + 5d), so voters that come back, or fell behind, catch up (rule 6).
6. Catch-up: votes of a future round r' (up to r+16) from >= t distinct voters move the voter to
   r' (base: the estimate of r'-1 if it has one, else g(r'), else the finalized block); a valid
   justification of round r' moves it to r'+1 with the justified block as base.
7. Before each signature the voter consults the `VoteStore`, records the vote, and only then
   returns the `Broadcast`. A restarted voter whose store says it signed in round R resumes in
   round R with its votes on record of rounds R-1 and R (re-signing the same vote gives the
   same ed25519 signature; it re-sends them while stuck), signs only what it had not signed
   in R, and never signs below R. (Starting at R+1 instead would let each restart move a
   voter one round on without completability: a few restarts leave the voters spread over
   rounds that none can complete; the randomized simulation found exactly that.)
8. Two different valid votes of one phase from one voter in one round give one
   `ReportEquivocation` (once per voter, round and phase); both votes are kept (at most two per
   voter and phase, so at most 2n per phase and round).
9. Votes are checked in this order: signature (else INVALID), set (else IGNORE), voter in the
   set (else INVALID), round within [r-2, r+16] (else IGNORE), not yet known (else IGNORE).
   A byte-identical copy of a vote already held is ignored before the signature check (it
   was checked when it first came: re-sends make such copies common).
10. Without a signer, or with a key outside the set, the voter observes: it tracks rounds and
    finalizes from others' precommits and from justifications, and never signs.

Safety (fewer than n/3 faulty, i.e. at most f with n >= 3f+1 and t = 2f+1 when n = 3f+1): two
sets of t voters share at least one honest voter. (a) Within a round, an honest voter precommits
only its GHOST, which has t prevotes behind it; two conflicting blocks cannot both collect t
precommits, as their supporters would have to include an honest voter precommitting both
branches. (b) Across rounds: if B is final in round r, every honest view's `E(r)` is B or a
descendant of it (B's t precommits keep B "possible"; the completability rule stops a voter from
leaving r while a block beyond what it knows could still be finalized there), so every honest
prevote in round r+1 supports B; a conflicting block then has at most f < t prevotes, cannot be
any honest voter's GHOST, and cannot collect t precommits. By induction nothing conflicting with
B is finalized later. Finality itself needs no timing: a `Justification` is checkable alone.

Simplified against GRANDPA:
- Support is counted from the finalized block up: a vote for an ancestor of the finalized block
  counts for the finalized block (it is final, so that adds nothing unsafe), and a vote for a
  block we do not know counts as "possibly anything" for the estimate and completability, and
  for nothing in the GHOST, until the block is imported (so the node should fetch blocks that
  votes name).
- Finality needs t real precommits (the justification carries them); an equivocator's wildcard
  support is used only for the GHOST, the estimate and completability.
- No primary proposal, no catch-up request/response messages: catch-up is by future-round votes
  and justifications, which peers send anyway (re-sends while stuck, commits when finalizing).
- A voter that lacks the previous round's votes (after a restart, or a jump on future-round
  votes) takes E(r-1) from what it has, at least the finalized block; GRANDPA persists the
  completed round and imports it on catch-up. Such a voter's prevote is constrained less than
  GRANDPA's; it is at worst one more voter outside the rules, so the bound above must hold
  with it counted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from chain.consensus import (
    MAX_ANCESTRY,
    PHASES,
    PRECOMMIT,
    PREVOTE,
    ConsensusError,
    Justification,
    Precommit,
    SignedVote,
    Vote,
    VoteEquivocation,
    threshold,
    vote_payload,
)
from chain.primitives import Header
from node.verdict import Verdict

log = logging.getLogger(__name__)

Block = tuple[bytes, int]  # (hash, number)

PAST_ROUNDS = 2  # votes of rounds r-2 and r-1 are still imported
FUTURE_ROUNDS = 16  # votes up to round r+16 are kept (catch-up)
RESEND_FIRST = 5.0  # round durations after a round's start before the first re-send
RESEND_EVERY = 3.0  # round durations between re-sends while stuck


class ChainView(Protocol):
    """What the voter reads of the chain."""

    def finalized(self) -> Block:
        """The last finalized block."""
        ...

    def best_head(self) -> Block:
        """The block to vote for: descends from the finalized block, capped at a pending set
        change."""
        ...

    def ancestry(self, base: Block, head: Block) -> list[Header] | None:
        """Headers from `head` back to (excluding) `base` when `head` descends from `base`,
        else None; `[]` when `head == base`."""
        ...

    def is_descendant(self, base: Block, block: Block) -> bool:
        """Whether `block` is `base` or a descendant of it; False when unknown."""
        ...


class VoteStore(Protocol):
    """Durable record of the votes this node signed (written before a vote is sent)."""

    def last_signed(self, set_id: int) -> tuple[int, dict[int, Vote]] | None:
        """(round, {phase: vote}) of the highest round signed in set `set_id`, or None."""
        ...

    def recent(self, set_id: int) -> dict[int, dict[int, Vote]]:
        """{round: {phase: vote}} of the highest round signed in set `set_id` and the one
        before it (where signed)."""
        ...

    def record(self, set_id: int, round_number: int, vote: Vote) -> None: ...


class Signer(Protocol):
    public: bytes

    def sign(self, message: bytes) -> bytes: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Broadcast:
    vote: SignedVote


@dataclasses.dataclass(frozen=True, slots=True)
class Finalize:
    justification: Justification


@dataclasses.dataclass(frozen=True, slots=True)
class BroadcastCommit:
    justification: Justification


@dataclasses.dataclass(frozen=True, slots=True)
class ReportEquivocation:
    proof: VoteEquivocation


Action = Broadcast | Finalize | BroadcastCommit | ReportEquivocation


@dataclasses.dataclass(slots=True)
class _Tally:
    """One phase of one round, counted over the blocks from the finalized one up."""

    support: dict[bytes, set[int]]  # block -> voters with a vote for it or a descendant
    children: dict[bytes, set[bytes]]  # within the counted graph
    equivocators: frozenset[int]
    unknown: int  # non-equivocating voters whose vote names a block we cannot place
    heard: int  # distinct voters with a vote in this phase

    def real(self, block: bytes) -> int:
        """Non-equivocating supporters."""
        return len(self.support.get(block, set()) - self.equivocators)


class _Round:
    __slots__ = (
        "base",
        "estimate",
        "ghost",
        "number",
        "ours",
        "reported",
        "settled",
        "start",
        "tallies",
        "votes",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.start: float | None = None  # set when it becomes the current round
        self.base: Block | None = None  # E(r-1) when it started
        self.votes: tuple[dict[int, list[SignedVote]], dict[int, list[SignedVote]]] = ({}, {})
        self.reported: set[tuple[int, int]] = set()  # (voter, phase) already reported
        self.ours: dict[int, SignedVote] = {}
        # Caches, dropped on any change (a vote, a block import, a new finalized block):
        self.tallies: dict[int, _Tally] = {}
        self.ghost: tuple[Block | None] | None = None
        self.estimate: tuple[Block | None] | None = None
        self.settled = False  # checked for finality since the last change

    def changed(self) -> None:
        self.tallies.clear()
        self.ghost = self.estimate = None
        self.settled = False


class Voter:
    """The voter of one validator set. See the module docstring for the protocol."""

    def __init__(
        self,
        set_id: int,
        authorities: Sequence[bytes],
        chain: ChainView,
        store: VoteStore,
        signer: Signer | None,
        *,
        round_duration: float = 1.0,
        now: float,
    ) -> None:
        if not authorities:
            raise ValueError("a voter set needs at least one authority")
        if len(set(authorities)) != len(authorities):
            raise ValueError("duplicate authority in the voter set")
        if round_duration <= 0:
            raise ValueError("round_duration must be positive")
        self.set_id = set_id
        self.authorities = tuple(bytes(a) for a in authorities)
        self.n = len(self.authorities)
        self.threshold = threshold(self.n)
        self._index = {key: i for i, key in enumerate(self.authorities)}
        self._chain = chain
        self._store = store
        self._d = round_duration
        self._now = now
        me = None if signer is None else self._index.get(signer.public)
        self._me = me
        self._signer = signer if me is not None else None
        self._rounds: dict[int, _Round] = {}
        self._final: Block = chain.finalized()
        self._paths: dict[bytes, list[bytes] | None] = {}  # vote target -> blocks it supports
        self._blocks: dict[bytes, tuple[int, bytes]] = {}  # hash -> (number, parent hash)
        self._next_resend = now + RESEND_FIRST * self._d
        self._floor = 1  # never sign below this round (set by a restart)
        self._last_commit: Justification | None = None  # re-sent while stuck
        self.round = 1
        first = 1
        recent = store.recent(set_id) if self._signer is not None else {}
        if recent:
            # Resume in the last round signed, with the votes on record (and those of the round
            # before, to re-send): moving on without completability would let restarts spread
            # the voters over rounds that none can finish.
            first = self._floor = max(recent)
            for number in sorted(recent):
                rnd = self._get(number)
                for phase, vote in sorted(recent[number].items()):
                    sv = self._sign_raw(number, vote)
                    rnd.ours[phase] = sv
                    rnd.votes[phase][self._me_index()] = [sv]
            log.info(
                "Finality voter of set %d resumes in round %d (%d votes on record)",
                set_id,
                first,
                sum(len(p) for p in recent.values()),
            )
        self._start_round(first, self._final, now)

    # ---- public interface -------------------------------------------------------------------

    @property
    def observer(self) -> bool:
        """Whether this voter only observes (no key in the set)."""
        return self._signer is None

    @property
    def finalized(self) -> Block:
        """The highest block this voter knows final (its own decisions included)."""
        return self._final

    def tick(self, now: float) -> list[Action]:
        """Drive the timers."""
        return self._step(now)

    def on_block_imported(self, now: float) -> list[Action]:
        """The chain changed: votes for blocks unknown until now may count."""
        self._invalidate()
        return self._step(now)

    def on_vote(self, vote: SignedVote, now: float) -> tuple[Verdict, list[Action]]:
        held = self._rounds.get(vote.round)
        if held is not None and vote in held.votes[vote.vote.phase].get(
            self._index.get(vote.voter, -1), ()
        ):
            return Verdict.IGNORE, []  # the very same signed vote (checked when it came first)
        if not vote.verify():
            return Verdict.INVALID, []
        if vote.set_id != self.set_id:
            return Verdict.IGNORE, []
        idx = self._index.get(vote.voter)
        if idx is None:
            return Verdict.INVALID, []
        if not self.round - PAST_ROUNDS <= vote.round <= self.round + FUTURE_ROUNDS:
            return Verdict.IGNORE, []
        rnd = self._get(vote.round)
        phase = vote.vote.phase
        by_voter = rnd.votes[phase]
        mine = by_voter.setdefault(idx, [])
        if any(v.vote == vote.vote for v in mine) or len(mine) >= 2:
            return Verdict.IGNORE, []
        if sum(len(v) for v in by_voter.values()) >= 2 * self.n:
            return Verdict.IGNORE, []
        mine.append(vote)
        rnd.changed()
        actions: list[Action] = []
        if len(mine) == 2 and (idx, phase) not in rnd.reported:
            rnd.reported.add((idx, phase))
            first, second = mine
            proof = VoteEquivocation(
                self.set_id,
                vote.round,
                phase,
                vote.voter,
                (first.vote.target_hash, first.vote.target_number, first.signature),
                (second.vote.target_hash, second.vote.target_number, second.signature),
            )
            log.warning(
                "Finality: voter %d equivocated in set %d round %d (%s)",
                idx,
                self.set_id,
                vote.round,
                "prevote" if phase == PREVOTE else "precommit",
            )
            actions.append(ReportEquivocation(proof))
        actions.extend(self._step(now))
        return Verdict.ACCEPT, actions

    def on_justification(self, just: Justification) -> tuple[Verdict, list[Action]]:
        """A commit from the network: finalize its block if it is new and placeable on our
        chain, and move to round `just.round + 1` if that is ahead."""
        if just.set_id != self.set_id:
            return Verdict.IGNORE, []
        self._sync_final()
        final = self._final
        newer_block = just.target_number > final[1]
        newer_round = just.round + 1 > self.round
        if not newer_block and not newer_round:
            return Verdict.IGNORE, []
        try:
            just.verify(self.set_id, self.authorities)
        except ConsensusError as exc:
            log.info("Finality: rejected a justification for round %d: %s", just.round, exc)
            return Verdict.INVALID, []
        target = (just.target_hash, just.target_number)
        actions: list[Action] = []
        verdict = Verdict.IGNORE
        if newer_block:
            if self._chain.is_descendant(final, target):
                self._set_final(target)
                self._last_commit = just
                actions.append(Finalize(just))
                verdict = Verdict.ACCEPT
                log.info(
                    "Finality: #%d (0x%s) final by a justification of round %d",
                    just.target_number,
                    just.target_hash.hex()[:12],
                    just.round,
                )
            else:
                verdict = Verdict.KEEP  # unknown block (or a fork of our finalized chain)
        if newer_round:
            base = target if self._chain.is_descendant(self._final, target) else self._final
            seen = self._rounds.get(just.round)
            estimate = self._estimate(seen) if seen is not None else None
            if estimate is not None and self._chain.is_descendant(base, estimate):
                base = estimate  # what we saw of that round may keep more blocks possible
            log.info(
                "Finality: catching up from round %d to %d on a justification",
                self.round,
                just.round + 1,
            )
            self._start_round(just.round + 1, base, self._now)
            if verdict is Verdict.IGNORE:
                verdict = Verdict.ACCEPT
        actions.extend(self._step(self._now))
        return verdict, actions

    # ---- the step -------------------------------------------------------------------------------

    def _step(self, now: float) -> list[Action]:
        self._now = now
        out: list[Action] = []
        for _ in range(4 * FUTURE_ROUNDS):  # bounded: each pass advances a round or stops
            self._sync_final()
            self._catch_up(now)
            self._prevote(self._rounds[self.round], out)
            for r in (self.round - 1, self.round):
                rnd = self._rounds.get(r)
                if rnd is not None:
                    self._precommit(rnd, now, out)
            for r in sorted(self._rounds):
                self._try_finalize(self._rounds[r], out)
            if not self._advance(now):
                break
        self._resend(now, out)
        return out

    def _prevote(self, rnd: _Round, out: list[Action]) -> None:
        if self._signer is None or PREVOTE in rnd.ours or rnd.number < self._floor:
            return
        base = rnd.base if rnd.base is not None else self._final
        if not self._chain.is_descendant(self._final, base):
            base = self._final
        best = self._chain.best_head()
        target = best if self._chain.is_descendant(base, best) else base
        sv = self._sign(rnd, PREVOTE, target)
        if sv is not None:
            out.append(Broadcast(sv))

    def _precommit(self, rnd: _Round, now: float, out: list[Action]) -> None:
        if self._signer is None or PRECOMMIT in rnd.ours or PREVOTE not in rnd.ours:
            return
        if rnd.start is None or rnd.number < self._floor:
            return
        g = self._ghost(rnd)
        if g is None:
            return
        if not self._chain.is_descendant(self._previous_estimate(rnd), g):
            return
        ready = (
            now >= rnd.start + 2 * self._d
            or len(rnd.votes[PREVOTE]) == self.n
            or self._completable(rnd)
        )
        if not ready:
            return
        sv = self._sign(rnd, PRECOMMIT, g)
        if sv is not None:
            out.append(Broadcast(sv))

    def _try_finalize(self, rnd: _Round, out: list[Action]) -> None:
        if rnd.settled:
            return
        rnd.settled = True
        tally = self._tally(rnd, PRECOMMIT)
        final_number = self._final[1]
        best: Block | None = None
        for block, voters in tally.support.items():
            if len(voters) < self.threshold:
                continue
            number = self._blocks[block][0]
            if number > final_number and (
                best is None or number > best[1] or (number == best[1] and block < best[0])
            ):
                best = (block, number)
        if best is None:
            return
        just = self._justification(rnd, best)
        if just is None:
            return
        self._set_final(best)
        self._last_commit = just
        out.append(Finalize(just))
        out.append(BroadcastCommit(just))
        log.info(
            "Finality: #%d (0x%s) final in round %d with %d precommits",
            best[1],
            best[0].hex()[:12],
            rnd.number,
            len(just.precommits),
        )

    def _advance(self, now: float) -> bool:
        cur = self._rounds[self.round]
        assert cur.start is not None
        if not self._completable(cur):
            return False
        everything_in = len(cur.votes[PREVOTE]) == self.n and len(cur.votes[PRECOMMIT]) == self.n
        if now < cur.start + 4 * self._d and not (everything_in and now >= cur.start + self._d):
            return False
        estimate = self._estimate(cur)
        assert estimate is not None
        self._start_round(self.round + 1, estimate, now)
        return True

    def _catch_up(self, now: float) -> None:
        for r in sorted(self._rounds, reverse=True):
            if r <= self.round:
                return
            rnd = self._rounds[r]
            voters = set(rnd.votes[PREVOTE]) | set(rnd.votes[PRECOMMIT])
            if len(voters) < self.threshold:
                continue
            base: Block | None = None
            prev = self._rounds.get(r - 1)
            if prev is not None:
                base = self._estimate(prev)
            if base is None:
                base = self._ghost(rnd)
            log.info(
                "Finality: catching up from round %d to %d (votes of %d voters)",
                self.round,
                r,
                len(voters),
            )
            self._start_round(r, base if base is not None else self._final, now)
            return

    def _resend(self, now: float, out: list[Action]) -> None:
        """While stuck, re-send every vote held for rounds r-1 and r (ours and others': they
        are self-authenticating, and t of them for a round let a voter behind catch up) and
        the last commit we know."""
        if now < self._next_resend:
            return
        self._next_resend = now + RESEND_EVERY * self._d
        count = 0
        for r in (self.round - 1, self.round):
            rnd = self._rounds.get(r)
            if rnd is None:
                continue
            for phase in PHASES:
                for idx in sorted(rnd.votes[phase]):
                    for sv in rnd.votes[phase][idx]:
                        out.append(Broadcast(sv))
                        count += 1
        if self._last_commit is not None:
            out.append(BroadcastCommit(self._last_commit))
        if count:
            log.debug("Finality: round %d stuck, re-sent %d votes", self.round, count)

    def _start_round(self, number: int, base: Block, now: float) -> None:
        rnd = self._get(number)
        rnd.start, rnd.base = now, base
        self.round = number
        for r in [r for r in self._rounds if r < number - PAST_ROUNDS]:
            del self._rounds[r]
        self._next_resend = now + RESEND_FIRST * self._d
        log.debug("Finality: set %d round %d starts (base #%d)", self.set_id, number, base[1])

    # ---- signing ------------------------------------------------------------------------------

    def _me_index(self) -> int:
        assert self._me is not None
        return self._me

    def _sign_raw(self, round_number: int, vote: Vote) -> SignedVote:
        assert self._signer is not None
        sig = self._signer.sign(vote_payload(vote, round_number, self.set_id))
        return SignedVote(vote, round_number, self.set_id, self._signer.public, sig)

    def _sign(self, rnd: _Round, phase: int, target: Block) -> SignedVote | None:
        """Sign, record and keep our vote; None if the store says we must not."""
        if phase in rnd.ours or rnd.number < self._floor:
            return None
        vote = Vote(phase, target[0], target[1])
        recent = self._store.recent(self.set_id)
        if recent and rnd.number < min(recent):
            return None
        recorded = recent.get(rnd.number, {}).get(phase)
        if recorded is not None:
            # Signed before, without our memory knowing: keep to what we signed.
            log.error("Finality: round %d vote already on record; not re-voting", rnd.number)
            vote = recorded
        self._store.record(self.set_id, rnd.number, vote)
        sv = self._sign_raw(rnd.number, vote)
        rnd.ours[phase] = sv
        rnd.votes[phase].setdefault(self._me_index(), []).append(sv)
        rnd.changed()
        log.debug(
            "Finality: %s #%d in round %d",
            "prevote" if phase == PREVOTE else "precommit",
            vote.target_number,
            rnd.number,
        )
        return sv

    # ---- counting -------------------------------------------------------------------------------

    def _get(self, number: int) -> _Round:
        rnd = self._rounds.get(number)
        if rnd is None:
            rnd = self._rounds[number] = _Round(number)
        return rnd

    def _invalidate(self) -> None:
        self._paths.clear()
        for rnd in self._rounds.values():
            rnd.changed()

    def _sync_final(self) -> None:
        chain_final = self._chain.finalized()
        if chain_final != self._final and chain_final[1] >= self._final[1]:
            if chain_final[1] == self._final[1]:
                log.error("Finality: the chain finalized another block at #%d", chain_final[1])
            self._set_final(chain_final)

    def _set_final(self, block: Block) -> None:
        self._final = block
        self._invalidate()
        self._blocks = {h: b for h, b in self._blocks.items() if b[0] >= block[1]}

    def _path(self, target: Block) -> list[bytes] | None:
        """The blocks from `target` down to the finalized block that a vote for `target`
        supports; `[finalized]` for an ancestor of it; None when it cannot be placed."""
        if target[0] in self._paths:
            return self._paths[target[0]]
        final = self._final
        path: list[bytes] | None = None
        if target == final:
            path = [final[0]]
        elif target[1] > final[1]:
            headers = self._chain.ancestry(final, target)
            if headers and headers[0].hash() == target[0]:
                path = []
                for h in headers:
                    block = h.hash()
                    self._blocks[block] = (h.number, h.parent_hash)
                    path.append(block)
                path.append(final[0])
        elif self._chain.is_descendant(target, final):
            path = [final[0]]
        if final[0] not in self._blocks:
            self._blocks[final[0]] = (final[1], b"")
        self._paths[target[0]] = path
        return path

    def _tally(self, rnd: _Round, phase: int) -> _Tally:
        cached = rnd.tallies.get(phase)
        if cached is not None:
            return cached
        by_voter = rnd.votes[phase]
        equivocators = frozenset(i for i, votes in by_voter.items() if len(votes) > 1)
        support: dict[bytes, set[int]] = {}
        children: dict[bytes, set[bytes]] = {}
        unknown = 0
        for idx, votes in by_voter.items():
            placed = False
            for sv in votes:
                path = self._path((sv.vote.target_hash, sv.vote.target_number))
                if path is None:
                    continue
                placed = True
                for k, block in enumerate(path):
                    support.setdefault(block, set()).add(idx)
                    if k + 1 < len(path):
                        children.setdefault(path[k + 1], set()).add(block)
            if not placed and idx not in equivocators:
                unknown += 1
        tally = _Tally(support, children, equivocators, unknown, len(by_voter))
        rnd.tallies[phase] = tally
        return tally

    def _ghost(self, rnd: _Round) -> Block | None:
        """The highest block with prevote support >= threshold, or None."""
        if rnd.ghost is None:
            rnd.ghost = (self._compute_ghost(rnd),)
        return rnd.ghost[0]

    def _compute_ghost(self, rnd: _Round) -> Block | None:
        tally = self._tally(rnd, PREVOTE)
        wild = len(tally.equivocators)
        block = self._final[0]
        if tally.real(block) + wild < self.threshold:
            return None
        while True:
            best: tuple[int, bytes] | None = None
            for child in sorted(tally.children.get(block, ())):
                weight = tally.real(child) + wild
                if weight >= self.threshold and (best is None or weight > best[0]):
                    best = (weight, child)
            if best is None:
                return block, self._blocks[block][0]
            block = best[1]

    def _possible_extra(self, tally: _Tally) -> int:
        """Precommits that could still go to any block: equivocators, voters not heard from,
        and voters whose precommit we cannot place."""
        return len(tally.equivocators) + (self.n - tally.heard) + tally.unknown

    def _estimate(self, rnd: _Round) -> Block | None:
        """E(r): the highest ancestor-or-self of g(r) that could still reach threshold
        precommits (at least the finalized block); None without a GHOST."""
        if rnd.estimate is None:
            rnd.estimate = (self._compute_estimate(rnd),)
        return rnd.estimate[0]

    def _compute_estimate(self, rnd: _Round) -> Block | None:
        g = self._ghost(rnd)
        if g is None:
            return None
        tally = self._tally(rnd, PRECOMMIT)
        extra = self._possible_extra(tally)
        block = g[0]
        while block != self._final[0]:
            if tally.real(block) + extra >= self.threshold:
                return block, self._blocks[block][0]
            block = self._blocks[block][1]
        return self._final

    def _completable(self, rnd: _Round) -> bool:
        g = self._ghost(rnd)
        if g is None:
            return False
        if self._estimate(rnd) != g:
            return True
        tally = self._tally(rnd, PRECOMMIT)
        best_child = max((tally.real(c) for c in tally.children.get(g[0], ())), default=0)
        return best_child + self._possible_extra(tally) < self.threshold

    def _previous_estimate(self, rnd: _Round) -> Block:
        """E(r-1) as known now: the previous round's estimate, else the round's base, never
        below the finalized block."""
        prev = self._rounds.get(rnd.number - 1)
        estimate = self._estimate(prev) if prev is not None else None
        if estimate is None:
            estimate = rnd.base if rnd.base is not None else self._final
        if not self._chain.is_descendant(self._final, estimate):
            return self._final
        return estimate

    def _justification(self, rnd: _Round, block: Block) -> Justification | None:
        """The precommits of `rnd` for `block` or its descendants (one per voter) and the
        headers linking them to it."""
        chosen: list[SignedVote] = []
        for idx in sorted(rnd.votes[PRECOMMIT]):
            for sv in rnd.votes[PRECOMMIT][idx]:
                path = self._path((sv.vote.target_hash, sv.vote.target_number))
                if path is not None and block[0] in path:
                    chosen.append(sv)
                    break
        ancestry: dict[bytes, Header] = {}
        for sv in chosen:
            headers = self._chain.ancestry(block, (sv.vote.target_hash, sv.vote.target_number))
            if headers is None:
                return None
            for h in headers:
                ancestry[h.hash()] = h
        if len(ancestry) > MAX_ANCESTRY:
            # Keep the threshold of precommits closest to the block.
            chosen = sorted(chosen, key=lambda sv: sv.vote.target_number)[: self.threshold]
            ancestry = {}
            for sv in chosen:
                target = (sv.vote.target_hash, sv.vote.target_number)
                for h in self._chain.ancestry(block, target) or ():
                    ancestry[h.hash()] = h
            if len(ancestry) > MAX_ANCESTRY:
                return None
        return Justification(
            rnd.number,
            self.set_id,
            block[0],
            block[1],
            tuple(
                Precommit(sv.vote.target_hash, sv.vote.target_number, sv.signature, sv.voter)
                for sv in chosen
            ),
            tuple(sorted(ancestry.values(), key=lambda h: (h.number, h.hash()))),
        )


__all__ = [
    "Action",
    "Block",
    "Broadcast",
    "BroadcastCommit",
    "ChainView",
    "Finalize",
    "ReportEquivocation",
    "Signer",
    "Verdict",
    "VoteStore",
    "Voter",
]
