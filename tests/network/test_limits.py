"""What a peer can make the service hold before and after its handshake (pending sockets, frame
sizes, peer slots per direction and per IP), and which addresses the service passes on."""

import asyncio
import logging

import aiohttp
import pytest

from node.network import NetworkError, PeerSlots, peer_id_from_node_key
from node.network.messages import encode_peers
from node.network.service import MAX_HANDSHAKE_BYTES, MAX_PENDING_HANDSHAKES

from .helpers import (
    addr,
    frame_header,
    key,
    make,
    raw_peer,
    raw_socket,
    read_until_closed,
    run,
    started,
    url,
    wait_until,
)

SLOW = {"handshake_timeout": 30.0}  # the handshake timeout is not what drops the socket here


async def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


# ---- before the handshake ---------------------------------------------------------------------


def test_a_big_length_prefix_before_the_handshake_drops_the_socket(caplog):
    """16 MiB announced, 64 KiB sent: refused at the length prefix, long before the handshake
    timeout, having read at most the handshake budget."""

    async def main():
        a, _ = make(1, **SLOW)
        async with started(a), raw_socket(a) as (reader, writer):
            writer.write(frame_header(16 * 1024 * 1024) + b"\x03" * 65_536)
            async with asyncio.timeout(5):
                await read_until_closed(reader)
            await wait_until(lambda: a.stats()["handshakes_failed"] == 1, a)
            assert a.stats()["connections_opened"] == 0

    with caplog.at_level(logging.INFO, logger="node.network"):
        run(main())
    [line] = [r.getMessage() for r in caplog.records if "Rejected" in r.getMessage()]
    assert "oversized handshake: a frame of 16777216 bytes" in line
    assert not [r for r in caplog.records if r.exc_info]


def test_many_small_frames_before_the_handshake_exhaust_its_budget():
    async def main():
        a, _ = make(1, **SLOW)
        async with started(a), raw_socket(a) as (reader, writer):
            ping = frame_header(100, opcode=0x9) + b"p" * 100  # aiohttp answers pings itself
            writer.write(ping * (MAX_HANDSHAKE_BYTES // len(ping) + 1))
            async with asyncio.timeout(5):
                await read_until_closed(reader)
            await wait_until(lambda: a.stats()["handshakes_failed"] == 1, a)

    run(main())


def test_the_handshake_frames_of_an_honest_dialer_pass_the_guard():
    async def main():
        a, _ = make(1)
        b, _ = make(2)
        async with started(a, b), raw_peer(a) as raw:
            await raw.handshake()  # HELLO and AUTH: within the budget
            assert await b.connect(addr(a)) == a.local_peer_id
            await wait_until(lambda: a.peer_count() == 2, a)
            assert a.stats()["handshakes_failed"] == 0

    run(main())


def test_pending_handshakes_are_bounded_in_all_and_per_ip():
    async def main():
        a, _ = make(1, slots=PeerSlots(in_peers_per_ip=2, is_loopback_exempt=False), **SLOW)
        b, _ = make(2, **SLOW)  # loopback exempt (the default): only the global bound
        async with started(a, b), aiohttp.ClientSession() as session:
            silent = [await session.ws_connect(url(a)) for _ in range(2)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url(a))
            assert refused.value.status == 503
            assert a.stats()["inbound_refused"] == 1
            silent += [await session.ws_connect(url(b)) for _ in range(MAX_PENDING_HANDSHAKES)]
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(url(b))
            assert b.stats()["inbound_refused"] == 1
            for ws in silent:  # a pending slot is free again once its socket is gone
                await ws.close()
            await wait_until(lambda: b.stats()["handshakes_failed"] == 16, b)
            assert await a.connect(addr(b)) == b.local_peer_id

    run(main())


# ---- peer slots -------------------------------------------------------------------------------


def test_inbound_beyond_the_slots_is_refused_and_the_peers_stay():
    async def main():
        a, ha = make(1, slots=PeerSlots(in_peers=2))
        b, _ = make(2)
        c, _ = make(3)
        d, _ = make(4)
        async with started(a, b, c, d):
            await b.connect(addr(a))
            await c.connect(addr(a))
            with pytest.raises(NetworkError, match=r"too many inbound peers \(2\)"):
                await d.connect(addr(a))
            assert a.stats()["handshakes_refused_full"] == 1
            assert {p.peer_id for p in a.peers()} == {b.local_peer_id, c.local_peer_id}
            assert ha.disconnected == []
            assert a.local_peer_id in {p.peer_id for p in b.peers()}
            # a peer already connected may still replace its connection
            assert await b.connect(addr(a)) == a.local_peer_id
            assert {p.peer_id for p in a.peers()} == {b.local_peer_id, c.local_peer_id}

    run(main())


def test_outbound_beyond_the_slots_is_not_dialed():
    async def main():
        a, _ = make(1, slots=PeerSlots(out_peers=1))
        b, _ = make(2)
        c, _ = make(3)
        async with started(a, b, c):
            await a.connect(addr(b))
            with pytest.raises(NetworkError, match="no free outbound slot"):
                await a.connect(addr(c))
            assert [p.peer_id for p in a.peers()] == [b.local_peer_id]
            assert c.stats()["handshakes_failed"] == 0  # not even dialed
            await c.connect(addr(a))  # inbound slots are separate
            assert a.peer_count() == 2

    run(main())


def test_inbound_peers_per_ip_are_capped_unless_loopback_is_exempt():
    async def main():
        a, ha = make(1, slots=PeerSlots(in_peers_per_ip=2, is_loopback_exempt=False))
        b, _ = make(2)
        c, _ = make(3)
        d, _ = make(4)
        e, _ = make(5, slots=PeerSlots(in_peers_per_ip=2))  # loopback exempt: no cap from 127.0.0.1
        async with started(a, b, c, d, e):
            await b.connect(addr(a))
            await c.connect(addr(a))
            with pytest.raises(NetworkError, match=r"too many peers from 127\.0\.0\.1 \(2\)"):
                await d.connect(addr(a))
            assert {p.peer_id for p in a.peers()} == {b.local_peer_id, c.local_peer_id}
            assert ha.disconnected == []
            for n in (b, c, d):
                await n.connect(addr(e))
            assert {b.local_peer_id, c.local_peer_id, d.local_peer_id} <= {
                p.peer_id for p in e.peers()
            }

    run(main())


# ---- addresses passed on ------------------------------------------------------------------------


def test_only_addresses_the_node_dialed_itself_are_passed_on():
    """x claims a listen address where nobody listens and sends another such address; c's
    advertised address is real. a probes both claims: only c's checks out, so b, joining later,
    learns c's address and none of x's."""

    async def main():
        a, _ = make(1)
        b, _ = make(2)
        c, _ = make(3)
        async with started(a, b, c), raw_peer(a, key(9)) as x:
            claimed = f"/ip4/127.0.0.1/tcp/{await closed_port()}/ws"
            hearsay = f"/ip4/127.0.0.1/tcp/{await closed_port()}/ws/p2p/"
            hearsay += peer_id_from_node_key(key(7))
            await x.handshake(listen_address=claimed)
            await x.ws.send_bytes(encode_peers([hearsay]))
            await c.connect(addr(a))
            await wait_until(
                lambda: a.stats()["address_probes"] == 2 and a.stats()["addresses_verified"] == 1,
                a,
                what="both claims probed",
            )
            assert c.stats()["probes_answered"] == 1
            assert hearsay in a.known_addresses()  # a may dial it, but does not pass it on
            await b.connect(addr(a))
            await wait_until(lambda: addr(c) in b.known_addresses(), b, what="b learns c")
            assert sorted(b.known_addresses()) == sorted([addr(a), addr(c)])
            assert {p.address for p in a.peers()} >= {claimed + f"/p2p/{x.peer_id}", addr(c)}

    run(main())
