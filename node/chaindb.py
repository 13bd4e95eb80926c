"""The chain database: headers, bodies, the canonical index, trie nodes, head pointers.

This class owns the key layout. Every block goes in with ONE atomic write batch: its header,
body, new trie nodes, canonical index entry and the new best/finalized pointers, so a crash
(kill -9) at any point leaves the store at the old block or the new one, never between.

Key layout (one-byte prefixes):
  h<hash>          SCALE header
  b<hash>          SCALE Vec<extrinsic> (each with its length prefix)
  n<u32 BE>        canonical block hash at that number
  t<node hash>     trie node (content-addressed; all states are kept: archive mode)
  j<hash>          the finality justification of a block (blocks a finality round ended on)
  l<hash>          a leaf of the block tree (u32 BE number): fork choice picks among them
  m:best, m:finalized, m:genesis, m:last_slot (the last slot this node authored in)
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.codec import Decoder, encode_compact
from chain.primitives import Header
from chain.storage.kv import KVStore
from chain.storage.trie import NodeCache, Trie
from node.errors import NodeError

HEADER = b"h"
BODY = b"b"
CANON = b"n"
NODE = b"t"
JUSTIFICATION = b"j"
LEAF = b"l"
LAST_SLOT = b"m:last_slot"
BEST = b"m:best"
FINALIZED = b"m:finalized"
GENESIS = b"m:genesis"


class ChainDBError(NodeError):
    pass


class _NodeStore:
    __slots__ = ("kv",)

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    def get(self, node_hash: bytes) -> bytes | None:
        return self.kv.get(NODE + node_hash)


class ChainDB:
    def __init__(self, kv: KVStore, *, cache_nodes: int = 500_000) -> None:
        self.kv = kv
        self.nodes = _NodeStore(kv)
        self.cache = NodeCache(cache_nodes)
        self._headers: dict[bytes, Header] = {}

    # ---- reads --------------------------------------------------------------------------------

    def genesis_hash(self) -> bytes | None:
        return self.kv.get(GENESIS)

    def best_hash(self) -> bytes:
        h = self.kv.get(BEST)
        if h is None:
            raise ChainDBError("the database has no chain (no genesis)")
        return h

    def finalized_hash(self) -> bytes:
        h = self.kv.get(FINALIZED)
        return h if h is not None else self.best_hash()

    def header(self, block_hash: bytes) -> Header | None:
        cached = self._headers.get(block_hash)
        if cached is not None:
            return cached
        raw = self.kv.get(HEADER + block_hash)
        if raw is None:
            return None
        header = Header.decode(raw)
        if len(self._headers) > 4096:
            self._headers.clear()
        self._headers[block_hash] = header
        return header

    def body(self, block_hash: bytes) -> list[bytes] | None:
        raw = self.kv.get(BODY + block_hash)
        if raw is None:
            return None
        d = Decoder(raw)
        out = []
        for _ in range(d.compact()):
            start = d.pos
            n = d.compact()
            d.read(n)
            out.append(raw[start : d.pos])
        d.finish()
        return out

    def hash_at(self, number: int) -> bytes | None:
        if not 0 <= number < 2**32:
            return None
        return self.kv.get(CANON + number.to_bytes(4, "big"))

    def state_at(self, block_hash: bytes) -> Trie:
        header = self.header(block_hash)
        if header is None:
            raise ChainDBError(f"unknown block 0x{block_hash.hex()}")
        return self.state_at_root(header.state_root)

    def state_at_root(self, root: bytes) -> Trie:
        return Trie(self.nodes, root, self.cache)

    # ---- writes -------------------------------------------------------------------------------

    def commit_block(
        self,
        header: Header,
        extrinsics: Sequence[bytes],
        nodes: dict[bytes, bytes],
        *,
        is_best: bool,
        is_finalized: bool,
        is_genesis: bool = False,
        sync: bool = True,
        justification: bytes | None = None,
        authored_slot: int | None = None,
    ) -> bytes:
        """Persist a block and its state atomically; returns its hash.

        `authored_slot` records, in the same batch, that this node sealed a block for that slot
        (so that after a crash it never seals a second block for it: an equivocation)."""
        block_hash = header.hash()
        ops: list[tuple[bytes, bytes | None]] = [
            (HEADER + block_hash, header.encode()),
            (BODY + block_hash, encode_compact(len(extrinsics)) + b"".join(extrinsics)),
            (LEAF + block_hash, header.number.to_bytes(4, "big")),
        ]
        if not is_genesis:
            ops.append((LEAF + header.parent_hash, None))
        ops.extend((NODE + h, enc) for h, enc in nodes.items())
        if is_best:
            ops.extend(self._recanonicalize(header, block_hash))
            ops.append((BEST, block_hash))
        if is_finalized:
            ops.append((FINALIZED, block_hash))
        if is_genesis:
            ops.append((GENESIS, block_hash))
        if justification is not None:
            ops.append((JUSTIFICATION + block_hash, justification))
        if authored_slot is not None:
            ops.append((LAST_SLOT, authored_slot.to_bytes(8, "little")))
        self.kv.write_batch(ops, sync=sync)
        self._headers[block_hash] = header
        return block_hash

    def _recanonicalize(
        self, header: Header, block_hash: bytes
    ) -> list[tuple[bytes, bytes | None]]:
        """Canonical-index writes making `header` the head: its own entry, every ancestor entry
        that points to another fork (a reorg), and removal of entries above it."""
        ops: list[tuple[bytes, bytes | None]] = [
            (CANON + header.number.to_bytes(4, "big"), block_hash)
        ]
        parent, number = header.parent_hash, header.number - 1
        while number >= 0 and self.hash_at(number) != parent:
            ops.append((CANON + number.to_bytes(4, "big"), parent))
            ancestor = self.header(parent)
            if ancestor is None:
                raise ChainDBError(f"missing ancestor 0x{parent.hex()} of block #{header.number}")
            parent, number = ancestor.parent_hash, number - 1
        best = self.kv.get(BEST)
        old = self.header(best) if best is not None else None
        if old is not None:
            ops.extend(
                (CANON + n.to_bytes(4, "big"), None)
                for n in range(header.number + 1, old.number + 1)
            )
        return ops

    def set_finalized(self, block_hash: bytes) -> None:
        self.kv.write_batch([(FINALIZED, block_hash)], sync=True)

    # ---- fork choice and finality -------------------------------------------------------------

    def justification(self, block_hash: bytes) -> bytes | None:
        return self.kv.get(JUSTIFICATION + block_hash)

    def last_authored_slot(self) -> int:
        raw = self.kv.get(LAST_SLOT)
        return int.from_bytes(raw, "little") if raw is not None else -1

    def leaves(self) -> list[tuple[int, bytes]]:
        """The tips of every known fork: (number, hash), highest first."""
        out = [(int.from_bytes(v, "big"), k[len(LEAF) :]) for k, v in self.kv.iterate(prefix=LEAF)]
        out.sort(key=lambda item: (-item[0], item[1]))
        return out

    def ancestor_at(self, block_hash: bytes, number: int) -> bytes | None:
        """The hash of `block_hash`'s ancestor (or itself) at height `number`, or None."""
        header = self.header(block_hash)
        if header is None or number > header.number or number < 0:
            return None
        if self.hash_at(header.number) == block_hash:
            return self.hash_at(number)  # canonical: the index answers directly
        h = block_hash
        while header.number > number:
            h = header.parent_hash
            header = self.header(h)
            if header is None:
                return None
            if self.hash_at(header.number) == h:
                return self.hash_at(number)
        return h

    def is_descendant(self, base: bytes, block_hash: bytes) -> bool:
        """Whether `block_hash` is `base` or one of its descendants."""
        base_header = self.header(base)
        if base_header is None:
            return False
        return self.ancestor_at(block_hash, base_header.number) == base

    def finalize(self, block_hash: bytes, justification: bytes | None) -> bytes:
        """Mark `block_hash` (and so its ancestors) final, store its justification, and make
        the best block the highest leaf that descends from it (fork choice: the longest chain
        that contains the last finalized block). One atomic batch. Returns the best hash."""
        header = self.header(block_hash)
        if header is None:
            raise ChainDBError(f"cannot finalize unknown block 0x{block_hash.hex()}")
        ops: list[tuple[bytes, bytes | None]] = [(FINALIZED, block_hash)]
        if justification is not None:
            ops.append((JUSTIFICATION + block_hash, justification))
        leaves = self.leaves()
        ops.extend(  # forks that end at or below the final block can never be built on
            (LEAF + leaf, None)
            for number, leaf in leaves
            if number <= header.number and leaf != block_hash
        )
        best = self.best_hash()
        if not self.is_descendant(block_hash, best):
            for number, leaf in leaves:
                if number >= header.number and self.is_descendant(block_hash, leaf):
                    best = leaf
                    break
            else:
                best = block_hash
            best_header = self.header(best)
            assert best_header is not None
            ops.extend(self._recanonicalize(best_header, best))
            ops.append((BEST, best))
        self.kv.write_batch(ops, sync=True)
        return best

    def store_justification(self, block_hash: bytes, justification: bytes) -> None:
        self.kv.write_batch([(JUSTIFICATION + block_hash, justification)], sync=True)
