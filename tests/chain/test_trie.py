from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.codec import encode_compact
from chain.hashing import blake2_256
from chain.storage.trie import (
    EMPTY_ROOT,
    MemoryNodeStore,
    NodeCache,
    Trie,
    TrieError,
    ordered_root,
    reference_root,
    verify,
)

# Short keys over a small alphabet so that keys are often prefixes of each other.
keys = st.one_of(
    st.lists(st.sampled_from([0x00, 0x01, 0x10, 0x11, 0xFF]), max_size=4).map(bytes),
    st.binary(max_size=6),
)
values = st.binary(max_size=40)
kv_dicts = st.dictionaries(keys, values, max_size=30)


def build(items: dict[bytes, bytes], store: MemoryNodeStore | None = None) -> Trie:
    store = store if store is not None else MemoryNodeStore()
    root, nodes = Trie(store).apply(items)
    store.update(nodes)
    return Trie(store, root)


def apply(trie: Trie, changes: dict[bytes, bytes | None]) -> Trie:
    root, nodes = trie.apply(changes)
    assert isinstance(trie.store, MemoryNodeStore)
    trie.store.update(nodes)
    return Trie(trie.store, root, trie.cache)


def test_empty_root_is_hash_of_empty_node() -> None:
    assert blake2_256(b"\x00") == EMPTY_ROOT
    assert reference_root({}) == EMPTY_ROOT
    assert Trie(MemoryNodeStore()).apply({}) == (EMPTY_ROOT, {})


@given(kv_dicts, st.randoms(use_true_random=False))
def test_apply_root_independent_of_insertion_order(
    items: dict[bytes, bytes], rnd: random.Random
) -> None:
    order = list(items)
    rnd.shuffle(order)
    one_by_one = Trie(MemoryNodeStore())
    for key in order:
        one_by_one = apply(one_by_one, {key: items[key]})
    assert one_by_one.root == build(items).root == reference_root(items)


@given(kv_dicts, kv_dicts)
def test_apply_deletes_restore_earlier_root(
    base: dict[bytes, bytes], extra: dict[bytes, bytes]
) -> None:
    extra = {k: v for k, v in extra.items() if k not in base}
    before = build(base)
    after = apply(before, extra)
    restored = apply(after, dict.fromkeys(extra))
    assert restored.root == before.root
    assert apply(after, dict.fromkeys(list(base) + list(extra))).root == EMPTY_ROOT


@given(st.lists(st.dictionaries(keys, st.none() | values, max_size=15), max_size=6))
def test_apply_batches_match_reference_root(batches: list[dict[bytes, bytes | None]]) -> None:
    trie = Trie(MemoryNodeStore())
    model: dict[bytes, bytes] = {}
    for batch in batches:
        trie = apply(trie, batch)
        for key, value in batch.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert trie.root == reference_root(model)
        assert verify(trie.store, trie.root) == len(model)


def test_apply_leaves_store_and_trie_unchanged() -> None:
    trie = build({b"a": b"1", b"ab": b"2"})
    assert isinstance(trie.store, MemoryNodeStore)
    nodes_before = dict(trie.store.nodes)
    root, new_nodes = trie.apply({b"abc": b"3", b"a": None})
    assert trie.store.nodes == nodes_before
    assert trie.get(b"a") == b"1"
    assert root != trie.root
    assert new_nodes
    assert all(blake2_256(enc) == h for h, enc in new_nodes.items())


@given(kv_dicts, keys, st.none() | keys)
def test_get_and_iterate_agree_with_sorted_dict(
    items: dict[bytes, bytes], prefix: bytes, start: bytes | None
) -> None:
    trie = build(items)
    for key, value in items.items():
        assert trie.get(key) == value
    assert trie.get(prefix) == items.get(prefix)
    expected = [
        (k, items[k])
        for k in sorted(items)
        if k.startswith(prefix) and (start is None or k > start)
    ]
    assert list(trie.iterate(prefix, start)) == expected
    assert list(trie.iterate()) == sorted(items.items())


def test_get_missing_node_raises_trie_error_naming_hash() -> None:
    trie = build({b"a": b"1", b"b": b"2"})
    assert isinstance(trie.store, MemoryNodeStore)
    leaf_a = blake2_256(b"\x01" + encode_compact(0) + encode_compact(1) + b"1")
    del trie.store.nodes[leaf_a]
    cold = Trie(trie.store, trie.root, NodeCache())
    assert cold.get(b"b") == b"2"
    with pytest.raises(TrieError, match=leaf_a.hex()):
        cold.get(b"a")


def test_verify_counts_keys_and_detects_corrupted_node() -> None:
    items = {bytes([i, j]): bytes([i]) * (j + 1) for i in range(20) for j in range(3)}
    items[b""] = b"empty key"
    trie = build(items)
    assert isinstance(trie.store, MemoryNodeStore)
    assert verify(trie.store, trie.root) == len(items)
    for node_hash, encoding in list(trie.store.nodes.items()):
        trie.store.nodes[node_hash] = encoding[:-1] + bytes([encoding[-1] ^ 1])
        with pytest.raises(TrieError, match=node_hash.hex()):
            verify(trie.store, trie.root)
        trie.store.nodes[node_hash] = encoding


def test_verify_rejects_non_canonical_branch() -> None:
    leaf = b"\x01" + encode_compact(1) + b"\x10" + encode_compact(1) + b"v"
    leaf_hash = blake2_256(leaf)
    branch = b"\x03" + (1 << 3).to_bytes(2, "little") + b"\x00" + leaf_hash  # one child only
    store = MemoryNodeStore({leaf_hash: leaf, blake2_256(branch): branch})
    with pytest.raises(TrieError, match="fewer than two entries"):
        verify(store, blake2_256(branch))


def test_ordered_root_empty_and_order_sensitive() -> None:
    assert ordered_root([]) == EMPTY_ROOT
    assert ordered_root([b"a", b"b"]) != ordered_root([b"b", b"a"])
    values = [bytes([i]) * i for i in range(100)]
    assert ordered_root(values) == build({encode_compact(i): v for i, v in enumerate(values)}).root


def test_apply_structured_keys_with_tiny_cache_match_reference_root() -> None:
    # Storage-like keys: long shared prefixes, then short suffixes; a 2-entry cache forces
    # every node to be re-read and decoded from the store.
    prefixes = [bytes([p]) * 32 for p in (1, 2)] + [bytes([1]) * 31 + b"\x02"]
    items = {
        p + bytes([i, j]): bytes([i, j]) * (1 + j % 3)
        for p in prefixes
        for i in range(9)
        for j in range(0, 256, 51)
    }
    trie = build(items)
    trie = Trie(trie.store, trie.root, NodeCache(2))
    deletes = dict.fromkeys(k for k in items if k[-1] % 2 or k[32] == 3)
    updates = {k[:-1]: b"new" for k in list(items)[::7]}
    model = {k: v for k, v in items.items() if k not in deletes} | updates
    trie = apply(trie, {**deletes, **updates})
    assert trie.root == reference_root(model)
    assert verify(trie.store, trie.root) == len(model)
    assert list(trie.iterate(prefixes[0], prefixes[0] + b"\x04")) == sorted(
        (k, v) for k, v in model.items() if k.startswith(prefixes[0]) and k > prefixes[0] + b"\x04"
    )


@given(kv_dicts, keys, values)
def test_closest_descendant_hash_tracks_the_keys_under_a_prefix(
    items: dict[bytes, bytes], prefix: bytes, new_value: bytes
) -> None:
    """A stored node's hash when some key starts with `prefix` (None otherwise); the root for the
    empty prefix; and it changes whenever a value under the prefix does."""
    trie = build(items)
    merkle = trie.closest_descendant_hash(prefix)
    under = sorted(k for k in items if k.startswith(prefix))
    assert (merkle is None) == (not under)
    assert trie.closest_descendant_hash(b"") == (None if not items else trie.root)
    if merkle is None:
        return
    assert isinstance(trie.store, MemoryNodeStore)
    assert trie.store.get(merkle) is not None
    key = under[len(under) // 2]
    if new_value != items[key]:
        assert apply(trie, {key: new_value}).closest_descendant_hash(prefix) != merkle


def test_closest_descendant_hash_of_a_branch_below_an_extension() -> None:
    trie = build({b"\xab\xcd\x01": b"1", b"\xab\xcd\x02": b"2", b"\x00": b"0"})
    below = trie.closest_descendant_hash(b"\xab")  # inside the extension "bcd0": its branch
    assert below == trie.closest_descendant_hash(b"\xab\xcd")
    other = build({b"\xab\xcd\x01": b"1", b"\xab\xcd\x02": b"2", b"\x00": b"other"})
    assert other.closest_descendant_hash(b"\xab") == below  # nothing under the prefix changed
    assert trie.closest_descendant_hash(b"\xab\xce") is None


@pytest.mark.parametrize(
    "n", [1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 256, 257, 4095, 4096, 4097, 16383, 16384, 16385]
)
def test_ordered_root_is_the_reference_root_of_the_indexed_values(n: int) -> None:
    rng = random.Random(n)
    values = [rng.randbytes(rng.randrange(0, 300)) for _ in range(n)]
    reference = reference_root({encode_compact(i): v for i, v in enumerate(values)})
    assert ordered_root(values) == reference
