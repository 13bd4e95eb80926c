"""The app API and the miner upload/release endpoints over real HTTP (fake chain, instant
miners speaking the real protocol)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.taskproto import device_hash, result_hash
from chainclient.signing import sign_request
from chainclient.sketch import image_sketch
from coordinator.testing import DEVICE_INFO, InstantMiner, make_png
from tests.coordinator.harness import Harness, running

GEN = "/v1/images/generations"


async def _req(
    method: str,
    url: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, bytes]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} | (headers or {})
    async with aiohttp.ClientSession() as s, s.request(method, url, data=data, headers=hdrs) as r:
        content = await r.read()
        parsed = None
        if r.content_type == "application/json":
            parsed = json.loads(content)
        return r.status, parsed, content


def _run(tmp_path: Path, check: Callable[[Harness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with running(tmp_path, **kw) as h:
            await check(h)

    asyncio.run(main())


async def _with_miners(h: Harness, check: Callable[[list[InstantMiner]], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    miners = [
        InstantMiner(
            h.url, k, wait_s=2.0, staker=bytes([i + 1]) * 32, on_result=h.chain.submit_result
        )
        for i, k in enumerate(h.keys)
    ]
    tasks = [asyncio.create_task(m.run(stop)) for m in miners]
    try:
        await asyncio.sleep(0.1)
        await check(miners)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for m in miners:
        assert m.errors == []


BAD_BODIES: list[tuple[Any, str | None]] = [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 2001}, "prompt"),
    ({"prompt": "é" * 1001}, "prompt"),  # 2002 bytes
    ({"prompt": 5}, "prompt"),
    ({"prompt": "a", "n": 5}, "n"),
    ({"prompt": "a", "n": 0}, "n"),
    ({"prompt": "a", "n": "2"}, "n"),
    ({"prompt": "a", "size": "513x512"}, "size"),
    ({"prompt": "a", "size": "1032x8"}, "size"),
    ({"prompt": "a", "size": "0x0"}, "size"),
    ({"prompt": "a", "size": "big"}, "size"),
    ({"prompt": "a", "response_format": "url"}, "response_format"),
    ({"prompt": "a", "model": "gpt-image-1"}, "model"),
    ({"prompt": "a", "seed": -1}, "seed"),
    ({"prompt": "a", "seed": 1.5}, "seed"),
    ({"prompt": "a", "steps": 0}, "steps"),
    ({"prompt": "a", "steps": 101}, "steps"),
    ({"prompt": "a", "guidance_scale": -1}, "guidance_scale"),
    ({"prompt": "a", "guidance_scale": "7"}, "guidance_scale"),
    ({"prompt": "a", "negative_prompt": None}, "negative_prompt"),
    ({"prompt": "a", "bogus": 1}, "bogus"),
    ([1, 2], None),
]


def _assert_nothing_changed(h: Harness) -> None:
    assert h.engine.jobs == {}
    assert h.engine.attempts == {}
    assert h.engine.counters["jobs_accepted"] == 0
    h.store.flush_sync()
    assert h.store.load(open_only=False) == ([], [])


@pytest.mark.parametrize("path", [GEN, "/v1/tasks"])
def test_bad_input_is_400_and_changes_nothing(tmp_path: Path, path: str) -> None:
    async def check(h: Harness) -> None:
        for body, param in BAD_BODIES:
            status, err, _ = await _req("POST", h.url + path, body=body)
            assert status == 400, body
            assert set(err["error"]) == {"message", "type", "param", "code"}
            assert err["error"]["type"] == "invalid_request_error"
            assert err["error"]["param"] == param, body
        status, err, _ = await _req("POST", h.url + path, raw=b"{not json")
        assert (status, err["error"]["code"]) == (400, "invalid_json")
        if path == "/v1/tasks":
            status, err, _ = await _req("POST", h.url + path, body={"prompt": "a", "n": 2})
            assert status == 400
        _assert_nothing_changed(h)

    _run(tmp_path, check)


def test_oversized_body_is_413_and_changes_nothing(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        huge = json.dumps({"prompt": "a" * 70_000}).encode()
        for path in (GEN, "/v1/tasks"):
            status, err, _ = await _req("POST", h.url + path, raw=huge)
            assert (status, err["error"]["code"]) == (413, "body_too_large")
        _assert_nothing_changed(h)

    _run(tmp_path, check)


def test_api_keys_required_when_configured(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        good = {"prompt": "a cat"}
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic k1"}):
            for method, path, body in (
                ("POST", GEN, good),
                ("POST", "/v1/tasks", good),
                ("GET", "/v1/tasks/0x" + "00" * 32, None),
                ("GET", "/v1/miners", None),
            ):
                status, err, _ = await _req(method, h.url + path, body=body, headers=headers)
                assert status == 401, (method, path, headers)
                assert err["error"]["code"] == "invalid_api_key"
        _assert_nothing_changed(h)
        # open endpoints stay open
        assert (await _req("GET", h.url + "/health"))[0] == 200
        assert (await _req("GET", h.url + "/openapi.json"))[0] == 200
        status, _view, _ = await _req(
            "POST", h.url + "/v1/tasks", body=good, headers={"Authorization": "Bearer k2"}
        )
        assert status == 202

    _run(tmp_path, check, api_keys=frozenset({"k1", "k2"}))


def test_generation_returns_images_with_receipts(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        async def go(miners: list[InstantMiner]) -> None:
            body = {"prompt": "a red fox", "n": 2, "size": "64x64", "seed": 42, "model": "sd-turbo"}
            status, out, _ = await _req("POST", h.url + GEN, body=body)
            assert status == 200, out
            assert len(out["data"]) == 2
            for item in out["data"]:
                assert base64.b64decode(item["b64_json"]) == make_png(64, 64)
                r = item["receipt"]
                assert r["verification"] in ("pending", "unchecked")
                assert isinstance(r["commit_block"], int)
                assert isinstance(r["result_block"], int)
                assert r["result_block"] >= r["commit_block"]
                assert r["settle_block"] == "pending" or isinstance(r["settle_block"], int)
                assert r["miner"].startswith("5")
            seeds = sorted(m.spec["seed"] for mm in miners for m in mm.received)
            assert seeds[:1] == [42]
            assert 43 in seeds
            spec = next(m.spec for mm in miners for m in mm.received)
            assert spec["model"] == "sd-turbo"
            assert spec["guidance_scale"] == "0.0"

        await _with_miners(h, go)

    _run(tmp_path, check)


def test_async_task_flow_and_image(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        async def go(miners: list[InstantMiner]) -> None:
            status, out, _ = await _req(
                "POST", h.url + "/v1/tasks", body={"prompt": "x", "size": "8x8"}
            )
            assert status == 202
            assert out["status"] in ("queued", "running")
            task_id = out["id"]
            view: dict[str, Any] = {}
            for _ in range(200):
                _, view, _ = await _req("GET", f"{h.url}/v1/tasks/{task_id}")
                if view["status"] == "succeeded" and view["receipt"]["settle_block"] != "pending":
                    break
                await asyncio.sleep(0.02)
            assert view["status"] == "succeeded"
            assert isinstance(view["receipt"]["settle_block"], int)
            status, _, png = await _req("GET", f"{h.url}/v1/tasks/{task_id}/image")
            assert status == 200
            assert png == make_png(8, 8)
            assert view["receipt"]["verification"] == "unchecked"
            status, _, _ = await _req("GET", f"{h.url}/v1/tasks/0x{'ab' * 32}")
            assert status == 404
            status, miners_view, _ = await _req("GET", h.url + "/v1/miners")
            assert status == 200
            assert len(miners_view["data"]) == 3
            assert all(m["live"] for m in miners_view["data"])
            assert sum(m["stats"].get("confirmed", 0) for m in miners_view["data"]) == 1
            _, _, text = await _req("GET", h.url + "/metrics")
            metrics = text.decode()
            assert "cuckoo_coordinator_dispatch_latency_seconds_count 1.0" in metrics
            assert 'cuckoo_coordinator_events_total{event="jobs_succeeded"} 1.0' in metrics
            assert "cuckoo_coordinator_miners_live 3.0" in metrics

        await _with_miners(h, go)

    _run(tmp_path, check)


def test_inactive_coordinator_refuses_new_tasks(tmp_path: Path) -> None:
    """A slash can leave the coordinator's registration Inactive: the chain would refuse its
    commitments, so it takes no task (503) instead of handing miners work that is never paid."""

    async def check(h: Harness) -> None:
        for path in ("/v1/tasks", GEN):
            status, out, _ = await _req("POST", h.url + path, body={"prompt": "x", "size": "8x8"})
            assert status == 503
            assert out["error"]["code"] == "coordinator_inactive"
            assert "Inactive" in out["error"]["message"]
        assert h.engine.job_counts() == {}

    _run(tmp_path, check, registration="Inactive")


def test_task_waits_for_a_miner_then_runs(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        status, out, _ = await _req(
            "POST", h.url + "/v1/tasks", body={"prompt": "x", "size": "8x8"}
        )
        assert (status, out["status"]) == (202, "queued")

        async def go(miners: list[InstantMiner]) -> None:
            for _ in range(200):
                _, view, _ = await _req("GET", f"{h.url}/v1/tasks/{out['id']}")
                if view["status"] == "succeeded":
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(view)

        await _with_miners(h, go)

    _run(tmp_path, check)


def test_generation_timeout_is_504_with_ids(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        status, err, _ = await _req("POST", h.url + GEN, body={"prompt": "nobody polls"})
        assert status == 504
        assert len(err["task_ids"]) == 1
        assert (await _req("GET", f"{h.url}/v1/tasks/{err['task_ids'][0]}"))[1][
            "status"
        ] == "queued"

    _run(tmp_path, check, request_timeout_s=0.3)


# ---- miner upload / release ---------------------------------------------------------------------


async def _poll_one(h: Harness, key_index: int) -> dict[str, Any]:
    body = json.dumps({"max_tasks": 8, "wait_s": 2}).encode()
    headers = sign_request(h.keys[key_index], "POST", "/v1/miner/poll", body)
    status, out, _ = await _req("POST", h.url + "/v1/miner/poll", raw=body, headers=headers)
    assert status == 200, out
    return out["tasks"][0]  # type: ignore[no-any-return]


async def _upload(
    h: Harness,
    key_index: int,
    task_id: str,
    png: bytes,
    *,
    rh: bytes | None = None,
    sketch: bytes | None = None,
    salt: str = "0x" + "5a" * 32,
    content_type: str = "image/png",
) -> tuple[int, Any]:
    path = f"/v1/miner/results/{task_id}"
    if sketch is None:
        sketch = image_sketch(png) if png.startswith(b"\x89PNG") and len(png) < 10**6 else b""
    headers = sign_request(h.keys[key_index], "POST", path, png) | {
        "Content-Type": content_type,
        "X-Cuckoo-Result-Hash": "0x" + (rh or result_hash(png)).hex(),
        "X-Cuckoo-Device": "0x" + device_hash(DEVICE_INFO).hex(),
        "X-Cuckoo-Sketch": "0x" + sketch.hex(),
        "X-Cuckoo-Salt": salt,
    }
    status, out, _ = await _req("POST", h.url + path, raw=png, headers=headers)
    return status, out


async def _make_live(h: Harness) -> None:
    body = json.dumps({"max_tasks": 1, "wait_s": 0}).encode()
    for k in h.keys:
        headers = sign_request(k, "POST", "/v1/miner/poll", body)
        status, _, _ = await _req("POST", h.url + "/v1/miner/poll", raw=body, headers=headers)
        assert status == 204


def _holder(h: Harness, task_id: str) -> int:
    a = h.engine.attempts[bytes.fromhex(task_id[2:])]
    return next(i for i, k in enumerate(h.keys) if bytes(k.public_key) == a.operator)


def test_upload_refusals(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await _make_live(h)
        status, out, _ = await _req(
            "POST", h.url + "/v1/tasks", body={"prompt": "x", "size": "8x8"}
        )
        task_id = out["id"]
        owner = _holder(h, task_id)
        task = await _poll_one(h, owner)
        assert task["task_id"] == task_id
        assert task["deadline_block"] > h.chain.head
        other = (owner + 1) % 3
        png = make_png(8, 8)
        assert (await _upload(h, owner, "0x" + "ee" * 32, png))[0] == 404
        assert (await _upload(h, other, task_id, png))[1]["error"]["code"] == "not_assigned"
        assert (await _upload(h, owner, task_id, png, rh=b"\x01" * 32))[0] == 422
        wrong = await _upload(h, owner, task_id, png, sketch=image_sketch(make_png(8, 8, seed=1)))
        assert (wrong[0], wrong[1]["error"]["code"]) == (422, "sketch_mismatch")
        assert (await _upload(h, owner, task_id, png, salt="0x1234"))[0] == 400
        assert (await _upload(h, owner, task_id, png, content_type="image/jpeg"))[0] == 422
        big = b"\x89PNG" + b"\x00" * (16 * 1024 * 1024)
        assert (await _upload(h, owner, task_id, big))[0] == 413
        status, out = await _upload(h, owner, task_id, png)
        assert (status, out["accepted"]) == (200, True)
        status, out = await _upload(h, owner, task_id, png)
        assert (status, out["error"]["code"]) == (409, "already_submitted")

    _run(tmp_path, check)


def test_upload_after_deadline_is_410(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await _make_live(h)
        _, out, _ = await _req("POST", h.url + "/v1/tasks", body={"prompt": "x", "size": "8x8"})
        owner = _holder(h, out["id"])
        task = await _poll_one(h, owner)
        h.engine.head = task["deadline_block"] + 1  # no expiry pass yet
        status, err = await _upload(h, owner, out["id"], make_png(8, 8))
        assert (status, err["error"]["code"]) == (410, "deadline_passed")

    _run(tmp_path, check, run_chain=False)


def test_release_goes_to_another_miner(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await _make_live(h)
        _, out, _ = await _req("POST", h.url + "/v1/tasks", body={"prompt": "x", "size": "8x8"})
        owner = _holder(h, out["id"])
        await _poll_one(h, owner)
        path = f"/v1/miner/release/{out['id']}"
        status, body, _ = await _req(
            "POST", h.url + path, raw=b"", headers=sign_request(h.keys[owner], "POST", path, b"")
        )
        assert (status, body) == (200, {"released": True})
        job = h.engine.jobs[bytes.fromhex(out["id"][2:])]
        assert len(job.attempts) == 2
        new = h.engine.attempts[job.attempts[1]]
        assert new.operator != bytes(h.keys[owner].public_key)
        status, body, _ = await _req(
            "POST", h.url + path, raw=b"", headers=sign_request(h.keys[owner], "POST", path, b"")
        )
        assert status == 409

    _run(tmp_path, check)


def test_openapi_document_lists_every_route(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        status, doc, _ = await _req("GET", h.url + "/openapi.json")
        assert status == 200
        assert doc["openapi"].startswith("3.")
        assert set(doc["paths"]) == {
            "/v1/images/generations",
            "/v1/tasks",
            "/v1/tasks/{task_id}",
            "/v1/tasks/{task_id}/image",
            "/v1/miners",
            "/v1/prices",
            "/health",
            "/metrics",
            "/openapi.json",
            "/v1/miner/poll",
            "/v1/miner/results/{task_id}",
            "/v1/miner/release/{task_id}",
        }
        assert doc["components"]["schemas"]["GenerationRequest"]["properties"]["model"]["enum"] == [
            "tiny",
            "sd-turbo",
        ]

    _run(tmp_path, check)
