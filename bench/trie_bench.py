"""Trie write/read benchmark (a script, not a test).

Builds a trie of N random 48-byte keys / 80-byte values in batches, reports µs per written
key and blake2_256 calls per written key, plus the cost of one blake2_256 over 516 bytes (a
full branch node) measured in the same run.

    python bench/trie_bench.py [--keys 100000] [--batch 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import chain.storage.trie as trie_mod  # noqa: E402
from chain.hashing import blake2_256  # noqa: E402
from chain.storage.trie import MemoryNodeStore, NodeCache, Trie  # noqa: E402


def time_blake2(n: int = 200_000) -> float:
    data = bytes(range(256)) * 2 + b"\x00" * 4
    assert len(data) == 516
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            blake2_256(data)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    calls = 0

    def counting_blake2(data: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return blake2_256(data)

    trie_mod.blake2_256 = counting_blake2  # type: ignore[assignment]
    store = MemoryNodeStore()
    cache = NodeCache()
    trie = Trie(store, cache=cache)
    keys: list[bytes] = []
    rows: list[tuple[int, float, float]] = []
    total_time = 0.0
    total_calls = 0
    for done in range(0, args.keys, args.batch):
        batch = {rnd.randbytes(48): rnd.randbytes(80) for _ in range(args.batch)}
        keys.extend(batch)
        calls = 0
        t0 = time.perf_counter()
        root, nodes = trie.apply(batch)
        elapsed = time.perf_counter() - t0
        store.update(nodes)
        trie = Trie(store, root, cache)
        total_time += elapsed
        total_calls += calls
        rows.append((done + len(batch), elapsed / len(batch) * 1e6, calls / len(batch)))

    # A block-like batch into the full trie: update half existing keys, insert half new.
    update = {k: rnd.randbytes(80) for k in rnd.sample(keys, args.batch)}
    update.update({rnd.randbytes(48): rnd.randbytes(80) for _ in range(args.batch)})
    calls = 0
    t0 = time.perf_counter()
    trie.apply(update)
    mixed_us = (time.perf_counter() - t0) / len(update) * 1e6
    mixed_calls = calls / len(update)
    trie_mod.blake2_256 = blake2_256

    sample = rnd.sample(keys, 20_000)
    t0 = time.perf_counter()
    for key in sample:
        trie.get(key)
    get_us = (time.perf_counter() - t0) / len(sample) * 1e6
    cold = Trie(store, trie.root, NodeCache())
    t0 = time.perf_counter()
    for key in sample:
        cold.get(key)
    cold_get_us = (time.perf_counter() - t0) / len(sample) * 1e6

    hash_us = time_blake2()
    write_us = total_time / args.keys * 1e6
    print(f"{'trie size':>10} {'µs/key':>8} {'hash/key':>9}")
    for size, us, per_key in rows[:: max(1, len(rows) // 5)] + rows[-1:]:
        print(f"{size:>10} {us:>8.2f} {per_key:>9.2f}")
    print()
    print(f"build {args.keys} keys, batches of {args.batch}:")
    print(f"  apply µs per written key      {write_us:8.2f}")
    print(f"  blake2_256 calls per key      {total_calls / args.keys:8.2f}")
    print(f"mixed batch ({len(update)} keys: half updates) into {args.keys}-key trie:")
    print(f"  apply µs per written key      {mixed_us:8.2f}")
    print(f"  blake2_256 calls per key      {mixed_calls:8.2f}")
    print(f"get µs (warm cache)             {get_us:8.2f}")
    print(f"get µs (cold cache, decode)     {cold_get_us:8.2f}")
    print(f"blake2_256(516 B) µs            {hash_us:8.3f}")
    print(f"apply µs/key ÷ blake2 µs        {write_us / hash_us:8.1f}")


if __name__ == "__main__":
    main()
