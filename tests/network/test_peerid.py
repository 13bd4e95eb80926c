import os
import stat

import pytest

from node.network.peerid import (
    Multiaddr,
    PeerIdError,
    load_or_create_node_key,
    node_key_path,
    parse_multiaddr,
    parse_node_key_hex,
    peer_id_from_node_key,
    peer_id_from_public,
    public_from_peer_id,
)

# Substrate's well-known `--node-key 0000...0001` (the tutorials' bootnode)
SUBSTRATE_VECTOR = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"


def test_peer_id_from_node_key_matches_substrate():
    assert peer_id_from_node_key(bytes(31) + b"\x01") == SUBSTRATE_VECTOR


def test_peer_id_round_trips():
    for seed in (bytes(32), b"\xff" * 32, bytes(range(32))):
        pid = peer_id_from_node_key(seed)
        assert pid.startswith("12D3KooW")
        public = public_from_peer_id(pid)
        assert len(public) == 32
        assert peer_id_from_public(public) == pid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12D3KooW",
        SUBSTRATE_VECTOR[:-1],
        SUBSTRATE_VECTOR + "1",
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # a sha256 (RSA) peer id
        "0OIl" * 10,  # not base58
    ],
)
def test_public_from_peer_id_rejects(text):
    with pytest.raises(PeerIdError):
        public_from_peer_id(text)


def test_peer_id_from_public_rejects_wrong_length():
    with pytest.raises(PeerIdError):
        peer_id_from_public(b"\x01" * 31)


def test_parse_multiaddr_forms():
    full = parse_multiaddr(f"/ip4/127.0.0.1/tcp/30333/ws/p2p/{SUBSTRATE_VECTOR}")
    assert (full.host, full.port, full.peer_id) == ("127.0.0.1", 30333, SUBSTRATE_VECTOR)
    assert full.url == "ws://127.0.0.1:30333/p2p"
    assert str(full) == f"/ip4/127.0.0.1/tcp/30333/ws/p2p/{SUBSTRATE_VECTOR}"
    bare = parse_multiaddr("/dns/validator-1.local/tcp/4000/ws")
    assert (bare.host, bare.port, bare.peer_id) == ("validator-1.local", 4000, None)
    assert bare.url == "ws://validator-1.local:4000/p2p"
    v6 = parse_multiaddr("/ip6/::1/tcp/5/ws")
    assert v6.url == "ws://[::1]:5/p2p"
    assert parse_multiaddr(str(v6)) == v6
    assert isinstance(bare.with_peer_id(full.peer_id), Multiaddr)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:30333", "expected"),
        ("/ip4/127.0.0.1/tcp/30333", "expected"),
        ("/ip4/127.0.0.1/tcp/30333/wss", "only /ws"),
        ("/ip4/300.0.0.1/tcp/30333/ws", "bad ip4"),
        ("/ip4/::1/tcp/30333/ws", "bad ip4"),
        ("/ip4/127.0.0.1/tcp/0/ws", "PORT"),
        ("/ip4/127.0.0.1/tcp/70000/ws", "PORT"),
        ("/ip4/127.0.0.1/udp/30333/ws", "PORT"),
        ("/unix/x/tcp/1/ws", "unsupported"),
        ("/dns/a b/tcp/1/ws", "host name"),
        ("/ip4/127.0.0.1/tcp/1/ws/p2p", "trailing"),
        ("/ip4/127.0.0.1/tcp/1/ws/p2p/notapeerid", "ed25519 peer id"),
    ],
)
def test_parse_multiaddr_rejects(text, message):
    with pytest.raises(PeerIdError, match=message):
        parse_multiaddr(text)


def test_load_or_create_node_key(tmp_path):
    path = node_key_path(tmp_path, "local_testnet")
    assert path == tmp_path / "chains" / "local_testnet" / "network" / "secret_ed25519"
    key = load_or_create_node_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_node_key(path) == key  # stable
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    other = node_key_path(tmp_path, "other")
    assert load_or_create_node_key(other) != key


def test_load_node_key_rejects_wrong_length(tmp_path):
    path = tmp_path / "secret_ed25519"
    path.write_bytes(b"\x01" * 64)
    with pytest.raises(PeerIdError, match="32 raw bytes"):
        load_or_create_node_key(path)


def test_parse_node_key_hex():
    assert parse_node_key_hex("0x" + "00" * 31 + "01") == bytes(31) + b"\x01"
    assert parse_node_key_hex("ab" * 32) == b"\xab" * 32
    with pytest.raises(PeerIdError):
        parse_node_key_hex("ab" * 31)
    with pytest.raises(PeerIdError):
        parse_node_key_hex("zz" * 32)
