"""`cuckoo-node key` run in-process: generate / inspect / insert."""

from __future__ import annotations

import argparse
import io
import json
import stat
from pathlib import Path

import pytest

from chain.crypto import ss58_decode
from node.keycmd import add_key_parser, run_key
from node.keystore import Keystore

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
ALICE_HEX = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
ALICE_SEED = "0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"
ALICE_ED = "5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu"
ALICE_ECDSA_PUB = "0x020a1091341fe5664bfa1782d5e04779689068c916b04cb365ec3153755684d9a1"
ALICE_ECDSA = "5C7C2Z5sWbytvHpuLTvzKunnnRwQxft1jiqrLD5rhucQ5S9X"
ALICE_POLKADOT = "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cuckoo-node")
    parser.add_argument("--base-path", "-d", type=Path)
    add_key_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = _parser().parse_args(["key", *argv])
    code = run_key(args)
    out, err = capsys.readouterr()
    return code, out, err


def _fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


# --- inspect ---------------------------------------------------------------------------------


def test_inspect_alice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["inspect", "//Alice"], capsys)
    assert code == 0
    assert err == ""
    assert out.splitlines() == [
        "Secret Key URI `//Alice` is account:",
        "  Network ID:        substrate",
        f"  Secret seed:       {ALICE_SEED}",
        f"  Public key (hex):  {ALICE_HEX}",
        f"  Account ID:        {ALICE_HEX}",
        f"  Public key (SS58): {ALICE}",
        f"  SS58 Address:      {ALICE}",
    ]


def test_inspect_alice_json_and_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        ["inspect", "//Alice", "--network-prefix", "0", "--output-type", "json"], capsys
    )
    assert code == 0
    data = json.loads(out)
    assert data["ss58Address"] == ALICE_POLKADOT
    assert data["networkId"] == "polkadot"
    assert data["secretKeyUri"] == "//Alice"
    assert data["accountId"] == ALICE_HEX


def test_inspect_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("//Alice\n"))
    code, out, _ = _run(["inspect", "-"], capsys)
    assert code == 0
    assert _fields(out)["SS58 Address"] == ALICE


def test_inspect_ed25519_and_ecdsa(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["inspect", "//Alice", "--scheme", "ed25519"], capsys)
    assert code == 0
    assert _fields(out)["SS58 Address"] == ALICE_ED

    code, out, _ = _run(["inspect", "//Alice", "--scheme", "ecdsa"], capsys)
    assert code == 0
    fields = _fields(out)
    assert fields["Public key (hex)"] == ALICE_ECDSA_PUB
    assert fields["SS58 Address"] == ALICE_ECDSA
    assert fields["Account ID"] != fields["Public key (hex)"]
    assert fields["Public key (SS58)"] != ALICE_ECDSA  # the 33-byte key, not the account


def test_inspect_password_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["inspect", "//Alice///hunter2"], capsys)
    assert code == 0
    assert "hunter2" not in out
    assert "`//Alice///***`" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--public", ALICE_HEX],
        ["--public", ALICE_HEX[2:]],
        ["--public", ALICE],
        ["--public", ALICE_POLKADOT, "--network-prefix", "42"],
    ],
)
def test_inspect_public(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["inspect", *argv], capsys)
    assert code == 0
    fields = _fields(out)
    assert fields["Network ID/Version"] == "substrate"
    assert fields["SS58 Address"] == ALICE
    assert fields["Account ID"] == ALICE_HEX
    assert "Secret" not in out


def test_inspect_public_keeps_address_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["inspect", "--public", ALICE_POLKADOT, "--output-type", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ss58Address"] == ALICE_POLKADOT
    assert data["publicKey"] == ALICE_HEX
    assert set(data) == {"networkId", "publicKey", "accountId", "ss58PublicKey", "ss58Address"}


def test_inspect_public_ecdsa(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["inspect", "--public", "--scheme", "ecdsa", ALICE_ECDSA_PUB], capsys)
    assert code == 0
    assert _fields(out)["SS58 Address"] == ALICE_ECDSA
    # an ecdsa account address cannot give back the public key
    code, _, err = _run(["inspect", "--public", "--scheme", "ecdsa", ALICE_ECDSA], capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "correct horse battery staple"],
        ["inspect", "0x1234"],
        ["inspect", "//Alice/soft", "--scheme", "ed25519"],
        ["inspect", "--public", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ"],
        ["inspect", "--public", "0x1234"],
        ["inspect", "//Alice", "--network-prefix", "46"],
        ["inspect", "//Alice", "--network-prefix", "99999"],
    ],
)
def test_bad_input_is_one_line_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in err
    assert "horse battery" not in err


# --- generate --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["sr25519", "ed25519", "ecdsa"])
def test_generate_json_reinspects(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["generate", "--scheme", scheme, "--output-type", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert len(data["secretPhrase"].split()) == 12
    assert set(data) == {
        "secretPhrase",
        "networkId",
        "secretSeed",
        "publicKey",
        "ss58PublicKey",
        "accountId",
        "ss58Address",
    }
    assert ss58_decode(data["ss58Address"]) == (bytes.fromhex(data["accountId"][2:]), 42)
    public_len = 33 if scheme == "ecdsa" else 32
    assert len(bytes.fromhex(data["publicKey"][2:])) == public_len
    if scheme != "ecdsa":
        assert data["publicKey"] == data["accountId"]

    for uri in (data["secretPhrase"], data["secretSeed"]):
        code, out, _ = _run(["inspect", uri, "--scheme", scheme, "--output-type", "json"], capsys)
        assert code == 0
        again = json.loads(out)
        assert again["ss58Address"] == data["ss58Address"]
        assert again["publicKey"] == data["publicKey"]


def test_generate_text_layout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["generate", "--words", "24", "-n", "0"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "Secret phrase",
        "  Network ID",
        "  Secret seed",
        "  Public key (hex)",
        "  Account ID",
        "  Public key (SS58)",
        "  SS58 Address",
    ]
    fields = _fields(out)
    assert len(fields["Secret phrase"].split()) == 24
    assert fields["Network ID"] == "polkadot"
    assert ss58_decode(fields["SS58 Address"])[1] == 0
    # a bare phrase re-inspects with the same "Secret phrase" layout
    code, out2, _ = _run(["inspect", fields["Secret phrase"], "-n", "0"], capsys)
    assert code == 0
    assert out2 == out


def test_generate_rejects_bad_word_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["key", "generate", "--words", "13"])


# --- insert ----------------------------------------------------------------------------------


def test_insert_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suri_file = tmp_path / "suri"
    suri_file.write_text("//Alice\n")
    base = tmp_path / "base"
    code, out, err = _run(
        ["insert", "--base-path", str(base), "--key-type", "aura", "--suri-file", str(suri_file)],
        capsys,
    )
    assert code == 0, err
    assert out.strip() == ALICE_HEX
    ks = Keystore(base / "keystore")
    assert ks.public_keys("aura") == [bytes.fromhex(ALICE_HEX[2:])]
    key_file = base / "keystore" / (b"aura".hex() + ALICE_HEX[2:])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((base / "keystore").stat().st_mode) == 0o700
    assert "//Alice" not in out


def test_insert_from_stdin_ed25519(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("//Alice\n"))
    argv = ["insert", "-d", str(tmp_path), "--key-type", "gran", "--suri-file", "-"]
    code, out, _ = _run([*argv, "--scheme", "ed25519"], capsys)
    assert code == 0
    signer = Keystore(tmp_path / "keystore").signer("gran", bytes.fromhex(out.strip()[2:]))
    assert signer.ss58_address() == ALICE_ED


def test_insert_uses_global_base_path_and_keystore_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suri_file = tmp_path / "suri"
    suri_file.write_text("//Bob")
    args = _parser().parse_args(
        [
            *("--base-path", str(tmp_path / "g"), "key", "insert"),
            *("--key-type", "aura", "--suri-file", str(suri_file)),
        ]
    )
    assert run_key(args) == 0
    assert len(Keystore(tmp_path / "g" / "keystore").public_keys("aura")) == 1
    code, _, _ = _run(
        [
            *("insert", "--keystore-path", str(tmp_path / "ks")),
            *("--key-type", "aura", "--suri-file", str(suri_file)),
        ],
        capsys,
    )
    assert code == 0
    assert len(Keystore(tmp_path / "ks").public_keys("aura")) == 1


def test_insert_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "correct horse battery staple"
    suri_file = tmp_path / "suri"
    suri_file.write_text(secret)
    for argv in (
        ["--key-type", "aura", "--suri-file", str(suri_file)],
        ["--key-type", "toolong", "--suri-file", str(suri_file)],
        ["--key-type", "aura", "--suri-file", str(tmp_path / "missing")],
    ):
        code, out, err = _run(["insert", "-d", str(tmp_path / "b"), *argv], capsys)
        assert code == 1
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert secret not in err
    code, _, err = _run(["insert", "--key-type", "aura", "--suri-file", str(suri_file)], capsys)
    assert code == 1
    assert "--base-path" in err


def test_insert_refuses_suri_on_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["insert", "-d", str(tmp_path), "--key-type", "aura", "--suri", "//Alice"]
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert out == ""
    assert "--suri-file" in err
    assert "//Alice" not in err
    assert not (tmp_path / "keystore").exists()
    code, _, err = _run(["insert", "-d", str(tmp_path), "--key-type", "aura"], capsys)
    assert code == 1
    assert "--suri-file" in err


def test_session_keys_prints_set_keys_arguments_and_fills_the_keystore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chain import bls
    from genesis.builder import load_spec
    from node.keystore import derive_key

    suri_file = tmp_path / "session.key"
    suri_file.write_text("//Alice\n")
    store = tmp_path / "ks"
    code, out, err = _run(
        ["session-keys", "--keystore-path", str(store), "--suri-file", str(suri_file)], capsys
    )
    assert code == 0, err
    printed = json.loads(out)
    keys = printed["keys"]
    assert keys["aura"] == "0x" + derive_key("//Alice", "sr25519").public.hex()
    assert keys["grandpa"] == "0x" + derive_key("//Alice", "ed25519").public.hex()
    # the same BLS key as //Alice's in the dev chain spec, and a valid proof of possession
    spec = load_spec("dev").raw["genesis"]["runtimeGenesis"]["config"]["session"]["keys"]
    assert keys["bls"] == spec[0][1]["bls"]
    assert bls.verify_possession(
        bytes.fromhex(keys["bls"][2:]), bytes.fromhex(printed["proof"][2:])
    )
    ks = Keystore(store)
    assert ks.public_keys("aura") == [bytes.fromhex(keys["aura"][2:])]
    assert ks.public_keys("gran") == [bytes.fromhex(keys["grandpa"][2:])]
    assert ks.public_keys("bls_") == [bytes.fromhex(keys["bls"][2:])]
    assert "Alice" not in out  # the secret URI is never printed


def test_session_keys_needs_a_suri_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["session-keys"], capsys)
    assert code == 1
    assert "--suri-file" in err
