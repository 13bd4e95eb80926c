"""The chain database: headers, bodies, the canonical index, trie nodes, head pointers.

This class owns the key layout. Every block goes in with ONE atomic write batch: its header,
body, new trie nodes, canonical index entry and the new best/finalized pointers, so a crash
(kill -9) at any point leaves the store at the old block or the new one, never between.

Key layout (one-byte prefixes):
  h<hash>          SCALE header
  b<hash>          SCALE Vec<extrinsic> (each with its length prefix)
  n<u32 BE>        canonical block hash at that number
  t<node hash>     trie node (content-addressed). Archive: the encoding. Pruned: the encoding
                   ++ u32 LE reference count (see below)
  J<hash>          pruned stores: the block's state journal, until the block leaves the window
  j<hash>          the finality justification of a block (blocks a finality round ended on)
  l<hash>          a leaf of the block tree (u32 BE number): fork choice picks among them
  m:best, m:finalized, m:genesis, m:last_slot (the last slot this node authored in)
  m:pruning        the state pruning mode the store was created with: b"archive" or b"N:<n>"
  m:state_base     pruned stores: the oldest canonical block whose state is kept
  m:body_base      u32 BE: the lowest block number whose body may still be stored

State pruning (Substrate's state-db, with reference counts). A state is a map from trie
positions to node hashes; `diff_nodes` gives, for each block, the nodes its state created and
consumed relative to its parent's, position by position. A node's count is the number of
positions holding it in the base state (the oldest kept) plus the positions created by every
kept block above it. Importing a block adds its created entries; when the base moves up to
its canonical child, the child's consumed entries are subtracted; when finality discards a
fork block, its created entries are subtracted. A node whose count reaches zero is deleted,
in the same write batch as the block or the finality that causes it. The journal of a block
(`J<hash>`) lives as long as it can still be needed: a block's state is kept exactly while it
is the base or has a journal.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence

from chain.codec import Decoder, encode_compact
from chain.primitives import Header
from chain.storage.kv import KVStore
from chain.storage.trie import EMPTY_ROOT, NodeCache, Trie, diff_nodes
from node.errors import NodeError, StateDiscarded

log = logging.getLogger(__name__)

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
JOURNAL = b"J"
PRUNING = b"m:pruning"
STATE_BASE = b"m:state_base"
BODY_BASE = b"m:body_base"

ARCHIVE = "archive"
ARCHIVE_CANONICAL = "archive-canonical"
DEFAULT_STATE_PRUNING = 256  # Substrate's default: the last 256 finalized blocks' state
COUNT_BYTES = 4


class ChainDBError(NodeError):
    pass


class _NodeStore:
    __slots__ = ("counted", "kv")

    def __init__(self, kv: KVStore, *, counted: bool = False) -> None:
        self.kv = kv
        self.counted = counted  # pruned store: each value ends with its reference count

    def get(self, node_hash: bytes) -> bytes | None:
        raw = self.kv.get(NODE + node_hash)
        if raw is None or not self.counted:
            return raw
        return raw[:-COUNT_BYTES]


class _Overlay:
    """New nodes not written yet, over the store."""

    __slots__ = ("below", "nodes")

    def __init__(self, nodes: Mapping[bytes, bytes], below: _NodeStore) -> None:
        self.nodes = nodes
        self.below = below

    def get(self, node_hash: bytes) -> bytes | None:
        enc = self.nodes.get(node_hash)
        return enc if enc is not None else self.below.get(node_hash)


def parse_pruning(value: str, *, blocks: bool = False) -> int | str:
    """`--state-pruning` / `--blocks-pruning` values: a number of blocks (>= 1), `archive`,
    and for blocks `archive-canonical`. Raises ValueError."""
    if value == ARCHIVE or (blocks and value == ARCHIVE_CANONICAL):
        return value
    try:
        n = int(value)
    except ValueError:
        modes = "archive, archive-canonical" if blocks else "archive"
        raise ValueError(f"expected a number of blocks or one of {modes}, got {value!r}") from None
    if n < 1:
        raise ValueError(f"the pruning window must be at least 1 block, got {n}")
    return n


def state_pruning_arg(value: str) -> int | str:
    """argparse type of `--state-pruning`."""
    try:
        return parse_pruning(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def blocks_pruning_arg(value: str) -> int | str:
    """argparse type of `--blocks-pruning`."""
    try:
        return parse_pruning(value, blocks=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _encode_mode(state_pruning: int | None) -> bytes:
    return ARCHIVE.encode() if state_pruning is None else f"N:{state_pruning}".encode()


def _encode_journal(created: list[bytes], consumed: list[bytes]) -> bytes:
    return b"".join(
        (len(created).to_bytes(4, "little"), *created, len(consumed).to_bytes(4, "little"))
    ) + b"".join(consumed)


def _decode_journal(raw: bytes) -> tuple[list[bytes], list[bytes]]:
    n = int.from_bytes(raw[:4], "little")
    created = [raw[4 + 32 * i : 36 + 32 * i] for i in range(n)]
    pos = 4 + 32 * n
    m = int.from_bytes(raw[pos : pos + 4], "little")
    pos += 4
    consumed = [raw[pos + 32 * i : pos + 32 + 32 * i] for i in range(m)]
    if pos + 32 * m != len(raw):
        raise ChainDBError("corrupt state journal")
    return created, consumed


class ChainDB:
    """`state_pruning`: None keeps the mode the store was created with (a new store: archive);
    `archive`; or N, the number of finalized blocks whose state is kept (plus every block not
    finalized yet). An archive store cannot become pruned nor a pruned one archive (its
    history is gone); a pruned store's window may change. `blocks_pruning`: `archive` or
    `archive-canonical` (every body: the bodies of forks stay too), or N (the bodies of the last
    N finalized canonical blocks)."""

    def __init__(
        self,
        kv: KVStore,
        *,
        cache_nodes: int = 500_000,
        state_pruning: int | str | None = None,
        blocks_pruning: int | str = ARCHIVE_CANONICAL,
    ) -> None:
        self.kv = kv
        self.cache = NodeCache(cache_nodes)
        self._headers: dict[bytes, Header] = {}
        # The best block's hash and state as last read, valid while `_writes` (the writes this
        # object made) has not moved since: every read of the best state (each RPC query)
        # otherwise costs two LevelDB lookups. Writes go through `_write_batch`.
        self._writes = 0
        self._best: tuple[int, bytes] | None = None
        self._best_state: tuple[int, bytes, Trie] | None = None
        self.state_pruning = self._resolve_mode(state_pruning)
        self.blocks_pruning = blocks_pruning
        self.nodes = _NodeStore(kv, counted=self.state_pruning is not None)

    def _resolve_mode(self, requested: int | str | None) -> int | None:
        """The state window (None: archive), checked against what the store was made with."""
        if requested is not None and requested != ARCHIVE and not isinstance(requested, int):
            raise ChainDBError(f"unknown state pruning mode {requested!r}")
        want = None if requested in (None, ARCHIVE) else int(requested)
        if self.kv.get(GENESIS) is None:
            return want
        raw = self.kv.get(PRUNING)
        stored = None if raw is None or raw == ARCHIVE.encode() else int(raw[2:])
        if requested is None:
            return stored
        if (stored is None) != (want is None):
            made = "an archive" if stored is None else f"pruned (--state-pruning {stored})"
            raise ChainDBError(
                f"the database was created {made}; it cannot run with --state-pruning "
                f"{requested}: keep that mode, or purge-chain and sync again"
            )
        if want is not None and want != stored:
            self._write_batch([(PRUNING, _encode_mode(want))], sync=True)
        return want

    def _write_batch(self, ops: list[tuple[bytes, bytes | None]], *, sync: bool) -> None:
        """Every write of this object: what reads remembered is forgotten once it is done (or
        failed)."""
        try:
            self.kv.write_batch(ops, sync=sync)
        finally:
            self._writes += 1

    # ---- reads --------------------------------------------------------------------------------

    def genesis_hash(self) -> bytes | None:
        return self.kv.get(GENESIS)

    def best_hash(self) -> bytes:
        best = self._best
        writes = self._writes
        if best is not None and best[0] == writes:
            return best[1]
        h = self.kv.get(BEST)
        if h is None:
            raise ChainDBError("the database has no chain (no genesis)")
        self._best = (writes, h)
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
        """The state after `block_hash`; raises StateDiscarded when pruning deleted it."""
        memo = self._best_state
        writes = self._writes
        if memo is not None and memo[0] == writes and memo[1] == block_hash:
            return memo[2]
        header = self.header(block_hash)
        if header is None:
            raise ChainDBError(f"unknown block 0x{block_hash.hex()}")
        if not self.has_state(block_hash):
            raise StateDiscarded(f"State already discarded for 0x{block_hash.hex()}")
        state = self.state_at_root(header.state_root)
        if block_hash == self.best_hash():
            self._best_state = (writes, block_hash, state)
        return state

    def has_state(self, block_hash: bytes) -> bool:
        """Whether the state of a known block is still stored (always, in an archive)."""
        if self.state_pruning is None:
            return True
        return (
            self.kv.get(JOURNAL + block_hash) is not None or self.kv.get(STATE_BASE) == block_hash
        )

    def state_base(self) -> bytes | None:
        """The oldest block whose state a pruned store keeps (None: an archive)."""
        return None if self.state_pruning is None else self.kv.get(STATE_BASE)

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
        deltas: dict[bytes, int] = {}
        journals: dict[bytes, bytes] = {}
        if self.state_pruning is None:
            ops.extend((NODE + h, enc) for h, enc in nodes.items())
        else:
            parent_root = EMPTY_ROOT
            if not is_genesis:
                parent = self.header(header.parent_hash)
                if parent is None:
                    raise ChainDBError(f"unknown parent of block #{header.number}")
                parent_root = parent.state_root
            created, consumed = diff_nodes(
                _Overlay(nodes, self.nodes), parent_root, header.state_root, self.cache
            )
            for x in created:
                deltas[x] = deltas.get(x, 0) + 1
            if is_genesis:
                ops.append((STATE_BASE, block_hash))
                ops.append((PRUNING, _encode_mode(self.state_pruning)))
            else:
                journals[block_hash] = _encode_journal(created, consumed)
                ops.append((JOURNAL + block_hash, journals[block_hash]))
        if is_best:
            ops.extend(self._recanonicalize(header, block_hash))
            ops.append((BEST, block_hash))
        if is_finalized:
            ops.append((FINALIZED, block_hash))
            if not is_genesis:
                ops.extend(self._prune(block_hash, header, deltas, journals))
        if is_genesis:
            ops.append((GENESIS, block_hash))
        if self.state_pruning is not None:
            ops.extend(self._count(deltas, nodes))
        if justification is not None:
            ops.append((JUSTIFICATION + block_hash, justification))
        if authored_slot is not None:
            ops.append((LAST_SLOT, authored_slot.to_bytes(8, "little")))
        self._write_batch(ops, sync=sync)
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
        self._write_batch([(FINALIZED, block_hash)], sync=True)

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
        deltas: dict[bytes, int] = {}
        ops.extend(self._prune(block_hash, header, deltas, {}))
        ops.extend(self._count(deltas, {}))
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
        self._write_batch(ops, sync=True)
        return best

    # ---- pruning ------------------------------------------------------------------------------

    def _prune(
        self,
        final: bytes,
        final_header: Header,
        deltas: dict[bytes, int],
        journals: Mapping[bytes, bytes],
    ) -> list[tuple[bytes, bytes | None]]:
        """The deletions that finalizing `final` causes (before the FINALIZED pointer moves):
        forks that do not contain it are discarded (their state and leaves), the
        state base moves up to keep the window, old bodies go past the blocks window. Node
        count changes are added to `deltas`; `journals` are journals not written yet."""
        ops: list[tuple[bytes, bytes | None]] = []
        old_hash = self.kv.get(FINALIZED)
        old = self.header(old_hash) if old_hash is not None else None
        if old is None or old_hash is None or final_header.number <= old.number:
            return ops
        chain: dict[int, bytes] = {}  # the newly final blocks, by number
        h, header = final, final_header
        while header.number > old.number:
            chain[header.number] = h
            h = header.parent_hash
            parent = self.header(h)
            if parent is None:
                raise ChainDBError(f"missing ancestor 0x{h.hex()} of a finalized block")
            header = parent
        chain[old.number] = old_hash

        def journal(block: bytes) -> tuple[list[bytes], list[bytes]] | None:
            raw = journals.get(block) or self.kv.get(JOURNAL + block)
            return None if raw is None else _decode_journal(raw)

        if self.state_pruning is not None:
            discarded: set[bytes] = set()
            for number, leaf in self.leaves():
                path: list[bytes] = []
                h, n = leaf, number
                keep = False
                while n > old.number and chain.get(n) != h:
                    path.append(h)
                    fork_header = self.header(h)
                    if fork_header is None:
                        break
                    h, n = fork_header.parent_hash, n - 1
                if n == final_header.number and h == final:
                    keep = True  # the leaf descends from the final block
                elif n > final_header.number:
                    keep = self.ancestor_at(h, final_header.number) == final
                if keep:
                    continue
                for block in path:
                    if block in discarded:
                        continue
                    discarded.add(block)
                    entry = journal(block)
                    if entry is not None:
                        for x in entry[0]:
                            deltas[x] = deltas.get(x, 0) - 1
                    ops.append((JOURNAL + block, None))
                    ops.append((LEAF + block, None))
                    # its header and body stay: the transaction pool reads the bodies of the
                    # blocks a finality reorg retracts, after this batch
            if discarded:
                log.debug("Finality discarded %d fork block(s)", len(discarded))
            base = self.kv.get(STATE_BASE)
            base_header = self.header(base) if base is not None else None
            if base is not None and base_header is not None:
                number = base_header.number
                target = final_header.number - self.state_pruning + 1
                while number < target:
                    number += 1
                    child = chain.get(number) or self.hash_at(number)
                    if child is None:
                        raise ChainDBError(f"no canonical block #{number} to prune up to")
                    entry = journal(child)
                    if entry is not None:
                        for x in entry[1]:
                            deltas[x] = deltas.get(x, 0) - 1
                    ops.append((JOURNAL + child, None))
                    base = child
                ops.append((STATE_BASE, base))
        if isinstance(self.blocks_pruning, int):
            raw = self.kv.get(BODY_BASE)
            first = max(1, int.from_bytes(raw, "big") if raw is not None else 1)
            target = final_header.number - self.blocks_pruning + 1
            for number in range(first, target):
                old_body = chain.get(number) or self.hash_at(number)
                if old_body is not None:
                    ops.append((BODY + old_body, None))
            if target > first:
                ops.append((BODY_BASE, target.to_bytes(4, "big")))
        return ops

    def _count(
        self, deltas: dict[bytes, int], nodes: Mapping[bytes, bytes]
    ) -> list[tuple[bytes, bytes | None]]:
        """Writes that apply reference count changes: new nodes come from `nodes`; a node
        whose count reaches zero is deleted."""
        ops: list[tuple[bytes, bytes | None]] = []
        kv = self.kv
        for x, d in deltas.items():
            if d == 0:
                continue
            raw = kv.get(NODE + x)
            count = 0 if raw is None else int.from_bytes(raw[-COUNT_BYTES:], "little")
            new = count + d
            if new <= 0:
                if new < 0:
                    log.warning("Trie node %s counted below zero (%d)", x.hex(), new)
                if raw is not None:
                    ops.append((NODE + x, None))
                continue
            enc = raw[:-COUNT_BYTES] if raw is not None else nodes.get(x)
            if enc is None:
                raise ChainDBError(f"trie node {x.hex()} is neither stored nor new")
            ops.append((NODE + x, enc + new.to_bytes(COUNT_BYTES, "little")))
        return ops

    def store_justification(self, block_hash: bytes, justification: bytes) -> None:
        self._write_batch([(JUSTIFICATION + block_hash, justification)], sync=True)
