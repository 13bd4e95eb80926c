"""Trie write/read benchmark (a script, not a test).

Builds a trie of N random 48-byte keys / 80-byte values in batches, reports µs per written
key and blake2_256 calls per written key, plus the cost of one blake2_256 over 516 bytes (a
full branch node) measured in the same run. Times are process CPU time, which is steadier
than wall time on a shared machine.

    python bench/trie_bench.py [--keys 100000] [--batch 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import chain.storage.trie as trie_mod
from chain.hashing import blake2_256
from chain.storage.trie import MemoryNodeStore, NodeCache, Trie


def time_blake2(n: int = 200_000) -> float:
    data = bytes(range(256)) * 2 + b"\x00" * 4
    assert len(data) == 516
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            blake2_256(data)
        best = min(best, (time.process_time() - t0) / n)
    return best * 1e6


def count_hashes(trie: Trie, changes: dict[bytes, bytes | None]) -> int:
    """blake2_256 calls made by one `apply` (apply is pure, so it can be run again)."""
    calls = 0

    def counting(data: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return blake2_256(data)

    trie_mod.blake2_256 = counting  # type: ignore[assignment]
    try:
        trie.apply(changes)
    finally:
        trie_mod.blake2_256 = blake2_256
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    store = MemoryNodeStore()
    cache = NodeCache()
    trie = Trie(store, cache=cache)
    keys: list[bytes] = []
    rows: list[tuple[int, float, float]] = []
    total_time = 0.0
    total_nodes = 0
    for done in range(0, args.keys, args.batch):
        batch = {rnd.randbytes(48): rnd.randbytes(80) for _ in range(args.batch)}
        keys.extend(batch)
        t0 = time.process_time()
        root, nodes = trie.apply(batch)
        elapsed = time.process_time() - t0
        store.update(nodes)
        trie = Trie(store, root, cache)
        total_time += elapsed
        total_nodes += len(nodes)  # each new node is hashed exactly once
        rows.append((done + len(batch), elapsed / len(batch) * 1e6, len(nodes) / len(batch)))

    # A block-like batch into the full trie: update `batch` existing keys, insert as many new.
    update: dict[bytes, bytes | None] = {k: rnd.randbytes(80) for k in rnd.sample(keys, args.batch)}
    update.update({rnd.randbytes(48): rnd.randbytes(80) for _ in range(args.batch)})
    t0 = time.process_time()
    trie.apply(update)
    mixed_us = (time.process_time() - t0) / len(update) * 1e6
    mixed_calls = count_hashes(trie, update) / len(update)

    sample = rnd.sample(keys, 20_000)
    get_us = []
    for _ in range(2):  # the first pass fills the cache, the second is warm
        t0 = time.process_time()
        for key in sample:
            trie.get(key)
        get_us.append((time.process_time() - t0) / len(sample) * 1e6)
    cold = Trie(store, trie.root, NodeCache())
    t0 = time.process_time()
    for key in sample:
        cold.get(key)
    cold_get_us = (time.process_time() - t0) / len(sample) * 1e6

    hash_us = time_blake2()
    write_us = total_time / args.keys * 1e6
    print(f"{'trie size':>10} {'µs/key':>8} {'hash/key':>9}")
    for size, us, per_key in rows[:: max(1, len(rows) // 5)] + rows[-1:]:
        print(f"{size:>10} {us:>8.2f} {per_key:>9.2f}")
    print()
    print(f"build {args.keys} keys, batches of {args.batch}:")
    print(f"  apply µs per written key      {write_us:8.2f}")
    print(f"  blake2_256 calls per key      {total_nodes / args.keys:8.2f}")
    print(f"mixed batch ({len(update)} keys: half updates) into {args.keys}-key trie:")
    print(f"  apply µs per written key      {mixed_us:8.2f}")
    print(f"  blake2_256 calls per key      {mixed_calls:8.2f}")
    print(f"get µs (first pass)             {get_us[0]:8.2f}")
    print(f"get µs (warm cache)             {get_us[1]:8.2f}")
    print(f"get µs (cold cache, decode)     {cold_get_us:8.2f}")
    print(f"blake2_256(516 B) µs            {hash_us:8.3f}")
    print(f"apply µs/key ÷ blake2 µs        {write_us / hash_us:8.1f}")
    print(f"mixed µs/key ÷ blake2 µs        {mixed_us / hash_us:8.1f}")


if __name__ == "__main__":
    main()
