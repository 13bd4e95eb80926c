"""The pool's ban list: hashes of transactions refused as invalid in every state are refused
again at once, for `ban_seconds`, at most `max_banned` of them. Banning is O(1) whatever the
fill: ended bans leave from the front, and a full list drops its oldest ban (it used to rebuild
the whole list on every new ban once full, then give up: 9.5 ms a refusal, and nothing banned;
`bench/refusal_bench.py` measures both fills)."""

from __future__ import annotations

import dataclasses

import pytest

from chain.hashing import blake2_256
from chain.primitives import encode_unsigned_extrinsic
from chain.storage.trie import MemoryNodeStore, Trie
from genesis.builder import Genesis, build_genesis, load_spec
from node.txpool import PoolError, PoolLimits, TxPool
from pallets.executive import Executive
from pallets.runtime import build_runtime

BAN_SECONDS = 100.0


@dataclasses.dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return build_genesis(load_spec("dev"))


def make_pool(genesis: Genesis, clock: Clock, max_banned: int = 3) -> TxPool:
    state = Trie(MemoryNodeStore(genesis.nodes), genesis.header.state_root)
    limits = PoolLimits(ban_seconds=BAN_SECONDS, max_banned=max_banned)
    ex = Executive(build_runtime(genesis.config))
    return TxPool(ex, lambda: (state, genesis.hash, 0), limits, clock=clock)


def garbage(i: int) -> bytes:
    """An unsigned extrinsic whose call does not decode (no pallet 99): refused as bad format."""
    return encode_unsigned_extrinsic(bytes((99, 0)) + i.to_bytes(4, "little"))


def refusal(pool: TxPool, raw: bytes) -> int:
    with pytest.raises(PoolError) as info:
        pool.submit(raw)
    return info.value.code


def banned(pool: TxPool, raws: list[bytes]) -> list[bool]:
    """Which of `raws` the pool refuses as banned (1012); each is submitted once."""
    return [refusal(pool, raw) == 1012 for raw in raws]


def test_an_invalid_transaction_is_refused_then_refused_as_banned(genesis: Genesis) -> None:
    pool = make_pool(genesis, Clock())
    assert refusal(pool, garbage(1)) == 1001
    assert refusal(pool, garbage(1)) == 1012


def test_a_full_ban_list_drops_its_oldest_ban(genesis: Genesis) -> None:
    clock = Clock()
    pool = make_pool(genesis, clock, max_banned=3)
    txs = [garbage(i) for i in range(4)]
    for raw in txs:
        clock.now += 1
        assert refusal(pool, raw) == 1001
    assert len(pool.banned) == 3
    # the newest is banned although three live bans filled the list; the oldest made room
    assert banned(pool, txs[1:]) == [True, True, True]
    assert banned(pool, txs[:1]) == [False]  # refused anew (1001), and banned again


def test_ended_bans_are_dropped(genesis: Genesis) -> None:
    clock = Clock()
    pool = make_pool(genesis, clock, max_banned=10)
    old = [garbage(i) for i in range(3)]
    for raw in old:
        refusal(pool, raw)
    clock.now += BAN_SECONDS + 1
    refusal(pool, garbage(99))  # a new ban sweeps the ended ones from the front
    assert len(pool.banned) == 1
    assert banned(pool, old) == [False, False, False]


def test_a_ban_renewed_moves_behind_the_others(genesis: Genesis) -> None:
    clock = Clock()
    pool = make_pool(genesis, clock, max_banned=2)
    a, b, c = (garbage(i) for i in range(3))
    refusal(pool, a)
    clock.now += 1
    refusal(pool, b)
    clock.now += 1
    pool.drop(blake2_256(a), ban=True)  # a's ban renewed: now the newest
    refusal(pool, c)  # full: drops the oldest, b
    assert banned(pool, [a, c]) == [True, True]
    assert banned(pool, [b]) == [False]


def test_a_full_list_of_live_bans_stays_bounded(genesis: Genesis) -> None:
    """At the default size: 100,000 live bans, then more invalid transactions."""
    limit = PoolLimits().max_banned
    pool = make_pool(genesis, Clock(), max_banned=limit)
    for i in range(limit):
        pool.drop(i.to_bytes(32, "little"), ban=True)
    assert len(pool.banned) == limit
    new = [garbage(i) for i in range(5)]
    for raw in new:
        assert refusal(pool, raw) == 1001
    assert len(pool.banned) == limit
    assert banned(pool, new) == [True] * 5
    assert (0).to_bytes(32, "little") not in pool.banned  # the five oldest made room
    assert (5).to_bytes(32, "little") in pool.banned
