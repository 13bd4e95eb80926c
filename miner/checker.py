"""The miner's part in checked work (docs/verification.md), once per block:

- as the task's miner: for every result it committed (`RecordStore`, role MINER), read the task;
  when it is Checking, reveal the opening in phase Revealing, and appeal a Guilty round-1
  verdict in phase Appealable; forget the record once the task is final (or once it left chain
  state after it was seen there: settled and pruned while the miner was away);
- as a checker: find the Tasks.CheckOpened events that draw this miner's staker; wait until the
  coordinator revealed the spec (Tasks.Specs), check it against the task's spec hash, solve it
  with the miner's own solver, persist the opening, `commit_check`, then reveal in phase
  Revealing.

Every submission waits for its inclusion; one that fails is tried again at the next block while
the phase lasts. Checking is part of being a miner: there is no switch to turn it off.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from chain.hashing import blake2_256
from chain.taskproto import SALT_LENGTH, SpecError, result_hash, validate_spec
from chainclient import calls
from chainclient.amounts import format_cai
from chainclient.connection import ChainUnavailable
from chainclient.sketch import image_sketch
from chainclient.tasks import Check, Task
from miner.chain import ChainAccess
from miner.records import CHECKER, MINER, Opening, Record, RecordStore

log = logging.getLogger(__name__)

MAX_CATCH_UP_BLOCKS = 64  # blocks of CheckOpened events read at most per cycle
RESEND_BLOCKS = 4  # a submitted call not seen on chain this many blocks later goes again


@dataclasses.dataclass
class CheckStats:
    checks_drawn: int = 0  # times this miner was drawn as a checker
    check_commits: int = 0
    reveals: int = 0  # as miner or checker
    appeals: int = 0
    verified: int = 0  # own results by final outcome
    upheld: int = 0
    guilty: int = 0


class CheckWatcher:
    """Runs `cycle(best)` at every new best block (see the module docstring)."""

    appeal_guilty = True  # an honest miner always appeals a Guilty round-1 verdict

    def __init__(
        self,
        chain: ChainAccess,
        records: RecordStore,
        staker: bytes,
        device_hash: bytes,
        solve: Callable[[dict[str, Any]], Awaitable[bytes]],
    ) -> None:
        self._chain = chain
        self.records = records
        self._staker = staker
        self._device_hash = device_hash
        self._solve = solve
        self._events_from: int | None = None  # next block whose events to read
        self.stats = CheckStats()
        # calls submitted without waiting, by (task, what): the block they went out in; sent
        # again only when the chain still does not show them RESEND_BLOCKS later
        self._inflight: dict[tuple[bytes, str], int] = {}
        self._best = 0

    async def cycle(self, best: int) -> None:
        self._best = best
        self._inflight = {k: b for k, b in self._inflight.items() if best - b < RESEND_BLOCKS}
        await self._discover(best)
        records = self.records.all()
        if not records:
            return
        ids = [r.task_id for r in records]
        tasks = await self._chain.tasks(ids)
        checking = [
            t for t in ids if (task := tasks.get(t)) is not None and task.status == "Checking"
        ]
        checks = await self._chain.checks(checking)
        for rec in records:
            try:
                if rec.role == MINER:
                    await self._as_miner(rec, tasks.get(rec.task_id), checks.get(rec.task_id), best)
                else:
                    await self._as_checker(rec, tasks.get(rec.task_id), checks.get(rec.task_id))
            except ChainUnavailable:
                raise
            except Exception:  # a task boundary: this task's step fails, the others go on
                log.exception("check step of %s failed", rec.task_hex)

    # ---- discovery --------------------------------------------------------------------------

    async def _discover(self, best: int) -> None:
        first = best if self._events_from is None else self._events_from
        first = max(first, best - MAX_CATCH_UP_BLOCKS + 1)
        opened = await self._chain.checks_opened(first, best)
        self._events_from = best + 1
        for ev in opened:
            if self._staker not in ev.checkers:
                continue
            rec = self.records.get(ev.task_id)
            if rec is not None and rec.role == MINER:
                continue  # our own task: never drawn, but be safe
            if rec is not None and rec.round == ev.round:
                continue
            self.stats.checks_drawn += 1
            log.info(
                "check: drawn as a checker of 0x%s (round %d, %s until #%d)",
                ev.task_id.hex(),
                ev.round,
                ev.phase,
                ev.phase_ends,
            )
            self.records.put(Record(ev.task_id, CHECKER, round=ev.round))

    # ---- our own results --------------------------------------------------------------------

    async def _as_miner(
        self, rec: Record, task: Task | None, check: Check | None, best: int
    ) -> None:
        if task is None:
            if rec.committed_at is not None:
                log.info("check: our result %s left chain state (settled and pruned)", rec.task_hex)
                self.records.remove(rec.task_id)
            elif best > rec.deadline:
                self.records.remove(rec.task_id)  # never committed on chain
            return
        if task.miner != self._staker:
            self.records.remove(rec.task_id)
            return
        if rec.committed_at is None:  # first seen on chain: what it pays, and that it was there
            rec.committed_at = task.committed_at
            rec.price = task.price
            if not task.is_final:
                self.records.put(rec)
        if task.is_final:
            self._final(rec, task)
            return
        if task.status == "Committed" and best > task.deadline:
            self.records.remove(rec.task_id)
            return
        if task.status != "Checking" or check is None or rec.opening is None:
            return
        if check.phase == "Revealing" and check.miner_reveal is None:
            if task.commitment != rec.opening.commitment(self._staker, rec.task_id):
                log.error("check: our opening of %s does not match the chain", rec.task_hex)
                return
            await self._reveal(rec, check.round, "miner")
        elif check.phase == "Appealable":  # until the chain shows the appeal (a new round)
            if not self.appeal_guilty:
                return
            outcome = await self._send(
                calls.appeal(rec.task_id), f"appeal of {rec.task_hex}", (rec.task_id, "appeal")
            )
            if outcome:
                rec.appealed = True
                self.records.put(rec)
                self.stats.appeals += 1
                log.info("check: appealed the Guilty verdict on our result %s", rec.task_hex)

    def _final(self, rec: Record, task: Task) -> None:
        if task.outcome != "Unchecked":
            log.info(
                "check: our result %s is final: %s, %s (price %s CAI)",
                rec.task_hex,
                task.status,
                task.outcome,
                format_cai(task.price),
            )
            key = task.outcome.lower()
            if hasattr(self.stats, key):
                setattr(self.stats, key, getattr(self.stats, key) + 1)
        self.records.remove(rec.task_id)

    # ---- checking others' results ------------------------------------------------------------

    async def _as_checker(self, rec: Record, task: Task | None, check: Check | None) -> None:
        if task is None or task.is_final or check is None:
            if task is not None and task.is_final:
                log.info(
                    "check: task %s we checked is final: %s, %s",
                    rec.task_hex,
                    task.status,
                    task.outcome,
                )
            self.records.remove(rec.task_id)
            return
        me = check.checker(self._staker)
        if me is None:
            return  # drawn for an earlier round: nothing more to do until it is final
        if check.phase == "Committing" and me.commitment is None:
            if rec.opening is None or rec.round != check.round:
                spec = await self._spec(rec, task)
                if spec is None:
                    return
                png = await self._solve(spec)
                rec.opening = Opening(
                    result_hash(png), self._device_hash, image_sketch(png), os.urandom(SALT_LENGTH)
                )
                rec.round = check.round
                rec.commitment = rec.opening.commitment(self._staker, rec.task_id)
                self.records.put(rec)  # durable before the commitment goes out
            assert rec.commitment is not None
            ok = await self._send(
                calls.commit_check(rec.task_id, rec.commitment),
                f"check commit of {rec.task_hex}",
                (rec.task_id, f"commit {check.round}"),
            )
            if ok:
                self.stats.check_commits += 1
                log.info("check: committed our result for %s (round %d)", rec.task_hex, check.round)
        elif (
            check.phase == "Revealing"
            and me.commitment is not None
            and me.reveal is None
            and rec.opening is not None
            and me.commitment == rec.commitment
        ):
            await self._reveal(rec, check.round, "checker")

    async def _spec(self, rec: Record, task: Task) -> dict[str, Any] | None:
        raw = (await self._chain.specs([rec.task_id])).get(rec.task_id)
        if raw is None:
            return None  # not revealed yet
        if blake2_256(raw) != task.spec_hash:
            log.error("check: the spec revealed for %s does not match its hash", rec.task_hex)
            return None
        try:
            spec = json.loads(raw)
            if not isinstance(spec, dict):
                raise SpecError("not an object")
            validate_spec(spec)
        except (ValueError, SpecError) as exc:
            log.error("check: the spec revealed for %s is not valid: %s", rec.task_hex, exc)
            return None
        return spec

    # ---- submissions ------------------------------------------------------------------------

    async def _reveal(self, rec: Record, round_: int, role: str) -> None:
        # called while the chain shows no reveal of ours: a lost submission goes again
        o = rec.opening
        assert o is not None
        call = calls.reveal_result(rec.task_id, o.result_hash, o.device_hash, o.sketch, o.salt)
        if await self._send(call, f"reveal of {rec.task_hex}", (rec.task_id, f"reveal {round_}")):
            rec.revealed_round = round_
            self.records.put(rec)
            self.stats.reveals += 1
            log.info(
                "check: revealed our result for %s as its %s (round %d)", rec.task_hex, role, round_
            )

    async def _send(self, call: calls.Call, what: str, key: tuple[bytes, str]) -> bool:
        """Submit without waiting for inclusion (a checker may owe many calls in one block;
        waiting for each would take a block apiece and miss the windows). The next cycles read
        the effect from chain state; a call still not there RESEND_BLOCKS later goes again."""
        if key in self._inflight:
            return False
        outcome = await self._chain.submit(call)
        if not outcome.ok:
            log.warning("check: %s failed (%s); trying again next block", what, outcome.error)
            return False
        self._inflight[key] = self._best
        return True
