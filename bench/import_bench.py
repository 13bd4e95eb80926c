"""Block import benchmark (a script, not a test).

Builds one block of N pre-signed sr25519 `Balances.transfer_keep_alive` among M accounts (funded
in genesis), then measures importing it on one core: `execute_block` with signature checks and
the state root, plus `ChainDB.commit_block` into LevelDB. In the same run it measures the raw
`sr25519.verify` rate over the same messages on one core and prints two ratios:

- one core: import_tx_per_s / raw_verify_per_s (target >= 0.6), with a breakdown (decode,
  signature checks, execution, finalize/state root, commit);
- with the other cores: the same import as the node runs it, the signatures verified by worker
  processes on the other cores while this process executes (`node.sigcheck`), wall clock, over
  the same one-core raw verify rate (target >= 1.0; needs two cores).

Everything is signed before anything is measured; each figure is the best of R runs, each on a
fresh store.

    python bench/import_bench.py [--quick] [--txs 5000] [--accounts 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sr25519

from chain.crypto import SignatureScheme, ss58_encode, verify_signature
from chain.primitives import (
    Block,
    DigestItem,
    Era,
    Extrinsic,
    Header,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    signing_payload,
)
from genesis.builder import ChainSpec, load_spec
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.keystore import derive_key, dev_suri
from node.service import Node, NodeConfig
from node.sigcheck import ParallelSignatures
from pallets.aura import pallet as aura
from pallets.executive import (
    decode_block_extrinsics,
    execute_block,
    execute_decoded,
    signature_jobs,
)

FUNDS = 10**21
cpu = time.process_time  # compute stages: CPU time of this (pinned) process, immune to neighbours
SLOT = 1_000_001


@dataclasses.dataclass
class Prepared:
    node: Node
    block: Block  # sealed
    unsealed: Header
    parent_root: bytes
    messages: list[tuple[bytes, bytes, bytes]]  # (signature, signing payload, public key)


ALL_CORES: set[int] = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def _pin_one_core() -> str:
    if ALL_CORES:
        core = min(ALL_CORES)
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned"


def start_workers() -> ParallelSignatures | None:
    """Signature workers on the cores other than this process's (which stays pinned), started
    and answering; None on a single core."""
    if len(ALL_CORES) < 2:
        return None
    mine = set(os.sched_getaffinity(0))
    others = ALL_CORES - mine
    os.sched_setaffinity(0, others)  # the workers inherit this at their spawn
    try:
        workers = ParallelSignatures(workers=len(others))
        workers.warm(timeout=120)
    finally:
        os.sched_setaffinity(0, mine)
    return workers


def measure_parallel(
    p: Prepared, repeat: int, tmp: Path, workers: ParallelSignatures | None
) -> tuple[float, float]:
    """Import as the node does it with workers (decode once, signature jobs to the workers,
    execute, commit), all inline without workers: (wall-clock seconds, CPU seconds of this
    process), each the best of `repeat`."""
    ex = p.node.executive
    counter = iter(range(10**6))

    def once() -> tuple[float, float]:
        kv, db = _fresh_db(p, tmp / f"par{next(counter)}")
        try:
            state = db.state_at_root(p.parent_root)
            gc.collect()
            c0 = cpu()
            t0 = time.perf_counter()
            items = decode_block_extrinsics(ex, p.block.extrinsics)
            if workers is None:
                built = execute_decoded(ex, state, p.unsealed, items)
            else:
                jobs = signature_jobs(ex, state, p.unsealed, items)
                checks = workers.start(jobs, p.block.extrinsics)
                built = execute_decoded(
                    ex,
                    state,
                    p.unsealed,
                    items,
                    signature_check=checks,
                    extrinsics_root=checks.extrinsics_root,
                    settle=checks.settle,
                )
            db.commit_block(
                p.block.header, p.block.extrinsics, built.nodes, is_best=True, is_finalized=False
            )
            return time.perf_counter() - t0, cpu() - c0
        finally:
            kv.close()

    runs = [once() for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _spec_with(accounts: list[bytes]) -> ChainSpec:
    raw = copy.deepcopy(load_spec("dev").raw)
    balances = raw["genesis"]["runtimeGenesis"]["config"]["balances"]["balances"]
    balances.extend([ss58_encode(a), str(FUNDS)] for a in accounts)
    return ChainSpec(raw)


def prepare(base: Path, n_txs: int, n_accounts: int, seed: int) -> Prepared:
    rng = random.Random(seed)
    pairs = [sr25519.pair_from_seed(rng.randbytes(32)) for _ in range(n_accounts)]
    pubs = [bytes(p) for p, _ in pairs]
    node = Node(
        NodeConfig(
            spec=_spec_with(pubs), base_path=base, prometheus_port=None, dev_key=dev_suri("alice")
        )
    )
    rt = node.runtime
    version = node.executive.version
    genesis = node.genesis_hash
    raws: list[bytes] = []
    messages: list[tuple[bytes, bytes, bytes]] = []
    for i in range(n_txs):
        sender = i % n_accounts
        nonce = i // n_accounts
        dest = (sender + 1 + rng.randrange(n_accounts - 1)) % n_accounts
        value = rng.randrange(10**15, 10**18)
        call = rt.call_type.encode(
            rt.call("Balances", "transfer_keep_alive", dest=("Id", pubs[dest]), value=value)
        )
        payload = signing_payload(
            call,
            Era.immortal(),
            nonce,
            0,
            version.spec_version,
            version.transaction_version,
            genesis,
            genesis,
        )
        sig = bytes(sr25519.sign(pairs[sender], payload))
        raws.append(
            encode_signed_extrinsic(
                call, pubs[sender], SignatureScheme.SR25519, sig, Era.immortal(), nonce, 0
            )
        )
        messages.append((sig, payload, pubs[sender]))
    parent = node.chain.best_header()
    state = node.db.state_at_root(parent.state_root)
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, SLOT.to_bytes(8, "little"))]
    builder = node.executive.begin_block(state, node.chain.best_hash, parent.number + 1, digest)
    ts = rt.call_type.encode(rt.call("Timestamp", "set", now=SLOT * node.slot_ms))
    builder.apply_inherent(encode_unsigned_extrinsic(ts))
    for raw in raws:
        outcome = builder.apply(raw, verified=True)
        if not outcome.success:
            raise SystemExit(f"transfer {outcome.index} failed: {outcome.error}")
    built = builder.finalize()
    signer = derive_key(dev_suri("alice")).signer()
    seal = DigestItem.seal(aura.ENGINE_ID, signer.sign(built.header.hash()))
    header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
    block = Block(header, built.extrinsics)
    return Prepared(node, block, built.header, parent.state_root, messages)


def _fresh_db(p: Prepared, where: Path) -> tuple[LevelDBKV, ChainDB]:
    """A new LevelDB holding the genesis block and its state (copied, not measured)."""
    kv = LevelDBKV(where)
    src = p.node.db
    ops = list(src.kv.iterate())
    kv.write_batch(ops, sync=True)
    db = ChainDB(kv)  # after the copy: it takes the source's pruning mode from the store
    assert db.best_hash() == src.best_hash()
    return kv, db


def _best(repeat: int, fn: Callable[[], float]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(fn())
    return min(times)


def import_once(p: Prepared, where: Path) -> tuple[float, float]:
    """One import on one core into a fresh store: (`execute_block` CPU seconds, `commit_block`
    wall-clock seconds, as it waits on the fsync)."""
    ex = p.node.executive
    xts = p.block.extrinsics
    kv, db = _fresh_db(p, where)
    try:
        state = db.state_at_root(p.parent_root)
        gc.collect()
        t0 = cpu()
        built = execute_block(ex, state, p.unsealed, xts)
        t1 = cpu()
        w1 = time.perf_counter()
        db.commit_block(p.block.header, xts, built.nodes, is_best=True, is_finalized=False)
        w2 = time.perf_counter()
        return t1 - t0, w2 - w1
    finally:
        kv.close()


def measure(p: Prepared, repeat: int, tmp: Path) -> dict[str, float]:
    ex = p.node.executive
    xts = p.block.extrinsics

    runs = [import_once(p, tmp / f"db{i}") for i in range(repeat)]
    execute_full = min(r[0] for r in runs)
    commit = min(r[1] for r in runs)

    def decode_only() -> float:
        t0 = cpu()
        for raw in xts:
            Extrinsic.decode(raw)
        return cpu() - t0

    def apply_pass(verified: bool) -> tuple[float, float]:
        state = p.node.db.state_at_root(p.parent_root)
        gc.collect()
        t0 = cpu()
        b = ex.begin_block(state, p.unsealed.parent_hash, p.unsealed.number, p.unsealed.digest)
        b.apply_inherent(xts[0])
        for raw in xts[1:]:
            b.apply(raw, verified=verified)
        t1 = cpu()
        b.finalize()
        return t1 - t0, cpu() - t1

    def raw_verify() -> float:
        t0 = cpu()
        for sig, msg, pub in p.messages:
            sr25519.verify(sig, msg, pub)
        return cpu() - t0

    def wrapped_verify() -> float:
        t0 = cpu()
        for sig, msg, pub in p.messages:
            verify_signature(SignatureScheme.SR25519, sig, msg, pub)
        return cpu() - t0

    assert all(sr25519.verify(s, m, k) for s, m, k in p.messages)
    decode = _best(repeat, decode_only)
    checked = [apply_pass(False) for _ in range(repeat)]
    unchecked = [apply_pass(True) for _ in range(repeat)]
    apply_checked = min(c[0] for c in checked)
    apply_unchecked = min(c[0] for c in unchecked)
    finalize = min(c[1] for c in checked + unchecked)
    return {
        "execute_full": execute_full,
        "commit": commit,
        "decode": decode,
        "apply_checked": apply_checked,
        "apply_unchecked": apply_unchecked,
        "finalize": finalize,
        "raw_verify": _best(repeat, raw_verify),
        "wrapped_verify": _best(repeat, wrapped_verify),
    }


def node_import_once(p: Prepared, where: Path) -> float:
    """`BlockImporter.import_block` end to end (seal check, execution, commit, pool/metrics
    upkeep) on one core, in CPU seconds (the fsync wait is not counted)."""
    node = Node(NodeConfig(spec=p.node.spec, base_path=where, prometheus_port=None))
    node.signatures.workers = 0  # one core: signatures checked inline
    try:
        gc.collect()
        t0 = cpu()
        node.importer.import_block(p.block)
        elapsed = cpu() - t0
        assert node.chain.best_hash == p.block.hash()
        return elapsed
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 transfers among 200 accounts, 1 run"
    )
    parser.add_argument(
        "--txs", type=int, default=None, help="transfers in the block (default 5000)"
    )
    parser.add_argument("--accounts", type=int, default=None, help="accounts (default 1000)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per figure, best kept (default 3)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n_txs = args.txs or (1000 if args.quick else 5000)
    n_accounts = args.accounts or (200 if args.quick else 1000)
    repeat = args.repeat or (1 if args.quick else 3)
    pinned = _pin_one_core()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        p = prepare(tmp / "author", n_txs, n_accounts, args.seed)
        prep = time.perf_counter() - t0
        workers = start_workers()
        try:
            m = measure(p, repeat, tmp)
            end_to_end = min(node_import_once(p, tmp / f"node{i}") for i in range(repeat))
            parallel, parallel_cpu = (
                measure_parallel(p, repeat, tmp, workers) if workers else (0.0, 0.0)
            )
            inline_wall = measure_parallel(p, repeat, tmp, None)[0] if workers else 0.0
        finally:
            p.node.close()
            if workers is not None:
                workers.close()
    n = n_txs
    total = m["execute_full"] + m["commit"]
    import_tps = n / total
    raw_vps = n / m["raw_verify"]
    verify_cost = m["apply_checked"] - m["apply_unchecked"]
    execute = m["apply_unchecked"] - m["decode"]

    def row(name: str, seconds: float) -> str:
        return (
            f"  {name:<34} {seconds * 1e3:9.1f} ms {seconds / n * 1e6:8.1f} us/tx "
            f"{seconds / total:6.1%}"
        )

    print(
        f"import_bench: {n} transfer_keep_alive among {n_accounts} accounts, block "
        f"{len(p.block.encode()) / 1024:.0f} KiB, best of {repeat}, {pinned}, Python "
        f"{sys.version.split()[0]} (prepared in {prep:.1f} s)"
    )
    print("  (CPU time of this process; commit: wall clock, it includes the fsync)")
    print(f"  {'stage':<34} {'time':>12} {'per tx':>14} {'share':>6}")
    print(row("decode extrinsics", m["decode"]))
    print(row("signature checks (payload+verify)", verify_cost))
    print(row("execute (checks, fees, transfer)", execute))
    print(row("finalize (events, state root)", m["finalize"]))
    print(row("commit (LevelDB batch, fsync)", m["commit"]))
    print(row("= execute_block + commit_block", total))
    print(
        f"  {'Node.import_block end to end':<34} {end_to_end * 1e3:9.1f} ms "
        f"({n / end_to_end:,.0f} tx/s)"
    )
    print(f"import:        {import_tps:10,.0f} tx/s")
    print(
        f"raw sr25519:   {raw_vps:10,.0f} verify/s (wrapped verify_signature: "
        f"{n / m['wrapped_verify']:,.0f}/s)"
    )
    print(f"ratio import/raw verify, one core: {import_tps / raw_vps:.3f} (target >= 0.6)")
    if workers is None:
        print("ratio import/raw verify, with the other cores: not measured (one core)")
    else:
        print(
            f"import with {workers.workers} signature worker(s) on the other core(s): "
            f"{n / parallel:10,.0f} tx/s (wall clock)"
        )
        print(
            f"  CPU time left on this process's core: {parallel_cpu / n * 1e6:.1f} us/tx "
            f"({n / parallel_cpu:,.0f} tx/s; the wall-clock rate with idle other cores)"
        )
        print(
            f"  the same import checking inline, wall clock: {n / inline_wall:,.0f} tx/s "
            f"(workers: {inline_wall / parallel:.2f}x; wall clock counts the time other jobs "
            "take the cores)"
        )
        print(
            f"ratio import/raw verify, with the other cores: {n / parallel / raw_vps:.3f} "
            "(target >= 1.0)"
        )


if __name__ == "__main__":
    main()
