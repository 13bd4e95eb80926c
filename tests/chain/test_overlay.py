from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chain import ChainError
from chain.storage.kv import MemoryKV
from chain.storage.overlay import Overlay


class TupleCodec:
    """Values are tuples of byte values; counts its encodings and decodings."""

    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    def encode(self, value: tuple[int, ...]) -> bytes:
        self.encoded += 1
        return bytes(value)

    def decode_all(self, data: bytes) -> tuple[int, ...]:
        self.decoded += 1
        return tuple(data)


CODEC = TupleCodec()
keys = st.lists(st.sampled_from(b"\x00\x01\x7f\xff"), max_size=3).map(bytes)
values = st.binary(max_size=3)


class OverlayMachine(RuleBasedStateMachine):
    """Overlay over a MemoryKV versus a plain dict with a stack of snapshots."""

    def __init__(self) -> None:
        super().__init__()
        self.backend = MemoryKV()
        self.overlay = Overlay(self.backend)
        self.model: dict[bytes, bytes] = {}
        self.snapshots: list[dict[bytes, bytes]] = []

    @initialize(initial=st.dictionaries(keys, values, max_size=12))
    def fill_backend(self, initial: dict[bytes, bytes]) -> None:
        for key, value in initial.items():
            self.backend.put(key, value)
        self.model = dict(initial)

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        self.overlay.put(key, value)
        self.model[key] = value

    @rule(key=keys, value=values)
    def put_value(self, key: bytes, value: bytes) -> None:
        self.overlay.put_value(key, CODEC, tuple(value))
        self.model[key] = value

    @rule(key=keys)
    def get_value(self, key: bytes) -> None:
        expected = tuple(self.model[key]) if key in self.model else None
        assert self.overlay.get_value(key, CODEC, None) == expected

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        self.overlay.delete(key)
        self.model.pop(key, None)

    @rule(prefix=keys, limit=st.none() | st.integers(0, 4))
    def clear_prefix(self, prefix: bytes, limit: int | None) -> None:
        doomed = sorted(k for k in self.model if k.startswith(prefix))[:limit]
        assert self.overlay.clear_prefix(prefix, limit) == len(doomed)
        for key in doomed:
            del self.model[key]

    @rule()
    def checkpoint(self) -> None:
        self.overlay.checkpoint()
        self.snapshots.append(dict(self.model))

    @precondition(lambda self: self.snapshots)
    @rule()
    def commit(self) -> None:
        self.overlay.commit_checkpoint()
        self.snapshots.pop()

    @precondition(lambda self: self.snapshots)
    @rule()
    def revert(self) -> None:
        self.overlay.revert_checkpoint()
        self.model = self.snapshots.pop()

    @rule(prefix=keys, start=st.none() | keys)
    def iterate(self, prefix: bytes, start: bytes | None) -> None:
        expected = [
            (k, self.model[k])
            for k in sorted(self.model)
            if k.startswith(prefix) and (start is None or k > start)
        ]
        assert list(self.overlay.iterate(prefix, start)) == expected
        assert self.overlay.next_key(prefix, start) == (expected[0][0] if expected else None)

    @rule(key=keys)
    def get(self, key: bytes) -> None:
        assert self.overlay.get(key) == self.model.get(key)
        assert self.overlay.contains(key) == (key in self.model)

    @invariant()
    def full_view_matches(self) -> None:
        assert list(self.overlay.iterate()) == sorted(self.model.items())

    @invariant()
    def changes_rebuild_model(self) -> None:
        if self.snapshots:
            with pytest.raises(ChainError):
                self.overlay.changes()
            return
        rebuilt = MemoryKV(self.backend.iterate())
        rebuilt.write_batch(self.overlay.changes().items())
        assert dict(rebuilt.iterate()) == self.model


TestOverlayMachine = OverlayMachine.TestCase


def test_commit_checkpoint_without_open_checkpoint_raises() -> None:
    overlay = Overlay(MemoryKV())
    with pytest.raises(ChainError):
        overlay.commit_checkpoint()
    with pytest.raises(ChainError):
        overlay.revert_checkpoint()


def test_iterate_sees_writes_made_after_the_cursor() -> None:
    overlay = Overlay(MemoryKV([(b"a", b"1"), (b"c", b"3")]))
    seen = []
    for key, value in overlay.iterate():
        seen.append((key, value))
        if key == b"a":
            overlay.delete(b"a")  # at the cursor: already yielded
            overlay.put(b"b", b"2")  # after the cursor: seen
            overlay.put(b"0", b"0")  # before the cursor: not seen
    assert seen == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert list(overlay.iterate()) == [(b"0", b"0"), (b"b", b"2"), (b"c", b"3")]


def test_value_cache_decodes_once_and_encodes_once_per_block() -> None:
    codec = TupleCodec()
    overlay = Overlay(MemoryKV([(b"k", b"\x01\x02")]))
    for _ in range(3):
        assert overlay.get_value(b"k", codec, None) == (1, 2)
    assert codec.decoded == 1
    for n in range(5):
        overlay.checkpoint()
        overlay.put_value(b"k", codec, (n,))
        overlay.put_value(b"new", codec, (n, n))
        overlay.commit_checkpoint()
    overlay.checkpoint()
    overlay.put_value(b"k", codec, (9,))
    overlay.revert_checkpoint()  # the last committed value comes back
    assert overlay.get_value(b"k", codec, None) == (4,)
    assert codec.encoded == 0  # nothing encoded while the block runs
    assert overlay.changes() == {b"k": b"\x04", b"new": b"\x04\x04"}
    assert codec.encoded == 2
    assert overlay.get(b"k") == b"\x04"  # the same bytes, not encoded again
    assert codec.encoded == 2
    assert codec.decoded == 1
