"""Crash safety: `kill -9` of `cuckoo-node import-blocks` at random points never leaves a
half-written block. Each block is one atomic LevelDB write batch (node/chaindb.py), so after any
kill `check-db` must find a whole best block whose recomputed state trie matches its header, and
re-running the import must continue to the original head."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chain.primitives import Block
from chain.storage.trie import ordered_root
from genesis.builder import load_spec
from node.blockio import encode_entry
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.service import Node, NodeConfig
from tests.chaingen import build_chain, cuckoo_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_BLOCKS = 60
TXS_PER_BLOCK = 4
N_ACCOUNTS = 12
KILLS = 22
SEED = 20240917
DB = Path("chains") / "cuckoo_dev" / "db"
CHECK_RE = re.compile(r"^ok #(\d+) 0x([0-9a-f]{64}) state_root=0x([0-9a-f]{64}) keys=\d+$")
START_LINE = "Importing blocks from"
PROGRESS_RE = re.compile(r"^Imported #(\d+) ")


@dataclass
class Run:
    """One `import-blocks` process, its stderr read by a thread (times of its lines)."""

    proc: subprocess.Popen[str]
    started_at: float
    start_seen: threading.Event = field(default_factory=threading.Event)
    start_at: float | None = None
    progress_at: list[float] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            now = time.monotonic()
            self.lines.append(line.rstrip("\n"))
            if line.startswith(START_LINE):
                self.start_at = now
                self.start_seen.set()
            elif PROGRESS_RE.match(line):
                self.progress_at.append(now)
        self.start_seen.set()  # EOF: stop waiting


def _start(base: Path, stream: Path) -> tuple[Run, threading.Thread]:
    argv = cuckoo_node(
        "import-blocks", "--base-path", base, "--chain", "dev", "--progress-every", "1", stream
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = Run(proc, time.monotonic())
    reader = threading.Thread(target=run.read, daemon=True)
    reader.start()
    return run, reader


def _check_db(base: Path) -> tuple[int, bytes, bytes]:
    res = subprocess.run(
        cuckoo_node("check-db", "--base-path", base, "--chain", "dev"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, f"check-db failed after a kill: {res.stderr.strip()}"
    m = CHECK_RE.match(res.stdout.strip())
    assert m is not None, res.stdout
    return int(m[1]), bytes.fromhex(m[2]), bytes.fromhex(m[3])


def _assert_whole(base: Path, number: int, best: bytes, blocks: list[Block]) -> None:
    """The best block of the store is whole and is the original chain's block `number`."""
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        assert db.best_hash() == best
        header = db.header(best)
        body = db.body(best)
        assert header is not None, "best block without a header"
        assert body is not None, "best block without a body"
        assert header.number == number
        assert db.hash_at(number) == best, "canonical index does not point to the best block"
        assert db.hash_at(number + 1) is None, "canonical index runs past the best block"
        assert ordered_root(body) == header.extrinsics_root
        if number > 0:
            original = blocks[number - 1]
            assert (header, tuple(body)) == (original.header, original.extrinsics)


def _calibrate(blocks: list[Block], base: Path) -> float:
    """Seconds per block of an in-process import (a first guess of the subprocess's pace)."""
    node = Node(NodeConfig(spec=load_spec("dev"), base_path=base, prometheus_port=None))
    try:
        t0 = time.perf_counter()
        for b in blocks:
            node.importer.import_block(b)
        assert node.chain.best_hash == blocks[-1].hash()
        return (time.perf_counter() - t0) / len(blocks)
    finally:
        node.close()


def test_kill_9_during_import_never_leaves_a_half_written_block(tmp_path: Path) -> None:
    t_begin = time.monotonic()
    blocks = build_chain(tmp_path / "source", N_BLOCKS, TXS_PER_BLOCK, N_ACCOUNTS, SEED)
    head = blocks[-1].hash()
    stream = tmp_path / "chain.blocks"
    stream.write_bytes(b"".join(encode_entry(b) for b in blocks))
    per_block = _calibrate(blocks, tmp_path / "calibration")
    startup = 1.0  # seconds from spawn to the start line; measured below
    rng = random.Random(SEED)
    base = tmp_path / "target"
    best_number = 0
    mid_import = in_startup = after_end = advanced = 0
    for i in range(KILLS):
        remaining_kills = KILLS - i
        run, reader = _start(base, stream)
        early = i > 0 and rng.random() < 0.2  # the first run must get its genesis in
        if early:
            time.sleep(rng.uniform(0, startup))
        else:
            assert run.start_seen.wait(60), "import-blocks did not start"
            remaining = (N_BLOCKS - best_number) * per_block
            time.sleep(rng.uniform(0, 1.5 * remaining / remaining_kills))
        alive = run.proc.poll() is None
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=30)
        reader.join(timeout=30)
        if not alive:
            after_end += 1
            assert run.proc.returncode == 0, "\n".join(run.lines)
        elif run.start_at is None:
            in_startup += 1
        elif best_number < N_BLOCKS:
            mid_import += 1
        if run.start_at is not None:
            startup = 0.8 * startup + 0.2 * (run.start_at - run.started_at)
        if len(run.progress_at) >= 2:
            pace = (run.progress_at[-1] - run.progress_at[0]) / (len(run.progress_at) - 1)
            per_block = 0.5 * per_block + 0.5 * pace

        number, best, state_root = _check_db(base)
        assert number >= best_number, "the best block went backwards"
        advanced += number > best_number
        best_number = number
        _assert_whole(base, number, best, blocks)
        if number > 0:
            assert state_root == blocks[number - 1].header.state_root

    argv = cuckoo_node("import-blocks", "--base-path", base, "--chain", "dev", stream)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert f"best #{N_BLOCKS} 0x{head.hex()}" in res.stdout
    number, best, _root = _check_db(base)
    assert (number, best) == (N_BLOCKS, head)
    _assert_whole(base, number, best, blocks)
    print(
        f"\n{KILLS} kills: {mid_import} mid-import, {in_startup} during start-up, {after_end} "
        f"after the end; {advanced} advanced the chain (best #{best_number} before the final "
        f"import); {time.monotonic() - t_begin:.1f} s"
    )
    assert mid_import >= KILLS // 4, "too few kills landed mid-import to test anything"
