"""Node RPC benchmark: `state_getStorage(System.Account(//Alice))` on a real dev node under wrk.

    python bench/node_rpc_bench.py [--duration 5] [--connections 32]

In one run: a real `cuckoo-node --dev` (its RPC server pinned to CPU 0) answers
`state_getStorage` for //Alice's System.Account key, and then a trivial aiohttp handler (same
event loop implementation, also pinned to CPU 0, in its own process) answers GET /hello. `wrk`
(pinned to CPU 1) drives both with the same connections and duration. Printed: req/s, p50, p99
and the ratio node / trivial handler (target >= 0.6). Needs `wrk` (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALICE_ACCOUNT_KEY = (
    "0x26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
    "de1e86a9a8c739864cf3cc5ec2bea59fd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
)
TRIVIAL = """
import asyncio, sys
from aiohttp import web
async def hello(request):
    return web.Response(text="hello")
app = web.Application()
app.router.add_get("/hello", hello)
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, body: bytes | None, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


def run_wrk(url: str, script: str | None, connections: int, duration: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    prefix = ["taskset", "-c", "1"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    out = subprocess.run([*prefix, *cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return {"rps": rps, "p50": pct("50"), "p99": pct("99")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="rpcbench-"))
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "state_getStorage", "params": [ALICE_ACCOUNT_KEY]}
    )
    lua = tmp / "post.lua"
    lua.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    results = {}
    node_port = free_port()
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "--dev",
            "--tmp",
            "--rpc-port",
            str(node_port),
            "--no-prometheus",
            "--log",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        pin(node.pid, 0)
        wait_http(f"http://127.0.0.1:{node_port}/", body.encode())
        results["node state_getStorage"] = run_wrk(
            f"http://127.0.0.1:{node_port}/", str(lua), args.connections, args.duration
        )
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=20)
    trivial_port = free_port()
    trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL, str(trivial_port)])
    try:
        pin(trivial.pid, 0)
        wait_http(f"http://127.0.0.1:{trivial_port}/hello", None)
        results["aiohttp GET /hello"] = run_wrk(
            f"http://127.0.0.1:{trivial_port}/hello", None, args.connections, args.duration
        )
    finally:
        trivial.terminate()
        trivial.wait(timeout=10)
    print(f"node_rpc_bench: wrk -c{args.connections} -d{args.duration}s, server CPU 0, wrk CPU 1")
    print(f"  {'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in results.items():
        print(f"  {name:<24}{r['rps']:>10,.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}")
    ratio = results["node state_getStorage"]["rps"] / results["aiohttp GET /hello"]["rps"]
    print(f"ratio node/trivial: {ratio:.2f} (target >= 0.6)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
