"""Block export/import and a database check: Substrate's `export-blocks` / `import-blocks`,
plus `check-db`.

    cuckoo-node export-blocks --base-path D --chain C [--from N] [--to M] OUTPUT|-
    cuckoo-node import-blocks --base-path D --chain C [--block-time-ms X] INPUT|-
    cuckoo-node check-db --base-path D --chain C

Stream format (binary), version 2: the 16-byte header `cuckoo-blocks/2\n`, then for each block
u32 LE length ++ SCALE `SignedBlock` as in Substrate: the `Block` (header, then Vec<extrinsic>)
followed by `Option<Justifications>`, a Vec of (4-byte engine id, Vec<u8> justification). Export
writes the finality justification (engine `FRNK`) the store holds for a block, if any. Version 1
(before justifications travelled) has no header and its entries are u32 LE length ++ SCALE
`Block`; it is still read (a version-1 stream starts with the length of its first block, at most
64 MiB, so its 4th byte is at most 0x04, never `k`).

Import runs every block through the node's block import (Aura seal, re-execution, state and
extrinsics roots) and its justification through the node's finality check (the validator set
in the parent's state, as for a justification from a peer): a bad one refuses the block, a good
one finalizes it, and finality prunes (`--state-pruning`, `--blocks-pruning`) as in a running
node. Blocks already in the store are skipped (their justification still applied if the store
is not final that far), so an interrupted import (even `kill -9`: each block, and each
finality, is one atomic write batch) is continued by running it again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chain import ChainError
from chain.codec import CodecError, Decoder, encode_bytes, encode_compact
from chain.consensus import FINALITY_ENGINE_ID, ConsensusError
from chain.primitives import Block
from chain.storage.trie import ordered_root, verify
from genesis.builder import ChainSpec, ChainSpecError, build_genesis, load_spec
from node.chaindb import ARCHIVE_CANONICAL, ChainDB, blocks_pruning_arg, state_pruning_arg
from node.db import LevelDBKV
from node.errors import NodeError
from node.interfaces import BlockImport
from node.paths import db_dir, default_base_path

COMMANDS = ("export-blocks", "import-blocks", "check-db")
MAX_BLOCK_BYTES = 64 << 20  # larger than any valid block (max_block_length is 5 MiB)
LENGTH_BYTES = 4
STREAM_MAGIC = b"cuckoo-blocks/"
STREAM_VERSION = 2
STREAM_HEADER = STREAM_MAGIC + b"%d\n" % STREAM_VERSION  # 16 bytes; version 1 had none
ENGINE_ID_BYTES = 4


class BlockIOError(NodeError):
    """A one-line, operator-facing failure of export, import or check."""


# ---- command line -----------------------------------------------------------------------------


def add_blockio_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `export-blocks`, `import-blocks` and `check-db` on the `cuckoo-node` parser."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--base-path",
            "-d",
            type=Path,
            default=None,
            help="where the database lives (default: ~/.local/share/cuckoo-node)",
        )
        p.add_argument(
            "--chain", default=None, help="dev, local, or a chain spec JSON (default: dev)"
        )
        p.add_argument("--dev", action="store_true", help="same as --chain dev")

    def progress(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--progress-every",
            type=int,
            default=1000,
            metavar="N",
            help="print a progress line on stderr every N blocks (0: never)",
        )

    ex = subparsers.add_parser(
        "export-blocks",
        help="write canonical blocks, with their justifications, as a binary stream",
    )
    common(ex)
    ex.add_argument(
        "--from",
        dest="from_block",
        type=int,
        default=1,
        metavar="N",
        help="first block number (default 1)",
    )
    ex.add_argument(
        "--to",
        dest="to_block",
        type=int,
        default=None,
        metavar="M",
        help="last block number (default: the best block)",
    )
    progress(ex)
    ex.add_argument("output", help="output file, or - for stdout")

    im = subparsers.add_parser(
        "import-blocks",
        help="import (and finalize, by their justifications) blocks from a binary stream",
    )
    common(im)
    im.add_argument(
        "--block-time-ms",
        type=int,
        default=None,
        help="override the chain spec's slot duration (as the node was run with)",
    )
    im.add_argument(
        "--state-pruning",
        type=state_pruning_arg,
        default=None,
        metavar="N|archive",
        help="as the node's flag (default: 256 for a new database, else as it was created)",
    )
    im.add_argument(
        "--blocks-pruning",
        type=blocks_pruning_arg,
        default=ARCHIVE_CANONICAL,
        metavar="N|archive-canonical|archive",
        help="as the node's flag (default archive-canonical)",
    )
    progress(im)
    im.add_argument("input", help="input file, or - for stdin")

    ck = subparsers.add_parser("check-db", help="check the best block and its whole state trie")
    common(ck)


def run_blockio(args: argparse.Namespace) -> int:
    """Run one of COMMANDS; returns the exit status (errors: one line on stderr, status 1)."""
    try:
        spec = load_spec("dev" if args.dev else (args.chain or "dev"))
        base: Path = args.base_path or default_base_path()
        if args.command == "export-blocks":
            return export_blocks(
                spec, base, args.output, args.from_block, args.to_block, args.progress_every
            )
        if args.command == "import-blocks":
            return import_blocks(
                spec,
                base,
                args.input,
                args.block_time_ms,
                args.progress_every,
                state_pruning=args.state_pruning,
                blocks_pruning=args.blocks_pruning,
            )
        if args.command == "check-db":
            print(check_db(spec, base))
            return 0
        raise BlockIOError(f"unknown command {args.command!r}")
    except (NodeError, ChainError, ChainSpecError, OSError) as exc:
        print(f"Error: {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_history(db: ChainDB, best_number: int) -> None:
    """The canonical chain below the best block links up, header by header; the bodies
    present are a contiguous run up to the best block (those below were pruned); in a pruned
    store, every state still kept (the base up to the best block, and the unfinalized forks)
    is whole. Missing history is reported on stderr, not as corruption."""
    child: bytes | None = None
    lowest_body = best_number + 1
    for number in range(best_number, -1, -1):
        block_hash = db.hash_at(number)
        if block_hash is None:
            raise BlockIOError(f"the canonical index has no entry #{number}")
        header = db.header(block_hash)
        if header is None or header.number != number:
            raise BlockIOError(f"the canonical block #{number} 0x{block_hash.hex()} has no header")
        if child is not None and child != block_hash:
            raise BlockIOError(f"the canonical block #{number + 1} is not a child of #{number}")
        child = header.parent_hash
        if number > 0 and db.body(block_hash) is not None:  # genesis's is never pruned
            if lowest_body > number + 1:
                raise BlockIOError(
                    f"block #{number + 1} has no body but #{number} has: a hole in the chain"
                )
            lowest_body = number
    pruned = db.state_pruning is not None
    base = db.state_base()
    kept = base_number = 0
    if pruned and base is not None:
        base_header = db.header(base)
        if base_header is None:
            raise BlockIOError("the pruned store's state base has no header")
        base_number = base_header.number
        seen: set[tuple[bytes, int, bool]] = set()
        blocks = [db.hash_at(n) for n in range(base_header.number, best_number + 1)]
        for _number, leaf in db.leaves():  # unfinalized forks
            h: bytes | None = leaf
            while h is not None and h not in blocks:
                fork = db.header(h)
                if fork is None or fork.number <= base_header.number:
                    break
                blocks.append(h)
                h = fork.parent_hash
        for block in blocks:
            if block is None:
                continue
            header = db.header(block)
            assert header is not None
            if not db.has_state(block):
                raise BlockIOError(f"the state of #{header.number} 0x{block.hex()} is missing")
            verify(db.nodes, header.state_root, seen)
            kept += 1
    bodies = "every body" if lowest_body <= 1 else f"bodies from #{lowest_body} (older pruned)"
    states = (
        f"{kept} states kept from #{base_number} (older pruned, --state-pruning {db.state_pruning})"
        if pruned
        else "archive (every state)"
    )
    _progress(f"check-db: chain #0..#{best_number} linked, {bodies}; state: {states}")


def _open_existing(spec: ChainSpec, base: Path) -> LevelDBKV:
    path = db_dir(base, spec.id)
    if not path.is_dir():
        raise BlockIOError(f"no database for chain {spec.id} at {path}")
    return LevelDBKV(path, create=False)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- export -----------------------------------------------------------------------------------


def export_blocks(
    spec: ChainSpec,
    base: Path,
    output: str,
    first: int,
    last: int | None,
    progress_every: int = 1000,
) -> int:
    with _open_existing(spec, base) as kv:
        db = ChainDB(kv)
        best = db.header(db.best_hash())
        if best is None:
            raise BlockIOError("the best block's header is missing")
        last = best.number if last is None else last
        if first < 0 or last < first:
            raise BlockIOError(f"empty range: --from {first} --to {last}")
        if last > best.number:
            raise BlockIOError(f"--to {last} is past the best block #{best.number}")
        started = time.monotonic()
        with _open_output(output) as out:
            out.write(STREAM_HEADER)
            for number in range(first, last + 1):
                block = _canonical_block(db, number)
                out.write(encode_entry(block, db.justification(block.hash())))
                done = number - first + 1
                if progress_every > 0 and done % progress_every == 0:
                    _progress(
                        f"Exported #{number} ({done} blocks, "
                        f"{done / max(time.monotonic() - started, 1e-9):.1f} blocks/s)"
                    )
        count = last - first + 1
        _progress(
            f"Exported {count} blocks (#{first}..#{last}) to {output} in "
            f"{time.monotonic() - started:.2f} s"
        )
    return 0


@dataclasses.dataclass(frozen=True, slots=True)
class SignedBlock:
    """A block with its justifications (Substrate's `SignedBlock`): (engine id, encoded
    justification) pairs; None when it has none."""

    block: Block
    justifications: tuple[tuple[bytes, bytes], ...] | None = None

    def encode(self) -> bytes:
        if self.justifications is None:
            return self.block.encode() + b"\x00"
        return b"".join(
            (
                self.block.encode(),
                b"\x01",
                encode_compact(len(self.justifications)),
                *(engine + encode_bytes(raw) for engine, raw in self.justifications),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedBlock:
        d = Decoder(data)
        block = Block.decode_from(d)
        flag = d.u8()
        if flag not in (0, 1):
            raise CodecError(f"bad justifications option byte {flag}")
        justifications = None
        if flag == 1:
            count = d.compact()
            if count > d.remaining():
                raise CodecError(f"{count} justifications claimed, {d.remaining()} bytes left")
            justifications = tuple((d.read(ENGINE_ID_BYTES), d.bytes()) for _ in range(count))
        d.finish()
        return cls(block, justifications)

    def finality_justification(self) -> bytes | None:
        """The finality gadget's justification, if the block has one; raises BlockIOError for
        one of another engine (it cannot be checked) or two of ours."""
        ours = None
        for engine, raw in self.justifications or ():
            if engine != FINALITY_ENGINE_ID:
                raise BlockIOError(
                    f"block #{self.block.header.number} has a justification of unknown engine "
                    f"{engine!r} (this chain's finality is {FINALITY_ENGINE_ID!r})"
                )
            if ours is not None:
                raise BlockIOError(f"block #{self.block.header.number} has two justifications")
            ours = raw
        return ours


def encode_entry(block: Block, justification: bytes | None = None) -> bytes:
    """One entry of a version-2 stream (after STREAM_HEADER): u32 LE length ++ SCALE
    SignedBlock, with the finality justification if given."""
    just = None if justification is None else ((FINALITY_ENGINE_ID, justification),)
    data = SignedBlock(block, just).encode()
    return len(data).to_bytes(LENGTH_BYTES, "little") + data


def encode_v1_entry(block: Block) -> bytes:
    """One entry of a version-1 stream (no header, no justifications): u32 LE length ++ SCALE
    Block. Still read by import; for tests of old streams."""
    data = block.encode()
    return len(data).to_bytes(LENGTH_BYTES, "little") + data


def _canonical_block(db: ChainDB, number: int) -> Block:
    block_hash = db.hash_at(number)
    if block_hash is None:
        raise BlockIOError(f"no canonical block #{number}")
    header = db.header(block_hash)
    body = db.body(block_hash)
    if header is None or body is None:
        raise BlockIOError(f"block #{number} (0x{block_hash.hex()}) is missing its header or body")
    return Block(header, tuple(body))


@contextlib.contextmanager
def _open_output(output: str) -> Iterator[BinaryIO]:
    if output == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(output)
    part = path.with_name(path.name + ".part")
    try:
        with part.open("wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


# ---- import -----------------------------------------------------------------------------------


def read_blocks(stream: BinaryIO) -> Iterator[tuple[int, SignedBlock]]:
    """(byte offset, signed block) for each entry of an export stream, version 2 or 1 (its
    blocks without justifications); raises BlockIOError on an unknown version or a truncated
    or undecodable entry."""
    prefix = stream.read(LENGTH_BYTES)
    version = 1
    offset = 0
    if prefix == STREAM_HEADER[:LENGTH_BYTES]:
        header = prefix + stream.read(len(STREAM_HEADER) - LENGTH_BYTES)
        if header != STREAM_HEADER:
            shown = header[len(STREAM_MAGIC) :].split(b"\n")[0].decode("ascii", "replace")
            if header.startswith(STREAM_MAGIC):
                raise BlockIOError(
                    f"stream version {shown!r} is not supported (this node reads 1 and "
                    f"{STREAM_VERSION})"
                )
            raise BlockIOError("not a block stream: bad header")
        version = STREAM_VERSION
        offset = len(STREAM_HEADER)
        prefix = stream.read(LENGTH_BYTES)
    index = 0
    while prefix:
        if len(prefix) < LENGTH_BYTES:
            raise BlockIOError(
                f"truncated stream: entry {index} at byte {offset} has a partial length"
            )
        length = int.from_bytes(prefix, "little")
        if length > MAX_BLOCK_BYTES:
            raise BlockIOError(
                f"entry {index} at byte {offset} claims {length} bytes: not a block stream"
            )
        data = stream.read(length)
        if len(data) < length:
            raise BlockIOError(
                f"truncated stream: entry {index} at byte {offset} has "
                f"{len(data)} of {length} bytes"
            )
        try:
            entry = SignedBlock(Block.decode(data)) if version == 1 else SignedBlock.decode(data)
        except (CodecError, ValueError) as exc:
            raise BlockIOError(
                f"entry {index} at byte {offset} is not a block: {_one_line(exc)}"
            ) from exc
        yield offset, entry
        offset += LENGTH_BYTES + length
        index += 1
        prefix = stream.read(LENGTH_BYTES)


def count_transactions(block: Block) -> int:
    """Signed extrinsics in a block (inherents excluded)."""
    n = 0
    for xt in block.extrinsics:
        d = Decoder(xt)
        d.compact()
        if d.read(1)[0] & 0x80:
            n += 1
    return n


def import_blocks(
    spec: ChainSpec,
    base: Path,
    source: str,
    block_time_ms: int | None = None,
    progress_every: int = 1000,
    *,
    state_pruning: int | str | None = None,
    blocks_pruning: int | str = ARCHIVE_CANONICAL,
) -> int:
    """Import the blocks of an export stream; a block's justification is checked and
    finalizes it (and so prunes, in a pruned store), as a justification from a peer does."""
    from node.service import Node, NodeConfig

    node = Node(
        NodeConfig(
            spec=spec,
            base_path=base,
            prometheus_port=None,
            block_time_ms=block_time_ms,
            state_pruning=state_pruning,
            blocks_pruning=blocks_pruning,
        )
    )
    try:
        best = node.chain.best_header()
        _progress(
            f"Importing blocks from {source} into {db_dir(base, spec.id)} (best #{best.number})"
        )
        started = time.monotonic()
        imported = skipped = txs = 0
        with _open_input(source) as stream:
            for _offset, entry in read_blocks(stream):
                block = entry.block
                justification = entry.finality_justification()
                block_hash = block.hash()
                if node.chain.header(block_hash) is not None:
                    skipped += 1
                    if (
                        justification is not None
                        and block.header.number > node.chain.finalized_header().number
                    ):  # stored, but not yet finalized (an import stopped between the two)
                        _apply_justification(node.importer, block, justification)
                    continue
                try:
                    node.importer.import_block(block, justification)
                except ChainError as exc:
                    raise BlockIOError(
                        f"block #{block.header.number} (0x{block_hash.hex()}) "
                        f"is invalid: {_one_line(exc)}"
                    ) from exc
                imported += 1
                txs += count_transactions(block)
                if progress_every > 0 and imported % progress_every == 0:
                    elapsed = max(time.monotonic() - started, 1e-9)
                    _progress(
                        f"Imported #{block.header.number} (0x{block_hash.hex()[:12]}..): "
                        f"{imported} blocks, {imported / elapsed:.1f} blocks/s"
                    )
        elapsed = time.monotonic() - started
        head = node.chain.best_header()
        per_s = 1 / max(elapsed, 1e-9)
        print(
            f"Imported {imported} blocks ({txs} transactions) in {elapsed:.2f} s: "
            f"{imported * per_s:.1f} blocks/s, {txs * per_s:.1f} tx/s; {skipped} already "
            f"present; best #{head.number} 0x{node.chain.best_hash.hex()}, "
            f"finalized #{node.chain.finalized_header().number}",
            flush=True,
        )
    finally:
        node.close()
    return 0


def _apply_justification(blocks: BlockImport, block: Block, justification: bytes) -> None:
    try:
        blocks.apply_justification(block.hash(), justification)
    except ConsensusError as exc:
        raise BlockIOError(
            f"block #{block.header.number} (0x{block.hash().hex()}) has an invalid "
            f"justification: {_one_line(exc)}"
        ) from exc


@contextlib.contextmanager
def _open_input(source: str) -> Iterator[BinaryIO]:
    if source == "-":
        yield sys.stdin.buffer
        return
    with Path(source).open("rb") as f:
        yield f


# ---- check ------------------------------------------------------------------------------------


def check_db(spec: ChainSpec, base: Path) -> str:
    """Check the store's best block is whole and its state trie is intact (every node re-hashed).

    Returns "ok #N 0x<hash> state_root=0x<root> keys=<count>"; raises BlockIOError.
    """
    with _open_existing(spec, base) as kv:
        db = ChainDB(kv)
        genesis = db.genesis_hash()
        if genesis is None:
            raise BlockIOError("no genesis block: the database holds no chain")
        expected = build_genesis(spec).hash
        if genesis != expected:
            raise BlockIOError(
                f"the database holds another chain (genesis 0x{genesis.hex()}, "
                f"{spec.id} has 0x{expected.hex()})"
            )
        if db.hash_at(0) != genesis:
            raise BlockIOError("the canonical index entry #0 is not the genesis block")
        best = db.best_hash()
        header = db.header(best)
        if header is None:
            raise BlockIOError(f"the best block 0x{best.hex()} has no header")
        if header.hash() != best:
            raise BlockIOError(
                f"the header stored for 0x{best.hex()} hashes to 0x{header.hash().hex()}"
            )
        body = db.body(best)
        if body is None:
            raise BlockIOError(f"the best block #{header.number} 0x{best.hex()} has no body")
        if ordered_root(body) != header.extrinsics_root:
            raise BlockIOError(f"the body of #{header.number} does not match its extrinsics root")
        canon = db.hash_at(header.number)
        if canon != best:
            shown = "nothing" if canon is None else f"0x{canon.hex()}"
            raise BlockIOError(
                f"the canonical index entry #{header.number} points to {shown}, "
                f"not the best block 0x{best.hex()}"
            )
        if header.number > 0 and db.header(header.parent_hash) is None:
            raise BlockIOError(f"the parent of the best block #{header.number} is missing")
        keys = verify(db.nodes, header.state_root)
        _check_history(db, header.number)
        return (
            f"ok #{header.number} 0x{best.hex()} state_root=0x{header.state_root.hex()} keys={keys}"
        )
