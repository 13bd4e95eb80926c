"""`cuckoo-devnet`: the whole network on one machine, with dev keys, and a demo.

Starts a dev node; funds and registers a coordinator (staker //Alice) and a miner (staker //Bob),
each with its own operator (hot) key; adds a voter (//Charlie votes for //Bob's miner); starts
the coordinator and a miner on the tiny diffusers model; waits until all are healthy; sends a
demo prompt; writes the PNG; prints its receipt with the on-chain trail (the blocks of the
commitment, the result and the settlement); then runs until Ctrl-C (`--once` exits after the demo).

It uses only public interfaces: the three daemons' command lines, their HTTP APIs, and
substrate-interface for the chain, as an operator on one machine would.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CAI = 10**18
COORDINATOR_OPERATOR = "//Alice//coordinator-operator"
MINER_OPERATOR = "//Bob//miner-operator"


class DevnetError(Exception):
    """A step of the devnet failed; the message says which and where its log is."""


@dataclass
class Proc:
    name: str
    cmd: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        out.close()

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise DevnetError(
                f"{self.name} exited with status {self.popen.returncode}; "
                f"last lines of {self.log}:\n{tail(self.log)}"
            )

    def stop(self, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def wait_until(what: str, check: Any, procs: list[Proc], deadline_s: float) -> Any:
    end = time.monotonic() + deadline_s
    last_error = ""
    while time.monotonic() < end:
        for p in procs:
            p.check_alive()
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError) as exc:
            last_error = str(exc)
        time.sleep(0.3)
    raise DevnetError(f"timed out after {deadline_s:.0f} s waiting for {what} {last_error}")


def step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def write_secret(path: Path, suri: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(suri + "\n")
    os.chmod(path, 0o600)
    return path


def submit(si: Any, keypair: Any, pallet: str, call: str, args: dict[str, Any]) -> Any:
    """Sign, submit and wait for inclusion; raise with the named error on failure."""
    extrinsic = si.create_signed_extrinsic(
        call=si.compose_call(pallet, call, args), keypair=keypair
    )
    receipt = si.submit_extrinsic(extrinsic, wait_for_inclusion=True)
    if not receipt.is_success:
        raise DevnetError(
            f"{pallet}.{call} by {keypair.ss58_address} failed: {receipt.error_message}"
        )
    return receipt


def setup_chain(ws_url: str, coordinator_url: str) -> dict[str, str]:
    from substrateinterface import Keypair, SubstrateInterface

    si = SubstrateInterface(url=ws_url)
    alice, bob, charlie = (Keypair.create_from_uri(u) for u in ("//Alice", "//Bob", "//Charlie"))
    coord_op = Keypair.create_from_uri(COORDINATOR_OPERATOR)
    miner_op = Keypair.create_from_uri(MINER_OPERATOR)
    step("funding the operator keys (fees for commitments and results)")
    for op in (coord_op, miner_op):
        submit(
            si,
            alice,
            "Balances",
            "transfer_keep_alive",
            {"dest": op.ss58_address, "value": 1_000 * CAI},
        )
    step("//Alice bonds 2,100,000 CAI and registers a coordinator at " + coordinator_url)
    submit(si, alice, "Staking", "bond", {"value": 2_100_000 * CAI})
    info = {
        "name": "0x" + b"devnet coordinator".hex(),
        "description": "0x",
        "url": "0x" + coordinator_url.encode().hex(),
        "gpu_model": "0x",
    }
    submit(
        si,
        alice,
        "Registry",
        "register_coordinator",
        {"operator": coord_op.ss58_address, "info": info},
    )
    step("//Bob bonds 30,000 CAI and registers a miner")
    submit(si, bob, "Staking", "bond", {"value": 30_000 * CAI})
    info = {
        "name": "0x" + b"devnet miner".hex(),
        "description": "0x",
        "url": "0x",
        "gpu_model": "0x" + b"cpu (tiny model)".hex(),
    }
    submit(si, bob, "Registry", "register_miner", {"operator": miner_op.ss58_address, "info": info})
    step("//Charlie bonds 10,000 CAI and votes 5,000 CAI for //Bob's miner")
    submit(si, charlie, "Staking", "bond", {"value": 10_000 * CAI})
    submit(si, charlie, "Voting", "vote", {"target": bob.ss58_address, "value": 5_000 * CAI})
    miner = si.query("Registry", "Miners", [bob.ss58_address]).value
    print(
        f"    miner {bob.ss58_address}: status {miner['status']}, "
        f"weight {(miner['own_stake'] + miner['votes']) / CAI:,.0f} CAI"
    )
    si.close()
    return {"coordinator_staker": alice.ss58_address, "miner_staker": bob.ss58_address}


def trail(ws_url: str, task_id: str) -> dict[str, Any] | None:
    from substrateinterface import SubstrateInterface

    si = SubstrateInterface(url=ws_url)
    try:
        value = si.query("Tasks", "Tasks", [task_id]).value
        return dict(value) if value else None
    finally:
        si.close()


def demo(args: argparse.Namespace, coord_url: str, ws_url: str, procs: list[Proc]) -> None:
    body = {
        "prompt": args.prompt,
        "n": 1,
        "size": f"{args.size}x{args.size}",
        "response_format": "b64_json",
        "seed": args.seed,
        "steps": args.steps,
        "model": "tiny",
    }
    step(f"asking the coordinator for an image: {args.prompt!r}")
    started = time.monotonic()
    status, answer = http_json("POST", f"{coord_url}/v1/images/generations", body, timeout=180)
    if status != 200:
        raise DevnetError(f"POST /v1/images/generations answered {status}: {answer}")
    item = answer["data"][0]
    png = base64.b64decode(item["b64_json"])
    path = args.out.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    receipt = item["receipt"]
    print(f"    image ({len(png):,} bytes) in {time.monotonic() - started:.1f} s -> {path}")
    task_id = receipt["task_id"]

    def settled() -> dict[str, Any] | None:
        status, task = http_json("GET", f"{coord_url}/v1/tasks/{task_id}")
        rec = (task or {}).get("receipt") if status == 200 else None
        return rec if rec and rec.get("settle_block") not in (None, "pending") else None

    receipt = wait_until("the settlement on chain", settled, procs, 120) or receipt
    print("    receipt:")
    for key in ("task_id", "miner", "commit_block", "result_block", "settle_block", "verification"):
        print(f"      {key:<13} {receipt.get(key)}")
    on_chain = trail(ws_url, task_id)
    if on_chain is None:
        raise DevnetError(f"task {task_id} is not on chain")
    print("    on-chain trail (Tasks.Tasks):")
    for key in (
        "status",
        "committed_at",
        "submitted_at",
        "settled_at",
        "spec_hash",
        "result_hash",
        "device_hash",
    ):
        print(f"      {key:<13} {on_chain.get(key)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cuckoo-devnet", description=__doc__.split("\n\n")[0])
    p.add_argument("--once", action="store_true", help="exit after the demo")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="keep everything here (default: a temp dir)"
    )
    p.add_argument("--rpc-port", type=int, default=9944)
    p.add_argument("--coordinator-port", type=int, default=8080)
    p.add_argument("--block-time-ms", type=int, default=1000)
    p.add_argument("--prompt", default="a cuckoo bird sitting on a GPU, watercolor")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 8)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--out", type=Path, default=Path("cuckoo-demo.png"), help="where to write the image"
    )
    p.add_argument("--miner-solver", default="diffusers", help="diffusers (tiny model) or pattern")
    p.add_argument("--device", default="auto", help="miner device: auto, cuda or cpu")
    args = p.parse_args(argv)
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="cuckoo-devnet-"))
    base.mkdir(parents=True, exist_ok=True)
    rpc_port = free_port(args.rpc_port)
    coord_port = free_port(args.coordinator_port)
    ws_url, http_url = f"ws://127.0.0.1:{rpc_port}", f"http://127.0.0.1:{rpc_port}"
    coord_url = f"http://127.0.0.1:{coord_port}"
    keys = base / "keys"
    logs = base / "logs"
    node = Proc(
        "cuckoo-node",
        [
            "cuckoo-node",
            "--dev",
            "--base-path",
            str(base / "node"),
            "--rpc-port",
            str(rpc_port),
            "--block-time-ms",
            str(args.block_time_ms),
        ],
        logs / "node.log",
    )
    coordinator = Proc(
        "cuckoo-coordinator",
        [
            "cuckoo-coordinator",
            "--chain-url",
            ws_url,
            "--port",
            str(coord_port),
            "--data-dir",
            str(base / "coordinator"),
            "--operator-key-file",
            str(write_secret(keys / "coordinator.suri", COORDINATOR_OPERATOR)),
            "--models",
            "tiny",
            "--task-timeout-blocks",
            "120",
        ],
        logs / "coordinator.log",
    )
    miner_cmd = [
        "cuckoo-miner",
        "--chain-url",
        ws_url,
        "--coordinator",
        coord_url,
        "--data-dir",
        str(base / "miner"),
        "--operator-key-file",
        str(write_secret(keys / "miner.suri", MINER_OPERATOR)),
    ]
    if args.miner_solver == "diffusers":
        miner_cmd += ["--solver", "diffusers", "--model", "tiny", "--device", args.device]
    else:
        miner_cmd += ["--solver", args.miner_solver]
    miner = Proc("cuckoo-miner", miner_cmd, logs / "miner.log")
    procs = [node]
    print(f"cuckoo-devnet: data in {base}, logs in {logs}")
    try:
        step(f"starting the dev node (RPC {ws_url})")
        node.start()

        def node_ready() -> bool:
            status, out = http_json(
                "POST", http_url, {"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader"}
            )
            return status == 200 and int(out["result"]["number"], 16) >= 1

        wait_until("the node's first block", node_ready, procs, 60)
        setup_chain(ws_url, coord_url)
        step(f"starting the coordinator ({coord_url})")
        coordinator.start()
        procs.append(coordinator)

        def coordinator_ready() -> bool:
            status, _ = http_json("GET", f"{coord_url}/health")
            return status == 200

        wait_until("the coordinator's /health", coordinator_ready, procs, 60)
        step(
            "starting the miner ("
            + ("tiny diffusers model" if args.miner_solver == "diffusers" else args.miner_solver)
            + ")"
        )
        miner.start()
        procs.append(miner)

        def miner_live() -> bool:
            status, out = http_json("GET", f"{coord_url}/v1/miners")
            miners = (out or {}).get("data", []) if status == 200 else []
            return any(m.get("live") for m in miners)

        wait_until("the miner to poll the coordinator", miner_live, procs, 300)
        demo(args, coord_url, ws_url, procs)
        if args.once:
            step("done (--once)")
            return 0
        print(
            f"\nThe network keeps running: node {ws_url}, coordinator {coord_url} "
            f"(POST /v1/images/generations, GET /openapi.json). Ctrl-C stops it."
        )
        while True:
            for proc in procs:
                proc.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print()
        return 0
    except DevnetError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        step("stopping")
        for proc in reversed([miner, coordinator, node]):
            with contextlib.suppress(Exception):
                proc.stop()
        if args.data_dir is None and not os.environ.get("CUCKOO_DEVNET_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
