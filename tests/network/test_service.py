"""NetworkService end to end on 127.0.0.1: handshake, mesh, gossip, bans, requests, queues."""

import asyncio
import logging

import aiohttp
import pytest

from chain.codec import encode_u16, encode_u32, encode_u64
from node.network import (
    BLOCK_ANNOUNCE,
    TRANSACTIONS,
    VOTE,
    Direction,
    NetworkError,
    PeerSlots,
    Status,
    Verdict,
    peer_id_from_node_key,
)
from node.network.messages import (
    BLOCK_REQUEST,
    BLOCK_RESPONSE,
    HELLO,
    STATUS,
    decode_block_request,
    decode_block_response,
    encode_block_request,
    encode_peers,
    frame,
)
from node.network.peerid import parse_multiaddr

from .helpers import (
    GENESIS,
    FakeHandler,
    RawPeer,
    addr,
    key,
    make,
    raw_peer,
    run,
    started,
    url,
    wait_until,
)
from .helpers import STATUS as OUR_STATUS


def test_handshake_connects_both_sides():
    async def main():
        a, ha = make(1)
        b, hb = make(2)
        async with started(a, b):
            assert await b.connect(addr(a)) == a.local_peer_id
            await wait_until(lambda: a.stats()["connections_opened"] == 1, a, what="a admits b")
            [info_b] = a.peers()
            [info_a] = b.peers()
            assert info_a.peer_id == a.local_peer_id
            assert info_a.direction is Direction.OUTBOUND
            assert info_a.address == addr(a)
            assert info_b.peer_id == b.local_peer_id
            assert info_b.direction is Direction.INBOUND
            assert info_b.address == addr(b)  # advertised in its hello
            assert (info_a.best_number, info_a.finalized_number) == (7, 5)
            assert info_a.best_hash == OUR_STATUS.best_hash
            assert ha.connected == [b.local_peer_id]
            assert hb.connected == [a.local_peer_id]
            assert a.best_peer_number() == 7
            assert a.local_peer_id == peer_id_from_node_key(key(1))

    run(main())


def test_handshake_rejects_genesis_mismatch():
    async def main():
        a, _ = make(1)
        b, _ = make(2, genesis_hash=b"\xee" * 32)
        async with started(a, b):
            with pytest.raises(NetworkError, match="genesis mismatch"):
                await b.connect(addr(a))
            # a checks the genesis too: its side of the handshake fails on its own
            await wait_until(lambda: a.stats()["handshakes_failed"] == 1, a)
            assert a.stats()["connections_opened"] == 0
            assert a.peer_count() == 0
            assert b.peer_count() == 0

    run(main())


def test_handshake_rejects_protocol_mismatch():
    async def main():
        a, _ = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.ws.send_bytes(raw.hello(protocol="/other/1"))
            assert (await raw.recv_binary())[0] == HELLO
            assert "protocol mismatch" in await raw.close_reason()
            assert a.peer_count() == 0

    run(main())


def test_handshake_rejects_bad_signature():
    async def main():
        a, ha = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake(bad_signature=True)
            assert "bad authentication signature" in await raw.close_reason()
            assert a.peer_count() == 0
            assert ha.connected == []

    run(main())


def test_handshake_rejects_self_connection():
    async def main():
        a, _ = make(1, bootnodes=[])
        async with started(a):
            with pytest.raises(NetworkError, match="connected to self"):
                await a.connect(addr(a))
            assert a.peer_count() == 0

    run(main())


def test_handshake_rejects_unexpected_peer_id():
    async def main():
        a, _ = make(1)
        b, _ = make(2)
        async with started(a, b):
            wrong = str(parse_multiaddr(addr(a)).with_peer_id(peer_id_from_node_key(key(3))))
            with pytest.raises(NetworkError, match="peer id mismatch"):
                await b.connect(wrong)
            # b hangs up before its AUTH: a's side of the handshake fails, a admits nobody
            await wait_until(lambda: a.stats()["handshakes_failed"] == 1, a)
            assert a.stats()["connections_opened"] == 0
            assert a.peer_count() == 0
            assert b.peer_count() == 0

    run(main())


def test_handshake_rejects_when_full_and_duplicates_are_merged():
    async def main():
        a, ha = make(1, slots=PeerSlots(in_peers=1))
        b, _ = make(2)
        c, _ = make(3)
        async with started(a, b, c):
            await b.connect(addr(a))
            # a second connection from the same dialer replaces the first, silently
            assert await b.connect(addr(a)) == a.local_peer_id
            # the replaced connection is torn down on both sides
            await wait_until(
                lambda: (
                    a.stats()["connections_closed"] == 1 and b.stats()["connections_closed"] == 1
                ),
                a,
                b,
                what="the first connection closed",
            )
            assert a.peer_count() == 1
            assert b.peer_count() == 1
            assert ha.connected == [b.local_peer_id]
            assert ha.disconnected == []
            with pytest.raises(NetworkError, match="too many inbound peers"):
                await c.connect(addr(a))

    run(main())


def test_simultaneous_dials_leave_one_connection():
    async def main():
        a, ha = make(1)
        b, hb = make(2)
        await a.start()
        await b.start()
        try:
            results = await asyncio.gather(
                a.connect(addr(b)), b.connect(addr(a)), return_exceptions=True
            )
            assert any(isinstance(r, str) for r in results), results

            def settled(n):
                # both connections resolved on this side (admitted or refused in the
                # handshake), and of the admitted ones all but one closed again
                s = n.stats()
                opened = s["connections_opened"]
                return (
                    opened + s["handshakes_failed"] == 2 and opened - s["connections_closed"] == 1
                )

            await wait_until(lambda: settled(a) and settled(b), a, b, what="one connection left")
            assert a.peer_count() == 1
            assert b.peer_count() == 1
            # both sides kept the same connection: it carries messages
            a.broadcast(VOTE, b"after-merge")
            await wait_until(lambda: len(hb.gossip) == 1, b)
            assert len(ha.connected) == len(hb.connected) == 1
        finally:
            await a.stop()
            await b.stop()

    run(main())


def test_peer_exchange_builds_a_full_mesh():
    async def main():
        a, _ = make(1)
        await a.start()
        others = [make(n, bootnodes=[addr(a)])[0] for n in (2, 3, 4)]
        nodes = [a, *others]
        async with started(*others):
            try:
                await wait_until(
                    lambda: all(n.peer_count() == 3 for n in nodes), *nodes, what="full mesh"
                )
                for n in nodes:
                    ids = {p.peer_id for p in n.peers()}
                    assert ids == {m.local_peer_id for m in nodes} - {n.local_peer_id}
            finally:
                await a.stop()

    run(main())


def test_gossip_reaches_every_handler_exactly_once():
    async def main():
        a, ha = make(1)
        await a.start()
        built = [make(n, bootnodes=[addr(a)]) for n in (2, 3, 4)]
        nodes = [a] + [s for s, _ in built]
        handlers = [h for _, h in built]
        async with started(*nodes[1:]):
            try:
                await wait_until(lambda: all(n.peer_count() == 3 for n in nodes), *nodes)
                assert a.broadcast(VOTE, b"vote-1") == 3
                assert a.broadcast(VOTE, b"vote-1") == 0  # every peer has it

                def relays_settled():
                    # a relay is queued before the frame that caused it counts as received,
                    # so once every frame queued anywhere was received, none is in flight
                    sent = sum(n.stats()["gossip_sent"] for n in nodes)
                    return sent == sum(n.stats()["gossip_received"] for n in nodes)

                await wait_until(relays_settled, *nodes, what="every relay received")
                assert sum(n.stats()["gossip_duplicates"] for n in nodes) > 0  # relays happened
                for h in handlers:
                    assert h.gossip == [(a.local_peer_id, VOTE, b"vote-1")]
                assert ha.gossip == []  # its own message, echoed back, is not delivered
            finally:
                await a.stop()

    run(main())


def test_gossip_floods_along_a_line_unless_kept():
    async def main():
        # a - b - c without peer exchange: c hears a only through b's relay
        a, _ = make(1, peer_exchange=False)
        await a.start()
        b, hb = make(2, peer_exchange=False, bootnodes=[addr(a)])
        await b.start()
        c, hc = make(3, peer_exchange=False, bootnodes=[addr(b)])
        hb.verdict = lambda kind, payload: Verdict.KEEP if payload == b"kept" else Verdict.ACCEPT
        async with started(c):
            try:
                await wait_until(lambda: b.peer_count() == 2 and c.peer_count() == 1, b, c)
                assert a.peer_count() == 1
                a.broadcast(BLOCK_ANNOUNCE, b"relayed")
                a.broadcast(TRANSACTIONS, b"kept")
                # b reads a's frames in order and relays in order: once c has the marker sent
                # after "kept", b has decided on "kept" and c has read whatever b relayed before
                a.broadcast(VOTE, b"marker")
                await wait_until(lambda: len(hc.gossip) == 2, c)
                assert hc.gossip == [
                    (b.local_peer_id, BLOCK_ANNOUNCE, b"relayed"),
                    (b.local_peer_id, VOTE, b"marker"),
                ]
                assert [p for _, _, p in hb.gossip] == [b"relayed", b"kept", b"marker"]
            finally:
                await a.stop()
                await b.stop()

    run(main())


def test_invalid_verdict_bans_the_sender():
    async def main():
        a, ha = make(1)
        await a.start()
        b, _ = make(2, bootnodes=[addr(a)])
        ha.verdict = lambda kind, payload: Verdict.INVALID
        async with started(b):
            try:
                # b's dial completes on b once it has a's AUTH, after a admitted b
                await wait_until(lambda: a.peer_count() == 1 and b.peer_count() == 1, a, b)
                assert b.broadcast(VOTE, b"forged") == 1
                await wait_until(lambda: a.peer_count() == 0 and b.peer_count() == 0, a, b)
                assert a.is_banned(b.local_peer_id)
                assert ha.disconnected == [b.local_peer_id]
                # b keeps dialing its bootnode: refused each time
                await wait_until(lambda: a.stats()["handshakes_refused_banned"] >= 2, a)
                assert a.peer_count() == 0
                assert b.peer_count() == 0
                with pytest.raises(NetworkError, match="banned"):
                    await b.connect(addr(a))
                with pytest.raises(NetworkError, match="banned"):
                    await a.connect(addr(b))  # nor does a dial it
                assert ha.connected == [b.local_peer_id]
                assert a.stats()["bans"] == 1
                assert a.stats()["banned"] == 1
            finally:
                await a.stop()

    run(main())


def test_report_bans_or_disconnects():
    async def main():
        a, ha = make(1)
        b, _ = make(2)
        c, _ = make(3)
        async with started(a, b, c):
            await b.connect(addr(a))
            await c.connect(addr(a))
            await wait_until(lambda: a.peer_count() == 2, a)
            a.report(b.local_peer_id, "bad block", ban=False)
            a.report(c.local_peer_id, "equivocating", ban=True)
            await wait_until(lambda: len(ha.disconnected) == 2, a)
            assert not a.is_banned(b.local_peer_id)
            assert a.is_banned(c.local_peer_id)
            # b may come back (it redials the address it knows), c may not: it redials too,
            # and is refused
            await wait_until(lambda: b.local_peer_id in {p.peer_id for p in a.peers()}, a)
            await wait_until(lambda: a.stats()["handshakes_refused_banned"] >= 1, a)
            assert {p.peer_id for p in a.peers()} == {b.local_peer_id}
            with pytest.raises(NetworkError, match="banned"):
                await c.connect(addr(a))

    run(main())


def test_block_requests_with_count_and_size_caps():
    async def main():
        blocks = [b"block-%d" % i for i in range(300)]
        a, ha = make(1)
        a_handler = FakeHandler(blocks)
        a, ha = make(1, handler=a_handler)
        b, _ = make(2)
        async with started(a, b):
            pid = await b.connect(addr(a))
            assert await b.request_blocks(pid, 2, 3) == blocks[2:5]
            assert await b.request_blocks(pid, 299, 10) == blocks[299:]
            assert await b.request_blocks(pid, 0, 1000) == blocks[:128]
            assert ha.block_requests[-1] == (b.local_peer_id, 0, 128)
            assert await b.request_blocks(pid, 0, 0) == []
            big = b"x" * (5 * 1024 * 1024)
            a_handler.blocks = [big] * 5
            got = await b.request_blocks(pid, 0, 5)
            assert got == [big] * 3  # 16 MiB cap, whole items
            # concurrent requests beyond the per-peer limit queue up and all complete
            a_handler.blocks = blocks
            results = await asyncio.gather(*(b.request_blocks(pid, i, 1) for i in range(10)))
            assert results == [[blocks[i]] for i in range(10)]
            with pytest.raises(NetworkError, match="not connected"):
                await b.request_blocks(peer_id_from_node_key(key(9)), 0, 1)

    run(main())


def test_block_request_times_out_and_fails_on_disconnect():
    async def main():
        a, _ = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()
            pid = peer_id_from_node_key(raw.seed)
            await wait_until(lambda: a.peer_count() == 1, a)
            with pytest.raises(NetworkError, match="timed out"):
                await a.request_blocks(pid, 0, 1, timeout=0.2)
            pending = asyncio.ensure_future(a.request_blocks(pid, 0, 1, timeout=5))
            # the request is pending once it reaches the peer: read up to it
            while True:
                data = await raw.recv_binary()
                if data[0] == BLOCK_REQUEST and decode_block_request(data[1:])[0] == 2:
                    break
            await raw.ws.close()
            with pytest.raises(NetworkError, match="disconnected"):
                await pending

    run(main())


def test_inbound_requests_are_rate_limited_then_banned():
    async def main():
        # 1 request/s, burst 10; the excess is answered empty and, repeated, banned
        a, _ = make(1, handler=FakeHandler([b"b0"]), request_rate=1, request_burst=10)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()
            for i in range(14):
                await raw.ws.send_bytes(encode_block_request(i, 0, 1))
            answers = {}
            while len(answers) < 14:
                data = await raw.recv_binary()
                if data[0] == BLOCK_RESPONSE:
                    rid, items = decode_block_response(data[1:])
                    answers[rid] = items
            assert [answers[i] for i in range(10)] == [[b"b0"]] * 10
            assert [answers[i] for i in range(10, 14)] == [[]] * 4  # rate limited
            assert a.stats()["requests_rate_limited"] == 4
            assert a.peer_count() == 1
            for i in range(20):
                await raw.ws.send_bytes(encode_block_request(100 + i, 0, 1))
            assert "too many block requests" in await raw.close_reason()
            assert a.is_banned(peer_id_from_node_key(raw.seed))

    run(main())


@pytest.mark.parametrize(
    ("bad_frame", "reason"),
    [
        (frame(STATUS, b"\x01\x02"), "undecodable status"),
        (frame(BLOCK_REQUEST, encode_u64(1) + encode_u32(0)), "undecodable block-request"),
        (frame(200, b""), "unexpected 200 frame"),
        (frame(HELLO, b""), "unexpected hello frame"),
        (b"", "empty frame"),
    ],
)
def test_malformed_frame_bans(bad_frame, reason, caplog):
    async def main():
        a, _ = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()
            await wait_until(lambda: a.peer_count() == 1, a)
            caplog.clear()
            await raw.ws.send_bytes(bad_frame)
            assert reason in await raw.close_reason()
            assert a.is_banned(peer_id_from_node_key(raw.seed))
            await wait_until(lambda: a.peer_count() == 0, a)

    with caplog.at_level(logging.INFO, logger="node.network"):
        run(main())
    # one line, no traceback
    [line] = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert line.getMessage().startswith("Banned peer 12D3KooW")
    assert reason in line.getMessage()
    assert line.exc_info is None


def test_text_frame_bans():
    async def main():
        a, _ = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()
            await raw.ws.send_str("hello?")
            assert "banned" in await raw.close_reason()

    run(main())


def test_outbound_queue_is_bounded_and_slow_peer_dropped():
    async def main():
        a, _ = make(1, max_queue_frames=16, max_queue_bytes=1 << 20, slow_peer_seconds=0.5)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()  # then never reads again
            pid = peer_id_from_node_key(raw.seed)
            await wait_until(lambda: a.peer_count() == 1, a)
            payload = b"y" * 65_536
            peak = 0
            for i in range(1500):
                a.broadcast(TRANSACTIONS, encode_u16(i) + payload)
                peer = a._peers.get(pid)
                if peer is not None:
                    peak = max(peak, len(peer.queue))
                    assert peer.queue.queued_bytes <= 1 << 20
                if i % 50 == 0:  # the writer drains into the socket meanwhile, so that the
                    await asyncio.sleep(0)  # TCP buffers fill for real: a yield, not a wait
            assert peak <= 16
            assert a.stats()["gossip_dropped"] > 0
            await wait_until(lambda: a.peer_count() == 0, a, what="slow peer dropped")
            assert a.stats()["slow_peers"] == 1

    run(main())


def test_status_updates_reach_peers():
    async def main():
        a, _ = make(1)
        b, hb = make(2)
        async with started(a, b):
            await b.connect(addr(a))
            for n in range(8, 20):  # coalesced: the last one wins
                a.update_status(Status(n, bytes([n]) * 32, n - 2, b"\x00" * 32))
            await wait_until(lambda: b.best_peer_number() == 19, b)
            [info] = b.peers()
            assert (info.best_hash, info.finalized_number) == (bytes([19]) * 32, 17)
            assert hb.statuses[-1].best_number == 19
            assert len(hb.statuses) < 12

    run(main())


def test_garbage_handshakes_do_not_hurt_the_service():
    async def main():
        a, _ = make(1, handshake_timeout=0.3)
        b, _ = make(2)
        async with started(a, b), aiohttp.ClientSession() as session:
            async with session.ws_connect(url(a)) as ws:  # text instead of a hello
                await ws.send_str("GET / HTTP/1.1")
                msg = await ws.receive(3)
                assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.CLOSE)
            async with session.ws_connect(url(a)) as ws:  # random bytes
                await ws.send_bytes(b"\x00\xff" * 100)
            async with session.ws_connect(url(a)) as ws:  # a hello of junk
                await ws.send_bytes(frame(HELLO, b"junk"))
            async with session.ws_connect(url(a)) as ws:  # an oversized hello
                await ws.send_bytes(frame(HELLO, b"z" * 100_000))
            async with session.ws_connect(url(a)) as ws:  # silence: handshake timeout
                assert "handshake timed out" in await RawPeer(ws, key(98)).close_reason()
            async with session.ws_connect(url(a)):  # connect and leave
                pass
            async with session.get(url(a).replace("ws://", "http://")) as resp:  # no upgrade
                assert resp.status >= 400
            async with session.get(url(a).replace("/p2p", "/")) as resp:
                assert resp.status == 404
            # text, bytes, junk, oversized, silence, leave: six failed handshakes (the two
            # plain HTTP requests never reach one)
            await wait_until(lambda: a.stats()["handshakes_failed"] == 6, a)
            assert a.stats()["connections_opened"] == 0
            assert a.peer_count() == 0
            assert await b.connect(addr(a)) == a.local_peer_id
            assert a.stats()["handshakes_failed"] == 6

    run(main())


def test_stop_is_clean(caplog):
    async def main():
        a, _ = make(1)
        await a.start()
        b, hb = make(2, bootnodes=[addr(a)])
        c, hc = make(3, bootnodes=[addr(a)])
        await b.start()
        await c.start()
        await wait_until(lambda: all(n.peer_count() == 2 for n in (a, b, c)), a, b, c)
        await b.request_blocks(a.local_peer_id, 0, 1)
        await a.stop()
        await wait_until(lambda: b.peer_count() == 1 and c.peer_count() == 1, b, c)
        assert hb.disconnected == [a.local_peer_id]
        assert hc.disconnected == [a.local_peer_id]
        await b.stop()
        await c.stop()
        await a.stop()  # idempotent
        assert asyncio.all_tasks() == {asyncio.current_task()}

    with caplog.at_level(logging.INFO, logger="node.network"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Connected to peer 12D3KooW") for m in messages)
    assert any(m.startswith("Disconnected from 12D3KooW") for m in messages)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records), messages


def test_genesis_is_checked_by_the_listener_too():
    async def main():
        a, _ = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.ws.send_bytes(raw.hello(genesis=GENESIS[::-1]))
            assert "genesis mismatch" in await raw.close_reason()

    run(main())


def test_stop_is_prompt_with_pending_dials():
    async def main():
        upgrades = asyncio.Condition()
        asked = 0

        async def silent(reader, writer):  # reads the upgrade request, never answers it
            nonlocal asked
            await reader.readuntil(b"\r\n\r\n")
            async with upgrades:
                asked += 1
                upgrades.notify_all()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        blackhole = f"/ip4/127.0.0.1/tcp/{port}/ws/p2p/{peer_id_from_node_key(key(5))}"
        a, _ = make(1, bootnodes=[blackhole], handshake_timeout=10)
        await a.start()
        pending = asyncio.ensure_future(a.connect(blackhole))
        async with upgrades:  # both dials (the bootnode's and ours) wait for an answer
            await upgrades.wait_for(lambda: asked == 2)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await a.stop()
        assert loop.time() - began < 2
        with pytest.raises(NetworkError):
            await pending
        server.close()
        await server.wait_closed()

    run(main())


def test_peers_message_with_bad_addresses_is_ignored():
    async def main():
        a, ha = make(1)
        async with started(a), raw_peer(a) as raw:
            await raw.handshake()
            await raw.ws.send_bytes(encode_peers(["garbage", "/ip4/127.0.0.1/tcp/1/ws", addr(a)]))
            await raw.ws.send_bytes(frame(VOTE, b"still here"))
            # frames are read in order: once the vote is delivered the peers frame was handled
            await wait_until(lambda: [p for _, _, p in ha.gossip] == [b"still here"], a)
            assert a.peer_count() == 1
            assert not a.is_banned(peer_id_from_node_key(raw.seed))
            assert a.stats()["bans"] == 0
            assert a.stats()["known_addresses"] == 0  # no peer id, or our own: nothing to dial
            assert a.stats()["handshakes_failed"] == 0

    run(main())


def test_wait_for_and_next_change_follow_the_service_state():
    async def main():
        a, ha = make(1)
        b, _ = make(2)
        async with started(a, b):
            abandoned = a.next_change()
            change = a.next_change()
            connected = asyncio.ensure_future(a.wait_for(lambda: a.peer_count() == 1, timeout=5))
            abandoned.cancel()  # one waiter giving up leaves the others waiting
            await b.connect(addr(a))
            await connected
            assert ha.connected == [b.local_peer_id]  # the change comes after the handler's
            assert change.done()
            banned = a.next_change()
            a.report(b.local_peer_id, "test", ban=True)
            assert banned.done()  # at once: the ban list changed
            await a.wait_for(lambda: a.stats()["connections_closed"] == 1, timeout=5)
            assert a.peer_count() == 0
            assert ha.disconnected == [b.local_peer_id]
            with pytest.raises(TimeoutError):  # the timeout is what is tested here
                await a.wait_for(lambda: False, timeout=0.05)

    run(main())
