"""Keystore layout and permissions, secret-URI derivation against known Substrate values."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest
from substrateinterface import Keypair, KeypairType

from chain.crypto import SignatureScheme, verify_signature
from node.errors import NodeError
from node.keystore import (
    BLS_KEY_TYPE,
    DEV_PHRASE,
    BlsSigner,
    Keystore,
    KeystoreError,
    Signer,
    derive_bls_signer,
    derive_key,
    dev_suri,
    parse_scheme,
)

ALICE_SR = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
ALICE_SR_SEED = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"
ALICE_ED = "88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"  # grandpa
ALICE_ECDSA = "020a1091341fe5664bfa1782d5e04779689068c916b04cb365ec3153755684d9a1"  # beefy
BOB_SR = "8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48"
MNEMONIC = Keypair.generate_mnemonic(12)
SEED = "0x" + "5a" * 32


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- derivation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "public"),
    [("sr25519", ALICE_SR), ("ed25519", ALICE_ED), ("ecdsa", ALICE_ECDSA)],
)
def test_dev_alice_known_keys(scheme: str, public: str) -> None:
    assert derive_key("//Alice", scheme).public.hex() == public


def test_sr25519_hard_derivation_keeps_substrate_seed() -> None:
    key = derive_key("//Alice")
    assert key.seed is not None
    assert key.seed.hex() == ALICE_SR_SEED
    assert derive_key("0x" + ALICE_SR_SEED).public.hex() == ALICE_SR
    assert derive_key("//Alice/soft").seed is None  # as in Substrate: n/a after a soft junction


@pytest.mark.parametrize(
    "suri",
    [
        "//Alice",
        "//Bob//stash",
        "//Alice/soft",
        "//Alice/soft//hard/3",
        "//1/2//300",
        f"{DEV_PHRASE}//x",
    ],
)
def test_sr25519_matches_substrate_interface(suri: str) -> None:
    assert derive_key(suri).public == Keypair.create_from_uri(suri).public_key


def test_mnemonic_and_seed_match_substrate_interface() -> None:
    for scheme, kt in (("sr25519", KeypairType.SR25519), ("ed25519", KeypairType.ED25519)):
        expected = Keypair.create_from_mnemonic(MNEMONIC, crypto_type=kt).public_key
        assert derive_key(MNEMONIC, scheme).public == expected
        expected = Keypair.create_from_seed(SEED, crypto_type=kt).public_key
        assert derive_key(SEED, scheme).public == expected
    key = derive_key(MNEMONIC)
    assert key.is_phrase
    assert not derive_key(MNEMONIC + "//x").is_phrase
    assert not derive_key(SEED).is_phrase


def test_password_changes_key() -> None:
    assert derive_key(MNEMONIC + "///pw").public != derive_key(MNEMONIC).public


def test_soft_derivation_refused_for_ed25519_and_ecdsa() -> None:
    for scheme in ("ed25519", "ecdsa"):
        with pytest.raises(KeystoreError, match="soft derivation"):
            derive_key("//Alice/soft", scheme)


@pytest.mark.parametrize(
    "suri",
    [
        "",
        "correct horse battery staple",
        "0x1234",
        "0xzz" + "00" * 31,
        " ".join(MNEMONIC.split()[:11]),
    ],
)
def test_invalid_suri_message_hides_the_secret(suri: str) -> None:
    with pytest.raises(KeystoreError) as info:
        derive_key(suri)
    message = str(info.value)
    assert isinstance(info.value, NodeError)
    if suri:
        assert suri not in message
    words = suri.split()
    for pair in itertools.pairwise(words):
        assert " ".join(pair) not in message


def test_parse_scheme() -> None:
    assert parse_scheme("SR25519") is SignatureScheme.SR25519
    assert parse_scheme(SignatureScheme.ECDSA) is SignatureScheme.ECDSA
    with pytest.raises(KeystoreError):
        parse_scheme("rsa")


def test_dev_suri() -> None:
    assert dev_suri("alice") == "//Alice"
    assert dev_suri("FERDIE") == "//Ferdie"
    assert [dev_suri(n) for n in ("Bob", "charlie", "dave", "eve")] == [
        "//Bob",
        "//Charlie",
        "//Dave",
        "//Eve",
    ]
    with pytest.raises(KeystoreError):
        dev_suri("mallory")


# --- signer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["sr25519", "ed25519", "ecdsa"])
def test_signer_signs_verifiably(scheme: str) -> None:
    signer = derive_key(MNEMONIC, scheme).signer()
    signature = signer.sign(b"payload")
    sch = parse_scheme(scheme)
    assert verify_signature(sch, signature, b"payload", signer.account_id)
    assert not verify_signature(sch, signature, b"other", signer.account_id)


def test_signer_repr_hides_secret() -> None:
    key = derive_key(MNEMONIC)
    signer = key.signer()
    text = repr(signer) + str(signer) + repr(key)
    assert MNEMONIC not in text
    assert key.seed is not None
    assert key.seed.hex() not in text
    assert signer._secret.hex() not in text
    assert "sr25519" in text
    assert signer.ss58_address() in text
    assert not hasattr(signer, "__dict__")


# --- keystore --------------------------------------------------------------------------------


def test_keystore_round_trip_and_permissions(tmp_path: Path) -> None:
    root = tmp_path / "a" / "keystore"
    ks = Keystore(root)
    assert _mode(root) == 0o700
    alice = ks.insert("aura", "//Alice")
    bob = ks.insert("aura", "//Bob")
    gran = ks.insert("gran", "//Alice", scheme="ed25519")
    beef = ks.insert("beef", "//Alice", scheme="ecdsa")
    assert alice.hex() == ALICE_SR
    assert bob.hex() == BOB_SR
    assert gran.hex() == ALICE_ED
    assert beef.hex() == ALICE_ECDSA

    key_file = root / (b"aura".hex() + ALICE_SR)
    assert key_file.is_file()
    assert _mode(key_file) == 0o600
    assert json.loads(key_file.read_text()) == "//Alice"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [
            b"aura".hex() + ALICE_SR,
            b"aura".hex() + BOB_SR,
            b"gran".hex() + ALICE_ED,
            b"beef".hex() + ALICE_ECDSA,
        ]
    )

    assert ks.public_keys("aura") == sorted([alice, bob])
    assert ks.public_keys("gran") == [gran]
    assert ks.public_keys("babe") == []
    assert ks.has("aura", alice)
    assert not ks.has("gran", alice)

    # a fresh instance reads what the first wrote; schemes are recovered from the key
    ks2 = Keystore(root)
    for key_type, public, scheme in (
        ("aura", alice, SignatureScheme.SR25519),
        ("gran", gran, SignatureScheme.ED25519),
        ("beef", beef, SignatureScheme.ECDSA),
    ):
        signer = ks2.signer(key_type, public)
        assert isinstance(signer, Signer)
        assert signer.scheme is scheme
        assert signer.public == public
        assert verify_signature(scheme, signer.sign(b"m"), b"m", signer.account_id)
    assert ks2.signer("gran", gran, scheme="ed25519").public == gran


def test_keystore_mnemonic_round_trip(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    public = ks.insert("aura", MNEMONIC)
    assert ks.signer("aura", public).public == public
    # re-inserting the same key is fine
    assert ks.insert("aura", MNEMONIC) == public
    assert ks.public_keys("aura") == [public]


def test_keystore_reads_substrate_style_file(tmp_path: Path) -> None:
    root = tmp_path / "ks"
    root.mkdir(mode=0o700)
    path = root / (b"aura".hex() + ALICE_SR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'"//Alice"')
    os.close(fd)
    assert Keystore(root).signer("aura", bytes.fromhex(ALICE_SR)).public.hex() == ALICE_SR


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_loose_permissions_refused(tmp_path: Path, mode: int) -> None:
    ks = Keystore(tmp_path / "ks")
    public = ks.insert("aura", MNEMONIC)
    path = ks.path / (b"aura".hex() + public.hex())
    path.chmod(mode)
    with pytest.raises(KeystoreError) as info:
        ks.signer("aura", public)
    message = str(info.value)
    assert str(path) in message
    assert "chmod 600" in message
    assert MNEMONIC not in message
    words = MNEMONIC.split()
    for pair in itertools.pairwise(words):
        assert " ".join(pair) not in message
    path.chmod(0o600)
    assert ks.signer("aura", public).public == public


def test_missing_or_bad_key_files(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    with pytest.raises(KeystoreError, match="no key file"):
        ks.signer("aura", bytes.fromhex(ALICE_SR))
    # content that is not the secret of the file's public key
    path = ks.path / (b"aura".hex() + BOB_SR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(MNEMONIC).encode())
    os.close(fd)
    with pytest.raises(KeystoreError, match="does not hold the secret") as info:
        ks.signer("aura", bytes.fromhex(BOB_SR))
    assert MNEMONIC not in str(info.value)
    path.write_text("not json")
    with pytest.raises(KeystoreError, match="JSON string"):
        ks.signer("aura", bytes.fromhex(BOB_SR))


def test_symlinked_key_file_refused(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    target = tmp_path / "elsewhere"
    target.write_text('"//Alice"')
    target.chmod(0o600)
    (ks.path / (b"aura".hex() + ALICE_SR)).symlink_to(target)
    with pytest.raises(KeystoreError):
        ks.signer("aura", bytes.fromhex(ALICE_SR))


def test_insert_errors_hide_the_secret(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    bad = MNEMONIC.rsplit(" ", 1)[0] + " zzzz"
    with pytest.raises(KeystoreError) as info:
        ks.insert("aura", bad)
    assert bad not in str(info.value)
    assert list(ks.path.iterdir()) == []
    with pytest.raises(KeystoreError, match="key type"):
        ks.insert("toolong", "//Alice")
    with pytest.raises(KeystoreError, match="key type"):
        ks.public_keys("au")


def test_keystore_path_must_be_a_directory(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(KeystoreError, match="not a directory"):
        Keystore(f)


# --- BLS keys ----------------------------------------------------------------------------------


def test_bls_keys_stored_listed_and_signing(tmp_path: Path) -> None:
    from chain import bls

    ks = Keystore(tmp_path / "ks")
    alice = ks.insert(BLS_KEY_TYPE, "//Alice", scheme="bls12-381")
    bob = ks.insert(BLS_KEY_TYPE, "//Bob")  # bls12-381 is the default for bls_
    ks.insert("aura", "//Alice")
    seed = derive_key("//Alice", "ed25519").seed
    assert seed is not None
    assert alice == bls.public_key(bls.secret_from_seed(seed))
    assert len(alice) == 48
    assert alice != bob
    key_file = ks.path / (b"bls_".hex() + alice.hex())
    assert json.loads(key_file.read_text()) == "//Alice"
    assert _mode(key_file) == 0o600
    assert ks.public_keys(BLS_KEY_TYPE) == sorted([alice, bob])
    assert ks.public_keys("aura") == [bytes.fromhex(ALICE_SR)]

    signer = Keystore(ks.path).bls_signer(alice)
    assert isinstance(signer, BlsSigner)
    assert signer.public == alice
    signature = signer.sign(b"payload")
    assert len(signature) == 96
    assert bls.verify(alice, b"payload", signature)
    assert bls.verify_possession(alice, signer.prove_possession())
    assert not hasattr(signer, "__dict__")
    text = repr(signer) + str(signer)
    assert alice.hex() in text
    assert str(signer._secret) not in text
    assert hex(signer._secret)[2:] not in text


def test_bls_key_errors(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "ks")
    with pytest.raises(KeystoreError, match="bls12-381"):
        ks.insert(BLS_KEY_TYPE, "//Alice", scheme="sr25519")
    with pytest.raises(KeystoreError, match="soft derivation"):
        ks.insert(BLS_KEY_TYPE, "//Alice/soft")
    bad = MNEMONIC.rsplit(" ", 1)[0] + " zzzz"
    with pytest.raises(KeystoreError) as info:
        derive_bls_signer(bad)
    assert bad not in str(info.value)
    assert list(ks.path.iterdir()) == []
    # a key file whose content does not derive to its name
    bob = derive_bls_signer("//Bob").public
    forged = ks.path / (b"bls_".hex() + bob.hex())
    forged.write_text(json.dumps("//Alice"))
    forged.chmod(0o600)
    with pytest.raises(KeystoreError, match="does not hold the secret"):
        ks.bls_signer(bob)
    with pytest.raises(KeystoreError, match="no key file"):
        ks.bls_signer(b"\x01" * 48)
