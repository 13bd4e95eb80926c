"""JSON-RPC transport: a real server on 127.0.0.1:0 driven by aiohttp's client (and SI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.rpc.server import RpcError, RpcServer, Subscription, _exceeds_depth

pytestmark = pytest.mark.timeout(30)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


class Heads:
    """A toy subscription source: subscribers get the current value at once, then every push."""

    def __init__(self) -> None:
        self.value = 0
        self.subs: list[Subscription] = []
        self.closed: list[str] = []

    def subscribe(self, params: list[Any], sub: Subscription) -> None:
        if params == ["refuse"]:
            raise RpcError(1234, "Refused", "as asked")
        self.subs.append(sub)
        sub.on_close(lambda: self._closed(sub))
        sub.notify({"n": self.value})

    def _closed(self, sub: Subscription) -> None:
        self.closed.append(sub.id)
        self.subs.remove(sub)

    def push(self) -> None:
        self.value += 1
        for sub in list(self.subs):
            sub.notify({"n": self.value})


def build_server(**kwargs: Any) -> tuple[RpcServer, Heads]:
    server = RpcServer(**kwargs)
    heads = Heads()

    def echo(params: list[Any]) -> Any:
        return params

    async def slow(params: list[Any]) -> str:
        await asyncio.sleep(float(params[0]))
        return "slow"

    def needs_one(params: list[Any]) -> int:
        if len(params) != 1 or not isinstance(params[0], int):
            raise RpcError.invalid_params("expected [int]")
        return int(params[0]) * 2

    def broken(params: list[Any]) -> Any:
        raise ValueError("secret-key-0xdeadbeef")

    async def async_broken(params: list[Any]) -> Any:
        raise KeyError("secret-key-0xdeadbeef")

    def not_json(params: list[Any]) -> Any:
        return object()

    async def async_subscribe(params: list[Any], sub: Subscription) -> None:
        sub.notify("first")
        await asyncio.sleep(0.05)
        sub.notify("second")

    server.method("system_health", lambda p: {"peers": 0, "isSyncing": False})
    server.method("echo", echo, aliases=["echo_alias", "echo_other"])
    server.method("slow", slow)
    server.method("double", needs_one)
    server.method("broken", broken)
    server.method("async_broken", async_broken)
    server.method("not_json", not_json)
    server.method("big_int", lambda p: 2**100)
    server.subscription(
        "chain_subscribeNewHeads",
        "chain_unsubscribeNewHeads",
        "chain_newHead",
        heads.subscribe,
        aliases=[("chain_subscribeNewHead", "chain_unsubscribeNewHead")],
    )
    server.subscription(
        "test_subscribeAsync", "test_unsubscribeAsync", "test_async", async_subscribe
    )
    return server, heads


@contextlib.asynccontextmanager
async def serving(server: RpcServer) -> AsyncIterator[str]:
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop()


async def post(session: aiohttp.ClientSession, addr: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(
        f"http://{addr}/", data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        raw = await resp.read()
        return resp.status, (orjson.loads(raw) if raw else None)


def req(method: str, params: Any = None, rid: Any = 1, *, omit_params: bool = False) -> Any:
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": rid}
    if not omit_params:
        out["params"] = params
    return out


async def ws_recv(ws: aiohttp.ClientWebSocketResponse, wait_s: float = 5) -> Any:
    msg = await ws.receive(timeout=wait_s)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def ws_call(ws: aiohttp.ClientWebSocketResponse, body: Any) -> Any:
    await ws.send_str(orjson.dumps(body).decode())
    return await ws_recv(ws)


def with_ws(
    test: Callable[[RpcServer, Heads, str, aiohttp.ClientSession], Awaitable[None]], **kw: Any
) -> None:
    async def main() -> None:
        server, heads = build_server(**kw)
        async with serving(server) as addr, aiohttp.ClientSession() as session:
            await test(server, heads, addr, session)

    run(main())


# ---- plain methods -------------------------------------------------------------------------------


def test_http_and_ws_method_call() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        status, body = await post(s, addr, req("system_health", []))
        assert status == 200
        assert body == {
            "jsonrpc": "2.0",
            "result": {"peers": 0, "isSyncing": False},
            "id": 1,
        }
        async with s.ws_connect(f"ws://{addr}/") as ws:
            assert await ws_call(ws, req("system_health", [], rid="abc")) == {
                "jsonrpc": "2.0",
                "result": {"peers": 0, "isSyncing": False},
                "id": "abc",
            }

    with_ws(t)


def test_aliases_and_method_names() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        for name in ("echo", "echo_alias", "echo_other"):
            _, body = await post(s, addr, req(name, [1, "x"]))
            assert body["result"] == [1, "x"]
        names = server.method_names()
        assert names == sorted(names)
        for n in (
            "echo_alias",
            "chain_subscribeNewHead",
            "chain_unsubscribeNewHead",
            "chain_subscribeNewHeads",
            "chain_unsubscribeNewHeads",
            "system_health",
        ):
            assert n in names

    with_ws(t)


def test_duplicate_registration_is_refused() -> None:
    server = RpcServer()
    server.method("a", lambda p: 1)
    with pytest.raises(ValueError, match="already registered"):
        server.method("b", lambda p: 1, aliases=["a"])


def test_params_null_missing_empty_are_the_same() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        results = []
        for body in (req("echo", None), req("echo", []), req("echo", omit_params=True)):
            status, resp = await post(s, addr, body)
            assert status == 200
            results.append(resp["result"])
        assert results == [[], [], []]

    with_ws(t)


def test_unknown_method_echoes_id() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        status, body = await post(s, addr, req("nope_nothing", [], rid=77))
        assert status == 200
        assert body == {
            "jsonrpc": "2.0",
            "error": {"code": -32601, "message": "Method not found", "data": "nope_nothing"},
            "id": 77,
        }

    with_ws(t)


def test_invalid_params() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        _, body = await post(s, addr, req("double", [21]))
        assert body["result"] == 42
        _, body = await post(s, addr, req("double", ["x"]))
        assert body["error"] == {
            "code": -32602,
            "message": "Invalid params",
            "data": "expected [int]",
        }
        _, body = await post(s, addr, req("echo", {"named": 1}, rid=5))
        assert body["error"]["code"] == -32602
        assert body["id"] == 5
        _, body = await post(s, addr, req("echo", "scalar", rid=6))
        assert body["error"]["code"] == -32600

    with_ws(t)


def test_invalid_requests() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        _, body = await post(s, addr, {"method": "echo", "id": 3})  # no "jsonrpc"
        assert body["error"]["code"] == -32600
        assert body["id"] == 3
        _, body = await post(s, addr, {"jsonrpc": "2.0", "method": "echo", "id": {"x": 1}})
        assert body["error"]["code"] == -32600
        assert body["id"] is None
        _, body = await post(s, addr, 42)
        assert body["error"]["code"] == -32600

    with_ws(t)


def test_parse_error_has_null_id() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        status, body = await post(s, addr, b'{"jsonrpc":"2.0","method":"echo","id":1')
        assert status == 200
        assert body["error"]["code"] == -32700
        assert body["error"]["message"] == "Parse error"
        assert body["id"] is None
        _, body = await post(s, addr, b"\xff\xfe")
        assert body["error"]["code"] == -32700

    with_ws(t)


def test_internal_error_hides_details(caplog: pytest.LogCaptureFixture) -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        for method in ("broken", "async_broken", "not_json"):
            raw_status, body = await post(s, addr, req(method, [], rid=9))
            assert raw_status == 200
            assert body == {
                "jsonrpc": "2.0",
                "error": {"code": -32603, "message": "Internal error"},
                "id": 9,
            }
        _, body = await post(s, addr, req("system_health"))
        assert body["result"]["peers"] == 0

    with caplog.at_level(logging.ERROR, logger="node.rpc.server"):
        with_ws(t)
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 3
    assert "secret" not in " ".join(r.getMessage() for r in caplog.records)


def test_big_int_result_falls_back_to_json() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.post(f"http://{addr}/", data=orjson.dumps(req("big_int"))) as resp:
            assert (await resp.json())["result"] == 2**100

    with_ws(t)


def test_batch() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        batch = [
            req("echo", [1], rid=1),
            req("slow", [0.01], rid=2),
            {"jsonrpc": "2.0", "method": "echo", "params": [3]},  # notification: no answer
            req("nope", [], rid=4),
            5,
        ]
        status, body = await post(s, addr, batch)
        assert status == 200
        assert body == [
            {"jsonrpc": "2.0", "result": [1], "id": 1},
            {"jsonrpc": "2.0", "result": "slow", "id": 2},
            {
                "jsonrpc": "2.0",
                "error": {"code": -32601, "message": "Method not found", "data": "nope"},
                "id": 4,
            },
            {
                "jsonrpc": "2.0",
                "error": {
                    "code": -32600,
                    "message": "Invalid request",
                    "data": "a request must be an object",
                },
                "id": None,
            },
        ]
        _, body = await post(s, addr, [])
        assert body["error"]["code"] == -32600
        _, body = await post(s, addr, [req("echo", [i], rid=i) for i in range(101)])
        assert body["error"]["code"] == -32600
        async with s.ws_connect(f"ws://{addr}/") as ws:
            reply = await ws_call(ws, [req("echo", [1], rid=1), req("slow", [0], rid=2)])
            assert [r["id"] for r in reply] == [1, 2]

    with_ws(t)


def test_notifications_get_no_response() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        note = {"jsonrpc": "2.0", "method": "echo", "params": [1]}
        status, body = await post(s, addr, note)
        assert (status, body) == (200, None)
        status, body = await post(s, addr, [note, {"jsonrpc": "2.0", "method": "broken"}])
        assert (status, body) == (200, None)
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws.send_str(orjson.dumps(note).decode())
            await ws.send_str(
                orjson.dumps({"jsonrpc": "2.0", "method": "slow", "params": [0]}).decode()
            )
            assert (await ws_call(ws, req("echo", [2], rid=8)))["id"] == 8

    with_ws(t)


def test_body_over_limit_is_refused_before_it_is_read() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        host, port = addr.split(":")
        # Announce 100 MB but send 10 bytes: the answer must come without waiting for the rest.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000000\r\n\r\n{"jsonrpc"'
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 413 " in status_line
        writer.close()

        # A real oversized body (chunked, so no Content-Length) is cut off by client_max_size.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"[" + b"1," * 100

        async with s.post(f"http://{addr}/", data=chunks()) as resp:
            assert resp.status == 413
        status, _ = await post(s, addr, req("echo", ["x" * 10]))
        assert status == 200

    with_ws(t, max_body_bytes=1024)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        for depth in (65, 2000, 100_000):
            params = b"[" * depth + b"]" * depth
            body = b'{"jsonrpc":"2.0","method":"echo","id":1,"params":' + params + b"}"
            status, resp = await post(s, addr, body)
            assert status == 200
            assert resp["error"]["code"] == -32700, depth
            assert resp["id"] is None
        # 63 levels inside the request object: 64 in all, at the limit, accepted.
        params = b"[" * 63 + b"]" * 63
        body = b'{"jsonrpc":"2.0","method":"echo","id":1,"params":' + params + b"}"
        _, resp = await post(s, addr, body)
        assert "result" in resp
        # Brackets inside strings do not count.
        _, resp = await post(s, addr, req("echo", ["[" * 500, "{" * 500]))
        assert resp["result"] == ["[" * 500, "{" * 500]
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws.send_str("[" * 5000)
            assert (await ws_recv(ws))["error"]["code"] == -32700
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]

    with_ws(t)


def test_get_without_upgrade_is_405() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.get(f"http://{addr}/") as resp:
            assert resp.status == 405

    with_ws(t)


def test_ws_frame_over_limit_closes_with_1009() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws.send_str(orjson.dumps(req("echo", ["x" * 5000])).decode())
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009

    with_ws(t, max_body_bytes=1024)


def test_ws_requests_run_concurrently() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws.send_str(orjson.dumps(req("slow", [1.0], rid="slow")).decode())
            await ws.send_str(orjson.dumps(req("echo", [1], rid="fast")).decode())
            first = await ws_recv(ws, wait_s=0.8)
            assert first["id"] == "fast"
            assert (await ws_recv(ws))["id"] == "slow"

    with_ws(t)


# ---- subscriptions -------------------------------------------------------------------------------


def test_subscription_lifecycle() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            reply = await ws_call(ws, req("chain_subscribeNewHeads", [], rid=1))
            sub_id = reply["result"]
            assert isinstance(sub_id, str)
            assert len(sub_id) == 16
            first = await ws_recv(ws)
            assert first == {
                "jsonrpc": "2.0",
                "method": "chain_newHead",
                "params": {"subscription": sub_id, "result": {"n": 0}},
            }
            heads.push()
            assert (await ws_recv(ws))["params"] == {"subscription": sub_id, "result": {"n": 1}}
            # The alias pair shares the notification name; a second sub gets its own id.
            other = (await ws_call(ws, req("chain_subscribeNewHead", [], rid=2)))["result"]
            assert other != sub_id
            note = await ws_recv(ws)
            assert note["method"] == "chain_newHead"
            assert note["params"]["subscription"] == other
            # Wrong unsubscribe method for the kind, unknown id, missing param.
            wrong = await ws_call(ws, req("test_unsubscribeAsync", [sub_id], rid=3))
            assert wrong["result"] is False
            assert (await ws_call(ws, req("chain_unsubscribeNewHeads", ["ffff"], rid=4)))[
                "result"
            ] is False
            assert (await ws_call(ws, req("chain_unsubscribeNewHeads", [], rid=5)))["error"][
                "code"
            ] == -32602
            reply = await ws_call(ws, req("chain_unsubscribeNewHeads", [sub_id], rid=6))
            assert reply == {"jsonrpc": "2.0", "result": True, "id": 6}
            assert heads.closed == [sub_id]
            again = await ws_call(ws, req("chain_unsubscribeNewHeads", [sub_id], rid=7))
            assert again["result"] is False
            heads.push()  # only `other` hears this one
            note = await ws_recv(ws)
            assert note["params"] == {"subscription": other, "result": {"n": 2}}
            assert (await ws_call(ws, req("echo", [1], rid=8)))["id"] == 8
        # Closing the socket closes the rest.
        for _ in range(100):
            if len(heads.closed) == 2:
                break
            await asyncio.sleep(0.01)
        assert heads.closed == [sub_id, other]
        assert heads.subs == []

    with_ws(t)


def test_async_subscribe_handler_id_first() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws.send_str(orjson.dumps(req("test_subscribeAsync", [], rid=1)).decode())
            reply = await ws_recv(ws)
            assert reply["id"] == 1
            sub_id = reply["result"]
            for expected in ("first", "second"):
                note = await ws_recv(ws)
                assert note["method"] == "test_async"
                assert note["params"] == {"subscription": sub_id, "result": expected}

    with_ws(t)


def test_refused_subscription() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            reply = await ws_call(ws, req("chain_subscribeNewHeads", ["refuse"], rid=1))
            assert reply == {
                "jsonrpc": "2.0",
                "error": {"code": 1234, "message": "Refused", "data": "as asked"},
                "id": 1,
            }
            assert (await ws_call(ws, req("echo", [1], rid=2)))["id"] == 2

    with_ws(t)


def test_subscription_flood_gets_typed_error() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            batch = [req("chain_subscribeNewHeads", [], rid=i) for i in range(8)]
            await ws.send_str(orjson.dumps(batch).decode())
            replies = await ws_recv(ws)
            ok = [r for r in replies if "result" in r]
            refused = [r for r in replies if "error" in r]
            assert len(ok) == 5
            assert refused == [
                {
                    "jsonrpc": "2.0",
                    "error": {
                        "code": -32000,
                        "message": "Too many subscriptions on this connection",
                    },
                    "id": i,
                }
                for i in (5, 6, 7)
            ]
            for _ in range(5):  # each accepted sub got its current value, after the ids
                assert (await ws_recv(ws))["method"] == "chain_newHead"
            assert (await ws_call(ws, req("system_health", [], rid=99)))["id"] == 99
            # Unsubscribing frees a slot.
            await ws_call(ws, req("chain_unsubscribeNewHeads", [ok[0]["result"]], rid=100))
            reply = await ws_call(ws, req("chain_subscribeNewHeads", [], rid=101))
            assert isinstance(reply["result"], str)

    with_ws(t, max_subscriptions_per_connection=5)


def test_subscribe_over_http_is_an_error() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        status, body = await post(s, addr, req("chain_subscribeNewHeads", [], rid=1))
        assert status == 200
        assert body["error"]["code"] == -32601
        assert "WebSocket" in body["error"]["message"]
        assert heads.subs == []

    with_ws(t)


def test_slow_consumer_is_disconnected() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws_call(ws, req("chain_subscribeNewHeads", [], rid=1))
            await ws_recv(ws)
            for _ in range(50):  # all queued in one go: the writer never gets to run
                heads.push()
            for _ in range(200):
                if heads.closed:
                    break
                await asyncio.sleep(0.01)
            assert len(heads.closed) == 1
            while True:  # whatever made it out, then the end
                msg = await ws.receive(timeout=5)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
        async with s.ws_connect(f"ws://{addr}/") as ws:  # the server is fine
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]

    with_ws(t, send_queue_limit=10)


async def _closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """Read what made it out until the server drops the connection."""
    got = []
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return got
        got.append(orjson.loads(msg.data))


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def _texts(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[str]:
    return [(await ws_recv(ws))["params"]["result"] for _ in range(n)]


def test_unsent_bytes_over_the_connection_limit_close_it() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            await ws_call(ws, req("chain_subscribeNewHeads", [], rid=1))
            await ws_recv(ws)
            (sub,) = heads.subs
            sub.notify("x" * 5000)  # alone in the queue: larger than the limit, still sent
            assert await _texts(ws, 1) == ["x" * 5000]
            for _ in range(3):  # 2,100 bytes and more, all queued at once: over 2,000
                sub.notify("y" * 700)
            await _until(lambda: heads.closed == [sub.id])
            assert server.queued_bytes == 0
            assert len(await _closed_by_server(ws)) < 3
        async with s.ws_connect(f"ws://{addr}/") as ws:  # the server is fine
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]

    with_ws(t, send_queue_bytes=2000)


def test_over_the_server_budget_the_connection_holding_the_most_is_closed() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as a, s.ws_connect(f"ws://{addr}/") as b:
            for ws in (a, b):
                await ws_call(ws, req("chain_subscribeNewHeads", [], rid=1))
                await ws_recv(ws)
            sub_a, sub_b = heads.subs
            for _ in range(3):  # queued at once: ~2,300 of the 3,000 bytes
                sub_a.notify("a" * 700)
            sub_b.notify("b" * 700)  # over the budget: `a` holds the most and goes
            sub_b.notify("b" * 700)
            await _until(lambda: heads.closed == [sub_a.id])
            assert await _texts(b, 2) == ["b" * 700] * 2
            assert len(await _closed_by_server(a)) < 3
            assert server.queued_bytes == 0
            sub_b.notify("c" * 2500)  # alone it fits, and it is sent
            assert await _texts(b, 1) == ["c" * 2500]
            sub_b.notify("d" * 3500)  # over the budget by itself: its connection goes
            await _until(lambda: heads.closed == [sub_a.id, sub_b.id])
            assert server.queued_bytes == 0

    with_ws(t, send_budget_bytes=3000)


def test_stop_closes_sockets_and_subscriptions() -> None:
    async def main() -> None:
        server, heads = build_server()
        port = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession() as s, s.ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws_call(ws, req("chain_subscribeNewHeads", [], rid=1))
            await ws_recv(ws)
            await asyncio.wait_for(server.stop(), 10)
            assert len(heads.closed) == 1
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    run(main())


def test_connection_limit() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await s.ws_connect(f"ws://{addr}/")
            assert info.value.status == 503
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]

    with_ws(t, max_connections=1)


def test_on_close_added_late_runs_at_once() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            sub_id = (await ws_call(ws, req("chain_subscribeNewHeads", [])))["result"]
            await ws_recv(ws)
            sub = heads.subs[0]
            await ws_call(ws, req("chain_unsubscribeNewHeads", [sub_id], rid=2))
            assert sub.closed
            calls: list[int] = []
            sub.on_close(lambda: calls.append(1))
            sub.notify("ignored")
            assert calls == [1]
            assert (await ws_call(ws, req("echo", [1], rid=3)))["id"] == 3

    with_ws(t)


# ---- a real client ---------------------------------------------------------------------------


@contextlib.contextmanager
def threaded_server() -> Iterator[int]:
    """The server on its own loop in a thread, for blocking clients such as substrate-interface."""
    loop = asyncio.new_event_loop()
    server, _ = build_server()
    started = threading.Event()
    port: list[int] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        port.append(loop.run_until_complete(server.start("127.0.0.1", 0)))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield port[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_substrate_interface_rpc_request(scheme: str) -> None:
    from substrateinterface import SubstrateInterface
    from substrateinterface.exceptions import SubstrateRequestException

    with threaded_server() as port:
        si = SubstrateInterface(url=f"{scheme}://127.0.0.1:{port}", auto_discover=False)
        try:
            assert si.rpc_request("system_health", [])["result"] == {
                "peers": 0,
                "isSyncing": False,
            }
            assert si.rpc_request("echo_alias", None)["result"] == []
            with pytest.raises(SubstrateRequestException):
                si.rpc_request("nope", [])
        finally:
            si.close()


# ---- the nesting pre-scan ------------------------------------------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


@given(value=_json, limit=st.integers(min_value=0, max_value=8))
@settings(max_examples=500, deadline=None)
def test_exceeds_depth_matches_a_reference(value: Any, limit: int) -> None:
    assert _exceeds_depth(orjson.dumps(value), limit) == (_depth(value) > limit)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * 65 + b"]" * 65, True),
        (b"[" * 64 + b"]" * 64, False),
        (b"[" + b",".join([b"[" * 40 + b"]" * 40] * 50) + b"]", False),
        (
            b"[" + b",".join([b"[[]]"] * 50) + b',{"k":' + b"[" * 63 + b"]" * 63 + b"}]",
            True,
        ),
        (b'["' + b"[" * 100 + b'"]', False),
    ],
)
def test_exceeds_depth_cases(body: bytes, expected: bool) -> None:
    assert _exceeds_depth(body, 64) is expected


# ---- connection methods, server-side close, unsubscribe answers, back-pressure -------------------


def build_session_server() -> RpcServer:
    """A toy operation API: `op_follow` subscribes; `op_start(sub, n)` (a connection method)
    answers an id, then sends n events on that subscription once the answer is queued."""
    server = RpcServer()
    ids = iter(range(1000))

    def follow(params: list[Any], sub: Subscription) -> None:
        if len(sub.session.subscriptions("op_event")) > 2:
            raise RpcError(-32800, "limit")
        sub.notify({"event": "hello"})

    def start(params: list[Any], caller: Any) -> Any:
        sub = caller.session.subscription(params[0], "op_event")
        if sub is None:
            return None
        op = f"op{next(ids)}"
        caller.after_response(lambda: [sub.notify({"op": op, "n": i}) for i in range(params[1])])
        return op

    def stop_sub(params: list[Any], caller: Any) -> bool:
        sub = caller.session.subscription(params[0], "op_event")
        if sub is None:
            return False

        def end() -> None:
            sub.notify({"event": "stop"})
            sub.close()

        caller.after_response(end)
        return True

    def unwatched(found: bool) -> None:
        if not found:
            raise RpcError.invalid_params("unknown subscription")

    server.subscription("op_follow", "op_unfollow", "op_event", follow, unsubscribed=unwatched)
    server.connection_method("op_start", start)
    server.connection_method("op_stop", stop_sub)
    return server


def with_session_server(test: Callable[[str, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving(build_session_server()) as addr, aiohttp.ClientSession() as session:
            await test(addr, session)

    run(main())


def test_connection_method_events_follow_its_response() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            sub = (await ws_call(ws, req("op_follow", [], rid=1)))["result"]
            assert (await ws_recv(ws))["params"]["result"] == {"event": "hello"}
            answer = await ws_call(ws, req("op_start", [sub, 3], rid=2))
            assert answer["id"] == 2
            events = [(await ws_recv(ws))["params"] for _ in range(3)]
            assert [e["result"] for e in events] == [
                {"op": answer["result"], "n": i} for i in range(3)
            ]
            assert {e["subscription"] for e in events} == {sub}
            # another connection does not see this one's subscription
            async with s.ws_connect(f"ws://{addr}/") as other:
                assert (await ws_call(other, req("op_start", [sub, 1], rid=3)))["result"] is None

    with_session_server(t)


def test_connection_method_over_http_needs_a_websocket() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        _, body = await post(s, addr, req("op_start", ["x", 1]))
        assert body["error"]["code"] == -32601
        assert "WebSocket" in body["error"]["message"]

    with_session_server(t)


def test_server_side_close_and_unsubscribe_answer() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            sub = (await ws_call(ws, req("op_follow", [], rid=1)))["result"]
            await ws_recv(ws)  # hello
            assert (await ws_call(ws, req("op_stop", [sub], rid=2)))["result"] is True
            assert (await ws_recv(ws))["params"]["result"] == {"event": "stop"}
            # closed by the server: gone for its connection methods and for unsubscribe
            assert (await ws_call(ws, req("op_start", [sub, 1], rid=3)))["result"] is None
            out = await ws_call(ws, req("op_unfollow", [sub], rid=4))
            assert out["error"]["code"] == -32602
            sub2 = (await ws_call(ws, req("op_follow", [], rid=5)))["result"]
            await ws_recv(ws)
            assert (await ws_call(ws, req("op_unfollow", [sub2], rid=6)))["result"] is None

    with_session_server(t)


def test_subscription_sees_its_session_siblings() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            for rid in (1, 2):
                assert "result" in await ws_call(ws, req("op_follow", [], rid=rid))
                await ws_recv(ws)
            assert (await ws_call(ws, req("op_follow", [], rid=3)))["error"]["code"] == -32800
        async with s.ws_connect(f"ws://{addr}/") as ws:  # a new connection starts afresh
            assert "result" in await ws_call(ws, req("op_follow", [], rid=1))

    with_session_server(t)


def test_close_before_the_id_response_still_sends_the_last_notification() -> None:
    async def t(server: RpcServer, heads: Heads, addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/") as ws:
            sub_id = (await ws_call(ws, req("test_subscribeOnce", [], rid=1)))["result"]
            note = await ws_recv(ws)
            assert note["params"] == {"subscription": sub_id, "result": "only"}
            out = await ws_call(ws, req("test_unsubscribeOnce", [sub_id], rid=2))
            assert out["result"] is False  # already closed by the server

    def once(params: list[Any], sub: Subscription) -> None:
        sub.notify("only")
        sub.close()

    async def main() -> None:
        server, heads = build_server()
        server.subscription("test_subscribeOnce", "test_unsubscribeOnce", "test_once", once)
        async with serving(server) as addr, aiohttp.ClientSession() as session:
            await t(server, heads, addr, session)

    run(main())


def test_drain_paces_a_long_stream_without_dropping_the_client() -> None:
    """A subscription streaming far more than the send queue holds (64 KiB notifications, so the
    socket's buffers fill while the client does not read), in bursts separated by `drain()`,
    reaches the client whole; yielding without waiting for room gets the client dropped."""
    total, burst, blob = 160, 8, "x" * 65536

    def stream(params: list[Any], sub: Subscription) -> None:
        async def run_stream() -> None:
            for i in range(0, total, burst):
                for j in range(i, i + burst):
                    sub.notify([j, blob])
                await sub.drain()

        sub.after_response(lambda: asyncio.get_running_loop().create_task(run_stream()) and None)

    async def main() -> None:
        server = RpcServer(send_queue_limit=16)
        server.subscription("s_subscribe", "s_unsubscribe", "s_event", stream)
        async with (
            serving(server) as addr,
            aiohttp.ClientSession() as s,
            s.ws_connect(f"ws://{addr}/", max_msg_size=0) as ws,
        ):
            await ws_call(ws, req("s_subscribe", [], rid=1))
            await asyncio.sleep(0.3)  # the server's socket buffers fill meanwhile
            got = [(await ws_recv(ws))["params"]["result"][0] for _ in range(total)]
            assert got == list(range(total))

    run(main())
