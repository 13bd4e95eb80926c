"""Blocks as peers exchange them, and the outcomes of block import that are not faults.

A *block item* is a block with its optional justification: what block announcements and block
responses carry (node.network's BLOCK_ANNOUNCE and block requests).
"""

from __future__ import annotations

from chain.codec import CodecError, Decoder, encode_bytes
from chain.primitives import Block
from pallets.executive import InvalidBlock


def encode_block_item(block: Block, justification: bytes | None) -> bytes:
    """A block with its optional justification, as sent in announcements and responses."""
    opt = b"\x00" if justification is None else b"\x01" + encode_bytes(justification)
    return encode_bytes(block.encode()) + opt


def decode_block_item(data: bytes) -> tuple[Block, bytes | None]:
    d = Decoder(data)
    block = Block.decode(d.bytes())
    flag = d.u8()
    if flag not in (0, 1):
        raise CodecError("bad justification option")
    justification = d.bytes() if flag == 1 else None
    d.finish()
    return block, justification


class UnknownParent(InvalidBlock):
    """The block's parent is not in our database (not a fault of the sender)."""


class AlreadyKnown(InvalidBlock):
    """The block is already imported."""


class NotNow(InvalidBlock):
    """Valid perhaps, but not importable now (e.g. a slot slightly in the future)."""
