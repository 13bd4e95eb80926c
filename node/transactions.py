"""The transaction pool's front: what clients, peers and the node itself submit, and the pool's
upkeep as the chain moves.

A transaction submitted over RPC or by the node (finality proofs, equivocation reports) goes into
the pool and out to the peers; one gossiped by a peer goes into the pool only (the network
relays what the node accepts).
"""

from __future__ import annotations

import logging

from chain.consensus import EquivocationProof
from chain.frame.runtime import Runtime
from chain.hashing import blake2_256
from chain.primitives import Header, encode_unsigned_extrinsic
from node.interfaces import ChainReader, Gossip, ImportedBlock, TxWatcher
from node.network import TRANSACTIONS
from node.txpool import PoolError, TxPool
from pallets.config import RuntimeConfig

log = logging.getLogger(__name__)


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
        """Drop what the new best block included or made stale."""
        self.pool.on_block(
            block.hash,
            [blake2_256(x) for x in block.extrinsics],
            finalized=block.finalized,
            state=self._chain.state_at(block.hash),
        )

    def on_finalized(self, block_hash: bytes, header: Header) -> None:
        """Tell the watchers of transactions in final blocks."""
        self.pool.on_finalized(self._chain, block_hash)
