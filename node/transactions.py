"""The transaction pool's front: what clients, peers and the node itself submit, and the pool's
upkeep as the chain moves.

A transaction submitted over RPC or by the node (finality proofs, equivocation reports) goes into
the pool and out to the peers; one gossiped by a peer goes into the pool only (the network
relays what the node accepts).

The pool follows the best chain: when the best block moves to another fork, the blocks that left
the best chain are retracted, the ones that joined it are applied in order, and the retracted
blocks' transactions that the new chain does not hold go back to the pool (Substrate's pool
maintenance); those invalid on the new chain, inherents among them, stay out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chain.consensus import EquivocationProof
from chain.frame.runtime import Runtime
from chain.hashing import blake2_256
from chain.primitives import Header, encode_unsigned_extrinsic
from node.interfaces import ChainReader, Gossip, ImportedBlock, TxWatcher
from node.network import TRANSACTIONS
from node.txpool import PoolError, TxPool
from pallets.config import RuntimeConfig

log = logging.getLogger(__name__)

MAX_REORG_DEPTH = 256
"""Deeper reorgs (possible only while finality stalls) return no transactions to the pool."""


class Transactions:
    """`PendingTransactions`, `PeerTransactions` and `EquivocationReporter`
    (node.interfaces) over the pool."""

    def __init__(
        self, pool: TxPool, *, chain: ChainReader, gossip: Gossip, runtime: Runtime[RuntimeConfig]
    ):
        self.pool = pool
        self._chain = chain
        self._gossip = gossip
        self._runtime = runtime
        self._reported: set[bytes] = set()
        self._best = chain.best_hash  # the best block the pool last followed

    def submit_extrinsic(self, raw: bytes, watcher: TxWatcher | None = None) -> tuple[bytes, str]:
        """Into the pool (raises PoolError), then gossip to peers."""
        tx_hash, status = self.pool.submit(raw, watcher)
        self._gossip.broadcast(TRANSACTIONS, raw)
        return tx_hash, status

    def submit_from_peer(self, raw: bytes) -> None:
        self.pool.submit(raw)

    def pending(self) -> list[bytes]:
        return self.pool.pending()

    def unwatch(self, tx_hash: bytes, watcher: TxWatcher) -> None:
        self.pool.unwatch(tx_hash, watcher)

    def next_index(self, who: bytes, on_chain_nonce: int) -> int:
        pending = self.pool.by_sender.get(who, {})
        nonce = on_chain_nonce
        while nonce in pending:
            nonce += 1
        return nonce

    def report_equivocation(self, proof: EquivocationProof) -> None:
        """Submit an unsigned `Finality.report_equivocation` and gossip it (once per offence)."""
        key = proof.offence_key()
        if key in self._reported:
            return
        self._reported.add(key)
        call = self._runtime.call_type.encode(
            self._runtime.call("Finality", "report_equivocation", proof=proof.encode())
        )
        raw = encode_unsigned_extrinsic(call)
        try:
            self.submit_extrinsic(raw)
            log.info(
                "Reported an equivocation on chain (offence 0x%s..)", blake2_256(key).hex()[:12]
            )
        except PoolError as exc:
            log.info("Equivocation report not accepted: %s", exc)

    # ---- upkeep (chain events) ----------------------------------------------------------------

    def on_best_block(self, block: ImportedBlock) -> None:
        """Drop what the new best block included or made stale; after a reorg, first return
        the transactions of the retracted blocks."""
        if block.header.parent_hash == self._best:
            self._best = block.hash
            self._apply(block.hash, block.extrinsics, finalized=block.finalized)
        else:
            self._follow(block.hash, tip_finalized=block.finalized)

    def on_finalized(self, block_hash: bytes, header: Header) -> None:
        """Tell the watchers of transactions in final blocks (after following the best block,
        when finality moved it to another fork)."""
        if self._chain.best_hash != self._best:
            self._follow(self._chain.best_hash, tip_finalized=False)
        self.pool.on_finalized(self._chain, block_hash)

    def _apply(self, block_hash: bytes, extrinsics: Sequence[bytes], *, finalized: bool) -> None:
        self.pool.on_block(
            block_hash,
            [blake2_256(x) for x in extrinsics],
            finalized=finalized,
            state=self._chain.state_at(block_hash),
        )

    def _follow(self, new_best: bytes, *, tip_finalized: bool) -> None:
        """Move the pool from the best block it followed to `new_best`, on any fork."""
        old_best, self._best = self._best, new_best
        route = self._tree_route(old_best, new_best)
        if route is None:
            log.warning("Reorg deeper than %d blocks: its transactions stay out", MAX_REORG_DEPTH)
            retracted: list[bytes] = []
            enacted = [new_best]
        else:
            retracted, enacted = route
        returned: list[bytes] = []
        for block_hash in retracted:  # newest first
            self.pool.retract(block_hash)
            returned[:0] = self._extrinsics(block_hash)
        included: set[bytes] = set()
        for block_hash in enacted:
            body = self._extrinsics(block_hash)
            included.update(body)
            self._apply(block_hash, body, finalized=tip_finalized and block_hash == new_best)
        if not enacted:  # back to an ancestor: drop what its state made stale
            self._apply(new_best, (), finalized=False)
        back = sum(self.pool.resubmit(raw) for raw in returned if raw not in included)
        self.pool.drop_retracted()
        if retracted:
            log.info(
                "Reorg: %d block(s) retracted, %d enacted; %d transaction(s) back in the pool",
                len(retracted),
                len(enacted),
                back,
            )

    def _extrinsics(self, block_hash: bytes) -> tuple[bytes, ...]:
        block = self._chain.block(block_hash)
        return block.extrinsics if block is not None else ()

    def _tree_route(self, old: bytes, new: bytes) -> tuple[list[bytes], list[bytes]] | None:
        """(the blocks from `old` back to the common ancestor, newest first; those from it to
        `new`, oldest first), or None when either side is deeper than MAX_REORG_DEPTH or a header
        is missing."""
        retracted: list[bytes] = []
        enacted: list[bytes] = []
        a, b = self._chain.header(old), self._chain.header(new)
        while a is not None and b is not None and old != new:
            if len(retracted) > MAX_REORG_DEPTH or len(enacted) > MAX_REORG_DEPTH:
                return None
            if a.number >= b.number:
                retracted.append(old)
                old, a = a.parent_hash, self._chain.header(a.parent_hash)
            else:
                enacted.append(new)
                new, b = b.parent_hash, self._chain.header(b.parent_hash)
        if a is None or b is None:
            return None
        enacted.reverse()
        return retracted, enacted
