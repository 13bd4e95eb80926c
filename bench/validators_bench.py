"""Validator-network benchmark: finality lag of four validators, and the sync speed of a new node.

    python bench/validators_bench.py [--quick] [--minutes 3] [--sync-blocks 1000]
                                     [--sync-slot-ms 250] [--txs-per-block 20] [--only lag|sync]

(a) Finality lag. Four `cuckoo-node` validators (//Alice..//Dave) of the `local` chain as it
    ships (2 s slots, 10-block sessions, BLS proof every session) on loopback, each its own
    process. For `--minutes` (default 3; `--quick`: 1) every node is sampled every 0.5 s for
    `best - finalized` (blocks); on //Alice's node a WebSocket subscribes to new heads and to
    finalized heads, and a block's time to finality is the time from its new-head notification
    to the first finalized-head notification at or above its number.

(b) Sync speed. The same four validators on a copy of `local` with short slots (`--sync-slot-ms`,
    default 250) and 100-block sessions (so that the BLS signing of each session, ~0.4 s per
    signature plus the pairings, does not swamp two cores), fed by a load generator that submits
    `--txs-per-block` pre-signed `Balances.transfer_keep_alive` per block, until the chain is
    `--sync-blocks` long. Blocks are authored and finalized live by the four validators with
    their BFT gadget, so the chain carries real justifications and the Aura seals of four
    authorities. The validators are then stopped; //Alice's node restarts on its database as a
    plain full node (it serves the chain and authors nothing), and a fresh full node with //Alice
    as its only bootnode is timed from its RPC answering until its best block is the source's
    head and its finalized block the source's finalized block. Printed: blocks/s and
    transfers/s of that sync, and the counts.

Everything runs on this machine (printed: CPU count); all processes share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import sr25519

from chain.crypto import SignatureScheme, ed25519_public_from_seed
from chain.hashing import blake2_128_concat, blake2_256, storage_prefix
from chain.primitives import Era, encode_signed_extrinsic, signing_payload

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("alice", "bob", "charlie", "dave")
SAMPLE_S = 0.5
RPC_TIMEOUT_S = 10.0
FUNDING = 10**21  # 1,000 CAI per load account
TRANSFER = 10**15  # the existential deposit: senders never run dry


# ---- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_argv() -> list[str]:
    script = Path(sys.executable).parent / "cuckoo-node"
    return [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "node.cli"]


def node_key(name: str) -> bytes:
    return blake2_256(b"cuckoo-bench-node:" + name.encode())


def peer_id(name: str) -> str:
    from node.network import peer_id_from_public

    return str(peer_id_from_public(ed25519_public_from_seed(node_key(name))))


@dataclass
class NodeProc:
    name: str
    base: Path
    chain: str
    validator: bool
    p2p: int = field(default_factory=free_port)
    rpc: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.rpc}"

    def multiaddr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p}/ws/p2p/{peer_id(self.name)}"

    def start(self, bootnodes: list[str]) -> None:
        args = [
            *node_argv(),
            "--chain",
            self.chain,
            "--base-path",
            str(self.base / self.name),
            "--name",
            self.name,
            "--listen-addr",
            f"/ip4/127.0.0.1/tcp/{self.p2p}/ws",
            "--rpc-port",
            str(self.rpc),
            "--no-prometheus",
            "--node-key",
            node_key(self.name).hex(),
        ]
        if self.validator:
            args.append(f"--{self.name}")
        if bootnodes:
            args += ["--bootnodes", *bootnodes]
        log = (self.base / f"{self.name}.log").open("ab")
        log.write(f"==== {' '.join(args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.base / f"{self.name}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop_all(nodes: list[NodeProc]) -> None:
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
    for n in nodes:
        n.stop()


def start_validators(base: Path, chain: str) -> list[NodeProc]:
    nodes = [NodeProc(name, base, chain, validator=True) for name in NAMES]
    for i, n in enumerate(nodes):
        n.start([] if i == 0 else [nodes[0].multiaddr()])
    return nodes


# ---- JSON-RPC ----------------------------------------------------------------------------------


class Rpc:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._id = 0

    async def call(self, url: str, method: str, params: list[Any] | None = None) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or []}
        async with asyncio.timeout(RPC_TIMEOUT_S):
            async with self.session.post(url, json=body) as resp:
                out = await resp.json(content_type=None)
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        return out["result"]

    async def batch(self, url: str, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        async with asyncio.timeout(RPC_TIMEOUT_S):
            async with self.session.post(url, json=body) as resp:
                out: list[dict[str, Any]] = await resp.json(content_type=None)
        return out

    async def heads(self, url: str) -> tuple[int, int]:
        """(best, finalized) block numbers."""
        best = int((await self.call(url, "chain_getHeader"))["number"], 16)
        fin_hash = await self.call(url, "chain_getFinalizedHead")
        fin = int((await self.call(url, "chain_getHeader", [fin_hash]))["number"], 16)
        return best, fin


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[bool]],
    nodes: list[NodeProc],
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for n in nodes:
            n.check_alive()
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, aiohttp.ClientError):
            if await probe():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.3)


async def wait_network(rpc: Rpc, nodes: list[NodeProc], timeout_s: float = 120) -> None:
    async def peered() -> bool:
        for n in nodes:
            health = await rpc.call(n.url, "system_health")
            if int(health["peers"]) < len(nodes) - 1:
                return False
        return True

    async def finalizing() -> bool:
        for n in nodes:
            if (await rpc.heads(n.url))[1] < 1:
                return False
        return True

    await wait_for("the validators to connect", peered, nodes, timeout_s)
    await wait_for("finality to start", finalizing, nodes, timeout_s)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# ---- (a) finality lag --------------------------------------------------------------------------


@dataclass
class LagResult:
    samples: list[int]
    per_node_max: dict[str, int]
    to_finality_s: list[float]
    blocks: int
    finalized: int


async def watch_heads(
    ws_url: str, session: aiohttp.ClientSession, stop: asyncio.Event
) -> tuple[dict[int, float], list[tuple[int, float]]]:
    """New-head arrival time per block number, and (number, time) of every finalized head."""
    imported: dict[int, float] = {}
    finalized: list[tuple[int, float]] = []
    async with session.ws_connect(ws_url, max_msg_size=16 * 2**20) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads"})
        await ws.send_json(
            {"jsonrpc": "2.0", "id": 2, "method": "chain_subscribeFinalizedHeads", "params": []}
        )
        subs: dict[str, str] = {}
        while not stop.is_set():
            try:
                async with asyncio.timeout(1.0):
                    msg = await ws.receive()
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.monotonic()
            data = json.loads(msg.data)
            if "id" in data and "result" in data:
                subs[str(data["result"])] = "new" if data["id"] == 1 else "final"
                continue
            params = data.get("params") or {}
            kind = subs.get(str(params.get("subscription")))
            number = int(params["result"]["number"], 16) if "result" in params else -1
            if kind == "new":
                imported.setdefault(number, now)
            elif kind == "final":
                finalized.append((number, now))
    return imported, finalized


async def bench_lag(base: Path, minutes: float) -> LagResult:
    nodes = start_validators(base, "local")
    try:
        async with aiohttp.ClientSession() as session:
            rpc = Rpc(session)
            await wait_network(rpc, nodes)
            print(f"  (a) four validators up; sampling for {minutes:g} min", flush=True)
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_heads(nodes[0].ws, session, stop))
            samples: list[int] = []
            per_node: dict[str, int] = {n.name: 0 for n in nodes}
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end:
                tick = time.monotonic()
                for n in nodes:
                    n.check_alive()
                    best, fin = await rpc.heads(n.url)
                    samples.append(best - fin)
                    per_node[n.name] = max(per_node[n.name], best - fin)
                await asyncio.sleep(max(0.0, SAMPLE_S - (time.monotonic() - tick)))
            stop.set()
            imported, finalized = await watcher
    finally:
        stop_all(nodes)
    to_final: list[float] = []
    for number, seen in imported.items():
        when = next((t for n, t in finalized if n >= number and t >= seen), None)
        if when is not None and number > 0:
            to_final.append(when - seen)
    return LagResult(
        samples,
        per_node,
        to_final,
        len(imported),
        max((n for n, _ in finalized), default=0),
    )


# ---- (b) sync speed ----------------------------------------------------------------------------


def write_sync_spec(path: Path, slot_ms: int, session_length: int) -> Path:
    from genesis.builder import load_spec

    spec = json.loads(json.dumps(load_spec("local").raw))
    params = spec["genesis"]["runtimeGenesis"]["parameters"]
    params["aura"]["slotDurationMs"] = slot_ms
    params["timestamp"]["minimumPeriodMs"] = slot_ms // 2
    params.setdefault("session", {})["length"] = session_length
    spec["id"] = "cuckoo_local_syncbench"
    spec["name"] = "Cuckoo Local (sync benchmark)"
    path.write_text(json.dumps(spec, indent=1))
    return path


@dataclass(frozen=True)
class Signer:
    public: bytes
    keypair: tuple[bytes, bytes]

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        public, secret = sr25519.pair_from_seed(seed)
        return cls(bytes(public), (bytes(public), bytes(secret)))


class TransferFactory:
    """Signs immortal `Balances.transfer_keep_alive` for the bench chain, with the runtime of a
    throwaway node built from the same spec (call encoding, versions, genesis hash)."""

    def __init__(self, spec_path: Path, tmp: Path) -> None:
        from genesis.builder import load_spec
        from node.service import Node, NodeConfig

        node = Node(NodeConfig(spec=load_spec(str(spec_path)), base_path=tmp, prometheus_port=None))
        try:
            self.runtime = node.runtime
            self.version = node.executive.version
            self.genesis_hash = node.genesis_hash
        finally:
            node.close()

    def transfer(self, sender: Signer, nonce: int, dest: bytes, value: int) -> str:
        rt = self.runtime
        call = rt.call_type.encode(
            rt.call("Balances", "transfer_keep_alive", dest=("Id", dest), value=value)
        )
        payload = signing_payload(
            call,
            Era.immortal(),
            nonce,
            0,
            self.version.spec_version,
            self.version.transaction_version,
            self.genesis_hash,
            self.genesis_hash,
        )
        signature = sr25519.sign(sender.keypair, payload)
        raw = encode_signed_extrinsic(
            call, sender.public, SignatureScheme.SR25519, bytes(signature), Era.immortal(), nonce, 0
        )
        return "0x" + raw.hex()


def dev_signer(name: str) -> Signer:
    from node.keystore import derive_key, dev_suri

    derived = derive_key(dev_suri(name))
    if derived.seed is None:
        raise SystemExit(f"no seed for //{name}")
    return Signer.from_seed(derived.seed)


@dataclass
class SyncResult:
    blocks: int
    finalized: int
    transfers: int
    build_s: float
    startup_s: float
    sync_s: float
    synced_finalized: int
    max_tx_in_block: int


async def build_chain(
    rpc: Rpc,
    nodes: list[NodeProc],
    factory: TransferFactory,
    target: int,
    txs_per_block: int,
    deadline_s: float,
) -> None:
    """Fund 2 x txs_per_block accounts from //Alice, then submit txs_per_block transfers each
    time //Alice's best block moves, until the chain is `target` blocks long."""
    alice = dev_signer("alice")
    senders = [
        Signer.from_seed(blake2_256(b"validators-bench:" + i.to_bytes(4, "little")))
        for i in range(2 * txs_per_block)
    ]
    head = nodes[0].url
    funding = [factory.transfer(alice, i, s.public, FUNDING) for i, s in enumerate(senders)]
    for out in await rpc.batch(head, [("author_submitExtrinsic", [x]) for x in funding]):
        if "error" in out:
            raise SystemExit(f"funding transfer refused: {out['error']}")
    last_key = (
        "0x" + (storage_prefix("System", "Account") + blake2_128_concat(senders[-1].public)).hex()
    )

    async def funded() -> bool:
        return await rpc.call(head, "state_getStorage", [last_key]) is not None

    await wait_for("the load accounts to be funded", funded, nodes, 120)
    nonces = [0] * len(senders)
    turn = 0
    best = -1
    rejected = 0
    end = time.monotonic() + deadline_s
    while True:
        for n in nodes:
            n.check_alive()
        number = int((await rpc.call(head, "chain_getHeader"))["number"], 16)
        if number >= target:
            break
        if time.monotonic() > end:
            print(f"  (b) build deadline reached at #{number} (target #{target})", flush=True)
            break
        if number != best:
            best = number
            calls = []
            for _ in range(txs_per_block):
                i = turn % len(senders)
                dest = senders[(i + 1) % len(senders)].public
                calls.append(
                    (
                        "author_submitExtrinsic",
                        [factory.transfer(senders[i], nonces[i], dest, TRANSFER)],
                    )
                )
                nonces[i] += 1
                turn += 1
            url = nodes[best % len(nodes)].url
            rejected += sum(1 for out in await rpc.batch(url, calls) if "error" in out)
            if best % 100 == 0:
                print(f"  (b) #{best}, {turn} transfers submitted, {rejected} refused", flush=True)
        await asyncio.sleep(0.05)


async def count_transfers(rpc: Rpc, url: str, upto: int) -> tuple[int, int]:
    """Signed extrinsics in blocks 1..upto (all transfers here), and the most in one block."""
    total = 0
    most = 0
    for low in range(1, upto + 1, 50):
        numbers = list(range(low, min(upto, low + 49) + 1))
        hashes = await rpc.batch(url, [("chain_getBlockHash", [n]) for n in numbers])
        blocks = await rpc.batch(url, [("chain_getBlock", [h["result"]]) for h in hashes])
        for b in blocks:
            signed = 0
            for xt in b["result"]["block"]["extrinsics"]:
                raw = bytes.fromhex(xt[2:])
                # after the compact length prefix: the version byte, 0x80 set when signed
                mode = raw[0] & 3
                offset = 1 if mode == 0 else 2 if mode == 1 else 4 if mode == 2 else 0
                if offset and raw[offset] & 0x80:
                    signed += 1
            total += signed
            most = max(most, signed)
    return total, most


async def bench_sync(
    base: Path, blocks: int, slot_ms: int, txs_per_block: int, session_length: int
) -> SyncResult:
    spec = write_sync_spec(base / "syncbench.json", slot_ms, session_length)
    factory = TransferFactory(spec, base / "signer-node")
    nodes = start_validators(base, str(spec))
    try:
        async with aiohttp.ClientSession() as session:
            rpc = Rpc(session)
            await wait_network(rpc, nodes)
            print(
                f"  (b) four validators up ({slot_ms} ms slots); building {blocks} blocks",
                flush=True,
            )
            started = time.monotonic()
            deadline = max(120.0, blocks * slot_ms / 1000 * 3)
            await build_chain(rpc, nodes, factory, blocks, txs_per_block, deadline)

            async def caught_up() -> bool:
                best, fin = await rpc.heads(nodes[0].url)
                return fin >= best - 3

            await wait_for("finality to catch up", caught_up, nodes, 60)
            build_s = time.monotonic() - started
    finally:
        stop_all(nodes)
    source = NodeProc("alice", base, str(spec), validator=False)
    fresh = NodeProc("fresh", base, str(spec), validator=False)
    try:
        async with aiohttp.ClientSession() as session:
            rpc = Rpc(session)
            source.start([])

            async def up() -> bool:
                await rpc.call(source.url, "system_health")
                return True

            await wait_for("the source node", up, [source], 60)
            head, final = await rpc.heads(source.url)
            head_hash = await rpc.call(source.url, "chain_getBlockHash", [head])
            print(
                f"  (b) source: best #{head}, finalized #{final}; starting a fresh node", flush=True
            )
            t0 = time.monotonic()
            fresh.start([source.multiaddr()])

            async def fresh_up() -> bool:
                await rpc.call(fresh.url, "system_health")
                return True

            await wait_for("the fresh node's RPC", fresh_up, [source, fresh], 60)
            t1 = time.monotonic()

            async def synced() -> bool:
                best, fin = await rpc.heads(fresh.url)
                return best >= head and fin >= final

            await wait_for("the fresh node to sync", synced, [source, fresh], 900)
            t2 = time.monotonic()
            got = await rpc.call(fresh.url, "chain_getBlockHash", [head])
            if got != head_hash:
                raise SystemExit(f"the fresh node has {got} at #{head}, the source {head_hash}")
            synced_final = (await rpc.heads(fresh.url))[1]
            transfers, most = await count_transfers(rpc, fresh.url, head)
    finally:
        stop_all([fresh, source])
    return SyncResult(head, final, transfers, build_s, t1 - t0, t2 - t1, synced_final, most)


# ---- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 minute of lag, 300-block sync")
    ap.add_argument("--minutes", type=float, default=None, help="(a) duration (default 3)")
    ap.add_argument("--sync-blocks", type=int, default=None, help="(b) chain length (1000)")
    ap.add_argument("--sync-slot-ms", type=int, default=250, help="(b) slot duration")
    ap.add_argument("--txs-per-block", type=int, default=20, help="(b) transfers per block")
    ap.add_argument("--session-length", type=int, default=100, help="(b) blocks per session")
    ap.add_argument("--only", choices=("lag", "sync"), default=None)
    ap.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = ap.parse_args()
    minutes = args.minutes if args.minutes is not None else (1.0 if args.quick else 3.0)
    sync_blocks = args.sync_blocks or (300 if args.quick else 1000)
    base = Path(tempfile.mkdtemp(prefix="validators-bench-"))
    print(
        f"validators_bench: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}; every node is a process on this machine; "
        f"data and logs in {base}"
    )
    lag: LagResult | None = None
    sync: SyncResult | None = None
    try:
        if args.only in (None, "lag"):
            (base / "lag").mkdir()
            lag = asyncio.run(bench_lag(base / "lag", minutes))
        if args.only in (None, "sync"):
            (base / "sync").mkdir()
            sync = asyncio.run(
                bench_sync(
                    base / "sync",
                    sync_blocks,
                    args.sync_slot_ms,
                    args.txs_per_block,
                    args.session_length,
                )
            )
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    print()
    if lag is not None:
        s = [float(x) for x in lag.samples]
        print(
            f"(a) finality lag: 4 validators, local spec (2 s slots), {minutes:g} min, "
            f"best - finalized sampled every {SAMPLE_S} s on each node ({len(s)} samples)"
        )
        print(f"  {'metric':<34}{'p50':>8}{'p95':>8}{'max':>8}")
        print(
            f"  {'best - finalized (blocks)':<34}{pct(s, 50):>8.0f}{pct(s, 95):>8.0f}{max(s):>8.0f}"
        )
        t = lag.to_finality_s
        print(
            f"  {'import -> finalized (s, //Alice)':<34}{pct(t, 50):>8.2f}{pct(t, 95):>8.2f}"
            f"{(max(t) if t else float('nan')):>8.2f}"
        )
        print(
            f"  blocks seen {lag.blocks}, finalized up to #{lag.finalized}; worst lag per node: "
            + ", ".join(f"{k} {v}" for k, v in lag.per_node_max.items())
        )
    if sync is not None:
        print(
            f"(b) sync: a fresh full node from one peer (//Alice's node, no longer authoring); "
            f"chain built live by 4 validators at {args.sync_slot_ms} ms slots, "
            f"{args.session_length}-block sessions, {args.txs_per_block} transfers offered a block"
        )
        print(f"  {'blocks':<28}{sync.blocks:>10,}  (finalized #{sync.finalized})")
        print(
            f"  {'transfers':<28}{sync.transfers:>10,}  (at most {sync.max_tx_in_block} in a block)"
        )
        print(f"  {'build time (s)':<28}{sync.build_s:>10.1f}")
        print(f"  {'fresh node start (s)':<28}{sync.startup_s:>10.1f}  (process start to RPC)")
        print(
            f"  {'sync time (s)':<28}{sync.sync_s:>10.1f}  (RPC up to best and finalized at head)"
        )
        print(f"  {'blocks/s':<28}{sync.blocks / sync.sync_s:>10.1f}")
        print(f"  {'transfers/s':<28}{sync.transfers / sync.sync_s:>10.1f}")
        print(f"  {'finalized on the new node':<28}{sync.synced_finalized:>10,}")
        authored_rate = sync.blocks / sync.build_s
        print(
            f"  ratio sync rate / authoring rate: {sync.blocks / sync.sync_s / authored_rate:.1f}x "
            f"(the chain was produced at {authored_rate:.2f} blocks/s)"
        )


if __name__ == "__main__":
    main()
