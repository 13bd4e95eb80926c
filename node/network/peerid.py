"""Node identity: the ed25519 node key, libp2p peer ids and `/ws` multiaddrs.

A peer id is what Substrate prints ("12D3KooW..."): base58btc of the identity multihash of the
protobuf-encoded public key, i.e. `00 24 08 01 12 20 || pubkey`. The node key is stored like
Substrate's, as 32 raw bytes in `<base>/chains/<chain id>/network/secret_ed25519` (mode 0600).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
from pathlib import Path
from typing import NewType

from chain.crypto import CryptoError, b58decode, b58encode, ed25519_public_from_seed
from node.errors import NodeError

PeerId = NewType("PeerId", str)

NODE_KEY_LENGTH = 32
NODE_KEY_FILE = "secret_ed25519"
# identity multihash (code 0, length 36) of the protobuf PublicKey {Type: Ed25519, Data: 32 bytes}
_PEER_ID_PREFIX = bytes((0x00, 0x24, 0x08, 0x01, 0x12, 0x20))


class PeerIdError(NodeError, ValueError):
    """A malformed peer id, multiaddr or node key."""


def peer_id_from_public(public: bytes) -> PeerId:
    if len(public) != 32:
        raise PeerIdError(f"ed25519 public key must be 32 bytes, got {len(public)}")
    return PeerId(b58encode(_PEER_ID_PREFIX + public))


def public_from_peer_id(peer_id: str) -> bytes:
    if len(peer_id) > 64:
        raise PeerIdError("peer id too long")
    try:
        raw = b58decode(peer_id)
    except CryptoError as exc:
        raise PeerIdError(str(exc)) from None
    if len(raw) != len(_PEER_ID_PREFIX) + 32 or not raw.startswith(_PEER_ID_PREFIX):
        raise PeerIdError(f"not an ed25519 peer id: {peer_id!r}")
    return raw[len(_PEER_ID_PREFIX) :]


def parse_peer_id(text: str) -> PeerId:
    """Validate a peer id's text (an ed25519 libp2p peer id) and return it typed."""
    public_from_peer_id(text)
    return PeerId(text)


def node_public_key(node_key: bytes) -> bytes:
    try:
        return ed25519_public_from_seed(node_key)
    except CryptoError as exc:
        raise PeerIdError(str(exc)) from exc


def peer_id_from_node_key(node_key: bytes) -> PeerId:
    return peer_id_from_public(node_public_key(node_key))


# ---- node key ---------------------------------------------------------------------------------


def node_key_path(base_path: Path, chain_id: str) -> Path:
    """Where Substrate keeps the node key: `<base>/chains/<id>/network/secret_ed25519`."""
    return Path(base_path) / "chains" / chain_id / "network" / NODE_KEY_FILE


def parse_node_key_hex(text: str) -> bytes:
    """The `--node-key` argument: 64 hex digits, with or without 0x."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        key = bytes.fromhex(body)
    except ValueError as exc:
        raise PeerIdError("node key must be hex") from exc
    if len(key) != NODE_KEY_LENGTH:
        raise PeerIdError(f"node key must be {NODE_KEY_LENGTH} bytes, got {len(key)}")
    return key


def load_or_create_node_key(path: Path) -> bytes:
    """Read the 32-byte node key at `path`, or create it (mode 0600, atomically: a temporary
    file is hard-linked into place, so two processes racing end up with the same key)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(NODE_KEY_LENGTH))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != NODE_KEY_LENGTH:
        raise PeerIdError(f"{path}: node key must be {NODE_KEY_LENGTH} raw bytes, got {len(key)}")
    return key


# ---- multiaddrs -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Multiaddr:
    """`/ip4/H/tcp/P/ws[/p2p/ID]` (also `/ip6`, `/dns`, `/dns4`, `/dns6`)."""

    host: str
    port: int
    peer_id: PeerId | None = None
    host_protocol: str = "ip4"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self.host_protocol == "ip6" else self.host
        return f"ws://{host}:{self.port}/p2p"

    def with_peer_id(self, peer_id: PeerId) -> Multiaddr:
        return dataclasses.replace(self, peer_id=peer_id)

    def with_host(self, host: str) -> Multiaddr:
        return dataclasses.replace(self, host=host, host_protocol=_host_protocol(host))

    def __str__(self) -> str:
        text = f"/{self.host_protocol}/{self.host}/tcp/{self.port}/ws"
        return text + (f"/p2p/{self.peer_id}" if self.peer_id else "")


def _host_protocol(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "dns"
    return "ip4" if ip.version == 4 else "ip6"


def make_multiaddr(host: str, port: int, peer_id: PeerId | None = None) -> Multiaddr:
    return Multiaddr(host, port, peer_id, _host_protocol(host))


def parse_multiaddr(text: str) -> Multiaddr:
    """Parse a WebSocket multiaddr; raise PeerIdError naming what is wrong."""
    if len(text) > 512:
        raise PeerIdError("multiaddr too long")
    parts = text.split("/")
    if len(parts) < 6 or parts[0] != "":
        raise PeerIdError(f"expected /ip4/HOST/tcp/PORT/ws[/p2p/PEER_ID], got {text!r}")
    proto, host, tcp, port_text, ws = parts[1:6]
    rest = parts[6:]
    if proto in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError as exc:
            raise PeerIdError(f"bad {proto} address {host!r} in {text!r}") from exc
        if (ip.version == 4) != (proto == "ip4"):
            raise PeerIdError(f"bad {proto} address {host!r} in {text!r}")
    elif proto in ("dns", "dns4", "dns6"):
        if not host or len(host) > 253 or not all(c.isalnum() or c in "-._" for c in host):
            raise PeerIdError(f"bad host name {host!r} in {text!r}")
    else:
        raise PeerIdError(f"unsupported address protocol /{proto} in {text!r}")
    if tcp != "tcp" or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PeerIdError(f"expected /tcp/PORT (1-65535) in {text!r}")
    if ws != "ws":
        raise PeerIdError(f"only /ws transports are supported, got /{ws} in {text!r}")
    peer_id: PeerId | None = None
    if rest:
        if len(rest) != 2 or rest[0] != "p2p":
            raise PeerIdError(f"unexpected trailing components in {text!r}")
        peer_id = parse_peer_id(rest[1])
    return Multiaddr(host, int(port_text), peer_id, proto)
