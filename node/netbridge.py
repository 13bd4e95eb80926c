"""The node's side of the p2p network: what each gossip message and request means, and the
node's handle on the network.

Blocks are imported (an invalid one bans its sender; an unknown parent starts a sync), the
transactions go to the pool, finality votes and commits to the gadget, BLS partial signatures
to the per-session proof collector. Block requests are served from the canonical chain with
justifications.
"""

from __future__ import annotations

import dataclasses
import logging

from chain.codec import CodecError
from node.blocks import AlreadyKnown, NotNow, UnknownParent, decode_block_item
from node.interfaces import (
    BlockImport,
    BlsPartials,
    ChainReader,
    FinalityGossip,
    PeerTransactions,
    SyncTrigger,
)
from node.network import (
    BLOCK_ANNOUNCE,
    BLS_PARTIAL,
    COMMIT,
    TRANSACTIONS,
    VOTE,
    NetworkConfig,
    NetworkError,
    NetworkHandler,
    NetworkService,
    PeerId,
    PeerInfo,
    PeerSlots,
    Status,
    Verdict,
)
from node.txpool import PoolError
from pallets.executive import InvalidBlock

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True, frozen=True, eq=False, slots=True)
class NodeNetworkHandler:
    """`node.network.NetworkHandler` for the node's services."""

    chain: ChainReader
    blocks: BlockImport
    transactions: PeerTransactions
    finality: FinalityGossip
    bls: BlsPartials | None
    sync: SyncTrigger

    async def on_gossip(self, peer_id: PeerId, kind: int, payload: bytes) -> Verdict:
        if kind == BLOCK_ANNOUNCE:
            return self._on_block(peer_id, payload)
        if kind == TRANSACTIONS:
            try:
                self.transactions.submit_from_peer(payload)
            except PoolError as exc:  # invalid in every state (malformed, forged): the peer's fault
                return Verdict.INVALID if exc.is_peer_fault else Verdict.IGNORE
            return Verdict.ACCEPT
        if kind == VOTE:
            return self.finality.on_vote(payload)
        if kind == COMMIT:
            return self.finality.on_commit(payload)
        if kind == BLS_PARTIAL:
            if self.bls is None:
                return Verdict.IGNORE
            return await self.bls.on_partial(payload)
        return Verdict.IGNORE

    def _on_block(self, peer_id: PeerId, payload: bytes) -> Verdict:
        try:
            block, justification = decode_block_item(payload)
        except (CodecError, ValueError):
            return Verdict.INVALID
        try:
            self.blocks.import_block(block, justification)
        except AlreadyKnown:
            if justification is not None:
                try:
                    self.blocks.apply_justification(block.hash(), justification)
                except Exception:
                    return Verdict.INVALID
            return Verdict.IGNORE
        except UnknownParent:
            self.sync.wake()
            return Verdict.KEEP
        except NotNow:
            return Verdict.IGNORE
        except InvalidBlock as exc:  # the network logs the ban: one line per bad message
            log.debug("Invalid block #%d from %s: %s", block.header.number, peer_id[:20], exc)
            return Verdict.INVALID
        return Verdict.ACCEPT

    def on_block_request(self, peer_id: PeerId, from_number: int, count: int) -> list[bytes]:
        out: list[bytes] = []
        for number in range(from_number, from_number + count):
            item = self.chain.block_item(number)
            if item is None:
                break
            out.append(item)
        return out

    def on_peer_connected(self, peer_id: PeerId, info: PeerInfo) -> None:
        self.sync.wake()

    def on_peer_disconnected(self, peer_id: PeerId) -> None:
        pass

    def on_peer_status(self, peer_id: PeerId, info: PeerInfo) -> None:
        if info.best_number > self.chain.best_header().number:
            self.sync.wake()


class NetworkLink:
    """`node.interfaces.PeerNetwork`: the p2p network once started; before that, and when the
    node runs without networking, a network without peers (a broadcast reaches nobody)."""

    def __init__(self, chain: ChainReader) -> None:
        self._chain = chain
        self.service: NetworkService | None = None

    @property
    def is_running(self) -> bool:
        return self.service is not None

    async def start(
        self,
        *,
        host: str,
        port: int,
        node_key: bytes,
        roles: int,
        bootnodes: tuple[str, ...],
        slots: PeerSlots,
        handler: NetworkHandler,
    ) -> None:
        service = NetworkService(
            NetworkConfig(
                listen_host=host,
                listen_port=port,
                node_key=node_key,
                genesis_hash=self._chain.genesis_hash,
                roles=roles,
                status_provider=self.status,
                bootnodes=list(bootnodes),
                slots=slots,
            ),
            handler,
        )
        await service.start()
        self.service = service

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()

    def status(self) -> Status:
        chain = self._chain
        return Status(
            best_number=chain.best_header().number,
            best_hash=chain.best_hash,
            finalized_number=chain.finalized_header().number,
            finalized_hash=chain.finalized_hash,
        )

    def update_status(self) -> None:
        """Our best or finalized block changed: tell the peers."""
        if self.service is not None:
            self.service.update_status(self.status())

    # ---- PeerNetwork --------------------------------------------------------------------------

    def broadcast(self, kind: int, payload: bytes) -> int:
        return self.service.broadcast(kind, payload) if self.service is not None else 0

    def peers(self) -> list[PeerInfo]:
        return self.service.peers() if self.service is not None else []

    def peer_count(self) -> int:
        return self.service.peer_count() if self.service is not None else 0

    def best_peer_number(self) -> int | None:
        return self.service.best_peer_number() if self.service is not None else None

    def listen_addresses(self) -> list[str]:
        return self.service.listen_addresses() if self.service is not None else []

    async def request_blocks(self, peer_id: PeerId, from_number: int, count: int) -> list[bytes]:
        if self.service is None:
            raise NetworkError("the network is not running")
        return await self.service.request_blocks(peer_id, from_number, count)

    def report(self, peer_id: PeerId, reason: str, ban: bool) -> None:
        if self.service is not None:
            self.service.report(peer_id, reason, ban)
