"""The ordered key/value store interface and its in-memory implementation.

`KVStore` is what the node's database (`node.db.LevelDBKV`) and the tests' `MemoryKV`
provide: byte keys and values, ascending byte-order iteration, atomic batches.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from typing import Protocol


class KVStore(Protocol):
    """An ordered byte key/value store."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with `prefix` and is > `start` (if given), ascending."""
        ...

    def write_batch(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Apply puts (value) and deletes (None) atomically, in order."""
        ...


class MemoryKV:
    """A dict-backed `KVStore` that keeps a sorted list of its keys for iteration.

    Iteration is a live cursor: each step finds the next key after the last one yielded, so
    writes made during iteration are seen if they lie after the cursor.
    """

    __slots__ = ("_data", "_keys")

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        for key, value in items:
            self.put(key, value)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            insort(self._keys, key)
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            keys = self._keys
            del keys[bisect_left(keys, key)]

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = self._keys
        data = self._data
        if start is None or start < prefix:
            i = bisect_left(keys, prefix)
        else:
            i = bisect_right(keys, start)
        while i < len(keys):
            key = keys[i]
            if not key.startswith(prefix):
                return
            yield key, data[key]
            i = bisect_right(keys, key)

    def write_batch(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        # Materialise first so that a failing iterable leaves the store untouched.
        for key, value in list(ops):
            if value is None:
                self.delete(key)
            else:
                self.put(key, value)
