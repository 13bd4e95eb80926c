"""The coordinator protocol, client side.

Every request is signed by the miner's operator key (sr25519) over
`chain.taskproto.request_message(method, path, body, timestamp_ms, nonce)`
(`chainclient.signing.sign_request`):

    X-Cuckoo-Operator   SS58 address of the operator
    X-Cuckoo-Timestamp  unix milliseconds
    X-Cuckoo-Nonce      32 random hex characters
    X-Cuckoo-Signature  0x-hex sr25519 signature

    POST /v1/miner/poll               {"max_tasks": n, "wait_s": s, "min_price": "<planck>"}
                                      -> 200 {"tasks": [{task_id, spec, spec_hash, deadline_block,
                                                         price}]}
                                      |  204 (nothing within wait_s)
    POST /v1/miner/results/{task_id}  body: the PNG; X-Cuckoo-Result-Hash, X-Cuckoo-Device,
                                      X-Cuckoo-Sketch, X-Cuckoo-Salt (0x-hex: what opens
                                      the result's on-chain commitment), X-Cuckoo-Device-Info
                                      (JSON)
                                      -> 200 | 404 | 409 | 410 | 413 | 422
    POST /v1/miner/release/{task_id}  hands a task back; body {"reason": "...", "min_price":
                                      "<planck>"} when its price is under what the miner takes

`CoordinatorClient` speaks to one coordinator; `CoordinatorPool` holds several, picks one to poll
at random with coordinator stake as weights, backs off (exponentially, with jitter) from one that
fails and fails over to the others. Every request has a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from substrateinterface import Keypair

from chainclient.signing import sign_request
from miner import MinerError

log = logging.getLogger(__name__)

POLL_PATH = "/v1/miner/poll"
RESULTS_PATH = "/v1/miner/results/"
RELEASE_PATH = "/v1/miner/release/"
# Answers after which retrying the same upload or release cannot succeed. 401 and 403 are not
# among them: a retry carries a fresh timestamp and nonce, and a coordinator that has just
# started may not have read the registry yet (it answers 403 until it has).
FINAL_STATUSES = frozenset({400, 404, 409, 410, 413, 422})
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class CoordinatorError(MinerError):
    """A coordinator could not be reached or answered with an error; retrying may help."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status


class TaskRefused(MinerError):
    """A coordinator refused a result or release for good (4xx); retrying cannot help."""

    def __init__(self, url: str, task_id: bytes, status: int, reason: str) -> None:
        super().__init__(f"{url}: task 0x{task_id.hex()} refused with {status}: {reason}")
        self.url = url
        self.task_id = task_id
        self.status = status
        self.reason = reason


class NoCoordinator(MinerError):
    """No coordinator can be polled now; `retry_in_s` says when one comes out of its backoff."""

    def __init__(self, message: str, retry_in_s: float) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """One task handed to this miner by the coordinator at `coordinator` (its base URL)."""

    task_id: bytes
    spec: dict[str, Any]
    spec_hash: bytes
    deadline_block: int
    coordinator: str
    price: int | None = None  # planck, as the coordinator states it (None: it did not say)

    @property
    def task_hex(self) -> str:
        return "0x" + self.task_id.hex()


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """A coordinator to poll: base URL and weight (its stake; any positive number)."""

    url: str
    weight: int = 1
    name: str = ""


def parse_h256(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex string")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return raw


def parse_assignment(item: object, coordinator: str) -> Assignment:
    """One entry of a poll answer; ValueError when malformed."""
    if not isinstance(item, dict):
        raise ValueError("task must be an object")
    spec = item.get("spec")
    deadline = item.get("deadline_block")
    if not isinstance(spec, dict):
        raise ValueError("task.spec must be an object")
    if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline < 0:
        raise ValueError("task.deadline_block must be a block number")
    price = item.get("price")
    if price is not None and not (
        isinstance(price, str) and price.isascii() and price.isdigit() and len(price) <= 39
    ):
        raise ValueError("task.price must be a decimal string of planck")
    return Assignment(
        task_id=parse_h256(item.get("task_id"), "task.task_id"),
        spec=spec,
        spec_hash=parse_h256(item.get("spec_hash"), "task.spec_hash"),
        deadline_block=deadline,
        coordinator=coordinator,
        price=None if price is None else int(price),
    )


def normalize_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


class CoordinatorClient:
    """Signed requests to one coordinator. The session is owned by the caller."""

    def __init__(
        self,
        url: str,
        keypair: Keypair,
        session: aiohttp.ClientSession,
        *,
        request_timeout_s: float = 10.0,
    ) -> None:
        self.url = normalize_url(url)
        self._base_path = urlsplit(self.url).path
        self._keypair = keypair
        self._session = session
        self._timeout_s = request_timeout_s

    async def _post(
        self,
        path: str,
        body: bytes,
        *,
        timeout_s: float,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        full_path = self._base_path + path
        headers = sign_request(self._keypair, "POST", full_path, body)
        headers["Content-Type"] = content_type
        headers.update(extra_headers or {})
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(
                    self.url + path, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    data = await resp.content.read(MAX_RESPONSE_BYTES)
                    return resp.status, data
        except TimeoutError as exc:
            raise CoordinatorError(self.url, f"no answer within {timeout_s:.0f} s") from exc
        except aiohttp.ClientError as exc:
            raise CoordinatorError(self.url, f"{type(exc).__name__}: {exc}") from exc

    async def poll(self, max_tasks: int, wait_s: float, min_price: int = 0) -> list[Assignment]:
        """Long-poll for up to `max_tasks` tasks, waiting at most `wait_s` on the coordinator;
        `min_price` (planck) asks for no task paying less."""
        req: dict[str, Any] = {"max_tasks": max_tasks, "wait_s": wait_s}
        if min_price:
            req["min_price"] = str(min_price)
        body = json.dumps(req).encode()
        status, data = await self._post(
            POLL_PATH, body, timeout_s=wait_s + self._timeout_s, content_type="application/json"
        )
        if status == 204:
            return []
        if status != 200:
            raise CoordinatorError(self.url, f"poll answered {status}: {_reason(data)}", status)
        try:
            answer = json.loads(data)
            items = answer["tasks"]
            if not isinstance(items, list):
                raise ValueError("tasks must be a list")
            return [parse_assignment(item, self.url) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise CoordinatorError(self.url, f"malformed poll answer: {exc}", status) from exc

    async def upload(
        self,
        task_id: bytes,
        png: bytes,
        *,
        result_hash: bytes,
        device_hash: bytes,
        sketch: bytes,
        salt: bytes,
        device_info: Mapping[str, str],
    ) -> None:
        """Send a result. Raises TaskRefused on a final 4xx, CoordinatorError otherwise."""
        headers = {
            "X-Cuckoo-Result-Hash": "0x" + result_hash.hex(),
            "X-Cuckoo-Device": "0x" + device_hash.hex(),
            "X-Cuckoo-Sketch": "0x" + sketch.hex(),
            "X-Cuckoo-Salt": "0x" + salt.hex(),
            "X-Cuckoo-Device-Info": json.dumps(device_info, sort_keys=True, separators=(",", ":")),
        }
        status, data = await self._post(
            RESULTS_PATH + "0x" + task_id.hex(),
            png,
            timeout_s=self._timeout_s + len(png) / 1_000_000,  # + 1 s per MB
            content_type="image/png",
            extra_headers=headers,
        )
        if status == 200:
            return
        if status in FINAL_STATUSES:
            raise TaskRefused(self.url, task_id, status, _reason(data))
        raise CoordinatorError(self.url, f"upload answered {status}: {_reason(data)}", status)

    async def release(
        self, task_id: bytes, *, reason: str | None = None, min_price: int | None = None
    ) -> None:
        """Hand a task back, saying why (and, when its price is under what this miner takes,
        the least it takes). Raises TaskRefused on a 4xx (e.g. no longer ours)."""
        said: dict[str, str] = {}
        if reason:
            said["reason"] = reason
        if min_price is not None:
            said["min_price"] = str(min_price)
        status, data = await self._post(
            RELEASE_PATH + "0x" + task_id.hex(),
            json.dumps(said).encode() if said else b"",
            timeout_s=self._timeout_s,
            content_type="application/json" if said else "application/octet-stream",
        )
        if 200 <= status < 300:
            return
        if status in FINAL_STATUSES:
            raise TaskRefused(self.url, task_id, status, _reason(data))
        raise CoordinatorError(self.url, f"release answered {status}: {_reason(data)}", status)


def _reason(data: bytes) -> str:
    try:
        obj = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace").strip() or "(empty)"
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)[:200]
        return str(err)[:200]
    return str(obj)[:200]


@dataclasses.dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th consecutive failure waits
    base * factor**(n-1), capped, scaled by a random factor in [1 - jitter, 1]."""

    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 5.0  # a recovered coordinator is polled again within about 5 s
    jitter: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> float:
        if failures <= 0:
            return 0.0
        raw = min(self.cap_s, self.base_s * self.factor ** (failures - 1))
        return raw * (1.0 - self.jitter * rng.random())


@dataclasses.dataclass
class _Health:
    failures: int = 0
    next_try: float = 0.0  # monotonic time before which the endpoint is not polled
    last_error: str = ""


class CoordinatorPool:
    """Several coordinators: weighted choice for polling, backoff and failover, retries for
    uploads and releases (which go to the coordinator the task came from)."""

    def __init__(
        self,
        keypair: Keypair,
        endpoints: Sequence[Endpoint] = (),
        *,
        request_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keypair = keypair
        self._timeout_s = request_timeout_s
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, CoordinatorClient] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._health: dict[str, _Health] = {}
        self.set_endpoints(endpoints)

    # ---- membership -----------------------------------------------------------------------------

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the set of coordinators (health of the ones kept is kept)."""
        fresh = {}
        for e in endpoints:
            url = normalize_url(e.url)
            fresh[url] = dataclasses.replace(e, url=url, weight=max(int(e.weight), 1))
        self._endpoints = fresh
        self._health = {url: self._health.get(url, _Health()) for url in fresh}

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    def health(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "url": url,
                "name": e.name,
                "weight": str(e.weight),
                "failures": self._health[url].failures,
                "backoff_s": round(max(self._health[url].next_try - now, 0.0), 3),
                "last_error": self._health[url].last_error,
            }
            for url, e in self._endpoints.items()
        ]

    # ---- session --------------------------------------------------------------------------------

    def _client(self, url: str) -> CoordinatorClient:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout_s)
            )
            self._clients = {}
        client = self._clients.get(url)
        if client is None:
            client = CoordinatorClient(
                url, self._keypair, self._session, request_timeout_s=self._timeout_s
            )
            self._clients[url] = client
        return client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._clients = {}

    # ---- health ---------------------------------------------------------------------------------

    def _failed(self, url: str, error: str) -> float:
        h = self._health.get(url)
        if h is None:
            return 0.0
        h.failures += 1
        h.last_error = error
        delay = self._backoff.delay(h.failures, self._rng)
        h.next_try = self._clock() + delay
        return delay

    def _succeeded(self, url: str) -> None:
        h = self._health.get(url)
        if h is not None:
            h.failures, h.next_try, h.last_error = 0, 0.0, ""

    def _weighted_order(self, urls: list[str]) -> list[str]:
        """Weighted sampling without replacement."""
        left = list(urls)
        out: list[str] = []
        while left:
            weights = [self._endpoints[u].weight for u in left]
            pick = self._rng.choices(range(len(left)), weights=weights)[0]
            out.append(left.pop(pick))
        return out

    # ---- operations -----------------------------------------------------------------------------

    async def poll(self, max_tasks: int, wait_s: float, min_price: int = 0) -> list[Assignment]:
        """Poll one coordinator chosen by weight among those not backing off; on failure try the
        next. Raises NoCoordinator when none answered."""
        if not self._endpoints:
            raise NoCoordinator("no coordinator known", self._backoff.cap_s)
        now = self._clock()
        ready = [u for u in self._endpoints if self._health[u].next_try <= now]
        if not ready:
            wait = min(self._health[u].next_try for u in self._endpoints) - now
            raise NoCoordinator("every coordinator is backing off", max(wait, 0.0))
        errors = []
        for url in self._weighted_order(ready):
            try:
                tasks = await self._client(url).poll(max_tasks, wait_s, min_price)
            except CoordinatorError as exc:
                delay = self._failed(url, str(exc))
                h = self._health.get(url)
                level = logging.WARNING if h is None or h.failures == 1 else logging.DEBUG
                log.log(level, "coordinator failed: %s; backing off %.1f s", exc, delay)
                errors.append(str(exc))
                continue
            h = self._health.get(url)
            if h is not None and h.failures:
                log.info("coordinator %s is back", url)
            self._succeeded(url)
            return tasks
        now = self._clock()
        wait = min(self._health[u].next_try for u in self._endpoints) - now
        raise NoCoordinator("no coordinator answered: " + "; ".join(errors), max(wait, 0.0))

    async def upload(
        self,
        task: Assignment,
        png: bytes,
        *,
        result_hash: bytes,
        device_hash: bytes,
        sketch: bytes,
        salt: bytes,
        device_info: Mapping[str, str],
        attempts: int = 5,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Upload to the task's coordinator, retrying transient failures with backoff.
        Raises TaskRefused (final) or CoordinatorError (gave up)."""
        await self._retry(
            task.coordinator,
            lambda c: c.upload(
                task.task_id,
                png,
                result_hash=result_hash,
                device_hash=device_hash,
                sketch=sketch,
                salt=salt,
                device_info=device_info,
            ),
            attempts,
            stop,
        )

    async def release(
        self,
        task: Assignment,
        *,
        attempts: int = 3,
        reason: str | None = None,
        min_price: int | None = None,
    ) -> bool:
        """Hand a task back (saying why); True when the coordinator took it (or no longer
        considers it ours)."""
        try:
            await self._retry(
                task.coordinator,
                lambda c: c.release(task.task_id, reason=reason, min_price=min_price),
                attempts,
                None,
            )
        except TaskRefused as exc:
            log.info("release of %s: %s", task.task_hex, exc)
            return True
        except CoordinatorError as exc:
            log.warning("could not release %s: %s", task.task_hex, exc)
            return False
        return True

    async def _retry(
        self,
        url: str,
        op: Callable[[CoordinatorClient], Awaitable[None]],
        attempts: int,
        stop: asyncio.Event | None,
    ) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await op(self._client(url))
            except CoordinatorError as exc:
                if attempt == attempts:
                    self._failed(url, str(exc))
                    raise
                delay = self._backoff.delay(attempt, self._rng)
                log.info("%s (attempt %d/%d); retrying in %.1f s", exc, attempt, attempts, delay)
                if stop is not None and stop.is_set():
                    delay = min(delay, 0.5)  # shutting down: retry quickly, do not linger
                await asyncio.sleep(delay)
                continue
            self._succeeded(url)
            return
