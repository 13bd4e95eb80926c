"""Block import: blocks from elsewhere (checked and re-executed) and from this node's author go
into the chain database, justifications finalize them, and the chain's events go out.

An imported block must descend from the last finalized block, carry an Aura pre-runtime digest
for a slot that is not in the future (by the injected clock), and the seal of that slot's
author in its parent's state (`authorities[slot % n]`); then it is re-executed (state and
extrinsics roots). Each extrinsic is decoded once; one the pool holds is neither decoded nor
verified again (its checked form is reused); the other signatures are checked by worker
processes while the block executes (`node.sigcheck`). The best block is the longest chain that
contains the finalized block. Two blocks sealed by one author for one slot are reported as an
equivocation.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence

from chain.consensus import ConsensusError, SlotEquivocation, check_seal, header_slot
from chain.primitives import Block, Header
from chain.storage.trie import Trie
from node.blocks import AlreadyKnown, NotNow, UnknownParent
from node.chaindb import ChainDB
from node.interfaces import (
    ChainReader,
    CheckedTransactions,
    Clock,
    EquivocationReporter,
    ImportedBlock,
    JustificationVerifier,
    SealedBlock,
)
from node.notifications import ChainEvents
from node.sigcheck import ParallelSignatures
from pallets.aura import pallet as aura
from pallets.executive import (
    BuiltBlock,
    Executive,
    InvalidBlock,
    decode_block_extrinsics,
    execute_decoded,
    signature_jobs,
)

log = logging.getLogger(__name__)

FUTURE_DRIFT_MS = 500  # a block's slot may start at most this far in our future
FAR_FUTURE_SLOTS = 4  # beyond this many slots ahead, a block is invalid (not just early)
SEEN_SLOTS = 2048  # (slot, author) pairs remembered to detect two blocks for one slot


@dataclasses.dataclass(kw_only=True, frozen=True, eq=False, slots=True)
class BlockImporter:
    """`BlockImport`, `Finalizer` and `AuthoredImport` (node.interfaces) over the chain
    database; publishes to `events`."""

    db: ChainDB
    chain: ChainReader
    executive: Executive
    slot_ms: int
    clock: Clock
    verifier: JustificationVerifier
    reporter: EquivocationReporter
    events: ChainEvents
    # the pool: the transactions it checked are not decoded, nor their signatures verified, again
    transactions: CheckedTransactions | None = None
    # worker processes that check a block's signatures while it executes (None: inline)
    signatures: ParallelSignatures | None = None
    # justifications of blocks not imported yet
    _deferred: dict[bytes, bytes] = dataclasses.field(init=False, default_factory=dict)
    _seen_slots: collections.OrderedDict[tuple[int, bytes], Header] = dataclasses.field(
        init=False, default_factory=collections.OrderedDict
    )

    # ---- blocks from elsewhere ----------------------------------------------------------------

    def import_block(self, block: Block, justification: bytes | None = None) -> ImportedBlock:
        """Import a block from elsewhere (sync, gossip, files, tests): check that it descends
        from the last finalized block, its slot, its author and seal, and its justification if
        it has one; re-execute; persist; apply the justification. Raises InvalidBlock
        (AlreadyKnown, UnknownParent, NotNow: not faults), and then nothing was written.

        A bad justification refuses the whole block, like a bad seal: the store stays as it was
        and the sender is banned; an honest peer serves the block again. (Substrate's GRANDPA
        block import stores such a block without the justification and lowers the sender's
        reputation; refusing it keeps one write per block and one verdict per message.)"""
        db = self.db
        unsealed, seal = block.header.without_seal()
        block_hash = block.header.hash()
        if db.header(block_hash) is not None:
            raise AlreadyKnown("block already imported")
        parent = db.header(unsealed.parent_hash)
        if parent is None:
            raise UnknownParent("unknown parent")
        if unsealed.number != parent.number + 1:
            raise InvalidBlock("block number does not follow its parent")
        fin = self.chain.finalized_header()
        if unsealed.number <= fin.number or not db.is_descendant(
            self.chain.finalized_hash, unsealed.parent_hash
        ):
            raise InvalidBlock(
                f"block #{unsealed.number} does not descend from the finalized #{fin.number}"
            )
        slot = header_slot(unsealed)
        if slot is None:
            raise InvalidBlock("block has no Aura pre-runtime digest")
        now_ms = self.clock() * 1000
        if slot * self.slot_ms > now_ms + FAR_FUTURE_SLOTS * self.slot_ms:
            raise InvalidBlock(f"block is for slot {slot}, far in the future")
        if slot * self.slot_ms > now_ms + FUTURE_DRIFT_MS:
            raise NotNow(f"block is for slot {slot}, in the future")
        state = db.state_at_root(parent.state_root)
        author = aura.author_of(aura.Authorities.get(state), slot)
        if seal is None or seal.engine != aura.ENGINE_ID:
            raise InvalidBlock("block has no Aura seal")
        if author is None or not check_seal(block.header, author):
            raise InvalidBlock("bad Aura seal: not sealed by the slot's author")
        if justification is not None:  # checked before anything is written
            try:
                self.verifier.verify_justification(block.header, justification)
            except ConsensusError as exc:
                raise InvalidBlock(f"invalid justification: {exc}") from exc
        built = self._execute(state, unsealed, block.extrinsics)
        is_best = unsealed.number > self.chain.best_header().number
        db.commit_block(
            block.header, block.extrinsics, built.nodes, is_best=is_best, is_finalized=False
        )
        imported = ImportedBlock(
            block_hash, block.header, block.extrinsics, built.changes, finalized=False
        )
        self._check_slot_equivocation(block.header, slot, author)
        if is_best:
            self.events.publish_best(imported)
        self.events.publish_imported(imported)
        deferred = self._deferred.pop(block_hash, None)
        if justification is not None:
            self._apply_verified(block_hash, block.header, justification)
        elif deferred is not None:
            try:
                self.apply_justification(block_hash, deferred)
            except ConsensusError as exc:  # gossip held for this block: not its sender's fault
                log.debug("Dropped a held justification of #%d: %s", unsealed.number, exc)
        return imported

    def _execute(self, state: Trie, unsealed: Header, extrinsics: Sequence[bytes]) -> BuiltBlock:
        """Re-execute a block: decoded once, the pool's checks reused, the remaining signatures
        checked on the other cores meanwhile. Raises InvalidBlock."""
        known = self.transactions.checked if self.transactions is not None else None
        items = decode_block_extrinsics(self.executive, extrinsics, known)
        if self.signatures is None:
            return execute_decoded(self.executive, state, unsealed, items)
        jobs = signature_jobs(self.executive, state, unsealed, items)
        checks = self.signatures.start(jobs, extrinsics)
        try:
            return execute_decoded(
                self.executive,
                state,
                unsealed,
                items,
                signature_check=checks,
                extrinsics_root=checks.extrinsics_root,
                settle=checks.settle,
            )
        finally:
            checks.cancel()

    def defer_justification(self, block_hash: bytes, raw: bytes) -> None:
        self._deferred[block_hash] = raw

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
            self.reporter.report_equivocation(SlotEquivocation(author, slot, first, header))

    # ---- blocks authored here -----------------------------------------------------------------

    def last_authored_slot(self) -> int:
        return self.db.last_authored_slot()

    def import_authored(self, block: SealedBlock) -> ImportedBlock:
        header, built = block.header, block.built
        is_final = block.justification is not None
        block_hash = self.db.commit_block(
            header,
            built.extrinsics,
            built.nodes,
            is_best=True,
            is_finalized=is_final,
            justification=block.justification,
            authored_slot=block.slot,
        )
        imported = ImportedBlock(
            block_hash, header, built.extrinsics, built.changes, finalized=is_final
        )
        self._seen_slots.setdefault((block.slot, block.author), header)
        self.events.publish_best(imported)
        if is_final:
            self._after_finalize(block_hash, header)
        return imported

    def store_equivocation(self, block: SealedBlock) -> None:
        built = block.built
        self.db.commit_block(
            block.header, built.extrinsics, built.nodes, is_best=False, is_finalized=False
        )

    # ---- finality -----------------------------------------------------------------------------

    def apply_justification(self, block_hash: bytes, raw: bytes) -> None:
        """Verify a justification for a known block; finalize it if it is ahead, else keep it.
        Raises ConsensusError when it does not verify."""
        header = self.db.header(block_hash)
        if header is None:
            raise ConsensusError("justification for an unknown block")
        self.verifier.verify_justification(header, raw)
        self._apply_verified(block_hash, header, raw)

    def _apply_verified(self, block_hash: bytes, header: Header, raw: bytes) -> None:
        if header.number > self.chain.finalized_header().number:
            self.finalize(block_hash, raw)
        elif self.db.justification(block_hash) is None and self.db.is_descendant(
            block_hash, self.chain.finalized_hash
        ):
            self.db.store_justification(block_hash, raw)

    def finalize(self, block_hash: bytes, justification: bytes | None) -> None:
        """Make `block_hash` final. A block that is not a descendant of the finalized one is
        refused (finality never reverts)."""
        header = self.db.header(block_hash)
        fin = self.chain.finalized_header()
        if header is None or header.number <= fin.number:
            return
        if not self.db.is_descendant(self.chain.finalized_hash, block_hash):
            log.error(
                "Refusing to finalize #%d (0x%s..): it conflicts with finalized #%d",
                header.number,
                block_hash.hex()[:12],
                fin.number,
            )
            return
        old_best = self.chain.best_hash
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
        self.events.publish_finalized(block_hash, header)
