"""HTTP API (aiohttp): the app API (OpenAI images shape, native tasks), the signed miner API,
health, metrics and the OpenAPI document. Handlers validate, then call the engine."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from chainclient.accounts import ss58
from chainclient.amounts import DECIMALS, U128_MAX, format_cai
from chainclient.registry import Registration
from coordinator import RefusedMinerRequest
from coordinator.auth import AuthError, MinerAuth
from coordinator.engine import Engine, InsufficientFunds, RequestError
from coordinator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from coordinator.metrics import Metrics
from coordinator.model import AState, Attempt, Job, JobStatus
from coordinator.openapi import build_openapi
from coordinator.validate import InvalidRequest, parse_generation

log = logging.getLogger(__name__)

APP_BODY_LIMIT = 64 * 1024
MINER_BODY_LIMIT = 4 * 1024
RESULT_BODY_LIMIT = 16 * 1024 * 1024
MAX_POLL_TASKS = 8
MAX_WAIT_S = 30.0
HEX32_LEN = 64
MAX_REASON_CHARS = 200  # of a miner's release reason, as logged

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    ready: bool
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ApiConfig:
    models: Sequence[str] = ("tiny",)
    request_timeout_s: float = 60.0
    api_keys: frozenset[str] = frozenset()


@dataclasses.dataclass(slots=True)
class ApiContext:
    cfg: ApiConfig
    engine: Engine
    auth: MinerAuth
    metrics: Metrics
    health: Callable[[], Health]


CTX: web.AppKey[ApiContext] = web.AppKey("ctx", ApiContext)


# ---- responses -----------------------------------------------------------------------------------


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def app_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str = "invalid_request_error",
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "error": {"message": message, "type": type_, "param": param, "code": code}
    }
    if extra:
        body.update(extra)
    return json_response(body, status)


def miner_error(status: int, type_: str, code: str, message: str) -> web.Response:
    return json_response({"error": {"message": message, "type": type_, "code": code}}, status)


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    data = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge
    return bytes(data)


def parse_id(text: str) -> bytes | None:
    t = text[2:] if text.startswith(("0x", "0X")) else text
    if len(t) != HEX32_LEN:
        return None
    try:
        return bytes.fromhex(t)
    except ValueError:
        return None


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


# ---- app endpoints -------------------------------------------------------------------------------


def _app_auth(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        keys = request.app[CTX].cfg.api_keys
        if keys:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(token.encode(), k.encode()) for k in keys
            ):
                return app_error(
                    401,
                    "missing or invalid API key (Authorization: Bearer <key>)",
                    code="invalid_api_key",
                )
        return await handler(request)

    return wrapped


async def _json_body(request: web.Request) -> Any:
    try:
        raw = await read_body(request, APP_BODY_LIMIT)
    except BodyTooLarge:
        raise InvalidRequest("request body too large", None, "body_too_large") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}", None, "invalid_json") from exc


def _too_large() -> web.Response:
    return app_error(413, f"request body is over {APP_BODY_LIMIT} bytes", code="body_too_large")


async def _submit(request: web.Request, max_n: int) -> list[Job] | web.Response:
    """Parse a generation request (at most `max_n` images) and submit its jobs, or the error."""
    ctx = request.app[CTX]
    try:
        body = await _json_body(request)
        specs, _ = parse_generation(body, ctx.cfg.models, max_n=max_n)
    except InvalidRequest as exc:
        if exc.code == "body_too_large":
            return _too_large()
        return app_error(400, exc.message, param=exc.param, code=exc.code)
    h = ctx.health().body
    if h.get("chain", {}).get("reachable") and not h.get("registered"):
        # the chain refuses our commitments (e.g. a slash left the registration Inactive):
        # miners' work would be wasted, so take nothing until it is Active again
        status = h.get("coordinator_status") or "not registered"
        return app_error(
            503,
            f"the coordinator's registration is {status}: it cannot commit tasks now",
            code="coordinator_inactive",
            type_="server_error",
        )
    try:
        return await ctx.engine.submit(specs)
    except InsufficientFunds as exc:
        # the chain would refuse to commit what the operator cannot escrow: take nothing now
        return app_error(503, str(exc), code="insufficient_funds", type_="server_error")


def _job_view(ctx: ApiContext, job: Job, attempts: dict[bytes, Attempt]) -> dict[str, Any]:
    receipt = None
    if job.status is JobStatus.SUCCEEDED and job.chosen is not None and job.chosen in attempts:
        receipt = _receipt(ctx, attempts[job.chosen])
    status = job.status
    if status is JobStatus.QUEUED and any(
        a.state is not AState.ASSIGNED for a in attempts.values()
    ):
        status = JobStatus.RUNNING
    return {
        "id": hex0x(job.job_id),
        "object": "image.task",
        "status": status.value,
        "created": job.created_ms // 1000,
        "spec": job.spec,
        "spec_hash": hex0x(job.spec_hash),
        "price": str(job.price),
        "attempts": len(job.attempts),
        "error": job.error,
        "receipt": receipt,
    }


def _receipt(ctx: ApiContext, a: Attempt) -> dict[str, Any]:
    r = ctx.engine.receipt(a)
    r["miner"] = ss58(a.miner)
    return r


async def generations(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    jobs = await _submit(request, max_n=4)
    if isinstance(jobs, web.Response):
        return jobs
    ids = [hex0x(j.job_id) for j in jobs]
    if not await ctx.engine.wait_jobs(jobs, ctx.cfg.request_timeout_s):
        return app_error(
            504,
            f"no result within {ctx.cfg.request_timeout_s:g} s; the tasks continue: "
            "GET /v1/tasks/{id}",
            code="timeout",
            type_="timeout_error",
            extra={"task_ids": ids},
        )
    failed = [j for j in jobs if j.status is not JobStatus.SUCCEEDED]
    if failed:
        return app_error(
            502,
            f"generation failed: {failed[0].error}",
            code="generation_failed",
            type_="server_error",
            extra={"task_ids": ids},
        )
    data = []
    for job in jobs:
        record = ctx.engine.load_job_record(job.job_id)
        if record is None or job.chosen is None:
            return app_error(500, "finished task not found", type_="server_error")
        _, attempts = record
        png = await asyncio.to_thread(ctx.engine.store.read_image, job.chosen)
        if png is None:
            return app_error(500, "image missing from the data directory", type_="server_error")
        data.append(
            {
                "b64_json": base64.b64encode(png).decode(),
                "revised_prompt": None,
                "receipt": _receipt(ctx, attempts[job.chosen]),
            }
        )
    return json_response({"created": int(time.time()), "data": data})


async def create_task(request: web.Request) -> web.Response:
    jobs = await _submit(request, max_n=1)
    if isinstance(jobs, web.Response):
        return jobs
    (job,) = jobs
    return json_response({"id": hex0x(job.job_id), "status": job.status.value}, 202)


def _find(request: web.Request) -> tuple[Job, dict[bytes, Attempt]] | web.Response:
    job_id = parse_id(request.match_info["task_id"])
    record = None if job_id is None else request.app[CTX].engine.load_job_record(job_id)
    if record is None:
        return app_error(404, "no such task", param="id", code="not_found", type_="not_found_error")
    return record


async def get_task(request: web.Request) -> web.Response:
    found = _find(request)
    if isinstance(found, web.Response):
        return found
    return json_response(_job_view(request.app[CTX], *found))


async def get_task_image(request: web.Request) -> web.Response:
    found = _find(request)
    if isinstance(found, web.Response):
        return found
    job, _ = found
    if job.status is not JobStatus.SUCCEEDED or job.chosen is None:
        return app_error(
            409,
            f"the task is {job.status.value}; no image yet",
            code="not_ready",
            type_="invalid_request_error",
        )
    png = await asyncio.to_thread(request.app[CTX].engine.store.read_image, job.chosen)
    if png is None:
        return app_error(404, "image not found", code="not_found", type_="not_found_error")
    return web.Response(body=png, content_type="image/png")


async def list_miners(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    engine = ctx.engine
    live = {c.staker for c in engine.live_miners()}
    out = []
    for rec in sorted(engine.registry_records(), key=lambda r: (-r.weight, r.staker)):
        if not rec.is_active:
            continue
        state = engine.miners.get(rec.staker)
        stats = dict(state.stats) if state is not None else {}
        out.append(
            {
                "miner": ss58(rec.staker),
                "operator": ss58(rec.operator),
                "name": rec.name,
                "gpu_model": rec.gpu_model,
                "status": rec.status,
                "own_stake": str(rec.own_stake),
                "votes": str(rec.votes),
                "weight": str(rec.weight),
                "live": rec.staker in live,
                "last_poll": None
                if state is None or state.last_poll_ms is None
                else state.last_poll_ms / 1000,
                "stats": {k: int(v) for k, v in sorted(stats.items())},
            }
        )
    return json_response({"object": "list", "data": out})


async def list_prices(request: web.Request) -> web.Response:
    """The price of a task per served model and size (planck, and in CAI), before any request."""
    ctx = request.app[CTX]
    prices = ctx.engine.cfg.prices
    return json_response(
        {
            "object": "list",
            "unit": "planck",
            "decimals": DECIMALS,
            "default": {"price": str(prices.default), "price_cai": format_cai(prices.default)},
            "data": prices.entries(list(ctx.cfg.models)),
        }
    )


async def health(request: web.Request) -> web.Response:
    h = request.app[CTX].health()
    return json_response(h.body, 200 if h.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[CTX].metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return json_response(build_openapi(list(ctx.cfg.models), bearer_auth=bool(ctx.cfg.api_keys)))


# ---- miner endpoints -----------------------------------------------------------------------------


async def _miner_request(
    request: web.Request, limit: int
) -> tuple[Registration, bytes] | web.Response:
    try:
        body = await read_body(request, limit)
    except BodyTooLarge:
        return miner_error(
            413, "invalid_request_error", "body_too_large", f"body over {limit} bytes"
        )
    try:
        record = request.app[CTX].auth.verify(request.method, request.path, body, request.headers)
    except AuthError as exc:
        return _refused(exc)
    return record, body


async def _miner_task_request(
    request: web.Request, limit: int
) -> tuple[Registration, bytes, bytes] | web.Response:
    """A signed miner request about the task of the URL: (miner, task id, body) or the error."""
    got = await _miner_request(request, limit)
    if isinstance(got, web.Response):
        return got
    task_id = parse_id(request.match_info["task_id"])
    if task_id is None:
        return miner_error(404, "not_found_error", "unknown_task", "no such task")
    record, body = got
    return record, task_id, body


def _refused(exc: RefusedMinerRequest) -> web.Response:
    return miner_error(exc.status, exc.type, exc.code, exc.message)


def _bad(message: str, code: str = "invalid_request") -> web.Response:
    return miner_error(400, "invalid_request_error", code, message)


def _task_json(engine: Engine, a: Attempt) -> dict[str, Any]:
    job = engine.jobs[a.job_id]
    return {
        "task_id": hex0x(a.task_id),
        "spec": job.spec,
        "spec_hash": hex0x(job.spec_hash),
        "deadline_block": a.deadline,
        "price": str(a.price),
    }


def parse_planck(value: object) -> int | None:
    """An amount of planck as the miner API carries it (a decimal string, or an integer); None
    when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 39:
        n = int(value)
    else:
        return None
    return n if 0 <= n <= U128_MAX else None


async def miner_poll(request: web.Request) -> web.StreamResponse:
    got = await _miner_request(request, MINER_BODY_LIMIT)
    if isinstance(got, web.Response):
        return got
    record, body = got
    try:
        req = json.loads(body) if body else {}
    except ValueError:
        return _bad("malformed JSON", "invalid_json")
    if not isinstance(req, dict):
        return _bad("the body must be a JSON object")
    max_tasks = req.get("max_tasks", 1)
    wait_s = req.get("wait_s", 0)
    min_price = None
    if "min_price" in req:
        min_price = parse_planck(req["min_price"])
        if min_price is None:
            return _bad("min_price must be an amount of planck (a decimal string)")
    if type(max_tasks) is not int or not 1 <= max_tasks <= MAX_POLL_TASKS:
        return _bad(f"max_tasks must be an integer 1..{MAX_POLL_TASKS}")
    if (
        type(wait_s) not in (int, float)
        or not math.isfinite(wait_s)
        or not 0 <= wait_s <= MAX_WAIT_S
    ):
        return _bad(f"wait_s must be a number 0..{MAX_WAIT_S:g}")
    engine = request.app[CTX].engine
    transport = request.transport

    def is_gone() -> bool:
        return transport is None or transport.is_closing()

    tasks = await engine.poll(record, max_tasks, float(wait_s), is_gone, min_price)
    if tasks and is_gone():  # taken as the miner left: hand them to someone else
        for a in tasks:
            await engine.release(record, a.task_id)
        return web.Response(status=204)
    if not tasks:
        return web.Response(status=204)
    return json_response({"tasks": [_task_json(engine, a) for a in tasks]})


def _hash_header(request: web.Request, name: str) -> bytes | None:
    value = request.headers.get(name, "")
    if not value.startswith("0x"):
        return None
    return parse_id(value)


def _hex_header(request: web.Request, name: str, max_bytes: int = 4096) -> bytes | None:
    value = request.headers.get(name, "")
    if not value.startswith("0x") or len(value) > 2 + 2 * max_bytes:
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


async def miner_result(request: web.Request) -> web.Response:
    got = await _miner_task_request(request, RESULT_BODY_LIMIT)
    if isinstance(got, web.Response):
        return got
    record, task_id, body = got
    result_hash = _hash_header(request, "X-Cuckoo-Result-Hash")
    device_hash = _hash_header(request, "X-Cuckoo-Device")
    salt = _hash_header(request, "X-Cuckoo-Salt")
    if result_hash is None or device_hash is None or salt is None:
        return _bad(
            "X-Cuckoo-Result-Hash, X-Cuckoo-Device and X-Cuckoo-Salt must be 0x + 32 bytes hex"
        )
    sketch = _hex_header(request, "X-Cuckoo-Sketch")
    if sketch is None:
        return _bad("X-Cuckoo-Sketch must be 0x + hex (the image sketch of the body)")
    if request.content_type != "image/png":
        return miner_error(
            422, "invalid_request_error", "not_png", "Content-Type must be image/png"
        )
    device_info = request.headers.get("X-Cuckoo-Device-Info")
    if device_info is not None:
        try:
            json.loads(device_info)
        except ValueError:
            return _bad("X-Cuckoo-Device-Info must be JSON")
    engine = request.app[CTX].engine
    try:
        a = await engine.upload(
            record, task_id, body, result_hash, device_hash, sketch, salt, device_info
        )
    except RequestError as exc:
        return _refused(exc)
    return json_response(
        {"accepted": True, "task_id": hex0x(a.task_id), "commit_block": a.commit_block}
    )


async def miner_release(request: web.Request) -> web.Response:
    got = await _miner_task_request(request, MINER_BODY_LIMIT)
    if isinstance(got, web.Response):
        return got
    record, task_id, body = got
    reason, min_price = _release_reason(body)
    try:
        await request.app[CTX].engine.release(record, task_id, reason=reason, min_price=min_price)
    except RequestError as exc:
        return _refused(exc)
    return json_response({"released": True})


def _release_reason(body: bytes) -> tuple[str | None, int | None]:
    """(reason, min_price) from a release body `{"reason": "...", "min_price": "<planck>"}`
    (both optional); anything else (empty, not JSON) says nothing."""
    try:
        obj = json.loads(body) if body else None
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    reason = obj.get("reason")
    text = None
    if isinstance(reason, str) and reason.strip():
        text = " ".join(reason.split())[:MAX_REASON_CHARS]
    min_price = parse_planck(obj["min_price"]) if "min_price" in obj else None
    return text, min_price


# ---- app factory ---------------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
            code = exc.reason.lower().replace(" ", "_")
            resp = app_error(exc.status, exc.reason, code=code, type_=kind)
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return app_error(500, "internal error", type_="server_error", code="internal_error")


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(client_max_size=RESULT_BODY_LIMIT + 1, middlewares=[_errors])
    app[CTX] = ctx
    app.router.add_post("/v1/images/generations", _app_auth(generations))
    app.router.add_post("/v1/tasks", _app_auth(create_task))
    app.router.add_get("/v1/tasks/{task_id}", _app_auth(get_task), allow_head=False)
    app.router.add_get("/v1/tasks/{task_id}/image", _app_auth(get_task_image), allow_head=False)
    app.router.add_get("/v1/miners", _app_auth(list_miners), allow_head=False)
    app.router.add_get("/v1/prices", list_prices, allow_head=False)  # public, like the chain
    app.router.add_get("/health", health, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    app.router.add_post("/v1/miner/poll", miner_poll)
    app.router.add_post("/v1/miner/results/{task_id}", miner_result)
    app.router.add_post("/v1/miner/release/{task_id}", miner_release)
    return app
