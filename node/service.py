"""The node service: chain database, runtime, transaction pool, Aura authoring, finality, p2p
sync and gossip, RPC.

One asyncio loop runs everything. Blocks are authored in Aura slots: the author of slot s is
`authorities[s % n]` in the parent block's state. Imported blocks must carry the right author's
seal for a slot that is not in the future, and descend from the last finalized block; the best
block is the longest chain that contains it. Finality comes from the gadget (node/gadget.py); a
single validator that holds the only key (dev chains) finalizes every block it authors at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.consensus import (
    ConsensusError,
    EquivocationProof,
    Justification,
    SlotEquivocation,
    check_seal,
    header_slot,
)
from chain.crypto import ed25519_public_from_seed
from chain.hashing import blake2_256
from chain.primitives import Block, DigestItem, Header, encode_unsigned_extrinsic
from chain.storage.trie import Trie
from genesis.builder import ChainSpec, build_genesis
from node.bls_driver import BlsDriver
from node.chaindb import ChainDB
from node.db import LevelDBKV
from node.errors import NodeError
from node.gadget import FinalityGadget
from node.keystore import Keystore, Signer
from node.metrics import Metrics
from node.network import (
    BLOCK_ANNOUNCE,
    TRANSACTIONS,
    Status,
    load_or_create_node_key,
    peer_id_from_public,
)
from node.sync import AlreadyKnown, NotNow, Syncer, UnknownParent, encode_block_item
from node.txpool import PoolError, PoolLimits, TxPool
from pallets.aura import pallet as aura
from pallets.executive import BuiltBlock, Executive, InvalidBlock, InvalidTransaction, execute_block
from pallets.runtime import RUNTIME_CONFIG_KEY, build_runtime, decode_runtime_config

if TYPE_CHECKING:
    from node.network import NetworkService

log = logging.getLogger(__name__)

AURA_KEY_TYPE = "aura"
GRANDPA_KEY_TYPE = "gran"
BLS_KEY_TYPE = "bls_"
AUTHORING_BUDGET = 0.4  # share of a slot spent applying transactions
FUTURE_DRIFT_MS = 500  # a block's slot may start at most this far in our future
FAR_FUTURE_SLOTS = 4  # beyond this many slots ahead, a block is invalid (not just early)
SEEN_SLOTS = 2048  # (slot, author) pairs remembered to detect two blocks for one slot


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
    p2p_host: str = "127.0.0.1"
    p2p_port: int | None = None  # None: no networking; 0: an ephemeral port
    node_key: bytes | None = None  # ed25519 seed; default: <chain dir>/network/secret_ed25519
    bootnodes: tuple[str, ...] = ()
    unsafe_equivocate: bool = False  # test-only: seal two blocks for one slot, once, with peers


@dataclasses.dataclass(frozen=True)
class ImportedBlock:
    hash: bytes
    header: Header
    extrinsics: tuple[bytes, ...]
    changes: dict[bytes, bytes | None]
    finalized: bool


Listener = Callable[[ImportedBlock], None]


FinalityListener = Callable[[bytes, Header], None]


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.spec = config.spec
        self._stopping = asyncio.Event()
        self._listeners: list[Listener] = []
        self._finality_listeners: list[FinalityListener] = []
        self.started_at = time.time()
        config.base_path.mkdir(parents=True, exist_ok=True)
        self.chain_dir = config.base_path / "chains" / self.spec.id
        self.chain_dir.mkdir(parents=True, exist_ok=True)
        self.kv = LevelDBKV(self.chain_dir / "db")
        self.db = ChainDB(self.kv)
        self.keystore = Keystore(self.chain_dir / "keystore")
        self._init_genesis()
        genesis_state = self.db.state_at(self.genesis_hash)
        raw_config = genesis_state.get(RUNTIME_CONFIG_KEY)
        if raw_config is None:
            raise NodeError("genesis state lacks the runtime parameters")
        runtime_config = decode_runtime_config(raw_config)
        if config.block_time_ms is not None:
            runtime_config = dataclasses.replace(
                runtime_config,
                aura=aura.Config(config.block_time_ms),
            )
        self.runtime_config = runtime_config
        self.runtime = build_runtime(runtime_config)
        self.executive = Executive(self.runtime)
        self.slot_ms = runtime_config.aura.slot_duration_ms
        self.pool = TxPool(self.executive, self._best_for_pool, config.pool_limits)
        self.metrics = Metrics()
        if config.dev_key is not None:
            self.insert_dev_keys(config.dev_key)
        self._aura_keys: set[bytes] = (
            set(self.keystore.public_keys(AURA_KEY_TYPE))
            if config.validator or config.dev_key is not None
            else set()
        )
        self.signer: Signer | None = None  # the Aura key of the last slot we authored / could
        if self._aura_keys:
            self.signer = self.keystore.signer(AURA_KEY_TYPE, sorted(self._aura_keys)[0])
        self.node_key = config.node_key or self._load_node_key()
        self.network: NetworkService | None = None
        self.pending_justifications: dict[bytes, bytes] = {}
        self._seen_slots: collections.OrderedDict[tuple[int, bytes], Header] = (
            collections.OrderedDict()
        )
        self._reported: set[bytes] = set()
        self._equivocated = False
        self.gadget = FinalityGadget(self, round_duration=max(0.25, self.slot_ms / 4000))
        self.syncer = Syncer(self)
        self.bls: BlsDriver | None = None
        self._refresh_metrics()

    def insert_dev_keys(self, suri: str) -> None:
        """The session keys of a dev account (//Alice ...): Aura, finality and BLS."""
        self.keystore.insert(AURA_KEY_TYPE, suri)
        self.keystore.insert(GRANDPA_KEY_TYPE, suri, scheme="ed25519")
        if not self.keystore.public_keys(BLS_KEY_TYPE):
            self.keystore.insert(BLS_KEY_TYPE, suri, scheme="bls12-381")

    def _load_node_key(self) -> bytes:
        return load_or_create_node_key(self.chain_dir / "network" / "secret_ed25519")

    @property
    def is_authority(self) -> bool:
        """Whether this node runs as a validator (holds Aura keys to author with)."""
        return bool(self._aura_keys)

    @property
    def local_peer_id(self) -> str:
        return peer_id_from_public(ed25519_public_from_seed(self.node_key))

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

    def finalized_header(self) -> Header:
        header = self.db.header(self.finalized_hash)
        assert header is not None
        return header

    def state_at(self, block_hash: bytes | None = None) -> Trie:
        return self.db.state_at(block_hash or self.best_hash)

    def _best_for_pool(self) -> tuple[Any, bytes, int]:
        best = self.best_hash
        header = self.db.header(best)
        assert header is not None
        return self.db.state_at(best), best, header.number

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_finality_listener(self, listener: FinalityListener) -> None:
        self._finality_listeners.append(listener)

    def remove_finality_listener(self, listener: FinalityListener) -> None:
        if listener in self._finality_listeners:
            self._finality_listeners.remove(listener)

    def _refresh_metrics(self) -> None:
        best = self.best_header()
        self.metrics.set_best(best.number)
        fin = self.db.header(self.finalized_hash)
        self.metrics.set_finalized(fin.number if fin else 0)
        self.metrics.set_ready_transactions(self.pool.ready_count(self.state_at()))
        if self.network is not None:
            self.metrics.set_peers(self.network.peer_count())

    # ---- authoring ----------------------------------------------------------------------------

    def current_slot(self) -> int:
        return int(time.time() * 1000) // self.slot_ms

    def _author_key(self, slot: int, state: Trie) -> bytes | None:
        """Our Aura key if it is the author of `slot` in `state`, else None."""
        author = aura.author_of(aura.Authorities.get(state), slot)
        return author if author is not None and author in self._aura_keys else None

    def author_block(self, slot: int) -> ImportedBlock | None:
        """Build, seal, persist and announce a block for `slot` on top of the best block."""
        parent_hash = self.best_hash
        parent = self.db.header(parent_hash)
        assert parent is not None
        state = self.db.state_at_root(parent.state_root)
        author = self._author_key(slot, state)
        if author is None:
            return None
        if aura.CurrentSlot.get(state) >= slot or self.db.last_authored_slot() >= slot:
            return None  # never seal two blocks for one slot (also across restarts)
        if self.syncer.is_major_syncing():
            return None
        if self.signer is None or self.signer.public != author:
            self.signer = self.keystore.signer(AURA_KEY_TYPE, author, scheme="sr25519")
        built = self._build(state, parent_hash, parent.number, slot, slot * self.slot_ms)
        imported = self._seal_and_import(built, slot)
        if (
            self.config.unsafe_equivocate
            and not self._equivocated
            and parent.number >= 3  # once the network is up: both blocks must reach peers
            and self.network is not None
            and self.network.peer_count() >= 2
        ):
            self._equivocated = True
            self._equivocate(state, parent_hash, parent.number, slot)
        return imported

    def _build(
        self, state: Trie, parent_hash: bytes, parent_number: int, slot: int, now_ms: int
    ) -> BuiltBlock:
        digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
        builder = self.executive.begin_block(state, parent_hash, parent_number + 1, digest)
        ts_call = self.runtime.call_type.encode(self.runtime.call("Timestamp", "set", now=now_ms))
        builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
        deadline = time.monotonic() + self.slot_ms / 1000 * AUTHORING_BUDGET
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
        return builder.finalize()

    def _seal(self, built: BuiltBlock) -> Header:
        assert self.signer is not None
        seal = DigestItem.seal(aura.ENGINE_ID, self.signer.sign(built.header.hash()))
        return dataclasses.replace(built.header, digest=(*built.header.digest, seal))

    def _seal_and_import(self, built: BuiltBlock, slot: int) -> ImportedBlock:
        header = self._seal(built)
        instant = self.gadget.instant
        justification = self.gadget.instant_justification(header) if instant else None
        block_hash = self.db.commit_block(
            header,
            built.extrinsics,
            built.nodes,
            is_best=True,
            is_finalized=instant,
            justification=justification,
            authored_slot=slot,
        )
        imported = ImportedBlock(
            block_hash, header, built.extrinsics, built.changes, finalized=instant
        )
        assert self.signer is not None
        self._remember_slot(header, self.signer.public)
        self._after_import(imported)
        if instant:
            self._after_finalize(block_hash, header)
        n_tx = len(built.extrinsics) - 1
        log.info(
            "Prepared block #%d (0x%s..) with %d transaction%s",
            header.number,
            block_hash.hex()[:12],
            n_tx,
            "" if n_tx == 1 else "s",
        )
        self._announce(Block(header, built.extrinsics), justification)
        return imported

    def _equivocate(self, state: Trie, parent_hash: bytes, parent_number: int, slot: int) -> None:
        """Test-only misbehaviour: a second, different block for the same slot, announced."""
        built = self._build(state, parent_hash, parent_number, slot, slot * self.slot_ms + 1)
        header = self._seal(built)
        self.db.commit_block(
            header, built.extrinsics, built.nodes, is_best=False, is_finalized=False
        )
        log.warning(
            "EQUIVOCATING (--unsafe-test-equivocate): second block #%d (0x%s..) for slot %d",
            header.number,
            header.hash().hex()[:12],
            slot,
        )
        self._announce(Block(header, built.extrinsics), None)

    def _announce(self, block: Block, justification: bytes | None) -> None:
        if self.network is not None:
            self.network.broadcast(BLOCK_ANNOUNCE, encode_block_item(block, justification))
            self._update_network_status()

    # ---- import -------------------------------------------------------------------------------

    def import_block(self, block: Block, justification: bytes | None = None) -> ImportedBlock:
        """Import a block from elsewhere (sync, gossip, tests): check that it descends from the
        last finalized block, its slot, its author and seal; re-execute; persist; apply its
        justification. Raises InvalidBlock (AlreadyKnown, UnknownParent, NotNow: not faults)."""
        unsealed, seal = block.header.without_seal()
        block_hash = block.header.hash()
        if self.db.header(block_hash) is not None:
            raise AlreadyKnown("block already imported")
        parent = self.db.header(unsealed.parent_hash)
        if parent is None:
            raise UnknownParent("unknown parent")
        if unsealed.number != parent.number + 1:
            raise InvalidBlock("block number does not follow its parent")
        fin = self.finalized_header()
        if unsealed.number <= fin.number or not self.db.is_descendant(
            self.finalized_hash, unsealed.parent_hash
        ):
            raise InvalidBlock(
                f"block #{unsealed.number} does not descend from the finalized #{fin.number}"
            )
        slot = header_slot(unsealed)
        if slot is None:
            raise InvalidBlock("block has no Aura pre-runtime digest")
        now_ms = time.time() * 1000
        if slot * self.slot_ms > now_ms + FAR_FUTURE_SLOTS * self.slot_ms:
            raise InvalidBlock(f"block is for slot {slot}, far in the future")
        if slot * self.slot_ms > now_ms + FUTURE_DRIFT_MS:
            raise NotNow(f"block is for slot {slot}, in the future")
        state = self.db.state_at_root(parent.state_root)
        author = aura.author_of(aura.Authorities.get(state), slot)
        if seal is None or seal.engine != aura.ENGINE_ID:
            raise InvalidBlock("block has no Aura seal")
        if author is None or not check_seal(block.header, author):
            raise InvalidBlock("bad Aura seal: not sealed by the slot's author")
        if justification is not None:
            try:
                just = Justification.decode(justification)
            except Exception as exc:
                raise InvalidBlock(f"undecodable justification: {exc}") from exc
            if just.target_hash != block_hash:
                raise InvalidBlock("justification is for another block")
        built = execute_block(self.executive, state, unsealed, block.extrinsics)
        is_best = unsealed.number > self.best_header().number
        self.db.commit_block(
            block.header, block.extrinsics, built.nodes, is_best=is_best, is_finalized=False
        )
        imported = ImportedBlock(
            block_hash, block.header, block.extrinsics, built.changes, finalized=False
        )
        self._check_slot_equivocation(block.header, slot, author)
        if is_best:
            self._after_import(imported)
        else:
            self._update_network_status()
        self.gadget.on_block_imported()
        pending = self.pending_justifications.pop(block_hash, None)
        for raw in (justification, pending):
            if raw is not None:
                try:
                    self.apply_justification(block_hash, raw)
                except ConsensusError as exc:
                    if raw is justification:
                        raise InvalidBlock(f"invalid justification: {exc}") from exc
        return imported

    def _remember_slot(self, header: Header, author: bytes) -> None:
        slot = header_slot(header)
        if slot is not None:
            self._seen_slots.setdefault((slot, author), header)

    def _check_slot_equivocation(self, header: Header, slot: int, author: bytes) -> None:
        key = (slot, author)
        first = self._seen_slots.get(key)
        if first is None:
            self._seen_slots[key] = header
            while len(self._seen_slots) > SEEN_SLOTS:
                self._seen_slots.popitem(last=False)
            return
        if first.hash() != header.hash():
            log.warning(
                "Equivocation: two blocks for slot %d by the same author (#%d 0x%s.. and 0x%s..)",
                slot,
                header.number,
                first.hash().hex()[:12],
                header.hash().hex()[:12],
            )
            self.report_equivocation(SlotEquivocation(author, slot, first, header))

    def report_equivocation(self, proof: EquivocationProof) -> None:
        """Submit an unsigned `Finality.report_equivocation` and gossip it (once per offence)."""
        key = proof.offence_key()
        if key in self._reported:
            return
        self._reported.add(key)
        call = self.runtime.call_type.encode(
            self.runtime.call("Finality", "report_equivocation", proof=proof.encode())
        )
        raw = encode_unsigned_extrinsic(call)
        try:
            self.submit_extrinsic(raw)
            log.info(
                "Reported an equivocation on chain (offence 0x%s..)", blake2_256(key).hex()[:12]
            )
        except PoolError as exc:
            log.info("Equivocation report not accepted: %s", exc)

    def submit_extrinsic(self, raw: bytes, watcher: Any = None) -> tuple[bytes, str]:
        """Into the pool (raises PoolError), then gossip to peers."""
        tx_hash, status = self.pool.submit(raw, watcher)
        if self.network is not None:
            self.network.broadcast(TRANSACTIONS, raw)
        return tx_hash, status

    def _after_import(self, imported: ImportedBlock) -> None:
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
        self._update_network_status()

    # ---- finality -----------------------------------------------------------------------------

    def apply_justification(self, block_hash: bytes, raw: bytes) -> None:
        """Verify a justification for a known block; finalize it if it is ahead, else keep it.
        Raises ConsensusError when it does not verify."""
        self.gadget.verify_justification(block_hash, raw)
        header = self.db.header(block_hash)
        assert header is not None
        if header.number > self.finalized_header().number:
            self.finalize(block_hash, raw)
        elif self.db.justification(block_hash) is None and self.db.is_descendant(
            block_hash, self.finalized_hash
        ):
            self.db.store_justification(block_hash, raw)

    def finalize(self, block_hash: bytes, justification: bytes | None) -> None:
        """Make `block_hash` final. A block that is not a descendant of the finalized one is
        refused (finality never reverts)."""
        header = self.db.header(block_hash)
        fin = self.finalized_header()
        if header is None or header.number <= fin.number:
            return
        if not self.db.is_descendant(self.finalized_hash, block_hash):
            log.error(
                "Refusing to finalize #%d (0x%s..): it conflicts with finalized #%d",
                header.number,
                block_hash.hex()[:12],
                fin.number,
            )
            return
        old_best = self.best_hash
        new_best = self.db.finalize(block_hash, justification)
        if new_best != old_best:
            best_header = self.db.header(new_best)
            assert best_header is not None
            log.info(
                "Reorg to #%d (0x%s..) after finality", best_header.number, new_best.hex()[:12]
            )
        self._after_finalize(block_hash, header)

    def _after_finalize(self, block_hash: bytes, header: Header) -> None:
        log.debug("Finalized #%d (0x%s..)", header.number, block_hash.hex()[:12])
        self.pool.on_finalized(self.db, block_hash)
        for listener in list(self._finality_listeners):
            try:
                listener(block_hash, header)
            except Exception:
                log.exception("finality listener failed")
        self.gadget.on_finalized()
        if self.bls is not None:
            self.bls.on_finalized(block_hash, header)
        self._refresh_metrics()
        self._update_network_status()

    # ---- networking ---------------------------------------------------------------------------

    def _update_network_status(self) -> None:
        if self.network is not None:
            self.network.update_status(self._status())

    def _status(self) -> Any:
        best = self.best_header()
        fin = self.finalized_header()
        return Status(
            best_number=best.number,
            best_hash=self.best_hash,
            finalized_number=fin.number,
            finalized_hash=self.finalized_hash,
        )

    def block_item(self, number: int) -> bytes | None:
        h = self.db.hash_at(number)
        if h is None:
            return None
        header = self.db.header(h)
        body = self.db.body(h)
        if header is None or body is None:
            return None
        return encode_block_item(Block(header, tuple(body)), self.db.justification(h))

    # ---- lifecycle ----------------------------------------------------------------------------

    async def _authoring_loop(self) -> None:
        if not self._aura_keys:
            log.info("Not a validator: no authoring key")
            return
        log.info(
            "Authoring with Aura key%s %s, slot %d ms",
            "" if len(self._aura_keys) == 1 else "s",
            ", ".join(str(self.keystore.signer(AURA_KEY_TYPE, k)) for k in sorted(self._aura_keys)),
            self.slot_ms,
        )
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

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, on_ready: Callable[[int, int | None], None] | None = None) -> None:
        from node.netbridge import start_network
        from node.rpc.api import build_rpc

        server = build_rpc(self)
        rpc_port = await server.start(self.config.rpc_host, self.config.rpc_port)
        metrics_port = None
        if self.config.prometheus_port is not None:
            metrics_port = await self.metrics.start(
                self.config.rpc_host, self.config.prometheus_port
            )
        if self.config.p2p_port is not None:
            self.network = await start_network(self)
        self.bls = BlsDriver.create(self)
        best = self.best_header()
        log.info(
            "Running %s on %s: best #%d (0x%s..), RPC on %s:%d%s%s",
            self.config.name,
            self.spec.name,
            best.number,
            self.best_hash.hex()[:12],
            self.config.rpc_host,
            rpc_port,
            f", Prometheus on port {metrics_port}" if metrics_port else "",
            f", p2p {self.network.listen_addresses()[0]}" if self.network else "",
        )
        if on_ready is not None:
            on_ready(rpc_port, metrics_port)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._authoring_loop(), name="node.authoring")
                tg.create_task(self.gadget.run(self._stopping), name="node.finality")
                tg.create_task(self.syncer.run(self._stopping), name="node.sync")
                await self._stopping.wait()
        finally:
            if self.network is not None:
                await self.network.stop()
            if self.bls is not None:
                self.bls.close()
            await server.stop()
            if metrics_port is not None:
                await self.metrics.stop()
            self.close()

    def close(self) -> None:
        if not self.kv.closed:
            self.kv.close()
            log.info("Database closed")
