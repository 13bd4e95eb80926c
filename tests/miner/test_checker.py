"""The miner's part in checked work (miner/checker.py) against the fake chain: revealing its own
checked result, appealing a Guilty round 1, re-running a task it is drawn to check (commit, then
reveal), keeping every opening on disk across a restart, and forgetting a result whose task the
chain pruned after it settled."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from chain.hashing import blake2_256
from chain.taskproto import canonical_json, device_hash, result_hash
from chainclient import calls
from chainclient.sketch import image_sketch
from chainclient.tasks import Check, Checker, CheckOpened, Task
from miner.checker import CheckWatcher
from miner.records import CHECKER, MINER, Opening, Record, RecordStore
from miner.solver import PatternSolver
from tests.miner.fakes import COORDINATOR, FakeChain, make_spec

SOLVER = PatternSolver()
DEVICE = device_hash(SOLVER.fingerprint())
OTHER = b"\x0e" * 32  # another miner's staker


async def solve(spec: dict[str, Any]) -> bytes:
    return await asyncio.to_thread(SOLVER.solve, spec)


def watcher(chain: FakeChain, records: RecordStore) -> CheckWatcher:
    return CheckWatcher(chain, records, chain.staker_key, DEVICE, solve)


def task(
    chain: FakeChain,
    task_id: bytes,
    *,
    miner: bytes,
    status: str,
    commitment: bytes | None = None,
    spec: dict[str, Any] | None = None,
) -> Task:
    t = Task(
        COORDINATOR,
        miner,
        blake2_256(canonical_json(spec or make_spec())),
        chain.best + 50,
        1,
        status,
        commitment,
    )
    chain.states[task_id] = t
    return t


def own_result(chain: FakeChain, records: RecordStore, spec: dict[str, Any]) -> Record:
    task_id = os.urandom(32)
    png = SOLVER.solve(spec)
    opening = Opening(result_hash(png), DEVICE, image_sketch(png), os.urandom(32))
    rec = Record(
        task_id, MINER, chain.best + 50, opening, opening.commitment(chain.staker_key, task_id)
    )
    records.put(rec)
    task(
        chain,
        task_id,
        miner=chain.staker_key,
        status="Checking",
        commitment=rec.commitment,
        spec=spec,
    )
    return rec


def test_own_checked_result_is_revealed_then_appealed(tmp_path: Path) -> None:
    async def main() -> None:
        chain = FakeChain(Keypair.create_from_uri("//Op"), block_s=None)
        records = RecordStore(tmp_path / "results")
        rec = own_result(chain, records, make_spec())
        w = watcher(chain, records)
        chain.check_states[rec.task_id] = Check(0, "Committing", 99, (Checker(OTHER, 0),))
        await w.cycle(chain.best)
        assert chain.sent == []  # nothing to do while checkers commit
        chain.check_states[rec.task_id] = Check(
            0, "Revealing", 99, (Checker(OTHER, 0, b"\x01" * 32),)
        )
        chain.advance()
        await w.cycle(chain.best)
        o = rec.opening
        assert o is not None
        assert chain.sent == [
            calls.reveal_result(rec.task_id, o.result_hash, o.device_hash, o.sketch, o.salt)
        ]
        await w.cycle(chain.best)
        assert len(chain.sent) == 1  # once per round
        chain.check_states[rec.task_id] = Check(1, "Appealable", 120, ())
        chain.advance()
        await w.cycle(chain.best)
        assert chain.sent[-1] == calls.appeal(rec.task_id)
        assert w.stats.appeals == 1
        chain.states[rec.task_id] = dataclasses.replace(
            chain.states[rec.task_id], status="Accepted", outcome="Upheld"
        )
        await w.cycle(chain.best)
        assert records.get(rec.task_id) is None  # final: forgotten
        assert w.stats.upheld == 1
        assert not list((tmp_path / "results").glob("*.json"))

    asyncio.run(main())


def test_a_drawn_checker_reruns_commits_and_reveals_even_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        chain = FakeChain(Keypair.create_from_uri("//Op"), block_s=None)
        spec = make_spec()
        task_id = os.urandom(32)
        task(chain, task_id, miner=OTHER, status="Checking", commitment=os.urandom(32), spec=spec)
        records = RecordStore(tmp_path / "results")
        w = watcher(chain, records)
        await w.cycle(chain.best)  # starts following events from here
        chain.advance()
        chain.opened.append(
            (chain.best, CheckOpened(task_id, 0, (OTHER, chain.staker_key), "SpecDue", 60))
        )
        chain.check_states[task_id] = Check(0, "SpecDue", 60, (Checker(chain.staker_key, 0),))
        await w.cycle(chain.best)
        assert w.stats.checks_drawn == 1
        assert records.get(task_id) is not None
        assert chain.sent == []  # the spec is not on chain yet
        # the coordinator reveals the spec: the check moves to Committing
        chain.spec_json[task_id] = canonical_json(spec)
        chain.check_states[task_id] = Check(0, "Committing", 80, (Checker(chain.staker_key, 0),))
        chain.advance()
        await w.cycle(chain.best)
        rec = records.get(task_id)
        assert rec is not None
        assert rec.opening is not None
        assert rec.role == CHECKER
        png = SOLVER.solve(spec)
        assert rec.opening.result_hash == result_hash(png)  # it really re-ran the spec
        assert rec.opening.sketch == image_sketch(png)
        assert rec.commitment == rec.opening.commitment(chain.staker_key, task_id)
        assert chain.sent == [calls.commit_check(task_id, rec.commitment)]
        # the opening is on disk: a restarted miner reveals the same values
        on_disk = json.loads((tmp_path / "results" / f"{task_id.hex()}.json").read_text())
        assert on_disk["opening"]["salt"] == rec.opening.salt.hex()
        restarted = watcher(chain, RecordStore(tmp_path / "results"))
        chain.check_states[task_id] = Check(
            0, "Revealing", 90, (Checker(chain.staker_key, 0, rec.commitment),)
        )
        chain.advance()
        await restarted.cycle(chain.best)
        o = rec.opening
        assert chain.sent[-1] == calls.reveal_result(
            task_id, o.result_hash, o.device_hash, o.sketch, o.salt
        )

    asyncio.run(main())


def test_a_spec_that_does_not_match_its_hash_is_not_run(tmp_path: Path) -> None:
    async def main() -> None:
        chain = FakeChain(Keypair.create_from_uri("//Op"), block_s=None)
        task_id = os.urandom(32)
        task(chain, task_id, miner=OTHER, status="Checking", spec=make_spec())
        records = RecordStore(None)
        records.put(Record(task_id, CHECKER, round=0))
        chain.spec_json[task_id] = canonical_json(make_spec(seed=999))
        chain.check_states[task_id] = Check(0, "Committing", 80, (Checker(chain.staker_key, 0),))
        await watcher(chain, records).cycle(chain.best)
        assert chain.sent == []
        rec = records.get(task_id)
        assert rec is not None
        assert rec.opening is None

    asyncio.run(main())


def test_a_result_whose_task_was_pruned_is_forgotten(tmp_path: Path) -> None:
    """The chain prunes a settled task RetentionBlocks after it settled: a record seen on chain
    and then gone is settled; one never seen waits for its deadline."""

    async def main() -> None:
        chain = FakeChain(Keypair.create_from_uri("//Op"), block_s=None)
        records = RecordStore(tmp_path / "results")
        rec = own_result(chain, records, make_spec())
        chain.states[rec.task_id] = dataclasses.replace(
            chain.states[rec.task_id], status="Submitted", price=3 * 10**17
        )
        never = Record(os.urandom(32), MINER, chain.best + 50)
        records.put(never)
        w = watcher(chain, records)
        await w.cycle(chain.best)
        seen = RecordStore(tmp_path / "results").get(rec.task_id)  # as a restart reads it
        assert seen is not None
        assert (seen.committed_at, seen.price) == (1, 3 * 10**17)
        del chain.states[rec.task_id]  # settled, then pruned
        chain.advance()
        await w.cycle(chain.best)
        assert records.get(rec.task_id) is None
        assert records.get(never.task_id) is not None  # not on chain yet: its deadline decides
        chain.advance(60)
        await w.cycle(chain.best)
        assert records.all() == []

    asyncio.run(main())
