import asyncio

import pytest

from chain.codec import CodecError, encode_compact, encode_str, encode_u64
from node.network.messages import (
    BLOCK_RESPONSE,
    MAX_RESPONSE_BYTES,
    PEERS,
    Hello,
    Status,
    decode_block_request,
    decode_block_response,
    decode_peers,
    encode_block_request,
    encode_block_response,
    encode_peers,
    truncate_response,
)
from node.network.peer import FrameQueue, LruSet, TokenBucket


def test_hello_round_trip():
    h = Hello(
        "/cuckoo/1",
        1,
        b"\x01" * 32,
        5,
        b"\x02" * 32,
        "/ip4/1.2.3.4/tcp/5/ws",
        Status(9, b"\x03" * 32, 8, b"\x04" * 32),
        b"\x05" * 32,
    )
    assert Hello.decode(h.encode()) == h
    with pytest.raises(CodecError):
        Hello.decode(h.encode() + b"\x00")
    with pytest.raises(CodecError):
        Hello.decode(h.encode()[:-1])


def test_block_request_and_response_round_trip():
    data = encode_block_request(7, 100, 128)
    assert decode_block_request(data[1:]) == (7, 100, 128)
    items = [b"", b"a", b"b" * 300]
    data = encode_block_response(9, items)
    assert data[0] == BLOCK_RESPONSE
    assert decode_block_response(data[1:]) == (9, items)


def test_block_response_rejects_more_than_128_items():
    payload = encode_u64(1) + encode_compact(129) + encode_compact(0) * 129
    with pytest.raises(CodecError, match="129 items"):
        decode_block_response(payload)


def test_truncate_response_keeps_whole_items_under_the_cap():
    big = b"x" * (5 * 1024 * 1024)
    kept = truncate_response([big] * 5, 128)
    assert kept == [big] * 3  # 15 MiB fits, 20 MiB does not
    assert len(encode_block_response(1, kept)) <= MAX_RESPONSE_BYTES
    assert truncate_response([b"a"] * 200, 128) == [b"a"] * 128
    assert truncate_response([b"x" * (MAX_RESPONSE_BYTES + 1)], 1) == []


def test_peers_round_trip_and_caps():
    addrs = [f"/ip4/10.0.0.{i}/tcp/1/ws" for i in range(40)]
    data = encode_peers(addrs)
    assert data[0] == PEERS
    assert decode_peers(data[1:]) == addrs[:32]
    too_many = encode_compact(33) + b"".join(encode_str("a") for _ in range(33))
    with pytest.raises(CodecError):
        decode_peers(too_many)
    with pytest.raises(CodecError):
        decode_peers(encode_compact(1) + encode_str("a" * 300))


def test_token_bucket_refills_at_rate():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert bucket.take()
    assert not bucket.take()
    now[0] = 100.0  # capped at the burst
    assert sum(bucket.take() for _ in range(10)) == 3


def test_lru_set_forgets_oldest():
    lru = LruSet(2)
    assert lru.add(b"a")
    assert lru.add(b"b")
    assert not lru.add(b"a")  # refreshes a
    assert lru.add(b"c")  # evicts b
    assert b"a" in lru
    assert b"c" in lru
    assert b"b" not in lru
    assert len(lru) == 2


def test_frame_queue_bounds_frames_and_bytes():
    async def main():
        now = [1.0]
        q = FrameQueue(max_frames=3, max_bytes=10, clock=lambda: now[0])
        assert q.put(b"1234")
        assert q.put(b"5678")
        assert not q.put(b"abc")  # 11 bytes > 10
        assert q.full_since == 1.0
        assert q.put(b"z")
        assert not q.put(b"")
        assert q.dropped == 2
        assert len(q) == 3
        assert q.queued_bytes == 9
        assert await q.get() == b"1234"
        assert q.full_since == 1.0  # still more than half full
        assert await q.get() == b"5678"
        assert q.full_since is None
        assert await q.get() == b"z"
        parking = asyncio.Event()

        async def get_when_empty():
            parking.set()  # then, in the same step, get() finds the queue empty and parks
            return await q.get()

        waiter = asyncio.ensure_future(get_when_empty())
        await parking.wait()
        assert not waiter.done()
        q.put(b"late")
        assert await waiter == b"late"

    asyncio.run(main())
