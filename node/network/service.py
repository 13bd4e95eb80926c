"""The p2p network service: authenticated WebSocket connections, gossip with flooding and
de-duplication, block requests, peer exchange, bans.

It knows nothing about what blocks or votes mean; the node plugs in a `NetworkHandler` and gives
and takes opaque payloads. Each connection runs in one task that does the handshake and then
reads frames sequentially (the handler's awaited work runs there, so a peer cannot fan out
work); one writer task per peer drains its bounded outbound queue.

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
MAX_HANDSHAKE_FRAME = 4_096
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
class NetworkConfig:
    node_key: bytes  # ed25519 seed (32)
    genesis_hash: bytes
    status_provider: Callable[[], Status]  # our best/finalized, read at each handshake
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: ephemeral, `start()` returns the bound port
    roles: int = ROLE_FULL
    bootnodes: Sequence[str] = ()
    public_addresses: Sequence[str] = ()  # advertised instead of the listen address if given
    max_peers: int = 32
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
        self, reason: str, *, peer_id: PeerId | None = None, is_self: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.peer_id = peer_id
        self.is_self = is_self


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
        self._handshaking: set[asyncio.Task[None]] = set()
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
        if self._is_stopping or len(self._handshaking) >= MAX_PENDING_HANDSHAKES:
            return web.Response(status=503, text="busy")
        ws = web.WebSocketResponse(
            max_msg_size=_WS_MAX_MSG,
            heartbeat=self._cfg.heartbeat,
            timeout=CLOSE_TIMEOUT_S,
            compress=False,
        )
        await ws.prepare(request)
        task = asyncio.create_task(
            self._run_connection(ws, Direction.INBOUND, None, request.remote, None),
            name=f"network.conn in {request.remote}",
        )
        self._track(task)
        await asyncio.wait({task})
        return ws

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
        remote_ip: str | None,
        ready: asyncio.Future[PeerId] | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handshaking.add(task)
        peer: Peer | None = None
        reason = "shutting down"
        try:
            try:
                remote, pid, auth = await self._handshake(ws, direction, dialed)
                if direction is Direction.OUTBOUND:
                    assert dialed is not None
                    address = str(dialed.with_peer_id(pid))
                else:
                    address = self._inbound_address(remote, pid, remote_ip)
                peer, replaced = self._admit(pid, remote, direction, address)
            except _HandshakeError as exc:
                self._on_handshake_failed(exc, direction, dialed, remote_ip, ready)
                await self._close_ws(ws, exc.reason)
                return
            finally:
                self._handshaking.discard(task)
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
        self, pid: PeerId, remote: Hello, direction: Direction, address: str
    ) -> tuple[Peer, Peer | None]:
        """Register the peer, or raise _HandshakeError (banned, duplicate, full)."""
        if self._is_stopping:
            raise _HandshakeError("shutting down", peer_id=pid)
        if self.is_banned(pid):
            self._count("handshakes_refused_banned")
            raise _HandshakeError("banned", peer_id=pid)
        existing = self._peers.get(pid)
        if existing is not None:
            if not self._prefers_new(pid, existing.direction, direction):
                raise _HandshakeError("duplicate connection", peer_id=pid)
        elif len(self._peers) >= self._cfg.max_peers:
            raise _HandshakeError("too many peers", peer_id=pid)
        cfg = self._cfg
        peer = Peer(
            peer_id=pid,
            roles=remote.roles,
            status=remote.status,
            address=address,
            direction=direction,
            queue=FrameQueue(cfg.max_queue_frames, cfg.max_queue_bytes),
            request_slots=asyncio.Semaphore(cfg.max_requests_per_peer),
            request_bucket=TokenBucket(cfg.request_rate, cfg.request_burst),
            abuse_bucket=TokenBucket(cfg.request_rate / 10, cfg.request_burst / 2),
            known=LruSet(cfg.known_per_peer),
        )
        self._peers[pid] = peer
        if existing is not None:
            self._request_close(existing, "replaced by a newer connection")
        return peer, existing

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
        if peer.address:
            self._learn(parse_multiaddr(peer.address))
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
        others = [p for p in self._peers.values() if p is not peer and p.address]
        if others:
            chosen = random.sample(others, min(len(others), MAX_PEERS_PER_MESSAGE))
            self._enqueue(peer, encode_peers([p.address for p in chosen]))
        if peer.address:
            news = encode_peers([peer.address])
            for other in self._peers.values():
                if other is not peer:
                    self._enqueue(other, news)

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
                log.info("Disconnected from %s: %s", pid, reason)
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
            if len(self._peers) + dialing >= self._cfg.max_peers:
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
        known = [p.address for p in self._peers.values() if p.address]
        for peer in self._peers.values():
            others = [a for a in known if a != peer.address]
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
