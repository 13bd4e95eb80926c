"""The node service: chain database, runtime, transaction pool, Aura authoring, finality, RPC.

One asyncio loop runs everything. With a single validator (dev chains) every block the node
authors is final at once; multi-validator finality is a later component (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.crypto import verify_signature
from chain.primitives import Block, DigestItem, Header, encode_unsigned_extrinsic
from chain.storage.trie import Trie
from genesis.builder import ChainSpec, build_genesis
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.errors import NodeError
from node.keystore import Keystore, Signer
from node.metrics import Metrics
from node.txpool import PoolLimits, TxPool
from pallets.aura import pallet as aura
from pallets.executive import BuiltBlock, Executive, InvalidBlock, InvalidTransaction, execute_block
from pallets.runtime import RUNTIME_CONFIG_KEY, RuntimeConfig, build_runtime

log = logging.getLogger(__name__)

AURA_KEY_TYPE = "aura"
AUTHORING_BUDGET = 0.4  # share of a slot spent applying transactions


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    spec: ChainSpec
    base_path: Path
    name: str = "cuckoo-node"
    validator: bool = False
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 9944
    prometheus_port: int | None = 9615
    dev_key: str | None = None  # a dev account's secret URI to author with (--dev / --alice)
    block_time_ms: int | None = None  # override of the spec's slot duration (tests)
    pool_limits: PoolLimits = PoolLimits()


@dataclasses.dataclass(frozen=True)
class ImportedBlock:
    hash: bytes
    header: Header
    extrinsics: tuple[bytes, ...]
    changes: dict[bytes, bytes | None]
    finalized: bool


Listener = Callable[[ImportedBlock], None]


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.spec = config.spec
        self._stopping = asyncio.Event()
        self._listeners: list[Listener] = []
        self.started_at = time.time()
        config.base_path.mkdir(parents=True, exist_ok=True)
        chain_dir = config.base_path / "chains" / self.spec.id
        chain_dir.mkdir(parents=True, exist_ok=True)
        self.kv = LevelDBKV(chain_dir / "db")
        self.db = ChainDB(self.kv)
        self.keystore = Keystore(chain_dir / "keystore")
        self._init_genesis()
        genesis_state = self.db.state_at(self.genesis_hash)
        raw_config = genesis_state.get(RUNTIME_CONFIG_KEY)
        if raw_config is None:
            raise NodeError("genesis state lacks the runtime parameters")
        runtime_config = RuntimeConfig.decode(raw_config)
        if config.block_time_ms is not None:
            runtime_config = dataclasses.replace(
                runtime_config,
                aura=aura.Config(config.block_time_ms),
            )
        self.runtime = build_runtime(runtime_config)
        self.executive = Executive(self.runtime)
        self.slot_ms = runtime_config.aura.slot_duration_ms
        self.pool = TxPool(self.executive, self._best_for_pool, config.pool_limits)
        self.metrics = Metrics()
        self.signer: Signer | None = None
        if config.dev_key is not None:
            pub = self.keystore.insert(AURA_KEY_TYPE, config.dev_key)
            self.signer = self.keystore.signer(AURA_KEY_TYPE, pub)
        self._refresh_metrics()

    # ---- chain state --------------------------------------------------------------------------

    def _init_genesis(self) -> None:
        genesis = build_genesis(self.spec)
        stored = self.db.genesis_hash()
        if stored is None:
            self.db.commit_block(
                genesis.header, [], genesis.nodes, is_best=True, is_finalized=True, is_genesis=True
            )
            log.info("Initialized genesis 0x%s of %s", genesis.hash.hex(), self.spec.name)
        elif stored != genesis.hash:
            raise NodeError(
                f"the database at {self.config.base_path} holds another chain "
                f"(genesis 0x{stored.hex()[:16]}..); "
                f"use another --base-path or run purge-chain"
            )
        self.genesis_hash = genesis.hash

    @property
    def best_hash(self) -> bytes:
        return self.db.best_hash()

    def best_header(self) -> Header:
        header = self.db.header(self.best_hash)
        assert header is not None
        return header

    @property
    def finalized_hash(self) -> bytes:
        return self.db.finalized_hash()

    def state_at(self, block_hash: bytes | None = None) -> Trie:
        return self.db.state_at(block_hash or self.best_hash)

    def _best_for_pool(self) -> tuple[Any, bytes, int]:
        best = self.best_hash
        header = self.db.header(best)
        assert header is not None
        return self.db.state_at(best), best, header.number

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _refresh_metrics(self) -> None:
        best = self.best_header()
        self.metrics.set_best(best.number)
        fin = self.db.header(self.finalized_hash)
        self.metrics.set_finalized(fin.number if fin else 0)
        self.metrics.set_ready_transactions(self.pool.ready_count(self.state_at()))

    # ---- authoring ----------------------------------------------------------------------------

    def current_slot(self) -> int:
        return int(time.time() * 1000) // self.slot_ms

    def _is_my_slot(self, slot: int, state: Trie) -> bool:
        if self.signer is None:
            return False
        return aura.author_of(aura.Authorities.get(state), slot) == self.signer.public

    def author_block(self, slot: int) -> ImportedBlock | None:
        """Build, seal, persist and announce a block for `slot` on top of the best block."""
        parent_hash = self.best_hash
        parent = self.db.header(parent_hash)
        assert parent is not None
        assert self.signer is not None
        state = self.db.state_at_root(parent.state_root)
        if not self._is_my_slot(slot, state):
            return None
        if aura.CurrentSlot.get(state) >= slot:
            return None
        digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
        builder = self.executive.begin_block(state, parent_hash, parent.number + 1, digest)
        now_ms = slot * self.slot_ms
        ts_call = self.runtime.call_type.encode(self.runtime.call("Timestamp", "set", now=now_ms))
        builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
        deadline = time.monotonic() + self.slot_ms / 1000 * AUTHORING_BUDGET
        skipped = 0
        for tx in list(self.pool.ready(state)):
            if time.monotonic() > deadline:
                break
            try:
                builder.apply(tx.raw, verified=True)
            except InvalidTransaction as exc:
                if exc.kind == "ExhaustsResources":
                    break
                if exc.kind != "Future":
                    log.info("Dropped transaction 0x%s: %s", tx.hash.hex()[:16], exc)
                    self.pool.drop(tx.hash)
                skipped += 1
        built = builder.finalize()
        return self._seal_and_import(built)

    def _seal_and_import(self, built: BuiltBlock) -> ImportedBlock:
        assert self.signer is not None
        pre_hash = built.header.hash()
        seal = DigestItem.seal(aura.ENGINE_ID, self.signer.sign(pre_hash))
        header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
        block_hash = self.db.commit_block(
            header, built.extrinsics, built.nodes, is_best=True, is_finalized=True
        )
        imported = ImportedBlock(
            block_hash, header, built.extrinsics, built.changes, finalized=True
        )
        self._after_import(imported)
        n_tx = len(built.extrinsics) - 1
        log.info(
            "Prepared block #%d (0x%s..) with %d transaction%s",
            header.number,
            block_hash.hex()[:12],
            n_tx,
            "" if n_tx == 1 else "s",
        )
        return imported

    def import_block(self, block: Block) -> ImportedBlock:
        """Import a block from elsewhere (sync, tests): verify the seal, re-execute, persist."""
        unsealed, seal = block.header.without_seal()
        if self.db.header(block.header.hash()) is not None:
            raise InvalidBlock("block already imported")
        parent = self.db.header(unsealed.parent_hash)
        if parent is None:
            raise InvalidBlock("unknown parent")
        if unsealed.number != parent.number + 1:
            raise InvalidBlock("block number does not follow its parent")
        state = self.db.state_at_root(parent.state_root)
        if seal is None or seal.engine != aura.ENGINE_ID:
            raise InvalidBlock("block has no Aura seal")
        slot = aura.slot_from_digest(
            [("PreRuntime", (d.engine, d.data)) for d in unsealed.digest if d.kind == 6]
        )
        author = aura.author_of(aura.Authorities.get(state), slot) if slot is not None else None
        from chain.crypto import SignatureScheme

        if author is None or not verify_signature(
            SignatureScheme.SR25519, seal.data, unsealed.hash(), author
        ):
            raise InvalidBlock("bad Aura seal")
        built = execute_block(self.executive, state, unsealed, block.extrinsics)
        is_best = unsealed.number > self.best_header().number
        block_hash = self.db.commit_block(
            block.header, block.extrinsics, built.nodes, is_best=is_best, is_finalized=False
        )
        imported = ImportedBlock(
            block_hash, block.header, block.extrinsics, built.changes, finalized=False
        )
        if is_best:
            self._after_import(imported)
        return imported

    def _after_import(self, imported: ImportedBlock) -> None:
        from chain.hashing import blake2_256

        state = self.db.state_at_root(imported.header.state_root)
        self.pool.on_block(
            imported.hash,
            [blake2_256(x) for x in imported.extrinsics],
            finalized=imported.finalized,
            state=state,
        )
        for listener in list(self._listeners):
            try:
                listener(imported)
            except Exception:
                log.exception("block listener failed")
        self._refresh_metrics()

    async def _authoring_loop(self) -> None:
        if self.signer is None:
            log.info("Not a validator: no authoring key")
            return
        log.info("Authoring with Aura key %s, slot %d ms", self.signer, self.slot_ms)
        while not self._stopping.is_set():
            now_ms = time.time() * 1000
            slot = int(now_ms // self.slot_ms)
            try:
                self.author_block(slot)
            except Exception:
                log.exception("Authoring slot %d failed", slot)
            next_ms = (slot + 1) * self.slot_ms
            delay = max(next_ms - time.time() * 1000, 0) / 1000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay + 0.001)

    # ---- lifecycle ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, on_ready: Callable[[int, int | None], None] | None = None) -> None:
        from node.rpc.api import build_rpc

        server = build_rpc(self)
        rpc_port = await server.start(self.config.rpc_host, self.config.rpc_port)
        metrics_port = None
        if self.config.prometheus_port is not None:
            metrics_port = await self.metrics.start(
                self.config.rpc_host, self.config.prometheus_port
            )
        best = self.best_header()
        log.info(
            "Running %s on %s: best #%d (0x%s..), RPC on %s:%d%s",
            self.config.name,
            self.spec.name,
            best.number,
            self.best_hash.hex()[:12],
            self.config.rpc_host,
            rpc_port,
            f", Prometheus on port {metrics_port}" if metrics_port else "",
        )
        if on_ready is not None:
            on_ready(rpc_port, metrics_port)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._authoring_loop(), name="node.authoring")
                await self._stopping.wait()
        finally:
            await server.stop()
            if metrics_port is not None:
                await self.metrics.stop()
            self.close()

    def close(self) -> None:
        if not self.kv.closed:
            self.kv.close()
            log.info("Database closed")
