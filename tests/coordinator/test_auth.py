"""Signed miner requests over real HTTP against the app with an injected registry."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from substrateinterface import Keypair

from chainclient.signing import sign_request
from tests.coordinator.harness import running

POLL = "/v1/miner/poll"
BODY = json.dumps({"max_tasks": 1, "wait_s": 0}).encode()


async def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + path, data=body, headers=headers) as r:
        raw = await r.read()
        return r.status, (json.loads(raw) if raw else None)


def _run(tmp_path: Path, check: Any, **kw: Any) -> None:
    async def main() -> None:
        async with running(tmp_path, run_chain=False, **kw) as h:
            await check(h)

    asyncio.run(main())


def test_good_signature_is_accepted(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        status, _ = await _post(h.url, POLL, BODY, sign_request(h.keys[0], "POST", POLL, BODY))
        assert status == 204
        assert h.engine.miners[bytes([1]) * 32].last_poll is not None  # polling marks it live

    _run(tmp_path, check)


def test_replayed_nonce_is_refused(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[0], "POST", POLL, BODY)
        assert (await _post(h.url, POLL, BODY, headers))[0] == 204
        status, body = await _post(h.url, POLL, BODY, headers)
        assert status == 401
        assert body["error"]["code"] == "replayed_nonce"

    _run(tmp_path, check)


@pytest.mark.parametrize("skew_ms", [-31_000, 31_000, -(10**9)])
def test_stale_timestamp_is_refused(tmp_path: Path, skew_ms: int) -> None:
    async def check(h: Any) -> None:
        ts = int(time.time() * 1000) + skew_ms
        headers = sign_request(h.keys[0], "POST", POLL, BODY, timestamp_ms=ts)
        status, body = await _post(h.url, POLL, BODY, headers)
        assert status == 401
        assert body["error"]["code"] == "stale_timestamp"
        assert set(body["error"]) == {"message", "type", "code"}

    _run(tmp_path, check)


def test_signature_by_another_key_is_refused(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[1], "POST", POLL, BODY)
        headers["X-Cuckoo-Operator"] = h.keys[0].ss58_address  # claims to be miner 0
        status, body = await _post(h.url, POLL, BODY, headers)
        assert (status, body["error"]["code"]) == (401, "bad_signature")

    _run(tmp_path, check)


def test_unregistered_operator_is_forbidden(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        stranger = Keypair.create_from_uri("//NotAMiner")
        status, body = await _post(h.url, POLL, BODY, sign_request(stranger, "POST", POLL, BODY))
        assert (status, body["error"]["code"]) == (403, "not_registered")

    _run(tmp_path, check)


@pytest.mark.parametrize("status_name", ["Inactive", "Suspended"])
def test_inactive_operator_is_forbidden(tmp_path: Path, status_name: str) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[1], "POST", POLL, BODY)
        status, body = await _post(h.url, POLL, BODY, headers)
        assert (status, body["error"]["code"]) == (403, "miner_not_active")

    _run(tmp_path, check, statuses=["Active", status_name, "Active"])


def test_altered_body_is_refused(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[0], "POST", POLL, BODY)
        other = json.dumps({"max_tasks": 8, "wait_s": 0}).encode()
        status, body = await _post(h.url, POLL, other, headers)
        assert (status, body["error"]["code"]) == (401, "bad_signature")

    _run(tmp_path, check)


def test_other_path_is_refused(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[0], "POST", POLL, b"")
        status, body = await _post(h.url, "/v1/miner/release/0x" + "11" * 32, b"", headers)
        assert (status, body["error"]["code"]) == (401, "bad_signature")

    _run(tmp_path, check)


@pytest.mark.parametrize(
    "missing", ["X-Cuckoo-Operator", "X-Cuckoo-Timestamp", "X-Cuckoo-Nonce", "X-Cuckoo-Signature"]
)
def test_missing_header_is_refused(tmp_path: Path, missing: str) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[0], "POST", POLL, BODY)
        del headers[missing]
        status, body = await _post(h.url, POLL, BODY, headers)
        assert (status, body["error"]["code"]) == (401, "missing_signature")

    _run(tmp_path, check)


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("X-Cuckoo-Signature", "0x1234", "bad_signature"),
        ("X-Cuckoo-Nonce", "xyz", "bad_nonce"),
        ("X-Cuckoo-Timestamp", "soon", "bad_timestamp"),
        ("X-Cuckoo-Operator", "not-an-address", "bad_operator"),
    ],
)
def test_malformed_header_is_refused(tmp_path: Path, header: str, value: str, code: str) -> None:
    async def check(h: Any) -> None:
        headers = sign_request(h.keys[0], "POST", POLL, BODY) | {header: value}
        status, body = await _post(h.url, POLL, BODY, headers)
        assert (status, body["error"]["code"]) == (401, code)

    _run(tmp_path, check)


def test_bad_poll_body_is_400(tmp_path: Path) -> None:
    async def check(h: Any) -> None:
        for body in (b"{", b"[]", b'{"max_tasks": 9}', b'{"wait_s": 31}', b'{"max_tasks": true}'):
            headers = sign_request(h.keys[0], "POST", POLL, body)
            status, _ = await _post(h.url, POLL, body, headers)
            assert status == 400, body

    _run(tmp_path, check)
