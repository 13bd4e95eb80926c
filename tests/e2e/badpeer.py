"""A misbehaving peer for the ban tests: it joins a node over the real p2p protocol (our own
NetworkService, so the handshake is genuine), sends one invalid message, and reports whether
the node dropped it and then refused it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

from chain.consensus import PREVOTE, SignedVote, Vote
from chain.primitives import Block, DigestItem, Header
from node.blocks import encode_block_item
from node.network import (
    BLOCK_ANNOUNCE,
    ROLE_FULL,
    VOTE,
    NetworkConfig,
    NetworkService,
    Status,
    Verdict,
)


class _Quiet:
    """A handler that accepts nothing and serves nothing."""

    async def on_gossip(self, peer_id: str, kind: int, payload: bytes) -> Verdict:
        return Verdict.IGNORE

    def on_block_request(self, peer_id: str, from_number: int, count: int) -> list[bytes]:
        return []

    def on_peer_connected(self, peer_id: str, info: Any) -> None:
        pass

    def on_peer_disconnected(self, peer_id: str) -> None:
        pass

    def on_peer_status(self, peer_id: str, info: Any) -> None:
        pass


@dataclasses.dataclass
class Outcome:
    peer_id: str
    disconnected: bool
    reconnect_refused: bool


def _service(key: bytes, genesis: bytes, bootnode: str) -> NetworkService:
    return NetworkService(
        NetworkConfig(
            listen_host="127.0.0.1",
            listen_port=0,
            node_key=key,
            genesis_hash=genesis,
            roles=ROLE_FULL,
            status_provider=lambda: Status(0, genesis, 0, genesis),
            bootnodes=[bootnode],
            reconnect_interval=0.5,
            peer_exchange=False,  # stay connected to the bootnode only
        ),
        _Quiet(),
    )


async def _wait(pred: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.1)
    return bool(pred())


def _invalid_payload(what: str, target: Any) -> tuple[int, bytes]:
    if what == "block":
        parent_hash, parent_number = target
        slot = int(time.time() * 1000) // 1000
        pre = DigestItem.pre_runtime(b"aura", slot.to_bytes(8, "little"))
        header = Header(
            parent_hash=parent_hash,
            number=parent_number + 1,
            state_root=os.urandom(32),
            extrinsics_root=os.urandom(32),
            digest=(pre, DigestItem.seal(b"aura", os.urandom(64))),
        )
        return BLOCK_ANNOUNCE, encode_block_item(Block(header, ()), None)
    vote = Vote(PREVOTE, os.urandom(32), 1)
    from node.keystore import derive_key

    alice = derive_key("//Alice", "ed25519").public
    return VOTE, SignedVote(vote, 1, 0, alice, os.urandom(64)).encode()


async def send_invalid_and_check_ban(
    bootnode: str, genesis: bytes, what: str, best: tuple[bytes, int] | None = None
) -> Outcome:
    key = os.urandom(32)
    svc = _service(key, genesis, bootnode)
    await svc.start()
    try:
        if not await _wait(lambda: svc.peer_count() > 0, 15):
            raise AssertionError("the bad peer could not connect in the first place")
        peer = svc.peers()[0]
        target = best if best is not None else (peer.best_hash, peer.best_number)
        kind, payload = _invalid_payload(what, target)
        svc.broadcast(kind, payload)
        target_id = peer.peer_id
        disconnected = await _wait(lambda: all(p.peer_id != target_id for p in svc.peers()), 10)
    finally:
        await svc.stop()
    again = _service(key, genesis, bootnode)
    await again.start()
    try:
        connected = await _wait(lambda: any(p.peer_id == target_id for p in again.peers()), 4)
    finally:
        await again.stop()
    return Outcome(svc.local_peer_id, disconnected, not connected)
