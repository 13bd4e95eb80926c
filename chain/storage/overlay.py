"""`Overlay`: the journaled write layer the runtime uses over a read-only state backend.

Pending changes live in one dict (`key -> value`, `None` meaning deleted). For merged
iteration its keys are also kept in a sorted list plus an unsorted tail of keys added since;
iteration first merges the tail in (binary insertion if short, else one timsort of a long
run and a short one), so writes stay O(1) however many keys are pending.

Checkpoints are cheap: every write made while a checkpoint is open appends
`(key, previous pending entry)` to a journal; reverting pops the journal back to the
checkpoint's mark, committing just drops the mark.

The block's value cache: the typed storage accessors (`chain.frame.pallet`) read and write
decoded values of immutable types through `get_value`/`put_value`. A value read from the backend
is decoded once per overlay; a value written is held decoded (`Typed`) and encoded only when its
bytes are needed (`get`, `iterate`, `changes`), once, however often it was rewritten. Encoding is
the codec's own, so the bytes, and the state root, are the ones an eager write gives.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any, Final, Protocol

from chain import ChainError


class Codec(Protocol):
    """What the value cache needs of a SCALE descriptor (`chain.frame.types.ScaleType`)."""

    def encode(self, value: Any) -> bytes: ...

    def decode_all(self, data: bytes) -> Any: ...


class StateReader(Protocol):
    """A read-only ordered view of state (`MemoryKV`, `Trie`, ...)."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with `prefix` and is > `start` (if given), ascending."""
        ...


class _Absent:
    """Journal marker: the key had no pending entry before the write."""

    __slots__ = ()


_ABSENT: Final = _Absent()


class Typed:
    """A pending value held decoded, with its codec; `raw` is its encoding once computed.
    Immutable values only: the overlay hands out the object itself."""

    __slots__ = ("codec", "raw", "value")

    def __init__(self, codec: Codec, value: Any) -> None:
        self.codec = codec
        self.value = value
        self.raw: bytes | None = None

    def encoded(self) -> bytes:
        raw = self.raw
        if raw is None:
            raw = self.raw = self.codec.encode(self.value)
        return raw


Entry = bytes | Typed | None  # a pending change: bytes, a decoded value, or None (deleted)


class Overlay:
    """Pending changes over a `StateReader`, with nested checkpoints."""

    __slots__ = ("_backend", "_changes", "_decoded", "_journal", "_marks", "_sorted", "_tail")

    def __init__(self, backend: StateReader) -> None:
        self._backend = backend
        self._changes: dict[bytes, Entry] = {}
        self._sorted: list[bytes] = []  # keys of _changes, ascending ...
        self._tail: list[bytes] = []  # ... and the rest of them, as added
        self._journal: list[tuple[bytes, Entry | _Absent]] = []
        self._marks: list[int] = []
        # backend values decoded by get_value: key -> (codec, value); the backend never changes
        self._decoded: dict[bytes, tuple[Codec, Any]] = {}

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        changes = self._changes
        if key in changes:
            entry = changes[key]
            if isinstance(entry, Typed):
                return entry.encoded()
            return entry
        return self._backend.get(key)

    def get_value(self, key: bytes, codec: Codec, default: Any) -> Any:
        """The value at `key` decoded with `codec` (immutable values only), or `default` when
        absent. Decoded at most once per overlay for a backend value; a pending `Typed` value of
        the same codec is returned as written."""
        changes = self._changes
        if key in changes:
            entry = changes[key]
            if entry is None:
                return default
            if isinstance(entry, Typed):
                if entry.codec is codec:
                    return entry.value
                return codec.decode_all(entry.encoded())
            # written as bytes: decode once, and keep the same value decoded beside its bytes
            value = codec.decode_all(entry)
            typed = changes[key] = Typed(codec, value)
            typed.raw = entry
            return value
        hit = self._decoded.get(key)
        if hit is not None and hit[0] is codec:
            return hit[1]
        raw = self._backend.get(key)
        if raw is None:
            return default
        value = codec.decode_all(raw)
        self._decoded[key] = (codec, value)
        return value

    def contains(self, key: bytes) -> bool:
        changes = self._changes
        if key in changes:
            return changes[key] is not None
        return self._backend.get(key) is not None

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Merged view of backend and pending changes: keys with `prefix`, > `start`, ascending.

        Each step looks the pending keys up afresh, so writes made during iteration are seen
        if they lie after the cursor.
        """
        changes = self._changes
        pending = self._sorted
        tail = self._tail
        if tail:
            self._merge_tail()
        backend = self._backend.iterate(prefix, start)
        b_item = next(backend, None)
        if start is None or start < prefix:
            p_idx = bisect_left(pending, prefix)
        else:
            p_idx = bisect_right(pending, start)
        while True:
            p_key = pending[p_idx] if p_idx < len(pending) else None
            if p_key is not None and not p_key.startswith(prefix):
                p_key = None
            if b_item is None:
                if p_key is None:
                    return
                key = p_key
            elif p_key is None or b_item[0] < p_key:
                key = b_item[0]
            else:
                key = p_key
            if key in changes:
                entry = changes[key]
                value = entry.encoded() if isinstance(entry, Typed) else entry
            else:
                assert b_item is not None
                value = b_item[1]
            if value is not None:
                yield key, value
            # Advance both cursors past `key`.
            while b_item is not None and b_item[0] <= key:
                b_item = next(backend, None)
            if tail:  # written to during iteration
                self._merge_tail()
            p_idx = bisect_right(pending, key)

    def _merge_tail(self) -> None:
        pending = self._sorted
        tail = self._tail
        if len(tail) < 32:  # a sort would compare every key once: insert instead
            for key in tail:
                insort(pending, key)
        else:
            pending += tail
            pending.sort()
        tail.clear()

    def next_key(self, prefix: bytes = b"", start: bytes | None = None) -> bytes | None:
        """The first key > `start` (if given) with `prefix`, or None."""
        for key, _ in self.iterate(prefix, start):
            return key
        return None

    # -- writes --------------------------------------------------------------------------

    def _set(self, key: bytes, value: Entry) -> None:
        changes = self._changes
        if key in changes:
            if self._marks:
                self._journal.append((key, changes[key]))
        else:
            self._tail.append(key)
            if self._marks:
                self._journal.append((key, _ABSENT))
        changes[key] = value

    def put(self, key: bytes, value: bytes) -> None:
        self._set(key, value)

    def put_value(self, key: bytes, codec: Codec, value: Any) -> None:
        """Write `value` (immutable) decoded; it is encoded with `codec` when its bytes are
        needed. Codec errors therefore surface then, not here."""
        self._set(key, Typed(codec, value))

    def delete(self, key: bytes) -> None:
        self._set(key, None)

    def clear_prefix(self, prefix: bytes, limit: int | None = None) -> int:
        """Delete the keys with `prefix` (at most `limit` of them, lowest first); the count."""
        keys: list[bytes] = []
        if limit is None or limit > 0:
            for key, _ in self.iterate(prefix):
                keys.append(key)
                if limit is not None and len(keys) >= limit:
                    break
        for key in keys:
            self._set(key, None)
        return len(keys)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self) -> None:
        self._marks.append(len(self._journal))

    def commit_checkpoint(self) -> None:
        if not self._marks:
            raise ChainError("commit_checkpoint without an open checkpoint")
        self._marks.pop()
        if not self._marks:
            self._journal.clear()

    def revert_checkpoint(self) -> None:
        if not self._marks:
            raise ChainError("revert_checkpoint without an open checkpoint")
        mark = self._marks.pop()
        journal = self._journal
        changes = self._changes
        pending = self._sorted
        tail = self._tail
        while len(journal) > mark:
            key, previous = journal.pop()
            if isinstance(previous, _Absent):
                del changes[key]
                # Usually the last key appended to the tail: undone in reverse order.
                if tail and tail[-1] == key:
                    tail.pop()
                else:
                    i = bisect_left(pending, key)
                    if i < len(pending) and pending[i] == key:
                        del pending[i]
                    else:
                        tail.remove(key)
            else:
                changes[key] = previous

    @property
    def depth(self) -> int:
        """The number of open checkpoints."""
        return len(self._marks)

    def changes(self) -> dict[bytes, bytes | None]:
        """The net pending changes (None = delete); only with no open checkpoint."""
        if self._marks:
            raise ChainError(f"changes() with {len(self._marks)} open checkpoint(s)")
        return {
            key: entry.encoded() if isinstance(entry, Typed) else entry
            for key, entry in self._changes.items()
        }
