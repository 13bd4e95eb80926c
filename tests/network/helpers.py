"""In-process network services on 127.0.0.1 and a raw client for protocol-level tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp

from chain.crypto import ed25519_public_from_seed, ed25519_sign
from node.network import (
    NetworkConfig,
    NetworkService,
    PeerId,
    PeerInfo,
    Status,
    Verdict,
    peer_id_from_public,
)
from node.network.messages import (
    AUTH,
    HELLO,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    ROLE_FULL,
    Hello,
    auth_payload,
    frame,
)

GENESIS = bytes(range(32))
STATUS = Status(7, b"\x07" * 32, 5, b"\x05" * 32)


def key(n: int) -> bytes:
    return n.to_bytes(32, "big")


def run(coro: Coroutine[Any, Any, None], timeout: float = 20.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await coro

    asyncio.run(bounded())


async def wait_until(
    pred: Callable[[], bool], *services: NetworkService, within: float = 5.0, what: str = ""
) -> None:
    """Wait until `pred()` holds, re-checking it whenever one of `services` reports a change
    (`NetworkService.next_change`: peers, statuses, bans, counters). Name every service whose
    change can make `pred` true; no polling, so a missing one times out instead of passing."""
    if not services:
        raise TypeError("wait_until needs the services whose changes it waits on")
    try:
        async with asyncio.timeout(within):
            while True:
                changes = [s.next_change() for s in services]  # taken before the check
                try:
                    if pred():
                        return
                    await asyncio.wait(changes, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for change in changes:
                        change.cancel()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or pred}") from None


class FakeHandler:
    def __init__(self, blocks: list[bytes] | None = None) -> None:
        self.gossip: list[tuple[PeerId, int, bytes]] = []
        self.verdict: Callable[[int, bytes], Verdict] = lambda kind, payload: Verdict.ACCEPT
        self.blocks = blocks or []
        self.block_requests: list[tuple[PeerId, int, int]] = []
        self.connected: list[PeerId] = []
        self.disconnected: list[PeerId] = []
        self.statuses: list[PeerInfo] = []

    async def on_gossip(self, peer_id: PeerId, kind: int, payload: bytes) -> Verdict:
        self.gossip.append((peer_id, kind, payload))
        return self.verdict(kind, payload)

    def on_block_request(self, peer_id: PeerId, from_number: int, count: int) -> list[bytes]:
        self.block_requests.append((peer_id, from_number, count))
        return self.blocks[from_number : from_number + count]

    def on_peer_connected(self, peer_id: PeerId, info: PeerInfo) -> None:
        self.connected.append(peer_id)

    def on_peer_disconnected(self, peer_id: PeerId) -> None:
        self.disconnected.append(peer_id)

    def on_peer_status(self, peer_id: PeerId, info: PeerInfo) -> None:
        self.statuses.append(info)


def make(
    n: int, handler: FakeHandler | None = None, **overrides: Any
) -> tuple[NetworkService, FakeHandler]:
    handler = handler or FakeHandler()
    options: dict[str, Any] = {
        "node_key": key(n),
        "genesis_hash": GENESIS,
        "status_provider": lambda: STATUS,
        "reconnect_interval": 0.1,
        "handshake_timeout": 2.0,
    }
    options.update(overrides)
    return NetworkService(NetworkConfig(**options), handler), handler


@contextlib.asynccontextmanager
async def started(*services: NetworkService) -> AsyncIterator[None]:
    try:
        for s in services:
            await s.start()
        yield
    finally:
        for s in services:
            await s.stop()


def addr(service: NetworkService) -> str:
    return service.listen_addresses()[0]


def url(service: NetworkService) -> str:
    port = addr(service).split("/")[4]
    return f"ws://127.0.0.1:{port}/p2p"


class RawPeer:
    """A hand-driven client: sends exactly what a test says."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, seed: bytes) -> None:
        self.ws = ws
        self.seed = seed
        self.public = ed25519_public_from_seed(seed)
        self.peer_id = peer_id_from_public(self.public)
        self.nonce = secrets.token_bytes(32)

    def hello(
        self, protocol: str = PROTOCOL_NAME, genesis: bytes = GENESIS, listen_address: str = ""
    ) -> bytes:
        h = Hello(
            protocol,
            PROTOCOL_VERSION,
            genesis,
            ROLE_FULL,
            self.public,
            listen_address,
            STATUS,
            self.nonce,
        )
        return frame(HELLO, h.encode())

    async def recv_binary(self, within: float = 3.0) -> bytes:
        msg = await self.ws.receive(within)
        assert msg.type is aiohttp.WSMsgType.BINARY, (msg.type, msg.extra)
        return bytes(msg.data)

    async def handshake(self, *, bad_signature: bool = False, listen_address: str = "") -> Hello:
        """Dialer side of the handshake; returns the listener's Hello."""
        await self.ws.send_bytes(self.hello(listen_address=listen_address))
        data = await self.recv_binary()
        assert data[0] == HELLO
        remote = Hello.decode(data[1:])
        nonce = secrets.token_bytes(32) if bad_signature else remote.nonce
        signature = ed25519_sign(self.seed, auth_payload(GENESIS, nonce, self.public))
        await self.ws.send_bytes(frame(AUTH, signature))
        if not bad_signature:
            data = await self.recv_binary()
            assert data[0] == AUTH
        return remote

    async def close_reason(self, within: float = 3.0) -> str:
        """Read until the server closes; return its close message."""
        while True:
            msg = await self.ws.receive(within)
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return str(msg.extra)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ""


@contextlib.asynccontextmanager
async def raw_peer(service: NetworkService, seed: bytes = key(99)) -> AsyncIterator[RawPeer]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url(service)) as ws:
        yield RawPeer(ws, seed)


@contextlib.asynccontextmanager
async def raw_socket(
    service: NetworkService, path: str = "/p2p"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A TCP socket upgraded to a WebSocket by hand, to send bytes no client library would."""
    port = int(addr(service).split("/")[4])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def frame_header(length: int, opcode: int = 0x2) -> bytes:
    """The header of a masked (client-to-server) WebSocket frame of `length` payload bytes."""
    if length < 126:
        size = bytes((0x80 | length,))
    elif length < 1 << 16:
        size = bytes((0x80 | 126,)) + length.to_bytes(2, "big")
    else:
        size = bytes((0x80 | 127,)) + length.to_bytes(8, "big")
    return bytes((0x80 | opcode,)) + size + b"\x00" * 4  # a zero mask leaves the payload as is


async def read_until_closed(reader: asyncio.StreamReader) -> int:
    """Read until the other side closes (or resets) the socket; return the bytes read."""
    total = 0
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65_536):
            total += len(chunk)
    return total
