"""A 16-ary Merkle Patricia trie over byte keys, with our own SCALE-style node encoding.

Keys are read as nibble paths (high nibble of each byte first). Nodes are stored
content-addressed: `node_hash = blake2_256(encoding)`, and a node refers to each child by its
32-byte hash (there are no inline nodes).

Node encoding (`Compact` is SCALE compact, `nibbles(n)` packs n nibbles two per byte, high
nibble first, with a zero pad nibble when n is odd):

    Empty      0x00                                                 (only the empty trie)
    Leaf       0x01 ++ Compact(n) ++ nibbles(n) ++ Compact(len) ++ value
    Extension  0x02 ++ Compact(n) ++ nibbles(n) ++ child_hash          (n >= 1)
    Branch     0x03 ++ bitmap(u16 LE) ++ opt_value ++ child_hash * popcount(bitmap)
               opt_value = 0x00 | 0x01 ++ Compact(len) ++ value
               bit i of the bitmap set <=> child i present; hashes in ascending i

A full branch with no value is 1 + 2 + 1 + 16 * 32 = 516 bytes.

Canonical form (so that the root depends only on the key/value set):
  * a Leaf holds the whole remaining path of its key (it may be empty);
  * an Extension has a non-empty path and its child is a Branch;
  * a Branch has at least one child, and at least two entries (children + value).

`EMPTY_ROOT = blake2_256(b"\\x00")`, the hash of the Empty encoding,
0x03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314. It is never stored, never
appears as a child, and `apply` returns no node for it.

In memory a nibble n is held as the byte n + 3 ("slot"), so that a path byte directly
indexes a branch. A clean node (decoded, or committed by `apply`; what `NodeCache` holds) is a
flat tuple:

    (1, path, value)                          Leaf       (path: slots, one per byte)
    (2, path, child_hash)                     Extension
    (3, value | None, bitmap, c0, ..., c15)   Branch     (ci: child hash or None, at index 3+i)

`Trie.apply` works on a tree of references, each either a hash (`bytes`: an untouched,
stored subtree) or a node created during this apply (dirty): a list shaped like the tuple
for branches and extensions, which are mutated in place, with a 20th item on a dirty branch
(a bitmap of the slots that may hold dirty children); a new tuple for a leaf. Every change
is applied to that tree (which stays canonical after each key), then `_commit` encodes and
hashes each dirty node once, bottom-up. Tuples are never mutated, and clean nodes are only
ever referenced by hash. (Flat tuples rather than objects, few containers: this code is
bound by memory latency and allocation, and each extra object is one more cache miss.)
"""

from __future__ import annotations

import gc
import struct
from binascii import hexlify, unhexlify
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from chain import ChainError
from chain.codec import CodecError, Decoder, encode_compact
from chain.hashing import blake2_256

__all__ = [
    "EMPTY_NODE",
    "EMPTY_ROOT",
    "MemoryNodeStore",
    "Node",
    "NodeCache",
    "NodeStore",
    "Trie",
    "TrieError",
    "decode_node",
    "diff_nodes",
    "ordered_root",
    "reference_root",
    "verify",
]

EMPTY_NODE = b"\x00"
EMPTY_ROOT: bytes = blake2_256(EMPTY_NODE)

LEAF = 1
EXTENSION = 2
BRANCH = 3

_VALUE = 1  # branch value
_BITMAP = 2  # branch bitmap
_SLOT0 = 3  # the branch's child for nibble n is at index n + _SLOT0
_TOUCHED = 19  # dirty branch: bitmap of the slots that may hold dirty children

Node = tuple[Any, ...]  # a clean node, see the module docstring
# A dirty node, only inside `Trie.apply`: a list (branch, extension) or a tuple (leaf).
_Dirty = list[Any] | tuple[Any, ...]
_Ref = bytes | _Dirty  # a child reference: a hash (clean) or a dirty node


class TrieError(ChainError):
    """A missing, corrupt or non-canonical trie node."""


class NodeStore(Protocol):
    def get(self, node_hash: bytes) -> bytes | None: ...


class MemoryNodeStore:
    """A dict of `{node_hash: encoding}`."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: Mapping[bytes, bytes] | None = None) -> None:
        self.nodes: dict[bytes, bytes] = dict(nodes) if nodes else {}

    def get(self, node_hash: bytes) -> bytes | None:
        return self.nodes.get(node_hash)

    def update(self, nodes: Mapping[bytes, bytes]) -> None:
        self.nodes.update(nodes)

    def __len__(self) -> int:
        return len(self.nodes)


# -- paths and encoding --------------------------------------------------------------------

_HEX = b"0123456789abcdef"
_SLOTS = bytes(range(_SLOT0, _SLOT0 + 16))
_HEX_TO_SLOT = bytes.maketrans(_HEX, _SLOTS)
_SLOT_TO_HEX = bytes.maketrans(_SLOTS, _HEX)
_SLOT = tuple(bytes((i,)) for i in range(_SLOT0 + 16))  # _SLOT[s] == bytes((s,))
_BIT = (0,) * _SLOT0 + tuple(1 << n for n in range(16))  # bitmap bit of slot s
_COMPACT = tuple(encode_compact(n) for n in range(1024))
_BRANCH_HEAD = struct.Struct("<BH").pack
_BRANCH_HEAD_NONE = struct.Struct("<BHB").pack


def _path(key: bytes) -> bytes:
    """A key's nibble path, in slots."""
    return hexlify(key).translate(_HEX_TO_SLOT)


def _pack(path: bytes) -> bytes:
    hexed = path.translate(_SLOT_TO_HEX)
    if len(path) & 1:
        hexed += b"0"
    return unhexlify(hexed)


def _compact(n: int) -> bytes:
    return _COMPACT[n] if n < 1024 else encode_compact(n)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _encode_leaf(path: bytes, value: bytes) -> bytes:
    return b"".join((b"\x01", _compact(len(path)), _pack(path), _compact(len(value)), value))


def _encode_extension(path: bytes, child_hash: bytes) -> bytes:
    return b"".join((b"\x02", _compact(len(path)), _pack(path), child_hash))


def _encode_branch(bitmap: int, value: bytes | None, hashes: Sequence[bytes | None]) -> bytes:
    """`hashes`: the 16 children's hashes, None for absent ones."""
    if value is None:
        head = _BRANCH_HEAD(BRANCH, bitmap) + b"\x00"
    else:
        head = b"".join((_BRANCH_HEAD(BRANCH, bitmap), b"\x01", _compact(len(value)), value))
    return head + b"".join(filter(None, hashes))


def _read_compact(data: bytes, pos: int) -> tuple[int, int]:
    if pos + 1 < len(data):
        first = data[pos]
        mode = first & 3
        if mode == 0:
            return first >> 2, pos + 1
        if mode == 1:
            value = (first | data[pos + 1] << 8) >> 2
            if value < 64:
                raise CodecError("non-canonical compact integer")
            return value, pos + 2
    dec = Decoder(data, pos)
    value = dec.compact()
    return value, dec.pos


def _read_path(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _read_compact(data, pos)
    end = pos + (n + 1) // 2
    if end > len(data):
        raise CodecError("trie path runs past the end of the node")
    path = hexlify(data[pos:end]).translate(_HEX_TO_SLOT)
    if n & 1:
        if path[-1] != _SLOT0:
            raise CodecError("non-zero padding nibble in a trie path")
        path = path[:-1]
    return path, end


def decode_node(encoding: bytes) -> Node:
    """Decode one node strictly (raises `CodecError`) into its clean tuple form."""
    size = len(encoding)
    tag = encoding[0] if size else -1
    if tag == BRANCH:
        if size < 4:
            raise CodecError("truncated trie branch")
        bitmap = encoding[1] | encoding[2] << 8
        if not bitmap:
            raise CodecError("trie branch without children")
        flag = encoding[3]
        value: bytes | None = None
        pos = 4
        if flag == 1:
            length, pos = _read_compact(encoding, 4)
            value = encoding[pos : pos + length]
            pos += length
        elif flag:
            raise CodecError(f"invalid option byte {flag} in a trie branch")
        if size - pos != 32 * bitmap.bit_count():
            raise CodecError("trie branch length does not match its bitmap")
        node: list[Any] = [BRANCH, value, bitmap]
        for n in range(16):
            if bitmap >> n & 1:
                node.append(encoding[pos : pos + 32])
                pos += 32
            else:
                node.append(None)
        return tuple(node)
    if tag == LEAF:
        path, pos = _read_path(encoding, 1)
        length, pos = _read_compact(encoding, pos)
        if size - pos != length:
            raise CodecError("trie leaf value length does not match the node")
        return (LEAF, path, encoding[pos:])
    if tag == EXTENSION:
        path, pos = _read_path(encoding, 1)
        if not path:
            raise CodecError("trie extension with an empty path")
        if size - pos != 32:
            raise CodecError("trie extension must end with one 32-byte hash")
        return (EXTENSION, path, encoding[pos:])
    raise CodecError(f"unknown trie node tag {tag}")


# -- cache ---------------------------------------------------------------------------------


class NodeCache:
    """A bounded cache of clean nodes by hash, shareable between `Trie`s.

    An approximate LRU with two generations: new and recently used nodes go into `young`;
    when it holds capacity/2 entries it becomes `old` and the previous `old` is dropped; a hit
    in `old` moves the node back to `young`. A hit costs one dict lookup, with no bookkeeping
    (an OrderedDict's move_to_end costs another cache miss per node on the read path).
    """

    __slots__ = ("_half", "_old", "_young", "capacity")

    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 2:
            raise ValueError("NodeCache capacity must be at least 2")
        self.capacity = capacity
        self._half = capacity // 2
        self._young: dict[bytes, Node] = {}
        self._old: dict[bytes, Node] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def get(self, node_hash: bytes) -> Node | None:
        node = self._young.get(node_hash)
        if node is None:
            node = self._old.pop(node_hash, None)
            if node is not None:
                self.put(node_hash, node)
        return node

    def put(self, node_hash: bytes, node: Node) -> None:
        young = self._young
        if node_hash not in young:
            young[node_hash] = node
            if len(young) >= self._half:
                self._old = young
                self._young = {}

    def clear(self) -> None:
        self._young = {}
        self._old = {}


# -- the trie ------------------------------------------------------------------------------


class Trie:
    """A read-only view of the trie at `root`; `apply` computes a new root without storing."""

    __slots__ = ("cache", "root", "store")

    def __init__(
        self, store: NodeStore, root: bytes = EMPTY_ROOT, cache: NodeCache | None = None
    ) -> None:
        self.store = store
        self.root = root
        self.cache = cache if cache is not None else NodeCache()

    def _load(self, node_hash: bytes) -> Node:
        cache = self.cache
        node = cache._young.get(node_hash)
        if node is not None:
            return node
        node = cache.get(node_hash)
        if node is not None:
            return node
        encoding = self.store.get(node_hash)
        if encoding is None:
            raise TrieError(f"missing trie node {node_hash.hex()}")
        try:
            node = decode_node(encoding)
        except CodecError as exc:
            raise TrieError(f"corrupt trie node {node_hash.hex()}: {exc}") from exc
        cache.put(node_hash, node)
        return node

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        node_hash = self.root
        if node_hash == EMPTY_ROOT:
            return None
        path = hexlify(key).translate(_HEX_TO_SLOT)
        end = len(path)
        pos = 0
        young = self.cache._young
        while True:
            node = young.get(node_hash)
            if node is None:
                node = self._load(node_hash)
            kind = node[0]
            if kind == BRANCH:
                if pos == end:
                    value: bytes | None = node[_VALUE]
                    return value
                node_hash = node[path[pos]]
                if node_hash is None:
                    return None
                pos += 1
            elif kind == LEAF:
                leaf_path = node[1]
                if end - pos == len(leaf_path) and path.startswith(leaf_path, pos):
                    leaf_value: bytes = node[2]
                    return leaf_value
                return None
            else:
                ext_path = node[1]
                if not path.startswith(ext_path, pos):
                    return None
                pos += len(ext_path)
                node_hash = node[2]

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with `prefix` and is > `start` (if given), ascending."""
        if self.root == EMPTY_ROOT:
            return
        load = self._load
        pp = _path(prefix)
        pos = 0
        node_hash = self.root
        # Descend to the node covering `prefix`; `pp[:pos]` is the path to `node_hash`.
        while pos < len(pp):
            node = load(node_hash)
            kind = node[0]
            if kind == BRANCH:
                child = node[pp[pos]]
                if child is None:
                    return
                node_hash = child
                pos += 1
            elif kind == LEAF:
                if node[1].startswith(pp[pos:]):
                    break
                return
            else:
                ext_path = node[1]
                if ext_path.startswith(pp[pos:]):
                    break
                if not pp.startswith(ext_path, pos):
                    return
                pos += len(ext_path)
                node_hash = node[2]
        acc = pp[:pos]
        lo: bytes | None = None  # the rest of `start` below `acc`, while acc is its prefix
        if start is not None:
            sp = _path(start)
            if sp.startswith(acc):
                lo = sp[pos:]
            elif sp > acc:
                return
        stack: list[tuple[bytes, bytes, bytes | None]] = [(node_hash, acc, lo)]
        while stack:
            node_hash, acc, lo = stack.pop()
            node = load(node_hash)
            kind = node[0]
            if kind == LEAF:
                if lo is None or node[1] > lo:
                    yield _pack(acc + node[1]), node[2]
            elif kind == EXTENSION:
                ext_path = node[1]
                if lo is None:
                    stack.append((node[2], acc + ext_path, None))
                else:
                    head = lo[: len(ext_path)]
                    if ext_path > head:
                        stack.append((node[2], acc + ext_path, None))
                    elif ext_path == head:
                        stack.append((node[2], acc + ext_path, lo[len(ext_path) :]))
            else:
                if lo is None and node[_VALUE] is not None:
                    yield _pack(acc), node[_VALUE]
                first = lo[0] if lo else _SLOT0
                for s in range(_SLOT0 + 15, first - 1, -1):
                    child = node[s]
                    if child is not None:
                        below = lo[1:] if lo and s == first else None
                        stack.append((child, acc + _SLOT[s], below))

    def closest_descendant_hash(self, prefix: bytes) -> bytes | None:
        """The hash (every node's Merkle value: nodes are never inlined) of the node at
        `prefix`'s path or, when none sits exactly there, of the highest node below it; None
        when no key starts with `prefix`. It changes whenever a key under `prefix` changes."""
        if self.root == EMPTY_ROOT:
            return None
        pp = _path(prefix)
        pos = 0
        node_hash = self.root
        while pos < len(pp):
            node = self._load(node_hash)
            kind = node[0]
            if kind == BRANCH:
                child = node[pp[pos]]
                if child is None:
                    return None
                node_hash = child
                pos += 1
            elif kind == LEAF:
                return node_hash if node[1].startswith(pp[pos:]) else None
            else:
                ext_path = node[1]
                if ext_path.startswith(pp[pos:]):
                    child_hash: bytes = node[2]  # the branch below, under `prefix`
                    return child_hash
                if not pp.startswith(ext_path, pos):
                    return None
                pos += len(ext_path)
                node_hash = node[2]
        return node_hash

    # -- writes --------------------------------------------------------------------------

    def apply(self, changes: Mapping[bytes, bytes | None]) -> tuple[bytes, dict[bytes, bytes]]:
        """Apply puts (value) and deletes (None): `(new_root, {hash: encoding} of new nodes)`.

        Neither the store nor this Trie changes; the new nodes are put into the cache.

        The cyclic garbage collector is paused meanwhile (results do not depend on it): the
        batch allocates tens of thousands of short-lived containers, and the collections they
        trigger would otherwise cost 10-25% of the time, traversing the node cache.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._apply(changes)
        finally:
            if paused:
                gc.enable()

    def _apply(self, changes: Mapping[bytes, bytes | None]) -> tuple[bytes, dict[bytes, bytes]]:
        root: _Ref | None = None if self.root == EMPTY_ROOT else self.root
        put = self._put
        delete = self._delete
        for key, value in changes.items():
            if value is None:
                root = delete(root, hexlify(key).translate(_HEX_TO_SLOT), 0)
            else:
                root = put(root, hexlify(key).translate(_HEX_TO_SLOT), value)
        if root is None:
            return EMPTY_ROOT, {}
        if isinstance(root, bytes):
            return root, {}
        new_nodes: dict[bytes, bytes] = {}
        return self._commit(root, new_nodes), new_nodes

    def _put(self, root: _Ref | None, path: bytes, value: bytes) -> _Ref:
        """Insert, walking down dirty branches in place; `_insert` does the rest."""
        if root.__class__ is not list:
            return self._insert(root, path, 0, value)
        assert isinstance(root, list)
        node = root
        pos = 0
        if node[0] != BRANCH:  # a dirty extension
            sub = node[2]
            if sub.__class__ is not list or not path.startswith(node[1]):
                return self._insert(root, path, 0, value)
            node = sub
            pos = len(root[1])
        end = len(path)
        while True:  # `node` is a dirty branch
            if pos == end:
                node[_VALUE] = value
                return root
            s = path[pos]
            child = node[s]
            if child.__class__ is list:
                kind = child[0]
                if kind == BRANCH:
                    node = child
                    pos += 1
                    continue
                if kind == EXTENSION:
                    sub = child[2]
                    if sub.__class__ is list and path.startswith(child[1], pos + 1):
                        node = sub
                        pos += 1 + len(child[1])
                        continue
            new = self._insert(child, path, pos + 1, value)
            if new is not child:
                node[s] = new
                if child is None:
                    node[_BITMAP] |= _BIT[s]
                node[_TOUCHED] |= _BIT[s]
            return root

    def _open(self, ref: _Ref) -> tuple[Any, bool]:
        """The node `ref` points to, and whether it is clean (stored: a tuple, loaded by hash)
        or dirty (a list this batch is building)."""
        if ref.__class__ is bytes:
            assert isinstance(ref, bytes)
            return self.cache._young.get(ref) or self._load(ref), True
        return ref, False

    def _insert(self, ref: _Ref | None, path: bytes, pos: int, value: bytes) -> _Ref:
        if ref is None:
            return (LEAF, path[pos:], value)
        dirty: list[Any]
        node, clean = self._open(ref)
        kind = node[0]
        if kind == BRANCH:
            if pos == len(path):
                if node[_VALUE] == value:
                    return ref
                dirty = node if not clean else [*node, 0]
                dirty[_VALUE] = value
                return dirty
            s = path[pos]
            child = node[s]
            new = self._insert(child, path, pos + 1, value)
            if new is child:
                return ref
            dirty = node if not clean else [*node, 0]
            dirty[s] = new
            if child is None:
                dirty[_BITMAP] |= _BIT[s]
            dirty[_TOUCHED] |= _BIT[s]
            return dirty
        if kind == LEAF:
            leaf_path = node[1]
            if len(path) - pos == len(leaf_path) and path.startswith(leaf_path, pos):
                if node[2] == value:
                    return ref
                return (LEAF, leaf_path, value)
            rest = path[pos:]
            c = _common_prefix(leaf_path, rest)
            branch = list(_EMPTY_BRANCH)
            bits = 0
            if c == len(leaf_path):
                branch[_VALUE] = node[2]
            else:
                s = leaf_path[c]
                branch[s] = (LEAF, leaf_path[c + 1 :], node[2])
                bits = _BIT[s]
            if c == len(rest):
                branch[_VALUE] = value
            else:
                s = rest[c]
                branch[s] = (LEAF, rest[c + 1 :], value)
                bits |= _BIT[s]
            branch[_BITMAP] = branch[_TOUCHED] = bits
            return [EXTENSION, rest[:c], branch] if c else branch
        ext_path = node[1]
        if path.startswith(ext_path, pos):
            child = node[2]
            new = self._insert(child, path, pos + len(ext_path), value)
            if new is child:
                return ref
            if clean:
                return [EXTENSION, ext_path, new]
            node[2] = new
            return ref
        rest = path[pos:]
        c = _common_prefix(ext_path, rest)
        branch = _new_branch()
        below = node[2] if c + 1 == len(ext_path) else [EXTENSION, ext_path[c + 1 :], node[2]]
        _attach(branch, ext_path[c], below)
        if c == len(rest):
            branch[_VALUE] = value
        else:
            _attach(branch, rest[c], (LEAF, rest[c + 1 :], value))
        return [EXTENSION, rest[:c], branch] if c else branch

    def _delete(self, ref: _Ref | None, path: bytes, pos: int) -> _Ref | None:
        if ref is None:
            return None
        dirty: list[Any]
        node, clean = self._open(ref)
        kind = node[0]
        if kind == LEAF:
            leaf_path = node[1]
            if len(path) - pos == len(leaf_path) and path.startswith(leaf_path, pos):
                return None
            return ref
        if kind == EXTENSION:
            ext_path = node[1]
            if not path.startswith(ext_path, pos):
                return ref
            child = node[2]
            new = self._delete(child, path, pos + len(ext_path))
            if new is child:
                return ref
            if new is None:  # pragma: no cover - a canonical branch keeps an entry
                raise TrieError("extension over a branch with a single entry")
            return self._prepend(ext_path, new)
        if pos == len(path):
            if node[_VALUE] is None:
                return ref
            dirty = node if not clean else [*node, 0]
            dirty[_VALUE] = None
        else:
            s = path[pos]
            child = node[s]
            if child is None:
                return ref
            new = self._delete(child, path, pos + 1)
            if new is child:
                return ref
            dirty = node if not clean else [*node, 0]
            dirty[s] = new
            if new is None:
                dirty[_BITMAP] &= ~_BIT[s]
            else:
                dirty[_TOUCHED] |= _BIT[s]
        # Restore canonical form.
        bitmap = dirty[_BITMAP]
        count = bitmap.bit_count()
        if count > 1 or (count == 1 and dirty[_VALUE] is not None):
            return dirty
        if count == 1:
            s = bitmap.bit_length() - 1 + _SLOT0
            return self._prepend(_SLOT[s], dirty[s])
        if dirty[_VALUE] is None:  # pragma: no cover - a canonical branch has two entries
            raise TrieError("branch left without entries")
        return (LEAF, b"", dirty[_VALUE])

    def _prepend(self, slots: bytes, ref: _Ref) -> _Dirty:
        """The node for `ref`'s subtree moved `slots` deeper (merging paths)."""
        node = self._load(ref) if isinstance(ref, bytes) else ref
        kind = node[0]
        if kind == BRANCH:
            return [EXTENSION, slots, ref]
        if kind == LEAF:
            return (LEAF, slots + node[1], node[2])
        return [EXTENSION, slots + node[1], node[2]]

    def _commit(self, node: Any, out: dict[bytes, bytes]) -> bytes:
        kind = node[0]
        if kind == BRANCH:
            assert isinstance(node, list)
            touched = node.pop()  # _TOUCHED
            while touched:
                low = touched & -touched
                touched ^= low
                s = low.bit_length() + _SLOT0 - 1
                child = node[s]
                cls = child.__class__
                if cls is list or cls is tuple:
                    node[s] = self._commit(child, out)
            clean = tuple(node)
            value = node[_VALUE]
            if value is None:  # _encode_branch, inlined
                encoding = _BRANCH_HEAD_NONE(BRANCH, node[_BITMAP], 0) + b"".join(
                    filter(None, clean[_SLOT0:])
                )
            else:
                encoding = _encode_branch(node[_BITMAP], value, clean[_SLOT0:])
        elif kind == LEAF:
            clean = node  # already a tuple
            path = node[1]
            value = node[2]
            hexed = path.translate(_SLOT_TO_HEX)  # _encode_leaf, inlined
            if len(path) & 1:
                hexed += b"0"
            n = len(path)
            m = len(value)
            encoding = b"".join(
                (
                    b"\x01",
                    _COMPACT[n] if n < 1024 else encode_compact(n),
                    unhexlify(hexed),
                    _COMPACT[m] if m < 1024 else encode_compact(m),
                    value,
                )
            )
        else:
            child = node[2]
            if child.__class__ is not bytes:
                child = self._commit(child, out)
            clean = (EXTENSION, node[1], child)
            encoding = _encode_extension(node[1], child)
        node_hash = blake2_256(encoding)
        out[node_hash] = encoding
        cache = self.cache
        young = cache._young
        if node_hash not in young:  # NodeCache.put, inlined
            young[node_hash] = clean
            if len(young) >= cache._half:
                cache._old = young
                cache._young = {}
        return node_hash


_EMPTY_BRANCH: tuple[Any, ...] = (BRANCH, None, 0, *[None] * 16, 0)  # a template: copy it


def _new_branch() -> list[Any]:
    return list(_EMPTY_BRANCH)


def _attach(branch: list[Any], slot: int, child: _Ref) -> None:
    branch[slot] = child
    branch[_BITMAP] |= _BIT[slot]
    branch[_TOUCHED] |= _BIT[slot]


# -- positional diff (what a state pruner journals) ----------------------------------------


def _push_children(frontier: dict[int, dict[bytes, bytes]], pos: bytes, node: Node) -> int:
    """Put `node`'s children (at `pos`) into `frontier` by depth; returns the deepest depth."""
    if node[0] == BRANCH:
        depth = len(pos) + 1
        level = frontier.setdefault(depth, {})
        for s in range(_SLOT0, _SLOT0 + 16):
            child = node[s]
            if child is not None:
                level[pos + _SLOT[s]] = child
        return depth
    if node[0] == EXTENSION:
        child_pos = pos + node[1]
        frontier.setdefault(len(child_pos), {})[child_pos] = node[2]
        return len(child_pos)
    return 0


def diff_nodes(
    store: NodeStore, old_root: bytes, new_root: bytes, cache: NodeCache | None = None
) -> tuple[list[bytes], list[bytes]]:
    """What changed between two states, node by node, at each trie position.

    A state is a map from positions (the nibble path where a node starts) to node hashes; a
    node keeps its position while the trie changes around it (content addressing: its
    encoding never names its parent). Returns `(created, consumed)`: the hashes at positions
    of `new_root` that `old_root` lacks or holds another node at, and the converse, one entry
    per position (a node found at two positions counts twice). A node's live count in a
    state changes by exactly its created minus consumed entries, which is what a reference
    counting pruner needs; only the differing subtrees are read.
    """
    created: list[bytes] = []
    consumed: list[bytes] = []
    if old_root == new_root:
        return created, consumed
    load = Trie(store, EMPTY_ROOT, cache)._load
    olds: dict[int, dict[bytes, bytes]] = {}
    news: dict[int, dict[bytes, bytes]] = {}
    if old_root != EMPTY_ROOT:
        olds[0] = {b"": old_root}
    if new_root != EMPTY_ROOT:
        news[0] = {b"": new_root}
    depth = 0
    deepest = 0
    while depth <= deepest:
        old_level = olds.pop(depth, {})
        new_level = news.pop(depth, {})
        for pos, old_hash in old_level.items():
            new_hash = new_level.pop(pos, None)
            if new_hash == old_hash:
                continue  # the same subtree at the same place
            consumed.append(old_hash)
            old_node = load(old_hash)
            if new_hash is None:
                deepest = max(deepest, _push_children(olds, pos, old_node))
                continue
            created.append(new_hash)
            new_node = load(new_hash)
            if old_node[0] == BRANCH and new_node[0] == BRANCH:
                child_depth = depth + 1  # only the children that differ
                old_children = olds.setdefault(child_depth, {})
                new_children = news.setdefault(child_depth, {})
                for s in range(_SLOT0, _SLOT0 + 16):
                    a = old_node[s]
                    b = new_node[s]
                    if a != b:
                        if a is not None:
                            old_children[pos + _SLOT[s]] = a
                        if b is not None:
                            new_children[pos + _SLOT[s]] = b
                deepest = max(deepest, child_depth)
            else:
                deepest = max(
                    deepest,
                    _push_children(olds, pos, old_node),
                    _push_children(news, pos, new_node),
                )
        for pos, new_hash in new_level.items():
            created.append(new_hash)
            deepest = max(deepest, _push_children(news, pos, load(new_hash)))
        depth += 1
    return created, consumed


# -- oracle, ordered root, verification ----------------------------------------------------


def _reference_encoding(entries: list[tuple[bytes, bytes]]) -> bytes:
    """Encoding of the canonical node for sorted, distinct, non-empty (path, value)s."""
    if len(entries) == 1:
        return _encode_leaf(*entries[0])
    common = _common_prefix(entries[0][0], entries[-1][0])  # sorted: first vs last suffices
    if common:
        below = _reference_encoding([(p[common:], v) for p, v in entries])
        return _encode_extension(entries[0][0][:common], blake2_256(below))
    value: bytes | None = None
    groups: list[list[tuple[bytes, bytes]]] = [[] for _ in range(16)]
    for path, v in entries:
        if path:
            groups[path[0] - _SLOT0].append((path[1:], v))
        else:
            value = v
    bitmap = 0
    hashes: list[bytes | None] = []
    for n, group in enumerate(groups):
        if group:
            bitmap |= 1 << n
            hashes.append(blake2_256(_reference_encoding(group)))
    return _encode_branch(bitmap, value, hashes)


def reference_root(items: Mapping[bytes, bytes]) -> bytes:
    """The root of the trie holding exactly `items`, computed recursively from scratch."""
    if not items:
        return EMPTY_ROOT
    entries = sorted((_path(k), v) for k, v in items.items())
    return blake2_256(_reference_encoding(entries))


def ordered_root(values: Sequence[bytes]) -> bytes:
    """Root of the trie `{encode_compact(i): values[i]}` (the header's extrinsics root): the
    reference construction (`reference_root`, the oracle it is tested against) over index
    ranges of the sorted entries, leaves encoded in place."""
    if not values:
        return EMPTY_ROOT
    entries = sorted([(_path(encode_compact(i)), v) for i, v in enumerate(values)])
    return blake2_256(_range_encoding(entries, 0, len(entries), 0))


def _range_encoding(entries: list[tuple[bytes, bytes]], lo: int, hi: int, depth: int) -> bytes:
    """`_reference_encoding` of `entries[lo:hi]`, which share their first `depth` path slots,
    with those slots taken off, without copying the entries level by level."""
    first_path, first_value = entries[lo]
    if hi - lo == 1:
        return _encode_leaf(first_path[depth:], first_value)
    common = _common_prefix(first_path[depth:], entries[hi - 1][0][depth:])
    if common:
        below = _range_encoding(entries, lo, hi, depth + common)
        return _encode_extension(first_path[depth : depth + common], blake2_256(below))
    value: bytes | None = None
    i = lo
    if len(first_path) == depth:  # sorted: the entry that ends here comes first
        value = first_value
        i += 1
    bitmap = 0
    hashes: list[bytes | None] = []
    below_depth = depth + 1
    while i < hi:
        path, v = entries[i]
        slot = path[depth]
        j = i + 1
        while j < hi and entries[j][0][depth] == slot:
            j += 1
        bitmap |= _BIT[slot]
        if j == i + 1:  # a leaf: no recursion
            hashes.append(blake2_256(_encode_leaf(path[below_depth:], v)))
        else:
            hashes.append(blake2_256(_range_encoding(entries, i, j, below_depth)))
        i = j
    return _encode_branch(bitmap, value, hashes)


def verify(store: NodeStore, root: bytes, seen: set[tuple[bytes, int, bool]] | None = None) -> int:
    """Check every node reachable from `root`; return the number of key/value pairs.

    Checks each node's hash, strict decoding and canonical form (extensions point to
    branches, branches have >= 1 child and >= 2 entries, keys are whole bytes). Raises
    `TrieError` on the first problem. `seen`: subtrees already checked (by an earlier call
    over another state sharing them) are skipped, and their pairs not counted.
    """
    if root == EMPTY_ROOT:
        return 0
    count = 0
    # (hash, nibble depth, parent is an extension)
    stack: list[tuple[bytes, int, bool]] = [(root, 0, False)]
    while stack:
        node_hash, depth, under_extension = stack.pop()
        if seen is not None:
            mark = (node_hash, depth & 1, under_extension)
            if mark in seen:
                continue
            seen.add(mark)
        encoding = store.get(node_hash)
        if encoding is None:
            raise TrieError(f"missing trie node {node_hash.hex()}")
        if blake2_256(encoding) != node_hash:
            raise TrieError(f"trie node {node_hash.hex()} does not match its hash")
        try:
            node = decode_node(encoding)
        except CodecError as exc:
            raise TrieError(f"corrupt trie node {node_hash.hex()}: {exc}") from exc
        kind = node[0]
        if under_extension and kind != BRANCH:
            raise TrieError(f"extension child {node_hash.hex()} is not a branch")
        if kind == LEAF:
            if (depth + len(node[1])) & 1:
                raise TrieError(f"leaf {node_hash.hex()} ends mid-byte")
            count += 1
        elif kind == EXTENSION:
            stack.append((node[2], depth + len(node[1]), True))
        else:
            if node[_BITMAP].bit_count() + (node[_VALUE] is not None) < 2:
                raise TrieError(f"branch {node_hash.hex()} has fewer than two entries")
            if node[_VALUE] is not None:
                if depth & 1:
                    raise TrieError(f"branch {node_hash.hex()} holds a value mid-byte")
                count += 1
            for s in range(_SLOT0 + 15, _SLOT0 - 1, -1):
                if node[s] is not None:
                    stack.append((node[s], depth + 1, False))
    return count
