"""JSON-RPC 2.0 transport: HTTP POST and WebSocket on one port, with subscriptions.

The server knows nothing about blocks. The node registers handlers:

    server = RpcServer()
    server.method("system_health", lambda params: {"peers": 0, ...})
    server.subscription(
        "chain_subscribeNewHeads", "chain_unsubscribeNewHeads", "chain_newHead", on_subscribe,
        aliases=[("chain_subscribeNewHead", "chain_unsubscribeNewHead")],
    )
    port = await server.start("127.0.0.1", 9944)

Rules the clients depend on (shared/COMPAT.md sections 2 and 4):
* JSON-RPC errors travel with HTTP 200; substrate-interface raises on any other status.
* `params` missing, `null` and `[]` are the same; named (object) params are refused with -32602.
* A subscription's id response is written before any notification the subscribe handler queued.
* Notifications are `{"jsonrpc":"2.0","method":<name>,"params":{"subscription":id,"result":r}}`.

Some methods belong to the WebSocket they arrive on (the new JSON-RPC spec's `chainHead_v1_*`
operations name a follow subscription of that connection): `connection_method` serves them with
a `Caller`, which gives the connection's `Session` and `after_response`, to run code (start an
operation whose events follow) once the response is queued. Over HTTP they answer -32601.

Browsers: a request with an `Origin` header (cross-origin fetches, their CORS preflight, every
WebSocket handshake of a page) is served only when `cors` (node/rpc/cors.py, `--rpc-cors`)
allows the origin; else it gets 403. Allowed ones get `Access-Control-Allow-Origin`, and a
preflight `OPTIONS` gets 200 with the allowed method and header.

Memory: what a WebSocket has not sent yet is counted in bytes (answers and notifications queued,
and the frame being written). A connection whose unsent bytes would pass `send_queue_bytes`
(16 MiB; a single message larger than that is still sent when nothing else waits) or whose queue
would pass `send_queue_limit` messages is closed at once. All connections together hold at most
`send_budget_bytes` (128 MiB): a message that would pass it closes the connection with the most
unsent bytes (possibly the one sending), until the message fits. Beyond these counts, the socket's
transport buffers at most one message and aiohttp's 256 KiB write chunk.

`Subscription.notify` and the registration methods must be called from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from chain.codec import CodecError
from node.errors import StateDiscarded
from node.httpserve import start_app
from node.rpc.cors import CorsPolicy

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "TOO_MANY_SUBSCRIPTIONS",
    "Caller",
    "RpcError",
    "RpcServer",
    "Session",
    "Subscription",
]

log = logging.getLogger(__name__)

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
TOO_MANY_SUBSCRIPTIONS: Final = -32000

MIB: Final = 1024 * 1024
MAX_IN_FLIGHT_PER_CONNECTION: Final = 64
"""Requests of one WebSocket handled concurrently; the socket is not read while this many run."""
CLOSE_TIMEOUT_S: Final = 2.0
"""How long a WebSocket close handshake may take before the TCP connection is aborted."""
SHUTDOWN_TIMEOUT_S: Final = 5.0
MAX_LOGGED_ORIGIN: Final = 100
CORS_MAX_AGE_S: Final = 3600


class RpcError(Exception):
    """A JSON-RPC error object; handlers raise it to answer `{"code", "message"[, "data"]}`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.code} {self.message}" + ("" if self.data is None else f": {self.data}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    @classmethod
    def parse_error(cls, data: Any = None) -> RpcError:
        return cls(PARSE_ERROR, "Parse error", data)

    @classmethod
    def invalid_request(cls, data: Any = None) -> RpcError:
        return cls(INVALID_REQUEST, "Invalid request", data)

    @classmethod
    def method_not_found(cls, method: str) -> RpcError:
        return cls(METHOD_NOT_FOUND, "Method not found", method)

    @classmethod
    def invalid_params(cls, data: Any = None) -> RpcError:
        return cls(INVALID_PARAMS, "Invalid params", data)

    @classmethod
    def internal_error(cls, data: Any = None) -> RpcError:
        return cls(INTERNAL_ERROR, "Internal error", data)

    @classmethod
    def too_many_subscriptions(cls) -> RpcError:
        return cls(TOO_MANY_SUBSCRIPTIONS, "Too many subscriptions on this connection")

    @classmethod
    def subscriptions_need_websocket(cls) -> RpcError:
        return cls(METHOD_NOT_FOUND, "Subscriptions are not available on HTTP; use a WebSocket")

    @classmethod
    def needs_websocket(cls, method: str) -> RpcError:
        return cls(METHOD_NOT_FOUND, f"{method} belongs to a WebSocket connection; use one")


MethodHandler = Callable[[list[Any]], Any]
SubscribeHandler = Callable[[list[Any], "Subscription"], Any]
ConnectionHandler = Callable[[list[Any], "Caller"], Any]
UnsubscribeAnswer = Callable[[bool], Any]
"""What an unsubscribe answers, given whether the subscription was found (and closed); it may
raise RpcError. Legacy methods answer the boolean; the new spec's answer null."""


def _answer_found(found: bool) -> bool:
    return found


AfterResponse = Callable[[], None]
_Out = bytes | None | Coroutine[Any, Any, bytes | None]

_MISSING: Final = object()
_ID_TYPES: Final = (str, int, float)  # type() checks: bool is refused as an id
STATE_DISCARDED: Final = 4003  # Substrate's answer for a pruned block's state
_INTERNAL: Final = RpcError.internal_error()
_PLAIN_RESULTS: Final = frozenset({str, int, bool, float, list, dict, type(None)})
"""Result types that are never awaitable (exact types: a subclass may be); answered at once
without asking `inspect.isawaitable`, which is slow for them."""


class Subscription:
    """One client subscription on one WebSocket.

    `notify` queues a notification without blocking. `on_close` callbacks run exactly once, when
    the client unsubscribes, the subscribe handler refuses, or the connection closes; a callback
    added after that runs at once.
    """

    __slots__ = (
        "_after",
        "_callbacks",
        "_conn",
        "_is_ending",
        "_kind",
        "_pending",
        "_prefix",
        "closed",
        "id",
    )

    def __init__(self, sub_id: str, kind: _SubKind, conn: _Connection) -> None:
        self.id = sub_id
        self.closed = False
        self._kind = kind
        self._conn = conn
        self._callbacks: list[Callable[[], None]] = []
        # Notifications queued before the id response is written wait here (None once it is).
        self._pending: list[bytes] | None = []
        self._after: list[AfterResponse] = []
        self._is_ending = False
        self._prefix = b"".join(
            (
                b'{"jsonrpc":"2.0","method":',
                orjson.dumps(kind.notification),
                b',"params":{"subscription":',
                orjson.dumps(sub_id),
                b',"result":',
            )
        )

    @property
    def notification(self) -> str:
        return self._kind.notification

    @property
    def session(self) -> Session:
        """The connection this subscription lives on."""
        return self._conn.session

    def notify(self, result: Any) -> None:
        """Queue `result` for the client; a no-op once the subscription is closed."""
        if self.closed:
            return
        try:
            body = _dumps(result)
        except (TypeError, ValueError):
            log.exception("cannot encode a %s notification; dropped", self._kind.notification)
            return
        message = self._prefix + body + b"}}"
        pending = self._pending
        if pending is None:
            self._conn.send(message)
        elif len(pending) >= self._conn.send_queue_limit:
            self._conn.abort("too many notifications before the subscription was answered")
        elif self._conn.admit(len(message)):  # counted as unsent from now on
            pending.append(message)

    def on_close(self, cb: Callable[[], None]) -> None:
        if self.closed:
            _run_callback(cb)
        else:
            self._callbacks.append(cb)

    def after_response(self, cb: AfterResponse) -> None:
        """Run `cb` once the subscription id response is queued (at once if it already is):
        work whose notifications may be many starts there, after the held-back ones."""
        if self._pending is None:
            _run_callback(cb)
        else:
            self._after.append(cb)

    def close(self) -> None:
        """End the subscription from the server side, after a last notification: what was
        notified still goes out (after the id response), on_close callbacks run, and the
        client's unsubscribe no longer finds it."""
        if self._pending is None:
            self._close()
        else:
            self._is_ending = True

    async def drain(self) -> None:
        """Wait until the connection's send queue is short enough to queue a burst more."""
        await self._conn.wait_room()

    def _activate(self) -> None:
        """The id response has been queued: release the notifications held back until now."""
        pending, self._pending = self._pending, None
        if pending and not self.closed:
            for message in pending:
                self._conn.enqueue(message)
        after, self._after = self._after, []
        for cb in after:
            if not self.closed:
                _run_callback(cb)
        if self._is_ending:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._pending:
            self._conn.release(sum(len(m) for m in self._pending))
        self._pending = None
        self._after = []
        self._conn.forget(self)
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            _run_callback(cb)


def _run_callback(cb: Callable[[], None]) -> None:
    try:
        cb()
    except Exception:
        log.exception("subscription callback failed")


class Session:
    """One WebSocket connection as handlers see it: its subscriptions, a place for per-connection
    state (`values`, keyed by the module that owns each entry) and close callbacks."""

    __slots__ = ("_callbacks", "_conn", "_is_done", "values")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._callbacks: list[Callable[[], None]] = []
        self._is_done = False
        self.values: dict[str, Any] = {}

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def subscription(self, sub_id: Any, notification: str) -> Subscription | None:
        """This connection's open subscription `sub_id` of the kind that sends `notification`."""
        sub = self._conn.subs.get(sub_id) if isinstance(sub_id, str) else None
        if sub is None or sub.closed or sub.notification != notification:
            return None
        return sub

    def subscriptions(self, notification: str) -> list[Subscription]:
        return [s for s in self._conn.subs.values() if s.notification == notification]

    def on_close(self, cb: Callable[[], None]) -> None:
        """Run `cb` once, when the connection closes (at once if it has)."""
        if self._is_done:
            _run_callback(cb)
        else:
            self._callbacks.append(cb)

    def _close(self) -> None:
        self._is_done = True
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            _run_callback(cb)


@dataclass(frozen=True, slots=True, eq=False)
class Caller:
    """Who sent a connection method's request: the `session`, and `after_response` to run code
    once the response is queued (so that notifications it sends come after the response)."""

    session: Session
    _after: list[AfterResponse]

    def after_response(self, cb: AfterResponse) -> None:
        self._after.append(cb)


@dataclass(frozen=True, slots=True, eq=False)
class _SubKind:
    notification: str
    handler: SubscribeHandler
    unsubscribed: UnsubscribeAnswer = _answer_found


_METHOD: Final = 0
_SUBSCRIBE: Final = 1
_UNSUBSCRIBE: Final = 2
_CONNECTION_METHOD: Final = 3


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: int
    handler: MethodHandler | None = None
    sub_kind: _SubKind | None = None
    conn_handler: ConnectionHandler | None = None


class _Connection:
    """One WebSocket: an ordered send queue drained by a writer task, and its subscriptions.

    `queued_bytes`: what it holds unsent (its queue, notifications waiting for their
    subscription's id response, and the frame being written), also added to the server's
    total."""

    def __init__(self, server: RpcServer, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.server = server
        self.ws = ws
        self.request = request
        self.peer = request.remote or "?"
        self.send_queue_limit = server.send_queue_limit
        self.queued_bytes = 0
        self.subs: dict[str, Subscription] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT_PER_CONNECTION)
        self.closed = False
        self.done = asyncio.Event()
        self.session = Session(self)
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._low_water = max(1, self.send_queue_limit // 4)
        self._writer = asyncio.create_task(self._write_loop(), name="rpc.ws.writer")

    def send(self, message: bytes) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.send_queue_limit:
            self.abort(f"send queue over {self.send_queue_limit} messages")
            return
        if self.admit(len(message)):
            self.enqueue(message)

    def enqueue(self, message: bytes) -> None:
        """Queue a message already counted by `admit`."""
        if self.closed:
            return
        queue = self._queue
        queue.append(message)
        if len(queue) == 1:
            self._wake.set()

    def admit(self, size: int) -> bool:
        """Count `size` more unsent bytes, or close this connection (and False) when that passes
        its limit; past the server's budget, close the connections holding the most first."""
        if self.closed:
            return False
        if self.queued_bytes and self.queued_bytes + size > self.server.send_queue_bytes:
            self.abort(f"over {self.server.send_queue_bytes:,} bytes unsent")
            return False
        if not self.server._make_room(self, size):
            return False
        self.queued_bytes += size
        self.server._queued_bytes += size
        return True

    def release(self, size: int) -> None:
        """`size` bytes counted by `admit` left the queue (written or discarded)."""
        if self.closed:
            return  # all of it was released when it closed
        self.queued_bytes -= size
        self.server._queued_bytes -= size

    def _discard_queue(self) -> None:
        """Closed: nothing of it will be sent; give its bytes back to the server's budget."""
        self._queue.clear()
        self.server._queued_bytes -= self.queued_bytes
        self.queued_bytes = 0
        self._room.set()

    def forget(self, sub: Subscription) -> None:
        if self.subs.get(sub.id) is sub:
            del self.subs[sub.id]
        self.server._sub_ids.discard(sub.id)

    async def wait_room(self) -> None:
        """Return once at most a quarter of the send queue is used (or the connection closed)."""
        while not self.closed and len(self._queue) > self._low_water:
            self._room.clear()
            await self._room.wait()

    async def _write_loop(self) -> None:
        queue, wake, ws, room = self._queue, self._wake, self.ws, self._room
        try:
            while True:
                if not queue:
                    wake.clear()
                    await wake.wait()
                    continue
                message = queue[0]  # counted until the transport has taken it
                await ws.send_frame(message, WSMsgType.TEXT)
                if not self.closed:
                    queue.popleft()
                    self.release(len(message))
                if len(queue) <= self._low_water:
                    room.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("WebSocket %s: write failed: %r", self.peer, exc)
            self.closed = True
            self._discard_queue()
        finally:
            room.set()

    def abort(self, reason: str) -> None:
        """Drop a misbehaving peer at once (no close handshake: it may not be reading at all)."""
        if self.closed:
            return
        log.warning("closing WebSocket %s: %s", self.peer, reason)
        self.closed = True
        self._discard_queue()
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        # Subscriptions close from the connection handler's cleanup, not inside this call,
        # which may run in the middle of the node iterating over its subscribers.

    async def close(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close handshake with a deadline; the handler's cleanup then runs."""
        self.closed = True
        self._discard_queue()
        self._writer.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(code=code)
        except (TimeoutError, ConnectionError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def cleanup(self) -> None:
        self.closed = True
        self._discard_queue()
        for sub in list(self.subs.values()):
            sub._close()
        self.session._close()
        self._writer.cancel()
        tasks = [self._writer, *self.tasks]
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        self.done.set()


@dataclass(kw_only=True, eq=False)
class RpcServer:
    """JSON-RPC 2.0 over HTTP POST and WebSocket on one route, `/`."""

    max_body_bytes: int = 15 * 1024 * 1024
    max_subscriptions_per_connection: int = 1024
    max_connections: int = 1000
    max_batch: int = 100
    max_json_depth: int = 64
    send_queue_limit: int = 4096
    send_queue_bytes: int = 16 * MIB
    send_budget_bytes: int = 128 * MIB
    cors: CorsPolicy = field(default_factory=CorsPolicy)  # default: no browser origin
    _methods: dict[str, _Entry] = field(init=False, default_factory=dict)
    _connections: set[_Connection] = field(init=False, default_factory=set)
    _sub_ids: set[str] = field(init=False, default_factory=set)
    _queued_bytes: int = field(init=False, default=0)
    _app: web.Application | None = field(init=False, default=None)
    _runner: web.AppRunner | None = field(init=False, default=None)

    # ---- registration -----------------------------------------------------------------------

    def method(self, name: str, handler: MethodHandler, *, aliases: Sequence[str] = ()) -> None:
        """Serve `handler(params)` (plain or async) under `name` and each alias."""
        entry = _Entry(_METHOD, handler=handler)
        for n in (name, *aliases):
            self._register(n, entry)

    def connection_method(self, name: str, handler: ConnectionHandler) -> None:
        """Serve `handler(params, caller)` (plain or async) on WebSockets only."""
        self._register(name, _Entry(_CONNECTION_METHOD, conn_handler=handler))

    def subscription(
        self,
        subscribe: str,
        unsubscribe: str,
        notification: str,
        handler: SubscribeHandler,
        *,
        aliases: Sequence[tuple[str, str]] = (),
        unsubscribed: UnsubscribeAnswer = _answer_found,
    ) -> None:
        """Serve a subscription: `handler(params, sub)` (plain or async) runs on subscribe.

        The handler may `sub.notify(...)` at once (the id response still goes first) and may raise
        RpcError to refuse. Each (subscribe, unsubscribe) alias pair shares `notification`.
        The unsubscribe method answers `unsubscribed(found)`.
        """
        kind = _SubKind(notification, handler, unsubscribed)
        for sub_name, unsub_name in ((subscribe, unsubscribe), *aliases):
            self._register(sub_name, _Entry(_SUBSCRIBE, sub_kind=kind))
            self._register(unsub_name, _Entry(_UNSUBSCRIBE, sub_kind=kind))

    def _register(self, name: str, entry: _Entry) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"bad RPC method name {name!r}")
        if name in self._methods:
            raise ValueError(f"RPC method {name} is already registered")
        self._methods[name] = entry

    def method_names(self) -> list[str]:
        return sorted(self._methods)

    @property
    def queued_bytes(self) -> int:
        """What all WebSockets together hold unsent."""
        return self._queued_bytes

    def _make_room(self, conn: _Connection, size: int) -> bool:
        """Keep the unsent bytes of all connections within `send_budget_bytes` when `conn` adds
        `size`: close the connections holding the most until it fits. False when `conn` itself
        had to go."""
        while self._queued_bytes + size > self.send_budget_bytes:
            open_conns = [c for c in self._connections if not c.closed]
            victim = max(open_conns, key=lambda c: c.queued_bytes + (size if c is conn else 0))
            victim.abort(
                f"all WebSockets together over {self.send_budget_bytes:,} bytes unsent; "
                f"this one holds the most ({victim.queued_bytes:,})"
            )
            if victim is conn:
                return False
        return True

    # ---- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (created once). Run it with `access_log=None`."""
        if self._app is None:
            # No middleware: aiohttp wraps every request in two more coroutines when an app has
            # one. The origin check runs in each handler, and the catch-all routes answer what
            # the router would (405 on "/", 404 elsewhere) with the same check.
            app = web.Application(client_max_size=self.max_body_bytes)
            app.router.add_post("/", self._handle_post)
            app.router.add_get("/", self._handle_get)  # and HEAD
            app.router.add_route("OPTIONS", "/", self._handle_options)
            app.router.add_route("*", "/", self._handle_other_method)
            app.router.add_route("*", "/{path:.*}", self._handle_other_path)
            app.on_shutdown.append(self._on_shutdown)
            self._app = app
        return self._app

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a free port); returns the bound port."""
        if self._runner is not None:
            raise RuntimeError("RPC server already started")
        self._runner, bound = await start_app(
            self.app(), host, port, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S
        )
        log.info(
            "JSON-RPC listening on %s:%d (HTTP and WebSocket; browsers: %s)",
            host,
            bound,
            self.cors.describe(),
        )
        return bound

    async def stop(self) -> None:
        """Close every WebSocket (and so every subscription), then the listener."""
        runner, self._runner = self._runner, None
        await self._close_connections()
        if runner is not None:
            await runner.cleanup()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self._close_connections()

    async def _close_connections(self) -> None:
        conns = list(self._connections)
        if not conns:
            return
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        waits = [asyncio.ensure_future(c.done.wait()) for c in conns]
        _, not_done = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S * 2)
        for fut in not_done:
            fut.cancel()
        for c in conns:  # handlers that did not get to their cleanup
            if not c.done.is_set():
                await c.cleanup()

    # ---- HTTP -------------------------------------------------------------------------------

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None:
            return await _with_origin(self.cors, request, origin, self._serve_post)
        # `_serve_post` inline: one coroutine less per request
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_bytes, actual_size=length)
        out = self._dispatch(await request.read(), None, [])
        if out is not None and not isinstance(out, bytes):
            out = await out
        return web.Response(body=out or b"", content_type="application/json")

    async def _serve_post(self, request: web.Request) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_bytes, actual_size=length)
        body = await request.read()  # bounded by client_max_size for chunked bodies
        out = self._dispatch(body, None, [])  # `_handle_post` repeats these lines
        if out is not None and not isinstance(out, bytes):
            out = await out
        return web.Response(body=out or b"", content_type="application/json")

    async def _origin_checked(
        self,
        request: web.Request,
        serve: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """`serve` the request, behind the CORS check when it comes with an Origin (the POST
        handler inlines this: it is the hot path)."""
        origin = request.headers.get("Origin")
        if origin is not None:
            return await _with_origin(self.cors, request, origin, serve)
        return await serve(request)

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        return await self._origin_checked(request, self._serve_get)

    async def _handle_options(self, request: web.Request) -> web.StreamResponse:
        return await self._origin_checked(request, _serve_options)

    async def _handle_other_method(self, request: web.Request) -> web.StreamResponse:
        return await self._origin_checked(request, _method_not_allowed)

    async def _handle_other_path(self, request: web.Request) -> web.StreamResponse:
        return await self._origin_checked(request, _not_found)

    async def _serve_get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPMethodNotAllowed(
                "GET",
                ["POST"],
                text="JSON-RPC: use POST, or GET with a WebSocket upgrade\n",
            )
        return await self._handle_ws(request)

    # ---- WebSocket --------------------------------------------------------------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if len(self._connections) >= self.max_connections:
            log.warning(
                "refusing WebSocket from %s: %d connections open",
                request.remote,
                self.max_connections,
            )
            raise web.HTTPServiceUnavailable(text="Too many connections\n")
        ws = web.WebSocketResponse(
            max_msg_size=self.max_body_bytes, compress=False, decode_text=False
        )
        await ws.prepare(request)
        conn = _Connection(self, ws, request)
        self._connections.add(conn)
        try:
            while not conn.closed:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    data = msg.data
                    await self._on_ws_message(
                        conn, data if isinstance(data, bytes) else data.encode()
                    )
                elif msg.type is WSMsgType.ERROR:
                    code = getattr(msg.data, "code", ws.close_code)
                    log.info("WebSocket %s closed: %s (code %s)", conn.peer, msg.data, code)
                    break
                else:  # CLOSE, CLOSING, CLOSED
                    break
        finally:
            self._connections.discard(conn)
            await conn.cleanup()
            if not ws.closed:
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await ws.close()
                except (TimeoutError, ConnectionError):
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
        return ws

    async def _on_ws_message(self, conn: _Connection, data: bytes) -> None:
        after: list[AfterResponse] = []
        out = self._dispatch(data, conn, after)
        if out is None or isinstance(out, bytes):
            if out is not None:
                conn.send(out)
            _run_after(after)
            return
        try:
            await conn.slots.acquire()
        except BaseException:
            out.close()
            raise
        task = asyncio.create_task(self._ws_finish(conn, out, after), name="rpc.ws.request")
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _ws_finish(
        self,
        conn: _Connection,
        pending: Coroutine[Any, Any, bytes | None],
        after: list[AfterResponse],
    ) -> None:
        try:
            out = await pending
            if out is not None:
                conn.send(out)
            _run_after(after)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WebSocket %s: request failed", conn.peer)
        finally:
            conn.slots.release()

    # ---- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, data: bytes, conn: _Connection | None, after: list[AfterResponse]) -> _Out:
        """Answer one HTTP body or WebSocket frame: bytes, None (nothing to send) or a coroutine."""
        if _exceeds_depth(data, self.max_json_depth):
            return _error(None, RpcError.parse_error(f"nested deeper than {self.max_json_depth}"))
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return _error(None, RpcError.parse_error())
        if isinstance(obj, list):
            return self._dispatch_batch(obj, conn, after)
        return self._dispatch_one(obj, conn, after)

    def _dispatch_batch(
        self, reqs: list[Any], conn: _Connection | None, after: list[AfterResponse]
    ) -> _Out:
        if not reqs:
            return _error(None, RpcError.invalid_request("empty batch"))
        if len(reqs) > self.max_batch:
            return _error(None, RpcError.invalid_request(f"batch larger than {self.max_batch}"))
        parts = [self._dispatch_one(req, conn, after) for req in reqs]
        if all(p is None or isinstance(p, bytes) for p in parts):
            return _join_batch(parts)
        return self._finish_batch(parts)

    async def _finish_batch(self, parts: list[_Out]) -> bytes | None:
        coros = [p for p in parts if p is not None and not isinstance(p, bytes)]
        results = iter(await asyncio.gather(*coros))
        done = [p if p is None or isinstance(p, bytes) else next(results) for p in parts]
        return _join_batch(done)

    def _dispatch_one(self, req: Any, conn: _Connection | None, after: list[AfterResponse]) -> _Out:
        if not isinstance(req, dict):
            return _error(None, RpcError.invalid_request("a request must be an object"))
        rid = req.get("id", _MISSING)
        is_notification = rid is _MISSING
        if is_notification:
            rid = None
        elif rid is not None and type(rid) not in _ID_TYPES:
            return _error(None, RpcError.invalid_request("id must be a string, a number or null"))
        method = req.get("method")
        if req.get("jsonrpc") != "2.0" or not isinstance(method, str):
            if is_notification:
                return None
            return _error(rid, RpcError.invalid_request('needs "jsonrpc":"2.0" and a method'))
        params = req.get("params")
        if params is None:
            params = []
        elif not isinstance(params, list):
            if is_notification:
                return None
            if isinstance(params, dict):
                return _error(rid, RpcError.invalid_params("params must be an array"))
            return _error(rid, RpcError.invalid_request("params must be an array"))
        entry = self._methods.get(method)
        if entry is None:
            return None if is_notification else _error(rid, RpcError.method_not_found(method))
        if entry.kind == _METHOD:  # `_call` and `_result` inline (most requests come here)
            handler = entry.handler
            assert handler is not None
            try:
                result = handler(params)
            except Exception as exc:
                return None if is_notification else _error(rid, _failure(exc, "method", method))
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                return _await_result(result, method, rid, is_notification)
            if is_notification:
                return None
            try:
                return orjson.dumps({"jsonrpc": "2.0", "result": result, "id": rid})
            except TypeError:  # a big integer, or not JSON
                return _result(rid, result, method)
        if conn is None:
            if is_notification:
                return None
            if entry.kind == _CONNECTION_METHOD:
                return _error(rid, RpcError.needs_websocket(method))
            return _error(rid, RpcError.subscriptions_need_websocket())
        if entry.kind == _CONNECTION_METHOD:
            conn_handler = entry.conn_handler
            assert conn_handler is not None
            caller = Caller(conn.session, after)
            return self._call(
                lambda p: conn_handler(p, caller), method, rid, params, is_notification
            )
        assert entry.sub_kind is not None
        if entry.kind == _SUBSCRIBE:
            if is_notification:  # nobody could learn the id
                return None
            return self._subscribe(entry.sub_kind, method, rid, params, conn, after)
        out = _unsubscribe(entry.sub_kind, rid, params, conn)
        return None if is_notification else out

    def _call(
        self,
        handler: MethodHandler,
        method: str,
        rid: Any,
        params: list[Any],
        is_notification: bool,
    ) -> _Out:
        try:
            result = handler(params)
        except Exception as exc:
            return None if is_notification else _error(rid, _failure(exc, "method", method))
        if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
            return _await_result(result, method, rid, is_notification)
        return None if is_notification else _result(rid, result, method)

    def _subscribe(
        self,
        kind: _SubKind,
        method: str,
        rid: Any,
        params: list[Any],
        conn: _Connection,
        after: list[AfterResponse],
    ) -> _Out:
        if conn.closed:
            return None
        if len(conn.subs) >= self.max_subscriptions_per_connection:
            return _error(rid, RpcError.too_many_subscriptions())
        sub = Subscription(self._new_sub_id(), kind, conn)
        conn.subs[sub.id] = sub
        try:
            started = kind.handler(params, sub)
        except BaseException as exc:
            return _subscription_failed(exc, sub, method, rid)
        if inspect.isawaitable(started):
            return _await_subscribe(started, sub, method, rid, after)
        after.append(sub._activate)
        return _result(rid, sub.id, method)

    def _new_sub_id(self) -> str:
        while True:
            sub_id = secrets.token_hex(8)
            if sub_id not in self._sub_ids:
                self._sub_ids.add(sub_id)
                return sub_id


def _run_after(after: list[AfterResponse]) -> None:
    for cb in after:
        _run_callback(cb)


# ---- browsers (CORS) --------------------------------------------------------------------------


_Serve = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ROOT_METHODS: Final = ("GET", "HEAD", "OPTIONS", "POST")


async def _with_origin(
    policy: CorsPolicy, request: web.Request, origin: str, serve: _Serve
) -> web.StreamResponse:
    """A request with an `Origin` header: refused (403) when the policy does not allow the
    origin; else served, its answer carrying `Access-Control-Allow-Origin`."""
    if not policy.allows(origin, request.host):
        log.info(
            "Refused %s from origin %r (not allowed by --rpc-cors)",
            "a WebSocket" if request.headers.get("Upgrade") else request.method,
            origin[:MAX_LOGGED_ORIGIN],
        )
        return web.Response(status=403, text="Origin not allowed (--rpc-cors)\n")
    try:
        response = await serve(request)
    except web.HTTPException as exc:
        _allow_origin(exc.headers, origin)
        raise
    if not response.prepared:  # a WebSocket has answered its handshake long ago
        _allow_origin(response.headers, origin)
    return response


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    """What aiohttp's router answers a method "/" has no route for."""
    raise web.HTTPMethodNotAllowed(request.method, _ROOT_METHODS)


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


def _allow_origin(headers: Any, origin: str) -> None:
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"


async def _serve_options(request: web.Request) -> web.StreamResponse:
    """A CORS preflight (its origin already allowed by `_with_origin`), or a plain OPTIONS."""
    headers = {"Allow": "GET, POST, OPTIONS"}
    if "Origin" in request.headers:
        headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type"
        headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    return web.Response(status=200, headers=headers)


def _unsubscribe(kind: _SubKind, rid: Any, params: list[Any], conn: _Connection) -> bytes:
    if len(params) != 1:
        return _error(rid, RpcError.invalid_params("expected [subscription id]"))
    sub_id = params[0]
    sub = conn.subs.get(sub_id) if isinstance(sub_id, str) else None
    found = sub is not None and sub._kind is kind
    if sub is not None and found:
        sub._close()
    try:
        answer = kind.unsubscribed(found)
    except RpcError as exc:
        return _error(rid, exc)
    return _result(rid, answer, "unsubscribe")


async def _await_result(
    pending: Awaitable[Any], method: str, rid: Any, is_notification: bool
) -> bytes | None:
    try:
        result = await pending
    except Exception as exc:
        return None if is_notification else _error(rid, _failure(exc, "method", method))
    return None if is_notification else _result(rid, result, method)


async def _await_subscribe(
    pending: Awaitable[Any], sub: Subscription, method: str, rid: Any, after: list[AfterResponse]
) -> bytes | None:
    try:
        await pending
    except BaseException as exc:
        return _subscription_failed(exc, sub, method, rid)
    after.append(sub._activate)
    return _result(rid, sub.id, method)


def _failure(exc: Exception, what: str, method: str) -> RpcError:
    """The error a failed handler answers with, logged in one line: its RpcError; invalid params
    for bytes that do not decode (a client's bad data, never a traceback); else an internal
    error, logged with its traceback (a bug), but in one line when the stack ran out."""
    if isinstance(exc, RpcError):
        err = exc
    elif isinstance(exc, CodecError):
        err = RpcError.invalid_params(f"cannot decode: {exc}")
    elif isinstance(exc, StateDiscarded):
        err = RpcError(STATE_DISCARDED, str(exc))
    elif isinstance(exc, RecursionError):
        log.error("RPC %s %s failed: %s", what, method, _one_line(repr(exc)))
        return _INTERNAL
    else:
        log.exception("RPC %s %s failed", what, method)
        return _INTERNAL
    log.info("RPC %s refused: %s", method, _one_line(str(err)))
    return err


_LOG_LINE_CHARS: Final = 300
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """`text` for a log line: control characters (a client's newlines) escaped, at most
    `_LOG_LINE_CHARS` characters."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > _LOG_LINE_CHARS:
        return text[:_LOG_LINE_CHARS] + f"... ({len(text)} chars)"
    return text


def _subscription_failed(exc: BaseException, sub: Subscription, method: str, rid: Any) -> bytes:
    """A subscription handler raised: close the subscription, then answer the error (or
    re-raise what is not an Exception, such as a cancellation)."""
    sub._close()
    if not isinstance(exc, Exception):
        raise exc
    return _error(rid, _failure(exc, "subscription", method))


# ---- encoding ---------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    """orjson, falling back to json for integers beyond 64 bits."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()


def _result(rid: Any, result: Any, method: str) -> bytes:
    try:
        return _dumps({"jsonrpc": "2.0", "result": result, "id": rid})
    except (TypeError, ValueError):
        log.exception("RPC method %s returned a value that is not JSON", method)
        return _error(rid, _INTERNAL)


def _error(rid: Any, err: RpcError) -> bytes:
    try:
        return orjson.dumps({"jsonrpc": "2.0", "error": err.to_json(), "id": rid})
    except TypeError:
        log.exception("RpcError data is not JSON: %d %s", err.code, err.message)
        return orjson.dumps(
            {"jsonrpc": "2.0", "error": {"code": err.code, "message": err.message}, "id": rid}
        )


def _join_batch(parts: Sequence[object]) -> bytes | None:
    present = [p for p in parts if isinstance(p, bytes)]
    if not present:
        return None
    return b"[" + b",".join(present) + b"]"


_STRING_RE: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_NON_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS: Final = bytes.maketrans(b"[]", b"\x01\xff")  # as signed bytes: +1 and -1


def _exceeds_depth(data: bytes, limit: int) -> bool:
    """Whether JSON `data` nests arrays/objects deeper than `limit`, without recursion.

    Cheap when there are few brackets (almost every request). Otherwise strings are cut out, and
    bracket pairs with nothing inside are peeled off while that shrinks the text quickly (each pass
    lowers the depth by one); what is left is measured exactly by a running sum. All steps run in C,
    linear in the body. Malformed input may answer either way; the parser then refuses it.
    """
    size = len(data)  # counted by what `replace` removes: memchr, faster than `count`'s loop
    if 2 * size - len(data.replace(b"[", b"")) - len(data.replace(b"{", b"")) <= limit:
        return False
    brackets = _STRING_RE.sub(b"", data).translate(_SQUARE, _NON_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    peeled = 0
    while brackets and peeled < limit:
        shorter = brackets.replace(b"[]", b"")
        slow = len(shorter) * 4 > len(brackets) * 3
        brackets, peeled = shorter, peeled + 1
        if slow:
            break
    if not brackets:
        return False
    if peeled >= limit:
        return True
    return (
        peeled + max(itertools.accumulate(memoryview(brackets.translate(_STEPS)).cast("b"))) > limit
    )
