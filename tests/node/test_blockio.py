"""The export stream with justifications (node/blockio.py): `export-blocks` writes each block's
stored finality justification with it, `import-blocks` checks it as the node checks one from a
peer and finalizes the block (and so prunes); a bad one refuses its block; a version-1 stream
(no header, no justifications) still imports."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.consensus import FINALITY_ENGINE_ID, Justification
from chain.primitives import Block
from genesis.builder import load_spec
from node.blockio import (
    STREAM_HEADER,
    BlockIOError,
    SignedBlock,
    check_db,
    encode_entry,
    encode_v1_entry,
    export_blocks,
    import_blocks,
    read_blocks,
)
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.errors import StateDiscarded
from tests.chaingen import build_chain

N_BLOCKS = 6
DB = Path("chains") / "cuckoo_dev" / "db"
SPEC = load_spec("dev")


@dataclass(frozen=True)
class Source:
    blocks: list[Block]
    justifications: list[bytes]
    stream: bytes  # as `export-blocks` wrote it


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("blockio")
    blocks = build_chain(root / "chain", N_BLOCKS, 1, 2, 5)
    out = root / "chain.blocks"
    export_blocks(SPEC, root / "chain", str(out), 1, None, progress_every=0)
    with LevelDBKV(root / "chain" / DB, create=False) as kv:
        db = ChainDB(kv)
        justifications = [db.justification(b.hash()) for b in blocks]
    assert all(j is not None for j in justifications), "build_chain finalizes every block"
    return Source(blocks, [j for j in justifications if j is not None], out.read_bytes())


def _import(base: Path, stream: bytes, **pruning: int | str) -> None:
    path = base.with_suffix(".blocks")
    path.write_bytes(stream)
    import_blocks(SPEC, base, str(path), progress_every=0, **pruning)  # type: ignore[arg-type]


def _stream(blocks: list[Block], justifications: list[bytes | None]) -> bytes:
    return STREAM_HEADER + b"".join(
        encode_entry(b, j) for b, j in zip(blocks, justifications, strict=True)
    )


def _final_and_best(base: Path) -> tuple[int, int]:
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        final, best = db.header(db.finalized_hash()), db.header(db.best_hash())
        assert final is not None
        assert best is not None
        return final.number, best.number


def test_export_writes_each_block_with_its_justification(source: Source) -> None:
    assert source.stream.startswith(b"cuckoo-blocks/2\n")
    entries = [entry for _offset, entry in read_blocks(io.BytesIO(source.stream))]
    assert [e.block for e in entries] == source.blocks
    assert [e.justifications for e in entries] == [
        ((FINALITY_ENGINE_ID, j),) for j in source.justifications
    ]
    assert [e.finality_justification() for e in entries] == source.justifications
    assert source.stream == _stream(source.blocks, list(source.justifications))
    for entry in entries:  # SCALE SignedBlock: Block ++ Option<Vec<(engine id, bytes)>>
        assert SignedBlock.decode(entry.encode()) == entry
        assert entry.encode().startswith(entry.block.encode() + b"\x01\x04" + FINALITY_ENGINE_ID)
    assert SignedBlock(source.blocks[0]).encode() == source.blocks[0].encode() + b"\x00"


def test_import_finalizes_through_the_justifications_and_prunes(
    source: Source, tmp_path: Path
) -> None:
    base = tmp_path / "pruned"
    _import(base, source.stream, state_pruning=2, blocks_pruning=3)
    assert _final_and_best(base) == (N_BLOCKS, N_BLOCKS)
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        assert [db.justification(b.hash()) for b in source.blocks] == source.justifications
        kept = [db.has_state(b.hash()) for b in source.blocks]
        assert kept == [False] * (N_BLOCKS - 2) + [True, True]
        with pytest.raises(StateDiscarded):
            db.state_at(source.blocks[0].hash())
        bodies = [db.body(b.hash()) is not None for b in source.blocks]
        assert bodies == [False] * (N_BLOCKS - 3) + [True] * 3
    assert check_db(SPEC, base).startswith(f"ok #{N_BLOCKS} 0x{source.blocks[-1].hash().hex()} ")


def _tampered(raw: bytes) -> bytes:
    just = Justification.decode(raw)
    pc = just.precommits[0]
    sig = bytes([pc.signature[0] ^ 1]) + pc.signature[1:]
    return dataclasses.replace(just, precommits=(dataclasses.replace(pc, signature=sig),)).encode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda s: _tampered(s.justifications[2]), "bad precommit signature"),
        (lambda s: s.justifications[3], "justification is for another block"),
        (lambda s: b"\x01\x02", "undecodable justification"),
    ],
    ids=["bad-signature", "other-block", "garbage"],
)
def test_a_bad_justification_refuses_its_block(
    source: Source, tmp_path: Path, bad: Callable[[Source], bytes], reason: str
) -> None:
    justifications: list[bytes | None] = list(source.justifications)
    justifications[2] = bad(source)
    base = tmp_path / "db"
    with pytest.raises(BlockIOError) as err:
        _import(base, _stream(source.blocks, justifications))
    message = str(err.value)
    assert message.startswith(f"block #3 (0x{source.blocks[2].hash().hex()}) is invalid: ")
    assert f"invalid justification: {reason}" in message
    assert _final_and_best(base) == (2, 2)  # nothing of #3 was written


def test_a_stored_block_with_a_bad_justification_is_refused(source: Source, tmp_path: Path) -> None:
    """A block already imported (an import stopped before its finality) gets its
    justification on the next run, checked the same way."""
    base = tmp_path / "db"
    _import(base, b"".join(encode_v1_entry(b) for b in source.blocks[:3]))
    justifications: list[bytes | None] = list(source.justifications)
    justifications[2] = _tampered(source.justifications[2])
    with pytest.raises(BlockIOError) as err:
        _import(base, _stream(source.blocks, justifications))
    assert str(err.value) == (
        f"block #3 (0x{source.blocks[2].hash().hex()}) has an invalid justification: "
        "bad precommit signature"
    )
    assert _final_and_best(base) == (2, 3)


def test_an_old_stream_without_justifications_still_imports(source: Source, tmp_path: Path) -> None:
    base = tmp_path / "db"
    _import(base, b"".join(encode_v1_entry(b) for b in source.blocks), state_pruning=2)
    assert _final_and_best(base) == (0, N_BLOCKS)  # nothing final: nothing pruned
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        assert all(db.has_state(b.hash()) for b in source.blocks)
    # the same blocks again, now with their justifications: present, and now finalized
    _import(base, source.stream)
    assert _final_and_best(base) == (N_BLOCKS, N_BLOCKS)
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        assert [db.has_state(b.hash()) for b in source.blocks] == [False] * (N_BLOCKS - 2) + [
            True,
            True,
        ]


def test_an_unknown_version_or_engine_is_refused(source: Source, tmp_path: Path) -> None:
    with pytest.raises(BlockIOError, match=r"stream version '3' is not supported"):
        _import(tmp_path / "a", b"cuckoo-blocks/3\n" + source.stream[len(STREAM_HEADER) :])
    other = SignedBlock(source.blocks[0], ((b"BEEF", source.justifications[0]),)).encode()
    entry = len(other).to_bytes(4, "little") + other
    with pytest.raises(BlockIOError, match=r"justification of unknown engine b'BEEF'"):
        _import(tmp_path / "b", STREAM_HEADER + entry)
    with pytest.raises(BlockIOError, match=r"entry 0 at byte 16 is not a block"):
        _import(tmp_path / "c", STREAM_HEADER + encode_v1_entry(source.blocks[0]))
