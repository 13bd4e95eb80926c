"""The finality gadget in the node: runs the voter of the current validator set against the
chain, the keystore and the network, and applies what it decides.

The set that finalizes a block B is the `Finality` pallet's set in the state of B's parent; a
block that changes the set (a session boundary that enacts a new one) is finalized by the old set
and ends its voting: votes are capped at it, and once it is final the new set starts at round 1.
A node with a single-member set that holds that member's key (the dev chain) finalizes each block
it authors at once, with a one-precommit justification.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence

from chain.consensus import (
    PRECOMMIT,
    ConsensusError,
    Justification,
    Precommit,
    SignedVote,
    Vote,
    vote_payload,
)
from chain.primitives import Header
from node.blocks import encode_block_item
from node.finality.sets import ValidatorSets
from node.finality.voter import (
    Broadcast,
    BroadcastCommit,
    Finalize,
    ReportEquivocation,
    Voter,
    VoteStore,
)
from node.interfaces import (
    BlockImport,
    ChainReader,
    EquivocationReporter,
    Finalizer,
    Gossip,
    ImportedBlock,
    SyncTrigger,
)
from node.keystore import GRANDPA_KEY_TYPE, Keystore, KeystoreError, Signer
from node.network import BLOCK_ANNOUNCE, COMMIT, VOTE
from node.verdict import Verdict

log = logging.getLogger(__name__)

TICK_S = 0.1
ANNOUNCE_ANCESTRY = 16  # at most this many unfinalized blocks go out with a vote


@dataclasses.dataclass(kw_only=True, eq=False, slots=True)
class FinalityGadget:
    """`FinalityGossip` and `InstantFinality` (node.interfaces)."""

    chain: ChainReader
    sets: ValidatorSets
    blocks: BlockImport
    finalizer: Finalizer
    store: VoteStore
    keystore: Keystore
    gossip: Gossip
    sync: SyncTrigger
    reporter: EquivocationReporter
    round_duration: float
    # the voter of the finalized block's set (None for an empty set), rebuilt when it changes
    voter: Voter | None = dataclasses.field(init=False, default=None)
    set_id: int = dataclasses.field(init=False, default=-1)
    authorities: tuple[bytes, ...] = dataclasses.field(init=False, default=())
    _signer: Signer | None = dataclasses.field(init=False, default=None)

    def __post_init__(self) -> None:
        self._ensure_voter()

    def _our_key(self, authorities: Sequence[bytes]) -> Signer | None:
        try:
            mine = set(self.keystore.public_keys(GRANDPA_KEY_TYPE))
        except KeystoreError:
            return None
        for key in authorities:
            if key in mine:
                return self.keystore.signer(GRANDPA_KEY_TYPE, key, scheme="ed25519")
        return None

    def _ensure_voter(self) -> None:
        """(Re)build the voter when the finalized block's set differs from the voter's."""
        set_id, authorities = self.sets.set_of(self.chain.finalized_hash)
        if set_id == self.set_id and authorities == self.authorities:
            return
        self.set_id, self.authorities = set_id, authorities
        self._signer = self._our_key(authorities)
        if not authorities:
            self.voter = None
            return
        self.voter = Voter(
            set_id,
            list(authorities),
            VoterChain(self.chain, self.sets),
            self.store,
            self._signer,
            round_duration=self.round_duration,
            now=time.monotonic(),
        )
        log.info(
            "Finality: set %d with %d voter%s%s",
            set_id,
            len(authorities),
            "" if len(authorities) == 1 else "s",
            ", voting" if self._signer is not None else ", observing",
        )

    @property
    def instant(self) -> bool:
        """A single-member set whose key we hold: every authored block is final at once."""
        return len(self.authorities) == 1 and self._signer is not None

    def instant_justification(self, header: Header) -> bytes | None:
        if not self.instant:
            return None
        assert self._signer is not None
        block_hash = header.hash()
        vote = Vote(PRECOMMIT, block_hash, header.number)
        sig = self._signer.sign(vote_payload(vote, header.number, self.set_id))
        return Justification(
            header.number,
            self.set_id,
            block_hash,
            header.number,
            (Precommit(block_hash, header.number, sig, self._signer.public),),
            (),
        ).encode()

    # ---- events from the chain and the network ------------------------------------------------

    def on_finalized(self, block_hash: bytes, header: Header) -> None:
        self._ensure_voter()

    def on_block_imported(self, block: ImportedBlock) -> None:
        if self.voter is not None and not self.instant:
            self._apply(self.voter.on_block_imported(time.monotonic()))

    def on_vote(self, raw: bytes) -> Verdict:
        try:
            vote = SignedVote.decode(raw)
        except Exception:
            return Verdict.INVALID
        if self.voter is None or vote.set_id != self.set_id:
            return Verdict.IGNORE
        verdict, actions = self.voter.on_vote(vote, time.monotonic())
        log.debug(
            "vote set %d round %d phase %d for #%d by %s..: %s",
            vote.set_id,
            vote.round,
            vote.vote.phase,
            vote.vote.target_number,
            vote.voter.hex()[:8],
            verdict.name,
        )
        self._apply(actions)
        return verdict

    def on_commit(self, raw: bytes) -> Verdict:
        try:
            just = Justification.decode(raw)
        except Exception:
            return Verdict.INVALID
        if just.target_number <= self.chain.finalized_header().number:
            return Verdict.IGNORE
        target = self.chain.header(just.target_hash)
        if target is None:
            self.blocks.defer_justification(just.target_hash, raw)
            self.sync.wake()
            return Verdict.KEEP
        if self.voter is not None and just.set_id == self.set_id:
            verdict, actions = self.voter.on_justification(just)
            self._apply(actions)
            return verdict
        try:
            self.sets.verify_justification(target, raw)
        except ConsensusError:
            return Verdict.INVALID
        self.finalizer.finalize(just.target_hash, raw)
        return Verdict.ACCEPT

    # ---- the loop -----------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                self._ensure_voter()
                if self.voter is not None and not self.instant:
                    self._apply(self.voter.tick(time.monotonic()))
            except Exception:
                log.exception("finality tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=TICK_S)

    def _announce_target(self, target: bytes) -> None:
        """Send the block a vote names (and its unfinalized ancestors) ahead of the vote: a vote
        for a block a peer lacks counts for nothing there, and a block authored on a fork
        before its author had peers (at start-up) is in no canonical range a peer would sync.
        The network sends each block to each peer once."""
        for h in self._unfinalized_chain(target):
            block = self.chain.block(h)
            if block is None:
                return
            self.gossip.broadcast(BLOCK_ANNOUNCE, encode_block_item(block, None))

    def _unfinalized_chain(self, target: bytes) -> list[bytes]:
        """`target` and its ancestors above the finalized block, oldest first (bounded)."""
        fin_number = self.chain.finalized_header().number
        out: list[bytes] = []
        h = target
        while len(out) < ANNOUNCE_ANCESTRY:
            header = self.chain.header(h)
            if header is None or header.number <= fin_number:
                break
            out.append(h)
            h = header.parent_hash
        out.reverse()
        return out

    def _apply(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self._announce_target(action.vote.vote.target_hash)
                self.gossip.broadcast(VOTE, action.vote.encode())
            elif isinstance(action, Finalize):
                just = action.justification
                self.finalizer.finalize(just.target_hash, just.encode())
            elif isinstance(action, BroadcastCommit):
                self.gossip.broadcast(COMMIT, action.justification.encode())
            elif isinstance(action, ReportEquivocation):
                self.reporter.report_equivocation(action.proof)
        if any(isinstance(a, Finalize) for a in actions):
            self._ensure_voter()


class VoterChain:
    """The voter's view of the chain (`node.finality.voter.ChainView`)."""

    def __init__(self, chain: ChainReader, sets: ValidatorSets) -> None:
        self._chain = chain
        self._sets = sets

    def finalized(self) -> tuple[bytes, int]:
        return self._chain.finalized_hash, self._chain.finalized_header().number

    def best_head(self) -> tuple[bytes, int]:
        """The best block, capped at the first block after the finalized one that changes the
        validator set (the current set must finalize it before the next set votes)."""
        chain = self._chain
        fin_hash, fin_number = self.finalized()
        best = chain.best_hash
        header = chain.header(best)
        assert header is not None
        if not chain.is_descendant(fin_hash, best):
            return fin_hash, fin_number
        set_id = self._sets.set_of(fin_hash)[0]
        path: list[tuple[bytes, Header]] = []
        h, hd = best, header
        while hd.number > fin_number:
            path.append((h, hd))
            h = hd.parent_hash
            parent = chain.header(h)
            assert parent is not None
            hd = parent
        for h, hd in reversed(path):  # oldest first
            if self._sets.set_of(h)[0] != set_id:
                return h, hd.number
        return best, header.number

    def ancestry(self, base: tuple[bytes, int], head: tuple[bytes, int]) -> list[Header] | None:
        if head == base:
            return []
        out: list[Header] = []
        h, n = head
        while n > base[1]:
            header = self._chain.header(h)
            if header is None or header.number != n:
                return None
            out.append(header)
            h, n = header.parent_hash, n - 1
        return out if (h, n) == base else None

    def is_descendant(self, base: tuple[bytes, int], block: tuple[bytes, int]) -> bool:
        if block[1] < base[1]:
            return False
        return self._chain.is_descendant(base[0], block[0])
