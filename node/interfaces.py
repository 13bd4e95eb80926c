"""What the node's services need from each other, in one place.

`Node` (node/service.py) builds the services and hands each one the others through these
protocols, in its constructor; a service never imports another service's module or the `Node`.
Tests drive a service alone with fakes of the protocols it takes.

    service                               takes
    BlockImporter (importer.py)           ChainReader, JustificationVerifier,
                                          EquivocationReporter, Clock, CheckedTransactions
    Transactions (transactions.py)        ChainReader, Gossip
    NetworkLink (netbridge.py)            ChainReader
    Syncer (sync.py)                      ChainReader, BlockImport, PeerNetwork
    Author (authoring.py)                 ChainReader, AuthoredImport, SyncState, PeerNetwork,
                                          InstantFinality, Clock
    FinalityGadget (finality/gadget.py)   ChainReader, BlockImport, Finalizer, Gossip,
                                          SyncTrigger, EquivocationReporter
    BlsDriver (finality/bls_driver.py)    ChainReader, Gossip, TransactionSubmit
    NodeNetworkHandler (netbridge.py)     ChainReader, BlockImport, PeerTransactions,
                                          FinalityGossip, BlsPartials, SyncTrigger
    NodeRpc (rpc/api.py)                  ChainReader, ChainNotifications, PendingTransactions,
                                          PeerNetwork, SyncState
    ChainHead, Archive, TransactionWatch  ChainReader, ChainNotifications, PendingTransactions
      (rpc/chainhead.py, rpc/spec_v1.py)

Besides these, a service may hold plain values and the node's leaf modules (the chain database,
the keystore, the executive, the pool). The chain's events reach the services that react to them
through `ChainNotifications` subscriptions made by the `Node`.

Blocks are identified by their 32-byte hash throughout; "the chain" is the block tree in the
node's database, with its best block (fork choice) and its last finalized block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from chain.consensus import EquivocationProof, Justification
from chain.primitives import Block, Header
from chain.storage.trie import Trie
from node.network import PeerId, PeerInfo
from node.verdict import Verdict
from pallets.executive import BuiltBlock, CheckedExtrinsic

Clock = Callable[[], float]
"""The wall clock, in seconds since the Unix epoch (`time.time` unless a test sets it)."""

TxWatcher = Callable[[Any], None]
"""Called with each status of a watched transaction ("ready", {"inBlock": h}, ...)."""


@dataclasses.dataclass(frozen=True)
class ImportedBlock:
    hash: bytes
    header: Header
    extrinsics: tuple[bytes, ...]
    changes: dict[bytes, bytes | None]  # the storage writes of the block (None: deleted)
    finalized: bool


@dataclasses.dataclass(frozen=True)
class SealedBlock:
    """A block this node built and sealed, to store without executing it again."""

    header: Header  # with the seal
    built: BuiltBlock  # its extrinsics, new trie nodes and storage writes
    slot: int
    author: bytes  # the Aura key that sealed it
    justification: bytes | None  # one that makes it final at once (dev chains), or None


BlockListener = Callable[[ImportedBlock], None]
FinalityListener = Callable[[bytes, Header], None]  # (block hash, header)


# ---- the chain ----------------------------------------------------------------------------------


class ChainReader(Protocol):
    """A read-only view of the chain."""

    @property
    def genesis_hash(self) -> bytes: ...

    @property
    def best_hash(self) -> bytes: ...

    def best_header(self) -> Header: ...

    @property
    def finalized_hash(self) -> bytes: ...

    def finalized_header(self) -> Header: ...

    def header(self, block_hash: bytes) -> Header | None: ...

    def block(self, block_hash: bytes) -> Block | None: ...

    def justification(self, block_hash: bytes) -> bytes | None: ...

    def hash_at(self, number: int) -> bytes | None:
        """The canonical block at `number` (on the best chain)."""
        ...

    def is_descendant(self, base: bytes, block_hash: bytes) -> bool:
        """Whether `block_hash` is `base` or one of its descendants."""
        ...

    def leaves(self) -> list[tuple[int, bytes]]:
        """The tips of every known fork, (number, hash), highest first (some may be on forks
        that can no longer be finalized)."""
        ...

    def state_at(self, block_hash: bytes | None = None) -> Trie:
        """The state after `block_hash` (default: the best block)."""
        ...

    def block_item(self, number: int) -> bytes | None:
        """The canonical block at `number` with its justification, encoded as peers send it
        (node.blocks.encode_block_item); None past the best block."""
        ...


class ChainNotifications(Protocol):
    """Subscriptions to the chain's events. Listeners run synchronously, in the event loop, in
    the order they subscribed; one that raises is logged and the others still run."""

    def subscribe_best(self, listener: BlockListener) -> None:
        """Each block that becomes the best block (authored here or imported)."""
        ...

    def unsubscribe_best(self, listener: BlockListener) -> None: ...

    def subscribe_imported(self, listener: BlockListener) -> None:
        """Each block imported from elsewhere (peers, sync, files), best or not, once it is
        stored and before its justification is applied."""
        ...

    def unsubscribe_imported(self, listener: BlockListener) -> None: ...

    def subscribe_finalized(self, listener: FinalityListener) -> None:
        """Each block that becomes the last finalized one."""
        ...

    def unsubscribe_finalized(self, listener: FinalityListener) -> None: ...


class BlockImport(Protocol):
    """Blocks and justifications from elsewhere into the chain."""

    def import_block(self, block: Block, justification: bytes | None = None) -> ImportedBlock:
        """Check, execute and store `block`, then apply its justification. Raises
        pallets.executive.InvalidBlock; node.blocks.AlreadyKnown, UnknownParent and NotNow
        (subclasses of it) are not faults of the sender."""
        ...

    def apply_justification(self, block_hash: bytes, raw: bytes) -> None:
        """Verify a justification of a stored block and finalize it (or keep the justification
        when the block is final already). Raises chain.consensus.ConsensusError."""
        ...

    def defer_justification(self, block_hash: bytes, raw: bytes) -> None:
        """Hold a justification of a block not imported yet; it is applied on import."""
        ...


class Finalizer(Protocol):
    def finalize(self, block_hash: bytes, justification: bytes | None) -> None:
        """Make a stored block final (a block that conflicts with the finalized one, or is not
        above it, is refused: finality never reverts)."""
        ...


class AuthoredImport(Protocol):
    """Blocks authored by this node into the chain (no re-execution: the author built them)."""

    def last_authored_slot(self) -> int:
        """The last slot this node sealed a block for (-1: none), kept across restarts."""
        ...

    def import_authored(self, block: SealedBlock) -> ImportedBlock:
        """Store the block as the new best one, final at once when it has a justification."""
        ...

    def store_equivocation(self, block: SealedBlock) -> None:
        """Test-only misbehaviour: store a second block for a slot, beside the best chain."""
        ...


class JustificationVerifier(Protocol):
    def verify_justification(self, header: Header, raw: bytes) -> Justification:
        """Check `raw` against the validator set that finalizes the block with `header` (its
        parent is stored; the block need not be). Raises chain.consensus.ConsensusError."""
        ...


class InstantFinality(Protocol):
    def instant_justification(self, header: Header) -> bytes | None:
        """When this node alone finalizes (a single validator holding the key: dev chains), the
        justification that makes the block with `header` final as it is authored; else None."""
        ...


# ---- transactions -------------------------------------------------------------------------------


class TransactionSubmit(Protocol):
    def submit_extrinsic(self, raw: bytes, watcher: TxWatcher | None = None) -> tuple[bytes, str]:
        """Into the pool, then gossiped to peers: (hash, "ready" | "future"). Raises
        node.txpool.PoolError."""
        ...


class PendingTransactions(TransactionSubmit, Protocol):
    def pending(self) -> list[bytes]:
        """The pool's transactions."""
        ...

    def unwatch(self, tx_hash: bytes, watcher: TxWatcher) -> None: ...

    def next_index(self, who: bytes, on_chain_nonce: int) -> int:
        """The next nonce of `who` after the ones it has in the pool."""
        ...


class CheckedTransactions(Protocol):
    def checked(self, tx_hash: bytes) -> CheckedExtrinsic | None:
        """The checked form of a transaction this node holds (decoded call, verified
        signature), for block import to reuse; None if it holds none."""
        ...


class PeerTransactions(Protocol):
    def submit_from_peer(self, raw: bytes) -> None:
        """A transaction gossiped by a peer, into the pool (not gossiped again: the network
        relays what the node accepts). Raises node.txpool.PoolError."""
        ...


class EquivocationReporter(Protocol):
    def report_equivocation(self, proof: EquivocationProof) -> None:
        """Report an offence on chain (once per offence)."""
        ...


# ---- network and sync ---------------------------------------------------------------------------


class Gossip(Protocol):
    def broadcast(self, kind: int, payload: bytes) -> int:
        """Send a gossip message of `kind` (node.network) to the peers; how many got it."""
        ...


class PeerNetwork(Gossip, Protocol):
    """The p2p network as the node's services use it (no peers while it is not running)."""

    def peers(self) -> list[PeerInfo]: ...

    def peer_count(self) -> int: ...

    def best_peer_number(self) -> int | None: ...

    def listen_addresses(self) -> list[str]: ...

    async def request_blocks(self, peer_id: PeerId, from_number: int, count: int) -> list[bytes]:
        """Encoded block items from a peer's canonical chain. Raises
        node.network.NetworkError."""
        ...

    def report(self, peer_id: PeerId, reason: str, ban: bool) -> None: ...


class SyncTrigger(Protocol):
    def wake(self) -> None:
        """A peer may have blocks we lack: look now rather than at the next poll."""
        ...


class SyncState(Protocol):
    @property
    def starting_block(self) -> int: ...

    def highest_block(self) -> int: ...

    def is_major_syncing(self) -> bool:
        """Whether the best peer is several blocks ahead of us."""
        ...


# ---- finality messages --------------------------------------------------------------------------


class FinalityGossip(Protocol):
    def on_vote(self, raw: bytes) -> Verdict: ...

    def on_commit(self, raw: bytes) -> Verdict: ...


class BlsPartials(Protocol):
    async def on_partial(self, raw: bytes) -> Verdict: ...
