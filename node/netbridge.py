"""The node's side of the p2p network: what each gossip message and request means.

Blocks are imported (an invalid one bans its sender; an unknown parent starts a sync), the
transactions go to the pool, finality votes and commits to the gadget, BLS partial signatures
to the per-session proof collector. Block requests are served from the canonical chain with
justifications.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chain.codec import CodecError
from node.network import (
    BLOCK_ANNOUNCE,
    BLS_PARTIAL,
    COMMIT,
    ROLE_AUTHORITY,
    ROLE_FULL,
    TRANSACTIONS,
    VOTE,
    NetworkConfig,
    NetworkService,
    Verdict,
)
from node.sync import AlreadyKnown, NotNow, UnknownParent, decode_block_item
from node.txpool import PoolError
from pallets.executive import InvalidBlock

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)


class NodeNetworkHandler:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def on_gossip(self, peer_id: str, kind: int, payload: bytes) -> Verdict:
        node = self.node
        if kind == BLOCK_ANNOUNCE:
            return self._on_block(peer_id, payload)
        if kind == TRANSACTIONS:
            try:
                node.pool.submit(payload)
            except PoolError as exc:
                bad = exc.code == 1001 or (exc.code == 1010 and "bad signature" in (exc.data or ""))
                return Verdict.INVALID if bad else Verdict.IGNORE
            return Verdict.ACCEPT
        if kind == VOTE:
            return node.gadget.on_vote(payload)
        if kind == COMMIT:
            return node.gadget.on_commit(payload)
        if kind == BLS_PARTIAL:
            if node.bls is None:
                return Verdict.IGNORE
            return await node.bls.on_partial(payload)
        return Verdict.IGNORE

    def _on_block(self, peer_id: str, payload: bytes) -> Verdict:
        node = self.node
        try:
            block, justification = decode_block_item(payload)
        except (CodecError, ValueError):
            return Verdict.INVALID
        try:
            node.import_block(block, justification)
        except AlreadyKnown:
            if justification is not None:
                try:
                    node.apply_justification(block.hash(), justification)
                except Exception:
                    return Verdict.INVALID
            return Verdict.IGNORE
        except UnknownParent:
            node.syncer.wake()
            return Verdict.KEEP
        except NotNow:
            return Verdict.IGNORE
        except InvalidBlock as exc:
            log.info("Invalid block #%d from %s: %s", block.header.number, peer_id[:20], exc)
            return Verdict.INVALID
        return Verdict.ACCEPT

    def on_block_request(self, peer_id: str, from_number: int, count: int) -> list[bytes]:
        out: list[bytes] = []
        for number in range(from_number, from_number + count):
            item = self.node.block_item(number)
            if item is None:
                break
            out.append(item)
        return out

    def on_peer_connected(self, peer_id: str, info: Any) -> None:
        self.node.syncer.wake()

    def on_peer_disconnected(self, peer_id: str) -> None:
        pass

    def on_peer_status(self, peer_id: str, info: Any) -> None:
        if info.best_number > self.node.best_header().number:
            self.node.syncer.wake()


async def start_network(node: Node) -> NetworkService:
    config = node.config
    assert config.p2p_port is not None
    roles = ROLE_AUTHORITY if node.is_authority else ROLE_FULL
    service = NetworkService(
        NetworkConfig(
            listen_host=config.p2p_host,
            listen_port=config.p2p_port,
            node_key=node.node_key,
            genesis_hash=node.genesis_hash,
            roles=roles,
            status_provider=node._status,
            bootnodes=list(config.bootnodes),
        ),
        NodeNetworkHandler(node),
    )
    await service.start()
    return service
