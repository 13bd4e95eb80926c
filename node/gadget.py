"""The finality gadget in the node: runs the voter of the current validator set against the
chain database, the keystore and the network, and applies what it decides.

The set that finalizes a block B is the `Finality` pallet's set in the state of B's parent; a
block that changes the set (a session boundary that enacts a new one) is finalized by the old set
and ends its voting: votes are capped at it, and once it is final the new set starts at round 1.
A node with a single-member set that holds that member's key (the dev chain) finalizes each block
it authors at once, with a one-precommit justification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chain.consensus import (
    PRECOMMIT,
    ConsensusError,
    Justification,
    Precommit,
    SignedVote,
    Vote,
    VoteEquivocation,
    vote_payload,
)
from chain.primitives import Block, Header
from node.finality.store import KVVoteStore
from node.finality.voter import (
    Broadcast,
    BroadcastCommit,
    Finalize,
    ReportEquivocation,
    Voter,
)
from node.keystore import KeystoreError, Signer
from node.network import BLOCK_ANNOUNCE, COMMIT, VOTE
from node.sync import encode_block_item
from node.verdict import Verdict
from pallets.finality import pallet as finality

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

GRANDPA_KEY_TYPE = "gran"
TICK_S = 0.1


class FinalityGadget:
    def __init__(self, node: Node, round_duration: float) -> None:
        self.node = node
        self.db = node.db
        self.round_duration = round_duration
        self.store = KVVoteStore(node.kv)
        self._set_cache: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}
        self.voter: Voter | None = None
        self.set_id = -1
        self.authorities: tuple[bytes, ...] = ()
        self._signer: Signer | None = None
        self._ensure_voter()

    # ---- the validator set of a block -------------------------------------------------------

    def set_of(self, block_hash: bytes) -> tuple[int, tuple[bytes, ...]]:
        """(set id, ed25519 keys) in force in the state of `block_hash`."""
        cached = self._set_cache.get(block_hash)
        if cached is not None:
            return cached
        state = self.db.state_at(block_hash)
        out = (finality.CurrentSetId.get(state), tuple(finality.Authorities.get(state)))
        if len(self._set_cache) > 4096:
            self._set_cache.clear()
        self._set_cache[block_hash] = out
        return out

    def finalizing_set(self, block_hash: bytes) -> tuple[int, tuple[bytes, ...]]:
        """The set that finalizes `block_hash`: the one in its parent's state."""
        header = self.db.header(block_hash)
        assert header is not None
        if header.number == 0:
            return self.set_of(block_hash)
        return self.set_of(header.parent_hash)

    def _our_key(self, authorities: Sequence[bytes]) -> Signer | None:
        try:
            mine = set(self.node.keystore.public_keys(GRANDPA_KEY_TYPE))
        except KeystoreError:
            return None
        for key in authorities:
            if key in mine:
                return self.node.keystore.signer(GRANDPA_KEY_TYPE, key, scheme="ed25519")
        return None

    def _ensure_voter(self) -> None:
        """(Re)build the voter when the finalized block's set differs from the voter's."""
        set_id, authorities = self.set_of(self.node.finalized_hash)
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
            _ChainView(self),
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

    def instant_justification(self, header: Header) -> bytes:
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

    # ---- justifications ---------------------------------------------------------------------

    def verify_justification(self, block_hash: bytes, raw: bytes) -> Justification:
        """Check `raw` against the set that finalizes `block_hash`; raises ConsensusError."""
        try:
            just = Justification.decode(raw)
        except Exception as exc:
            raise ConsensusError(f"undecodable justification: {exc}") from exc
        header = self.db.header(block_hash)
        if header is None:
            raise ConsensusError("justification for an unknown block")
        if just.target_hash != block_hash or just.target_number != header.number:
            raise ConsensusError("justification is for another block")
        set_id, authorities = self.finalizing_set(block_hash)
        just.verify(set_id, authorities)
        return just

    # ---- events from the node -----------------------------------------------------------------

    def on_finalized(self) -> None:
        self._ensure_voter()

    def on_block_imported(self) -> None:
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
        fin = self.db.header(self.node.finalized_hash)
        assert fin is not None
        if just.target_number <= fin.number:
            return Verdict.IGNORE
        if self.db.header(just.target_hash) is None:
            self.node.pending_justifications[just.target_hash] = raw
            self.node.syncer.wake()
            return Verdict.KEEP
        if self.voter is not None and just.set_id == self.set_id:
            verdict, actions = self.voter.on_justification(just)
            self._apply(actions)
            return verdict
        try:
            self.verify_justification(just.target_hash, raw)
        except ConsensusError:
            return Verdict.INVALID
        self.node.finalize(just.target_hash, raw)
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
        net = self.node.network
        if net is None:
            return
        for h in _unfinalized_chain(self, target):
            header = self.db.header(h)
            body = self.db.body(h)
            if header is None or body is None:
                return
            net.broadcast(BLOCK_ANNOUNCE, encode_block_item(Block(header, tuple(body)), None))

    def _apply(self, actions: Sequence[object]) -> None:
        net = self.node.network
        for action in actions:
            if isinstance(action, Broadcast):
                if net is not None:
                    self._announce_target(action.vote.vote.target_hash)
                    net.broadcast(VOTE, action.vote.encode())
            elif isinstance(action, Finalize):
                just = action.justification
                self.node.finalize(just.target_hash, just.encode())
            elif isinstance(action, BroadcastCommit):
                if net is not None:
                    net.broadcast(COMMIT, action.justification.encode())
            elif isinstance(action, ReportEquivocation):
                self.node.report_equivocation(action.proof)
        if any(isinstance(a, Finalize) for a in actions):
            self._ensure_voter()


ANNOUNCE_ANCESTRY = 16  # at most this many unfinalized blocks go out with a vote


def _unfinalized_chain(gadget: FinalityGadget, target: bytes) -> list[bytes]:
    """`target` and its ancestors above the finalized block, oldest first (bounded)."""
    db = gadget.db
    fin = db.header(gadget.node.finalized_hash)
    assert fin is not None
    out: list[bytes] = []
    h = target
    while len(out) < ANNOUNCE_ANCESTRY:
        header = db.header(h)
        if header is None or header.number <= fin.number:
            break
        out.append(h)
        h = header.parent_hash
    out.reverse()
    return out


class _ChainView:
    """The voter's view of the chain, over the node's database."""

    def __init__(self, gadget: FinalityGadget) -> None:
        self.gadget = gadget
        self.db = gadget.db

    def finalized(self) -> tuple[bytes, int]:
        h = self.gadget.node.finalized_hash
        header = self.db.header(h)
        assert header is not None
        return h, header.number

    def best_head(self) -> tuple[bytes, int]:
        """The best block, capped at the first block after the finalized one that changes the
        validator set (the current set must finalize it before the next set votes)."""
        fin_hash, fin_number = self.finalized()
        best = self.gadget.node.best_hash
        header = self.db.header(best)
        assert header is not None
        if not self.db.is_descendant(fin_hash, best):
            return fin_hash, fin_number
        set_id = self.gadget.set_of(fin_hash)[0]
        chain: list[tuple[bytes, Header]] = []
        h, hd = best, header
        while hd.number > fin_number:
            chain.append((h, hd))
            h = hd.parent_hash
            parent = self.db.header(h)
            assert parent is not None
            hd = parent
        for h, hd in reversed(chain):  # oldest first
            if self.gadget.set_of(h)[0] != set_id:
                return h, hd.number
        return best, header.number

    def ancestry(self, base: tuple[bytes, int], head: tuple[bytes, int]) -> list[Header] | None:
        if head == base:
            return []
        out: list[Header] = []
        h, n = head
        while n > base[1]:
            header = self.db.header(h)
            if header is None or header.number != n:
                return None
            out.append(header)
            h, n = header.parent_hash, n - 1
        return out if (h, n) == base else None

    def is_descendant(self, base: tuple[bytes, int], block: tuple[bytes, int]) -> bool:
        if block[1] < base[1]:
            return False
        return self.db.is_descendant(base[0], block[0])


__all__ = ["FinalityGadget", "VoteEquivocation"]
