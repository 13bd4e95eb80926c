"""Test doubles for the miner: a coordinator that implements the miner protocol faithfully (on a
real aiohttp server in a background thread), a chain that mirrors the Tasks pallet's
submit_results rules and records the check calls sent to it (with checks and specs the test
sets), and solvers that are slow or failing."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from substrateinterface import Keypair

from chain.hashing import blake2_256
from chain.taskproto import canonical_json, request_message, spec_hash
from chainclient.calls import Call
from chainclient.connection import ChainUnavailable
from chainclient.registry import Registration
from chainclient.sketch import image_sketch
from chainclient.tasks import Check, CheckOpened, Task
from miner.chain import NotRegistered, PendingResult, SubmitOutcome
from miner.solver import PNG_SIGNATURE, PatternSolver

MAX_SKEW_MS = 60_000
COORDINATOR = b"\xc0" * 32  # the staker that commits the fake chain's tasks
PRICE = 10**17  # 0.1 CAI: what the fake coordinator's tasks pay


def make_spec(
    prompt: str = "a red fox", seed: int = 7, width: int = 64, height: int = 48
) -> dict[str, Any]:
    return {
        "model": "test/pattern",
        "prompt": prompt,
        "negative_prompt": "",
        "width": width,
        "height": height,
        "steps": 2,
        "seed": seed,
        "guidance_scale": "0.0",
    }


# ---- coordinator ---------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeTask:
    task_id: bytes
    spec: dict[str, Any]
    deadline_block: int
    operator: str | None = None  # who holds it
    result: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    spec_hash: bytes | None = None  # a lying coordinator's spec hash
    price: int | None = PRICE  # planck stated to the miner (None: not stated)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task_id": "0x" + self.task_id.hex(),
            "spec": self.spec,
            "spec_hash": "0x" + (self.spec_hash or spec_hash(self.spec)).hex(),
            "deadline_block": self.deadline_block,
        }
        if self.price is not None:
            out["price"] = str(self.price)
        return out


class FakeCoordinator:
    """The coordinator's miner API: signed requests (operator, timestamp window, nonce replay,
    sr25519 signature over request_message), long-poll, result upload checks, release.

    Knobs: `fail_next` answers the next N requests with `fail_status` (0 = drop the connection),
    `down` answers every request with 503, `upload_fail_next` fails only uploads,
    `forbid_next` answers the next N well-signed requests with 403, `hang_s` delays every
    answer."""

    def __init__(self, *, allowed_operators: set[str] | None = None, prefix: str = "") -> None:
        self.allowed = allowed_operators
        self.prefix = prefix
        self.tasks: dict[bytes, FakeTask] = {}
        self.queue: collections.deque[bytes] = collections.deque()
        self.seen_nonces: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (path, operator, status)
        self.releases: list[bytes] = []
        self.release_bodies: list[bytes] = []
        self.poll_bodies: list[dict[str, Any]] = []
        self.polls = 0
        self.fail_next = 0
        self.fail_status = 503
        self.upload_fail_next = 0
        self.forbid_next = 0
        self.down = False
        self.hang_s = 0.0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    # ---- test API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def add_task(
        self,
        spec: dict[str, Any] | None = None,
        deadline_block: int = 10_000,
        *,
        claimed_spec_hash: bytes | None = None,
        price: int | None = PRICE,
    ) -> bytes:
        task = FakeTask(
            secrets.token_bytes(32),
            spec or make_spec(),
            deadline_block,
            spec_hash=claimed_spec_hash,
            price=price,
        )
        with self._lock:
            self.tasks[task.task_id] = task
            self.queue.append(task.task_id)
        return task.task_id

    def status_of(self, path_part: str) -> list[int]:
        return [s for p, _, s in self.requests if path_part in p]

    # ---- server ---------------------------------------------------------------------------------

    def start(self) -> FakeCoordinator:
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-coordinator")
        self._thread.start()
        assert self._ready.wait(10), "fake coordinator did not start"
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            with contextlib.suppress(Exception):
                fut.result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeCoordinator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post(self.prefix + "/v1/miner/poll", self._poll)
        app.router.add_post(self.prefix + "/v1/miner/results/{task_id}", self._results)
        app.router.add_post(self.prefix + "/v1/miner/release/{task_id}", self._release)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _auth(self, request: web.Request) -> tuple[str, bytes]:
        """(operator, body) of a well-signed request, else an HTTP error."""
        body = await request.read()
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if self.down:
            raise web.HTTPServiceUnavailable(text="down")
        if self.fail_next > 0:
            self.fail_next -= 1
            if self.fail_status == 0:
                assert request.transport is not None
                request.transport.close()
                raise web.HTTPServiceUnavailable()
            if self.fail_status == 503:
                raise web.HTTPServiceUnavailable(text="injected")
            raise web.HTTPInternalServerError(text="injected")
        h = request.headers
        try:
            operator = h["X-Cuckoo-Operator"]
            ts = int(h["X-Cuckoo-Timestamp"])
            nonce = h["X-Cuckoo-Nonce"]
            signature = bytes.fromhex(h["X-Cuckoo-Signature"].removeprefix("0x"))
        except (KeyError, ValueError) as exc:
            raise web.HTTPUnauthorized(text=f"bad auth headers: {exc}") from exc
        if len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
            raise web.HTTPUnauthorized(text="bad nonce")
        if abs(time.time() * 1000 - ts) > MAX_SKEW_MS:
            raise web.HTTPUnauthorized(text="stale timestamp")
        if nonce in self.seen_nonces:
            raise web.HTTPUnauthorized(text="replayed nonce")
        msg = request_message(request.method, request.path, body, ts, nonce)
        try:
            ok = Keypair(ss58_address=operator).verify(msg, signature)
        except Exception:
            ok = False
        if not ok:
            raise web.HTTPUnauthorized(text="bad signature")
        if self.allowed is not None and operator not in self.allowed:
            raise web.HTTPForbidden(text="not a registered miner")
        if self.forbid_next > 0:  # e.g. just restarted, registry not read yet
            self.forbid_next -= 1
            raise web.HTTPForbidden(text="operator does not serve a registered miner")
        self.seen_nonces.add(nonce)
        return operator, body

    def _record(self, request: web.Request, operator: str, status: int) -> None:
        self.requests.append((request.path, operator, status))

    async def _poll(self, request: web.Request) -> web.Response:
        try:
            operator, body = await self._auth(request)
        except web.HTTPException as exc:
            self._record(request, "?", exc.status)
            raise
        self.polls += 1
        args = json.loads(body)
        self.poll_bodies.append(args)
        max_tasks, wait_s = int(args["max_tasks"]), min(float(args["wait_s"]), 30.0)
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                picked = []
                while self.queue and len(picked) < max_tasks:
                    task = self.tasks[self.queue.popleft()]
                    task.operator = operator
                    picked.append(task.wire())
            if picked:
                self._record(request, operator, 200)
                return web.json_response({"tasks": picked})
            if time.monotonic() >= deadline:
                self._record(request, operator, 204)
                return web.Response(status=204)
            await asyncio.sleep(0.02)

    def _task(self, request: web.Request) -> FakeTask:
        try:
            task_id = bytes.fromhex(request.match_info["task_id"].removeprefix("0x"))
        except ValueError as exc:
            raise web.HTTPNotFound(text="bad task id") from exc
        task = self.tasks.get(task_id)
        if task is None:
            raise web.HTTPNotFound(text="unknown task")
        return task

    async def _results(self, request: web.Request) -> web.Response:
        operator = "?"
        try:
            operator, body = await self._auth(request)
            if self.upload_fail_next > 0:
                self.upload_fail_next -= 1
                raise web.HTTPServiceUnavailable(text="injected upload failure")
            task = self._task(request)
            if task.operator != operator:
                raise web.HTTPConflict(text="not assigned to you")
            if task.result is not None:
                raise web.HTTPConflict(text="already submitted")
            h = request.headers
            if h.get("X-Cuckoo-Result-Hash") != "0x" + blake2_256(body).hex():
                raise web.HTTPUnprocessableEntity(text="result hash mismatch")
            info = json.loads(h.get("X-Cuckoo-Device-Info", "null"))
            if (
                not isinstance(info, dict)
                or h.get("X-Cuckoo-Device") != "0x" + blake2_256(canonical_json(info)).hex()
            ):
                raise web.HTTPUnprocessableEntity(text="device hash mismatch")
            if not body.startswith(PNG_SIGNATURE):
                raise web.HTTPUnprocessableEntity(text="not a PNG")
            if h.get("X-Cuckoo-Sketch") != "0x" + image_sketch(body).hex():
                raise web.HTTPUnprocessableEntity(text="sketch mismatch")
            if len(bytes.fromhex(h.get("X-Cuckoo-Salt", "0x")[2:])) != 32:
                raise web.HTTPBadRequest(text="salt must be 32 bytes")
            task.result = body
            task.headers = dict(h)
        except web.HTTPException as exc:
            self._record(request, operator, exc.status)
            raise
        self._record(request, operator, 200)
        return web.json_response({"ok": True})

    async def _release(self, request: web.Request) -> web.Response:
        operator = "?"
        try:
            operator, body = await self._auth(request)
            task = self._task(request)
            if task.operator != operator or task.result is not None:
                raise web.HTTPConflict(text="not yours to release")
            with self._lock:
                task.operator = None
                if b"min_price" not in body:  # else it would go to another miner
                    self.queue.appendleft(task.task_id)
                self.releases.append(task.task_id)
                self.release_bodies.append(body)
        except web.HTTPException as exc:
            self._record(request, operator, exc.status)
            raise
        self._record(request, operator, 200)
        return web.json_response({"ok": True})


# ---- chain ---------------------------------------------------------------------------------------


class FakeChain:
    """ChainAccess with the Tasks pallet's submit_results rules (all or nothing). Blocks advance
    with wall time (`block_s`), or only by hand when `block_s` is None."""

    def __init__(
        self,
        operator: Keypair,
        *,
        block_s: float | None = 0.05,
        status: str = "Active",
        coordinators: Sequence[Registration] = (),
        registered: bool = True,
    ) -> None:
        self.operator = operator
        self.staker = Keypair.create_from_uri("//FakeStaker")
        self.staker_key = bytes(self.staker.public_key)
        self.block_s = block_s
        self._t0 = time.monotonic()
        self._manual = 1
        self.status = status
        self.registered = registered
        self.coordinator_records = list(coordinators)
        self.states: dict[bytes, Task] = {}
        self.check_states: dict[bytes, Check] = {}
        self.spec_json: dict[bytes, bytes] = {}
        self.opened: list[tuple[int, CheckOpened]] = []  # (block, event)
        self.sent: list[Call] = []  # check calls (commit_check, reveal_result, appeal)
        self.send_error = ""  # the dispatch error of the next sends, if any
        self.batches: list[tuple[int, list[PendingResult]]] = []
        self.failures: list[str] = []
        self.available = True

    def advance(self, blocks: int = 1) -> None:
        self._manual += blocks

    @property
    def best(self) -> int:
        auto = 0 if self.block_s is None else int((time.monotonic() - self._t0) / self.block_s)
        return self._manual + auto

    def commit(
        self,
        task_id: bytes,
        spec: dict[str, Any],
        deadline: int,
        miner: bytes | None = None,
        price: int = PRICE,
    ) -> None:
        self.states[task_id] = Task(
            coordinator=COORDINATOR,
            miner=self.staker_key if miner is None else miner,
            spec_hash=spec_hash(spec),
            deadline=deadline,
            committed_at=self.best,
            status="Committed",
            price=price,
        )

    def _check(self) -> None:
        if not self.available:
            raise ChainUnavailable("fake://chain", "fake chain is down")

    async def best_block(self) -> int:
        self._check()
        return self.best

    async def registration(self) -> Registration:
        self._check()
        if not self.registered:
            raise NotRegistered(f"operator {self.operator.ss58_address} is not registered")
        return Registration(
            staker=self.staker_key,
            operator=bytes(self.operator.public_key),
            name="fake",
            status=self.status,
            own_stake=20_000 * 10**18,
            votes=0,
        )

    async def coordinators(self) -> list[Registration]:
        self._check()
        return list(self.coordinator_records)

    async def tasks(self, task_ids: Sequence[bytes]) -> dict[bytes, Task | None]:
        self._check()
        return {t: self.states.get(t) for t in task_ids}

    async def submit_results(self, items: Sequence[PendingResult]) -> SubmitOutcome:
        self._check()
        block = self.best + 1
        for item in items:
            state = self.states.get(item.task_id)
            error = (
                "UnknownTask"
                if state is None
                else "NotAssigned"
                if state.miner != self.staker_key
                else "AlreadySubmitted"
                if state.status != "Committed"
                else "DeadlinePassed"
                if block > state.deadline
                else ""
            )
            if error:
                self.failures.append(error)
                return SubmitOutcome(False, error, block)
        for item in items:
            self.states[item.task_id] = dataclasses.replace(
                self.states[item.task_id], status="Submitted", commitment=item.commitment
            )
        self.batches.append((block, list(items)))
        if self.block_s is None:
            self._manual += 1
        return SubmitOutcome(True, "", block)

    async def checks(self, task_ids: Sequence[bytes]) -> dict[bytes, Check | None]:
        self._check()
        return {t: self.check_states.get(t) for t in task_ids}

    async def specs(self, task_ids: Sequence[bytes]) -> dict[bytes, bytes | None]:
        self._check()
        return {t: self.spec_json.get(t) for t in task_ids}

    async def checks_opened(self, first: int, last: int) -> list[CheckOpened]:
        self._check()
        return [ev for block, ev in self.opened if first <= block <= last]

    async def send(self, call: Call) -> SubmitOutcome:
        self._check()
        self.sent.append(call)
        if self.send_error:
            return SubmitOutcome(False, self.send_error, self.best + 1)
        return SubmitOutcome(True, "", self.best + 1)

    async def submit(self, call: Call) -> SubmitOutcome:
        return await self.send(call)


# ---- solvers -------------------------------------------------------------------------------------


class SlowSolver(PatternSolver):
    """PatternSolver that waits on `gate` (or `delay_s`) before answering; `started` is set
    when a solve begins."""

    def __init__(self, delay_s: float | None = None) -> None:
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.started = threading.Event()

    def solve(self, spec: dict[str, Any]) -> bytes:
        self.started.set()
        if self.delay_s is not None:
            time.sleep(self.delay_s)
        else:
            self.gate.wait(30)
        return super().solve(spec)


class FailingSolver(PatternSolver):
    def solve(self, spec: dict[str, Any]) -> bytes:
        raise RuntimeError("CUDA out of memory (simulated)")
