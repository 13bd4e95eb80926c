"""A network of `cuckoo-node` validator processes on loopback, for the validator-network e2e tests.

`ValidatorNet` writes a chain spec derived from `genesis/local.json` (four validators //Alice,
//Bob, //Charlie, //Dave) with short slots, sessions and eras so that scenarios take seconds,
starts each validator with its dev keys, its own base path, p2p port and RPC port, and
bootnodes every other node to //Alice's node. Nodes can be killed (SIGKILL) and restarted on the
same base path. `FinalityMonitor` samples every node's finalized blocks and fails the moment two
nodes finalize different blocks at one height, or a node's finalized head goes backwards.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import (
    NodeProcess,
    RpcCallError,
    free_ports,
    node_executable,
    rpc,
    spawn_logged,
)

ROOT = Path(__file__).resolve().parents[2]
VALIDATORS = ("alice", "bob", "charlie", "dave")


def node_key(name: str) -> str:
    """A fixed p2p key per node name, so peer ids are known before start."""
    from chain.hashing import blake2_256

    return blake2_256(b"cuckoo-test-node-key:" + name.encode()).hex()


def peer_id(name: str) -> str:
    from chain.crypto import ed25519_public_from_seed
    from node.network import peer_id_from_public

    return peer_id_from_public(ed25519_public_from_seed(bytes.fromhex(node_key(name))))


def write_spec(path: Path, **overrides: Any) -> Path:
    """genesis/local.json with fast parameters (1 s slots, 5-block sessions, 6-block eras)."""
    spec = json.loads((ROOT / "genesis" / "local.json").read_text())
    params = spec["genesis"]["runtimeGenesis"]["parameters"]
    params["aura"]["slotDurationMs"] = overrides.get("slot_ms", 1000)
    params["timestamp"]["minimumPeriodMs"] = overrides.get("slot_ms", 1000) // 2
    params.setdefault("session", {})["length"] = overrides.get("session_length", 5)
    params["staking"]["eraLength"] = overrides.get("era_length", 6)
    params["slashing"]["slashDeferDuration"] = overrides.get("slash_defer", 1)
    spec["id"] = "cuckoo_local_test"
    path.write_text(json.dumps(spec, indent=1))
    return path


class ValidatorNet:
    def __init__(self, tmp: Path, spec: Path, *, extra: dict[str, list[str]] | None = None) -> None:
        self.tmp = tmp
        self.spec = spec
        self.extra = extra or {}
        self.ports: dict[str, tuple[int, int]] = {}
        self.nodes: dict[str, NodeProcess] = {}

    def _ports(self, name: str) -> tuple[int, int]:
        if name not in self.ports:
            p2p, rpc_port = free_ports(2)
            self.ports[name] = (p2p, rpc_port)
        return self.ports[name]

    def bootnode(self, name: str = "alice") -> str:
        p2p, _ = self._ports(name)
        return f"/ip4/127.0.0.1/tcp/{p2p}/ws/p2p/{peer_id(name)}"

    def start(
        self, name: str, *, validator: bool = True, bootnodes: list[str] | None = None
    ) -> NodeProcess:
        p2p, rpc_port = self._ports(name)
        base = self.tmp / name
        args = [
            *node_executable(),
            "--chain",
            str(self.spec),
            "--base-path",
            str(base),
            "--name",
            name,
            "--port",
            str(p2p),
            "--rpc-port",
            str(rpc_port),
            "--no-prometheus",
            "--node-key",
            node_key(name),
        ]
        if validator:
            args.append(f"--{name}")
        boots = (
            bootnodes if bootnodes is not None else ([] if name == "alice" else [self.bootnode()])
        )
        if boots:
            args += ["--bootnodes", *boots]
        args += self.extra.get(name, [])
        log_path = self.tmp / f"{name}.log"
        proc = spawn_logged(args, log_path)
        node = NodeProcess(proc, rpc_port, None, log_path, base, args)
        self.nodes[name] = node
        node.wait_ready()
        return node

    def start_all(self) -> None:
        for name in VALIDATORS:
            self.start(name)

    def kill(self, name: str) -> None:
        node = self.nodes[name]
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.stop()

    def running(self) -> dict[str, NodeProcess]:
        return {n: p for n, p in self.nodes.items() if p.proc.poll() is None}

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"---- {name} ----\n{node.log_tail(lines)}" for name, node in self.nodes.items()
        )


def finalized_number(node: NodeProcess) -> int:
    h = node.rpc("chain_getFinalizedHead")
    return int(node.rpc("chain_getHeader", [h])["number"], 16)


def best_number(node: NodeProcess) -> int:
    return node.best_number()


class FinalityMonitor:
    """Records (height -> hash) of every finalized block seen on every node; any conflict or
    regression is an immediate AssertionError."""

    def __init__(self) -> None:
        self.final: dict[int, str] = {}
        self.last: dict[str, int] = {}

    def sample(self, nodes: dict[str, NodeProcess]) -> None:
        for name, node in nodes.items():
            try:
                head = node.rpc("chain_getFinalizedHead")
                number = int(node.rpc("chain_getHeader", [head])["number"], 16)
            except (OSError, RpcCallError, AssertionError):
                continue  # a node being killed
            if number < self.last.get(name, 0):
                raise AssertionError(f"{name}'s finalized head went back to #{number}")
            self.last[name] = number
            self._record(name, number, head)
            # also the ancestors this node reports as canonical below its finalized head
            low = max(1, number - 3)
            for n in range(low, number):
                h = node.rpc("chain_getBlockHash", [n])
                if h is not None:
                    self._record(name, n, h)

    def _record(self, name: str, number: int, h: str) -> None:
        seen = self.final.setdefault(number, h)
        if seen != h:
            raise AssertionError(f"{name} finalized {h} at #{number}, another node {seen}")


def wait_until(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    *,
    interval: float = 0.5,
    on_fail: Callable[[], str] = str,
    tick: Callable[[], None] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{on_fail()}")
        time.sleep(interval)


__all__ = [
    "VALIDATORS",
    "FinalityMonitor",
    "ValidatorNet",
    "best_number",
    "finalized_number",
    "peer_id",
    "rpc",
    "wait_until",
    "write_spec",
]
