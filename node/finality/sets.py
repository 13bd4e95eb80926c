"""The validator sets of finality, read from the chain: which set finalizes a block, and the
check of a justification against it (`node.interfaces.JustificationVerifier`).

The set that finalizes a block B is the `Finality` pallet's set in the state of B's parent (the
genesis block: its own); a block that enacts a new set is finalized by the old one.
"""

from __future__ import annotations

from chain.consensus import ConsensusError, Justification
from chain.primitives import Header
from node.errors import StateDiscarded
from node.interfaces import ChainReader
from pallets.finality import pallet as finality

SET_CACHE = 4096  # blocks whose set is remembered


class ValidatorSets:
    def __init__(self, chain: ChainReader) -> None:
        self._chain = chain
        self._cache: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}

    def set_of(self, block_hash: bytes) -> tuple[int, tuple[bytes, ...]]:
        """(set id, ed25519 keys) in force in the state of `block_hash`."""
        cached = self._cache.get(block_hash)
        if cached is not None:
            return cached
        try:
            state = self._chain.state_at(block_hash)
        except StateDiscarded as exc:  # a block older than the pruning window
            raise ConsensusError(f"cannot read the validator set: {exc}") from exc
        out = (finality.CurrentSetId.get(state), tuple(finality.Authorities.get(state)))
        if len(self._cache) > SET_CACHE:
            self._cache.clear()
        self._cache[block_hash] = out
        return out

    def finalizing_set(self, block_hash: bytes) -> tuple[int, tuple[bytes, ...]]:
        """The set that finalizes `block_hash`: the one in its parent's state."""
        header = self._chain.header(block_hash)
        if header is None:
            raise ConsensusError(f"unknown block 0x{block_hash.hex()}")
        return self._finalizing_set_of(header)

    def _finalizing_set_of(self, header: Header) -> tuple[int, tuple[bytes, ...]]:
        if header.number == 0:
            return self.set_of(header.hash())
        return self.set_of(header.parent_hash)

    def verify_justification(self, header: Header, raw: bytes) -> Justification:
        """Check `raw` against the set that finalizes the block with `header`; raises
        ConsensusError. Only the block's parent must be stored: block import checks a block's
        justification before it writes the block."""
        try:
            just = Justification.decode(raw)
        except Exception as exc:
            raise ConsensusError(f"undecodable justification: {exc}") from exc
        if just.target_hash != header.hash() or just.target_number != header.number:
            raise ConsensusError("justification is for another block")
        set_id, authorities = self._finalizing_set_of(header)
        just.verify(set_id, authorities)
        return just
