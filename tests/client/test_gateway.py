"""`Gateway` and `HeadFollower` with real peers: no node listening, a peer that accepts the
connection and never answers (the deadline), and a real node behind a TCP proxy that drops the
link (the connection is dropped and opened again)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from chainclient.connection import ChainUnavailable, Connection
from chainclient.gateway import CLOSE_TIMEOUT_S, Gateway, HeadFollower
from tests.client.conftest import TcpProxy
from tests.integration.conftest import NodeProcess, free_ports


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A ws:// URL whose server accepts TCP connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_no_node_listening_is_chain_unavailable() -> None:
    (port,) = free_ports(1)
    url = f"ws://127.0.0.1:{port}"

    async def scenario() -> None:
        gateway = Gateway(url, timeout_s=5)
        try:
            with pytest.raises(ChainUnavailable, match="cannot connect") as refused:
                await gateway.run(Connection.head)
            assert refused.value.url == url
        finally:
            await gateway.close()

    asyncio.run(scenario())


def test_a_call_past_its_deadline_is_abandoned_and_the_connection_dropped(
    silent_peer: str,
) -> None:
    async def scenario() -> None:
        gateway = Gateway(silent_peer, timeout_s=2)
        try:
            started = time.monotonic()
            with pytest.raises(ChainUnavailable, match=r"no answer within 0\.3 s"):
                await gateway.run_within(0.3, Connection.head)
            assert time.monotonic() - started < 1.5  # not the 2 s of the socket timeout
            # the worker is still stuck in the handshake until its socket timeout; the next
            # call queues behind it and then fails on its own (the peer never answers)
            with pytest.raises(ChainUnavailable):
                await gateway.run(Connection.head)
        finally:
            started = time.monotonic()
            await gateway.close()
            assert time.monotonic() - started < CLOSE_TIMEOUT_S + 1

    asyncio.run(scenario())


@pytest.mark.integration
@pytest.mark.slow
def test_a_dropped_link_is_reopened_by_the_next_call(proxy: TcpProxy) -> None:
    async def scenario() -> None:
        gateway = Gateway(proxy.url, timeout_s=10)
        try:
            first, _ = await gateway.run(Connection.head)
            assert proxy.connections == 1
            proxy.cut()
            with pytest.raises(ChainUnavailable):
                await gateway.run(Connection.head)
            second, _ = await gateway.run(Connection.head)  # a new connection
            assert second >= first
            assert proxy.connections == 2
        finally:
            await gateway.close()

    asyncio.run(scenario())


@pytest.mark.integration
@pytest.mark.slow
def test_head_follower_reports_new_heads_and_survives_a_dropped_link(
    node: NodeProcess, proxy: TcpProxy
) -> None:
    async def scenario() -> None:
        heads: asyncio.Queue[int] = asyncio.Queue()
        follower = HeadFollower(proxy.url, asyncio.get_running_loop(), heads.put_nowait)
        follower.start()
        try:
            async with asyncio.timeout(20):
                seen = [await heads.get() for _ in range(3)]
            assert seen == sorted(seen)
            assert seen[-1] > seen[0]
            proxy.cut()
            best_at_cut = await asyncio.to_thread(node.best_number)
            async with asyncio.timeout(20):  # a later head comes over a new connection
                while await heads.get() <= best_at_cut:
                    pass
            assert proxy.connections == 2
        finally:
            follower.stop()

    asyncio.run(scenario())
