"""Miner inference benchmark: the plain diffusers pipeline vs the miner's service path.

    python bench/miner_gpu.py [--model tiny|PATH] [--device auto|cuda|cpu] [--n 40]
                              [--size 64|WxH] [--steps 2] [--guidance 0.0] [--concurrency 1,2]

In one process, on one device, with one loaded pipeline (`DiffusersSolver`: CUDA float16 when
present, CPU float32 otherwise; the tiny random-weight model by default):

1. plain: `pipe(prompt, height, width, num_inference_steps, guidance_scale, generator)` for N
   seeds, warm, batch 1, `torch.cuda.synchronize()` around each call: images/s.
2. miner: the same N specs through the miner's job path over loopback HTTP: an in-process
   coordinator stub (aiohttp) hands out tasks; the miner polls (sr25519-signed request over
   `chain.taskproto.request_message`), checks the spec hash, generates with
   `DiffusersSolver.solve_timed` in a worker thread, PNG-encodes, hashes the PNG (blake2) and
   uploads it with a signed request. Images/s, and the latency the miner adds per job (the job's
   wall time minus the pipeline call and minus any wait for the engine), p50/p99. With
   concurrency 2, one job's encode/upload overlaps the next job's generation.

The paths run in interleaved rounds (--rounds), so that drifting load on a shared machine hits
them alike. Prints a table with the ratio miner/plain (target >= 0.95x) and the added latency
(target <= 20 ms p50). The determinism settings are process-wide, so both paths run under
them; the plain call and the miner's call give the same PNG bytes (checked and printed).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain.hashing import blake2_256  # noqa: E402
from chain.taskproto import (  # noqa: E402
    canonical_json,
    device_hash,
    result_hash,
    spec_hash,
)
from chainclient.signing import sign_request  # noqa: E402
from chainclient.sketch import image_sketch  # noqa: E402

POLL = "/v1/miner/poll"
RESULTS = "/v1/miner/results/"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def make_specs(args: argparse.Namespace, model_id: str, offset: int) -> list[dict[str, Any]]:
    width, height = parse_size(args.size)
    return [
        {
            "model": model_id,
            "prompt": PROMPT,
            "negative_prompt": "",
            "width": width,
            "height": height,
            "steps": args.steps,
            "seed": offset + i,
            "guidance_scale": args.guidance,
        }
        for i in range(args.n)
    ]


# -- 1. the plain pipeline -------------------------------------------------------------------


def run_plain(solver: Any, specs: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    import torch

    pipe = solver.pipeline
    cuda = solver.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(solver.device)

    def call(spec: dict[str, Any]) -> Any:
        return pipe(
            spec["prompt"],
            height=spec["height"],
            width=spec["width"],
            num_inference_steps=spec["steps"],
            guidance_scale=float(spec["guidance_scale"]),
            generator=torch.Generator("cpu").manual_seed(spec["seed"]),
        ).images[0]

    for spec in specs[:warmup]:
        call(spec)
    times = []
    sync()
    start = time.perf_counter()
    first = None
    for spec in specs:
        t0 = time.perf_counter()
        image = call(spec)
        sync()
        times.append(time.perf_counter() - t0)
        if first is None:
            first = image
    wall = time.perf_counter() - start
    return {"images_per_s": len(specs) / wall, "wall_s": wall, "call_s": times, "first": first}


# Worker threads for both paths (the miner runs `solve` in a worker thread, via
# asyncio.to_thread): torch calls from the main thread and from a worker thread can run at quite
# different speeds on a busy CPU (each thread has its own OpenMP team), so both paths use the
# same pool's threads.
POOL = concurrent.futures.ThreadPoolExecutor(1)  # resized in main() to the largest concurrency


def in_worker_thread(fn: Any, *args: Any) -> Any:
    return POOL.submit(fn, *args).result()


# -- 2. the miner path over loopback HTTP ----------------------------------------------------


class CoordinatorStub:
    """Hands out queued tasks on poll and accepts uploads; no checks (its cost is not the
    miner's, but it runs in this process, so it is kept minimal)."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.queue: deque[dict[str, Any]] = deque(
            {
                "task_id": "0x" + blake2_256(b"task%d" % i).hex(),
                "spec": spec,
                "spec_hash": "0x" + spec_hash(spec).hex(),
                "deadline_block": 1000,
            }
            for i, spec in enumerate(specs)
        )
        self.received: dict[str, int] = {}

    async def poll(self, request: Any) -> Any:
        from aiohttp import web

        await request.read()
        if not self.queue:
            return web.Response(status=204)
        body = json.dumps({"tasks": [self.queue.popleft()]})
        return web.Response(body=body.encode(), content_type="application/json")

    async def result(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        self.received[request.match_info["task"]] = len(body)
        return web.Response(text="ok")


async def miner_jobs(
    solver: Any, specs: list[dict[str, Any]], concurrency: int, keypair: Any
) -> dict[str, Any]:
    import aiohttp
    from aiohttp import web

    stub = CoordinatorStub(specs)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(POLL, stub.poll)
    app.router.add_post(RESULTS + "{task}", stub.result)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    fingerprint = solver.fingerprint()
    jobs: list[dict[str, float]] = []

    async def post(session: Any, path: str, body: bytes, extra: dict[str, str]) -> Any:
        headers = sign_request(keypair, "POST", path, body)
        headers.update(extra)
        async with session.post(base + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def worker(session: Any) -> None:
        while True:
            t0 = time.perf_counter()
            status, data = await post(
                session,
                POLL,
                json.dumps({"max_tasks": 1, "wait_s": 0}).encode(),
                {"Content-Type": "application/json"},
            )
            if status == 204:
                return
            (task,) = json.loads(data)["tasks"]
            spec = task["spec"]
            if "0x" + blake2_256(canonical_json(spec)).hex() != task["spec_hash"]:
                raise RuntimeError("spec hash mismatch")
            loop = asyncio.get_running_loop()
            png, timings = await loop.run_in_executor(POOL, solver.solve_timed, spec)
            t_solved = time.perf_counter()
            headers = {
                "Content-Type": "image/png",
                "X-Cuckoo-Result-Hash": "0x" + result_hash(png).hex(),
                "X-Cuckoo-Device": "0x" + device_hash(fingerprint).hex(),
                "X-Cuckoo-Sketch": "0x" + image_sketch(png).hex(),
                "X-Cuckoo-Salt": "0x" + os.urandom(32).hex(),
                "X-Cuckoo-Device-Info": json.dumps(
                    fingerprint, sort_keys=True, separators=(",", ":")
                ),
            }
            status, _ = await post(session, RESULTS + task["task_id"], png, headers)
            if status != 200:
                raise RuntimeError(f"upload answered {status}")
            t1 = time.perf_counter()
            job_s = t1 - t0
            jobs.append(
                {
                    "job_s": job_s,
                    "pipeline_s": timings.pipeline_s,
                    "wait_s": timings.wait_s,
                    "encode_s": timings.encode_s,
                    "after_s": t1 - t_solved,
                    "overhead_s": job_s - timings.pipeline_s - timings.wait_s,
                }
            )

    try:
        connector = aiohttp.TCPConnector(limit=concurrency + 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            start = time.perf_counter()
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
            wall = time.perf_counter() - start
    finally:
        await runner.cleanup()
    if len(stub.received) != len(specs):
        raise RuntimeError(f"{len(stub.received)} uploads for {len(specs)} tasks")
    return {"images_per_s": len(specs) / wall, "wall_s": wall, "jobs": jobs}


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny, tiny-sdxl or a diffusers folder")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--n", type=int, default=40, help="images per measured run")
    parser.add_argument("--size", default="64", help="W or WxH (multiples of 8)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", default="0.0", help="guidance scale (decimal string)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up images per path")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per path")
    parser.add_argument("--concurrency", default="1,2", help="miner jobs in flight, e.g. 1,2")
    parser.add_argument("--data-dir", type=Path, default=None, help="where tiny models are built")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    global POOL
    POOL = concurrent.futures.ThreadPoolExecutor(max([1, *concurrencies]), "bench")

    os.environ["HF_HUB_OFFLINE"] = "1"
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from substrateinterface import Keypair

    from miner.engine import DiffusersSolver

    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="miner-bench-")
        data_dir = Path(tmp.name)
    t0 = time.perf_counter()
    solver = DiffusersSolver(args.model, args.device, data_dir)
    load_s = time.perf_counter() - t0
    keypair = Keypair.create_from_uri("//Alice")
    fp = solver.fingerprint()
    width, height = parse_size(args.size)

    # warm both paths, and check that they make the very same bytes
    from miner.engine.diffusers_solver import encode_png

    warm_args = argparse.Namespace(**{**vars(args), "n": max(1, args.warmup)})
    warm = make_specs(warm_args, solver.model_id, 10**6)
    plain_first = in_worker_thread(run_plain, solver, warm[:1], 0)["first"]
    same_bytes = encode_png(plain_first) == solver.solve(warm[0])
    in_worker_thread(run_plain, solver, warm, 0)
    asyncio.run(miner_jobs(solver, warm, 1, keypair))

    # rounds interleave the paths, so that drifting machine load hits them alike
    specs = make_specs(args, solver.model_id, 0)
    rounds = max(1, min(args.rounds, args.n))
    chunks = [specs[r::rounds] for r in range(rounds)]
    names = ["plain"] + [f"miner c={c}" for c in concurrencies]
    results: dict[str, Any] = {name: {"wall_s": 0.0, "n": 0} for name in names}
    for chunk in chunks:
        for name in names:
            if name == "plain":
                res = in_worker_thread(run_plain, solver, chunk, 0)
                results[name].setdefault("call_s", []).extend(res["call_s"])
            else:
                c = int(name.partition("=")[2])
                res = asyncio.run(miner_jobs(solver, chunk, c, keypair))
                results[name].setdefault("jobs", []).extend(res["jobs"])
            results[name]["wall_s"] += res["wall_s"]
            results[name]["n"] += len(chunk)
    for res in results.values():
        res["images_per_s"] = res["n"] / res["wall_s"]
    plain_ips = results["plain"]["images_per_s"]
    print()
    print(f"device   {fp['device']}  ({fp['driver']}; {fp['dtype']})")
    print(
        f"model    {solver.model_id} ({solver.model.pipeline_class}); {width}x{height}, "
        f"{args.steps} step(s), guidance {args.guidance}; n={args.n} per path in {rounds} "
        f"interleaved rounds; load+warm-up {load_s:.1f} s"
    )
    print(f"versions torch {fp['torch']}, diffusers {fp['diffusers']}, {fp['png']}")
    print(f"plain call PNG == miner PNG for the same seed: {'yes' if same_bytes else 'NO'}")
    print()
    head = (
        f"{'path':<16}{'img/s':>9}{'ratio':>8}{'job p50':>10}{'job p99':>10}"
        f"{'added p50':>11}{'added p99':>11}{'png p50':>9}"
    )
    print(head + "   (ms)")
    print("-" * len(head))
    table: dict[str, Any] = {}
    for name, res in results.items():
        if "jobs" in res:
            jobs = res["jobs"]
            job = [j["job_s"] * 1e3 for j in jobs]
            added = [j["overhead_s"] * 1e3 for j in jobs]
            enc = [j["encode_s"] * 1e3 for j in jobs]
            row = {
                "images_per_s": res["images_per_s"],
                "ratio": res["images_per_s"] / plain_ips,
                "job_p50_ms": pct(job, 50),
                "job_p99_ms": pct(job, 99),
                "added_p50_ms": pct(added, 50),
                "added_p99_ms": pct(added, 99),
                "png_p50_ms": pct(enc, 50),
            }
            print(
                f"{name:<16}{row['images_per_s']:>9.2f}{row['ratio']:>7.3f}x"
                f"{row['job_p50_ms']:>10.1f}{row['job_p99_ms']:>10.1f}"
                f"{row['added_p50_ms']:>11.2f}{row['added_p99_ms']:>11.2f}{row['png_p50_ms']:>9.2f}"
            )
        else:
            call = [t * 1e3 for t in res["call_s"]]
            row = {
                "images_per_s": res["images_per_s"],
                "call_p50_ms": pct(call, 50),
                "call_p99_ms": pct(call, 99),
            }
            print(
                f"{name:<16}{row['images_per_s']:>9.2f}{'':>8}"
                f"{row['call_p50_ms']:>10.1f}{row['call_p99_ms']:>10.1f}"
            )
        table[name] = row
    print()
    best = max(
        (row["ratio"] for name, row in table.items() if name.startswith("miner")), default=0.0
    )
    added_c1 = table.get("miner c=1", {}).get("added_p50_ms", float("nan"))
    print(
        f"ratio miner/plain (best): {best:.3f}x (target >= 0.95x); "
        f"added latency p50 (c=1): {added_c1:.2f} ms (target <= 20 ms)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "fingerprint": fp,
                    "platform": platform.platform(),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "same_bytes": same_bytes,
                    "load_s": load_s,
                    "results": table,
                },
                indent=2,
            )
        )
    solver.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
