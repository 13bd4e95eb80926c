"""Determinism: the same exported chain imported by processes with different PYTHONHASHSEED
values gives bit-identical stores (best hash, every canonical hash and state root), equal to the
chain as authored; the test-chain generator itself is reproducible across hash seeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.primitives import Block
from genesis.builder import load_spec
from node.blockio import STREAM_HEADER, encode_entry
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.service import Node, NodeConfig
from tests.chaingen import build_chain, cuckoo_node

N_BLOCKS = 12
TXS_PER_BLOCK = 3
N_ACCOUNTS = 6
SEED = 1234
HASH_SEEDS = ("1", "2")
CHECK_RE = re.compile(r"^ok #(\d+) 0x([0-9a-f]{64}) state_root=0x([0-9a-f]{64}) keys=(\d+)$")
DB = Path("chains") / "cuckoo_dev" / "db"


@dataclass(frozen=True)
class Chain:
    base: Path
    blocks: list[Block]
    export: Path


def _env(hash_seed: str) -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": hash_seed}


def _run(*args: str | Path, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cuckoo_node(*args),
        env=_env(hash_seed),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _canonical(base: Path) -> list[tuple[bytes, bytes]]:
    """(hash, state root) of every canonical block #0..#best of a closed store."""
    with LevelDBKV(base / DB, create=False) as kv:
        db = ChainDB(kv)
        best = db.header(db.best_hash())
        assert best is not None
        out = []
        for n in range(best.number + 1):
            h = db.hash_at(n)
            assert h is not None
            header = db.header(h)
            assert header is not None
            out.append((h, header.state_root))
        return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("determinism")
    base = root / "source"
    blocks = build_chain(base, N_BLOCKS, TXS_PER_BLOCK, N_ACCOUNTS, SEED)
    export = root / "chain.blocks"
    res = _run(
        "export-blocks", "--base-path", base, "--chain", "dev", "--progress-every", "5", export
    )
    assert res.returncode == 0, res.stderr
    assert "Exported #10" in res.stderr
    return Chain(base, blocks, export)


def test_export_is_the_length_prefixed_scale_blocks(chain: Chain) -> None:
    with LevelDBKV(chain.base / DB, create=False) as kv:
        db = ChainDB(kv)
        justifications = [db.justification(b.hash()) for b in chain.blocks]
    assert None not in justifications  # the dev chain finalizes every block
    assert chain.export.read_bytes() == STREAM_HEADER + b"".join(
        encode_entry(b, j) for b, j in zip(chain.blocks, justifications, strict=True)
    )
    assert [b.header.number for b in chain.blocks] == list(range(1, N_BLOCKS + 1))
    assert sum(len(b.extrinsics) for b in chain.blocks) == N_BLOCKS + N_ACCOUNTS + TXS_PER_BLOCK * (
        N_BLOCKS - 1
    )


def test_import_is_identical_across_hash_seeds(chain: Chain, tmp_path: Path) -> None:
    procs = {}
    for seed in HASH_SEEDS:
        argv = cuckoo_node(
            "import-blocks", "--base-path", tmp_path / seed, "--chain", "dev", chain.export
        )
        procs[seed] = subprocess.Popen(
            argv, env=_env(seed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for seed, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed}: {err}"
        assert f"Imported {N_BLOCKS} blocks" in out
        assert f"best #{N_BLOCKS} 0x{chain.blocks[-1].hash().hex()}" in out

    checks = []
    for seed in (*HASH_SEEDS, "3"):
        base = chain.base if seed == "3" else tmp_path / seed  # the authored store, too
        res = _run("check-db", "--base-path", base, "--chain", "dev", hash_seed=seed)
        assert res.returncode == 0, res.stderr
        m = CHECK_RE.match(res.stdout.strip())
        assert m is not None, res.stdout
        checks.append(m.groups())
    head = chain.blocks[-1].header
    expected = (str(N_BLOCKS), chain.blocks[-1].hash().hex(), head.state_root.hex())
    assert [c[:3] for c in checks] == [expected] * 3
    assert len({c[3] for c in checks}) == 1  # the same number of keys in every state

    original = _canonical(chain.base)
    assert [_canonical(tmp_path / seed) for seed in HASH_SEEDS] == [original, original]
    assert original[1:] == [(b.hash(), b.header.state_root) for b in chain.blocks]


def test_chain_generator_is_reproducible_across_hash_seeds(chain: Chain, tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from tests.chaingen import build_chain; "
        f"bs = build_chain(Path(sys.argv[1]), {N_BLOCKS}, {TXS_PER_BLOCK}, {N_ACCOUNTS}, {SEED}); "
        "print(bs[-1].hash().hex())"
    )
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    env = {**_env("2"), "PYTHONPATH": path}
    res = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "again")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == chain.blocks[-1].hash().hex()


def test_import_stops_at_a_tampered_block(chain: Chain, tmp_path: Path) -> None:
    blocks = list(chain.blocks)
    bad = blocks[4]  # #5: timestamp, then transfers
    xt = bytearray(bad.extrinsics[-1])
    xt[-1] ^= 0x01  # the transfer's amount: the signature no longer matches
    blocks[4] = Block(bad.header, (*bad.extrinsics[:-1], bytes(xt)))
    stream = tmp_path / "tampered.blocks"
    stream.write_bytes(STREAM_HEADER + b"".join(encode_entry(b) for b in blocks))
    res = _run("import-blocks", "--base-path", tmp_path / "db", "--chain", "dev", stream)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: import-blocks: block #5 "), last
    assert "bad signature" in last
    res = _run("check-db", "--base-path", tmp_path / "db", "--chain", "dev")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"ok #4 0x{blocks[3].hash().hex()} ")


def _import_two_forks(tmp_path: Path) -> tuple[list[Block], list[Block], Node]:
    """A node that imported a 3-block fork, then a competing 4-block fork (a reorg at #4)."""
    old_fork = build_chain(tmp_path / "a", 3, 1, 3, 1)
    new_fork = build_chain(tmp_path / "b", 4, 1, 3, 2, start_slot=2_000_000)
    node = Node(NodeConfig(spec=load_spec("dev"), base_path=tmp_path / "c", prometheus_port=None))
    for block in (*old_fork, *new_fork):
        node.importer.import_block(block)
    assert node.chain.best_hash == new_fork[-1].hash()
    return old_fork, new_fork, node


def test_canonical_chain_does_not_depend_on_import_history(tmp_path: Path) -> None:
    _old, new_fork, node = _import_two_forks(tmp_path)
    try:
        canonical = [node.db.hash_at(n) for n in range(1, 6)]
    finally:
        node.close()
    assert canonical == [*(b.hash() for b in new_fork), None]
