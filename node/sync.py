"""Block sync: fetch missing blocks from peers by range and import them in order.

The node asks the peer with the highest best block for up to `RANGE` blocks at a time, starting
after its own best block; when the first block returned does not attach (our best is on a fork
the peer does not have) it restarts from after the last finalized block, which every honest peer
shares. Each response item is a block with its justification, if it has one, so a syncing node
finalizes as it goes. A peer that sends an invalid block, or a bad justification (of a block we
have or not), is banned; a peer that is merely behind or slow is skipped. One request is in
flight at a time: import (signature checks, execution, state root) is what bounds the speed, not
the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from chain.codec import CodecError
from chain.consensus import ConsensusError
from node.blocks import AlreadyKnown, NotNow, UnknownParent, decode_block_item
from node.interfaces import BlockImport, ChainReader, PeerNetwork
from node.network import NetworkError
from pallets.executive import InvalidBlock

log = logging.getLogger(__name__)

RANGE = 128
MAJOR_SYNC_GAP = 4  # blocks behind the best peer before we count as "syncing"


@dataclasses.dataclass
class SyncStatus:
    starting_block: int
    highest_block: int
    imported: int = 0
    started_at: float = dataclasses.field(default_factory=time.monotonic)


class Syncer:
    """Sync from peers (`SyncTrigger` and `SyncState` of node.interfaces)."""

    def __init__(self, chain: ChainReader, blocks: BlockImport, network: PeerNetwork) -> None:
        self._chain = chain
        self._blocks = blocks
        self._network = network
        best = chain.best_header().number
        self.status = SyncStatus(best, best)
        self._wake = asyncio.Event()
        self._from_finalized: set[str] = set()
        self._last_progress_log = 0.0

    @property
    def starting_block(self) -> int:
        return self.status.starting_block

    def highest_block(self) -> int:
        best = self._chain.best_header().number
        peer_best = self._network.best_peer_number()
        self.status.highest_block = max(best, peer_best or 0, self.status.highest_block)
        return self.status.highest_block

    def is_major_syncing(self) -> bool:
        peer_best = self._network.best_peer_number()
        return (
            peer_best is not None and peer_best > self._chain.best_header().number + MAJOR_SYNC_GAP
        )

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                progressed = await self._step()
            except Exception:
                log.exception("sync step failed")
                progressed = False
            if not progressed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def _step(self) -> bool:
        net = self._network
        best = self._chain.best_header()
        candidates = [p for p in net.peers() if p.best_number > best.number]
        if not candidates:
            return False
        peer = max(candidates, key=lambda p: (p.best_number, p.peer_id))
        if peer.peer_id in self._from_finalized:
            start = self._chain.finalized_header().number + 1
        else:
            start = best.number + 1
        count = min(RANGE, peer.best_number - start + 1)
        if count <= 0:
            return False
        try:
            items = await net.request_blocks(peer.peer_id, start, count)
        except NetworkError as exc:
            log.debug("block request to %s failed: %s", peer.peer_id, exc)
            return False
        if not items:
            return False
        imported = 0
        for i, item in enumerate(items):
            try:
                block, justification = decode_block_item(item)
            except (CodecError, ValueError) as exc:
                net.report(peer.peer_id, f"undecodable block in a response: {exc}", ban=True)
                return False
            if block.header.number != start + i:
                net.report(peer.peer_id, "block response out of order", ban=True)
                return False
            try:
                self._blocks.import_block(block, justification)
                imported += 1
            except AlreadyKnown:
                if justification is not None:
                    try:
                        self._blocks.apply_justification(block.hash(), justification)
                    except ConsensusError as exc:
                        number = block.header.number
                        net.report(peer.peer_id, f"invalid justification #{number}: {exc}", True)
                        return False
                continue
            except UnknownParent:
                if i == 0 and peer.peer_id not in self._from_finalized:
                    self._from_finalized.add(peer.peer_id)
                    return True
                net.report(peer.peer_id, "block response does not form a chain", ban=True)
                return False
            except NotNow:
                return imported > 0
            except InvalidBlock as exc:
                net.report(peer.peer_id, f"invalid block #{block.header.number}: {exc}", ban=True)
                return False
            finally:
                await asyncio.sleep(0)
        self._from_finalized.discard(peer.peer_id)
        self.status.imported += imported
        now = time.monotonic()
        if imported and now - self._last_progress_log > 5.0:
            self._last_progress_log = now
            log.info(
                "Syncing: #%d of #%d from %s (%d blocks imported)",
                self._chain.best_header().number,
                self.highest_block(),
                peer.peer_id[:20],
                self.status.imported,
            )
        return imported > 0
