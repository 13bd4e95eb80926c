"""Aura block authoring: in each slot whose author (`authorities[slot % n]` in the best block's
state) is one of our keys, build a block on the best block, seal it, import it and announce it.

The slot comes from the injected clock. A slot is never sealed twice, also across restarts (the
last authored slot is stored with the block), and nothing is authored during a major sync.

Each block also carries the author's Randomness digest after Aura's (`pallets/randomness`): the
next value of its hash onion when the parent state holds a live onion of ours, else the tip of a
new onion (the next generation). The onion's seed comes from the Aura key's secret, so a restart
computes the same onion; it is computed once per (key, generation) and cached (`OnionKeeper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from chain import onion
from chain.hashing import blake2_256
from chain.primitives import Block, DigestItem, Header, encode_unsigned_extrinsic
from chain.storage.trie import Trie
from node.blocks import encode_block_item
from node.interfaces import (
    AuthoredImport,
    ChainReader,
    Clock,
    ImportedBlock,
    InstantFinality,
    PeerNetwork,
    SealedBlock,
    SyncState,
)
from node.keystore import AURA_KEY_TYPE, Keystore, Signer
from node.network import BLOCK_ANNOUNCE
from node.txpool import TxPool
from pallets.aura import pallet as aura
from pallets.executive import BuiltBlock, Executive, InvalidTransaction
from pallets.randomness import pallet as randomness

log = logging.getLogger(__name__)

AUTHORING_BUDGET = 0.4  # share of a slot spent applying transactions
ONION_SECRET_DOMAIN = b"cuckoo/randao/aura-secret/v1"  # Signer.derive_secret's domain for onions


class OnionKeeper:
    """Our hash onions, computed once per (Aura key, generation, length) and kept while they can
    still be needed (the current and the previous generation of each key). Never logs a value
    but the public tip."""

    def __init__(self) -> None:
        self._onions: dict[tuple[bytes, int, int], onion.HashOnion] = {}

    def get(self, signer: Signer, generation: int) -> onion.HashOnion:
        length = onion.ONION_LENGTH
        key = (signer.public, generation, length)
        found = self._onions.get(key)
        if found is not None:
            return found
        started = time.perf_counter()
        seed = onion.onion_seed(signer.derive_secret(ONION_SECRET_DOMAIN), generation)
        made = onion.HashOnion(seed, length)
        log.info(
            "Computed randomness onion #%d of %s (%d values, tip 0x%s..) in %.2f s",
            generation,
            signer,
            length,
            made.tip().hex()[:12],
            time.perf_counter() - started,
        )
        for old in [k for k in self._onions if k[0] == signer.public and k[1] < generation - 1]:
            del self._onions[old]
        self._onions[key] = made
        return made

    def digest(self, state: Trie, signer: Signer) -> DigestItem:
        """The rand pre-runtime digest `signer` must put in a block on `state`: the next
        reveal of its live onion, or the commit of its next onion. `RandomnessError` when the
        chain's tip is not from our onion (then no block of ours can be valid)."""
        current = randomness.Onions.get(state, signer.public)
        if randomness.is_live(current):
            assert current is not None
            value = self.get(signer, current.generation).reveal(current.revealed)
            if blake2_256(value) != current.tip:
                raise RandomnessError(
                    f"the chain's onion tip for {signer} (generation {current.generation}, "
                    f"{current.revealed} revealed) is not from our onion: cannot reveal"
                )
            payload = randomness.encode_reveal(value)
        else:
            tip = self.get(signer, randomness.next_generation(current)).tip()
            payload = randomness.encode_commit(tip)
        return DigestItem.pre_runtime(randomness.ENGINE_ID, payload)

    @staticmethod
    def generation_needed(state: Trie, author: bytes) -> int:
        """The generation of the onion the next block of `author` on `state` will use."""
        current = randomness.Onions.get(state, author)
        if randomness.is_live(current):
            assert current is not None
            return current.generation
        return randomness.next_generation(current)


class RandomnessError(Exception):
    """Our onion does not match the chain's record of it."""


@dataclasses.dataclass(kw_only=True, eq=False, slots=True)
class Author:
    """`keys`: our Aura public keys (in the keystore); none for a node that does not author.
    `unsafe_equivocate` (tests only): seal two blocks for one slot, once, with peers."""

    chain: ChainReader
    blocks: AuthoredImport
    executive: Executive
    pool: TxPool
    keystore: Keystore
    keys: frozenset[bytes]
    slot_ms: int
    clock: Clock
    sync: SyncState
    network: PeerNetwork
    finality: InstantFinality
    unsafe_equivocate: bool = False
    _equivocated: bool = dataclasses.field(init=False, default=False)
    # the Aura key of the last slot we authored (or could have)
    _signer: Signer | None = dataclasses.field(init=False, default=None)
    onions: OnionKeeper = dataclasses.field(default_factory=OnionKeeper)

    def __post_init__(self) -> None:
        if self.keys:
            self._signer = self.keystore.signer(AURA_KEY_TYPE, min(self.keys))

    def current_slot(self) -> int:
        return int(self.clock() * 1000) // self.slot_ms

    def _author_key(self, slot: int, state: Trie) -> bytes | None:
        """Our Aura key if it is the author of `slot` in `state`, else None."""
        author = aura.author_of(aura.Authorities.get(state), slot)
        return author if author is not None and author in self.keys else None

    def author_block(self, slot: int) -> ImportedBlock | None:
        """Build, seal, persist and announce a block for `slot` on top of the best block."""
        parent_hash = self.chain.best_hash
        parent = self.chain.best_header()
        state = self.chain.state_at(parent_hash)
        author = self._author_key(slot, state)
        if author is None:
            return None
        if aura.CurrentSlot.get(state) >= slot or self.blocks.last_authored_slot() >= slot:
            return None  # never seal two blocks for one slot (also across restarts)
        if self.sync.is_major_syncing():
            return None
        signer = self._signer_for(author)
        try:
            rand = self.onions.digest(state, signer)
        except RandomnessError as exc:
            log.error("Not authoring slot %d: %s", slot, exc)
            return None
        built = self._build(state, parent_hash, parent.number, slot, slot * self.slot_ms, rand)
        imported = self._seal_and_import(built, slot, signer)
        if (
            self.unsafe_equivocate
            and not self._equivocated
            and parent.number >= 3  # once the network is up: both blocks must reach peers
            and self.network.peer_count() >= 2
        ):
            self._equivocated = True
            self._equivocate(state, parent_hash, parent.number, slot, signer, rand)
        return imported

    def _signer_for(self, author: bytes) -> Signer:
        if self._signer is None or self._signer.public != author:
            self._signer = self.keystore.signer(AURA_KEY_TYPE, author, scheme="sr25519")
        return self._signer

    def _build(
        self,
        state: Trie,
        parent_hash: bytes,
        parent_number: int,
        slot: int,
        now_ms: int,
        rand: DigestItem,
    ) -> BuiltBlock:
        runtime = self.executive.runtime
        digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little")), rand]
        builder = self.executive.begin_block(state, parent_hash, parent_number + 1, digest)
        ts_call = runtime.call_type.encode(runtime.call("Timestamp", "set", now=now_ms))
        builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
        deadline = time.monotonic() + self.slot_ms / 1000 * AUTHORING_BUDGET
        for tx in list(self.pool.ready(state)):
            if time.monotonic() > deadline:
                break
            try:
                if tx.checked is not None:
                    builder.apply_checked(tx.checked)
                else:
                    builder.apply(tx.raw)
            except InvalidTransaction as exc:
                if exc.kind == "ExhaustsResources":
                    break
                if exc.kind != "Future":
                    log.info("Dropped transaction 0x%s: %s", tx.hash.hex()[:16], exc)
                    self.pool.drop(tx.hash)
        return builder.finalize()

    def _seal_and_import(self, built: BuiltBlock, slot: int, signer: Signer) -> ImportedBlock:
        header = _seal(built, signer)
        justification = self.finality.instant_justification(header)
        imported = self.blocks.import_authored(
            SealedBlock(header, built, slot, signer.public, justification)
        )
        n_tx = len(built.extrinsics) - 1
        log.info(
            "Prepared block #%d (0x%s..) with %d transaction%s",
            header.number,
            imported.hash.hex()[:12],
            n_tx,
            "" if n_tx == 1 else "s",
        )
        self._announce(Block(header, built.extrinsics), justification)
        return imported

    def _equivocate(
        self,
        state: Trie,
        parent_hash: bytes,
        parent_number: int,
        slot: int,
        signer: Signer,
        rand: DigestItem,
    ) -> None:
        """Test-only misbehaviour: a second, different block for the same slot, announced."""
        built = self._build(state, parent_hash, parent_number, slot, slot * self.slot_ms + 1, rand)
        header = _seal(built, signer)
        self.blocks.store_equivocation(SealedBlock(header, built, slot, signer.public, None))
        log.warning(
            "EQUIVOCATING (--unsafe-test-equivocate): second block #%d (0x%s..) for slot %d",
            header.number,
            header.hash().hex()[:12],
            slot,
        )
        self._announce(Block(header, built.extrinsics), None)

    def _announce(self, block: Block, justification: bytes | None) -> None:
        self.network.broadcast(BLOCK_ANNOUNCE, encode_block_item(block, justification))

    # ---- the loop -----------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Author in every slot until `stopping` is set."""
        if not self.keys:
            log.info("Not a validator: no authoring key")
            return
        log.info(
            "Authoring with Aura key%s %s, slot %d ms",
            "" if len(self.keys) == 1 else "s",
            ", ".join(str(self.keystore.signer(AURA_KEY_TYPE, k)) for k in sorted(self.keys)),
            self.slot_ms,
        )
        await self._prepare_onions()
        while not stopping.is_set():
            slot = self.current_slot()
            try:
                self.author_block(slot)
            except Exception:
                log.exception("Authoring slot %d failed", slot)
            next_ms = (slot + 1) * self.slot_ms
            delay = max(next_ms - self.clock() * 1000, 0) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay + 0.001)

    async def _prepare_onions(self) -> None:
        """Compute our onions before the first slot, off the event loop (~1 s each); the
        chain's state is read here, on the loop."""
        state = self.chain.state_at(self.chain.best_hash)
        for key in sorted(self.keys):
            signer = self._signer_for(key)
            generation = self.onions.generation_needed(state, key)
            try:
                await asyncio.to_thread(self.onions.get, signer, generation)
            except Exception:
                log.exception("Computing the randomness onion failed")


def _seal(built: BuiltBlock, signer: Signer) -> Header:
    seal = DigestItem.seal(aura.ENGINE_ID, signer.sign(built.header.hash()))
    return dataclasses.replace(built.header, digest=(*built.header.digest, seal))
