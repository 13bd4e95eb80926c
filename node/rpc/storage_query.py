"""Storage queries of the new JSON-RPC spec (`chainHead_v1_storage`, `archive_v1_storage`): the
items a client asks for, checked, and the items the state answers with.

An item is `{"key": hex, "type": one of QUERY_TYPES}` (`archive_v1_storage` adds an optional
`paginationStartKey` for the descendants types). Each answer is a JSON object with the key and
one of `value`, `hash` (blake2_256 of the value, as `state_getStorageHash`) or
`closestDescendantMerkleValue` (the hash of the closest trie node at or under the key).

Child tries are found where the spec puts them: the root of child trie K of the default
namespace is the value at `:child_storage:default:K` in the main trie. This chain writes none,
so such queries find nothing, but they are answered the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any, Final

from chain.hashing import blake2_256
from chain.storage.trie import Trie
from node.rpc.server import RpcError

__all__ = [
    "QUERY_TYPES",
    "StorageQuery",
    "hash_param",
    "hex_bytes",
    "parse_child_trie",
    "parse_queries",
    "run_queries",
]

QUERY_TYPES: Final = (
    "value",
    "hash",
    "closestDescendantMerkleValue",
    "descendantsValues",
    "descendantsHashes",
)
_DESCENDANTS: Final = ("descendantsValues", "descendantsHashes")
CHILD_STORAGE_DEFAULT: Final = b":child_storage:default:"
_HEX_DIGITS: Final = re.compile(r"[0-9a-fA-F]*")
MAX_QUERY_ITEMS: Final = 1024
"""Items in one storage call; more is a bad request (the spec puts no bound, a server must)."""


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def hex_bytes(value: Any, what: str) -> bytes:
    """Hex as the spec's servers read it: with or without `0x`; "" and "0x" are empty."""
    if not isinstance(value, str):
        raise RpcError.invalid_params(f"{what} must be a hex string")
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    if len(digits) % 2 or not _HEX_DIGITS.fullmatch(digits):
        raise RpcError.invalid_params(f"{what} is not valid hex")
    return bytes.fromhex(digits)


def hash_param(value: Any, what: str = "hash") -> bytes:
    """A block hash parameter: 32 bytes of hex."""
    raw = hex_bytes(value, what)
    if len(raw) != 32:
        raise RpcError.invalid_params(f"{what} must be 32 bytes")
    return raw


@dataclasses.dataclass(frozen=True, slots=True)
class StorageQuery:
    key: bytes
    type: str
    start: bytes | None = None  # descendants only: resume after this key (archive pagination)


def parse_queries(items: Any, *, with_pagination: bool = False) -> list[StorageQuery]:
    """The `items` parameter, checked (RpcError -32602)."""
    if not isinstance(items, list) or len(items) > MAX_QUERY_ITEMS:
        raise RpcError.invalid_params(f"items must be an array of at most {MAX_QUERY_ITEMS}")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise RpcError.invalid_params('each item must be an object {"key", "type"}')
        kind = item.get("type")
        if kind not in QUERY_TYPES:
            raise RpcError.invalid_params(f"item type must be one of {', '.join(QUERY_TYPES)}")
        start = None
        raw_start = item.get("paginationStartKey") if with_pagination else None
        if raw_start is not None:
            if kind not in _DESCENDANTS:
                raise RpcError.invalid_params("paginationStartKey is for descendants queries")
            start = hex_bytes(raw_start, "paginationStartKey")
        out.append(StorageQuery(hex_bytes(item.get("key"), "item key"), kind, start))
    return out


def parse_child_trie(value: Any) -> bytes | None:
    return None if value is None else hex_bytes(value, "childTrie")


def _trie_for(state: Trie, child_trie: bytes | None) -> Trie | None:
    """The main trie, or the child trie `child_trie` (None when it does not exist)."""
    if child_trie is None:
        return state
    root = state.get(CHILD_STORAGE_DEFAULT + child_trie)
    if root is None or len(root) != 32:
        return None
    return Trie(state.store, root, state.cache)


def run_queries(
    state: Trie, queries: list[StorageQuery], child_trie: bytes | None = None
) -> Iterator[dict[str, str]]:
    """The answers to `queries`, one JSON item at a time (lazily: a descendants query over a large
    prefix is read as the caller consumes it)."""
    trie = _trie_for(state, child_trie)
    if trie is None:
        return
    for q in queries:
        key = _hex(q.key)
        if q.type == "value" or q.type == "hash":
            value = trie.get(q.key)
            if value is not None:
                yield _item(key, q.type == "hash", value)
        elif q.type == "closestDescendantMerkleValue":
            merkle = trie.closest_descendant_hash(q.key)
            if merkle is not None:
                yield {"key": key, "closestDescendantMerkleValue": _hex(merkle)}
        else:
            is_hash = q.type == "descendantsHashes"
            for k, v in trie.iterate(q.key, q.start):
                yield _item(_hex(k), is_hash, v)


def _item(key: str, is_hash: bool, value: bytes) -> dict[str, str]:
    if is_hash:
        return {"key": key, "hash": _hex(blake2_256(value))}
    return {"key": key, "value": _hex(value)}
