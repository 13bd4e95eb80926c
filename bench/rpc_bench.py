"""R1/R3 benchmark (shared/research/perf.md C2): trivial JSON-RPC vs a raw aiohttp GET, same server.

    python bench/rpc_bench.py [--duration 5] [--connections 32] [--threads 1]

The server runs in a child process pinned to CPU 0 (when `os.sched_setaffinity` exists); `wrk`
is pinned to CPU 1. Three runs against the one server: `system_health` over HTTP POST, a batch of
10 such calls, and GET /hello served by a bare aiohttp handler. Printed: req/s, p50, p99 and the
ratio JSON-RPC / raw GET (goal >= 0.8, floor >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEALTH = {"jsonrpc": "2.0", "method": "system_health", "params": [], "id": 1}
BATCH = [dict(HEALTH, id=i) for i in range(10)]


def _pin(cpu: int) -> bool:
    if not hasattr(os, "sched_setaffinity"):
        return False
    cpus = os.sched_getaffinity(0)
    if cpu not in cpus:
        return False
    os.sched_setaffinity(0, {cpu})
    return True


def _serve(port_out: Any, ready: Any) -> None:
    """Child process: the RPC server plus GET /hello on one aiohttp app."""
    from aiohttp import web

    from node.rpc.server import RpcServer

    _pin(0)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = RpcServer()
        server.method(
            "system_health",
            lambda params: {"peers": 0, "isSyncing": False, "shouldHavePeers": False},
        )

        async def hello(_request: web.Request) -> web.Response:
            return web.Response(text="hello")

        server.app().router.add_get("/hello", hello)
        port_out.value = await server.start("127.0.0.1", 0)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _lua(body: Any) -> str:
    payload = json.dumps(body, separators=(",", ":"))
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(payload)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _parse_wrk(out: str) -> dict[str, float]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(*p50.groups()),
        "p99_ms": _ms(*p99.groups()),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def _wrk(url: str, lua: str | None, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if lua is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(lua)
            cmd += ["-s", str(script)]
        cmd.append(url)
        pin = _pin_wrk_preexec()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, preexec_fn=pin).stdout
    return _parse_wrk(out)


def _pin_wrk_preexec() -> Any:
    if not hasattr(os, "sched_setaffinity") or 1 not in os.sched_getaffinity(0):
        return None
    return lambda: os.sched_setaffinity(0, {1})


def _check(port: int) -> None:
    """One real request of each kind, so a broken server is not benchmarked."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(HEALTH).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        answer = json.loads(resp.read())
    assert answer["result"]["peers"] == 0, answer
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=5) as resp:
        assert resp.read() == b"hello"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "wrk is not installed; this benchmark needs it (a Python load generator saturates\n"
            "before the server does). Install it with:\n"
            "    apt-get install -y wrk        # Debian/Ubuntu\n"
            "    brew install wrk              # macOS",
            file=sys.stderr,
        )
        return 2

    ctx = mp.get_context("spawn")
    port_out = ctx.Value("i", 0)
    ready = ctx.Event()
    child = ctx.Process(target=_serve, args=(port_out, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(30):
            print("server did not start", file=sys.stderr)
            return 1
        port = int(port_out.value)
        _check(port)
        time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        rpc = _wrk(f"{base}/", _lua(HEALTH), args)
        batch = _wrk(f"{base}/", _lua(BATCH), args)
        raw = _wrk(f"{base}/hello", None, args)
    finally:
        child.terminate()
        child.join(5)
        with contextlib.suppress(Exception):
            child.kill()

    pinned = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; "
        f"server pinned to CPU 0, wrk to CPU 1: {'yes' if pinned else 'no'}"
    )
    print(f"{'workload':<32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in (
        ("JSON-RPC system_health (POST)", rpc),
        ("JSON-RPC batch of 10 (POST)", batch),
        ("raw aiohttp GET /hello", raw),
    ):
        print(
            f"{name:<32} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['non_2xx']:>8.0f}"
        )
    print(f"batch calls/s: {batch['rps'] * len(BATCH):.0f}")
    print(f"ratio JSON-RPC / raw GET: {rpc['rps'] / raw['rps']:.2f} (goal >= 0.8, floor >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
