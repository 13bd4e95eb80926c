"""State and block pruning in ChainDB: the positional trie diff it journals, the reference
counts it keeps, what finality deletes (old states past the window, forks it discards, old
bodies), and that what stays is exactly the nodes of the states kept."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from chain.primitives import DigestItem, Header
from chain.storage.kv import MemoryKV
from chain.storage.trie import (
    BRANCH,
    EMPTY_ROOT,
    EXTENSION,
    MemoryNodeStore,
    Trie,
    decode_node,
    diff_nodes,
)
from node.chaindb import BODY, NODE, ChainDB, ChainDBError
from node.errors import StateDiscarded

ZERO = b"\x00" * 32


def positions(store: MemoryNodeStore, root: bytes) -> Counter[tuple[bytes, bytes]]:
    """Every (nibble position, node hash) of the trie at `root`, by brute force."""
    out: Counter[tuple[bytes, bytes]] = Counter()
    if root == EMPTY_ROOT:
        return out
    stack = [(b"", root)]
    while stack:
        pos, h = stack.pop()
        out[(pos, h)] += 1
        raw = store.get(h)
        assert raw is not None
        node = decode_node(raw)
        if node[0] == BRANCH:
            for s in range(3, 19):
                if node[s] is not None:
                    stack.append((pos + bytes((s,)), node[s]))
        elif node[0] == EXTENSION:
            stack.append((pos + node[1], node[2]))
    return out


def test_diff_nodes_is_the_positional_difference() -> None:
    rng = random.Random(7)
    store = MemoryNodeStore()
    root = EMPTY_ROOT
    keys = [bytes([rng.randrange(4), rng.randrange(256)]) for _ in range(60)]
    for _ in range(40):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(rng.randrange(1, 8)):
            # few distinct values: identical leaves at several positions are common
            changes[rng.choice(keys)] = None if rng.random() < 0.3 else bytes([rng.randrange(3)])
        new_root, nodes = Trie(store, root).apply(changes)
        store.update(nodes)
        created, consumed = diff_nodes(store, root, new_root)
        before, after = positions(store, root), positions(store, new_root)
        assert Counter(created) == Counter(h for _, h in (after - before).elements())
        assert Counter(consumed) == Counter(h for _, h in (before - after).elements())
        root = new_root


class Chain:
    """Blocks with real state tries, committed into a pruned ChainDB over a MemoryKV."""

    def __init__(self, window: int | str = 3, blocks: int | str = "archive-canonical") -> None:
        self.kv = MemoryKV()
        self.db = ChainDB(self.kv, state_pruning=window, blocks_pruning=blocks)
        self.hashes: dict[str, bytes] = {}
        self.states: dict[str, dict[bytes, bytes]] = {}
        self.add("g", None, {b"\x00\x01": b"a", b"\x00\x02": b"b", b"\x10": b"c"})

    def add(
        self,
        name: str,
        parent: str | None,
        changes: dict[bytes, bytes | None],
        *,
        final: bool = False,
        best: bool = True,
    ) -> bytes:
        if parent is None:
            root, items = EMPTY_ROOT, {}
            parent_hash, number = ZERO, 0
        else:
            parent_hash = self.hashes[parent]
            header = self.db.header(parent_hash)
            assert header is not None
            root, items, number = header.state_root, dict(self.states[parent]), header.number + 1
        new_root, nodes = self.db.state_at_root(root).apply(changes)
        for k, v in changes.items():
            if v is None:
                items.pop(k, None)
            else:
                items[k] = v
        header = Header(parent_hash, number, new_root, ZERO, (DigestItem.other(name.encode()),))
        h = self.db.commit_block(
            header,
            [b"\x04\x00"],
            nodes,
            is_best=best,
            is_finalized=final or parent is None,
            is_genesis=parent is None,
        )
        self.hashes[name] = h
        self.states[name] = items
        return h

    def node_keys(self) -> set[bytes]:
        return {k[1:] for k, _ in self.kv.iterate(prefix=NODE)}

    def reachable(self, names: list[str]) -> set[bytes]:
        store = MemoryNodeStore({h: self.db.nodes.get(h) or b"" for h in self.node_keys()})
        out: set[bytes] = set()
        for name in names:
            header = self.db.header(self.hashes[name])
            assert header is not None
            out.update(h for _, h in positions(store, header.state_root))
        return out

    def readable(self, name: str) -> bool:
        try:
            state = self.db.state_at(self.hashes[name])
        except StateDiscarded:
            return False
        assert dict(state.iterate()) == self.states[name]
        return True


def _changes(rng: random.Random, i: int) -> dict[bytes, bytes | None]:
    out: dict[bytes, bytes | None] = {bytes([rng.randrange(3), rng.randrange(40)]): b"v%d" % i}
    out[bytes([0, rng.randrange(40)])] = None if i % 3 == 0 else b"x"
    out[b"\x00\x01"] = b"a" if i % 2 else b"same"  # a value that comes back: re-created nodes
    return out


def test_linear_chain_keeps_exactly_the_window() -> None:
    rng = random.Random(1)
    c = Chain(window=3)
    names = ["g"]
    for i in range(1, 15):
        names.append(f"b{i}")
        c.add(names[-1], names[-2], _changes(rng, i), final=True)
        kept = names[-3:]
        assert all(c.readable(n) for n in kept)
        assert not any(c.readable(n) for n in names[:-3])
        # what is stored is exactly the union of the kept states' nodes: nothing leaks
        assert c.node_keys() == c.reachable(kept)
        if i % 4 == 0:  # a restart: a fresh instance, no caches, the mode as stored
            c.db = ChainDB(c.kv)
            assert c.db.state_pruning == 3
    with pytest.raises(StateDiscarded, match="State already discarded for 0x"):
        c.db.state_at(c.hashes["b5"])


def test_identical_nodes_at_two_positions_survive() -> None:
    """Keys 0x01aa and 0x02aa with one value have byte-identical leaves under one branch;
    changing one must not delete the other's node."""
    c = Chain(window=1)
    c.add("b1", "g", {b"\x01\xaa": b"v", b"\x02\xaa": b"v"}, final=True)
    c.add("b2", "b1", {b"\x01\xaa": b"w"}, final=True)
    c.add("b3", "b2", {b"\x10": b"d"}, final=True)
    assert not c.readable("b1")
    assert c.readable("b3")
    assert c.node_keys() == c.reachable(["b3"])


def test_forks_are_discarded_at_finality_and_reorgs_within_the_window_work() -> None:
    rng = random.Random(2)
    c = Chain(window=2)
    c.add("a1", "g", _changes(rng, 1), final=True)
    c.add("a2", "a1", _changes(rng, 2))
    c.add("a3", "a2", _changes(rng, 3))
    c.add("b2", "a1", _changes(rng, 4), best=False)
    c.add("b3", "b2", _changes(rng, 5), best=False)
    c.add("b4", "b3", _changes(rng, 6))  # a reorg to the b fork: every state still readable
    assert c.db.best_hash() == c.hashes["b4"]
    assert all(c.readable(n) for n in ("a1", "a2", "a3", "b2", "b3", "b4"))
    c.db.finalize(c.hashes["a2"], None)  # the a fork wins: b2..b4 go, and a1 stays (window 2)
    assert c.db.best_hash() == c.hashes["a3"]
    assert not any(c.readable(n) for n in ("g", "b2", "b3", "b4"))
    assert all(c.readable(n) for n in ("a1", "a2", "a3"))
    assert c.node_keys() == c.reachable(["a1", "a2", "a3"])
    assert c.kv.get(BODY + c.hashes["b3"]) is not None  # bodies stay (the pool reads them)
    c.add("a4", "a3", _changes(rng, 7))
    c.db.finalize(c.hashes["a4"], None)
    assert c.node_keys() == c.reachable(["a3", "a4"])
    assert [h for _, h in c.db.leaves()] == [c.hashes["a4"]]


def test_blocks_pruning_keeps_the_last_bodies() -> None:
    c = Chain(window=2, blocks=3)
    names = ["g"]
    for i in range(1, 8):
        names.append(f"b{i}")
        c.add(names[-1], names[-2], {b"\x01": b"%d" % i}, final=True)
    bodies = [c.db.body(c.hashes[n]) is not None for n in names]
    assert bodies == [True, False, False, False, False, True, True, True]
    assert all(c.db.header(c.hashes[n]) is not None for n in names)  # headers stay


def test_archive_keeps_everything_and_modes_do_not_switch() -> None:
    rng = random.Random(3)
    c = Chain(window="archive")
    for i in range(1, 6):
        c.add(f"b{i}", "g" if i == 1 else f"b{i - 1}", _changes(rng, i), final=True)
    assert all(c.readable(n) for n in c.hashes)
    with pytest.raises(ChainDBError, match="archive"):
        ChainDB(c.kv, state_pruning=8)
    assert ChainDB(c.kv).state_pruning is None  # as stored
    pruned = Chain(window=4)
    with pytest.raises(ChainDBError, match="pruned"):
        ChainDB(pruned.kv, state_pruning="archive")
    assert ChainDB(pruned.kv).state_pruning == 4
    assert ChainDB(pruned.kv, state_pruning=6).state_pruning == 6
    assert ChainDB(pruned.kv).state_pruning == 6


def test_pruning_flags_parse_like_substrate() -> None:
    from node.chaindb import parse_pruning
    from node.cli import build_parser

    assert parse_pruning("256") == 256
    assert parse_pruning("archive") == "archive"
    assert parse_pruning("archive-canonical", blocks=True) == "archive-canonical"
    for bad in ("0", "-3", "archive-canonical", "all"):
        with pytest.raises(ValueError, match=r"pruning|expected"):
            parse_pruning(bad)
    args = build_parser().parse_args(["--state-pruning", "8", "--blocks-pruning", "archive"])
    assert (args.state_pruning, args.blocks_pruning) == (8, "archive")
    args = build_parser().parse_args([])
    assert (args.state_pruning, args.blocks_pruning) == (None, "archive-canonical")


def test_a_node_keeps_the_mode_its_store_was_made_with(tmp_path: Path) -> None:
    from genesis.builder import load_spec
    from node.errors import NodeError
    from node.service import Node, NodeConfig

    spec = load_spec("dev")

    def node(base: Path, mode: int | str | None) -> Node:
        return Node(NodeConfig(spec=spec, base_path=base, prometheus_port=None, state_pruning=mode))

    fresh = node(tmp_path / "new", None)  # a new store: Substrate's default window
    assert fresh.db.state_pruning == 256
    fresh.close()
    node(tmp_path / "archive", "archive").close()
    again = node(tmp_path / "archive", None)  # no flag: as the store was made
    assert again.db.state_pruning is None
    again.close()
    with pytest.raises(NodeError, match="created an archive"):
        node(tmp_path / "archive", 8)
