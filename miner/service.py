"""The miner service: poll coordinators, solve, upload, commit on chain, take part in checks.

    MinerService.run()
      ├─ work loop      long-poll a coordinator (weighted by stake, backoff and failover), hand
      │                 back tasks paying under --min-price (as the coordinator states it, and
      │                 before the upload as the task's on-chain record has it), solve each task
      │                 on a worker thread, keep the result's opening (salt, hashes, sketch) on
      │                 disk, upload the PNG with its opening to the coordinator it came from,
      │                 queue the blind commitment for the chain
      ├─ committer      one Tasks.submit_results per block with everything uploaded since
      ├─ check watcher  each block: reveal our checked results, appeal a Guilty round 1, re-run
      │                 the tasks we are drawn to check (miner/checker.py)
      ├─ refresher      re-read the registry: coordinators (when discovering) and our own status
      └─ status server  optional GET /health

Stopping (`request_stop()`, wired to SIGTERM/SIGINT by the CLI, or the injected `stop` event):
no new poll starts; a poll in flight is answered (at most poll_wait_s later: abandoning it could
leave tasks handed to a closed connection) and what it brings is released; the task being solved
is finished and uploaded when that takes less than `drain_timeout_s`, else released; tasks not
started are released; the committer then commits what was uploaded (up to `commit_drain_s`; the
rest stays in the journal for the next start).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from substrateinterface import Keypair

from chain.taskproto import (
    SALT_LENGTH,
    SpecError,
    device_hash,
    result_hash,
    spec_hash,
    validate_spec,
)
from chainclient import ClientError
from chainclient.accounts import ss58
from chainclient.amounts import format_cai
from chainclient.connection import ChainUnavailable
from chainclient.registry import Registration
from chainclient.sketch import image_sketch
from miner import MinerError
from miner.chain import ChainAccess, PendingResult, ResultCommitter
from miner.checker import CheckWatcher
from miner.client import (
    Assignment,
    Backoff,
    CoordinatorError,
    CoordinatorPool,
    Endpoint,
    NoCoordinator,
    TaskRefused,
)
from miner.records import MINER, Opening, Record, RecordStore
from miner.solver import Solver

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_REMEMBERED = 4096  # uploaded task ids kept to ignore a re-delivery


@dataclasses.dataclass(frozen=True, slots=True)
class MinerConfig:
    coordinator_urls: tuple[str, ...] = ()  # empty: discover Active coordinators on chain
    max_tasks: int = 1
    min_price: int = 0  # planck: tasks paying less are handed back unsolved (0: take all)
    poll_wait_s: float = 10.0
    request_timeout_s: float = 10.0
    upload_attempts: int = 10  # with the default backoff: about 30 s of retries
    drain_timeout_s: float = 60.0  # how long a stop waits for the task being solved
    commit_drain_s: float = 15.0  # how long a stop waits for the last commits
    refresh_interval_s: float = 30.0
    commit_poll_s: float = 0.25
    check_poll_s: float = 0.25  # how often the check watcher looks for a new block
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    data_dir: Path | None = None
    status_host: str = "127.0.0.1"
    status_port: int | None = None  # None: no status server; 0: any free port


@dataclasses.dataclass
class Stats:
    polled: int = 0
    received: int = 0
    solved: int = 0
    uploaded: int = 0
    refused: int = 0
    failed: int = 0
    released: int = 0
    refused_price: int = 0  # handed back: paying under --min-price


def endpoints_from_registry(records: Sequence[Registration]) -> list[Endpoint]:
    """Active coordinators with an http(s) URL, weighted by stake (own + votes)."""
    return [
        Endpoint(r.url, max(r.weight, 1), r.name or ss58(r.staker))
        for r in records
        if r.is_active and r.url.startswith(("http://", "https://"))
    ]


def run_in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run blocking `fn(*args)` on a fresh daemon thread (off the event loop), like
    `asyncio.to_thread`, except that a solve still running when the service gives up on it
    (drain timeout) does not hold the process at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            value: Any = fn(*args)
            ok = True
        except BaseException as exc:
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=target, name="miner-solve", daemon=True).start()
    return future


class MinerService:
    def __init__(
        self,
        config: MinerConfig,
        keypair: Keypair,
        solver: Solver,
        chain: ChainAccess,
        *,
        pool: CoordinatorPool | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._cfg = config
        self._keypair = keypair
        self._solver = solver
        self._chain = chain
        self._pool = pool or CoordinatorPool(
            keypair, request_timeout_s=config.request_timeout_s, backoff=config.backoff
        )
        self._stopping = stop or asyncio.Event()
        self._work_done = asyncio.Event()
        self._fingerprint = solver.fingerprint()
        self._device_hash = device_hash(self._fingerprint)
        self.stats = Stats()
        self.registration: Registration | None = None
        self.committer: ResultCommitter | None = None
        self.watcher: CheckWatcher | None = None
        self._solve_lock = asyncio.Lock()  # one solve at a time: tasks and checks share the device
        self.status_port: int | None = None
        self._ready = False
        self._in_hand: Assignment | None = None
        self._done: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stopping: finishing or releasing the task in hand")
        self._stopping.set()

    @property
    def is_ready(self) -> bool:
        return self._ready and not self._stopping.is_set()

    # ---- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Start, serve until stopped, then drain. Raises MinerError subclasses for expected
        failures at start: MinerError (NotRegistered, a suspended registration) and the chain
        client's ChainUnavailable."""
        runner: web.AppRunner | None = None
        try:
            reg = await self._check_registration()
            journal = None
            records_dir = None
            if self._cfg.data_dir is not None:
                self._cfg.data_dir.mkdir(parents=True, exist_ok=True)
                journal = self._cfg.data_dir / "pending-results.json"
                records_dir = self._cfg.data_dir / "results"
            self.watcher = self._make_watcher(reg.staker, RecordStore(records_dir))
            self.committer = ResultCommitter(
                self._chain,
                reg.staker,
                journal=journal,
                poll_interval_s=self._cfg.commit_poll_s,
                min_price=self._cfg.min_price,
            )
            if self._cfg.coordinator_urls:
                self._pool.set_endpoints([Endpoint(u) for u in self._cfg.coordinator_urls])
            else:
                await self._refresh_coordinators()
            if self._cfg.status_port is not None:
                runner = await self._start_status_server()
            self._ready = True
            log.info(
                "miner ready: operator %s, staker %s (%s), %d coordinator(s), device %s, "
                "min price %s CAI%s",
                self._keypair.ss58_address,
                ss58(reg.staker),
                reg.status,
                len(self._pool.endpoints),
                self._device_hash.hex()[:16],
                format_cai(self._cfg.min_price),
                f", status on http://{self._cfg.status_host}:{self.status_port}/health"
                if self.status_port
                else "",
            )
            async with asyncio.TaskGroup() as tg:
                work = tg.create_task(self._work_loop(), name="miner.work")
                tg.create_task(
                    self.committer.run(self._work_done, drain_s=self._cfg.commit_drain_s),
                    name="miner.commit",
                )
                refresher = tg.create_task(self._refresh_loop(), name="miner.refresh")
                watcher = tg.create_task(self._check_loop(), name="miner.check")
                await self._stopping.wait()
                refresher.cancel()
                watcher.cancel()
                await work  # finishes or releases the task in hand, then sets _work_done
            log.info(
                "miner stopped: %d solved, %d uploaded, %d committed, %d released",
                self.stats.solved,
                self.stats.uploaded,
                self.committer.committed,
                self.stats.released,
            )
        finally:
            self._ready = False
            if runner is not None:
                await runner.cleanup()
            await self._pool.close()

    def _make_watcher(self, staker: bytes, records: RecordStore) -> CheckWatcher:
        return CheckWatcher(self._chain, records, staker, self._device_hash, self._solve_spec)

    async def _solve_spec(self, spec: dict[str, Any]) -> bytes:
        """Solve a checked task's spec (not one handed out by a coordinator)."""
        async with self._solve_lock:
            png = await run_in_thread(self._solver.solve, dict(spec))
        if not isinstance(png, bytes | bytearray) or not png:
            raise MinerError("solver returned no image")
        return bytes(png)

    async def _check_loop(self) -> None:
        last = -1
        assert self.watcher is not None
        while True:
            try:
                best = await self._chain.best_block()
                if best > last:
                    await self.watcher.cycle(best)
                    last = best
            except ChainUnavailable as exc:
                log.warning("check watcher: chain unavailable: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:  # a task boundary: log and go on at the next block
                log.exception("check watcher cycle failed")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self._cfg.check_poll_s)

    async def _check_registration(self) -> Registration:
        reg = await self._chain.registration()
        if reg.status == "Suspended":
            raise MinerError(
                f"miner {ss58(reg.staker)} is suspended (slashed): deregister and register again "
                "(Registry.deregister, Registry.register_miner) to come back"
            )
        if reg.status != "Active":
            log.warning(
                "miner %s is %s: its own bonded stake is under the minimum, so coordinators "
                "cannot assign it tasks; bond more (Staking.bond_extra)",
                ss58(reg.staker),
                reg.status,
            )
        self.registration = reg
        return reg

    # ---- coordinators ---------------------------------------------------------------------------

    async def _refresh_coordinators(self) -> None:
        records = await self._chain.coordinators()
        endpoints = endpoints_from_registry(records)
        if not endpoints:
            log.warning("no active coordinator with an http(s) endpoint is registered yet")
        old = {e.url for e in self._pool.endpoints}
        self._pool.set_endpoints(endpoints)
        if {e.url for e in endpoints} != old:
            log.info("coordinators: %s", ", ".join(f"{e.url} ({e.weight})" for e in endpoints))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.refresh_interval_s)
            try:
                if not self._cfg.coordinator_urls:
                    await self._refresh_coordinators()
                old = self.registration
                reg = await self._chain.registration()
                if old is not None and reg.status != old.status:
                    log.warning("registration status changed: %s -> %s", old.status, reg.status)
                self.registration = reg
            except (ClientError, MinerError) as exc:  # unreachable, deregistered meanwhile
                log.warning("registry refresh failed: %s", exc)
            except Exception:  # a task boundary: keep the last view and try again later
                log.exception("registry refresh failed")

    # ---- work -----------------------------------------------------------------------------------

    async def _work_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                tasks = await self._poll()
                for i, task in enumerate(tasks):
                    if self._stopping.is_set():
                        for rest in tasks[i:]:
                            await self._release(rest, "stopping before starting it")
                        break
                    await self._handle(task)
        finally:
            self._work_done.set()

    async def _poll(self) -> list[Assignment]:
        """One long-poll. A stop does not abandon a poll in flight: the coordinator may hand
        tasks to it until it answers (and would count them as ours until their deadline), so
        the work loop waits for the answer (at most poll_wait_s plus the request timeout) and
        releases whatever it brings."""
        started = time.monotonic()
        try:
            tasks = await self._pool.poll(
                self._cfg.max_tasks, self._cfg.poll_wait_s, self._cfg.min_price
            )
        except NoCoordinator as exc:
            log.debug("%s; next try in %.1f s", exc, max(exc.retry_in_s, 0.5))
            await _wait_or_timeout(self._stopping, max(exc.retry_in_s, 0.5))
            return []
        self.stats.polled += 1
        self.stats.received += len(tasks)
        if not tasks and time.monotonic() - started < 0.05:
            await _wait_or_timeout(self._stopping, 0.1)  # a coordinator that does not hold polls
        return tasks

    async def _handle(self, task: Assignment) -> None:
        if task.task_id in self._done:  # a restarted coordinator may hand it out again
            log.info("ignoring %s: already uploaded", task.task_hex)
            return
        self._in_hand = task
        try:
            await self._handle_inner(task)
        except Exception:  # a task boundary: this task fails, the miner goes on
            log.exception("task %s failed", task.task_hex)
            self.stats.failed += 1
            await self._release(task, "internal error")
        finally:
            self._in_hand = None

    async def _handle_inner(self, task: Assignment) -> None:
        try:
            validate_spec(task.spec)
            if spec_hash(task.spec) != task.spec_hash:
                raise SpecError("spec_hash does not match the spec")
        except SpecError as exc:
            log.error("task %s from %s: bad spec (%s)", task.task_hex, task.coordinator, exc)
            await self._release(task, "bad spec")
            return
        if self._cfg.min_price and (task.price is None or task.price < self._cfg.min_price):
            pays = "not stated" if task.price is None else f"{format_cai(task.price)} CAI"
            await self._refuse_price(task, f"its price ({pays}) is under")
            return
        with contextlib.suppress(ChainUnavailable):
            best = await self._chain.best_block()
            if best >= task.deadline_block:
                log.warning(
                    "task %s: deadline #%d already passed", task.task_hex, task.deadline_block
                )
                await self._release(task, "deadline passed")
                return
        png = await self._solve(task)
        if png is None:
            return
        self.stats.solved += 1
        if self._cfg.min_price and not await self._pays_enough_on_chain(task):
            return
        assert self.registration is not None
        assert self.watcher is not None
        opening = Opening(
            result_hash(png), self._device_hash, image_sketch(png), os.urandom(SALT_LENGTH)
        )
        commitment = opening.commitment(self.registration.staker, task.task_id)
        self.watcher.records.put(  # on disk before the commitment leaves this process
            Record(task.task_id, MINER, task.deadline_block, opening, commitment)
        )
        try:
            await self._pool.upload(
                task,
                png,
                result_hash=opening.result_hash,
                device_hash=self._device_hash,
                sketch=opening.sketch,
                salt=opening.salt,
                device_info=self._fingerprint,
                attempts=self._cfg.upload_attempts,
                stop=self._stopping,
            )
        except TaskRefused as exc:
            self.stats.refused += 1
            log.warning("result of %s refused: %s", task.task_hex, exc)
            return
        except CoordinatorError as exc:
            self.stats.failed += 1
            log.error("could not upload the result of %s: %s", task.task_hex, exc)
            return
        self.stats.uploaded += 1
        self._done[task.task_id] = None
        while len(self._done) > MAX_REMEMBERED:
            self._done.popitem(last=False)
        log.info(
            "uploaded %s to %s (%d bytes; pays %s)",
            task.task_hex,
            task.coordinator,
            len(png),
            "?" if task.price is None else f"{format_cai(task.price)} CAI",
        )
        assert self.committer is not None
        self.committer.add(
            PendingResult(task.task_id, commitment, task.spec_hash, task.deadline_block, task.price)
        )

    async def _refuse_price(self, task: Assignment, what: str) -> None:
        """Hand back a task paying under --min-price: one log line; the coordinator is told the
        least this miner takes (it sends no task paying less again)."""
        self.stats.refused_price += 1
        why = f"{what} this miner's --min-price of {format_cai(self._cfg.min_price)} CAI"
        log.warning("refusing task %s from %s: %s", task.task_hex, task.coordinator, why)
        await self._release(task, why, min_price=self._cfg.min_price, quiet=True)

    async def _pays_enough_on_chain(self, task: Assignment) -> bool:
        """Before the image leaves: when the task's on-chain record is there already (usually:
        it lands a block after dispatch), its price is the one that counts. False (and the task
        handed back) when it is under --min-price."""
        try:
            on_chain = (await self._chain.tasks([task.task_id])).get(task.task_id)
        except ChainUnavailable:
            return True  # the committer reads it again before committing
        if on_chain is None or on_chain.price >= self._cfg.min_price:
            return True
        await self._refuse_price(
            task, f"its on-chain price ({format_cai(on_chain.price)} CAI) is under"
        )
        return False

    async def _solve(self, task: Assignment) -> bytes | None:
        """The PNG, or None when the task was released (solver error, or a stop outlasting the
        drain timeout)."""
        async with self._solve_lock:
            return await self._solve_locked(task)

    async def _solve_locked(self, task: Assignment) -> bytes | None:
        solving = run_in_thread(self._solver.solve, dict(task.spec))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            waits: set[asyncio.Future[Any]] = {solving, stop}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not solving.done():
            log.info(
                "finishing task %s before stopping (up to %.0f s)",
                task.task_hex,
                self._cfg.drain_timeout_s,
            )
            await asyncio.wait({solving}, timeout=self._cfg.drain_timeout_s)
            if not solving.done():
                solving.cancel()
                await self._release(task, "stopping; the solve did not finish in time")
                return None
        try:
            png = solving.result()
        except Exception as exc:  # a solver failure is this task's, not the service's
            log.exception("solver failed on %s", task.task_hex, exc_info=exc)
            await self._release(task, f"solver failed: {exc}")
            return None
        if not isinstance(png, bytes | bytearray) or not png:
            await self._release(task, "solver returned no image")
            return None
        return bytes(png)

    async def _release(
        self, task: Assignment, why: str, *, min_price: int | None = None, quiet: bool = False
    ) -> None:
        """Hand the task back to its coordinator, saying why (`min_price`: its price is under
        what this miner takes)."""
        if not quiet:
            log.info("releasing %s (%s)", task.task_hex, why)
        if await self._pool.release(task, reason=why, min_price=min_price):
            self.stats.released += 1

    # ---- status ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        reg = self.registration
        committer = self.committer
        return {
            "status": "ready"
            if self.is_ready
            else ("stopping" if self._stopping.is_set() else "starting"),
            "operator": self._keypair.ss58_address,
            "staker": ss58(reg.staker) if reg else None,
            "registration": reg.status if reg else None,
            "device_hash": "0x" + self._device_hash.hex(),
            "device": self._fingerprint,
            "coordinators": self._pool.health(),
            "in_hand": self._in_hand.task_hex if self._in_hand else None,
            "stats": dataclasses.asdict(self.stats),
            "pending_commits": len(committer.pending) if committer else 0,
            "committed": committer.committed if committer else 0,
            "last_chain_error": committer.last_error if committer else "",
            "checks": dataclasses.asdict(self.watcher.stats) if self.watcher else {},
            "open_records": len(self.watcher.records.all()) if self.watcher else 0,
        }

    async def _start_status_server(self) -> web.AppRunner:
        async def health(_: web.Request) -> web.Response:
            return web.json_response(self.health(), status=200 if self.is_ready else 503)

        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._cfg.status_host, self._cfg.status_port or 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.status_port = sockets[0].getsockname()[1] if sockets else self._cfg.status_port
        return runner


async def _wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
