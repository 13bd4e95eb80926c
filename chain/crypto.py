"""Signatures (ed25519, sr25519, ecdsa) and SS58 addresses.

Verification is the hot path: `verify_signature` never raises on malformed input, it returns
False. Signing helpers are for the node (block author) and tests.

Library notes (checked against the installed bindings):
* `sr25519.verify(signature, message, public)`; raises ValueError on structurally bad bytes.
  `sr25519.sign((public, secret64), message)` takes the keypair as a tuple.
* `ed25519_zebra.ed_verify(signature, message, public)` returns False on bad bytes;
  `ed25519_zebra.ed_sign(secret32, message)` where the secret is the 32-byte seed.
* coincurve `PublicKey.from_signature_and_message(sig65, msg_hash32, hasher=None)` with
  `sig65 = r || s || recid` (recid 0..3).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from types import MappingProxyType

import coincurve
import ed25519_zebra
import sr25519

from chain import ChainError
from chain.hashing import blake2_256


class CryptoError(ChainError):
    """Bad key material or a malformed address."""


class SignatureScheme(enum.IntEnum):
    """`MultiSignature` variant indices."""

    ED25519 = 0
    SR25519 = 1
    ECDSA = 2


SIGNATURE_LENGTHS: Mapping[SignatureScheme, int] = MappingProxyType(
    {
        SignatureScheme.ED25519: 64,
        SignatureScheme.SR25519: 64,
        SignatureScheme.ECDSA: 65,
    }
)

_ECDSA_RECID = MappingProxyType({0: 0, 1: 1, 27: 0, 28: 1})


_SR25519 = int(SignatureScheme.SR25519)  # the common case, compared as a plain int


def verify_signature(
    scheme: SignatureScheme, signature: bytes, message: bytes, account_id: bytes
) -> bool:
    """True iff `signature` by `account_id` over `message` is valid. Never raises."""
    try:
        if len(account_id) != 32:
            return False
        if scheme == _SR25519:
            if len(signature) != 64:
                return False
            if type(signature) is bytes and type(message) is bytes and type(account_id) is bytes:
                return bool(sr25519.verify(signature, message, account_id))
            return bool(sr25519.verify(bytes(signature), bytes(message), bytes(account_id)))
        if scheme == SignatureScheme.ED25519:
            if len(signature) != 64:
                return False
            ok = ed25519_zebra.ed_verify(bytes(signature), bytes(message), bytes(account_id))
            return bool(ok)
        if scheme == SignatureScheme.ECDSA:
            return _verify_ecdsa(bytes(signature), bytes(message), bytes(account_id))
    except Exception:  # malformed points, scalars, wrong types: a bad signature
        return False
    return False


def _verify_ecdsa(signature: bytes, message: bytes, account_id: bytes) -> bool:
    if len(signature) != 65:
        return False
    recid = _ECDSA_RECID.get(signature[64])
    if recid is None:
        return False
    sig = signature[:64] + bytes((recid,))
    public = coincurve.PublicKey.from_signature_and_message(sig, blake2_256(message), hasher=None)
    return blake2_256(public.format(compressed=True)) == account_id


def account_id_from_public(scheme: SignatureScheme, public: bytes) -> bytes:
    """AccountId32 of a public key: the key itself (ed/sr25519), blake2_256(compressed) (ecdsa)."""
    if scheme in (SignatureScheme.ED25519, SignatureScheme.SR25519):
        if len(public) != 32:
            raise CryptoError(
                f"{scheme.name.lower()} public key must be 32 bytes, got {len(public)}"
            )
        return bytes(public)
    if scheme == SignatureScheme.ECDSA:
        if len(public) not in (33, 65):
            raise CryptoError(f"ecdsa public key must be 33 or 65 bytes, got {len(public)}")
        try:
            compressed = coincurve.PublicKey(bytes(public)).format(compressed=True)
        except ValueError as exc:
            raise CryptoError(f"invalid ecdsa public key: {exc}") from exc
        return blake2_256(compressed)
    raise CryptoError(f"unknown signature scheme {scheme!r}")


# --- signing (cold path) ---------------------------------------------------------------------


def sr25519_sign(public: bytes, secret: bytes, message: bytes) -> bytes:
    """Schnorrkel signature ("substrate" context); `secret` is the 64-byte expanded key."""
    try:
        return bytes(sr25519.sign((bytes(public), bytes(secret)), bytes(message)))
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"sr25519 signing failed: {exc}") from exc


def sr25519_pair_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """(public 32 bytes, secret 64 bytes) from a 32-byte mini-secret seed."""
    if len(seed) != 32:
        raise CryptoError(f"sr25519 seed must be 32 bytes, got {len(seed)}")
    public, secret = sr25519.pair_from_seed(bytes(seed))
    return bytes(public), bytes(secret)


def ed25519_public_from_seed(seed: bytes) -> bytes:
    if len(seed) != 32:
        raise CryptoError(f"ed25519 seed must be 32 bytes, got {len(seed)}")
    _secret, public = ed25519_zebra.ed_from_seed(bytes(seed))
    return bytes(public)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Plain ed25519 signature with the 32-byte seed (the ed25519 secret key)."""
    if len(seed) != 32:
        raise CryptoError(f"ed25519 seed must be 32 bytes, got {len(seed)}")
    return bytes(ed25519_zebra.ed_sign(bytes(seed), bytes(message)))


def ecdsa_public_from_secret(secret: bytes) -> bytes:
    """33-byte compressed secp256k1 public key."""
    try:
        return bytes(coincurve.PrivateKey(bytes(secret)).public_key.format(compressed=True))
    except ValueError as exc:
        raise CryptoError(f"invalid ecdsa secret key: {exc}") from exc


def ecdsa_sign(secret: bytes, message: bytes) -> bytes:
    """65-byte `r || s || recid` secp256k1 signature over blake2_256(message)."""
    try:
        key = coincurve.PrivateKey(bytes(secret))
    except ValueError as exc:
        raise CryptoError(f"invalid ecdsa secret key: {exc}") from exc
    return bytes(key.sign_recoverable(blake2_256(message), hasher=None))


# --- SS58 ------------------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = MappingProxyType({c: i for i, c in enumerate(_B58_ALPHABET)})
_SS58_PRE = b"SS58PRE"
_RESERVED_PREFIXES = (46, 47)


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (SS58 addresses, libp2p peer ids)."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`; CryptoError on a character outside the alphabet."""
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise CryptoError(f"invalid base58 character {c!r}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def _ss58_checksum(data: bytes) -> bytes:
    return hashlib.blake2b(_SS58_PRE + data, digest_size=64).digest()[:2]


def ss58_encode(account_id: bytes, prefix: int = 42) -> str:
    """SS58 address of a 32-byte account id with network `prefix` (0..16383, not 46/47)."""
    if len(account_id) != 32:
        raise CryptoError(f"ss58: account id must be 32 bytes, got {len(account_id)}")
    if not 0 <= prefix <= 16383:
        raise CryptoError(f"ss58: prefix {prefix} out of range 0..16383")
    if prefix in _RESERVED_PREFIXES:
        raise CryptoError(f"ss58: prefix {prefix} is reserved")
    if prefix < 64:
        head = bytes((prefix,))
    else:
        head = bytes(
            (
                ((prefix & 0b1111_1100) >> 2) | 0b0100_0000,
                (prefix >> 8) | ((prefix & 0b11) << 6),
            )
        )
    data = head + bytes(account_id)
    return b58encode(data + _ss58_checksum(data))


def ss58_decode(address: str) -> tuple[bytes, int]:
    """(account id, prefix) of an SS58 address holding a 32-byte account id."""
    if not isinstance(address, str) or not address:
        raise CryptoError("ss58: empty or non-string address")
    if len(address) > 64:
        raise CryptoError("ss58: address too long")
    raw = b58decode(address)
    if not raw:
        raise CryptoError("ss58: empty address")
    first = raw[0]
    if first < 64:
        prefix_len, prefix = 1, first
    elif first < 128:
        if len(raw) < 2:
            raise CryptoError("ss58: truncated address")
        second = raw[1]
        prefix_len = 2
        prefix = ((first & 0b0011_1111) << 2) | (second >> 6) | ((second & 0b0011_1111) << 8)
        if prefix < 64:
            raise CryptoError(f"ss58: non-canonical two-byte encoding of prefix {prefix}")
    else:
        raise CryptoError(f"ss58: invalid prefix byte 0x{first:02x}")
    if prefix in _RESERVED_PREFIXES:
        raise CryptoError(f"ss58: prefix {prefix} is reserved")
    if len(raw) != prefix_len + 32 + 2:
        raise CryptoError(
            f"ss58: expected a 32-byte account id ({prefix_len + 34} bytes), got {len(raw)} bytes"
        )
    if _ss58_checksum(raw[:-2]) != raw[-2:]:
        raise CryptoError("ss58: invalid checksum")
    return raw[prefix_len:-2], prefix
