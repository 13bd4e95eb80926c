"""The chain side, through substrate-interface only.

* `ChainClient` (synchronous): one SubstrateInterface, used by one thread only.
* `HeadFollower`: a thread subscribed to new heads (`subscribe_block_headers`) that wakes the
  service; it reconnects on errors.
* `ChainService.run()`: at each new head, on the chain worker thread: registry snapshot, the
  operator's account nonce, on-chain state of the tasks the engine watches, resolution of
  extrinsics in flight; then, once per head, one `Tasks.commit_tasks` with everything new
  (chunks of MaxBatch), one `Tasks.settle_tasks`, and any `Tasks.report_invalid_result`.

Extrinsics are signed by the operator key with explicit, sequential nonces from this single
signer and submitted without blocking on inclusion; an extrinsic is known to be included once
the account nonce at a head passes its nonce, and its outcome is read from state (a committed
task's `committed_at` is its commit block; all-or-nothing batches make the first item tell for
all). A stalled extrinsic is re-submitted with the same bytes (idempotent).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from scalecodec.base import ScaleBytes
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from substrateinterface.storage import StorageKey
from substrateinterface.utils.ss58 import ss58_decode, ss58_encode

from coordinator import CoordinatorError
from coordinator.auth import MinerRecord
from coordinator.engine import Engine
from coordinator.model import ChainTask, CommitItem

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 256  # Tasks.MaxBatch
QUERY_CHUNK = 512
STALL_BLOCKS = 10  # re-submit an extrinsic not included after this many heads
SS58_PREFIX = 42


class ChainError(CoordinatorError):
    """The chain cannot be reached or answered an error."""


class SubmitError(ChainError):
    """The node refused an extrinsic (pool validation)."""


def account_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return bytes.fromhex(ss58_decode(value))


def h256(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value[2:] if value.startswith("0x") else value)


def ss58(public: bytes) -> str:
    return str(ss58_encode(public, SS58_PREFIX))


def _text(v: Any) -> str:
    if isinstance(v, str):
        if v.startswith("0x"):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                return bytes.fromhex(v[2:]).decode()
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode(errors="replace")
    return str(v)


@dataclasses.dataclass(frozen=True, slots=True)
class CoordinatorInfo:
    staker: bytes
    status: str  # Active | Inactive | Suspended | Unregistered


@dataclasses.dataclass(slots=True)
class Inflight:
    kind: str  # commit | settle | report
    nonce: int
    data: str  # the signed extrinsic, hex
    submitted_head: int
    commits: list[CommitItem] = dataclasses.field(default_factory=list)
    settles: list[tuple[bytes, bool]] = dataclasses.field(default_factory=list)
    report: tuple[bytes, list[bytes]] | None = None


class ChainClient:
    """Synchronous chain access for one thread."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._si: SubstrateInterface | None = None
        self._task_prefix: bytes | None = None
        self._task_template: Any = None
        self._batch_templates: dict[str, Any] = {}

    @property
    def si(self) -> SubstrateInterface:
        if self._si is None:
            try:
                self._si = SubstrateInterface(
                    url=self.url,
                    ss58_format=SS58_PREFIX,
                    ws_options={"timeout": self.timeout_s, "skip_utf8_validation": True},
                    auto_reconnect=False,
                )
                self._si.init_runtime()
            except Exception as exc:
                self._si = None
                raise ChainError(f"cannot reach chain at {self.url}: {exc}") from exc
        return self._si

    def reset(self) -> None:
        if self._si is not None:
            with contextlib.suppress(Exception):
                self._si.close()
        self._si = None
        self._task_prefix = None

    def head(self) -> tuple[int, str]:
        header = self.si.get_block_header()["header"]
        number = int(header["number"])
        block_hash = header.get("hash") or self.si.get_block_hash(number)
        return number, str(block_hash)

    def block_hash(self, number: int) -> str:
        return str(self.si.get_block_hash(number))

    def miners(self, block_hash: str | None) -> list[MinerRecord]:
        out = []
        for key, value in self.si.query_map("Registry", "Miners", block_hash=block_hash):
            v = value.value
            info = v.get("info", {})
            out.append(
                MinerRecord(
                    staker=account_bytes(key.value),
                    operator=account_bytes(v["operator"]),
                    status=str(v["status"]),
                    own_stake=int(v["own_stake"]),
                    votes=int(v["votes"]),
                    name=_text(info.get("name", "")),
                    gpu_model=_text(info.get("gpu_model", "")),
                )
            )
        return out

    def coordinator_of(
        self, operator: bytes, block_hash: str | None = None
    ) -> CoordinatorInfo | None:
        """The coordinator registration our operator serves, None if it serves none."""
        rec = self.si.query("Registry", "OperatorOf", [ss58(operator)], block_hash=block_hash).value
        if rec is None or rec.get("role") != "Coordinator":
            return None
        staker = account_bytes(rec["staker"])
        reg = self.si.query("Registry", "Coordinators", [ss58(staker)], block_hash=block_hash).value
        status = "Unregistered" if reg is None else str(reg["status"])
        return CoordinatorInfo(staker, status)

    def free_balance(self, who: bytes) -> int:
        acct = self.si.query("System", "Account", [ss58(who)]).value
        return int(acct["data"]["free"]) if acct else 0

    def account_nonce(self, who: bytes, block_hash: str | None) -> int:
        acct = self.si.query("System", "Account", [ss58(who)], block_hash=block_hash).value
        return int(acct["nonce"]) if acct else 0

    def next_index(self, who: bytes) -> int:
        return int(self.si.rpc_request("system_accountNextIndex", [ss58(who)])["result"])

    def _task_key(self, task_id: bytes) -> StorageKey:
        if self._task_prefix is None:
            template = self.si.create_storage_key("Tasks", "Tasks", ["0x" + "00" * 32])
            self._task_prefix = bytes(template.data[:-32])
            self._task_template = template
        key = StorageKey.create_from_data(
            self._task_prefix + task_id,
            runtime_config=self.si.runtime_config,
            metadata=self.si.metadata,
            value_scale_type=self._task_template.value_scale_type,
        )
        key.metadata_storage_function = self._task_template.metadata_storage_function
        return key

    def tasks_decoded_by_library(
        self, task_ids: list[bytes], block_hash: str | None
    ) -> dict[bytes, ChainTask | None]:
        """Tasks.Tasks through substrate-interface's own decoding (the reference for tests)."""
        out: dict[bytes, ChainTask | None] = {}
        keys = [self._task_key(t) for t in task_ids]
        for key, obj in self.si.query_multi(keys, block_hash=block_hash):
            out[bytes(key.data[-32:])] = _chain_task(obj.value if obj is not None else None)
        return out

    def tasks(self, task_ids: list[bytes], block_hash: str | None) -> dict[bytes, ChainTask | None]:
        """Tasks.Tasks for each id at `block_hash`: one state_queryStorageAt per chunk, the keys
        built as prefix ++ id (Identity hasher), the values decoded by `decode_task` (scalecodec
        is about 100x slower here and this runs every block; tests compare the two)."""
        if self._task_prefix is None:
            self._task_key(bytes(32))
        assert self._task_prefix is not None
        prefix_hex = "0x" + self._task_prefix.hex()
        out: dict[bytes, ChainTask | None] = {t: None for t in task_ids}
        for i in range(0, len(task_ids), QUERY_CHUNK):
            chunk = task_ids[i : i + QUERY_CHUNK]
            params: list[Any] = [[prefix_hex + t.hex() for t in chunk]]
            if block_hash is not None:
                params.append(block_hash)
            resp = self.si.rpc_request("state_queryStorageAt", params)
            if "error" in resp:
                raise ChainError(f"state_queryStorageAt: {resp['error']}")
            for change_set in resp["result"]:
                for key, value in change_set["changes"]:
                    if value is not None:
                        out[bytes.fromhex(key[-64:])] = decode_task(bytes.fromhex(value[2:]))
        return out

    def sign(
        self, keypair: Keypair, module: str, fn: str, params: dict[str, Any], nonce: int
    ) -> str:
        call = self.si.compose_call(module, fn, params)
        xt = self.si.create_signed_extrinsic(call=call, keypair=keypair, nonce=nonce)
        return str(xt.data)

    def sign_batch(self, keypair: Keypair, fn: str, encoded_batch: bytes, nonce: int) -> str:
        """Sign `Tasks.<fn>(batch)` whose `batch` argument is already SCALE-encoded (see
        `encode_commit_batch` and friends): substrate-interface composes and signs the call as
        usual but takes the argument's bytes as they are, instead of re-encoding hundreds of
        structs through scalecodec (about 1 ms per item; this runs every block)."""
        template = self._batch_templates.get(fn)
        if template is None:
            call = self.si.compose_call("Tasks", fn, {"batch": [BATCH_TEMPLATE_ITEMS[fn]]})
            template = self._batch_templates[fn] = call.value_object["call_args"]["batch"]
        arg = template.__class__(
            data=ScaleBytes(encoded_batch), runtime_config=self.si.runtime_config
        )
        arg.value_serialized = arg.value_object = ["<pre-encoded>"]  # truthy: taken as encoded
        call = self.si.compose_call("Tasks", fn, {"batch": arg})
        if bytes(call.data.data)[2:] != encoded_batch:
            raise ChainError(f"pre-encoded Tasks.{fn} batch was not taken as is")
        xt = self.si.create_signed_extrinsic(call=call, keypair=keypair, nonce=nonce)
        return str(xt.data)

    def submit(self, data: str) -> None:
        """author_submitExtrinsic; SubmitError when the pool refuses it (1013 'already imported'
        counts as accepted)."""
        try:
            resp = self.si.rpc_request("author_submitExtrinsic", [data])
        except SubstrateRequestException as exc:
            raise SubmitError(str(exc)) from exc
        err = resp.get("error")
        if err is not None:
            if err.get("code") == 1013:
                return
            raise SubmitError(f"{err.get('code')} {err.get('message')}: {err.get('data')}")

    def events(self, block_hash: str) -> list[tuple[str, str, Any]]:
        out = []
        for e in self.si.get_events(block_hash):
            v = e.value
            out.append((str(v["module_id"]), str(v["event_id"]), v["attributes"]))
        return out


TASK_STATUSES = ("Committed", "Submitted", "Accepted", "Rejected", "Missed")
_ZERO = "0x" + "00" * 32
BATCH_TEMPLATE_ITEMS: dict[str, dict[str, Any]] = {
    "commit_tasks": {
        "task_id": _ZERO,
        "spec_hash": _ZERO,
        "miner": _ZERO,
        "deadline": 1,
        "audit_of": None,
    },
    "settle_tasks": {"task_id": _ZERO, "accept": True},
    "submit_results": {"task_id": _ZERO, "result_hash": _ZERO, "device_hash": _ZERO},
}


def compact_len(n: int) -> bytes:
    """SCALE Compact<u32> of a length (batches are at most 256 long)."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    return ((n << 2) | 2).to_bytes(4, "little")


def encode_commit_batch(items: Iterable[CommitItem]) -> bytes:
    """Vec<TaskCommit{task_id: H256, spec_hash: H256, miner: AccountId, deadline: u32,
    audit_of: Option<H256>}>."""
    rows = [
        i.task_id
        + i.spec_hash
        + i.miner
        + i.deadline.to_bytes(4, "little")
        + (b"\x00" if i.audit_of is None else b"\x01" + i.audit_of)
        for i in items
    ]
    return compact_len(len(rows)) + b"".join(rows)


def encode_settle_batch(items: Iterable[tuple[bytes, bool]]) -> bytes:
    """Vec<Settlement{task_id: H256, accept: bool}>."""
    rows = [t + (b"\x01" if accept else b"\x00") for t, accept in items]
    return compact_len(len(rows)) + b"".join(rows)


def encode_results_batch(items: Iterable[tuple[bytes, bytes, bytes]]) -> bytes:
    """Vec<ResultCommit{task_id, result_hash, device_hash: H256}> (what miners submit)."""
    rows = [t + rh + dh for t, rh, dh in items]
    return compact_len(len(rows)) + b"".join(rows)


def decode_task(raw: bytes) -> ChainTask:
    """SCALE-decode pallet_cuckoo_tasks::Task: AccountId coordinator, AccountId miner, H256
    spec_hash, u32 deadline, Option<H256> audit_of, u32 committed_at, TaskStatus status,
    Option<H256> result_hash, Option<H256> device_hash, Option<u32> submitted_at,
    Option<u32> settled_at."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise ValueError("truncated Task")
        out = raw[pos : pos + n]
        pos += n
        return out

    def u32() -> int:
        return int.from_bytes(take(4), "little")

    def option(read: Any) -> Any:
        flag = take(1)[0]
        if flag > 1:
            raise ValueError("bad Option flag")
        return read() if flag else None

    coordinator, miner, spec_hash = take(32), take(32), take(32)
    deadline = u32()
    audit_of = option(lambda: take(32))
    committed_at = u32()
    status_index = take(1)[0]
    if status_index >= len(TASK_STATUSES):
        raise ValueError("bad TaskStatus")
    result = option(lambda: take(32))
    device = option(lambda: take(32))
    submitted_at = option(u32)
    settled_at = option(u32)
    if pos != len(raw):
        raise ValueError("trailing bytes after Task")
    return ChainTask(
        coordinator,
        miner,
        spec_hash,
        deadline,
        audit_of,
        committed_at,
        TASK_STATUSES[status_index],
        result,
        device,
        submitted_at,
        settled_at,
    )


def _chain_task(v: dict[str, Any] | None) -> ChainTask | None:
    if v is None:
        return None
    return ChainTask(
        coordinator=account_bytes(v["coordinator"]),
        miner=account_bytes(v["miner"]),
        spec_hash=h256(v["spec_hash"]) or b"",
        deadline=int(v["deadline"]),
        audit_of=h256(v["audit_of"]),
        committed_at=int(v["committed_at"]),
        status=str(v["status"]),
        result_hash=h256(v["result_hash"]),
        device_hash=h256(v["device_hash"]),
        submitted_at=None if v["submitted_at"] is None else int(v["submitted_at"]),
        settled_at=None if v["settled_at"] is None else int(v["settled_at"]),
    )


class HeadFollower:
    """A thread that follows new heads and calls `on_head(number)` on the event loop."""

    def __init__(
        self, url: str, loop: asyncio.AbstractEventLoop, on_head: Callable[[int], None]
    ) -> None:
        self._url = url
        self._loop = loop
        self._on_head = on_head
        self._stop = threading.Event()
        self._client: ChainClient | None = None
        self._thread = threading.Thread(target=self._run, name="coordinator-heads", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            client.reset()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            client = self._client = ChainClient(self._url, timeout_s=15.0)
            try:

                def handler(obj: Any, update_nr: int, sub_id: str) -> Any:
                    number = int(obj["header"]["number"])
                    with contextlib.suppress(RuntimeError):  # the loop closed
                        self._loop.call_soon_threadsafe(self._on_head, number)
                    return True if self._stop.is_set() else None

                client.si.subscribe_block_headers(handler)
                backoff = 0.5
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("head subscription lost (%s); reconnecting", exc)
            finally:
                client.reset()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)


@dataclasses.dataclass(slots=True)
class ChainStatus:
    head: int | None = None
    head_at: float | None = None  # monotonic time of the last successful cycle
    registered: bool = False
    coordinator_status: str = "Unknown"
    last_error: str | None = None
    commits_submitted: int = 0
    settles_submitted: int = 0
    reports_submitted: int = 0
    extrinsics_failed: int = 0
    cycle_s: float = 0.0


class ChainService:
    """Runs the per-head cycle against the chain for the engine."""

    def __init__(
        self,
        url: str,
        operator: Keypair,
        engine: Engine,
        *,
        rpc_timeout_s: float = 20.0,
        registry_every_s: float = 2.0,
        coordinator_every_s: float = 5.0,
    ) -> None:
        self.url = url
        self.operator = operator
        self.operator_id = bytes(operator.public_key)
        self.engine = engine
        self.rpc_timeout_s = rpc_timeout_s
        self.registry_every_s = registry_every_s
        self.coordinator_every_s = coordinator_every_s
        self.status = ChainStatus()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="coordinator-chain"
        )
        self._client = ChainClient(url, timeout_s=rpc_timeout_s)
        self._head_event = asyncio.Event()
        self._latest_head = -1
        self._inflight: list[Inflight] = []
        self._next_nonce: int | None = None
        self._last_registry = 0.0
        self._last_coordinator = 0.0
        self._registry_loaded = False

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn, *args)
        try:
            async with asyncio.timeout(self.rpc_timeout_s):
                return await fut
        except TimeoutError:
            self._executor.submit(self._client.reset)
            raise ChainError(f"chain call timed out after {self.rpc_timeout_s} s") from None

    def _on_head(self, number: int) -> None:
        if number > self._latest_head:
            self._latest_head = number
            self._head_event.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        follower = HeadFollower(self.url, loop, self._on_head)
        follower.start()
        try:
            async with asyncio.TaskGroup() as tg:
                work = tg.create_task(self._loop(), name="chain.cycle")
                await stop.wait()
                work.cancel()
        finally:
            follower.stop()
            self._executor.submit(self._client.reset)
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self) -> None:
        backoff = 0.5
        processed = -1
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._head_event.wait()
            self._head_event.clear()
            try:
                if self._latest_head <= processed:
                    number, _ = await self._call(self._client.head)  # the follower may be down
                    self._latest_head = max(self._latest_head, number)
                    if number <= processed:
                        continue
                started = time.monotonic()
                processed = self._latest_head
                await self.cycle(processed)
                self.status.cycle_s = time.monotonic() - started
                self.status.last_error = None
                backoff = 0.5
            except (ChainError, SubstrateRequestException, OSError, ValueError, KeyError) as exc:
                self.status.last_error = str(exc)
                log.warning("chain cycle failed: %s", exc)
                self._executor.submit(self._client.reset)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                self.status.last_error = repr(exc)
                log.exception("chain cycle failed")
                self._executor.submit(self._client.reset)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def cycle(self, number: int) -> None:
        """One head: read, reconcile, then submit this block's batches."""
        c = self._client
        block_hash = await self._call(c.block_hash, number)
        now = time.monotonic()
        if now - self._last_coordinator >= self.coordinator_every_s or not self.status.registered:
            info = await self._call(c.coordinator_of, self.operator_id, block_hash)
            self._last_coordinator = now
            self.status.registered = info is not None and info.status == "Active"
            self.status.coordinator_status = "Unregistered" if info is None else info.status
        if now - self._last_registry >= self.registry_every_s or not self._registry_loaded:
            miners = await self._call(c.miners, block_hash)
            self._last_registry = now
            self.engine.set_registry(miners)
            if not self._registry_loaded:
                self._registry_loaded = True
                self.engine.restore_miner_queues()
        chain_nonce = await self._call(c.account_nonce, self.operator_id, block_hash)
        await self._resolve_inflight(number, block_hash, chain_nonce)
        watch = self.engine.watch_ids()
        if watch:
            states = await self._call(c.tasks, watch, block_hash)
            for task_id, ct in states.items():
                self.engine.on_chain_task(task_id, ct)
        self.engine.set_head(number)
        self.engine.expire(number)
        self.status.head = number
        self.status.head_at = time.monotonic()
        if self.status.registered:
            await self._submit_batches(number, chain_nonce)
        self.engine.dispatch_waiting()
        self.engine.sync()

    async def _resolve_inflight(self, number: int, block_hash: str, chain_nonce: int) -> None:
        c = self._client
        pending: list[Inflight] = []
        for xt in self._inflight:
            if xt.nonce >= chain_nonce:
                if number - xt.submitted_head > STALL_BLOCKS:
                    log.warning("extrinsic nonce %d not included; re-submitting", xt.nonce)
                    try:
                        await self._call(c.submit, xt.data)
                    except SubmitError as exc:
                        log.warning("re-submit failed: %s", exc)
                    xt.submitted_head = number
                pending.append(xt)
                continue
            if xt.kind == "commit":
                first = xt.commits[0]
                states = await self._call(c.tasks, [first.task_id], block_hash)
                ct = states[first.task_id]
                if (
                    ct is not None
                    and ct.coordinator == self.engine.cfg.coordinator
                    and ct.spec_hash == first.spec_hash
                ):
                    self.engine.commits_confirmed(xt.commits, ct.committed_at)
                else:
                    self.status.extrinsics_failed += 1
                    ids = [i.task_id for i in xt.commits]
                    found = await self._call(c.tasks, ids, block_hash)
                    for task_id, task in found.items():
                        if task is not None:
                            self.engine.on_chain_task(task_id, task)
                    missing = [t for t in ids if found.get(t) is None]
                    log.warning(
                        "commit batch (nonce %d) failed; %d items retried", xt.nonce, len(missing)
                    )
                    self.engine.commits_failed(missing)
            elif xt.kind == "settle":
                ids = [t for t, _ in xt.settles]
                found = await self._call(c.tasks, ids, block_hash)
                open_ids = []
                for task_id, task in found.items():
                    self.engine.on_chain_task(task_id, task)
                    if task is not None and task.status == "Submitted":
                        open_ids.append(task_id)
                if open_ids:
                    self.status.extrinsics_failed += 1
                    log.warning(
                        "settle batch (nonce %d) failed; %d retried", xt.nonce, len(open_ids)
                    )
                    self.engine.settlements_unresolved(open_ids)
            elif xt.kind == "report" and xt.report is not None:
                ok = await self._call(self._report_included, xt, number)
                if not ok:
                    self.status.extrinsics_failed += 1
                self.engine.report_done(xt.report[0], ok=ok)
        self._inflight = pending
        if self._next_nonce is None or (not pending and self._next_nonce != chain_nonce):
            self._next_nonce = max(chain_nonce, await self._call(c.next_index, self.operator_id))

    def _report_included(self, xt: Inflight, head: int) -> bool:
        """Whether Tasks.InvalidResultReported for the report's task appears in the blocks since
        it was submitted (reports are rare; this reads those blocks' events)."""
        assert xt.report is not None
        target = "0x" + xt.report[0].hex()
        for n in range(xt.submitted_head + 1, head + 1):
            for module, event, attrs in self._client.events(self._client.block_hash(n)):
                if module == "Tasks" and event == "InvalidResultReported":
                    tid = attrs.get("task_id") if isinstance(attrs, dict) else attrs[0]
                    if str(tid).lower() == target:
                        return True
        return False

    async def _submit_batches(self, number: int, chain_nonce: int) -> None:
        c = self._client
        commits = self.engine.take_commits(number, MAX_BATCH * 4)
        settles = self.engine.take_settlements(number, MAX_BATCH * 2)
        reports = self.engine.take_reports()
        work: list[Inflight] = []
        for i in range(0, len(commits), MAX_BATCH):
            work.append(Inflight("commit", 0, "", number, commits=commits[i : i + MAX_BATCH]))
        for i in range(0, len(settles), MAX_BATCH):
            work.append(Inflight("settle", 0, "", number, settles=settles[i : i + MAX_BATCH]))
        for r in reports:
            work.append(Inflight("report", 0, "", number, report=r))
        failed_from: int | None = None
        for idx, xt in enumerate(work):
            assert self._next_nonce is not None
            xt.nonce = self._next_nonce
            try:
                xt.data = await self._call(self._sign, xt)
                await self._call(c.submit, xt.data)
            except SubmitError as exc:
                self.status.extrinsics_failed += 1
                log.warning("%s extrinsic refused by the node: %s", xt.kind, exc)
                failed_from = idx
                break
            except BaseException:
                failed_from = idx
                self._give_back(work[idx:])
                raise
            self._next_nonce += 1
            self._inflight.append(xt)
            if xt.kind == "commit":
                self.status.commits_submitted += len(xt.commits)
            elif xt.kind == "settle":
                self.status.settles_submitted += len(xt.settles)
            else:
                self.status.reports_submitted += 1
        if failed_from is not None:
            self._give_back(work[failed_from:])
            self._next_nonce = None  # re-read next cycle

    def _give_back(self, work: Iterable[Inflight]) -> None:
        for xt in work:
            if xt.kind == "commit":
                self.engine.commits_failed([i.task_id for i in xt.commits])
            elif xt.kind == "settle":
                self.engine.settlements_unresolved([t for t, _ in xt.settles])
            elif xt.report is not None:
                self.engine.report_done(xt.report[0], ok=False)

    def _sign(self, xt: Inflight) -> str:
        c = self._client
        if xt.kind == "commit":
            return c.sign_batch(
                self.operator, "commit_tasks", encode_commit_batch(xt.commits), xt.nonce
            )
        if xt.kind == "settle":
            return c.sign_batch(
                self.operator, "settle_tasks", encode_settle_batch(xt.settles), xt.nonce
            )
        assert xt.report is not None
        task_id, witnesses = xt.report
        return c.sign(
            self.operator,
            "Tasks",
            "report_invalid_result",
            {"task_id": "0x" + task_id.hex(), "witnesses": ["0x" + w.hex() for w in witnesses]},
            xt.nonce,
        )
