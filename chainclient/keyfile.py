"""Operator key files: a secret URI (a mnemonic, a `//Dev` path, a 0x seed) as UTF-8 text and a
newline, readable by its owner only.

    read_key_file(path)          the secret; refused when group or others may access the file
    write_key_file(path, secret) created with mode 0600 (atomically), parent folder 0700
    operator_secret(path, env)   the daemons' rule: the file if given, else $CUCKOO_OPERATOR_SURI

Only the standard library: the node's `key` commands read secret URI files with this module
too. No message here holds a secret.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from chainclient import ClientError

ENV_SURI = "CUCKOO_OPERATOR_SURI"
OPERATOR_KEY_FILE = "operator key file"
PRIVATE_MODE = 0o600


class KeyFileError(ClientError):
    """A key file that cannot be used; the message says why and never holds the secret."""


def read_key_file(
    path: Path, *, what: str = OPERATOR_KEY_FILE, require_private: bool = True
) -> str:
    """The secret in `path`, stripped of surrounding white space; KeyFileError when it cannot
    be read, is empty, or (with `require_private`) group or others may access it."""
    try:
        with path.open("rb") as f:  # the mode is checked on the file opened (no race)
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if require_private and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"{what} {path} is accessible by others (mode {mode:04o}); "
                    f"run: chmod 600 {path}"
                )
            data = f.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"cannot read {what} {path}: not UTF-8 text") from None
    if not secret:
        raise KeyFileError(f"{what} {path} is empty")
    return secret


def write_key_file(path: Path, secret: str) -> Path:
    """Write `secret` and a newline to `path` with mode 0600, replacing it atomically; the
    parent folder is created with mode 0700 when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, PRIVATE_MODE)  # whatever the umask
            f.write((secret + "\n").encode("utf-8"))
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from None
    return path


def operator_secret(key_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The operator's secret URI: from `key_file` (owner-only) when given, else from the
    environment variable CUCKOO_OPERATOR_SURI; KeyFileError when there is none."""
    if key_file is not None:
        return read_key_file(key_file)
    env = os.environ if environ is None else environ
    if not env.get(ENV_SURI):
        raise KeyFileError(
            f"no operator key: give --operator-key-file FILE (mode 0600) or set {ENV_SURI}"
        )
    secret = env[ENV_SURI].strip()
    if not secret:
        raise KeyFileError(f"the operator key in {ENV_SURI} is empty")
    return secret
