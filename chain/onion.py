"""Hash onions for the Randomness pallet (RANDAO): a hash chain an author reveals backwards.

    h_0 = seed,  h_{i+1} = blake2_256(h_i),  tip = h_N  (N = ONION_LENGTH)

The chain stores the tip; the author's k-th reveal (k = 0, 1, ...) is `h_{N-k-1}`, which the
chain checks with one hash against the previous tip. Nobody but the holder of the seed can
compute the next reveal, and the holder cannot choose it: it is fixed since the commit.

`HashOnion` computes the chain once (N hashes, ~0.5 s for N = 2^20 in CPython) and keeps one
value every `CHECKPOINT_INTERVAL`, so any value costs at most CHECKPOINT_INTERVAL - 1 hashes and
the onion takes N / CHECKPOINT_INTERVAL x 32 bytes (32 KiB) of memory.

Pure: no clock, randomness or I/O.
"""

from __future__ import annotations

import hashlib

__all__ = ["CHECKPOINT_INTERVAL", "ONION_LENGTH", "SEED_DOMAIN", "HashOnion", "onion_seed"]

ONION_LENGTH = 2**20  # reveals per onion (consensus-visible: the Randomness pallet's limit)
CHECKPOINT_INTERVAL = 1024
SEED_DOMAIN = b"cuckoo/randao/onion/v1"


def _h(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def onion_seed(secret_material: bytes, generation: int) -> bytes:
    """The seed `h_0` of an author's onion number `generation` (u32), from secret material only
    its holder knows (the node derives it from its Aura key)."""
    if not 0 <= generation < 2**32:
        raise ValueError(f"onion generation out of range: {generation}")
    return _h(SEED_DOMAIN + generation.to_bytes(4, "little") + secret_material)


class HashOnion:
    """The onion `h_0 .. h_N` of one seed, with checkpoints. `repr` never shows a value."""

    __slots__ = ("_checkpoints", "_tip", "interval", "length")

    def __init__(
        self, seed: bytes, length: int | None = None, interval: int = CHECKPOINT_INTERVAL
    ) -> None:
        n = ONION_LENGTH if length is None else length
        if n < 1:
            raise ValueError("an onion needs at least one value to reveal")
        if interval < 1:
            raise ValueError("checkpoint interval must be positive")
        if len(seed) != 32:
            raise ValueError("an onion seed is 32 bytes")
        self.length = n
        self.interval = interval
        blake2b = hashlib.blake2b
        checkpoints = [bytes(seed)]
        h = bytes(seed)
        for i in range(1, n + 1):
            h = blake2b(h, digest_size=32).digest()
            if i % interval == 0:
                checkpoints.append(h)
        self._checkpoints = checkpoints
        self._tip = h

    def tip(self) -> bytes:
        """`h_N`, the value a Commit registers."""
        return self._tip

    def value(self, i: int) -> bytes:
        """`h_i` (0 <= i <= N), from the checkpoint below it: fewer than `interval` hashes."""
        if not 0 <= i <= self.length:
            raise IndexError(f"onion index {i} out of 0..{self.length}")
        h = self._checkpoints[i // self.interval]
        for _ in range(i % self.interval):
            h = _h(h)
        return h

    def reveal(self, revealed: int) -> bytes:
        """The value to reveal after `revealed` earlier reveals: `h_{N-revealed-1}`."""
        if not 0 <= revealed < self.length:
            raise IndexError(f"onion exhausted or bad count: {revealed} of {self.length}")
        return self.value(self.length - revealed - 1)

    def __repr__(self) -> str:
        return f"HashOnion(length={self.length}, tip=0x{self._tip.hex()[:16]}..)"
