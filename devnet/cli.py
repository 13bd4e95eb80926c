"""`cuckoo-devnet`: the whole network on one machine, with dev keys, and a demo.

Starts a dev node (or, with `--validators N`, N validator nodes //Alice.. of the `local` chain,
connected to each other, and waits until they all see each other and finality advances); funds
and registers a coordinator (staker //Alice) and `--miners` miners (stakers //Bob, //Eve,
//Ferdie), each with its own operator (hot) key; adds a voter (//Charlie votes for //Bob's miner);
starts the coordinator and the miners on the tiny diffusers model against the first node; waits
until all are healthy; sends a demo prompt; writes the PNG; prints its receipt with the on-chain
trail (the blocks of the commitment, the result and the settlement, the check outcome: the
chain samples results for re-execution by the other miners, docs/verification.md; and what the
task paid: its price, escrowed by the coordinator's operator, and how it moved when the task
settled: to the miner, burned, to the checkers, refunded, docs/economics.md); then runs until
Ctrl-C (`--once` exits after the demo).

It uses only public interfaces: the daemons' command lines, their HTTP APIs, JSON-RPC, and the
daemons' chain client (`chainclient`, substrate-interface underneath) for the chain, as an
operator on one machine would.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
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
from typing import TYPE_CHECKING, Any

from chainclient.keyfile import write_key_file

if TYPE_CHECKING:
    from substrateinterface import Keypair

    from chainclient.connection import Connection

CAI = 10**18
COORDINATOR_OPERATOR = "//Alice//coordinator-operator"
MINER_OPERATOR = "//Bob//miner-operator"
MINER_STAKERS = ("Bob", "Eve", "Ferdie")  # not Dave: a validator of the `local` chain


def miner_operator(index: int) -> str:
    """The operator SURI of the index-th miner (//Bob's keeps its historical path)."""
    if index == 0:
        return MINER_OPERATOR
    return f"//{MINER_STAKERS[index]}//miner-operator"


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


def submit(
    conn: Connection, keypair: Keypair, pallet: str, call: str, args: dict[str, Any]
) -> None:
    """Sign, submit and wait for inclusion; raise with the named error on failure."""
    from chainclient import ClientError
    from chainclient.calls import Call

    who = f"{pallet}.{call} by {keypair.ss58_address}"
    try:
        included = conn.submit_and_wait(keypair, Call(pallet, call, args))
    except ClientError as exc:
        raise DevnetError(f"{who} was refused: {exc}") from exc
    if not included.is_success:
        raise DevnetError(f"{who} failed: {included.error} ({included.detail})")


def ensure_bonded(conn: Connection, keypair: Keypair, value: int) -> str:
    """Bond `value`, or top an existing bond up to it (the `local` chain's validators and, on
    `dev`, //Alice are bonded at genesis); says what it did."""
    ledger = conn.si.query("Staking", "Ledger", [keypair.ss58_address]).value
    if not ledger:
        submit(conn, keypair, "Staking", "bond", {"value": value})
        return f"bonded {value / CAI:,.0f} CAI"
    unallocated = int(ledger["active"]) - int(ledger.get("allocated", 0))
    if unallocated >= value:
        return f"already bonded {unallocated / CAI:,.0f} CAI"
    submit(conn, keypair, "Staking", "bond_extra", {"max_additional": value - unallocated})
    return f"bonded {(value - unallocated) / CAI:,.0f} CAI more (now {value / CAI:,.0f} CAI)"


def setup_chain(ws_url: str, coordinator_url: str, n_miners: int = 1) -> dict[str, str]:
    from substrateinterface import Keypair

    from chainclient.connection import Connection

    conn = Connection(ws_url, timeout_s=60.0)
    alice, bob, charlie = (Keypair.create_from_uri(u) for u in ("//Alice", "//Bob", "//Charlie"))
    coord_op = Keypair.create_from_uri(COORDINATOR_OPERATOR)
    miner_ops = [Keypair.create_from_uri(miner_operator(i)) for i in range(n_miners)]
    step("funding the operator keys (fees for commitments, results and checks)")
    for op in (coord_op, *miner_ops):
        submit(
            conn,
            alice,
            "Balances",
            "transfer_keep_alive",
            {"dest": op.ss58_address, "value": 1_000 * CAI},
        )
    step("//Alice bonds 2,100,000 CAI and registers a coordinator at " + coordinator_url)
    print(f"    //Alice: {ensure_bonded(conn, alice, 2_100_000 * CAI)}")
    info = {
        "name": "0x" + b"devnet coordinator".hex(),
        "description": "0x",
        "url": "0x" + coordinator_url.encode().hex(),
        "gpu_model": "0x",
    }
    submit(
        conn,
        alice,
        "Registry",
        "register_coordinator",
        {"operator": coord_op.ss58_address, "info": info},
    )
    for i, miner_op in enumerate(miner_ops):
        name = MINER_STAKERS[i]
        staker = Keypair.create_from_uri(f"//{name}")
        step(f"//{name} bonds 30,000 CAI and registers a miner")
        print(f"    //{name}: {ensure_bonded(conn, staker, 30_000 * CAI)}")
        info = {
            "name": "0x" + f"devnet miner {i + 1}".encode().hex(),
            "description": "0x",
            "url": "0x",
            "gpu_model": "0x" + b"cpu (tiny model)".hex(),
        }
        submit(
            conn,
            staker,
            "Registry",
            "register_miner",
            {"operator": miner_op.ss58_address, "info": info},
        )
    step("//Charlie bonds 10,000 CAI and votes 5,000 CAI for //Bob's miner")
    print(f"    //Charlie: {ensure_bonded(conn, charlie, 10_000 * CAI)}")
    submit(conn, charlie, "Voting", "vote", {"target": bob.ss58_address, "value": 5_000 * CAI})
    (miner,) = [m for m in conn.miners() if m.staker == bytes(bob.public_key)]
    print(
        f"    miner {bob.ss58_address}: status {miner.status}, weight {miner.weight / CAI:,.0f} CAI"
    )
    conn.close()
    return {"coordinator_staker": alice.ss58_address, "miner_staker": bob.ss58_address}


def trail(ws_url: str, task_id: str) -> dict[str, Any] | None:
    """The task's on-chain record (Tasks.Tasks), hashes as 0x-hex."""
    from chainclient.connection import Connection

    conn = Connection(ws_url, timeout_s=60.0)
    try:
        task = conn.tasks([bytes.fromhex(task_id.removeprefix("0x"))])
    finally:
        conn.close()
    found = next(iter(task.values()))
    if found is None:
        return None
    fields = dataclasses.asdict(found)
    return {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in fields.items()}


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
        return rec if rec and rec.get("to_miner") not in (None, "pending") else None

    receipt = wait_until("the settlement on chain (and its check, if drawn)", settled, procs, 300)
    print("    receipt:")
    for key in ("task_id", "miner", "commit_block", "result_block", "settle_block", "verification"):
        print(f"      {key:<13} {receipt.get(key)}")
    print("    paid (the receipt's amounts, in CAI):")
    for line in payment_lines(receipt):
        print(f"      {line}")
    on_chain = trail(ws_url, task_id)
    if on_chain is None:  # settled more than Tasks.RetentionBlocks ago: pruned from state
        print("    on-chain trail: pruned from Tasks.Tasks (its events keep the history)")
        return
    print("    on-chain trail (Tasks.Tasks):")
    for key in (
        "status",
        "committed_at",
        "submitted_at",
        "settled_at",
        "spec_hash",
        "commitment",
        "outcome",
        "price",
        "payer",
        "deposit",
    ):
        print(f"      {key:<13} {on_chain.get(key)}")


def payment_lines(receipt: dict[str, Any]) -> list[str]:
    """The receipt's price and how it moved, one line each, in CAI."""
    from chainclient.amounts import format_cai

    def cai(key: str) -> str:
        value = str(receipt.get(key))
        return f"{format_cai(int(value))} CAI" if value.isdigit() else value

    labels = {
        "price": "escrowed by the coordinator's operator",
        "to_miner": "to the miner's staker",
        "burned": "burned",
        "to_checkers": "to the checkers that were right",
        "refunded": "back to the coordinator",
    }
    return [f"{key:<13} {cai(key):<12} {label}" for key, label in labels.items()]


# ---- the validator network (--validators N) -------------------------------------------------

VALIDATOR_NAMES = ("alice", "bob", "charlie", "dave")
NODE_KEY_DOMAIN = b"cuckoo-devnet-node:"
P2P_PORT = 30333
PROMETHEUS_PORT = 9615


@dataclass(frozen=True)
class ValidatorNode:
    """One validator of the devnet: its dev account, p2p identity and ports."""

    name: str
    node_key: bytes
    peer_id: str
    p2p_port: int
    rpc_port: int
    prometheus_port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.rpc_port}"

    def multiaddr(self, host: str = "127.0.0.1") -> str:
        return f"/ip4/{host}/tcp/{self.p2p_port}/ws/p2p/{self.peer_id}"


def devnet_node_key(name: str) -> bytes:
    """The fixed p2p key (ed25519 seed) of a devnet node, so its peer id is known in advance."""
    from chain.hashing import blake2_256

    return blake2_256(NODE_KEY_DOMAIN + name.encode())


def peer_id_of(node_key: bytes) -> str:
    from chain.crypto import ed25519_public_from_seed
    from node.network import peer_id_from_public

    return str(peer_id_from_public(ed25519_public_from_seed(node_key)))


def allocate_port(preferred: int, taken: set[int]) -> int:
    """`preferred` if free (and not already handed out), else a free ephemeral port."""
    port = preferred if preferred not in taken else 0
    while True:
        port = free_port(port) if port else free_port(0)
        if port not in taken:
            taken.add(port)
            return port
        port = 0


def plan_validators(
    count: int, p2p_port: int, rpc_port: int, prometheus_port: int
) -> list[ValidatorNode]:
    taken: set[int] = set()
    nodes = []
    for i, name in enumerate(VALIDATOR_NAMES[:count]):
        key = devnet_node_key(name)
        nodes.append(
            ValidatorNode(
                name=name,
                node_key=key,
                peer_id=peer_id_of(key),
                p2p_port=allocate_port(p2p_port + i, taken),
                rpc_port=allocate_port(rpc_port + i, taken),
                prometheus_port=allocate_port(prometheus_port + i, taken),
            )
        )
    return nodes


def write_chain_spec(base: Path, count: int) -> str:
    """`local` for four validators; for fewer, a copy of it whose genesis keeps only the first
    `count` validators (their stake and session keys), so that finality needs only them."""
    if count == len(VALIDATOR_NAMES):
        return "local"
    from genesis.builder import load_spec

    spec = json.loads(json.dumps(load_spec("local").raw))
    config = spec["genesis"]["runtimeGenesis"]["config"]
    config["staking"]["stakers"] = config["staking"]["stakers"][:count]
    config["session"]["keys"] = config["session"]["keys"][:count]
    spec["id"] = f"cuckoo_local_{count}v"
    spec["name"] = f"Cuckoo Local Testnet ({count} validators)"
    path = base / f"local-{count}v.json"
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return str(path)


def validator_proc(
    v: ValidatorNode, chain: str, base: Path, boot: ValidatorNode | None, block_time_ms: int | None
) -> Proc:
    key_file = base / "keys" / f"{v.name}.node-key"
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(v.node_key)
    cmd = [
        "cuckoo-node",
        "--chain",
        chain,
        "--base-path",
        str(base / "nodes" / v.name),
        f"--{v.name}",
        "--name",
        v.name,
        "--listen-addr",
        f"/ip4/127.0.0.1/tcp/{v.p2p_port}/ws",
        "--node-key-file",
        str(key_file),
        "--rpc-port",
        str(v.rpc_port),
        "--prometheus-port",
        str(v.prometheus_port),
    ]
    if boot is not None:
        cmd += ["--bootnodes", boot.multiaddr()]
    if block_time_ms is not None:
        cmd += ["--block-time-ms", str(block_time_ms)]
    return Proc(f"cuckoo-node ({v.name})", cmd, base / "logs" / f"node-{v.name}.log")


def rpc_call(url: str, method: str, params: list[Any] | None = None) -> Any:
    status, out = http_json(
        "POST", url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    )
    if status != 200 or not isinstance(out, dict) or "result" not in out:
        raise ValueError(f"{method} at {url}: {status} {out}")
    return out["result"]


def head_numbers(url: str) -> tuple[int, int]:
    """(best, finalized) block numbers of a node."""
    best = int(rpc_call(url, "chain_getHeader")["number"], 16)
    final_hash = rpc_call(url, "chain_getFinalizedHead")
    final = int(rpc_call(url, "chain_getHeader", [final_hash])["number"], 16)
    return best, final


def wait_for_validators(nodes: list[ValidatorNode], procs: list[Proc]) -> None:
    want = len(nodes) - 1

    def all_peered() -> bool:
        return all(int(rpc_call(v.http_url, "system_health")["peers"]) >= want for v in nodes)

    wait_until(f"every node to see {want} peer(s)", all_peered, procs, 90)
    start = {v.name: head_numbers(v.http_url)[1] for v in nodes}

    def finality_advanced() -> bool:
        return all(head_numbers(v.http_url)[1] >= max(start[v.name] + 1, 2) for v in nodes)

    wait_until("finality to advance on every node", finality_advanced, procs, 180)
    for v in nodes:
        best, final = head_numbers(v.http_url)
        peers = int(rpc_call(v.http_url, "system_health")["peers"])
        print(
            f"    {v.name:<8} {v.peer_id}  {v.ws_url}  best #{best}  finalized #{final}  "
            f"peers {peers}  p2p {v.p2p_port}"
        )


def print_machines_recipe(nodes: list[ValidatorNode], chain: str) -> None:
    """The same validators on separate machines: what to run on each."""
    chain_arg = "local" if chain == "local" else "spec.json"
    boot = nodes[0]
    print(
        f"\nThe same {len(nodes)} validators on {len(nodes)} machines (ALICE_IP: the first "
        f"machine's address; TCP {P2P_PORT} open between them; RPC stays on 127.0.0.1):"
    )
    if chain != "local":
        print(f"  (copy {chain} to each machine as spec.json)")
    for i, v in enumerate(nodes):
        cmd = (
            f"cuckoo-node --chain {chain_arg} --base-path /var/lib/cuckoo --{v.name} "
            f"--name {v.name} --port {P2P_PORT} --node-key-file /var/lib/cuckoo/node-key"
        )
        if i:
            cmd += f" --bootnodes /ip4/ALICE_IP/tcp/{P2P_PORT}/ws/p2p/{boot.peer_id}"
        print(f"  machine {i + 1}: {cmd}")
    print(
        f"  Peer id {boot.peer_id} is that of keys/{boot.name}.node-key here: copy it to "
        "machine 1 to keep it (elsewhere a missing key file is created; RPC system_localPeerId "
        "tells a node's peer id).\n  The --alice.. flags use the well-known dev keys: a real "
        "network inserts its own (README, section Validator network)."
    )


def stop_all(procs: list[Proc], timeout: float = 20) -> None:
    """SIGTERM everything at once, then wait for each (SIGKILL after `timeout`)."""
    for proc in procs:
        if proc.popen is not None and proc.popen.poll() is None:
            with contextlib.suppress(OSError):
                proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout)


def portal_status(portal: Proc, url: str, timeout_s: float = 300) -> str:
    """Wait for the staking portal (its first start builds the bundle with npm) and print its
    URL; the devnet goes on without it when it cannot start. The text for the final line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if portal.popen is None or portal.popen.poll() is not None:
            step(
                f"the staking portal did not start; last lines of {portal.log}:\n{tail(portal.log)}"
            )
            return ""
        try:
            status, _ = http_json("GET", f"{url}config.json", timeout=2)
        except (urllib.error.URLError, OSError):
            status = 0  # not listening yet (building)
        if status == 200:
            step(f"staking portal: {url} (faucet, stake, vote, register, tasks)")
            return f", staking portal {url}"
        time.sleep(0.5)
    step(f"the staking portal was not ready in {timeout_s:.0f} s (log {portal.log})")
    return ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cuckoo-devnet", description=__doc__.split("\n\n")[0])
    p.add_argument("--once", action="store_true", help="exit after the demo")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="keep everything here (default: a temp dir)"
    )
    p.add_argument(
        "--validators",
        type=int,
        choices=range(1, len(VALIDATOR_NAMES) + 1),
        default=1,
        metavar="N",
        help="1: a --dev node (default); 2-4: N validators //Alice.. of the local chain",
    )
    p.add_argument(
        "--rpc-port", type=int, default=9944, help="RPC port of the first node (next ones follow)"
    )
    p.add_argument(
        "--p2p-port",
        type=int,
        default=P2P_PORT,
        help="p2p port of the first validator (next ones follow; --validators 2-4)",
    )
    p.add_argument(
        "--prometheus-port",
        type=int,
        default=PROMETHEUS_PORT,
        help="Prometheus port of the first validator (next ones follow; --validators 2-4)",
    )
    p.add_argument("--coordinator-port", type=int, default=8080)
    p.add_argument(
        "--block-time-ms",
        type=int,
        default=None,
        help="slot duration (default: 1000 for --dev, the spec's 2000 with --validators)",
    )
    p.add_argument("--prompt", default="a cuckoo bird sitting on a GPU, watercolor")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 8)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--out", type=Path, default=Path("cuckoo-demo.png"), help="where to write the image"
    )
    p.add_argument("--miner-solver", default="diffusers", help="diffusers (tiny model) or pattern")
    p.add_argument(
        "--miners",
        type=int,
        default=2,
        choices=range(1, len(MINER_STAKERS) + 1),
        help="miners to run (checked results are re-run by another miner; default 2)",
    )
    p.add_argument("--device", default="auto", help="miner device: auto, cuda or cpu")
    p.add_argument(
        "--price",
        default="0.1",
        metavar="CAI",
        help="what a task pays its miner (the coordinator's --price; chain minimum 0.01)",
    )
    p.add_argument(
        "--portal-port",
        type=int,
        default=8090,
        help="the staking portal's HTTP port (cuckoo-portal; a port in use is replaced)",
    )
    p.add_argument("--no-portal", action="store_true", help="do not serve the staking portal")
    args = p.parse_args(argv)
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="cuckoo-devnet-"))
    base.mkdir(parents=True, exist_ok=True)
    keys = base / "keys"
    logs = base / "logs"
    chain = "dev"
    validators: list[ValidatorNode] = []
    nodes: list[Proc] = []
    if args.validators == 1:
        rpc_port = free_port(args.rpc_port)
        nodes.append(
            Proc(
                "cuckoo-node",
                [
                    "cuckoo-node",
                    "--dev",
                    "--base-path",
                    str(base / "node"),
                    "--rpc-port",
                    str(rpc_port),
                    "--block-time-ms",
                    str(args.block_time_ms or 1000),
                ],
                logs / "node.log",
            )
        )
    else:
        validators = plan_validators(
            args.validators, args.p2p_port, args.rpc_port, args.prometheus_port
        )
        rpc_port = validators[0].rpc_port
        chain = write_chain_spec(base, args.validators)
        for i, v in enumerate(validators):
            boot = validators[0] if i else None
            nodes.append(validator_proc(v, chain, base, boot, args.block_time_ms))
    coord_port = free_port(args.coordinator_port)
    ws_url, http_url = f"ws://127.0.0.1:{rpc_port}", f"http://127.0.0.1:{rpc_port}"
    coord_url = f"http://127.0.0.1:{coord_port}"
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
            str(write_key_file(keys / "coordinator.suri", COORDINATOR_OPERATOR)),
            "--models",
            "tiny",
            "--task-timeout-blocks",
            "120",
            "--price",
            args.price,
        ],
        logs / "coordinator.log",
    )
    miners: list[Proc] = []
    for i in range(args.miners):
        suffix = "" if i == 0 else f"-{i + 1}"
        miner_cmd = [
            "cuckoo-miner",
            "--chain-url",
            ws_url,
            "--coordinator",
            coord_url,
            "--data-dir",
            str(base / f"miner{suffix}"),
            "--operator-key-file",
            str(write_key_file(keys / f"miner{suffix}.suri", miner_operator(i))),
        ]
        if args.miner_solver == "diffusers":
            miner_cmd += ["--solver", "diffusers", "--model", "tiny", "--device", args.device]
        else:
            miner_cmd += ["--solver", args.miner_solver]
        miners.append(Proc("cuckoo-miner", miner_cmd, logs / f"miner{suffix}.log"))
    portal_port = free_port(args.portal_port)
    portal_url = f"http://127.0.0.1:{portal_port}/"
    portal = Proc(
        "cuckoo-portal",
        ["cuckoo-portal", "--node", ws_url, "--port", str(portal_port)],
        logs / "portal.log",
    )
    procs: list[Proc] = []
    print(f"cuckoo-devnet: data in {base}, logs in {logs}")
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops everything, as Ctrl-C does
    try:
        if validators:
            step(
                f"starting {len(validators)} validators of the {chain} chain "
                f"(//{', //'.join(v.name.capitalize() for v in validators)}); "
                f"bootnode {validators[0].multiaddr()}"
            )
            for proc in nodes:
                proc.start()
                procs.append(proc)
            wait_for_validators(validators, procs)
            print_machines_recipe(validators, chain)
            step(f"the coordinator and the miner use //Alice's node ({ws_url})")
        else:
            step(f"starting the dev node (RPC {ws_url})")
            nodes[0].start()
            procs.append(nodes[0])

            def node_ready() -> bool:
                status, out = http_json(
                    "POST", http_url, {"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader"}
                )
                return status == 200 and int(out["result"]["number"], 16) >= 1

            wait_until("the node's first block", node_ready, procs, 60)
        if not args.no_portal:
            # builds its bundle (npm) while the chain is set up; not fatal if it cannot
            portal.start()
        setup_chain(ws_url, coord_url, args.miners)
        step(f"starting the coordinator ({coord_url})")
        coordinator.start()
        procs.append(coordinator)

        def coordinator_ready() -> bool:
            status, _ = http_json("GET", f"{coord_url}/health")
            return status == 200

        wait_until("the coordinator's /health", coordinator_ready, procs, 60)
        step(
            f"starting {len(miners)} miner(s) ("
            + ("tiny diffusers model" if args.miner_solver == "diffusers" else args.miner_solver)
            + ")"
        )
        for miner in miners:
            miner.start()
            procs.append(miner)

        def miners_live() -> bool:
            status, out = http_json("GET", f"{coord_url}/v1/miners")
            listed = (out or {}).get("data", []) if status == 200 else []
            return sum(1 for m in listed if m.get("live")) >= len(miners)

        wait_until("the miners to poll the coordinator", miners_live, procs, 300)
        demo(args, coord_url, ws_url, procs)
        portal_line = "" if args.no_portal else portal_status(portal, portal_url)
        if validators:
            step("the validators after the demo")
            for v in validators:
                best, final = head_numbers(v.http_url)
                print(f"    {v.name:<8} best #{best}  finalized #{final}")
        if args.once:
            step("done (--once)")
            return 0
        where = (
            f"validators {', '.join(v.ws_url for v in validators)}"
            if validators
            else f"node {ws_url}"
        )
        print(
            f"\nThe network keeps running: {where}, coordinator {coord_url} "
            f"(POST /v1/images/generations, GET /openapi.json){portal_line}. Ctrl-C stops it."
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
        for proc in (*miners, coordinator, portal):
            with contextlib.suppress(Exception):
                proc.stop()
        stop_all(nodes)
        if args.data_dir is None and not os.environ.get("CUCKOO_DEVNET_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
