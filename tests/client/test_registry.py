"""Registry values and account ids as substrate-interface hands them over (SS58 strings, texts
as UTF-8 or 0x-hex) turned into the client's types."""

from __future__ import annotations

import pytest
from substrateinterface import Keypair

from chainclient.accounts import account_id, decode_address, h256, ss58
from chainclient.registry import OperatorRole, Registration, text

STAKER = Keypair.create_from_uri("//Bob")
OPERATOR = Keypair.create_from_uri("//Bob//operator")


def test_registration_from_a_library_value() -> None:
    value = {
        "operator": OPERATOR.ss58_address,
        "info": {"name": "bob", "description": "", "url": "0xff00", "gpu_model": "0x34303930"},
        "commission": 0,
        "own_stake": 20_000,
        "votes": 5_000,
        "status": "Inactive",
        "registered_at": 7,
    }
    reg = Registration.from_value(STAKER.ss58_address, value)
    assert reg.staker == bytes(STAKER.public_key)
    assert reg.operator == bytes(OPERATOR.public_key)
    assert (reg.name, reg.gpu_model) == ("bob", "4090")
    assert reg.url == "\ufffd\x00"  # not UTF-8: decoded with replacement characters
    assert reg.weight == 25_000
    assert not reg.is_active
    role = OperatorRole.from_value({"role": "Miner", "staker": STAKER.ss58_address})
    assert role == OperatorRole("Miner", bytes(STAKER.public_key))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("plain", "plain"), ("0x6869", "hi"), ("0xnothex", "0xnothex"), (b"hi", "hi"), (None, "")],
)
def test_text_of_vec_u8_values(value: object, expected: str) -> None:
    assert text(value) == expected


def test_account_ids_and_addresses() -> None:
    public = bytes(STAKER.public_key)
    assert account_id(STAKER.ss58_address) == public
    assert account_id("0x" + public.hex()) == public
    assert account_id(public) is public
    assert ss58(public) == STAKER.ss58_address
    assert decode_address(ss58(public)) == public
    kusama = Keypair(public_key=public, ss58_format=2).ss58_address
    assert decode_address(kusama) == public  # any prefix
    with pytest.raises(ValueError, match="SS58"):
        decode_address("not an address")


def test_h256_takes_exactly_32_bytes() -> None:
    assert h256("0x" + "ab" * 32) == b"\xab" * 32
    assert h256("AB" * 32) == b"\xab" * 32
    assert h256(b"\x01" * 32) == b"\x01" * 32
    for bad in ("0x" + "ab" * 31, b"\x01" * 33, 5, "0xzz"):
        with pytest.raises(ValueError):  # noqa: PT011 - each reason has its own message
            h256(bad)
