"""The p2p network service: authenticated WebSocket connections, gossip with flooding and
de-duplication, block requests, peer exchange, bans.

It knows nothing about what blocks or votes mean; the node plugs in a `NetworkHandler` and gives
and takes opaque payloads. Each connection runs in one task that does the handshake and then
reads frames sequentially (the handler's awaited work runs there, so a peer cannot fan out
work); one writer task per peer drains its bounded outbound queue.

Before its handshake completes, an inbound socket may send at most `MAX_HANDSHAKE_BYTES`, in
frames of at most `MAX_HANDSHAKE_FRAME` (a longer frame is refused at its length prefix); at
most `MAX_PENDING_HANDSHAKES` inbound sockets are in their handshake at a time,
`in_peers_per_ip` of them from one IP address. Admitted peers take inbound or outbound slots
(`in_peers`, `out_peers`, as Substrate's `--in-peers`/`--out-peers`), and at most
`in_peers_per_ip` inbound peers come from one IP address (loopback exempt unless configured).

Peer exchange passes on only addresses this node dialed itself and found the expected peer at:
an outbound peer's, and an inbound peer's advertised address once a probe (a handshake on
`/p2p/probe`, which the listener answers with its proof and then closes) confirmed it.

What the service does can be observed without polling: `stats()` holds counters for metrics,
and `next_change()` / `wait_for()` wake up whenever the peer set, a peer's status, the ban list
or a counter changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from chain.codec import CodecError
from chain.crypto import SignatureScheme, ed25519_sign, verify_signature
from chain.hashing import blake2_256
from node.httpserve import start_app
from node.network.messages import (
    AUTH,
    BLOCK_REQUEST,
    BLOCK_RESPONSE,
    GOSSIP_KINDS,
    HELLO,
    KIND_NAMES,
    MAX_BLOCKS_PER_REQUEST,
    MAX_FRAME_BYTES,
    MAX_PEERS_PER_MESSAGE,
    MAX_RESPONSE_BYTES,
    NONCE_LENGTH,
    PEERS,
    PING,
    PONG,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    ROLE_FULL,
    STATUS,
    Hello,
    NetworkError,
    Status,
    auth_payload,
    decode_block_request,
    decode_block_response,
    decode_peers,
    decode_ping,
    encode_block_request,
    encode_block_response,
    encode_peers,
    encode_ping,
    frame,
    truncate_response,
)
from node.network.peer import Direction, FrameQueue, LruSet, Peer, PeerInfo, TokenBucket
from node.network.peerid import (
    Multiaddr,
    PeerId,
    PeerIdError,
    make_multiaddr,
    node_public_key,
    parse_multiaddr,
    peer_id_from_public,
)
from node.verdict import Verdict

log = logging.getLogger(__name__)

MAX_PENDING_HANDSHAKES = 16  # inbound connections still in their handshake
MAX_LEARNED_ADDRESSES = 256
MAX_BANNED = 4_096
MAX_HANDSHAKE_FRAME = 4_096  # a HELLO is under 600 bytes
MAX_HANDSHAKE_BYTES = 2 * MAX_HANDSHAKE_FRAME  # all an inbound socket sends before it is admitted
MAX_PROBES = 8  # probes of inbound peers' addresses in flight
PROBE_PATH = "/p2p/probe"
MAX_DIAL_FAILURES = 6  # a learned address is forgotten after this many failures in a row
MAX_BACKOFF_S = 60.0
REPORT_COOLDOWN_S = 30.0  # we do not redial a peer disconnected by `report(ban=False)` sooner
CLOSE_TIMEOUT_S = 1.0
STATUS_COALESCE_S = 0.05
_WS_MAX_MSG = MAX_RESPONSE_BYTES + 64

COUNTERS = (  # the counters of `NetworkService.stats()`, for metrics; all start at 0
    "connections_opened",  # handshakes completed: peers admitted (one replacing a duplicate too)
    "connections_closed",  # admitted connections ended (a replaced duplicate too)
    "handshakes_failed",  # connections, either direction, failed or refused in the handshake
    "handshakes_refused_banned",  # of those, refused because the peer is banned
    "handshakes_refused_full",  # of those, refused for want of a slot (in, out, or per IP)
    "inbound_refused",  # inbound sockets refused before a handshake (too many pending)
    "address_probes",  # probes we made of inbound peers' advertised addresses
    "addresses_verified",  # of those, the ones that found the peer there
    "probes_answered",  # probes of our address by others that we answered
    "gossip_sent",  # gossip frames queued to a peer (broadcast, relay, send)
    "gossip_received",  # gossip frames read and processed, duplicates included
    "gossip_duplicates",  # of those, already seen: not given to the handler
    "gossip_dropped",  # relays not queued because the peer's queue was full
    "frames_dropped",  # frames of any kind not queued because a peer's queue was full
    "bans",  # bans imposed (a peer banned twice counts twice)
    "requests_rate_limited",  # inbound block requests answered empty by the rate limit
    "responses_truncated",  # block responses cut to the 16 MiB cap
    "slow_peers",  # peers disconnected because their queue stayed full
)


class NetworkHandler(Protocol):
    """The node's side. Sync methods must be fast; `on_gossip` runs on the sender's reader
    task, so a slow handler slows only that peer."""

    async def on_gossip(self, peer_id: PeerId, kind: int, payload: bytes) -> Verdict: ...

    def on_block_request(self, peer_id: PeerId, from_number: int, count: int) -> list[bytes]:
        """Up to `count` (<= 128) encoded blocks from `from_number` ascending on the canonical
        chain; the network truncates the answer to whole items under the 16 MiB cap."""
        ...

    def on_peer_connected(self, peer_id: PeerId, info: PeerInfo) -> None: ...

    def on_peer_disconnected(self, peer_id: PeerId) -> None: ...

    def on_peer_status(self, peer_id: PeerId, info: PeerInfo) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSlots:
    """How many peers the service admits (Substrate's `--in-peers` and `--out-peers`), and
    from one IP address. A connection that replaces one to the same peer keeps its slot."""

    in_peers: int = 32  # peers that dialed us
    out_peers: int = 8  # peers we dialed
    in_peers_per_ip: int = 4  # inbound peers, and inbound sockets in their handshake, per IP
    is_loopback_exempt: bool = True  # no per-IP cap from 127.0.0.0/8 and ::1 (one-machine nets)

    def __post_init__(self) -> None:
        if min(self.in_peers, self.out_peers, self.in_peers_per_ip) < 0:
            raise ValueError("peer slots cannot be negative")


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkConfig:
    node_key: bytes  # ed25519 seed (32)
    genesis_hash: bytes
    status_provider: Callable[[], Status]  # our best/finalized, read at each handshake
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: ephemeral, `start()` returns the bound port
    roles: int = ROLE_FULL
    bootnodes: Sequence[str] = ()
    public_addresses: Sequence[str] = ()  # advertised instead of the listen address if given
    slots: PeerSlots = PeerSlots()
    ban_seconds: float = 600.0
    reconnect_interval: float = 2.0
    handshake_timeout: float = 5.0
    heartbeat: float = 20.0  # WebSocket ping interval; a peer silent for half of it is dropped
    max_queue_frames: int = 1_024
    max_queue_bytes: int = 48 * 1024 * 1024
    slow_peer_seconds: float = 10.0  # a peer whose queue stays full this long is disconnected
    max_requests_per_peer: int = 4  # our outstanding block requests to one peer
    request_rate: float = 20.0  # inbound block requests per second per peer
    request_burst: int = 40
    peer_exchange: bool = True
    peer_exchange_interval: float = 30.0
    gossip_cache_size: int = 8_192
    known_per_peer: int = 2_048


class _HandshakeError(Exception):
    def __init__(
        self,
        reason: str,
        *,
        peer_id: PeerId | None = None,
        is_self: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.peer_id = peer_id
        self.is_self = is_self


class _HandshakeGuard(asyncio.Protocol):
    """Stands between an inbound socket and aiohttp until the handshake completes. It passes on
    at most MAX_HANDSHAKE_BYTES and reads each WebSocket frame header on the way: a frame
    longer than MAX_HANDSHAKE_FRAME is refused at its length prefix, before any of its payload
    is read, and the socket is aborted. (aiohttp's own frame limit has to admit a block
    response, 16 MiB, for the socket's whole life.) `release()` hands the socket back."""

    def __init__(self, transport: asyncio.Transport) -> None:
        inner = transport.get_protocol()
        if not isinstance(inner, asyncio.Protocol):
            raise TypeError(f"unexpected protocol {type(inner).__name__}")
        self._transport = transport
        self._inner: asyncio.Protocol = inner
        self._budget = MAX_HANDSHAKE_BYTES
        self._header = bytearray()  # the frame header being read
        self._skip = 0  # payload bytes of the current frame still to pass
        self.violation: str | None = None
        transport.set_protocol(self)

    def release(self) -> None:
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._inner)

    def data_received(self, data: bytes) -> None:
        if self.violation is None:
            self.violation = self._check(data)
            if self.violation is None:
                self._inner.data_received(data)
                return
            self._transport.abort()

    def _check(self, data: bytes) -> str | None:
        allowed, self._budget = self._budget, self._budget - len(data)
        violation = self._read_headers(data[:allowed])
        if violation is None and self._budget < 0:
            violation = f"more than {MAX_HANDSHAKE_BYTES} bytes before the handshake completed"
        return violation

    def _read_headers(self, data: bytes) -> str | None:
        pos = 0
        while pos < len(data):
            if self._skip:
                step = min(self._skip, len(data) - pos)
                self._skip -= step
                pos += step
                continue
            self._header.append(data[pos])
            pos += 1
            length, header_size = _frame_length(self._header)
            if length is not None and length > MAX_HANDSHAKE_FRAME:
                return f"a frame of {length} bytes before the handshake completed"
            if length is not None and len(self._header) == header_size:
                self._header.clear()
                self._skip = length
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _frame_length(header: bytearray) -> tuple[int | None, int]:
    """(payload length, header size) of a WebSocket frame whose first bytes are `header`; the
    length is None until its bytes are there (RFC 6455 5.2)."""
    if len(header) < 2:
        return None, 2
    short = header[1] & 0x7F
    extended = {126: 2, 127: 8}.get(short, 0)
    size = 2 + extended + (4 if header[1] & 0x80 else 0)
    if len(header) < 2 + extended:
        return None, size
    length = int.from_bytes(header[2 : 2 + extended], "big") if extended else short
    return length, size


@dataclasses.dataclass(eq=False, slots=True)
class _Inbound:
    """An inbound socket: where from, its guard while in the handshake, whether it is a probe."""

    ip: str
    guard: _HandshakeGuard
    is_probe: bool
    is_pending: bool = True


@dataclasses.dataclass(slots=True)
class _AddressState:
    addr: Multiaddr
    is_bootnode: bool
    peer_id: PeerId | None
    fails: int = 0
    next_try: float = 0.0
    is_dialing: bool = False


class _Socket(Protocol):
    """What we use of aiohttp's server and client WebSocket objects."""

    @property
    def closed(self) -> bool: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def receive(self) -> aiohttp.WSMessage: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class NetworkService:
    def __init__(self, config: NetworkConfig, handler: NetworkHandler) -> None:
        if len(config.genesis_hash) != 32:
            raise ValueError("genesis hash must be 32 bytes")
        self._cfg = config
        self._handler = handler
        self._public = node_public_key(config.node_key)
        self.local_peer_id: PeerId = peer_id_from_public(self._public)
        self._bootnodes = [parse_multiaddr(b) for b in config.bootnodes]
        for addr in config.public_addresses:
            parse_multiaddr(addr)
        self._peers: dict[PeerId, Peer] = {}
        self._addrs: dict[str, _AddressState] = {}
        self._dialing_ids: set[PeerId] = set()
        self._banned: dict[PeerId, float] = {}
        self._seen = LruSet(config.gossip_cache_size)
        self._stats: collections.Counter[str] = collections.Counter(dict.fromkeys(COUNTERS, 0))
        self._change_waiters: list[asyncio.Future[None]] = []
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._pending_ips: collections.Counter[str] = collections.Counter()  # inbound handshakes
        self._probing: set[str] = set()  # addresses being probed
        self._probe_failed = LruSet(MAX_LEARNED_ADDRESSES)  # addresses not probed again
        self._loops: list[asyncio.Task[None]] = []
        self._dial_wakeup = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._pending_status: Status | None = None
        self._sent_status: Status | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._advertised = ""
        self._is_stopping = False

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen, start dialing the bootnodes; return the bound port."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._cfg.handshake_timeout)
        )
        app = web.Application()
        app.router.add_get("/p2p", self._accept)
        app.router.add_get(PROBE_PATH, self._accept_probe)
        self._runner, self._port = await start_app(
            app, self._cfg.listen_host, self._cfg.listen_port, shutdown_timeout_s=CLOSE_TIMEOUT_S
        )
        self._advertised = (
            self._cfg.public_addresses[0]
            if self._cfg.public_addresses
            else self.listen_addresses()[0]
        )
        for addr in self._bootnodes:
            if addr.peer_id != self.local_peer_id:
                self._learn(addr, is_bootnode=True)
        self._loops = [
            asyncio.create_task(self._dial_loop(), name="network.dial"),
            asyncio.create_task(self._maintenance_loop(), name="network.maintenance"),
            asyncio.create_task(self._status_loop(), name="network.status"),
        ]
        log.info("Local node identity is %s, listening on %s", self.local_peer_id, self._advertised)
        return self._port

    async def stop(self) -> None:
        """Close every connection and the server; cancel every task."""
        if self._is_stopping:
            return
        self._is_stopping = True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        peer_tasks = {p.task for p in self._peers.values()}
        for peer in list(self._peers.values()):
            self._request_close(peer, "shutting down")
        for task in self._conn_tasks - peer_tasks:  # dialing or in the handshake
            task.cancel()
        if self._conn_tasks:
            _, pending = await asyncio.wait(set(self._conn_tasks), timeout=CLOSE_TIMEOUT_S * 3)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S * 2)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ---- queries ------------------------------------------------------------------------------

    def listen_addresses(self) -> list[str]:
        host = self._cfg.listen_host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return [str(make_multiaddr(host, self._port, self.local_peer_id))]

    def peers(self) -> list[PeerInfo]:
        return [p.info() for p in self._peers.values()]

    def peer_count(self) -> int:
        return len(self._peers)

    def known_addresses(self) -> list[str]:
        """The addresses we may dial: bootnodes, and addresses learned from peers."""
        return list(self._addrs)

    def best_peer_number(self) -> int | None:
        return max((p.status.best_number for p in self._peers.values()), default=None)

    def is_banned(self, peer_id: PeerId) -> bool:
        until = self._banned.get(peer_id)
        return until is not None and until > time.monotonic()

    def stats(self) -> dict[str, int]:
        """Counters for metrics, every one of `COUNTERS` (0 until it first happens, never
        decreasing), and the gauges `peers` (connected), `banned` (bans in force) and
        `known_addresses` (bootnodes and learned addresses we may dial)."""
        out = dict(self._stats)
        out["peers"] = len(self._peers)
        out["banned"] = sum(1 for pid in self._banned if self.is_banned(pid))
        out["known_addresses"] = len(self._addrs)
        return out

    # ---- observing changes --------------------------------------------------------------------

    def next_change(self) -> asyncio.Future[None]:
        """A future resolved at the next change of what the queries above report: a peer
        connected (after `on_peer_connected`) or disconnected (after `on_peer_disconnected`),
        a peer's status (after `on_peer_status`), a ban added or expired, an address learned
        or forgotten, or any counter of `stats()` (a gossip message is counted after
        `on_gossip` returned and its relays were queued). Take it before checking a condition,
        and no change in between is missed. Cancelling it affects no other waiter."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._change_waiters.append(fut)
        return fut

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Return as soon as `predicate()` is true, evaluating it now and after each change
        (see `next_change`); raise TimeoutError if it is still false after `timeout` s."""
        async with asyncio.timeout(timeout):
            while True:
                change = self.next_change()
                if predicate():
                    change.cancel()
                    return
                await change

    def _changed(self) -> None:
        waiters, self._change_waiters = self._change_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _count(self, counter: str, n: int = 1) -> None:
        if n:
            self._stats[counter] += n
            self._changed()

    # ---- sending ------------------------------------------------------------------------------

    def broadcast(self, kind: int, payload: bytes, exclude: PeerId | None = None) -> int:
        """Gossip to every connected peer but `exclude` and those known to have the message;
        return how many peers it was queued for."""
        data = self._gossip_frame(kind, payload)
        digest = blake2_256(data)
        self._seen.add(digest)
        return self._relay(data, digest, exclude)

    def send(self, peer_id: PeerId, kind: int, payload: bytes) -> bool:
        """Gossip-kind message to one peer (e.g. a catch-up commit); False if not queued."""
        data = self._gossip_frame(kind, payload)
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        digest = blake2_256(data)
        self._seen.add(digest)
        peer.known.add(digest)
        if not self._enqueue(peer, data):
            return False
        self._count("gossip_sent")
        return True

    def update_status(self, status: Status) -> None:
        """Our best/finalized changed: peers get a STATUS (coalesced)."""
        self._pending_status = status
        self._status_changed.set()

    async def request_blocks(
        self,
        peer_id: PeerId,
        from_number: int,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[bytes]:
        """Up to `count` (capped at 128) blocks from `from_number` on `peer_id`'s canonical
        chain. Raises NetworkError on timeout, disconnection or a misbehaving answer."""
        count = min(count, MAX_BLOCKS_PER_REQUEST)
        peer = self._peers.get(peer_id)
        if peer is None:
            raise NetworkError(f"not connected to {peer_id}")
        if count <= 0:
            return []
        try:
            async with asyncio.timeout(timeout), peer.request_slots:
                peer.next_request_id += 1
                request_id = peer.next_request_id
                fut: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
                peer.pending[request_id] = (fut, count)
                try:
                    if not self._enqueue(
                        peer, encode_block_request(request_id, from_number, count)
                    ):
                        raise NetworkError(f"outbound queue to {peer_id} is full")
                    return await fut
                finally:
                    peer.pending.pop(request_id, None)
        except TimeoutError:
            raise NetworkError(f"block request to {peer_id} timed out") from None

    async def connect(self, address: str) -> PeerId:
        """Dial `address` once; return the peer id after the handshake, or raise NetworkError
        with the reason. The connection then lives until either side closes it."""
        addr = parse_multiaddr(address)
        if addr.peer_id is not None and self.is_banned(addr.peer_id):
            raise NetworkError(f"{addr.peer_id} is banned")
        if addr.peer_id not in self._peers and self._direction_count(Direction.OUTBOUND) >= (
            self._cfg.slots.out_peers
        ):
            raise NetworkError(f"no free outbound slot ({self._cfg.slots.out_peers} in use)")
        ready: asyncio.Future[PeerId] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(_consume)  # the caller may be gone by then
        self._track(asyncio.create_task(self._outbound(addr, ready), name=f"network.dial {addr}"))
        return await asyncio.shield(ready)

    def report(self, peer_id: PeerId, reason: str, ban: bool) -> None:
        """The node found `peer_id` misbehaving: ban it (disconnect, refuse it for
        `ban_seconds`), or with ban=False disconnect it and not dial it for a while (it may
        still dial us)."""
        if ban:
            self._ban(peer_id, reason)
            return
        retry_at = time.monotonic() + REPORT_COOLDOWN_S
        for state in self._addrs.values():
            if state.peer_id == peer_id:
                state.next_try = max(state.next_try, retry_at)
        peer = self._peers.get(peer_id)
        if peer is not None:
            log.info("Disconnecting %s: %s", peer_id, reason)
            self._request_close(peer, reason)

    # ---- connections --------------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        return await self._accept_socket(request, is_probe=False)

    async def _accept_probe(self, request: web.Request) -> web.StreamResponse:
        return await self._accept_socket(request, is_probe=True)

    async def _accept_socket(self, request: web.Request, *, is_probe: bool) -> web.StreamResponse:
        ip = request.remote or ""
        refusal = self._pending_refusal(ip)
        transport = request.transport
        if refusal is not None or transport is None:
            self._count("inbound_refused")
            log.debug("Refused an inbound connection from %s: %s", ip, refusal)
            return web.Response(status=503, text=refusal or "closed")
        inbound = _Inbound(ip, _HandshakeGuard(transport), is_probe)
        self._pending_ips[ip] += 1
        try:
            ws = web.WebSocketResponse(
                max_msg_size=_WS_MAX_MSG,
                heartbeat=self._cfg.heartbeat,
                timeout=CLOSE_TIMEOUT_S,
                compress=False,
            )
            await ws.prepare(request)
        except BaseException:
            self._end_pending(inbound)
            raise
        task = asyncio.create_task(
            self._run_connection(ws, Direction.INBOUND, None, inbound, None),
            name=f"network.conn in {ip}",
        )
        self._track(task)
        await asyncio.wait({task})
        return ws

    def _pending_refusal(self, ip: str) -> str | None:
        """Why a new inbound socket from `ip` is refused before its handshake, if it is."""
        if self._is_stopping:
            return "shutting down"
        if sum(self._pending_ips.values()) >= MAX_PENDING_HANDSHAKES:
            return "too many pending handshakes"
        if self._is_ip_capped(ip) and self._pending_ips[ip] >= self._cfg.slots.in_peers_per_ip:
            return f"too many pending handshakes from {ip}"
        return None

    def _end_pending(self, inbound: _Inbound) -> None:
        """The socket's handshake is over (admitted, refused or failed): hand it back to
        aiohttp and free its pending slot."""
        if not inbound.is_pending:
            return
        inbound.is_pending = False
        inbound.guard.release()
        self._pending_ips[inbound.ip] -= 1
        if self._pending_ips[inbound.ip] <= 0:
            del self._pending_ips[inbound.ip]

    def _is_ip_capped(self, ip: str) -> bool:
        if not self._cfg.slots.is_loopback_exempt:
            return True
        try:
            return not ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return True

    async def _outbound(self, addr: Multiaddr, ready: asyncio.Future[PeerId]) -> None:
        assert self._session is not None
        try:
            try:
                async with asyncio.timeout(self._cfg.handshake_timeout):
                    ws = await self._session.ws_connect(
                        addr.url,
                        max_msg_size=_WS_MAX_MSG,
                        heartbeat=self._cfg.heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
                    )
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                raise NetworkError(f"cannot connect to {addr}: {exc or 'timeout'}") from None
            await self._run_connection(ws, Direction.OUTBOUND, addr, None, ready)
        except NetworkError as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            if not ready.done():
                ready.set_exception(NetworkError(f"dialing {addr} was cancelled"))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._conn_tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._conn_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Network task %s failed", task.get_name(), exc_info=task.exception())

    async def _run_connection(
        self,
        ws: _Socket,
        direction: Direction,
        dialed: Multiaddr | None,
        inbound: _Inbound | None,
        ready: asyncio.Future[PeerId] | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        remote_ip = inbound.ip if inbound is not None else ""
        peer: Peer | None = None
        reason = "shutting down"
        try:
            try:
                remote, pid, auth = await self._handshake(ws, direction, dialed)
                if inbound is not None and inbound.is_probe:
                    await self._answer_probe(ws, pid, auth)
                    reason = "probe answered"
                    return
                if direction is Direction.OUTBOUND:
                    assert dialed is not None
                    address = str(dialed.with_peer_id(pid))
                else:
                    address = self._inbound_address(remote, pid, remote_ip)
                peer, replaced = self._admit(pid, remote, direction, address, remote_ip)
            except _HandshakeError as exc:
                failure = exc
                if inbound is not None and inbound.guard.violation is not None:
                    failure = _HandshakeError(f"oversized handshake: {inbound.guard.violation}")
                self._on_handshake_failed(failure, direction, dialed, remote_ip, ready)
                await self._close_ws(ws, failure.reason)
                return
            finally:
                if inbound is not None:
                    self._end_pending(inbound)
            peer.task = task
            if direction is Direction.INBOUND:
                async with asyncio.timeout(self._cfg.handshake_timeout):
                    await ws.send_bytes(frame(AUTH, auth))
            peer.writer_task = asyncio.create_task(
                self._writer(peer, ws), name=f"network.writer {pid}"
            )
            self._announce(peer, replaced)
            if ready is not None and not ready.done():
                ready.set_result(pid)
            reason = await self._read_loop(ws, peer)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            reason = f"connection error: {exc or type(exc).__name__}"
        finally:
            if ready is not None and not ready.done():
                ready.set_exception(NetworkError(f"connection closed: {reason}"))
            if peer is not None:
                await self._teardown(peer, ws, reason)
            else:
                await self._close_ws(ws, reason)

    async def _answer_probe(self, ws: _Socket, pid: PeerId, auth: bytes) -> None:
        """Prove our identity to a peer checking our address (it dialed `PROBE_PATH` and proved
        its own); it is not admitted."""
        if self.is_banned(pid):
            raise _HandshakeError("banned", peer_id=pid)
        async with asyncio.timeout(self._cfg.handshake_timeout):
            await ws.send_bytes(frame(AUTH, auth))
        self._count("probes_answered")

    async def _handshake(
        self, ws: _Socket, direction: Direction, dialed: Multiaddr | None
    ) -> tuple[Hello, PeerId, bytes]:
        """Exchange and check HELLOs, then AUTHs; the listener sends its AUTH only after it has
        admitted the dialer (so a rejected dialer learns why before it counts the peer)."""
        genesis = self._cfg.genesis_hash
        try:
            async with asyncio.timeout(self._cfg.handshake_timeout):
                nonce = secrets.token_bytes(NONCE_LENGTH)
                hello = Hello(
                    PROTOCOL_NAME,
                    PROTOCOL_VERSION,
                    genesis,
                    self._cfg.roles,
                    self._public,
                    self._advertised,
                    self._cfg.status_provider(),
                    nonce,
                )
                await ws.send_bytes(frame(HELLO, hello.encode()))
                remote = Hello.decode(await self._expect(ws, HELLO))
                if remote.protocol != PROTOCOL_NAME or remote.version != PROTOCOL_VERSION:
                    raise _HandshakeError(
                        f"protocol mismatch: {remote.protocol!r} v{remote.version}"
                    )
                if remote.genesis_hash != genesis:
                    raise _HandshakeError(f"genesis mismatch: 0x{remote.genesis_hash.hex()}")
                if remote.public_key == self._public:
                    raise _HandshakeError("connected to self", is_self=True)
                pid = peer_id_from_public(remote.public_key)
                if dialed is not None and dialed.peer_id not in (None, pid):
                    raise _HandshakeError(
                        f"peer id mismatch: dialed {dialed.peer_id}, found {pid}", peer_id=pid
                    )
                own_auth = ed25519_sign(
                    self._cfg.node_key, auth_payload(genesis, remote.nonce, self._public)
                )
                if direction is Direction.OUTBOUND:
                    await ws.send_bytes(frame(AUTH, own_auth))
                proof = await self._expect(ws, AUTH)
                signed = auth_payload(genesis, nonce, remote.public_key)
                if len(proof) != 64 or not verify_signature(
                    SignatureScheme.ED25519, proof, signed, remote.public_key
                ):
                    raise _HandshakeError("bad authentication signature", peer_id=pid)
                return remote, pid, own_auth
        except TimeoutError:
            raise _HandshakeError("handshake timed out") from None
        except CodecError as exc:
            raise _HandshakeError(f"malformed handshake: {exc}") from None
        except (OSError, aiohttp.ClientError) as exc:
            raise _HandshakeError(f"connection lost during handshake: {exc}") from None

    async def _expect(self, ws: _Socket, kind: int) -> bytes:
        msg = await ws.receive()
        if msg.type is WSMsgType.BINARY:
            data = bytes(msg.data)
            if not data or data[0] != kind:
                raise _HandshakeError(f"expected a {KIND_NAMES[kind]} frame")
            if len(data) > MAX_HANDSHAKE_FRAME:
                raise _HandshakeError("oversized handshake frame")
            return data[1:]
        if msg.type is WSMsgType.CLOSE:
            raise _HandshakeError(f"rejected by remote: {msg.extra or 'closed'}")
        if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise _HandshakeError("closed during the handshake")
        if msg.type is WSMsgType.ERROR:
            raise _HandshakeError(f"error during the handshake: {msg.data}")
        raise _HandshakeError(f"unexpected {msg.type.name.lower()} frame in the handshake")

    def _admit(
        self, pid: PeerId, remote: Hello, direction: Direction, address: str, remote_ip: str
    ) -> tuple[Peer, Peer | None]:
        """Register the peer, or raise _HandshakeError (banned, duplicate, no slot). A
        connection that replaces one to the same peer takes over its slot."""
        if self._is_stopping:
            raise _HandshakeError("shutting down", peer_id=pid)
        if self.is_banned(pid):
            self._count("handshakes_refused_banned")
            raise _HandshakeError("banned", peer_id=pid)
        existing = self._peers.get(pid)
        if existing is not None:
            if not self._prefers_new(pid, existing.direction, direction):
                raise _HandshakeError("duplicate connection", peer_id=pid)
        else:
            full = self._slot_refusal(direction, remote_ip)
            if full is not None:
                self._count("handshakes_refused_full")
                raise _HandshakeError(full, peer_id=pid)
        cfg = self._cfg
        peer = Peer(
            peer_id=pid,
            roles=remote.roles,
            status=remote.status,
            address=address,
            direction=direction,
            remote_ip=remote_ip,
            queue=FrameQueue(cfg.max_queue_frames, cfg.max_queue_bytes),
            request_slots=asyncio.Semaphore(cfg.max_requests_per_peer),
            request_bucket=TokenBucket(cfg.request_rate, cfg.request_burst),
            abuse_bucket=TokenBucket(cfg.request_rate / 10, cfg.request_burst / 2),
            known=LruSet(cfg.known_per_peer),
        )
        if direction is Direction.OUTBOUND:
            peer.verified_address = address  # we dialed it, and found `pid` there
        elif existing is not None and existing.verified_address == address:
            peer.verified_address = address
        self._peers[pid] = peer
        if existing is not None:
            self._request_close(existing, "replaced by a newer connection")
        return peer, existing

    def _direction_count(self, direction: Direction) -> int:
        return sum(1 for p in self._peers.values() if p.direction is direction)

    def _slot_refusal(self, direction: Direction, remote_ip: str) -> str | None:
        """Why a new peer in `direction` finds no slot, if it does not."""
        cfg = self._cfg.slots
        if direction is Direction.OUTBOUND:
            if self._direction_count(direction) >= cfg.out_peers:
                return f"too many outbound peers ({cfg.out_peers})"
            return None
        if self._direction_count(direction) >= cfg.in_peers:
            return f"too many inbound peers ({cfg.in_peers})"
        if self._is_ip_capped(remote_ip):
            same_ip = sum(
                1
                for p in self._peers.values()
                if p.direction is Direction.INBOUND and p.remote_ip == remote_ip
            )
            if same_ip >= cfg.in_peers_per_ip:
                return f"too many peers from {remote_ip} ({cfg.in_peers_per_ip})"
        return None

    def _prefers_new(self, pid: PeerId, old: Direction, new: Direction) -> bool:
        """Of two connections to one peer keep, on both sides alike, the one dialed by the
        smaller peer id; of two dialed by the same side, the newer (the old one is likely dead)."""
        if old is new:
            return True
        dialer_of_new = self.local_peer_id if new is Direction.OUTBOUND else pid
        dialer_of_old = self.local_peer_id if old is Direction.OUTBOUND else pid
        return dialer_of_new < dialer_of_old

    def _inbound_address(self, remote: Hello, pid: PeerId, remote_ip: str | None) -> str:
        """The address an inbound peer advertised, with a loopback/unspecified host replaced by
        the address it connected from."""
        if not remote.listen_address:
            return ""
        try:
            addr = parse_multiaddr(remote.listen_address)
        except PeerIdError:
            return ""
        if addr.peer_id not in (None, pid):
            return ""
        if addr.host_protocol in ("ip4", "ip6") and remote_ip:
            with contextlib.suppress(ValueError):
                ip, observed = ipaddress.ip_address(addr.host), ipaddress.ip_address(remote_ip)
                if (ip.is_loopback or ip.is_unspecified) and not (
                    observed.is_loopback and ip.is_loopback
                ):
                    addr = addr.with_host(str(observed))
        return str(addr.with_peer_id(pid))

    def _announce(self, peer: Peer, replaced: Peer | None) -> None:
        pid = peer.peer_id
        log.info("Connected to peer %s (%s)", pid, peer.address or peer.direction.value)
        if peer.verified_address:
            self._learn(parse_multiaddr(peer.verified_address))
        try:
            if replaced is None:
                self._handler.on_peer_connected(pid, peer.info())
            else:
                self._handler.on_peer_status(pid, peer.info())
        except Exception:
            log.exception("Network handler failed on a new peer")
        self._count("connections_opened")
        if not self._cfg.peer_exchange:
            return
        others = [p.verified_address for p in self._peers.values() if p is not peer]
        others = [a for a in others if a]
        if others:
            chosen = random.sample(others, min(len(others), MAX_PEERS_PER_MESSAGE))
            self._enqueue(peer, encode_peers(chosen))
        if peer.verified_address:
            self._pass_on(peer)
        elif peer.address:
            self._start_probe(peer.peer_id, peer.address)

    def _pass_on(self, peer: Peer) -> None:
        """Tell the other peers the verified address of `peer`."""
        news = encode_peers([peer.verified_address])
        for other in self._peers.values():
            if other is not peer:
                self._enqueue(other, news)

    # ---- probing the addresses inbound peers advertise ---------------------------------------

    def _start_probe(self, pid: PeerId, address: str) -> None:
        if (
            address in self._probing
            or address.encode() in self._probe_failed
            or len(self._probing) >= MAX_PROBES
        ):
            return
        self._probing.add(address)
        self._track(asyncio.create_task(self._probe(pid, address), name=f"network.probe {pid}"))

    async def _probe(self, pid: PeerId, address: str) -> None:
        """Dial `address` on PROBE_PATH: a complete handshake with `pid` verifies the address
        (the listener answers, and does not admit us); then it is learned and passed on."""
        assert self._session is not None
        self._count("address_probes")
        addr = parse_multiaddr(address)
        try:
            try:
                async with asyncio.timeout(self._cfg.handshake_timeout):
                    ws = await self._session.ws_connect(
                        addr.url.removesuffix("/p2p") + PROBE_PATH,
                        max_msg_size=MAX_HANDSHAKE_FRAME + 64,
                        timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
                    )
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                raise _HandshakeError(f"cannot connect: {exc or 'timeout'}") from None
            try:
                await self._handshake(ws, Direction.OUTBOUND, addr)
            finally:
                await self._close_ws(ws, "probe done")
        except _HandshakeError as exc:
            self._probe_failed.add(address.encode())
            log.debug("Address %s advertised by %s does not check out: %s", address, pid, exc)
            return
        finally:
            self._probing.discard(address)
        peer = self._peers.get(pid)
        if peer is None or peer.address != address:
            return
        peer.verified_address = address
        self._learn(addr)
        self._count("addresses_verified")
        if self._cfg.peer_exchange:
            self._pass_on(peer)

    def _on_handshake_failed(
        self,
        exc: _HandshakeError,
        direction: Direction,
        dialed: Multiaddr | None,
        remote_ip: str | None,
        ready: asyncio.Future[PeerId] | None,
    ) -> None:
        who = exc.peer_id or (str(dialed) if dialed else remote_ip or "?")
        log.info("Rejected %s connection %s: %s", direction.value, who, exc.reason)
        self._count("handshakes_failed")
        if exc.is_self and dialed is not None and self._addrs.pop(str(dialed), None) is not None:
            self._changed()
        if ready is not None and not ready.done():
            ready.set_exception(NetworkError(f"handshake with {who} failed: {exc.reason}"))

    async def _read_loop(self, ws: _Socket, peer: Peer) -> str:
        while peer.close_reason is None:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                peer.in_handler = True
                try:
                    await self._on_frame(peer, bytes(msg.data))
                finally:
                    peer.in_handler = False
            elif msg.type is WSMsgType.CLOSE:
                return f"closed by remote: {msg.extra or msg.data}"
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                return "connection closed"
            elif msg.type is WSMsgType.ERROR:
                err = msg.data
                if (
                    isinstance(err, aiohttp.WebSocketError)
                    and err.code == WSCloseCode.MESSAGE_TOO_BIG
                ):
                    self._ban(peer.peer_id, "oversized frame", peer)
                return f"connection error: {err}"
            else:
                self._ban(peer.peer_id, f"unexpected {msg.type.name.lower()} frame", peer)
        return peer.close_reason

    async def _writer(self, peer: Peer, ws: _Socket) -> None:
        try:
            while True:
                data = await peer.queue.get()
                await ws.send_bytes(data)
        except Exception as exc:  # the connection boundary: any write failure ends the peer
            self._request_close(peer, f"write failed: {exc or type(exc).__name__}")

    def _request_close(self, peer: Peer, reason: str) -> None:
        """Ask the peer's connection task to end: at once if it waits on the socket, after the
        handler returns if it is in one."""
        if peer.close_reason is not None:
            return
        peer.close_reason = reason
        task = peer.task
        if task is not None and task is not asyncio.current_task() and not peer.in_handler:
            task.cancel()

    async def _teardown(self, peer: Peer, ws: _Socket, reason: str) -> None:
        reason = peer.close_reason or reason
        try:
            if peer.writer_task is not None:
                peer.writer_task.cancel()
                await asyncio.wait({peer.writer_task})
            for fut, _ in peer.pending.values():
                if not fut.done():
                    fut.set_exception(NetworkError(f"peer disconnected: {reason}"))
            peer.pending.clear()
            pid = peer.peer_id
            if self._peers.get(pid) is peer:
                del self._peers[pid]
                # a ban was logged when it was imposed: one line per misbehaviour
                level = logging.DEBUG if reason.startswith("banned: ") else logging.INFO
                log.log(level, "Disconnected from %s: %s", pid, reason)
                try:
                    self._handler.on_peer_disconnected(pid)
                except Exception:
                    log.exception("Network handler failed on a disconnection")
                self._dial_wakeup.set()
                self._changed()
            await self._close_ws(ws, reason)
        finally:
            self._count("connections_closed")

    async def _close_ws(self, ws: _Socket, reason: str) -> None:
        if ws.closed:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await ws.close(code=WSCloseCode.OK, message=reason.encode()[:120])
        except Exception as exc:  # the connection boundary: a failed close is still closed
            log.debug("Closing a connection failed: %s", exc)

    # ---- inbound frames -----------------------------------------------------------------------

    async def _on_frame(self, peer: Peer, data: bytes) -> None:
        if not data:
            self._ban(peer.peer_id, "empty frame", peer)
            return
        kind, payload = data[0], data[1:]
        name = KIND_NAMES.get(kind, str(kind))
        if kind != BLOCK_RESPONSE and len(data) > MAX_FRAME_BYTES:
            self._ban(peer.peer_id, f"oversized {name} frame", peer)
            return
        try:
            if kind in GOSSIP_KINDS:
                await self._on_gossip(peer, kind, data)
            elif kind == STATUS:
                peer.status = Status.decode(payload)
                self._call_status(peer)
            elif kind == BLOCK_REQUEST:
                self._on_block_request(peer, *decode_block_request(payload))
            elif kind == BLOCK_RESPONSE:
                self._on_block_response(peer, *decode_block_response(payload))
            elif kind == PEERS:
                self._on_peers(decode_peers(payload))
            elif kind == PING:
                self._enqueue(peer, encode_ping(PONG, decode_ping(payload)))
            elif kind == PONG:
                decode_ping(payload)
            else:
                self._ban(peer.peer_id, f"unexpected {name} frame", peer)
        except CodecError as exc:
            self._ban(peer.peer_id, f"undecodable {name} frame: {exc}", peer)

    async def _on_gossip(self, peer: Peer, kind: int, data: bytes) -> None:
        try:
            await self._process_gossip(peer, kind, data)
        finally:  # after the handler and the relays: a waiter sees the message's whole effect
            self._count("gossip_received")

    async def _process_gossip(self, peer: Peer, kind: int, data: bytes) -> None:
        digest = blake2_256(data)
        peer.known.add(digest)
        if not self._seen.add(digest):
            self._count("gossip_duplicates")
            return
        log.debug("Gossip %s from %s (%d bytes)", KIND_NAMES[kind], peer.peer_id, len(data))
        try:
            verdict = await self._handler.on_gossip(peer.peer_id, kind, data[1:])
        except Exception:  # the node's bug must not kill the connection
            log.exception("Network handler failed on a %s message", KIND_NAMES[kind])
            return
        if verdict is Verdict.ACCEPT:
            self._relay(data, digest, peer.peer_id)
        elif verdict is Verdict.INVALID:
            self._ban(peer.peer_id, f"invalid {KIND_NAMES[kind]} message", peer)

    def _call_status(self, peer: Peer) -> None:
        if self._peers.get(peer.peer_id) is not peer:
            return
        try:
            self._handler.on_peer_status(peer.peer_id, peer.info())
        except Exception:
            log.exception("Network handler failed on a peer status")
        self._changed()

    def _on_block_request(self, peer: Peer, request_id: int, from_number: int, count: int) -> None:
        if not peer.request_bucket.take():
            self._count("requests_rate_limited")
            self._enqueue(peer, encode_block_response(request_id, []))
            if not peer.abuse_bucket.take():
                self._ban(peer.peer_id, "too many block requests", peer)
            return
        count = min(count, MAX_BLOCKS_PER_REQUEST)
        items: list[bytes] = []
        if count > 0:
            try:
                items = self._handler.on_block_request(peer.peer_id, from_number, count)
            except Exception:
                log.exception("Network handler failed on a block request")
        kept = truncate_response(items, count)
        if len(kept) < min(len(items), count):
            self._count("responses_truncated")
        self._enqueue(peer, encode_block_response(request_id, kept))

    def _on_block_response(self, peer: Peer, request_id: int, items: list[bytes]) -> None:
        entry = peer.pending.pop(request_id, None)
        if entry is None:
            log.debug("Unexpected block response %d from %s", request_id, peer.peer_id)
            return
        fut, count = entry
        if len(items) > count:
            if not fut.done():
                fut.set_exception(NetworkError(f"{peer.peer_id} answered more than asked"))
            self._ban(peer.peer_id, "block response larger than the request", peer)
        elif not fut.done():
            fut.set_result(items)

    def _on_peers(self, addresses: list[str]) -> None:
        if not self._cfg.peer_exchange:
            return
        for text in addresses:
            try:
                addr = parse_multiaddr(text)
            except PeerIdError:
                continue
            if addr.peer_id is not None and addr.peer_id != self.local_peer_id:
                self._learn(addr)
        self._dial_wakeup.set()

    # ---- gossip, bans ------------------------------------------------------------------------

    @staticmethod
    def _gossip_frame(kind: int, payload: bytes) -> bytes:
        if kind not in GOSSIP_KINDS:
            raise ValueError(f"{kind} is not a gossip kind")
        data = frame(kind, payload)
        if len(data) > MAX_FRAME_BYTES:
            raise ValueError(f"gossip message of {len(data)} bytes exceeds the frame cap")
        return data

    def _relay(self, data: bytes, digest: bytes, exclude: PeerId | None) -> int:
        sent = 0
        for pid, peer in self._peers.items():
            if pid == exclude or digest in peer.known:
                continue
            if self._enqueue(peer, data):
                peer.known.add(digest)
                sent += 1
            else:
                self._count("gossip_dropped")
        self._count("gossip_sent", sent)
        return sent

    def _enqueue(self, peer: Peer, data: bytes) -> bool:
        if peer.close_reason is not None:
            return False
        if peer.queue.put(data):
            return True
        self._count("frames_dropped")
        return False

    def _ban(self, peer_id: PeerId, reason: str, peer: Peer | None = None) -> None:
        if len(self._banned) >= MAX_BANNED:
            self._expire_bans()
        if len(self._banned) < MAX_BANNED:
            self._banned[peer_id] = time.monotonic() + self._cfg.ban_seconds
        self._count("bans")
        log.info("Banned peer %s: %s", peer_id, reason)
        current = self._peers.get(peer_id)
        for target in {id(p): p for p in (peer, current) if p is not None}.values():
            self._request_close(target, f"banned: {reason}")

    def _expire_bans(self) -> None:
        now = time.monotonic()
        expired = [pid for pid, until in self._banned.items() if until <= now]
        for pid in expired:
            del self._banned[pid]
        if expired:
            self._changed()

    # ---- dialing, maintenance -----------------------------------------------------------------

    def _learn(self, addr: Multiaddr, *, is_bootnode: bool = False) -> None:
        key = str(addr)
        if key in self._addrs:
            return
        learned = sum(1 for s in self._addrs.values() if not s.is_bootnode)
        if not is_bootnode and learned >= MAX_LEARNED_ADDRESSES:
            return
        self._addrs[key] = _AddressState(addr, is_bootnode, addr.peer_id)
        self._changed()

    async def _dial_loop(self) -> None:
        while True:
            self._dial_wakeup.clear()
            self._dial_due()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._cfg.reconnect_interval):
                    await self._dial_wakeup.wait()

    def _dial_due(self) -> None:
        now = time.monotonic()
        dialing = sum(1 for s in self._addrs.values() if s.is_dialing)
        outbound = self._direction_count(Direction.OUTBOUND)
        for state in list(self._addrs.values()):
            if state.is_dialing or state.next_try > now:
                continue
            pid = state.peer_id
            if pid is not None and (
                pid == self.local_peer_id
                or pid in self._peers
                or pid in self._dialing_ids
                or self.is_banned(pid)
            ):
                continue
            if outbound + dialing >= self._cfg.slots.out_peers:
                return
            dialing += 1
            self._start_dial(state)

    def _start_dial(self, state: _AddressState) -> None:
        state.is_dialing = True
        if state.peer_id is not None:
            self._dialing_ids.add(state.peer_id)
        ready: asyncio.Future[PeerId] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(lambda fut: self._dial_done(state, fut))
        task = asyncio.create_task(
            self._outbound(state.addr, ready), name=f"network.dial {state.addr}"
        )
        self._track(task)

    def _dial_done(self, state: _AddressState, fut: asyncio.Future[PeerId]) -> None:
        state.is_dialing = False
        if state.peer_id is not None:
            self._dialing_ids.discard(state.peer_id)
        now = time.monotonic()
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            state.fails += 1
            backoff = self._cfg.reconnect_interval * 2 ** min(state.fails - 1, 5)
            state.next_try = now + min(backoff, MAX_BACKOFF_S)
            level = logging.INFO if state.is_bootnode and state.fails == 1 else logging.DEBUG
            log.log(level, "Dialing %s failed: %s", state.addr, exc)
            forget = not state.is_bootnode and state.fails >= MAX_DIAL_FAILURES
            if forget and self._addrs.pop(str(state.addr), None) is not None:
                self._changed()
        else:
            state.fails = 0
            state.peer_id = fut.result()
            state.next_try = now + self._cfg.reconnect_interval

    async def _maintenance_loop(self) -> None:
        tick = max(0.05, min(0.5, self._cfg.slow_peer_seconds / 4))
        last_exchange = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                since = peer.queue.full_since
                if since is not None and now - since > self._cfg.slow_peer_seconds:
                    self._count("slow_peers")
                    self._request_close(
                        peer, f"slow peer: outbound queue full for {now - since:.1f} s"
                    )
            self._expire_bans()
            if self._cfg.peer_exchange and now - last_exchange >= self._cfg.peer_exchange_interval:
                last_exchange = now
                self._exchange_peers()

    def _exchange_peers(self) -> None:
        known = [p.verified_address for p in self._peers.values() if p.verified_address]
        for peer in self._peers.values():
            others = [a for a in known if a != peer.verified_address]
            if others:
                chosen = random.sample(others, min(len(others), MAX_PEERS_PER_MESSAGE))
                self._enqueue(peer, encode_peers(chosen))

    async def _status_loop(self) -> None:
        while True:
            await self._status_changed.wait()
            self._status_changed.clear()
            status = self._pending_status
            if status is not None and status != self._sent_status:
                self._sent_status = status
                data = frame(STATUS, status.encode())
                for peer in self._peers.values():
                    self._enqueue(peer, data)
            await asyncio.sleep(STATUS_COALESCE_S)


def _consume(fut: asyncio.Future[PeerId]) -> None:
    if not fut.cancelled():
        fut.exception()
