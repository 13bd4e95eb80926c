"""chain.crypto: SS58 against substrate-interface, key derivation, signing helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from substrateinterface import Keypair, KeypairType
from substrateinterface.utils import ss58 as si_ss58

from chain.crypto import (
    CryptoError,
    SignatureScheme,
    account_id_from_public,
    ecdsa_public_from_secret,
    ecdsa_sign,
    ed25519_public_from_seed,
    ed25519_sign,
    sr25519_pair_from_seed,
    sr25519_sign,
    ss58_decode,
    ss58_encode,
    verify_signature,
)
from chain.hashing import blake2_256

ALICE = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PREFIXES = [0, 2, 42, 63, 64, 255, 16383]
prefixes = st.one_of(
    st.sampled_from(PREFIXES), st.integers(0, 16383).filter(lambda p: p not in (46, 47))
)


def test_alice_known_address() -> None:
    assert ss58_encode(ALICE) == ALICE_SS58
    assert ss58_decode(ALICE_SS58) == (ALICE, 42)


@given(st.binary(min_size=32, max_size=32), prefixes)
def test_ss58_matches_substrate_interface(account: bytes, prefix: int) -> None:
    address = ss58_encode(account, prefix)
    assert address == si_ss58.ss58_encode(account, ss58_format=prefix)
    assert ss58_decode(address) == (account, prefix)
    assert si_ss58.ss58_decode(address) == account.hex()
    assert si_ss58.get_ss58_format(address) == prefix


@pytest.mark.parametrize("prefix", PREFIXES)
def test_ss58_fixed_prefixes(prefix: int) -> None:
    for account in (b"\x00" * 32, b"\xff" * 32, ALICE):
        address = si_ss58.ss58_encode(account, ss58_format=prefix)
        assert ss58_decode(address) == (account, prefix)
        assert ss58_encode(account, prefix) == address


@given(st.binary(min_size=32, max_size=32), prefixes, st.data())
def test_ss58_invalid_checksum_rejected(account: bytes, prefix: int, data: st.DataObject) -> None:
    address = ss58_encode(account, prefix)
    i = data.draw(st.integers(0, len(address) - 1))
    replacement = data.draw(st.sampled_from(B58))
    if replacement == address[i]:
        return
    corrupted = address[:i] + replacement + address[i + 1 :]
    try:
        si_ss58.ss58_decode(corrupted)
    except Exception:  # what substrate-interface rejects, so must we
        with pytest.raises(CryptoError):
            ss58_decode(corrupted)
    # else: a 1-in-65536 checksum collision; nothing to assert


def test_ss58_checksum_message() -> None:
    bad = ALICE_SS58[:-1] + ("Z" if ALICE_SS58[-1] != "Z" else "Y")
    with pytest.raises(CryptoError, match="checksum"):
        ss58_decode(bad)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0x" + "00" * 32,
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ0",  # '0' is not base58
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ",  # truncated
        "F7Hs",  # an account-index address: not 32 bytes
        "1" * 200,
    ],
)
def test_ss58_malformed_rejected(address: str) -> None:
    with pytest.raises(CryptoError):
        ss58_decode(address)


def test_ss58_reserved_and_out_of_range_prefixes() -> None:
    for prefix in (46, 47, -1, 16384):
        with pytest.raises(CryptoError):
            ss58_encode(ALICE, prefix)
    with pytest.raises(CryptoError):
        ss58_encode(ALICE[:31])


def test_account_id_from_public() -> None:
    assert account_id_from_public(SignatureScheme.SR25519, ALICE) == ALICE
    assert account_id_from_public(SignatureScheme.ED25519, ALICE) == ALICE
    secret = b"\x07" * 32
    public = ecdsa_public_from_secret(secret)
    assert len(public) == 33
    assert account_id_from_public(SignatureScheme.ECDSA, public) == blake2_256(public)
    with pytest.raises(CryptoError):
        account_id_from_public(SignatureScheme.SR25519, b"\x00" * 33)
    with pytest.raises(CryptoError):
        account_id_from_public(SignatureScheme.ECDSA, b"\x05" * 33)


def test_sr25519_sign_matches_keypair() -> None:
    kp = Keypair.create_from_uri("//Alice")
    sig = sr25519_sign(kp.public_key, kp.private_key, b"hello")
    assert kp.verify(b"hello", sig)
    assert verify_signature(SignatureScheme.SR25519, sig, b"hello", kp.public_key)
    public, secret = sr25519_pair_from_seed(b"\x01" * 32)
    sig = sr25519_sign(public, secret, b"x")
    assert verify_signature(SignatureScheme.SR25519, sig, b"x", public)


def test_ed25519_sign_matches_keypair() -> None:
    seed = b"\x42" * 32
    kp = Keypair.create_from_seed("0x" + seed.hex(), crypto_type=KeypairType.ED25519)
    assert ed25519_public_from_seed(seed) == kp.public_key
    sig = ed25519_sign(seed, b"hello")
    assert sig == kp.sign(b"hello")  # ed25519 is deterministic
    assert verify_signature(SignatureScheme.ED25519, sig, b"hello", kp.public_key)


def test_ecdsa_sign_and_recover() -> None:
    secret = b"\x09" * 32
    account = account_id_from_public(SignatureScheme.ECDSA, ecdsa_public_from_secret(secret))
    sig = ecdsa_sign(secret, b"hello")
    assert len(sig) == 65
    assert sig[64] in (0, 1)
    assert verify_signature(SignatureScheme.ECDSA, sig, b"hello", account)
    # Ethereum-style v (27/28) is accepted too
    eth_sig = sig[:64] + bytes((sig[64] + 27,))
    assert verify_signature(SignatureScheme.ECDSA, eth_sig, b"hello", account)
    assert not verify_signature(SignatureScheme.ECDSA, sig[:64] + b"\x05", b"hello", account)
    assert not verify_signature(SignatureScheme.ECDSA, sig, b"hellO", account)
    with pytest.raises(CryptoError):
        ecdsa_sign(b"\x00" * 32, b"x")
