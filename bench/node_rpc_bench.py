"""Node RPC benchmark: `state_getStorage(System.Account(//Alice))` on a real dev node under wrk.

    python bench/node_rpc_bench.py [--duration 5] [--connections 32]

In one run: a real `cuckoo-node --dev` (its RPC server pinned to CPU 0) answers
`state_getStorage` for //Alice's System.Account key over HTTP POST, and then a trivial aiohttp
handler (same event loop implementation, also pinned to CPU 0, in its own process) answers the
same POST request (same body and headers, body read) with the bytes the node answered. `wrk`
(pinned to CPU 1) drives both with the same connections and duration. Printed: req/s, p50, p99,
the server process's CPU time per request (user + system, from /proc: on a CPU that other jobs
share it moves less than req/s does), and the ratio node / trivial handler in req/s (target
>= 0.8). Needs `wrk` (apt-get install -y wrk).

The node is measured once it has authored block #2: its one-off startup work (computing the
randomness onion, in a thread that holds the GIL for about a second) is then done. The window
is printed as the blocks it covered; the dev chain's session change (every 10 blocks) starts BLS
signing and verification on the same CPU, and a window that covers one measures that too.
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
import sys
from aiohttp import web
ANSWER = bytes.fromhex(sys.argv[2])
async def answer(request):
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")
app = web.Application()
app.router.add_post("/", answer)
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


def wait_http(url: str, body: bytes | None, deadline_s: float = 30) -> bytes:
    """POST `body` to `url` until it answers 200; returns the answer."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return bytes(resp.read())
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def best_number(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader"}).encode()
    return int(json.loads(wait_http(url, body))["result"]["number"], 16)


def wait_block(url: str, number: int, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while best_number(url) < number:
        if time.monotonic() > end:
            raise SystemExit(f"the node did not author block #{number}")
        time.sleep(0.1)


def pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(pid, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, script: str | None, connections: int, duration: int, server_pid: int
) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    prefix = ["taskset", "-c", "1"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run([*prefix, *cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server_pid) - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "cpu_us": cpu / max(done, 1) * 1e6}


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
        node_url = f"http://127.0.0.1:{node_port}/"
        answer = wait_http(node_url, body.encode())
        wait_block(node_url, 2)
        first = best_number(node_url)
        results["node state_getStorage"] = run_wrk(
            node_url, str(lua), args.connections, args.duration, node.pid
        )
        blocks = f"#{first}..#{best_number(node_url)}"
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=20)
    trivial_port = free_port()
    trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL, str(trivial_port), answer.hex()])
    try:
        pin(trivial.pid, 0)
        wait_http(f"http://127.0.0.1:{trivial_port}/", body.encode())
        results["aiohttp trivial POST"] = run_wrk(
            f"http://127.0.0.1:{trivial_port}/",
            str(lua),
            args.connections,
            args.duration,
            trivial.pid,
        )
    finally:
        trivial.terminate()
        trivial.wait(timeout=10)
    print(
        f"node_rpc_bench: wrk -c{args.connections} -d{args.duration}s, server CPU 0, wrk CPU 1; "
        f"node window: blocks {blocks}"
    )
    print(f"  {'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU us/req':>12}")
    for name, r in results.items():
        print(
            f"  {name:<24}{r['rps']:>10,.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['cpu_us']:>12.1f}"
        )
    node_r, trivial_r = results["node state_getStorage"], results["aiohttp trivial POST"]
    cpu_ratio = trivial_r["cpu_us"] / node_r["cpu_us"]
    print(f"CPU per request, trivial/node: {cpu_ratio:.2f} (steadier than req/s on a shared CPU)")
    ratio = node_r["rps"] / trivial_r["rps"]
    print(f"ratio node/trivial: {ratio:.2f} (target >= 0.8)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
