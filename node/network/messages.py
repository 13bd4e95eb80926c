"""Wire format of the p2p protocol: every WebSocket binary frame is `kind (u8) || payload`.

The handshake is two frames each way (HELLO, then AUTH); everything else follows it. Payloads
are SCALE-like (chain.codec); gossip payloads are opaque bytes given by the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chain.codec import (
    CodecError,
    Decoder,
    encode_bytes,
    encode_compact,
    encode_str,
    encode_u8,
    encode_u16,
    encode_u32,
    encode_u64,
)
from node.errors import NodeError

PROTOCOL_NAME = "/cuckoo/1"
PROTOCOL_VERSION = 1
AUTH_DOMAIN = b"cuckoo-p2p-auth"

# roles (Substrate's bitflags)
ROLE_FULL = 1
ROLE_LIGHT = 2
ROLE_AUTHORITY = 4

# frame kinds
HELLO = 0
AUTH = 1
STATUS = 2
BLOCK_ANNOUNCE = 3
TRANSACTIONS = 4
VOTE = 5
COMMIT = 6
BLS_PARTIAL = 7
BLOCK_REQUEST = 8
BLOCK_RESPONSE = 9
PEERS = 10
PING = 11
PONG = 12

GOSSIP_KINDS = frozenset((BLOCK_ANNOUNCE, TRANSACTIONS, VOTE, COMMIT, BLS_PARTIAL))
KIND_NAMES = {
    HELLO: "hello",
    AUTH: "auth",
    STATUS: "status",
    BLOCK_ANNOUNCE: "block-announce",
    TRANSACTIONS: "transactions",
    VOTE: "vote",
    COMMIT: "commit",
    BLS_PARTIAL: "bls-partial",
    BLOCK_REQUEST: "block-request",
    BLOCK_RESPONSE: "block-response",
    PEERS: "peers",
    PING: "ping",
    PONG: "pong",
}

MAX_FRAME_BYTES = 4 * 1024 * 1024  # any frame but a block response
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a block response frame
MAX_BLOCKS_PER_REQUEST = 128
MAX_PEERS_PER_MESSAGE = 32
MAX_ADDRESS_LENGTH = 256
NONCE_LENGTH = 32
_RESPONSE_HEADER_BYTES = 1 + 8 + 5  # kind, request id, compact item count


class NetworkError(NodeError):
    """A network operation failed (not connected, timed out, rejected, disconnected)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    best_number: int
    best_hash: bytes
    finalized_number: int
    finalized_hash: bytes

    def encode(self) -> bytes:
        return (
            encode_u32(self.best_number)
            + self.best_hash
            + encode_u32(self.finalized_number)
            + self.finalized_hash
        )

    @classmethod
    def decode_from(cls, d: Decoder) -> Status:
        return cls(d.u32(), d.read(32), d.u32(), d.read(32))

    @classmethod
    def decode(cls, data: bytes) -> Status:
        d = Decoder(data)
        out = cls.decode_from(d)
        d.finish()
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    protocol: str
    version: int
    genesis_hash: bytes
    roles: int
    public_key: bytes  # ed25519, the sender's node key
    listen_address: str  # multiaddr or ""
    status: Status
    nonce: bytes

    def encode(self) -> bytes:
        return (
            encode_str(self.protocol)
            + encode_u32(self.version)
            + self.genesis_hash
            + encode_u8(self.roles)
            + self.public_key
            + encode_str(self.listen_address)
            + self.status.encode()
            + self.nonce
        )

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        d = Decoder(data)
        protocol = _bounded_str(d, 64)
        version = d.u32()
        genesis = d.read(32)
        roles = d.u8()
        public = d.read(32)
        address = _bounded_str(d, MAX_ADDRESS_LENGTH)
        status = Status.decode_from(d)
        nonce = d.read(NONCE_LENGTH)
        d.finish()
        return cls(protocol, version, genesis, roles, public, address, status, nonce)


def auth_payload(genesis_hash: bytes, other_nonce: bytes, own_public: bytes) -> bytes:
    """What each side signs with its node key to prove it holds it, bound to this connection
    by the other side's fresh nonce."""
    return AUTH_DOMAIN + genesis_hash + other_nonce + own_public


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + payload


def encode_block_request(request_id: int, from_number: int, count: int) -> bytes:
    return frame(
        BLOCK_REQUEST, encode_u64(request_id) + encode_u32(from_number) + encode_u16(count)
    )


def decode_block_request(payload: bytes) -> tuple[int, int, int]:
    d = Decoder(payload)
    out = (d.u64(), d.u32(), d.u16())
    d.finish()
    return out


def truncate_response(items: Sequence[bytes], max_count: int) -> list[bytes]:
    """The longest prefix of `items` (at most `max_count`) whose response frame fits the cap."""
    out: list[bytes] = []
    size = _RESPONSE_HEADER_BYTES
    for item in items[:max_count]:
        size += len(encode_compact(len(item))) + len(item)
        if size > MAX_RESPONSE_BYTES:
            break
        out.append(item)
    return out


def encode_block_response(request_id: int, items: Sequence[bytes]) -> bytes:
    return frame(
        BLOCK_RESPONSE,
        encode_u64(request_id)
        + encode_compact(len(items))
        + b"".join(encode_bytes(i) for i in items),
    )


def decode_block_response(payload: bytes) -> tuple[int, list[bytes]]:
    d = Decoder(payload)
    request_id = d.u64()
    n = d.compact()
    if n > MAX_BLOCKS_PER_REQUEST:
        raise CodecError(f"block response with {n} items")
    items = [d.bytes() for _ in range(n)]
    d.finish()
    return request_id, items


def encode_peers(addresses: Sequence[str]) -> bytes:
    chosen = list(addresses[:MAX_PEERS_PER_MESSAGE])
    return frame(PEERS, encode_compact(len(chosen)) + b"".join(encode_str(a) for a in chosen))


def decode_peers(payload: bytes) -> list[str]:
    d = Decoder(payload)
    n = d.compact()
    if n > MAX_PEERS_PER_MESSAGE:
        raise CodecError(f"{n} addresses in one peers message")
    out = [_bounded_str(d, MAX_ADDRESS_LENGTH) for _ in range(n)]
    d.finish()
    return out


def encode_ping(kind: int, nonce: int) -> bytes:
    return frame(kind, encode_u64(nonce))


def decode_ping(payload: bytes) -> int:
    d = Decoder(payload)
    out = d.u64()
    d.finish()
    return out


def _bounded_str(d: Decoder, limit: int) -> str:
    start = d.pos
    n = d.compact()
    if n > limit:
        raise CodecError(f"string of {n} bytes at offset {start}, at most {limit}")
    d.pos = start
    return d.str()
