"""Block sync: fetch missing blocks from peers by range and import them in order.

The node asks the peer with the highest best block for up to `RANGE` blocks at a time, starting
after its own best block; when the first block returned does not attach (our best is on a fork
the peer does not have) it restarts from after the last finalized block, which every honest peer
shares. Each response item is a block with its justification, if it has one, so a syncing node
finalizes as it goes. A peer that sends an invalid block is banned; a peer that is merely behind
or slow is skipped. One request is in flight at a time: import (signature checks, execution,
state root) is what bounds the speed, not the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from chain.codec import CodecError, Decoder, encode_bytes
from chain.primitives import Block
from pallets.executive import InvalidBlock

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

RANGE = 128
MAJOR_SYNC_GAP = 4  # blocks behind the best peer before we count as "syncing"


def encode_block_item(block: Block, justification: bytes | None) -> bytes:
    """A block with its optional justification, as sent in announcements and responses."""
    opt = b"\x00" if justification is None else b"\x01" + encode_bytes(justification)
    return encode_bytes(block.encode()) + opt


def decode_block_item(data: bytes) -> tuple[Block, bytes | None]:
    d = Decoder(data)
    block = Block.decode(d.bytes())
    flag = d.u8()
    if flag not in (0, 1):
        raise CodecError("bad justification option")
    justification = d.bytes() if flag == 1 else None
    d.finish()
    return block, justification


class UnknownParent(InvalidBlock):
    """The block's parent is not in our database (not a fault of the sender)."""


class AlreadyKnown(InvalidBlock):
    """The block is already imported."""


class NotNow(InvalidBlock):
    """Valid perhaps, but not importable now (e.g. a slot slightly in the future)."""


@dataclasses.dataclass
class SyncStatus:
    starting_block: int
    highest_block: int
    imported: int = 0
    started_at: float = dataclasses.field(default_factory=time.monotonic)


class Syncer:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.status = SyncStatus(node.best_header().number, node.best_header().number)
        self._wake = asyncio.Event()
        self._from_finalized: set[str] = set()
        self._last_progress_log = 0.0

    def highest_block(self) -> int:
        best = self.node.best_header().number
        net = self.node.network
        peer_best = net.best_peer_number() if net is not None else None
        self.status.highest_block = max(best, peer_best or 0, self.status.highest_block)
        return self.status.highest_block

    def is_major_syncing(self) -> bool:
        net = self.node.network
        if net is None:
            return False
        peer_best = net.best_peer_number()
        return peer_best is not None and peer_best > self.node.best_header().number + MAJOR_SYNC_GAP

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
        net = self.node.network
        if net is None:
            return False
        best = self.node.best_header()
        candidates = [p for p in net.peers() if p.best_number > best.number]
        if not candidates:
            return False
        peer = max(candidates, key=lambda p: (p.best_number, p.peer_id))
        if peer.peer_id in self._from_finalized:
            fin = self.node.db.header(self.node.finalized_hash)
            assert fin is not None
            start = fin.number + 1
        else:
            start = best.number + 1
        count = min(RANGE, peer.best_number - start + 1)
        if count <= 0:
            return False
        from node.network import NetworkError

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
                self.node.import_block(block, justification)
                imported += 1
            except AlreadyKnown:
                if justification is not None:
                    self.node.apply_justification(block.hash(), justification)
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
                self.node.best_header().number,
                self.highest_block(),
                peer.peer_id[:20],
                self.status.imported,
            )
        return imported > 0
