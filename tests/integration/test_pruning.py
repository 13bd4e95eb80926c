"""A real dev node with `--state-pruning 8 --blocks-pruning 16`: state older than the window
answers JSON-RPC 4003 "State already discarded", recent state reads fine, headers stay, the
trie nodes on disk stop growing with history, `check-db` passes, and `kill -9` at random
moments (mid-pruning among them) leaves a store that `check-db` accepts and the node resumes."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from node.chaindb import JOURNAL, NODE
from node.db import LevelDBKV
from tests.integration.conftest import RpcCallError, node_executable

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

DB = Path("chains") / "cuckoo_dev" / "db"
WINDOW = 8
BLOCK_MS = 250
SYSTEM_NUMBER = "0x26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"


def _finalized(node: Any) -> int:
    return int(node.rpc("chain_getHeader", [node.rpc("chain_getFinalizedHead")])["number"], 16)


def _wait_finalized(node: Any, number: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while (n := _finalized(node)) < number:
        assert time.monotonic() < deadline, f"finality stuck at #{n}\n{node.log_tail()}"
        time.sleep(0.1)
    return n


def _keys(base: Path) -> tuple[int, int]:
    """(trie nodes, state journals) in the stopped node's store."""
    with LevelDBKV(base / DB, create=False) as kv:
        return sum(1 for _ in kv.iterate(prefix=NODE)), sum(1 for _ in kv.iterate(prefix=JOURNAL))


def _check_db(base: Path) -> str:
    res = subprocess.run(
        [*node_executable(), "check-db", "--base-path", str(base), "--chain", "dev"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok #"), res.stdout
    assert "older pruned" in res.stderr, res.stderr
    return res.stdout


def test_a_pruned_node_forgets_old_state_and_survives_kill_9(
    node_factory: Any, tmp_path: Path
) -> None:
    base = tmp_path / "pruned"
    extra = ["--state-pruning", str(WINDOW), "--blocks-pruning", "16"]
    node = node_factory(
        base_path=base, name="pruned", prometheus=False, block_time_ms=BLOCK_MS, extra=extra
    )
    node.wait_for_block(2)
    old = node.rpc("chain_getBlockHash", [1])
    assert node.rpc("state_getStorage", [SYSTEM_NUMBER, old]) is not None
    fin = _wait_finalized(node, 2 * WINDOW + 6)

    with pytest.raises(RpcCallError) as refused:
        node.rpc("state_getStorage", [SYSTEM_NUMBER, old])
    assert refused.value.code == 4003
    assert refused.value.message == f"State already discarded for {old}"
    with pytest.raises(RpcCallError) as refused_call:
        node.rpc("state_call", ["Core_version", "0x", old])
    assert refused_call.value.code == 4003
    assert node.rpc("chain_getHeader", [old])["number"] == "0x1"  # headers stay
    recent = node.rpc("chain_getBlockHash", [fin - WINDOW + 1])
    number = node.rpc("state_getStorage", [SYSTEM_NUMBER, recent])
    assert int.from_bytes(bytes.fromhex(number[2:]), "little") == fin - WINDOW + 1
    assert node.rpc("state_getStorage", [SYSTEM_NUMBER]) is not None

    assert node.stop() == 0
    _check_db(base)
    nodes_before, journals_before = _keys(base)
    assert journals_before < 4 * WINDOW  # the window and the unfinalized blocks only

    # more history: the trie nodes do not grow with it; kill -9 at random moments meanwhile
    rng = random.Random(5)
    first = fin
    for _ in range(2):
        node = node_factory(
            base_path=base, name="again", prometheus=False, block_time_ms=BLOCK_MS, extra=extra
        )
        node.wait_for_block(node.best_number() + 2)
        time.sleep(rng.uniform(0, 0.5))
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)
        _check_db(base)
    node = node_factory(
        base_path=base, name="last", prometheus=False, block_time_ms=BLOCK_MS, extra=extra
    )
    fin = _wait_finalized(node, first + 2 * WINDOW)
    assert node.stop() == 0
    _check_db(base)
    nodes_after, journals_after = _keys(base)
    print(f"\ntrie nodes {nodes_before} -> {nodes_after} over finalized #{first} -> #{fin}")
    assert journals_after < 4 * WINDOW
    # an archive adds tens of nodes per block; the window's content stays about the same
    assert nodes_after < nodes_before + 4 * (fin - first)
