"""ChainDB's block tree over an in-memory store with synthetic headers: leaves, ancestors across
canonical and non-canonical branches, descent, reorgs of the canonical index, finality's
re-canonicalization and leaf pruning, the authored-slot record."""

from __future__ import annotations

import pytest

from chain.primitives import DigestItem, Header
from chain.storage.kv import MemoryKV
from node.chaindb import ChainDB, ChainDBError

ZERO = b"\x00" * 32


class Tree:
    """Named synthetic blocks committed into a ChainDB over a MemoryKV."""

    def __init__(self) -> None:
        self.kv = MemoryKV()
        self.db = ChainDB(self.kv)
        self.hashes: dict[str, bytes] = {}
        genesis = Header(ZERO, 0, ZERO, ZERO, (DigestItem.other(b"genesis"),))
        self.hashes["g"] = self.db.commit_block(
            genesis, [], {}, is_best=True, is_finalized=True, is_genesis=True
        )

    def add(self, name: str, parent: str, *, best: bool | None = None) -> bytes:
        """Commit `name` on `parent`; by default best when it is higher than the best block."""
        parent_hash = self.hashes[parent]
        parent_header = self.db.header(parent_hash)
        assert parent_header is not None
        number = parent_header.number + 1
        header = Header(parent_hash, number, ZERO, ZERO, (DigestItem.other(name.encode()),))
        if best is None:
            best_header = self.db.header(self.db.best_hash())
            assert best_header is not None
            best = number > best_header.number
        h = self.db.commit_block(header, [b"\x04\x00"], {}, is_best=best, is_finalized=False)
        self.hashes[name] = h
        return h

    def chain(self, names: str, parent: str) -> None:
        """Add space-separated `names`, each on the previous one."""
        for name in names.split():
            self.add(name, parent)
            parent = name

    def __getitem__(self, name: str) -> bytes:
        return self.hashes[name]

    def name(self, h: bytes | None) -> str | None:
        if h is None:
            return None
        return next(n for n, v in self.hashes.items() if v == h)

    def canonical(self) -> list[str | None]:
        """Names along the canonical index from #0 up to the first gap."""
        out: list[str | None] = []
        n = 0
        while (h := self.db.hash_at(n)) is not None:
            out.append(self.name(h))
            n += 1
        return out

    def leaves(self) -> list[str | None]:
        return [self.name(h) for _, h in self.db.leaves()]


@pytest.fixture
def tree() -> Tree:
    """g - a1 - a2 - a3 - a4 - a5   (canonical, best a5)
    \\    \\ b2 - b3 - b4
     c1 - c2"""
    t = Tree()
    t.chain("a1 a2 a3 a4 a5", "g")
    t.chain("b2 b3 b4", "a1")
    t.chain("c1 c2", "g")
    return t


def test_genesis_is_best_finalized_and_the_only_leaf() -> None:
    t = Tree()
    assert t.db.best_hash() == t.db.finalized_hash() == t.db.genesis_hash() == t["g"]
    assert t.db.leaves() == [(0, t["g"])]
    assert t.db.last_authored_slot() == -1


def test_leaves_are_the_fork_tips_highest_first(tree: Tree) -> None:
    assert tree.db.leaves()[0] == (5, tree["a5"])
    assert tree.leaves() == ["a5", "b4", "c2"]
    tree.add("b5", "b4", best=False)
    tree.add("d5", "a4", best=False)
    leaves = tree.db.leaves()
    assert [n for n, _ in leaves] == [5, 5, 5, 2]
    assert leaves[:3] == sorted((5, tree[x]) for x in ("a5", "b5", "d5"))  # ties: by hash
    assert tree.name(leaves[3][1]) == "c2"


def test_non_best_blocks_leave_the_canonical_index_alone(tree: Tree) -> None:
    assert tree.canonical() == ["g", "a1", "a2", "a3", "a4", "a5"]
    assert tree.db.best_hash() == tree["a5"]


def test_ancestor_at_on_the_canonical_chain(tree: Tree) -> None:
    db = tree.db
    assert db.ancestor_at(tree["a5"], 2) == tree["a2"]
    assert db.ancestor_at(tree["a5"], 5) == tree["a5"]
    assert db.ancestor_at(tree["a5"], 0) == tree["g"]
    assert db.ancestor_at(tree["a3"], 4) is None  # above the block
    assert db.ancestor_at(tree["a3"], -1) is None
    assert db.ancestor_at(b"\x99" * 32, 0) is None


def test_ancestor_at_across_non_canonical_branches(tree: Tree) -> None:
    db = tree.db
    assert db.ancestor_at(tree["b4"], 4) == tree["b4"]
    assert db.ancestor_at(tree["b4"], 3) == tree["b3"]
    assert db.ancestor_at(tree["b4"], 2) == tree["b2"]  # still off the canonical chain
    assert db.ancestor_at(tree["b4"], 1) == tree["a1"]  # crosses into it
    assert db.ancestor_at(tree["b4"], 0) == tree["g"]
    assert db.ancestor_at(tree["c2"], 1) == tree["c1"]
    assert db.ancestor_at(tree["c2"], 0) == tree["g"]
    assert db.ancestor_at(tree["b4"], 5) is None


def test_is_descendant(tree: Tree) -> None:
    db = tree.db
    yes = [("g", "b4"), ("a1", "b4"), ("b2", "b4"), ("b4", "b4"), ("a1", "a5"), ("g", "c2")]
    no = [("a2", "b4"), ("b4", "b2"), ("a5", "a4"), ("c1", "a1"), ("b2", "a3"), ("a3", "b3")]
    for base, block in yes:
        assert db.is_descendant(tree[base], tree[block]), (base, block)
    for base, block in no:
        assert not db.is_descendant(tree[base], tree[block]), (base, block)
    assert not db.is_descendant(b"\x99" * 32, tree["a1"])
    assert not db.is_descendant(tree["a1"], b"\x99" * 32)


def test_a_best_block_on_a_fork_reorgs_the_canonical_index(tree: Tree) -> None:
    tree.add("c3", "c2", best=True)  # lower than a5, but the caller says best
    assert tree.db.best_hash() == tree["c3"]
    assert tree.canonical() == ["g", "c1", "c2", "c3"]
    assert tree.db.hash_at(4) is None
    assert tree.db.hash_at(5) is None
    tree.add("b5", "b4", best=True)
    assert tree.canonical() == ["g", "a1", "b2", "b3", "b4", "b5"]
    assert tree.db.ancestor_at(tree["a5"], 2) == tree["a2"]  # now non-canonical: walks


def test_finalize_on_a_fork_recanonicalizes_and_prunes(tree: Tree) -> None:
    db = tree.db
    best = db.finalize(tree["b3"], b"justification of b3")
    assert best == db.best_hash() == tree["b4"]  # the highest leaf descending from b3
    assert db.finalized_hash() == tree["b3"]
    assert db.justification(tree["b3"]) == b"justification of b3"
    assert tree.canonical() == ["g", "a1", "b2", "b3", "b4"]
    assert db.hash_at(5) is None
    # c2 (#2) ends below the final height: pruned; a5 is above it and stays a (dead) leaf
    assert tree.leaves() == ["a5", "b4"]
    assert not db.is_descendant(tree["b3"], tree["a5"])
    assert db.ancestor_at(tree["a5"], 1) == tree["a1"]


def test_finalize_picks_the_highest_descending_leaf(tree: Tree) -> None:
    tree.chain("e3 e4 e5 e6", "b2")  # becomes best at #6
    tree.add("f4", "b3", best=False)
    assert tree.db.best_hash() == tree["e6"]
    best = tree.db.finalize(tree["b3"], None)
    assert tree.name(best) in ("b4", "f4")
    assert best == min(tree["b4"], tree["f4"])  # equal height: the smaller hash
    assert tree.db.justification(tree["b3"]) is None
    assert tree.canonical()[:4] == ["g", "a1", "b2", "b3"]
    assert len(tree.canonical()) == 5
    assert set(tree.leaves()) == {"e6", "a5", "b4", "f4"}  # c2 pruned; dead e6, a5 above #3


def test_finalize_on_the_best_chain_changes_no_head(tree: Tree) -> None:
    best = tree.db.finalize(tree["a3"], None)
    assert best == tree.db.best_hash() == tree["a5"]
    assert tree.db.finalized_hash() == tree["a3"]
    assert tree.canonical() == ["g", "a1", "a2", "a3", "a4", "a5"]
    assert tree.leaves() == ["a5", "b4"]  # c2 pruned, b4 (#4) above the final #3


def test_finalize_a_leaf_makes_it_best(tree: Tree) -> None:
    best = tree.db.finalize(tree["c2"], None)
    assert best == tree["c2"]
    assert tree.canonical() == ["g", "c1", "c2"]
    assert tree.leaves() == ["a5", "b4", "c2"]
    tree.add("c3", "c2")
    assert tree.db.best_hash() == tree["c3"]
    assert tree.leaves() == ["a5", "b4", "c3"]


def test_finalize_an_unknown_block_fails(tree: Tree) -> None:
    with pytest.raises(ChainDBError):
        tree.db.finalize(b"\x99" * 32, None)
    assert tree.db.finalized_hash() == tree["g"]


def test_justifications_and_the_authored_slot_persist_in_the_store(tree: Tree) -> None:
    tree.db.store_justification(tree["a2"], b"j2")
    header = Header(tree["a5"], 6, ZERO, ZERO, (DigestItem.other(b"a6"),))
    h = tree.db.commit_block(
        header, [], {}, is_best=True, is_finalized=False, justification=b"j6", authored_slot=77
    )
    again = ChainDB(tree.kv)  # a fresh instance: nothing from caches
    assert again.justification(tree["a2"]) == b"j2"
    assert again.justification(h) == b"j6"
    assert again.justification(tree["a3"]) is None
    assert again.last_authored_slot() == 77
    assert again.best_hash() == h
    assert again.body(h) == []
    assert again.body(tree["a1"]) == [b"\x04\x00"]
    assert again.ancestor_at(tree["b4"], 1) == tree["a1"]
