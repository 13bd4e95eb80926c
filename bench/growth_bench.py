"""Disk growth benchmark (a script, not a test): bytes on disk per block, per transfer and per
task, for an archive node and a node with the default state pruning, measured in one run.

One dev node (`--state-pruning archive`) authors every block as its author does (Aura and
randomness digests, an instant justification: each block is final), carrying the steady task
load of tests/pallets/task_load.py (`--tasks-per-block` tasks committed, their results,
settlements and checks) and `--transfers-per-block` balance transfers. The same sealed blocks
go into a second node with the default pruning (`--state-pruning 256`, blocks
`archive-canonical`) through the same authored-block import, so both stores hold the same
chain; their state roots are the same by construction (pruning deletes only old nodes).

Every `--every` blocks, both stores are compacted and measured: LevelDB directory bytes, and
what they hold by kind (trie nodes, state journals, headers, bodies, other). The slope of each
over the measured points after the pruning window has filled gives bytes per block, and
divided by the load, bytes per task and per transfer (each attributed the whole block: an
upper bound). It prints a table, the slopes, and the extrapolation to a day at
`--tasks-per-second` tasks/s with 1 s blocks (the task slope times tasks per day), and writes
bench/data/growth.json.

    python bench/growth_bench.py [--blocks 700] [--tasks-per-block 10] [--transfers-per-block 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.task_state_bench import Chain, Keys, chain_spec, dir_bytes
from genesis.builder import ChainSpec, load_spec
from node import chaindb
from node.db import LevelDBKV
from node.keystore import AURA_KEY_TYPE, dev_suri
from node.service import Node, NodeConfig
from pallets.registry import pallet as registry
from tests.pallets.task_load import CAI, LoadShape, SteadyLoad, storage_names

KINDS = {
    chaindb.NODE: "trie nodes",
    chaindb.JOURNAL: "journals",
    chaindb.HEADER: "headers",
    chaindb.BODY: "bodies",
}


class Twin(Chain):
    """The archive node authors; each block (with its justification) is imported into the
    pruned node too, re-executed there as any block from a peer."""

    def __init__(self, tmp: Path, spec: ChainSpec, keys: Keys, window: int) -> None:
        self.node = Node(
            NodeConfig(
                spec=spec,
                base_path=tmp / "archive",
                prometheus_port=None,
                dev_key=dev_suri("alice"),
                state_pruning="archive",
            )
        )
        self.pruned = Node(
            NodeConfig(
                spec=spec, base_path=tmp / "pruned", prometheus_port=None, state_pruning=window
            )
        )
        self.keys = keys
        self.nonces = {}
        node = self.node
        self.signer = node.keystore.signer(AURA_KEY_TYPE, min(node.author.keys), scheme="sr25519")
        self.names = storage_names(node.runtime)
        self.written = {}
        self.changed = {}
        self.commit_s = {"archive": 0.0, "pruned": 0.0}  # time in ChainDB.commit_block
        for name, db in (("archive", self.node.db), ("pruned", self.pruned.db)):
            self._time(name, db)

    def _time(self, name: str, db: chaindb.ChainDB) -> None:
        commit = db.commit_block

        def timed(*args: Any, **kwargs: Any) -> bytes:
            t0 = time.perf_counter()
            try:
                return commit(*args, **kwargs)
            finally:
                self.commit_s[name] += time.perf_counter() - t0

        db.commit_block = timed  # type: ignore[method-assign]

    def author(self, extrinsics: list[bytes]) -> None:
        super().author(extrinsics)
        best = self.node.chain.best_hash
        block = self.node.chain.block(best)
        assert block is not None
        self.pruned.importer.import_block(block, self.node.db.justification(best))

    def close(self) -> None:
        self.node.close()
        self.pruned.close()


def measure(kv: LevelDBKV) -> dict[str, int]:
    kv.compact()
    out = {"disk": dir_bytes(kv.path)}
    for key, value in kv.iterate():
        kind = KINDS.get(key[:1], "other")
        out[kind] = out.get(kind, 0) + len(key) + len(value)
    return out


def _slope(points: list[tuple[int, int]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    keys = Keys()
    coordinator = keys.party("coordinator", 0)
    miners = [keys.party("miner", i) for i in range(args.miners)]
    payers = [keys.party("payer", i).staker for i in range(max(2, args.transfers_per_block))]
    dev = load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"]
    min_coordinator = int(dev["registry"]["minCoordinatorStake"])
    min_miner = int(dev["registry"]["minMinerStake"])
    endowed = {coordinator.staker: 2 * min_coordinator, coordinator.operator: 10_000_000 * CAI}
    for m in miners:
        endowed |= {m.staker: 2 * min_miner, m.operator: 1_000 * CAI}
    endowed |= {p: 1_000_000 * CAI for p in payers}
    twin = Twin(tmp, chain_spec(args.retention, endowed), keys, args.window)
    chain = twin
    node = chain.node
    shape = LoadShape(tasks_per_block=args.tasks_per_block, deadline_blocks=args.deadline)
    load = SteadyLoad(shape, coordinator, miners, node.runtime_config.tasks.min_task_price, b"g")
    rows: list[dict[str, Any]] = []
    transfers = 0
    try:
        xts = []
        info = registry.Info(name=b"bench", url=b"https://coordinator.example")
        for who, stake, call in [
            (coordinator, min_coordinator, "register_coordinator"),
            *((m, min_miner, "register_miner") for m in miners),
        ]:
            xts.append(chain.signed(who.staker, "Staking", "bond", value=stake))
            xts.append(chain.signed(who.staker, "Registry", call, operator=who.operator, info=info))
        chain.author(xts)
        started = time.perf_counter()
        for number in range(2, args.blocks + 1):
            moves = load.moves(chain.state(), number)
            block = [chain.signed(m.signer, "Tasks", m.call, **m.args) for m in moves]
            for i in range(args.transfers_per_block):
                src, dst = (
                    payers[(number + i) % len(payers)],
                    payers[(number + i + 1) % len(payers)],
                )
                block.append(
                    chain.signed(
                        src, "Balances", "transfer_keep_alive", dest=("Id", dst), value=CAI
                    )
                )
            transfers += args.transfers_per_block
            chain.author(block)
            if number % args.every == 0:
                row = {
                    "block": number,
                    "tasks": load.committed,
                    "transfers": transfers,
                    "archive": measure(node.kv),
                    "pruned": measure(twin.pruned.kv),
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
                rows.append(row)
                print(
                    f"#{number:5d} tasks {load.committed:6d}  "
                    f"archive {row['archive']['disk']:>11,} B"
                    f"  pruned {row['pruned']['disk']:>11,} B (trie nodes "
                    f"{row['archive'].get('trie nodes', 0):>11,} / "
                    f"{row['pruned'].get('trie nodes', 0):>9,})",
                    flush=True,
                )
        best = node.chain.best_header()
        pruned_best = twin.pruned.chain.best_header()
        if best.hash() != pruned_best.hash() or best.state_root != pruned_best.state_root:
            raise SystemExit("the two stores disagree on the best block")
        twin.pruned.chain.state_at().get(b"")  # the pruned store reads its best state
        commit_ms = {k: round(1000 * v / args.blocks, 2) for k, v in twin.commit_s.items()}
        print(
            f"commit_block (block, its nodes, and for the pruned store the journal, counts and "
            f"pruning): archive {commit_ms['archive']} ms/block, pruned {commit_ms['pruned']} "
            f"ms/block"
        )
    finally:
        twin.close()
    return summarize(args, rows, commit_ms)


def summarize(
    args: argparse.Namespace, rows: list[dict[str, Any]], commit_ms: dict[str, float]
) -> dict[str, Any]:
    after = [r for r in rows if r["block"] > args.window + args.retention]
    if len(after) < 2:
        raise SystemExit("--blocks too small: need two measurements after the window fills")
    out: dict[str, Any] = {
        "blocks": args.blocks,
        "tasks_per_block": args.tasks_per_block,
        "transfers_per_block": args.transfers_per_block,
        "state_pruning": args.window,
        "measured_from_block": after[0]["block"],
        "commit_block_ms": commit_ms,
        "rows": rows,
    }
    per_day_blocks = 86_400
    tasks_per_block = args.tasks_per_block
    for store in ("archive", "pruned"):
        slopes = {
            kind: round(_slope([(r["block"], r[store].get(kind, 0)) for r in after]), 1)
            for kind in ("disk", "trie nodes", "journals", "headers", "bodies")
        }
        per_block = slopes["disk"]
        per_task = per_block / tasks_per_block if tasks_per_block else 0.0
        per_transfer = per_block / args.transfers_per_block if args.transfers_per_block else 0.0
        day = per_task * args.tasks_per_second * per_day_blocks
        out[store] = {
            "bytes_per_block": slopes,
            "disk_bytes_per_task": round(per_task, 1),
            "disk_bytes_per_transfer": round(per_transfer, 1),
            "gb_per_day_at_rate": round(day / 1e9, 2),
        }
        print(
            f"{store:8s} disk {per_block:10.0f} B/block (trie nodes {slopes['trie nodes']:.0f}, "
            f"journals {slopes['journals']:.0f}, bodies {slopes['bodies']:.0f}, headers "
            f"{slopes['headers']:.0f}); {per_task:.0f} B/task, {per_transfer:.0f} B/transfer "
            f"(each given the whole block); {day / 1e9:.1f} GB/day at "
            f"{args.tasks_per_second} tasks/s, 1 s blocks"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=700)
    p.add_argument("--tasks-per-block", type=int, default=10)
    p.add_argument("--transfers-per-block", type=int, default=10)
    p.add_argument("--miners", type=int, default=8)
    p.add_argument("--deadline", type=int, default=10)
    p.add_argument("--retention", type=int, default=100, help="Tasks.RetentionBlocks")
    p.add_argument("--window", type=int, default=chaindb.DEFAULT_STATE_PRUNING)
    p.add_argument("--every", type=int, default=50, help="measure every N blocks")
    p.add_argument("--tasks-per-second", type=int, default=250)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "growth.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
        result = run(args, Path(tmp))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
