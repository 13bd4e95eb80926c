"""The miner's chain access, through substrate-interface only (like any third-party client).

`ChainGateway` reads the registry (this miner's registration by operator, the coordinators with
their endpoints and stake) and the tasks, and submits `Tasks.submit_results` signed by the operator
key. substrate-interface is synchronous and not thread-safe, so every call runs on one worker
thread, under a deadline, with a socket timeout underneath; a broken connection is dropped and
opened again on the next call.

`ResultCommitter` commits uploaded results: one `submit_results` per block with everything
uploaded since. Before each batch it reads every pending task on chain (the batch is all or
nothing, so one bad item must not sink the rest): a task not committed yet stays for the next
block (the coordinator commits in batches too), a task past its deadline, final, assigned to
another miner or committed with another spec hash is dropped. Pending items are journalled in the
data directory, so a restart does not lose them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from scalecodec.utils.ss58 import ss58_decode
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketException

from miner import MinerError

log = logging.getLogger(__name__)

MAX_BATCH = 256  # Tasks.MaxBatch
T = TypeVar("T")


class ChainUnavailable(MinerError):
    """The node could not be reached or did not answer in time."""


class NotRegistered(MinerError):
    """The operator key does not serve a miner registration."""


@dataclasses.dataclass(frozen=True, slots=True)
class MinerRegistration:
    staker: str  # SS58
    staker_key: bytes
    operator: str
    name: str
    status: str  # Active | Inactive | Suspended
    own_stake: int
    votes: int


@dataclasses.dataclass(frozen=True, slots=True)
class CoordinatorRecord:
    staker: str
    operator: str
    name: str
    url: str
    status: str
    weight: int  # own stake + votes


@dataclasses.dataclass(frozen=True, slots=True)
class TaskState:
    miner_key: bytes
    spec_hash: bytes
    deadline: int
    status: str  # Committed | Submitted | Accepted | Rejected | Missed
    result_hash: bytes | None


@dataclasses.dataclass(frozen=True, slots=True)
class PendingResult:
    task_id: bytes
    result_hash: bytes
    device_hash: bytes
    spec_hash: bytes
    deadline: int

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": "0x" + self.task_id.hex(),
            "result_hash": "0x" + self.result_hash.hex(),
            "device_hash": "0x" + self.device_hash.hex(),
            "spec_hash": "0x" + self.spec_hash.hex(),
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PendingResult:
        return cls(
            task_id=_h256(obj["task_id"]),
            result_hash=_h256(obj["result_hash"]),
            device_hash=_h256(obj["device_hash"]),
            spec_hash=_h256(obj["spec_hash"]),
            deadline=int(obj["deadline"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitOutcome:
    ok: bool
    error: str  # the dispatch error's name ("UnknownTask"), or the RPC error; "" when ok
    block: int | None


def _h256(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a hash: {value!r}")
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return raw


def _text(value: object) -> str:
    """A Vec<u8> field as text (scalecodec answers UTF-8 text, else 0x-hex)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    text = str(value or "")
    if text.startswith("0x"):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text[2:]).decode(errors="replace")
    return text


def account_key(address: str) -> bytes:
    """The 32-byte public key of an SS58 address (or 0x-hex key)."""
    if address.startswith("0x"):
        return bytes.fromhex(address[2:])
    return bytes.fromhex(ss58_decode(address))


class ChainAccess(Protocol):
    """What the service and the committer need from the chain (a fake in unit tests)."""

    async def best_block(self) -> int: ...

    async def registration(self) -> MinerRegistration: ...

    async def coordinators(self) -> list[CoordinatorRecord]: ...

    async def tasks(self, task_ids: Sequence[bytes]) -> dict[bytes, TaskState | None]: ...

    async def submit_results(self, items: Sequence[PendingResult]) -> SubmitOutcome: ...


class ChainGateway:
    """substrate-interface on one worker thread; every call has a deadline."""

    def __init__(
        self,
        url: str,
        keypair: Keypair,
        *,
        timeout_s: float = 15.0,
        submit_timeout_s: float = 60.0,
    ) -> None:
        self.url = url
        self.keypair = keypair
        self._timeout_s = timeout_s
        self._submit_timeout_s = submit_timeout_s
        self._si: SubstrateInterface | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="miner-chain"
        )

    # ---- plumbing -------------------------------------------------------------------------------

    def _substrate(self) -> SubstrateInterface:
        if self._si is None:
            self._si = SubstrateInterface(
                url=self.url, ws_options={"timeout": self._timeout_s}, auto_reconnect=True
            )
        return self._si

    def _drop(self) -> None:
        si, self._si = self._si, None
        if si is not None:
            with contextlib.suppress(Exception):
                si.close()

    def _guarded(self, fn: Callable[[SubstrateInterface], T]) -> T:
        """Run on the worker thread: connect when needed; a transport failure drops the link."""
        try:
            return fn(self._substrate())
        except SubstrateRequestException:
            raise
        except (OSError, WebSocketException) as exc:  # the link is broken or timed out
            self._drop()
            raise ChainUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    async def _call(
        self, fn: Callable[[SubstrateInterface], T], timeout_s: float | None = None
    ) -> T:
        loop = asyncio.get_running_loop()
        limit = self._timeout_s if timeout_s is None else timeout_s
        future = loop.run_in_executor(self._executor, self._guarded, fn)
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError as exc:
            self._executor.submit(self._drop)  # after the stuck call gives up (socket timeout)
            raise ChainUnavailable(f"{self.url}: no answer within {limit:.0f} s") from exc

    async def connect(self) -> None:
        """Open the connection now (and fail fast with ChainUnavailable)."""

        def probe(si: SubstrateInterface) -> None:
            si.get_block_header()

        await self._call(probe)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(loop.run_in_executor(self._executor, self._drop), 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- reads ----------------------------------------------------------------------------------

    async def best_block(self) -> int:
        def read(si: SubstrateInterface) -> int:
            header = si.get_block_header()
            return int(header["header"]["number"])

        return await self._call(read)

    async def free_balance(self) -> tuple[int, int]:
        """(free balance of the operator, existential deposit)."""

        def read(si: SubstrateInterface) -> tuple[int, int]:
            account = si.query("System", "Account", [self.keypair.ss58_address]).value
            ed = si.get_constant("Balances", "ExistentialDeposit")
            return int(account["data"]["free"]), int(ed.value if ed is not None else 0)

        return await self._call(read)

    async def registration(self) -> MinerRegistration:
        operator = self.keypair.ss58_address

        def read(si: SubstrateInterface) -> tuple[Any, Any]:
            record = si.query("Registry", "OperatorOf", [operator]).value
            if not record or record.get("role") != "Miner":
                return record, None
            return record, si.query("Registry", "Miners", [record["staker"]]).value

        record, reg = await self._call(read)
        if not record:
            raise NotRegistered(
                f"operator {operator} is not registered. From your staker account: bond at least "
                "the minimum miner stake (Staking.bond, 20,000 CAI on dev chains), then "
                f"Registry.register_miner(operator={operator}, info={{name, description, url, "
                "gpu_model}); fund the operator with a little CAI for transaction fees"
            )
        if record.get("role") != "Miner" or not reg:
            raise NotRegistered(
                f"operator {operator} serves a {record.get('role')} registration, not a miner"
            )
        staker = str(record["staker"])
        return MinerRegistration(
            staker=staker,
            staker_key=account_key(staker),
            operator=operator,
            name=_text(reg["info"]["name"]),
            status=str(reg["status"]),
            own_stake=int(reg["own_stake"]),
            votes=int(reg["votes"]),
        )

    async def coordinators(self) -> list[CoordinatorRecord]:
        def read(si: SubstrateInterface) -> list[tuple[Any, Any]]:
            return [
                (k.value, v.value)
                for k, v in si.query_map("Registry", "Coordinators", page_size=200)
            ]

        out = []
        for staker, reg in await self._call(read, self._timeout_s * 2):
            out.append(
                CoordinatorRecord(
                    staker=str(staker),
                    operator=str(reg["operator"]),
                    name=_text(reg["info"]["name"]),
                    url=_text(reg["info"]["url"]),
                    status=str(reg["status"]),
                    weight=int(reg["own_stake"]) + int(reg["votes"]),
                )
            )
        return out

    async def tasks(self, task_ids: Sequence[bytes]) -> dict[bytes, TaskState | None]:
        ids = list(task_ids)
        if not ids:
            return {}

        def read(si: SubstrateInterface) -> list[Any]:
            keys = [si.create_storage_key("Tasks", "Tasks", ["0x" + t.hex()]) for t in ids]
            return [value.value for _, value in si.query_multi(keys)]

        values = await self._call(read)
        out: dict[bytes, TaskState | None] = {}
        for task_id, v in zip(ids, values, strict=True):
            if not v:
                out[task_id] = None
                continue
            out[task_id] = TaskState(
                miner_key=account_key(str(v["miner"])),
                spec_hash=_h256(v["spec_hash"]),
                deadline=int(v["deadline"]),
                status=str(v["status"]),
                result_hash=_h256(v["result_hash"]) if v.get("result_hash") else None,
            )
        return out

    # ---- writes ---------------------------------------------------------------------------------

    async def submit_results(self, items: Sequence[PendingResult]) -> SubmitOutcome:
        batch = [
            {
                "task_id": "0x" + i.task_id.hex(),
                "result_hash": "0x" + i.result_hash.hex(),
                "device_hash": "0x" + i.device_hash.hex(),
            }
            for i in items
        ]

        def submit(si: SubstrateInterface) -> SubmitOutcome:
            call = si.compose_call("Tasks", "submit_results", {"batch": batch})
            xt = si.create_signed_extrinsic(call=call, keypair=self.keypair)
            try:
                receipt = si.submit_extrinsic(xt, wait_for_inclusion=True)
            except SubstrateRequestException as exc:
                return SubmitOutcome(False, _rpc_error(exc), None)
            block = int(si.get_block_number(receipt.block_hash))
            if receipt.is_success:
                return SubmitOutcome(True, "", block)
            err = receipt.error_message
            name = str(err.get("name", err)) if isinstance(err, dict) else str(err)
            return SubmitOutcome(False, name, block)

        return await self._call(submit, self._submit_timeout_s)


def _rpc_error(exc: SubstrateRequestException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict):
        msg = str(arg.get("message", ""))
        data = arg.get("data")
        return f"{msg}: {data}" if data else msg
    return str(arg)


class ResultCommitter:
    """Commits uploaded results on chain, one batch per block (see the module docstring)."""

    def __init__(
        self,
        chain: ChainAccess,
        staker_key: bytes,
        *,
        journal: Path | None = None,
        poll_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chain = chain
        self._staker_key = staker_key
        self._journal = journal
        self._poll_s = poll_interval_s
        self._clock = clock
        self._pending: dict[bytes, PendingResult] = {}
        self._wakeup = asyncio.Event()
        self.committed = 0  # results seen committed on chain
        self.dropped = 0
        self.last_error = ""
        self._load()

    # ---- queue ----------------------------------------------------------------------------------

    @property
    def pending(self) -> list[PendingResult]:
        return list(self._pending.values())

    def add(self, item: PendingResult) -> None:
        self._pending[item.task_id] = item
        self._save()
        self._wakeup.set()

    def _remove(self, task_ids: Iterable[bytes]) -> None:
        for t in task_ids:
            self._pending.pop(t, None)
        self._save()

    def _load(self) -> None:
        if self._journal is None or not self._journal.exists():
            return
        try:
            items = json.loads(self._journal.read_text())
            for obj in items:
                item = PendingResult.from_json(obj)
                self._pending[item.task_id] = item
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable journal %s: %s", self._journal, exc)
            return
        if self._pending:
            log.info("%d result(s) to commit from the journal", len(self._pending))

    def _save(self) -> None:
        if self._journal is None:
            return
        tmp = self._journal.with_suffix(".tmp")
        tmp.write_text(json.dumps([p.to_json() for p in self._pending.values()]))
        os.replace(tmp, self._journal)

    # ---- loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, drain_s: float = 15.0) -> None:
        """Commit until `stop` is set; then keep going until nothing is pending or `drain_s`
        has passed (what is left stays in the journal)."""
        last_block = -1
        drain_until: float | None = None
        while True:
            if stop.is_set():
                if drain_until is None:
                    drain_until = self._clock() + drain_s
                if not self._pending or self._clock() >= drain_until:
                    if self._pending:
                        log.warning(
                            "%d result(s) not committed yet at shutdown; kept in the journal",
                            len(self._pending),
                        )
                    return
            if self._pending:
                try:
                    best = await self._chain.best_block()
                    if best > last_block:
                        last_block = best
                        await self.commit_once(best)
                except ChainUnavailable as exc:
                    self.last_error = str(exc)
                    log.warning("chain unavailable: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                except Exception as exc:  # a task boundary: log, keep the items, go on
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("committing results failed")
                    await asyncio.sleep(1.0)
                    continue
            self._wakeup.clear()
            if stop.is_set():  # draining: done, or wait for the next block
                if self._pending:
                    await asyncio.sleep(self._poll_s)
                continue
            await _sleep_or(self._wakeup, self._poll_s if self._pending else 5.0, stop)

    async def commit_once(self, best: int) -> SubmitOutcome | None:
        """One round at best block `best`: sort the pending items by their on-chain state and
        submit the ones that can be committed now."""
        items = list(self._pending.values())
        states = await self._chain.tasks([i.task_id for i in items])
        batch: list[PendingResult] = []
        done: list[bytes] = []
        for item in items:
            state = states.get(item.task_id)
            reason = self._verdict(item, state, best)
            if reason == "ready":
                batch.append(item)
            elif reason == "wait":
                continue
            elif reason == "committed":
                done.append(item.task_id)
                self.committed += 1
            else:
                log.warning("dropping result of 0x%s: %s", item.task_id.hex(), reason)
                done.append(item.task_id)
                self.dropped += 1
        if done:
            self._remove(done)
        if not batch:
            return None
        batch = batch[:MAX_BATCH]
        outcome = await self._chain.submit_results(batch)
        if outcome.ok:
            log.info("committed %d result(s) in block #%s", len(batch), outcome.block)
            self.committed += len(batch)
            self._remove(i.task_id for i in batch)
            self.last_error = ""
        else:
            self.last_error = outcome.error
            log.warning(
                "submit_results of %d result(s) failed (%s); retrying next block",
                len(batch),
                outcome.error,
            )
        return outcome

    def _verdict(self, item: PendingResult, state: TaskState | None, best: int) -> str:
        if state is None:
            if best >= item.deadline:
                return "the task was never committed on chain before its deadline"
            return "wait"  # the coordinator commits in batches: try again next block
        if state.miner_key != self._staker_key:
            return "the task is assigned to another miner on chain"
        if state.status != "Committed":
            if state.result_hash == item.result_hash:
                return "committed"
            return f"the task is already {state.status} on chain"
        if state.spec_hash != item.spec_hash:
            return "the spec we were given does not match the spec hash committed on chain"
        if best + 1 > state.deadline:  # the batch lands in block best + 1 at the earliest
            return f"its deadline #{state.deadline} has passed (best #{best})"
        return "ready"


async def _sleep_or(
    event: asyncio.Event, seconds: float, other: asyncio.Event | None = None
) -> None:
    """Sleep up to `seconds`, waking early when `event` (or `other`) is set."""
    waits = [asyncio.ensure_future(event.wait())]
    if other is not None:
        waits.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
