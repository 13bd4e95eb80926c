"""`--rpc-cors`: the origin policy (node/rpc/cors.py) and the server's answers to browsers
(preflight, POST, WebSocket handshake). A real page in Chromium: tests/integration/
test_browser_cors.py."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from node.rpc.cors import LOCAL_ORIGINS, CorsPolicy
from tests.node.test_rpc_server import build_server, post, req, run, serving, ws_call

DEV = CorsPolicy.for_chain_type("Development")
PAGE = "http://127.0.0.1:8000"
OTHER = "https://evil.example"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://localhost", True),
        ("https://127.0.0.1:8443", True),
        ("http://[::1]:5173", True),
        ("https://polkadot.js.org", True),
        ("HTTPS://Polkadot.JS.org/", True),
        ("http://polkadot.js.org", False),  # another scheme: another origin
        ("https://polkadot.js.org.evil.example", False),
        ("http://localhost:3000.evil.example", False),
        ("http://localhost:", False),
        ("http://127.0.0.2:8000", False),
        ("https://evil.example", False),
        ("null", False),
    ],
)
def test_the_dev_default_allows_pages_on_this_machine_and_polkadot_js(
    origin: str, allowed: bool
) -> None:
    assert DEV.allows(origin) is allowed


def test_defaults_by_chain_type() -> None:
    assert CorsPolicy.for_chain_type("Local") == DEV
    assert DEV.origins == LOCAL_ORIGINS
    live = CorsPolicy.for_chain_type("Live")
    assert not live.allows("http://localhost:3000")
    assert not live.allows("https://polkadot.js.org")


def test_parse_all_and_lists() -> None:
    assert CorsPolicy.parse("all").allows("https://anything.example")
    policy = CorsPolicy.parse("https://app.example, http://localhost:*,null")
    assert policy.origins == ("https://app.example", "http://localhost:*", "null")
    assert policy.allows("https://app.example")
    assert policy.allows("null")
    assert policy.allows("http://localhost:1234")
    assert not policy.allows("https://app.example:8443")
    assert not policy.allows("https://polkadot.js.org")  # the list replaces the default
    for bad in ("", " , ", "localhost:3000"):
        with pytest.raises(ValueError, match="rpc-cors"):
            CorsPolicy.parse(bad)


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://10.0.0.5:9944", "10.0.0.5:9944", True),  # websocket-client's own origin
        ("http://127.0.0.1:9944", "127.0.0.1:9944", True),
        ("http://[::1]:9944", "[::1]:9944", True),
        ("http://localhost:9944", "localhost:9944", True),
        ("http://rebound.example:9944", "rebound.example:9944", False),  # DNS rebinding
        ("http://10.0.0.5:8080", "10.0.0.5:9944", False),
        ("ftp://10.0.0.5:9944", "10.0.0.5:9944", False),
    ],
)
def test_an_origin_naming_the_nodes_own_address_is_served_on_any_chain(
    origin: str, host: str, allowed: bool
) -> None:
    assert CorsPolicy.for_chain_type("Live").allows(origin, host) is allowed


# ---- the server ---------------------------------------------------------------------------------


def with_cors(test: Any, policy: CorsPolicy = DEV) -> None:
    async def main() -> None:
        server, _ = build_server(cors=policy)
        async with serving(server) as addr, aiohttp.ClientSession() as session:
            await test(addr, session)

    run(main())


def test_preflight_is_answered_for_allowed_origins_and_refused_for_others() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        ask = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        async with s.options(f"http://{addr}/", headers={"Origin": PAGE, **ask}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == PAGE
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert resp.headers["Access-Control-Allow-Headers"].lower() == "content-type"
            assert resp.headers["Vary"] == "Origin"
        async with s.options(f"http://{addr}/", headers={"Origin": OTHER, **ask}) as resp:
            assert resp.status == 403
            assert "Access-Control-Allow-Origin" not in resp.headers

    with_cors(t)


def test_post_carries_the_allowed_origin_and_refuses_others() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        body = req("echo", [1])
        async with s.post(f"http://{addr}/", json=body, headers={"Origin": PAGE}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == PAGE
            assert (await resp.json())["result"] == [1]
        async with s.post(f"http://{addr}/", json=body, headers={"Origin": OTHER}) as resp:
            assert resp.status == 403
        assert await post(s, addr, body) == (200, {"jsonrpc": "2.0", "result": [1], "id": 1})

    with_cors(t)


def test_websocket_handshakes_follow_the_same_policy() -> None:
    async def t(addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/", origin=PAGE) as ws:
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(f"ws://{addr}/", origin=OTHER)
        assert info.value.status == 403
        async with s.ws_connect(f"ws://{addr}/") as ws:  # no Origin: not a browser page
            assert (await ws_call(ws, req("echo", [2])))["result"] == [2]

    with_cors(t)


def test_all_allows_any_origin_and_the_default_none() -> None:
    async def t_all(addr: str, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"ws://{addr}/", origin=OTHER) as ws:
            assert (await ws_call(ws, req("echo", [1])))["result"] == [1]

    with_cors(t_all, CorsPolicy.parse("all"))

    async def t_none(addr: str, s: aiohttp.ClientSession) -> None:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await s.ws_connect(f"ws://{addr}/", origin=PAGE)

    with_cors(t_none, CorsPolicy())
