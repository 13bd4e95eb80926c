from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chain.storage.kv import MemoryKV
from node.db import LevelDBKV
from node.errors import NodeError

pytestmark = pytest.mark.integration

HOLD_DB = "import sys, time, plyvel; db = plyvel.DB(sys.argv[1], create_if_missing=True); "
HOLD_DB += "print('open', flush=True); time.sleep(60)"

KEYS = [
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x00\xff",
    b"a",
    b"ab",
    b"abc",
    b"ac",
    b"b",
    b"\xff",
    b"\xff\xff",
]


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    with LevelDBKV(tmp_path / "db") as store:
        yield store


def test_put_get_delete_round_trip(db: LevelDBKV, tmp_path: Path) -> None:
    db.put(b"k", b"v")
    db.put(b"empty", b"")
    assert db.get(b"k") == b"v"
    assert db.get(b"empty") == b""
    db.delete(b"k")
    db.delete(b"never")
    assert db.get(b"k") is None
    db.close()
    with LevelDBKV(tmp_path / "db", create=False) as reopened:
        assert reopened.get(b"empty") == b""


def test_write_batch_is_atomic(db: LevelDBKV) -> None:
    db.put(b"gone", b"1")
    db.write_batch([(b"a", b"1"), (b"gone", None), (b"b", b"2")], sync=True)
    assert (db.get(b"a"), db.get(b"gone"), db.get(b"b")) == (b"1", None, b"2")

    def failing():  # type: ignore[no-untyped-def]
        yield b"c", b"3"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.write_batch(failing())
    assert db.get(b"c") is None


@pytest.mark.parametrize("prefix", [b"", b"\x00", b"a", b"ab", b"\xff", b"z"])
@pytest.mark.parametrize("start", [None, b"", b"\x00", b"a", b"ab", b"abz", b"\xff", b"0"])
def test_iterate_matches_memory_kv(db: LevelDBKV, prefix: bytes, start: bytes | None) -> None:
    mem = MemoryKV()
    batch = [(k, k[::-1] + b"!") for k in KEYS]
    db.write_batch(batch)
    mem.write_batch(batch)
    assert list(db.iterate(prefix, start)) == list(mem.iterate(prefix, start))
    assert [k for k, _ in db.iterate(prefix, start)] == sorted(
        k for k in KEYS if k.startswith(prefix) and (start is None or k > start)
    )


def test_open_twice_raises_node_error(db: LevelDBKV) -> None:
    with pytest.raises(NodeError, match="is in use by another process"):
        LevelDBKV(db.path)


def test_open_missing_without_create_raises_node_error(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="cannot open database"):
        LevelDBKV(tmp_path / "missing", create=False)


def test_open_locked_by_other_process_raises_node_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DB, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(NodeError, match=f"database at {path} is in use by another process"):
            LevelDBKV(path)
    finally:
        holder.kill()
        holder.wait()


def test_open_corrupt_raises_node_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LevelDBKV(path) as store:
        store.put(b"k", b"v")
    (path / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(NodeError, match="is corrupt"):
        LevelDBKV(path)
