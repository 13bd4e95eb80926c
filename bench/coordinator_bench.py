"""Coordinator benchmark: dispatch latency and task throughput with on-chain commitment.

Starts a dev node (`cuckoo-node --dev --tmp`, 500 ms blocks), registers a coordinator and N
miners, starts `cuckoo-coordinator` as a subprocess, and runs N protocol-true instant miners
(signed long polls over loopback HTTP, a fixed PNG uploaded at once, results committed on chain
per block by a submitter thread) in --miner-procs child processes, and in this process an
open-loop load generator posting `POST /v1/tasks` at a target rate.

Measured:
- dispatch latency: from just before the app's POST to the moment a miner's poll response holding
  that task is parsed (p50/p99);
- throughput: tasks accepted, delivered and uploaded per second during the load window;
- on-chain commitment: tasks committed by `Tasks.commit_tasks` per second and the largest backlog
  (accepted - committed) seen, plus the time to commit everything after the load stops;
- settlement: tasks settled on chain by the end.

Usage: python bench/coordinator_bench.py [--rate 250] [--seconds 20] [--miners 8]
Targets: p50 <= 50 ms, >= 200 tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from substrateinterface import Keypair, SubstrateInterface

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.testing import InstantMiner, ResultSubmitter

UNIT = 10**18
ALICE = Keypair.create_from_uri("//Alice")
CHARLIE = Keypair.create_from_uri("//Charlie")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exe(name: str, module: str) -> list[str]:
    path = Path(sys.executable).with_name(name)
    if path.exists():
        return [str(path)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def rpc(url: str, method: str) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as resp:
        return json.loads(resp.read())["result"]


def start_daemon(
    workdir: Path, name: str, module: str, args: list[str], is_ready: Callable[[], bool]
) -> subprocess.Popen[bytes]:
    """Run the `name` daemon (output in workdir/<name>.log) until `is_ready()` (60 s at most);
    an OSError, KeyError or ValueError of the probe counts as not ready."""
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [*exe(name, module), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited; see {log_path}")
        with contextlib.suppress(OSError, KeyError, ValueError):
            if is_ready():
                return proc
        time.sleep(0.2)
    raise SystemExit(f"{name} not ready")


def start_node(workdir: Path, block_ms: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [
        "--dev",
        "--tmp",
        "--rpc-port",
        str(port),
        "--block-time-ms",
        str(block_ms),
        "--no-prometheus",
    ]

    def is_ready() -> bool:
        return int(rpc(f"http://127.0.0.1:{port}", "chain_getHeader")["number"], 16) >= 1

    return start_daemon(workdir, "cuckoo-node", "node.cli", args, is_ready), port


def register(ws: str, n_miners: int) -> tuple[Keypair, list[Keypair]]:
    si = SubstrateInterface(url=ws)

    def submit(signer: Keypair, module: str, fn: str, params: dict[str, Any], wait: bool) -> None:
        xt = si.create_signed_extrinsic(call=si.compose_call(module, fn, params), keypair=signer)
        r = si.submit_extrinsic(xt, wait_for_inclusion=wait)
        if wait and not r.is_success:
            raise SystemExit(f"{module}.{fn}: {r.error_message}")

    coord_op = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    stakers = [Keypair.create_from_mnemonic(Keypair.generate_mnemonic()) for _ in range(n_miners)]
    ops = [Keypair.create_from_mnemonic(Keypair.generate_mnemonic()) for _ in range(n_miners)]
    nonce = si.get_account_nonce(ALICE.ss58_address)
    for who, amount in [
        (coord_op, 10_000),  # escrows 0.1 CAI + the task deposit per task in flight, and fees
        *[(s, 30_000) for s in stakers],
        *[(o, 1_000) for o in ops],
    ]:
        call = si.compose_call(
            "Balances", "transfer_keep_alive", {"dest": who.ss58_address, "value": amount * UNIT}
        )
        si.submit_extrinsic(si.create_signed_extrinsic(call=call, keypair=ALICE, nonce=nonce))
        nonce += 1
    submit(CHARLIE, "Staking", "bond", {"value": 2_000_000 * UNIT}, True)
    info = {"name": "bench", "description": "", "url": "http://127.0.0.1:1", "gpu_model": ""}
    submit(
        CHARLIE,
        "Registry",
        "register_coordinator",
        {"operator": coord_op.ss58_address, "info": info},
        True,
    )
    for i, (staker, op) in enumerate(zip(stakers, ops, strict=True)):
        submit(staker, "Staking", "bond", {"value": (20_000 + 1_000 * i) * UNIT}, True)
        minfo = {"name": f"m{i}", "description": "", "url": "", "gpu_model": "instant"}
        submit(
            staker, "Registry", "register_miner", {"operator": op.ss58_address, "info": minfo}, True
        )
    si.close()
    for op, staker in zip(ops, stakers, strict=True):
        STAKER_OF[op.ss58_address] = bytes(staker.public_key)
    return coord_op, ops


def start_coordinator(
    workdir: Path, ws: str, operator: Keypair
) -> tuple[subprocess.Popen[bytes], str]:
    key = workdir / "operator.key"
    key.write_text(operator.mnemonic)
    key.chmod(0o600)
    data = workdir / "coordinator"
    addr = data / "coordinator.addr"

    def url() -> str:
        return addr.read_text().strip()

    def is_ready() -> bool:
        if not addr.exists():
            return False
        with urllib.request.urlopen(url() + "/health", timeout=2) as resp:
            return bool(json.loads(resp.read())["ready"])

    args = [
        "--chain-url",
        ws,
        "--port",
        "0",
        "--data-dir",
        str(data),
        "--operator-key-file",
        str(key),
        "--task-timeout-blocks",
        "120",
        "--log-level",
        "warning",
    ]
    proc = start_daemon(workdir, "cuckoo-coordinator", "coordinator.cli", args, is_ready)
    return proc, url()


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Upper bucket bound holding quantile q of a Prometheus histogram (seconds)."""
    buckets = [
        (float("inf") if le == "+Inf" else float(le), float(v))
        for le, v in re.findall(
            rf'^{re.escape(name)}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', text, re.M
        )
    ]
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return float("inf")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def load(
    url: str, rate: float, seconds: float, sent: dict[str, float], errors: list[str]
) -> float:
    conn = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def one(i: int) -> None:
            body = {"prompt": f"bench {i}", "size": "64x64", "steps": 1, "seed": i}
            t0 = time.time()
            try:
                async with s.post(url + "/v1/tasks", json=body) as r:
                    out = await r.json()
                    if r.status != 202:
                        errors.append(f"HTTP {r.status}: {out}")
                        return
                    sent[out["id"]] = t0
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(repr(exc))

        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        i = 0
        while True:
            due = int((time.monotonic() - start) * rate)
            if time.monotonic() - start >= seconds:
                break
            while i < due:
                t = asyncio.create_task(one(i))
                pending.add(t)
                t.add_done_callback(pending.discard)
                i += 1
            await asyncio.sleep(0.002)
        if pending:
            await asyncio.gather(*pending)
        return time.monotonic() - start


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        return await r.text()


def _add_result(submitter: ResultSubmitter, op: Keypair, task_id: str, commitment: bytes) -> None:
    submitter.add(task_id, commitment, op)


STAKER_OF: dict[str, bytes] = {}  # operator SS58 -> its miner's staker (result commitments bind it)


def miner_process(url: str, ws: str, mnemonics: list[str], stop_event: Any, out: Any) -> None:
    """A child process running some of the instant miners and their on-chain submitter; sends
    back (task_id, received_at) pairs, upload counts and errors."""
    ops = [Keypair.create_from_mnemonic(m.split("|")[0]) for m in mnemonics]
    stakers = [bytes.fromhex(m.split("|")[1]) for m in mnemonics]

    async def run() -> None:
        submitter = ResultSubmitter(ws, ops[0], more=ops[1:])
        submitter.start()
        stop = asyncio.Event()
        miners = [
            InstantMiner(
                url,
                op,
                wait_s=10,
                max_tasks=8,
                staker=staker,
                on_result=functools.partial(_add_result, submitter, op),
            )
            for op, staker in zip(ops, stakers, strict=True)
        ]
        tasks = [asyncio.create_task(m.run(stop)) for m in miners]
        await asyncio.to_thread(stop_event.wait)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        submitter.stop()
        out.put(
            {
                "received": [(h.task_id, h.received_at) for m in miners for h in m.received],
                "uploaded": sum(m.uploaded for m in miners),
                "errors": [e for m in miners for e in m.errors][:3] + submitter.errors[:3],
            }
        )

    asyncio.run(run())


async def bench(
    args: argparse.Namespace, url: str, ws: str, ops: list[Keypair], workdir: Path
) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop_event = ctx.Event()
    groups = [ops[i :: args.miner_procs] for i in range(args.miner_procs)]
    children = [
        ctx.Process(
            target=miner_process,
            args=(
                url,
                ws,
                [f"{o.mnemonic}|{STAKER_OF[o.ss58_address].hex()}" for o in g],
                stop_event,
                queue,
            ),
        )
        for g in groups
        if g
    ]
    for c in children:
        c.start()
    await asyncio.sleep(3.0)  # children import and start polling
    sent: dict[str, float] = {}
    errors: list[str] = []
    before = await scrape(url)
    samples: list[tuple[float, float, float]] = []

    lags: list[float] = []
    flushes: list[float] = []

    async def sampler() -> None:
        while True:
            text = await scrape(url)
            lags.append(metric(text, "cuckoo_coordinator_loop_lag_seconds"))
            flushes.append(metric(text, "cuckoo_coordinator_store_flush_seconds"))
            samples.append(
                (
                    time.monotonic(),
                    metric(text, "cuckoo_coordinator_events_total", '{event="jobs_accepted"}'),
                    metric(text, "cuckoo_coordinator_chain_items_total", '{kind="commit"}'),
                )
            )
            await asyncio.sleep(0.5)

    samp = asyncio.create_task(sampler())
    t_start = time.time()
    elapsed = await load(url, args.rate, args.seconds, sent, errors)
    t_end = time.time()
    accepted = len(sent)
    drain_start = time.monotonic()
    committed = 0.0
    while time.monotonic() - drain_start < 60:
        text = await scrape(url)
        committed = metric(
            text, "cuckoo_coordinator_chain_items_total", '{kind="commit"}'
        ) - metric(before, "cuckoo_coordinator_chain_items_total", '{kind="commit"}')
        uploaded_now = metric(
            text, "cuckoo_coordinator_events_total", '{event="results_uploaded"}'
        ) - metric(before, "cuckoo_coordinator_events_total", '{event="results_uploaded"}')
        if committed >= accepted and uploaded_now >= accepted:
            break
        await asyncio.sleep(0.25)
    drain_s = time.monotonic() - drain_start
    await asyncio.sleep(3)  # settlements of the last blocks
    samp.cancel()
    after = await scrape(url)
    stop_event.set()
    reports = [await asyncio.to_thread(queue.get, True, 60) for _ in children]
    for c in children:
        c.join(30)
    received = {t: at for r in reports for t, at in r["received"]}
    uploaded_total = sum(r["uploaded"] for r in reports)
    miner_errors = [e for r in reports for e in r["errors"]]
    lat = [(received[t] - t0) * 1000 for t, t0 in sent.items() if t in received]
    in_window = [t for t in received.values() if t_start <= t <= t_end]
    backlog = max((a - c for _, a, c in samples), default=0.0)
    base_a = metric(before, "cuckoo_coordinator_events_total", '{event="jobs_accepted"}')
    base_c = metric(before, "cuckoo_coordinator_chain_items_total", '{kind="commit"}')
    backlog = max(backlog - (base_a - base_c), 0.0)
    return {
        "rate_target": args.rate,
        "seconds": elapsed,
        "accepted": accepted,
        "accepted_per_s": accepted / elapsed,
        "delivered_per_s": len(in_window) / (t_end - t_start),
        "uploaded": uploaded_total,
        "committed": committed,
        "commit_backlog_max": backlog,
        "drain_s": drain_s,
        "settled": metric(after, "cuckoo_coordinator_chain_items_total", '{kind="settle"}')
        - metric(before, "cuckoo_coordinator_chain_items_total", '{kind="settle"}'),
        "p50_ms": pct(lat, 0.50),
        "p99_ms": pct(lat, 0.99),
        "mean_ms": statistics.fmean(lat) if lat else float("nan"),
        "latency_n": len(lat),
        "load_errors": errors[:3],
        "miner_errors": miner_errors[:3],
        "submitter_errors": [],
        "chain_cycle_s": metric(after, "cuckoo_coordinator_chain_cycle_seconds"),
        "loop_lag_max_s": max(lags, default=0.0),
        "flush_max_s": max(flushes, default=0.0),
        "server_p50_ms": 1000
        * histogram_quantile(after, "cuckoo_coordinator_dispatch_latency_seconds", 0.5),
        "server_p99_ms": 1000
        * histogram_quantile(after, "cuckoo_coordinator_dispatch_latency_seconds", 0.99),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=250.0, help="tasks per second offered")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--miners", type=int, default=8)
    p.add_argument("--miner-procs", type=int, default=2, help="processes the miners run in")
    p.add_argument("--block-time-ms", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="coordbench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        node, port = start_node(workdir, args.block_time_ms)
        procs.append(node)
        ws = f"ws://127.0.0.1:{port}"
        print(f"node on {ws}; registering a coordinator and {args.miners} miners ...", flush=True)
        coord_op, ops = register(ws, args.miners)
        coord, url = start_coordinator(workdir, ws, coord_op)
        procs.append(coord)
        print(
            f"coordinator on {url}; offering {args.rate:g} tasks/s for {args.seconds:g} s",
            flush=True,
        )
        r = asyncio.run(bench(args, url, ws, ops, workdir))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        if os.environ.get("KEEP_BENCH_DIR") is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'metric':<44}{'value':>12}  target")
    rows = [
        ("dispatch latency p50 (ms)", f"{r['p50_ms']:.1f}", "<= 50"),
        ("dispatch latency p99 (ms)", f"{r['p99_ms']:.1f}", ""),
        (
            "  coordinator-side p50/p99 bucket (ms)",
            f"{r['server_p50_ms']:g}/{r['server_p99_ms']:g}",
            "",
        ),
        ("tasks accepted / s", f"{r['accepted_per_s']:.0f}", ">= 200"),
        ("tasks handed to miners / s", f"{r['delivered_per_s']:.0f}", ">= 200"),
        (
            "tasks accepted / uploaded / committed",
            f"{r['accepted']}/{r['uploaded']}/{r['committed']:.0f}",
            "",
        ),
        ("max commit backlog (tasks)", f"{r['commit_backlog_max']:.0f}", "bounded"),
        ("all committed+uploaded after load (s)", f"{r['drain_s']:.1f}", ""),
        ("settled on chain by the end", f"{r['settled']:.0f}", ""),
        ("last chain cycle (s)", f"{r['chain_cycle_s']:.3f}", "< block time"),
        (
            "max event-loop lag / store flush (s)",
            f"{r['loop_lag_max_s']:.2f}/{r['flush_max_s']:.2f}",
            "",
        ),
    ]
    for name, value, target in rows:
        print(f"{name:<44}{value:>12}  {target}")
    errs = r["load_errors"] + r["miner_errors"] + r["submitter_errors"]
    if errs:
        print("errors:", errs)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    ok = r["p50_ms"] <= 50 and r["accepted_per_s"] >= 200 and r["committed"] >= r["accepted"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
