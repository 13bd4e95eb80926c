"""Task state benchmark (a script, not a test): bytes of state and of disk per task under a
steady load, in real blocks stored by the node.

A dev node (`node.service.Node`: its LevelDB store, the Merkle trie, the authored-block import
path `BlockImporter.import_authored`) authors one block per slot, each with its Aura and
randomness digests and the steady load of tests/pallets/task_load.py as signed extrinsics: one
coordinator commits `--tasks-per-block` tasks to `--miners` honest miners, results are submitted
(every 10th task: none, Missed at its deadline), settled early (every 5th: at its deadline), 10%
drawn for a check that its round plays out (spec revealed, a checker's commit and both reveals).
Settled tasks leave state `--retention` blocks later (Tasks.RetentionBlocks, the dev chain's 100
by default).

At the end of each window of `--retention` blocks after the warm-up it records:
  * live entries of Tasks' storage, the state as key/value pairs (key + SCALE value) by pallet;
  * the trie nodes reachable from the state root (what a node keeping only the latest state
    would hold): their count and bytes as stored (`t` + hash key, encoding), those under the
    Tasks pallet's key prefix, those above any pallet (the trie's top, shared);
  * the LevelDB directory on disk (file sizes after a full compaction) and what it holds by kind
    (trie nodes of every state ever written, headers, bodies, justifications);
  * what the blocks wrote so far: trie nodes, headers, bodies, and the storage writes (key +
    value) by item.
It prints a table and the per-task figures, and writes them to bench/data/task_state.json:
state bytes per live task, disk bytes per task committed (the slope of disk use over the
measured windows), bytes written per task. The node runs as an archive
(`--state-pruning archive`; bench/growth_bench.py measures the default pruning): no trie node is
ever deleted, so its disk grows with every task even when
the state does not. To show what a node that pruned old states would hold, the script copies
the nodes reachable from the last 1 and the last 256 state roots into fresh LevelDBs.

    python bench/task_state_bench.py [--tasks-per-block 20] [--blocks 730] [--retention 100]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sr25519

from chain.crypto import ss58_encode
from chain.hashing import blake2_256
from chain.primitives import (
    DigestItem,
    encode_unsigned_extrinsic,
)
from chain.storage.trie import BRANCH, EXTENSION, LEAF, NodeStore, decode_node
from genesis.builder import ChainSpec, load_spec
from node import chaindb
from node.db import LevelDBKV
from node.interfaces import SealedBlock
from node.keystore import AURA_KEY_TYPE, dev_suri
from node.service import Node, NodeConfig
from pallets.aura import pallet as aura
from pallets.registry import pallet as registry
from tests.chaingen import sign_call
from tests.pallets.task_load import (
    CAI,
    LoadShape,
    Party,
    SteadyLoad,
    storage_names,
    take_census,
)

START_SLOT = 1_000_000
# A node that pruned old states would keep the latest (1) or the last 256 (what RPC clients and
# the finality gadget may ask for; docs/decisions.md "Archive state").
KEEP_STATES = (1, 256)
TASK_ITEMS = ("Tasks", "Checks", "Specs", "Prunable", "Deadlines", "PendingDraws")
KIND_OF_PREFIX = {
    chaindb.NODE: "trie nodes",
    chaindb.HEADER: "headers",
    chaindb.BODY: "bodies",
    chaindb.JUSTIFICATION: "justifications",
    chaindb.CANON: "canonical index",
}


# ---- the network -------------------------------------------------------------------------------


class Keys:
    """sr25519 key pairs of the load's accounts, by public key."""

    def __init__(self) -> None:
        self.pairs: dict[bytes, tuple[bytes, bytes]] = {}

    def party(self, kind: str, index: int) -> Party:
        return Party(self._new(f"{kind}/{index}"), self._new(f"{kind}-op/{index}"))

    def _new(self, label: str) -> bytes:
        public, secret = sr25519.pair_from_seed(blake2_256(b"cuckoo/state-bench/" + label.encode()))
        self.pairs[bytes(public)] = (bytes(public), bytes(secret))
        return bytes(public)


def chain_spec(retention: int, endowed: dict[bytes, int]) -> ChainSpec:
    raw = copy.deepcopy(load_spec("dev").raw)
    runtime = raw["genesis"]["runtimeGenesis"]
    runtime["parameters"]["tasks"]["retentionBlocks"] = retention
    balances = runtime["config"]["balances"]["balances"]
    balances.extend([ss58_encode(who), str(amount)] for who, amount in endowed.items())
    return ChainSpec(raw)


class Chain:
    """A dev node and the signed extrinsics of the load's parties, one block per slot."""

    def __init__(self, base: Path, spec: ChainSpec, keys: Keys) -> None:
        self.node = Node(
            NodeConfig(
                spec=spec,
                base_path=base,
                prometheus_port=None,
                dev_key=dev_suri("alice"),
                state_pruning="archive",  # this bench measures what an archive holds
            )
        )
        self.keys = keys
        self.nonces: dict[bytes, int] = {}
        node = self.node
        self.signer = node.keystore.signer(AURA_KEY_TYPE, min(node.author.keys), scheme="sr25519")
        self.names = storage_names(node.runtime)
        self.written: dict[str, int] = {}  # bytes written to LevelDB by kind, so far
        self.changed: dict[str, int] = {}  # key + value bytes of storage writes by item, so far

    @property
    def kv(self) -> LevelDBKV:
        return self.node.kv

    def state(self) -> Any:
        return self.node.chain.state_at(self.node.chain.best_hash)

    def signed(self, who: bytes, pallet: str, call: str, **args: Any) -> bytes:
        rt = self.node.runtime
        encoded = rt.call_type.encode(rt.call(pallet, call, **args))
        nonce = self.nonces.get(who, 0)
        self.nonces[who] = nonce + 1
        pair = self.keys.pairs[who]
        return sign_call(self.node, who, lambda p: bytes(sr25519.sign(pair, p)), nonce, encoded)

    def author(self, extrinsics: list[bytes]) -> None:
        """Build, seal and import the next block as the node's author does."""
        node = self.node
        parent_hash = node.chain.best_hash
        parent = node.chain.best_header()
        state = node.db.state_at_root(parent.state_root)
        slot = START_SLOT + parent.number + 1
        digest = [
            DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little")),
            node.author.onions.digest(state, self.signer),
        ]
        builder = node.executive.begin_block(state, parent_hash, parent.number + 1, digest)
        ts = node.runtime.call_type.encode(
            node.runtime.call("Timestamp", "set", now=slot * node.slot_ms)
        )
        builder.apply_inherent(encode_unsigned_extrinsic(ts))
        for raw in extrinsics:
            outcome = builder.apply(raw)
            if not outcome.success:
                raise SystemExit(f"block #{parent.number + 1}: extrinsic failed: {outcome.error}")
        built = builder.finalize()
        seal = DigestItem.seal(aura.ENGINE_ID, self.signer.sign(built.header.hash()))
        header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
        justification = node.gadget.instant_justification(header)
        node.importer.import_authored(
            SealedBlock(header, built, slot, self.signer.public, justification)
        )
        _add(self.written, "trie nodes", sum(33 + len(e) for e in built.nodes.values()))
        _add(self.written, "headers", 33 + len(header.encode()))
        _add(self.written, "bodies", 33 + sum(len(x) for x in built.extrinsics) + 4)
        for key, value in built.changes.items():
            _add(self.changed, self.names.get(key[:32], "other"), len(key) + len(value or b""))


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


# ---- measuring ---------------------------------------------------------------------------------


def _slots(key: bytes) -> bytes:
    """A key as the trie's nibble path (one byte per nibble, +3: `chain.storage.trie`)."""
    return bytes(n + 3 for b in key for n in (b >> 4, b & 15))


def trie_footprint(store: NodeStore, root: bytes, pallets: dict[bytes, str]) -> dict[str, Any]:
    """The trie nodes reachable from `root`: how many, their bytes as the node stores them
    (`t` + 32-byte hash, encoding), and those bytes by pallet (the 16-byte pallet prefix of
    the keys under a node; "(top)" for nodes above every pallet prefix)."""
    by_prefix = {_slots(p): name for p, name in pallets.items()}
    depth = len(next(iter(by_prefix)))
    bytes_by: dict[str, int] = {}
    nodes = 0
    stack: list[tuple[bytes, bytes]] = [(root, b"")]
    while stack:
        node_hash, path = stack.pop()
        encoding = store.get(node_hash)
        if encoding is None:
            raise SystemExit(f"missing trie node {node_hash.hex()}")
        node = decode_node(encoding)
        nodes += 1
        reach = path + node[1] if node[0] in (LEAF, EXTENSION) else path
        owner = by_prefix.get(reach[:depth], "other") if len(reach) >= depth else "(top)"
        bytes_by[owner] = bytes_by.get(owner, 0) + 1 + len(node_hash) + len(encoding)
        if node[0] == EXTENSION:
            stack.append((node[2], reach))
        elif node[0] == BRANCH:
            for i in range(16):
                child = node[3 + i]
                if child is not None:
                    stack.append((child, path + bytes([i + 3])))
    return {"nodes": nodes, "bytes": sum(bytes_by.values()), "by_pallet": bytes_by}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def stored_by_kind(kv: LevelDBKV) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in kv.iterate():
        kind = KIND_OF_PREFIX.get(key[:1], "other")
        out[kind] = out.get(kind, 0) + len(key) + len(value)
    return out


def kept_states(chain: Chain, keep: int, where: Path) -> dict[str, int]:
    """What a node keeping only the states of the last `keep` blocks would hold of them: the
    trie nodes reachable from their roots (count, bytes as stored), and the size of a fresh
    LevelDB holding just those, compacted."""
    db = chain.node.db
    best = chain.node.chain.best_header().number
    roots = []
    for number in range(max(best - keep + 1, 0), best + 1):
        header = db.header(db.hash_at(number) or b"")
        assert header is not None
        roots.append(header.state_root)
    batch: list[tuple[bytes, bytes | None]] = []
    seen: set[bytes] = set()
    for root in roots:
        stack = [root]
        while stack:
            node_hash = stack.pop()
            if node_hash in seen:
                continue  # content-addressed: its whole subtree is in already
            seen.add(node_hash)
            encoding = db.nodes.get(node_hash)
            assert encoding is not None
            batch.append((chaindb.NODE + node_hash, encoding))
            node = decode_node(encoding)
            if node[0] == EXTENSION:
                stack.append(node[2])
            elif node[0] == BRANCH:
                stack.extend(c for c in node[3:19] if c is not None)
    copy_kv = LevelDBKV(where)
    try:
        copy_kv.write_batch(batch, sync=True)
        copy_kv.compact()
    finally:
        copy_kv.close()
    stored = sum(len(k) + len(v or b"") for k, v in batch)
    return {"states": len(roots), "nodes": len(batch), "bytes": stored, "disk": dir_bytes(where)}


# ---- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    keys = Keys()
    coordinator = keys.party("coordinator", 0)
    miners = [keys.party("miner", i) for i in range(args.miners)]
    dev = load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"]
    min_coordinator = int(dev["registry"]["minCoordinatorStake"])
    min_miner = int(dev["registry"]["minMinerStake"])
    endowed = {coordinator.staker: 2 * min_coordinator, coordinator.operator: 10_000_000 * CAI}
    for m in miners:
        endowed |= {m.staker: 2 * min_miner, m.operator: 1_000 * CAI}
    chain = Chain(tmp / "node", chain_spec(args.retention, endowed), keys)
    node = chain.node
    names = storage_names(node.runtime)
    pallets = {key[:16]: name.split(".")[0] for key, name in names.items()}
    shape = LoadShape(tasks_per_block=args.tasks_per_block, deadline_blocks=args.deadline)
    price = node.runtime_config.tasks.min_task_price
    load = SteadyLoad(shape, coordinator, miners, price, b"bench")
    try:
        # block 1: the coordinator and the miners bond and register
        xts = []
        info = registry.Info(name=b"bench", url=b"https://coordinator.example")
        for who, stake, call in [
            (coordinator, min_coordinator, "register_coordinator"),
            *((m, min_miner, "register_miner") for m in miners),
        ]:
            xts.append(chain.signed(who.staker, "Staking", "bond", value=stake))
            xts.append(chain.signed(who.staker, "Registry", call, operator=who.operator, info=info))
        chain.author(xts)
        warmup = args.retention + args.deadline + 20
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for number in range(2, args.blocks + 1):
            moves = load.moves(chain.state(), number)
            chain.author([chain.signed(m.signer, "Tasks", m.call, **m.args) for m in moves])
            if number >= warmup and (number - warmup) % args.retention == 0:
                rows.append(measure(chain, names, pallets, load, number, started))
                print_row(rows[-1], header=len(rows) == 1)
        if not rows:
            raise SystemExit(f"--blocks must be at least the warm-up ({warmup})")
        kept = {keep: kept_states(chain, keep, tmp / f"keep{keep}") for keep in KEEP_STATES}
        written = dict(chain.written)
    finally:
        node.close()
    return summarize(args, rows, kept, written)


def measure(
    chain: Chain,
    names: dict[bytes, str],
    pallets: dict[bytes, str],
    load: SteadyLoad,
    number: int,
    started: float,
) -> dict[str, Any]:
    state = chain.state()
    census = take_census(names, state)
    trie = trie_footprint(chain.node.db.nodes, state.root, pallets)
    chain.kv.compact()
    return {
        "block": number,
        "committed": load.committed,
        "entries": {item: census.count(f"Tasks.{item}") for item in TASK_ITEMS},
        "kv_bytes": census.total_bytes,
        "kv_bytes_tasks": census.pallet_bytes("Tasks"),
        "kv_bytes_by_pallet": {
            p: census.pallet_bytes(p) for p in sorted({n.split(".")[0] for n in names.values()})
        },
        "trie_nodes": trie["nodes"],
        "trie_bytes": trie["bytes"],
        "trie_bytes_tasks": trie["by_pallet"].get("Tasks", 0),
        "trie_bytes_top": trie["by_pallet"].get("(top)", 0),
        "disk_bytes": dir_bytes(chain.kv.path),
        "disk_bytes_per_task_so_far": round(dir_bytes(chain.kv.path) / load.committed, 1),
        "stored_bytes": stored_by_kind(chain.kv),
        "written_bytes": dict(chain.written),
        "changed_bytes": dict(chain.changed),
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_row(row: dict[str, Any], header: bool) -> None:
    if header:
        print(
            f"{'block':>6} {'tasks ever':>10} {'Tasks':>6} {'Checks':>6} {'Specs':>6} "
            f"{'Prunable':>8} {'kv Tasks':>9} {'kv all':>9} {'trie':>9} {'trie Tasks':>10} "
            f"{'disk':>10} {'s':>6}"
        )
    e = row["entries"]
    print(
        f"{row['block']:>6} {row['committed']:>10} {e['Tasks']:>6} {e['Checks']:>6} "
        f"{e['Specs']:>6} {e['Prunable']:>8} {row['kv_bytes_tasks']:>9} {row['kv_bytes']:>9} "
        f"{row['trie_bytes']:>9} {row['trie_bytes_tasks']:>10} {row['disk_bytes']:>10} "
        f"{row['seconds']:>6}"
    )


def _slope(rows: list[dict[str, Any]], y: Callable[[dict[str, Any]], int]) -> float | None:
    """Least-squares d(y)/d(tasks committed) over the rows."""
    if len(rows) < 2:
        return None
    xs = [r["committed"] for r in rows]
    return statistics.linear_regression(xs, [y(r) for r in rows]).slope


def summarize(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    kept: dict[int, dict[str, int]],
    written: dict[str, int],
) -> dict[str, Any]:
    last = rows[-1]
    live = last["entries"]["Tasks"]
    first_tasks = rows[0]["entries"]["Tasks"]
    per_task = {
        "kv_bytes_tasks_per_live_task": round(last["kv_bytes_tasks"] / live, 1),
        "trie_bytes_tasks_per_live_task": round(last["trie_bytes_tasks"] / live, 1),
        "trie_bytes_all_per_live_task": round(last["trie_bytes"] / live, 1),
    }
    slopes = {
        "disk_bytes_per_task_committed": _slope(rows, lambda r: r["disk_bytes"]),
        "stored_trie_bytes_per_task_committed": _slope(
            rows, lambda r: r["stored_bytes"].get("trie nodes", 0)
        ),
        "stored_body_bytes_per_task_committed": _slope(
            rows, lambda r: r["stored_bytes"].get("bodies", 0)
        ),
        "kv_bytes_tasks_per_task_committed": _slope(rows, lambda r: r["kv_bytes_tasks"]),
        "trie_bytes_per_task_committed": _slope(rows, lambda r: r["trie_bytes"]),
    }
    first = rows[0]
    tasks = last["committed"] - first["committed"]
    churn: dict[str, Any] = {}
    if tasks:
        churn["written_bytes_per_task"] = {
            kind: round((n - first["written_bytes"].get(kind, 0)) / tasks, 1)
            for kind, n in last["written_bytes"].items()
        }
        changed = {
            item: (n - first["changed_bytes"].get(item, 0)) / tasks
            for item, n in last["changed_bytes"].items()
        }
        churn["storage_writes_bytes_per_task"] = {
            item: round(n, 1) for item, n in sorted(changed.items(), key=lambda kv: -kv[1]) if n
        }
    return {
        "about": "bench/task_state_bench.py: state and disk bytes per task under a steady "
        "load of tasks, in real blocks stored by the node (archive mode); see the docstring",
        "params": {
            "tasks_per_block": args.tasks_per_block,
            "blocks": args.blocks,
            "retention_blocks": args.retention,
            "deadline_blocks": args.deadline,
            "miners": args.miners,
            "check_rate": "10% (dev)",
        },
        "python": sys.version.split()[0],
        "windows": rows,
        "live_tasks_first_to_last_window": [first_tasks, live],
        "per_live_task": per_task,
        "per_task_committed": {k: None if v is None else round(v, 1) for k, v in slopes.items()},
        "per_task_committed_churn": churn,
        "written_bytes_whole_run": written,
        "archive_disk_bytes": last["disk_bytes"],
        "kept_states": {str(k): v for k, v in kept.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks-per-block", type=int, default=20)
    parser.add_argument(
        "--blocks",
        type=int,
        default=730,
        help="blocks authored (default 730: a warm-up of retention + deadline + 20, 6 windows)",
    )
    parser.add_argument("--retention", type=int, default=100, help="Tasks.RetentionBlocks")
    parser.add_argument("--deadline", type=int, default=10, help="blocks from commit to deadline")
    parser.add_argument("--miners", type=int, default=10)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "data" / "task_state.json",
        help="where to write the results (default bench/data/task_state.json)",
    )
    args = parser.parse_args()
    print(
        f"task_state_bench: {args.tasks_per_block} tasks/block to {args.miners} miners, "
        f"retention {args.retention} blocks, deadline {args.deadline}, {args.blocks} blocks; "
        "bytes: kv = key + SCALE value; trie = reachable nodes as stored; disk = LevelDB files "
        "after a full compaction (archive mode: every state kept)"
    )
    with tempfile.TemporaryDirectory(prefix="task-state-bench-") as name:
        result = run(args, Path(name))
    for section in ("per_live_task", "per_task_committed"):
        print(f"{section}:")
        for k, v in result[section].items():
            print(f"  {k:<40} {v}")
    churn = result["per_task_committed_churn"]
    if churn:
        print("written per task committed (measured windows):")
        for kind, n in churn["written_bytes_per_task"].items():
            print(f"  {kind:<40} {n}")
        print("  storage writes (key + value), the largest items:")
        for item, n in list(churn["storage_writes_bytes_per_task"].items())[:10]:
            print(f"    {item:<38} {n}")
    print(f"disk of the archive node at the end: {result['archive_disk_bytes']:,} bytes")
    for keep, k in result["kept_states"].items():
        print(
            f"  the last {keep} state(s) alone: {k['nodes']:,} trie nodes, {k['bytes']:,} bytes, "
            f"{k['disk']:,} on disk (a fresh LevelDB, compacted)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
