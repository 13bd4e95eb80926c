"""Operator key files: the format (the secret URI and a newline, UTF-8), owner-only modes,
the environment fallback of the daemons, and the operator keypair made from the secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from substrateinterface import Keypair

from chainclient.keyfile import (
    ENV_SURI,
    KeyFileError,
    operator_secret,
    read_key_file,
    write_key_file,
)
from chainclient.signing import load_operator_key

SECRET = "//MinerOperator"
ADDRESS = Keypair.create_from_uri(SECRET).ss58_address


def key_file(tmp_path: Path, mode: int, content: bytes = (SECRET + "\n").encode()) -> Path:
    path = tmp_path / "operator.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_write_key_file_writes_the_secret_and_a_newline_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        path = write_key_file(tmp_path / "keys" / "op.suri", SECRET)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"//MinerOperator\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_key_file(path) == SECRET
    assert [p.name for p in path.parent.iterdir()] == ["op.suri"]  # no temporary file left


def test_write_key_file_replaces_an_existing_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o644, b"old secret\n")
    write_key_file(path, SECRET)
    assert path.read_text() == SECRET + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_file_with_owner_only_mode_is_read(tmp_path: Path, mode: int) -> None:
    assert read_key_file(key_file(tmp_path, mode, b"  //MinerOperator \r\n\n")) == SECRET


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o004, 0o620])
def test_key_file_others_may_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(KeyFileError, match="chmod 600") as refused:
        read_key_file(path)
    message = str(refused.value)
    assert message.startswith(f"operator key file {path} is accessible by others")
    assert f"{mode:04o}" in message
    assert SECRET not in message
    assert read_key_file(path, require_private=False) == SECRET  # the node's key commands


@pytest.mark.parametrize(
    ("content", "reason"), [(b"", "is empty"), (b" \n\n", "is empty"), (b"\xff\xfe", "UTF-8")]
)
def test_unusable_key_file_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    with pytest.raises(KeyFileError, match=reason):
        read_key_file(key_file(tmp_path, 0o600, content))


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"cannot read operator key file .*nope"):
        read_key_file(tmp_path / "nope")


def test_operator_secret_prefers_the_file_then_the_environment(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600, b"//FromFile\n")
    assert operator_secret(path, environ={ENV_SURI: "//FromEnv"}) == "//FromFile"
    assert operator_secret(None, environ={ENV_SURI: " //FromEnv\n"}) == "//FromEnv"
    with pytest.raises(KeyFileError, match=ENV_SURI):
        operator_secret(None, environ={})
    with pytest.raises(KeyFileError, match="empty"):
        operator_secret(None, environ={ENV_SURI: "  "})


def test_load_operator_key_takes_uris_mnemonics_and_seeds(tmp_path: Path) -> None:
    assert load_operator_key(key_file(tmp_path, 0o600), environ={}).ss58_address == ADDRESS
    assert load_operator_key(None, environ={ENV_SURI: SECRET}).ss58_address == ADDRESS
    seed = "0x" + "ab" * 32
    assert (
        load_operator_key(None, environ={ENV_SURI: seed}).public_key
        == Keypair.create_from_seed(seed).public_key
    )
    mnemonic = Keypair.generate_mnemonic()
    assert (
        load_operator_key(None, environ={ENV_SURI: mnemonic}).public_key
        == Keypair.create_from_mnemonic(mnemonic).public_key
    )


@pytest.mark.parametrize("secret", ["not a secret uri !!", "0x" + "zz" * 32, "0x1234"])
def test_load_operator_key_refuses_a_bad_secret_without_echoing_it(secret: str) -> None:
    with pytest.raises(KeyFileError, match=f"operator key in {ENV_SURI} is not a valid") as bad:
        load_operator_key(None, environ={ENV_SURI: secret})
    assert secret not in str(bad.value)
