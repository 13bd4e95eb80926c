"""The node: the composition root. It opens the chain database and the keystore, builds the
runtime and the services, hands each service the others through the protocols of
node/interfaces.py, and runs them.

    ChainView        (chainview.py)     ChainReader over the chain database
    BlockImporter    (importer.py)      BlockImport, Finalizer, AuthoredImport; publishes
    ChainEvents      (notifications.py) ChainNotifications: new best, imported, finalized
    Transactions     (transactions.py)  the pool's front door; equivocation reports
    NetworkLink      (netbridge.py)     PeerNetwork: the p2p network once started
    Syncer           (sync.py)          sync from peers; SyncTrigger, SyncState
    FinalityGadget   (finality/)        votes, commits, justifications; InstantFinality
    Author           (authoring.py)     Aura authoring in our slots
    BlsDriver        (finality/)        per-session BLS finality proofs (validators)
    NodeRpc          (rpc/api.py)       JSON-RPC

One asyncio loop runs everything: the authoring, finality and sync loops under one TaskGroup,
the RPC server, the metrics endpoint and the p2p network beside them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from chain.crypto import ed25519_public_from_seed
from chain.storage.trie import Trie
from genesis.builder import ChainSpec, Genesis, build_genesis
from node.authoring import Author
from node.chaindb import ARCHIVE_CANONICAL, DEFAULT_STATE_PRUNING, GENESIS, ChainDB
from node.chainview import ChainView
from node.db import LevelDBKV
from node.errors import NodeError
from node.finality.bls_driver import BlsDriver
from node.finality.gadget import FinalityGadget
from node.finality.sets import ValidatorSets
from node.finality.store import KVVoteStore
from node.importer import BlockImporter
from node.interfaces import Clock
from node.keystore import AURA_KEY_TYPE, BLS_KEY_TYPE, GRANDPA_KEY_TYPE, Keystore
from node.metrics import Metrics
from node.netbridge import NetworkLink, NodeNetworkHandler
from node.network import (
    ROLE_AUTHORITY,
    ROLE_FULL,
    PeerSlots,
    load_or_create_node_key,
    peer_id_from_public,
)
from node.notifications import ChainEvents
from node.paths import chain_dir
from node.rpc.api import NodeRpc, build_rpc
from node.rpc.cors import CorsPolicy
from node.sigcheck import ParallelSignatures
from node.sync import Syncer
from node.transactions import Transactions
from node.txpool import PoolLimits, TxPool
from pallets.aura import pallet as aura
from pallets.executive import Executive
from pallets.runtime import RUNTIME_CONFIG_KEY, build_runtime, decode_runtime_config

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    spec: ChainSpec
    base_path: Path
    name: str = "cuckoo-node"
    validator: bool = False
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 9944
    rpc_cors: CorsPolicy | None = None  # browser origins; None: the chain type's default
    prometheus_port: int | None = 9615
    dev_key: str | None = None  # a dev account's secret URI to author with (--dev / --alice)
    block_time_ms: int | None = None  # override of the spec's slot duration (tests)
    # --state-pruning: N finalized blocks' state, "archive"; None: as the store was created
    # (a new store: the last 256)
    state_pruning: int | str | None = None
    blocks_pruning: int | str = ARCHIVE_CANONICAL  # --blocks-pruning
    pool_limits: PoolLimits = PoolLimits()
    p2p_host: str = "127.0.0.1"
    p2p_port: int | None = None  # None: no networking; 0: an ephemeral port
    node_key: bytes | None = None  # ed25519 seed; default: <chain dir>/network/secret_ed25519
    bootnodes: tuple[str, ...] = ()
    peer_slots: PeerSlots = PeerSlots()  # --in-peers, --out-peers, --in-peers-per-ip
    unsafe_equivocate: bool = False  # test-only: seal two blocks for one slot, once, with peers


class Node:
    def __init__(self, config: NodeConfig, *, clock: Clock = time.time) -> None:
        """`clock`: the wall clock that block import and authoring read slots from."""
        self.config = config
        self.spec = config.spec
        self._stopping = asyncio.Event()
        config.base_path.mkdir(parents=True, exist_ok=True)
        self.chain_dir = chain_dir(config.base_path, self.spec.id)
        self.chain_dir.mkdir(parents=True, exist_ok=True)
        self.kv = LevelDBKV(self.chain_dir / "db")
        state_pruning = config.state_pruning
        if state_pruning is None and self.kv.get(GENESIS) is None:
            state_pruning = DEFAULT_STATE_PRUNING  # a new store
        try:
            self.db = ChainDB(
                self.kv, state_pruning=state_pruning, blocks_pruning=config.blocks_pruning
            )
        except NodeError:
            self.kv.close()
            raise
        self.keystore = Keystore(self.chain_dir / "keystore")
        genesis = build_genesis(self.spec)
        self.genesis_hash = self._init_genesis(genesis)
        raw_config = genesis.storage.get(RUNTIME_CONFIG_KEY)  # the genesis state may be pruned
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
        if config.dev_key is not None:
            self.insert_dev_keys(config.dev_key)
        aura_keys = (
            frozenset(self.keystore.public_keys(AURA_KEY_TYPE))
            if config.validator or config.dev_key is not None
            else frozenset()
        )
        self.node_key = config.node_key or load_or_create_node_key(
            self.chain_dir / "network" / "secret_ed25519"
        )

        self.chain = ChainView(self.db, self.genesis_hash)
        self.events = ChainEvents()
        self.network = NetworkLink(self.chain)
        self.pool = TxPool(self.executive, self._best_for_pool, config.pool_limits)
        self.transactions = Transactions(
            self.pool, chain=self.chain, gossip=self.network, runtime=self.runtime
        )
        self.sets = ValidatorSets(self.chain)
        self.signatures = ParallelSignatures()  # workers start at the first block that needs them
        self.importer = BlockImporter(
            db=self.db,
            chain=self.chain,
            executive=self.executive,
            slot_ms=self.slot_ms,
            clock=clock,
            verifier=self.sets,
            reporter=self.transactions,
            events=self.events,
            transactions=self.pool,
            signatures=self.signatures,
        )
        self.syncer = Syncer(self.chain, self.importer, self.network)
        self.gadget = FinalityGadget(
            chain=self.chain,
            sets=self.sets,
            blocks=self.importer,
            finalizer=self.importer,
            store=KVVoteStore(self.kv),
            keystore=self.keystore,
            gossip=self.network,
            sync=self.syncer,
            reporter=self.transactions,
            round_duration=max(0.25, self.slot_ms / 4000),
        )
        self.author = Author(
            chain=self.chain,
            blocks=self.importer,
            executive=self.executive,
            pool=self.pool,
            keystore=self.keystore,
            keys=aura_keys,
            slot_ms=self.slot_ms,
            clock=clock,
            sync=self.syncer,
            network=self.network,
            finality=self.gadget,
            unsafe_equivocate=config.unsafe_equivocate,
        )
        self.bls: BlsDriver | None = None  # started by `run` on a validator with a BLS key
        self.metrics = Metrics()

        events = self.events
        events.subscribe_best(self.transactions.on_best_block)
        events.subscribe_best(self._on_chain_moved)
        events.subscribe_imported(self.gadget.on_block_imported)
        events.subscribe_finalized(self.transactions.on_finalized)
        events.subscribe_finalized(self.gadget.on_finalized)
        events.subscribe_finalized(self._on_chain_moved)
        self._refresh_metrics()

    def insert_dev_keys(self, suri: str) -> None:
        """The session keys of a dev account (//Alice ...): Aura, finality and BLS."""
        self.keystore.insert(AURA_KEY_TYPE, suri)
        self.keystore.insert(GRANDPA_KEY_TYPE, suri, scheme="ed25519")
        if not self.keystore.public_keys(BLS_KEY_TYPE):
            self.keystore.insert(BLS_KEY_TYPE, suri, scheme="bls12-381")

    @property
    def is_authority(self) -> bool:
        """Whether this node runs as a validator (holds Aura keys to author with)."""
        return bool(self.author.keys)

    @property
    def local_peer_id(self) -> str:
        return peer_id_from_public(ed25519_public_from_seed(self.node_key))

    def _init_genesis(self, genesis: Genesis) -> bytes:
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
        return genesis.hash

    def _best_for_pool(self) -> tuple[Trie, bytes, int]:
        best = self.chain.best_hash
        header = self.chain.header(best)
        assert header is not None
        return self.chain.state_at(best), best, header.number

    # ---- reactions to the chain's events -----------------------------------------------------

    def _on_chain_moved(self, *_: object) -> None:
        """A new best or finalized block: refresh the gauges and the status peers see."""
        self._refresh_metrics()
        self.network.update_status()

    def _refresh_metrics(self) -> None:
        self.metrics.set_best(self.chain.best_header().number)
        self.metrics.set_finalized(self.chain.finalized_header().number)
        self.metrics.set_ready_transactions(self.pool.ready_count(self.chain.state_at()))
        self.metrics.set_peers(self.network.peer_count())

    # ---- the services that run with the event loop -------------------------------------------

    def network_handler(self) -> NodeNetworkHandler:
        """What the p2p network delivers, and to which service."""
        return NodeNetworkHandler(
            chain=self.chain,
            blocks=self.importer,
            transactions=self.transactions,
            finality=self.gadget,
            bls=self.bls,
            sync=self.syncer,
        )

    def rpc_api(self) -> NodeRpc:
        return NodeRpc(
            spec=self.spec,
            executive=self.executive,
            chain=self.chain,
            events=self.events,
            transactions=self.transactions,
            network=self.network,
            sync=self.syncer,
            is_authority=self.is_authority,
            local_peer_id=self.local_peer_id,
        )

    def _start_bls(self) -> None:
        if not self.is_authority:
            return
        self.bls = BlsDriver.create(
            keystore=self.keystore,
            chain=self.chain,
            runtime=self.runtime,
            session_length=self.runtime_config.session.length,
            gossip=self.network,
            transactions=self.transactions,
        )
        if self.bls is not None:
            self.events.subscribe_finalized(self.bls.on_finalized)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, on_ready: Callable[[int, int | None], None] | None = None) -> None:
        server = build_rpc(self.rpc_api(), cors=self.config.rpc_cors)
        rpc_port = await server.start(self.config.rpc_host, self.config.rpc_port)
        metrics_port = None
        try:
            if self.config.prometheus_port is not None:
                metrics_port = await self.metrics.start(
                    self.config.rpc_host, self.config.prometheus_port
                )
            self._start_bls()
            if self.config.p2p_port is not None:
                await self.network.start(
                    host=self.config.p2p_host,
                    port=self.config.p2p_port,
                    node_key=self.node_key,
                    roles=ROLE_AUTHORITY if self.is_authority else ROLE_FULL,
                    bootnodes=self.config.bootnodes,
                    slots=self.config.peer_slots,
                    handler=self.network_handler(),
                )
            self._log_running(rpc_port, metrics_port)
            if on_ready is not None:
                on_ready(rpc_port, metrics_port)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.author.run(self._stopping), name="node.authoring")
                tg.create_task(self.gadget.run(self._stopping), name="node.finality")
                tg.create_task(self.syncer.run(self._stopping), name="node.sync")
                await self._stopping.wait()
        finally:
            await self.network.stop()
            if self.bls is not None:
                self.events.unsubscribe_finalized(self.bls.on_finalized)
                self.bls.close()
            await server.stop()
            if metrics_port is not None:
                await self.metrics.stop()
            self.close()

    def _log_running(self, rpc_port: int, metrics_port: int | None) -> None:
        best = self.chain.best_header()
        addresses = self.network.listen_addresses()
        log.info(
            "Running %s on %s: best #%d (0x%s..), RPC on %s:%d%s%s",
            self.config.name,
            self.spec.name,
            best.number,
            self.chain.best_hash.hex()[:12],
            self.config.rpc_host,
            rpc_port,
            f", Prometheus on port {metrics_port}" if metrics_port else "",
            f", p2p {addresses[0]}" if addresses else "",
        )

    def close(self) -> None:
        self.signatures.close()
        if not self.kv.closed:
            self.kv.close()
            log.info("Database closed")
