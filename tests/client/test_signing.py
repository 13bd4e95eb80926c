"""Signed miner requests: the headers `sign_request` makes are bound to every part of the
request, and `verify_request` accepts them and refuses each kind of bad request with its code,
checked in the documented order."""

from __future__ import annotations

import time
from typing import Any

import pytest
from substrateinterface import Keypair

from chain.taskproto import request_message
from chainclient.signing import (
    H_NONCE,
    H_OPERATOR,
    H_SIGNATURE,
    H_TIMESTAMP,
    RequestRefused,
    sign_request,
    verify_request,
)

OPERATOR = Keypair.create_from_uri("//MinerOperator")
PATH = "/v1/miner/poll"
BODY = b'{"max_tasks":1,"wait_s":5}'
NOW = 1_700_000_000_000
SKEW = 30_000


def signed() -> dict[str, str]:
    return sign_request(OPERATOR, "POST", PATH, BODY, timestamp_ms=NOW, nonce="ab" * 16)


def verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    now: int = NOW,
) -> bytes:
    return verify_request(method, path, body, headers, now_ms=now, max_skew_ms=SKEW).operator


def refused(headers: dict[str, str], **kw: Any) -> str:
    with pytest.raises(RequestRefused) as exc:
        verify(headers, **kw)
    return exc.value.code


def test_sign_request_headers_sign_request_message() -> None:
    h = sign_request(OPERATOR, "post", PATH, BODY, timestamp_ms=NOW, nonce="ab" * 16)
    assert h[H_OPERATOR] == OPERATOR.ss58_address
    assert h[H_TIMESTAMP] == str(NOW)
    assert h[H_NONCE] == "ab" * 16
    assert h[H_SIGNATURE].startswith("0x")
    sig = bytes.fromhex(h[H_SIGNATURE][2:])
    assert len(sig) == 64
    verifier = Keypair(ss58_address=OPERATOR.ss58_address)
    assert verifier.verify(request_message("POST", PATH, BODY, NOW, "ab" * 16), sig)


def test_sign_request_uses_a_fresh_nonce_and_the_current_time() -> None:
    a = sign_request(OPERATOR, "POST", "/p", b"")
    b = sign_request(OPERATOR, "POST", "/p", b"")
    assert a[H_NONCE] != b[H_NONCE]
    assert len(a[H_NONCE]) == 32
    assert int(a[H_NONCE], 16) >= 0
    assert abs(int(a[H_TIMESTAMP]) - time.time() * 1000) < 5_000


def test_verify_request_names_the_operator() -> None:
    assert verify(signed()) == bytes(OPERATOR.public_key)
    assert verify(signed(), method="post", now=NOW + SKEW) == bytes(OPERATOR.public_key)


def test_verify_request_binds_every_part_of_the_request() -> None:
    h = signed()
    assert refused(h, body=BODY + b" ") == "bad_signature"
    assert refused(h, path="/v1/miner/release/0x00") == "bad_signature"
    assert refused(h, method="GET") == "bad_signature"
    assert refused(h | {H_TIMESTAMP: str(NOW + 1)}) == "bad_signature"
    assert refused(h | {H_NONCE: "cd" * 16}) == "bad_signature"
    other = Keypair.create_from_uri("//Other").ss58_address
    assert refused(h | {H_OPERATOR: other}) == "bad_signature"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({H_SIGNATURE: ""}, "missing_signature"),
        ({H_OPERATOR: "not-an-address"}, "bad_operator"),
        ({H_TIMESTAMP: "12.5"}, "bad_timestamp"),
        ({H_TIMESTAMP: "1" * 17}, "bad_timestamp"),
        ({H_TIMESTAMP: str(NOW - SKEW - 1)}, "stale_timestamp"),
        ({H_NONCE: "ab" * 15}, "bad_nonce"),
        ({H_SIGNATURE: "ab" * 64}, "bad_signature"),
        ({H_SIGNATURE: "0x" + "ab" * 63}, "bad_signature"),
        ({H_SIGNATURE: "0x" + "00" * 64}, "bad_signature"),
    ],
)
def test_verify_request_refuses_each_bad_header(change: dict[str, str], code: str) -> None:
    assert refused(signed() | change) == code


def test_verify_request_checks_in_the_documented_order() -> None:
    bad = {H_TIMESTAMP: str(NOW - SKEW - 1), H_NONCE: "x", H_SIGNATURE: "0x00"}
    assert refused(signed() | bad) == "stale_timestamp"
    assert refused(signed() | bad | {H_OPERATOR: "?"}) == "bad_operator"
    headers = signed()
    del headers[H_NONCE]
    assert refused(headers | {H_OPERATOR: "?"}) == "missing_signature"
