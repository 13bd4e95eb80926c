"""The read side of the chain database, as the node's services see it (`ChainReader`)."""

from __future__ import annotations

from chain.primitives import Block, Header
from chain.storage.trie import Trie
from node.blocks import encode_block_item
from node.chaindb import ChainDB, ChainDBError


class ChainView:
    """`node.interfaces.ChainReader` over the chain database."""

    def __init__(self, db: ChainDB, genesis_hash: bytes) -> None:
        self.db = db
        self.genesis_hash = genesis_hash

    @property
    def best_hash(self) -> bytes:
        return self.db.best_hash()

    def best_header(self) -> Header:
        return self._stored_header(self.best_hash)

    @property
    def finalized_hash(self) -> bytes:
        return self.db.finalized_hash()

    def finalized_header(self) -> Header:
        return self._stored_header(self.finalized_hash)

    def _stored_header(self, block_hash: bytes) -> Header:
        header = self.db.header(block_hash)
        if header is None:
            raise ChainDBError(f"the header of the head block 0x{block_hash.hex()} is missing")
        return header

    def header(self, block_hash: bytes) -> Header | None:
        return self.db.header(block_hash)

    def block(self, block_hash: bytes) -> Block | None:
        header = self.db.header(block_hash)
        body = self.db.body(block_hash)
        if header is None or body is None:
            return None
        return Block(header, tuple(body))

    def justification(self, block_hash: bytes) -> bytes | None:
        return self.db.justification(block_hash)

    def hash_at(self, number: int) -> bytes | None:
        return self.db.hash_at(number)

    def is_descendant(self, base: bytes, block_hash: bytes) -> bool:
        return self.db.is_descendant(base, block_hash)

    def leaves(self) -> list[tuple[int, bytes]]:
        return self.db.leaves()

    def state_at(self, block_hash: bytes | None = None) -> Trie:
        return self.db.state_at(block_hash or self.best_hash)

    def block_item(self, number: int) -> bytes | None:
        h = self.db.hash_at(number)
        if h is None:
            return None
        block = self.block(h)
        if block is None:
            return None
        return encode_block_item(block, self.db.justification(h))
