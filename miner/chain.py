"""The miner's chain access, through the chain client (`chainclient`, substrate-interface
underneath, like any third-party client).

`MinerChain` reads the registry (this miner's registration by operator, the coordinators with
their endpoints and stake), the tasks, their checks and revealed specs, and the CheckOpened events
of each block, and submits the miner's Tasks calls (`submit_results`, `commit_check`,
`reveal_result`, `appeal`) signed by the operator key, each call under a deadline on the client's
worker thread (`chainclient.gateway.Gateway`).

`ResultCommitter` commits uploaded results (blind commitments): one `submit_results` per block
with everything uploaded since. Before each batch it reads every pending task on chain (the batch
is all or nothing, so one bad item must not sink the rest): a task not committed yet stays for
the next block (the coordinator commits in batches too), a task past its deadline, final,
assigned to another miner or committed with another spec hash is dropped. A task that pays less
on chain than its coordinator stated (or than the miner's minimum) is still committed, with a
warning: its image was delivered, and only the commitment gets it paid (left uncommitted, the task
would be Missed and its price refunded to the coordinator). Pending items are journalled in the
data directory, so a restart does not lose them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from substrateinterface import Keypair

from chainclient import calls
from chainclient.accounts import h256
from chainclient.amounts import format_cai
from chainclient.calls import MAX_BATCH, Call, ResultCommit
from chainclient.connection import ChainUnavailable, Connection, SubmitRefused
from chainclient.gateway import Gateway
from chainclient.registry import MINER, Registration
from chainclient.tasks import Check, CheckOpened, Task
from miner import MinerError

log = logging.getLogger(__name__)


class NotRegistered(MinerError):
    """The operator key does not serve a miner registration."""


@dataclasses.dataclass(frozen=True, slots=True)
class PendingResult:
    task_id: bytes
    commitment: bytes  # chain.taskproto.result_commitment(staker, task_id, ...)
    spec_hash: bytes
    deadline: int
    price: int | None = None  # planck, as the coordinator stated it (the chain's record counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": "0x" + self.task_id.hex(),
            "commitment": "0x" + self.commitment.hex(),
            "spec_hash": "0x" + self.spec_hash.hex(),
            "deadline": self.deadline,
            "price": None if self.price is None else str(self.price),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PendingResult:
        price = obj.get("price")
        return cls(
            task_id=h256(obj["task_id"]),
            commitment=h256(obj["commitment"]),
            spec_hash=h256(obj["spec_hash"]),
            deadline=int(obj["deadline"]),
            price=None if price is None else int(price),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitOutcome:
    ok: bool
    error: str  # the dispatch error's name ("UnknownTask"), or the RPC error; "" when ok
    block: int | None


class ChainAccess(Protocol):
    """What the service and the committer need from the chain (a fake in unit tests)."""

    async def best_block(self) -> int: ...

    async def registration(self) -> Registration: ...

    async def coordinators(self) -> list[Registration]: ...

    async def tasks(self, task_ids: Sequence[bytes]) -> dict[bytes, Task | None]: ...

    async def submit_results(self, items: Sequence[PendingResult]) -> SubmitOutcome: ...

    async def checks(self, task_ids: Sequence[bytes]) -> dict[bytes, Check | None]: ...

    async def specs(self, task_ids: Sequence[bytes]) -> dict[bytes, bytes | None]: ...

    async def checks_opened(self, first: int, last: int) -> list[CheckOpened]: ...

    async def send(self, call: Call) -> SubmitOutcome: ...

    async def submit(self, call: Call) -> SubmitOutcome: ...


def _checks_opened(conn: Connection, first: int, last: int) -> list[CheckOpened]:
    out: list[CheckOpened] = []
    for number in range(first, last + 1):
        out.extend(conn.checks_opened(conn.block_hash(number)))
    return out


def _sign_and_submit(conn: Connection, keypair: Keypair, call: Call, nonce: int) -> None:
    conn.submit(conn.sign(keypair, call, nonce))


def _balance_and_deposit(conn: Connection, who: bytes) -> tuple[int, int]:
    return conn.account(who).free, conn.existential_deposit()


@dataclasses.dataclass(eq=False, slots=True)
class MinerChain:
    """ChainAccess for the operator key `keypair`; every call has a deadline (`timeout_s`,
    twice that for the coordinators' listing, `submit_timeout_s` for a submission waiting to be
    included)."""

    url: str
    keypair: Keypair
    _: dataclasses.KW_ONLY
    timeout_s: float = 15.0
    submit_timeout_s: float = 60.0
    _operator: bytes = dataclasses.field(init=False)
    _gateway: Gateway = dataclasses.field(init=False)
    # One nonce sequence for everything this operator signs (results, check calls): two
    # submitters reading the node's next index at once would sign the same nonce.
    _nonce: int | None = dataclasses.field(init=False, default=None)
    _nonce_lock: asyncio.Lock | None = dataclasses.field(init=False, default=None)

    def __post_init__(self) -> None:
        self._operator = bytes(self.keypair.public_key)
        self._gateway = Gateway(self.url, timeout_s=self.timeout_s, thread_name="miner-chain")

    async def connect(self) -> None:
        """Open the connection now (and fail fast with ChainUnavailable)."""
        await self._gateway.run(Connection.head)

    async def close(self) -> None:
        await self._gateway.close()

    # ---- reads ----------------------------------------------------------------------------------

    async def best_block(self) -> int:
        number, _ = await self._gateway.run(Connection.head)
        return number

    async def free_balance(self) -> tuple[int, int]:
        """(free balance of the operator, existential deposit)."""
        return await self._gateway.run(_balance_and_deposit, self._operator)

    async def registration(self) -> Registration:
        role, reg = await self._gateway.run(Connection.registration_of, self._operator)
        operator = self.keypair.ss58_address
        if role is None:
            raise NotRegistered(
                f"operator {operator} is not registered. From your staker account: bond at least "
                "the minimum miner stake (Staking.bond, 20,000 CAI on dev chains), then "
                f"Registry.register_miner(operator={operator}, info={{name, description, url, "
                "gpu_model}); fund the operator with a little CAI for transaction fees"
            )
        if role.role != MINER or reg is None:
            raise NotRegistered(
                f"operator {operator} serves a {role.role} registration, not a miner"
            )
        return reg

    async def coordinators(self) -> list[Registration]:
        gw = self._gateway
        return await gw.run_within(gw.timeout_s * 2, Connection.coordinators)

    async def tasks(self, task_ids: Sequence[bytes]) -> dict[bytes, Task | None]:
        if not task_ids:
            return {}
        return await self._gateway.run(Connection.tasks, list(task_ids))

    async def checks(self, task_ids: Sequence[bytes]) -> dict[bytes, Check | None]:
        if not task_ids:
            return {}
        return await self._gateway.run(Connection.checks, list(task_ids))

    async def specs(self, task_ids: Sequence[bytes]) -> dict[bytes, bytes | None]:
        if not task_ids:
            return {}
        return await self._gateway.run(Connection.specs, list(task_ids))

    async def checks_opened(self, first: int, last: int) -> list[CheckOpened]:
        """The Tasks.CheckOpened events of blocks first..last."""
        if last < first:
            return []
        return await self._gateway.run(_checks_opened, first, last)

    # ---- writes ---------------------------------------------------------------------------------

    async def submit_results(self, items: Sequence[PendingResult]) -> SubmitOutcome:
        return await self.send(
            calls.submit_results(ResultCommit(i.task_id, i.commitment) for i in items)
        )

    async def _take_nonce(self) -> int:
        """The next nonce of the operator's sequence (read from the node, pool included, after a
        refusal or at start)."""
        if self._nonce is None:
            self._nonce = await self._gateway.run(Connection.next_index, self._operator)
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def _lock(self) -> asyncio.Lock:
        if self._nonce_lock is None:
            self._nonce_lock = asyncio.Lock()
        return self._nonce_lock

    async def submit(self, call: Call) -> SubmitOutcome:
        """Sign `call` with the operator key and submit it without waiting: `ok` means the pool
        took it. Several can go out in one block."""
        async with self._lock():
            try:
                nonce = await self._take_nonce()
                await self._gateway.run_within(
                    self.timeout_s, _sign_and_submit, self.keypair, call, nonce
                )
            except SubmitRefused as exc:
                self._nonce = None  # re-read: the node knows which nonces it holds
                return SubmitOutcome(False, str(exc), None)
            except BaseException:
                self._nonce = None
                raise
        return SubmitOutcome(True, "", None)

    async def send(self, call: Call) -> SubmitOutcome:
        """Sign `call` with the operator key, submit it and wait until a block includes it."""
        async with self._lock():
            nonce = await self._take_nonce()
        try:
            included = await self._gateway.run_within(
                self.submit_timeout_s, Connection.submit_and_wait, self.keypair, call, nonce
            )
        except SubmitRefused as exc:
            self._nonce = None
            return SubmitOutcome(False, str(exc), None)
        except BaseException:
            self._nonce = None
            raise
        return SubmitOutcome(included.is_success, included.error or "", included.block)


@dataclasses.dataclass(eq=False, slots=True)
class ResultCommitter:
    """Commits uploaded results on chain, one batch per block (see the module docstring)."""

    chain: ChainAccess
    staker_key: bytes
    _: dataclasses.KW_ONLY
    journal: Path | None = None
    poll_interval_s: float = 0.25
    clock: Callable[[], float] = time.monotonic
    min_price: int = 0  # planck: a task paying less on chain is committed with a warning
    committed: int = dataclasses.field(init=False, default=0)  # results seen committed on chain
    dropped: int = dataclasses.field(init=False, default=0)
    last_error: str = dataclasses.field(init=False, default="")
    _pending: dict[bytes, PendingResult] = dataclasses.field(init=False, default_factory=dict)
    _wakeup: asyncio.Event = dataclasses.field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
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
        if self.journal is None or not self.journal.exists():
            return
        try:
            items = json.loads(self.journal.read_text())
            for obj in items:
                item = PendingResult.from_json(obj)
                self._pending[item.task_id] = item
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable journal %s: %s", self.journal, exc)
            return
        if self._pending:
            log.info("%d result(s) to commit from the journal", len(self._pending))

    def _save(self) -> None:
        if self.journal is None:
            return
        tmp = self.journal.with_suffix(".tmp")
        tmp.write_text(json.dumps([p.to_json() for p in self._pending.values()]))
        os.replace(tmp, self.journal)

    # ---- loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, drain_s: float = 15.0) -> None:
        """Commit until `stop` is set; then keep going until nothing is pending or `drain_s`
        has passed (what is left stays in the journal)."""
        last_block = -1
        drain_until: float | None = None
        while True:
            if stop.is_set():
                if drain_until is None:
                    drain_until = self.clock() + drain_s
                if not self._pending or self.clock() >= drain_until:
                    if self._pending:
                        log.warning(
                            "%d result(s) not committed yet at shutdown; kept in the journal",
                            len(self._pending),
                        )
                    return
            if self._pending:
                try:
                    best = await self.chain.best_block()
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
                    await asyncio.sleep(self.poll_interval_s)
                continue
            await _sleep_or(self._wakeup, self.poll_interval_s if self._pending else 5.0, stop)

    async def commit_once(self, best: int) -> SubmitOutcome | None:
        """One round at best block `best`: sort the pending items by their on-chain state and
        submit the ones that can be committed now."""
        items = list(self._pending.values())
        states = await self.chain.tasks([i.task_id for i in items])
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
        outcome = await self.chain.submit_results(batch)
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

    def _verdict(self, item: PendingResult, state: Task | None, best: int) -> str:
        if state is None:
            if best >= item.deadline:  # never committed, or settled and pruned long ago
                return "the task is not on chain and its deadline has passed"
            return "wait"  # the coordinator commits in batches: try again next block
        if state.miner != self.staker_key:
            return "the task is assigned to another miner on chain"
        if state.status != "Committed":
            if state.commitment == item.commitment:
                return "committed"
            return f"the task is already {state.status} on chain"
        if state.spec_hash != item.spec_hash:
            return "the spec we were given does not match the spec hash committed on chain"
        if state.price < self.min_price or (item.price is not None and state.price < item.price):
            log.warning(
                "task 0x%s pays %s CAI on chain: its coordinator stated %s CAI, this miner takes "
                "at least %s CAI (committed anyway: the image was delivered)",
                item.task_id.hex(),
                format_cai(state.price),
                "?" if item.price is None else format_cai(item.price),
                format_cai(self.min_price),
            )
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
