"""Crash safety with pruning on: `kill -9` of `cuckoo-node import-blocks --state-pruning 4
--blocks-pruning 8` at random points never leaves a half-written block nor a half-pruned store.
The stream carries each block's finality justification, so the import finalizes every block and
each finality prunes (old states' trie nodes, journals, bodies) in the same atomic LevelDB write
batch as the finality record (node/chaindb.py). After any kill `check-db` must find a whole best
block whose recomputed state trie matches its header and every kept state whole, the state below
the window must be gone (`StateDiscarded`, its root node deleted) and the bodies below the bodies
window too, and re-running the import must continue to the original head, finalizing it."""

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
from node.blockio import export_blocks, read_blocks
from node.chaindb import NODE, ChainDB
from node.db import LevelDBKV
from node.errors import StateDiscarded
from node.service import Node, NodeConfig
from tests.chaingen import build_chain, cuckoo_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_BLOCKS = 60
TXS_PER_BLOCK = 4
N_ACCOUNTS = 12
KILLS = 22
SEED = 20240917
STATE_WINDOW = 4  # --state-pruning
BODIES_WINDOW = 8  # --blocks-pruning
PRUNING = ("--state-pruning", str(STATE_WINDOW), "--blocks-pruning", str(BODIES_WINDOW))
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
        "import-blocks",
        "--base-path",
        base,
        "--chain",
        "dev",
        *PRUNING,
        "--progress-every",
        "1",
        stream,
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = Run(proc, time.monotonic())
    reader = threading.Thread(target=run.read, daemon=True)
    reader.start()
    return run, reader


def _check_db(base: Path) -> tuple[int, bytes, bytes, str]:
    """(best number, best hash, state root, the report on stderr) of `check-db`."""
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
    return int(m[1]), bytes.fromhex(m[2]), bytes.fromhex(m[3]), res.stderr


def _assert_pruned(base: Path, best_number: int) -> int:
    """The store is final up to the best block or its parent (a kill between a block's write
    and its finality); it keeps exactly the states from the state base (STATE_WINDOW - 1 blocks
    below the finalized one) up to the best block, and the bodies of the last BODIES_WINDOW
    finalized blocks; every older state is gone, its root node deleted. Returns the finalized
    number."""
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        assert db.state_pruning == STATE_WINDOW
        final = db.header(db.finalized_hash())
        assert final is not None
        assert best_number - 1 <= final.number <= best_number, "finality fell behind"
        base_number = max(0, final.number - STATE_WINDOW + 1)
        assert db.state_base() == db.hash_at(base_number)
        for n in range(best_number + 1):
            h = db.hash_at(n)
            assert h is not None
            if n >= base_number:
                assert db.has_state(h), f"the state of #{n} in the window is missing"
                continue
            assert not db.has_state(h), f"the state of #{n} below the window is kept"
            with pytest.raises(StateDiscarded):
                db.state_at(h)
            header = db.header(h)
            assert header is not None
            assert kv.get(NODE + header.state_root) is None, f"the root node of #{n} is kept"
        first_body = max(1, final.number - BODIES_WINDOW + 1)
        for n in range(1, best_number + 1):
            h = db.hash_at(n)
            assert h is not None
            assert (db.body(h) is not None) == (n >= first_body), f"body #{n}"
        return final.number


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


def _calibrate(stream: Path, base: Path) -> float:
    """Seconds per block of an in-process import, finality and pruning included (a first guess
    of the subprocess's pace)."""
    node = Node(
        NodeConfig(
            spec=load_spec("dev"),
            base_path=base,
            prometheus_port=None,
            state_pruning=STATE_WINDOW,
            blocks_pruning=BODIES_WINDOW,
        )
    )
    try:
        with stream.open("rb") as f:
            entries = [entry for _offset, entry in read_blocks(f)]
        blocks = [entry.block for entry in entries]
        t0 = time.perf_counter()
        for entry in entries:
            node.importer.import_block(entry.block, entry.finality_justification())
        assert node.chain.best_hash == node.chain.finalized_hash == blocks[-1].hash()
        return (time.perf_counter() - t0) / len(blocks)
    finally:
        node.close()


def test_kill_9_during_a_pruning_import_leaves_a_consistent_store(tmp_path: Path) -> None:
    t_begin = time.monotonic()
    blocks = build_chain(tmp_path / "source", N_BLOCKS, TXS_PER_BLOCK, N_ACCOUNTS, SEED)
    head = blocks[-1].hash()
    stream = tmp_path / "chain.blocks"  # with every block's justification
    export_blocks(load_spec("dev"), tmp_path / "source", str(stream), 1, None, progress_every=0)
    per_block = _calibrate(stream, tmp_path / "calibration")
    startup = 1.0  # seconds from spawn to the start line; measured below
    rng = random.Random(SEED)
    base = tmp_path / "target"
    best_number = 0
    mid_import = mid_pruning = before_finality = in_startup = after_end = advanced = 0
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
        if run.start_at is not None:
            startup = 0.8 * startup + 0.2 * (run.start_at - run.started_at)
        if len(run.progress_at) >= 2:
            pace = (run.progress_at[-1] - run.progress_at[0]) / (len(run.progress_at) - 1)
            per_block = 0.5 * per_block + 0.5 * pace

        number, best, state_root, report = _check_db(base)
        assert number >= best_number, "the best block went backwards"
        _assert_whole(base, number, best, blocks)
        if number > 0:
            assert state_root == blocks[number - 1].header.state_root
        final = _assert_pruned(base, number)
        if final >= STATE_WINDOW:
            assert f"states kept from #{final - STATE_WINDOW + 1} (older pruned" in report, report
        if not alive:
            after_end += 1
            assert run.proc.returncode == 0, "\n".join(run.lines)
        elif run.start_at is None:
            in_startup += 1
        elif best_number < N_BLOCKS:
            mid_import += 1
            mid_pruning += final >= STATE_WINDOW  # each finality there moved the state base
        before_finality += final < number  # between a block's write and its finality
        advanced += number > best_number
        best_number = number

    argv = cuckoo_node("import-blocks", "--base-path", base, "--chain", "dev", *PRUNING, stream)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert f"best #{N_BLOCKS} 0x{head.hex()}, finalized #{N_BLOCKS}" in res.stdout
    number, best, _root, _report = _check_db(base)
    assert (number, best) == (N_BLOCKS, head)
    _assert_whole(base, number, best, blocks)
    assert _assert_pruned(base, number) == N_BLOCKS
    print(
        f"\n{KILLS} kills: {mid_import} mid-import ({mid_pruning} with pruning under way, "
        f"{before_finality} between a block and its finality), {in_startup} during start-up, "
        f"{after_end} after the end; {advanced} advanced the chain (best #{best_number} before "
        f"the final import); {time.monotonic() - t_begin:.1f} s"
    )
    assert mid_import >= KILLS // 4, "too few kills landed mid-import to test anything"
    assert mid_pruning >= KILLS // 5, "too few kills landed while pruning"
