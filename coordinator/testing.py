"""Helpers for tests and benchmarks: a deterministic PNG, a protocol-true miner that answers
instantly (`InstantMiner`: an image of the spec's size with its sketch, salt and blind
commitment) and a thread that commits its results on chain (`ResultSubmitter`). Not used by the
daemon itself."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from substrateinterface import Keypair

from chain.taskproto import SALT_LENGTH, device_hash, result_commitment, result_hash
from chainclient import calls
from chainclient.calls import MAX_BATCH, ResultCommit
from chainclient.connection import Connection
from chainclient.signing import sign_request
from chainclient.sketch import image_sketch

MAX_CONNECTIONS = 16  # per instant miner: one poll plus uploads in flight
DEVICE_INFO = {"device": "instant-test", "driver": "none", "torch": "none", "dtype": "none"}


def make_png(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    """A deterministic PNG: a horizontal gradient, rising for even seeds, falling for odd."""
    from PIL import Image

    img = Image.new("RGB", (width, height))
    px = img.load()
    assert px is not None
    for y in range(height):
        for x in range(width):
            v = x * 255 // max(width - 1, 1)
            v = v if seed % 2 == 0 else 255 - v
            px[x, y] = (v, (v + seed * 37) % 256, 255 - v)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@dataclasses.dataclass
class Held:
    task_id: str
    spec: dict[str, Any]
    received_at: float  # time.time()


@dataclasses.dataclass(eq=False)
class InstantMiner:
    """Long-polls a coordinator with real signed requests and uploads, at once, a fixed
    gradient of the spec's size with its sketch and a fresh salt. `on_result(task_id_hex,
    commitment)` lets the caller commit it on chain; `staker` is the miner's staker account
    (the commitment binds it; default: the operator's own account)."""

    base_url: str
    operator: Keypair
    _: dataclasses.KW_ONLY
    staker: bytes | None = None
    max_tasks: int = 8
    wait_s: float = 5.0
    on_result: Callable[[str, bytes], None] | None = None
    device_info: dict[str, str] = dataclasses.field(default_factory=lambda: DEVICE_INFO)
    received: list[Held] = dataclasses.field(init=False, default_factory=list)
    uploaded: int = dataclasses.field(init=False, default=0)
    errors: list[str] = dataclasses.field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._pngs: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def image(self, spec: dict[str, Any]) -> tuple[bytes, bytes]:
        """(PNG, sketch) for a spec's size (cached)."""
        size = (int(spec.get("width", 64)), int(spec.get("height", 64)))
        if size not in self._pngs:
            png = make_png(*size)
            self._pngs[size] = (png, image_sketch(png))
        return self._pngs[size]

    async def post(
        self, session: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        h = sign_request(self.operator, "POST", path, body) | headers
        async with session.post(self.base_url + path, data=body, headers=h) as resp:
            return resp.status, await resp.read()

    async def run(self, stop: asyncio.Event) -> None:
        dh = device_hash(self.device_info)
        timeout = aiohttp.ClientTimeout(total=self.wait_s + 30)
        uploads: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while not stop.is_set():
                body = json.dumps({"max_tasks": self.max_tasks, "wait_s": self.wait_s}).encode()
                try:
                    status, data = await self.post(
                        session, "/v1/miner/poll", body, {"Content-Type": "application/json"}
                    )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.errors.append(f"poll: {exc}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    continue
                now = time.time()
                if status == 204:
                    continue
                if status != 200:
                    self.errors.append(f"poll: HTTP {status} {data[:200]!r}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    continue
                tasks = json.loads(data)["tasks"]
                for t in tasks:
                    self.received.append(Held(t["task_id"], t["spec"], now))
                    # answer at once, and keep polling meanwhile (a real miner's queue)
                    up = asyncio.create_task(self._upload(session, t["task_id"], t["spec"], dh))
                    uploads.add(up)
                    up.add_done_callback(uploads.discard)
            if uploads:
                await asyncio.gather(*uploads, return_exceptions=True)

    async def _upload(
        self, session: aiohttp.ClientSession, task_id: str, spec: dict[str, Any], dh: bytes
    ) -> None:
        png, sketch = self.image(spec)
        rh = result_hash(png)
        salt = os.urandom(SALT_LENGTH)
        staker = self.staker if self.staker is not None else bytes(self.operator.public_key)
        commitment = result_commitment(staker, bytes.fromhex(task_id[2:]), rh, dh, sketch, salt)
        headers = {
            "Content-Type": "image/png",
            "X-Cuckoo-Result-Hash": "0x" + rh.hex(),
            "X-Cuckoo-Device": "0x" + dh.hex(),
            "X-Cuckoo-Sketch": "0x" + sketch.hex(),
            "X-Cuckoo-Salt": "0x" + salt.hex(),
            "X-Cuckoo-Device-Info": json.dumps(self.device_info),
        }
        try:
            status, data = await self.post(session, f"/v1/miner/results/{task_id}", png, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors.append(f"upload: {exc}")
            return
        if status != 200:
            self.errors.append(f"upload: HTTP {status} {data[:200]!r}")
            return
        self.uploaded += 1
        if self.on_result is not None:
            self.on_result(task_id, commitment)


class ResultSubmitter:
    """A thread that commits miners' results on chain (`Tasks.submit_results`), one batch per
    miner per block, for each task as soon as its commitment is on chain (as a real miner must).
    `operators`: the miners it signs for; `add(..., operator=k)` names one (default: the first)."""

    def __init__(
        self,
        url: str,
        operator: Keypair,
        period_s: float = 0.25,
        *,
        more: list[Keypair] | None = None,
    ) -> None:
        self.url = url
        self.operator = operator
        self.operators = [operator, *(more or [])]
        self.period_s = period_s
        self._pending: dict[bytes, tuple[bytes, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.submitted = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="result-submitter", daemon=True)

    def add(self, task_id_hex: str, commitment: bytes, operator: Keypair | None = None) -> None:
        index = 0 if operator is None else self.operators.index(operator)
        with self._lock:
            self._pending[bytes.fromhex(task_id_hex[2:])] = (commitment, index)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = Connection(self.url, timeout_s=10.0)
        nonces: dict[int, int] = {}
        last_head = -1
        while not self._stop.is_set():
            try:
                number, block_hash = conn.head()
                if number == last_head:
                    self._stop.wait(self.period_s / 2)
                    continue
                last_head = number
                if not self._pending:
                    self._stop.wait(self.period_s)
                    continue
                by_miner = self._take_ready(conn, number, block_hash)
                for idx, batch in by_miner.items():
                    op = self.operators[idx]
                    for i in range(0, len(batch), MAX_BATCH):
                        chunk = batch[i : i + MAX_BATCH]
                        if idx not in nonces:
                            nonces[idx] = conn.next_index(bytes(op.public_key))
                        conn.submit(conn.sign(op, calls.submit_results(chunk), nonces[idx]))
                        nonces[idx] += 1
                        self.submitted += len(chunk)
            except Exception as exc:  # keep going; a test reads `errors`
                self.errors.append(repr(exc))
                nonces.clear()
                conn.close()
                self._stop.wait(0.5)
        conn.close()

    def _take_ready(
        self, conn: Connection, number: int, block_hash: str
    ) -> dict[int, list[ResultCommit]]:
        """The pending results whose task is committed and open at `number`, by miner; the
        ones whose task went on without them are forgotten."""
        with self._lock:
            ids = list(self._pending)
        states = conn.tasks(ids, block_hash)
        ready = [
            t
            for t, task in states.items()
            if task is not None and task.status == "Committed" and task.deadline >= number + 1
        ]
        gone = [t for t, task in states.items() if task is not None and t not in ready]
        by_miner: dict[int, list[ResultCommit]] = {}
        with self._lock:
            for t in ready:
                commitment, idx = self._pending.pop(t)
                by_miner.setdefault(idx, []).append(ResultCommit(t, commitment))
            for t in gone:
                self._pending.pop(t, None)
        return by_miner
