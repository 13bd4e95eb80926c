"""Operator keys, and the signature on a miner's requests to a coordinator.

An operator (hot) key is an sr25519 keypair from a secret URI: a mnemonic, a `//Dev` path or a
0x seed (`load_operator_key`: from its key file or the environment, see `keyfile`).

Every miner request to a coordinator is signed by the miner's operator key over
`chain.taskproto.request_message(method, path, body, timestamp_ms, nonce)` and carries:

    X-Cuckoo-Operator   SS58 address of the operator
    X-Cuckoo-Timestamp  unix milliseconds
    X-Cuckoo-Nonce      32 random hex characters
    X-Cuckoo-Signature  0x-hex sr25519 signature

`sign_request` makes the headers; `verify_request` checks their shape, the clock window and
the signature, and names the operator. Replayed nonces and the registry are the coordinator's.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

import sr25519
from substrateinterface import Keypair

from chain.taskproto import request_message
from chainclient import ClientError
from chainclient.accounts import decode_address
from chainclient.keyfile import ENV_SURI, KeyFileError, operator_secret

H_OPERATOR = "X-Cuckoo-Operator"
H_TIMESTAMP = "X-Cuckoo-Timestamp"
H_NONCE = "X-Cuckoo-Nonce"
H_SIGNATURE = "X-Cuckoo-Signature"
NONCE_RE = re.compile(r"[0-9a-fA-F]{32}")
SEED_RE = re.compile(r"0x[0-9a-fA-F]{64}")


# ---- operator keys --------------------------------------------------------------------------


def keypair_from_secret(secret: str, source: str = "the operator key") -> Keypair:
    """The sr25519 keypair of a secret URI, mnemonic or 0x seed; KeyFileError otherwise."""
    try:
        if SEED_RE.fullmatch(secret):
            return Keypair.create_from_seed(secret)
        return Keypair.create_from_uri(secret)
    except Exception as exc:  # the library raises several types for bad phrases
        raise KeyFileError(
            f"{source} is not a valid secret URI, mnemonic or 0x seed ({type(exc).__name__})"
        ) from None


def load_operator_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> Keypair:
    """The operator keypair from `key_file` (owner-only) or $CUCKOO_OPERATOR_SURI."""
    source = f"the operator key in {key_file if key_file is not None else ENV_SURI}"
    return keypair_from_secret(operator_secret(key_file, environ), source)


# ---- signed miner requests ------------------------------------------------------------------


class RequestRefused(ClientError):
    """A signed request that does not verify; `code` names the check that failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class SignedRequest:
    operator: bytes  # the operator's public key
    timestamp_ms: int
    nonce: str


def sign_request(
    keypair: Keypair,
    method: str,
    path: str,
    body: bytes,
    *,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four authentication headers of one request (`path` without the query string)."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = secrets.token_hex(16) if nonce is None else nonce
    signature = keypair.sign(request_message(method, path, body, ts, nonce))
    return {
        H_OPERATOR: keypair.ss58_address,
        H_TIMESTAMP: str(ts),
        H_NONCE: nonce,
        H_SIGNATURE: "0x" + bytes(signature).hex(),
    }


def verify_request(
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now_ms: int,
    max_skew_ms: int,
) -> SignedRequest:
    """The operator who signed this request; RequestRefused (code missing_signature,
    bad_operator, bad_timestamp, stale_timestamp, bad_nonce or bad_signature, checked in that
    order) otherwise."""
    values = [headers.get(h) for h in (H_OPERATOR, H_TIMESTAMP, H_NONCE, H_SIGNATURE)]
    if any(v is None or v == "" for v in values):
        raise RequestRefused("missing_signature", "X-Cuckoo-* signature headers are required")
    address, ts_text, nonce, sig_text = (str(v) for v in values)
    try:
        operator = decode_address(address)
    except ValueError as exc:
        raise RequestRefused("bad_operator", str(exc)) from exc
    if not ts_text.isdigit() or len(ts_text) > 16:
        raise RequestRefused("bad_timestamp", "X-Cuckoo-Timestamp must be unix milliseconds")
    timestamp = int(ts_text)
    if abs(now_ms - timestamp) > max_skew_ms:
        raise RequestRefused(
            "stale_timestamp", f"request timestamp is more than {max_skew_ms // 1000} s off"
        )
    if not NONCE_RE.fullmatch(nonce):
        raise RequestRefused("bad_nonce", "X-Cuckoo-Nonce must be 32 hex characters")
    signature = _signature_bytes(sig_text)
    message = request_message(method, path, body, timestamp, nonce)
    try:
        valid = bool(sr25519.verify(signature, message, operator))
    except Exception:  # the binding raises on malformed points
        valid = False
    if not valid:
        raise RequestRefused("bad_signature", "signature does not verify")
    return SignedRequest(operator, timestamp, nonce)


def _signature_bytes(text: str) -> bytes:
    try:
        if not text.startswith("0x"):
            raise ValueError("no 0x")
        signature = bytes.fromhex(text[2:])
        if len(signature) != 64:
            raise ValueError("length")
    except ValueError as exc:
        raise RequestRefused("bad_signature", "X-Cuckoo-Signature must be 0x + 64 bytes") from exc
    return signature
