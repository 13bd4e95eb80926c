"""Accounts and hashes as the chain client hands them over: 32-byte ids, SS58 addresses (prefix 42,
as the runtime declares) for people and for substrate-interface, 0x-hex for hashes."""

from __future__ import annotations

import functools

from substrateinterface.utils.ss58 import ss58_decode, ss58_encode

SS58_PREFIX = 42


def ss58(account: bytes) -> str:
    """The SS58 address (prefix 42) of a 32-byte account id."""
    return str(ss58_encode(account, SS58_PREFIX))


def account_id(value: str | bytes) -> bytes:
    """A 32-byte account id from an SS58 address (any prefix), 0x-hex, or the bytes themselves
    (what substrate-interface answers for AccountId fields)."""
    if isinstance(value, bytes):
        return value
    if value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return bytes.fromhex(ss58_decode(value))


@functools.lru_cache(maxsize=4096)
def decode_address(address: str) -> bytes:
    """The 32-byte public key of an SS58 address (any prefix); ValueError if malformed.
    Cached: every signed miner request names its operator."""
    try:
        public = bytes.fromhex(ss58_decode(address))
    except Exception as exc:  # the ss58 library raises ValueError and others
        raise ValueError(f"not an SS58 address: {address!r}") from exc
    if len(public) != 32:
        raise ValueError("not a 32-byte account")
    return public


def h256(value: object) -> bytes:
    """32 bytes from 0x-hex (or bare hex, or the bytes themselves); ValueError otherwise."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    else:
        raise ValueError(f"not a hash: {value!r}")
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return raw
