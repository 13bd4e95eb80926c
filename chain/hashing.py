"""Substrate's hashers: blake2b-256/128, twox64/128 (xxHash64 with seeds 0, 1, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

import xxhash


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def blake2_64(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def twox64(data: bytes) -> bytes:
    return xxhash.xxh64_intdigest(data, seed=0).to_bytes(8, "little")


def twox128(data: bytes) -> bytes:
    return xxhash.xxh64_intdigest(data, seed=0).to_bytes(8, "little") + xxhash.xxh64_intdigest(
        data, seed=1
    ).to_bytes(8, "little")


def twox256(data: bytes) -> bytes:
    return b"".join(xxhash.xxh64_intdigest(data, seed=i).to_bytes(8, "little") for i in range(4))


def blake2_128_concat(data: bytes) -> bytes:
    return blake2_128(data) + data


def twox64_concat(data: bytes) -> bytes:
    return twox64(data) + data


def identity(data: bytes) -> bytes:
    return data


HASHERS: Mapping[str, Callable[[bytes], bytes]] = MappingProxyType(
    {
        "Blake2_128": blake2_128,
        "Blake2_256": blake2_256,
        "Blake2_128Concat": blake2_128_concat,
        "Twox128": twox128,
        "Twox256": twox256,
        "Twox64Concat": twox64_concat,
        "Identity": identity,
    }
)


def storage_prefix(pallet: str, item: str) -> bytes:
    """twox128(pallet) ++ twox128(item): the key of a StorageValue, the prefix of a map."""
    return twox128(pallet.encode()) + twox128(item.encode())
