"""Engine flows against the fake chain: deliveries checked against the miner's on-chain
commitment, early acceptance, disputes, checked tasks (spec reveal, final outcome), reassignment,
restarts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chain.taskproto import canonical_json, device_hash, result_commitment, result_hash
from chainclient.registry import Registration
from chainclient.sketch import image_sketch
from coordinator.engine import RequestError
from coordinator.model import AState, CState, JobStatus, Role, Settle
from coordinator.testing import make_png
from tests.coordinator.harness import Harness, records, running

SPEC = {
    "model": "tiny",
    "prompt": "p",
    "negative_prompt": "",
    "width": 8,
    "height": 8,
    "steps": 1,
    "seed": 1,
    "guidance_scale": "0.0",
}
GOOD, OTHER = make_png(8, 8, seed=0), make_png(8, 8, seed=1)
WRONG_SIZE = make_png(16, 8, seed=0)
DEV_A = {"device": "A"}


def _run(tmp_path: Path, check: Callable[[Harness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with running(tmp_path, run_chain=False, **kw) as h:
            await check(h)

    asyncio.run(main())


def rec(h: Harness, i: int) -> Registration:
    r = h.engine.miner_by_operator(bytes(h.keys[i].public_key))
    assert r is not None
    return r


async def make_live(h: Harness) -> None:
    for i in range(len(h.keys)):
        await h.engine.poll(rec(h, i), 1, 0)


async def work(
    h: Harness,
    i: int,
    png: bytes,
    dev: dict[str, str] = DEV_A,
    *,
    submit: bool = True,
    committed: bytes | None = None,
) -> int:
    """Miner i takes its tasks and returns `png` for each with its sketch and a fresh salt, and
    commits on chain the commitment they open (or the `committed` image's, with another salt)."""
    r = rec(h, i)
    pending = any(
        a.miner == r.staker and a.state is AState.ASSIGNED for a in h.engine.attempts.values()
    )
    # what an earlier poll (make_live) took already, then the hand-out if one is due
    held = [
        a for a in h.engine.attempts.values() if a.miner == r.staker and a.state is AState.DELIVERED
    ]
    tasks = held + await h.engine.poll(r, 8, 1.0 if pending else 0)
    for a in tasks:
        sketch = image_sketch(png) if png[:4] == b"\x89PNG" else b"\x00" * 16
        salt, dh = os.urandom(32), device_hash(dev)
        await h.engine.upload(r, a.task_id, png, result_hash(png), dh, sketch, salt, None)
        if submit:
            on_chain = committed or png
            commitment = result_commitment(
                r.staker, a.task_id, result_hash(on_chain), dh, sketch, salt
            )
            h.chain.submit_result("0x" + a.task_id.hex(), commitment)
    return len(tasks)


async def durable(h: Harness) -> None:
    """Wait until the publisher has written (and handed out) every new attempt."""
    for _ in range(400):
        if all(a.is_durable for a in h.engine.attempts.values()):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("attempts not written")


async def settle(h: Harness, blocks: int = 4) -> None:
    for _ in range(blocks):
        await durable(h)
        h.chain.block()
        await asyncio.sleep(0)


def holder(h: Harness, job_id: bytes, role: Role = Role.PRIMARY) -> int:
    job = h.engine.jobs[job_id]
    a = next(
        h.engine.attempts[t]
        for t in reversed(job.attempts)
        if h.engine.attempts[t].role is role and h.engine.attempts[t].state.is_live
    )
    return next(i for i, k in enumerate(h.keys) if bytes(k.public_key) == a.operator)


def test_job_commits_confirms_and_is_accepted_early(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        assert job.slots == [Role.PRIMARY]  # no audit copies: checking is the chain's
        await settle(h, 1)
        a = h.engine.attempts[job.job_id]
        assert a.commit is CState.COMMITTED
        assert a.commit_block == h.chain.head
        await work(h, holder(h, job.job_id), GOOD)
        await settle(h)
        assert job.status is JobStatus.SUCCEEDED
        assert h.chain.settled == [job.job_id]  # settle_tasks: accepted early
        assert h.chain.tasks[job.job_id].settled_at is not None
        assert job.job_id not in h.engine.jobs  # closed: final on chain
        view = h.engine.load_job_record(job.job_id)
        assert view is not None
        assert view[0].verification == "unchecked"
        assert view[1][job.job_id].verification == "unchecked"
        assert h.engine.receipt(view[1][job.job_id])["verification"] == "unchecked"

    _run(tmp_path, check)


@pytest.mark.parametrize("outcome", ["Verified", "Guilty"])
def test_checked_task_gets_its_spec_revealed_and_its_outcome(tmp_path: Path, outcome: str) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        h.chain.check[job.job_id] = outcome
        await settle(h, 1)
        await work(h, holder(h, job.job_id), GOOD)
        await settle(h, 2)
        assert job.status is JobStatus.SUCCEEDED
        a = h.engine.attempts[job.job_id]
        assert a.verification == "pending"  # the chain is checking it
        assert h.engine.receipt(a)["settle_block"] == "pending"
        await settle(h, 3)
        assert h.chain.specs[job.job_id] == canonical_json(SPEC)  # revealed once, canonical
        assert h.engine.counters["specs_revealed"] == 1
        record = h.engine.load_job_record(job.job_id)
        assert record is not None
        assert record[0].verification == outcome.lower()
        assert record[1][job.job_id].final_status == (
            "Rejected" if outcome == "Guilty" else "Accepted"
        )

    _run(tmp_path, check)


def test_delivery_that_does_not_open_the_commitment_goes_to_another_miner(
    tmp_path: Path,
) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        first = holder(h, job.job_id)
        await work(h, first, GOOD, committed=OTHER)  # commits to another image than it sent
        await settle(h, 1)
        a = h.engine.attempts[job.job_id]
        assert a.state is AState.INVALID
        assert a.settle is Settle.NONE  # no dispute: nothing shows what it committed to
        assert h.engine.counters["deliveries_mismatched"] == 1
        second = holder(h, job.job_id)
        assert second != first
        await settle(h, 1)
        await work(h, second, GOOD)
        await settle(h)
        assert job.status is JobStatus.SUCCEEDED
        assert job.chosen == job.attempts[-1] != job.job_id

    _run(tmp_path, check)


def test_upload_refuses_a_sketch_that_is_not_the_images(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        r = rec(h, holder(h, job.job_id))
        await h.engine.poll(r, 8, 1.0)
        dh = device_hash(DEV_A)
        with pytest.raises(RequestError) as refused:
            await h.engine.upload(
                r, job.job_id, GOOD, result_hash(GOOD), dh, image_sketch(OTHER), bytes(32), None
            )
        assert refused.value.code == "sketch_mismatch"
        assert h.engine.attempts[job.job_id].state is AState.DELIVERED

    _run(tmp_path, check)


def test_committed_image_of_the_wrong_size_is_disputed(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        h.chain.check[job.job_id] = "Guilty"
        await settle(h, 1)
        first = holder(h, job.job_id)
        await work(h, first, WRONG_SIZE)  # opens its commitment, but is not an 8x8 image
        await settle(h, 1)
        assert h.chain.disputed == [job.job_id]
        assert h.engine.attempts[job.job_id].state is AState.INVALID
        assert holder(h, job.job_id) != first  # the job runs again elsewhere
        await settle(h, 3)
        assert h.chain.tasks[job.job_id].outcome == "Guilty"
        assert h.chain.specs[job.job_id] == canonical_json(SPEC)

    _run(tmp_path, check)


def test_missed_deadline_goes_to_another_miner(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        first = holder(h, job.job_id)
        await h.engine.poll(rec(h, first), 8, 0)  # takes it, never answers
        for _ in range(55):  # past the 50-block deadline
            h.chain.block()
            await asyncio.sleep(0)
            await make_live(h)
        assert h.engine.attempts[job.job_id].state is AState.MISSED
        assert h.chain.tasks[job.job_id].status == "Missed"
        second = holder(h, job.job_id)
        assert second != first
        new = h.engine.attempts[job.attempts[-1]]
        assert new.task_id != job.job_id
        await settle(h, 1)
        await work(h, second, GOOD)
        await settle(h)
        assert job.status is JobStatus.SUCCEEDED

    _run(tmp_path, check, task_timeout_blocks=50)


def test_inactive_miner_loses_undelivered_tasks(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        first = holder(h, job.job_id)
        statuses = ["Active"] * 3
        statuses[first] = "Inactive"
        h.engine.set_registry(records(h.keys, None, statuses))
        assert h.engine.attempts[job.job_id].state is AState.RELEASED
        assert holder(h, job.job_id) != first
        await asyncio.sleep(0.1)  # the publisher hands out the replacement

    _run(tmp_path, check)


def test_silent_miner_loses_queued_tasks(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        now = [1000.0]
        h.engine.mono = lambda: now[0]
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        first = holder(h, job.job_id)
        now[0] += 31  # nobody polled for 31 s
        for i in range(3):
            if i != first:  # the others polled just now
                h.engine.miners[rec(h, i).staker].last_poll = now[0]
        h.engine.tick()
        assert h.engine.attempts[job.job_id].state is AState.RELEASED
        assert holder(h, job.job_id) != first

    _run(tmp_path, check)


def test_commit_failures_retry_then_reassign(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await asyncio.sleep(0.05)
        for _ in range(3):
            items = h.engine.take_commits(h.chain.head, 10)
            assert [i.task_id for i in items] == [job.job_id]
            h.engine.commits_failed([job.job_id])
        assert h.engine.attempts[job.job_id].state is AState.DROPPED
        assert len(job.attempts) == 2

    _run(tmp_path, check)


def test_restart_reloads_accepted_tasks(tmp_path: Path) -> None:
    async def phase1(h: Harness) -> None:
        # accepted while no miner is live: durable, queued
        jobs = await h.engine.submit([SPEC, dict(SPEC, seed=2)])
        assert all(j.status is JobStatus.QUEUED for j in jobs)
        phase1.ids = [j.job_id for j in jobs]  # type: ignore[attr-defined]

    _run(tmp_path, phase1)

    async def phase2(h: Harness) -> None:
        ids = phase1.ids  # type: ignore[attr-defined]
        assert set(ids) <= set(h.engine.jobs)
        await make_live(h)
        await settle(h, 1)
        for i in range(3):
            await work(h, i, GOOD)
        await settle(h)
        for job_id in ids:
            record = h.engine.load_job_record(job_id)
            assert record is not None
            assert record[0].status is JobStatus.SUCCEEDED

    _run(tmp_path, phase2)


def test_restart_with_commit_in_flight_checks_the_chain(tmp_path: Path) -> None:
    async def phase1(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        items = h.engine.take_commits(h.chain.head, 10)
        assert len(items) == 1  # in flight when the process dies
        phase1.job = job.job_id  # type: ignore[attr-defined]

    _run(tmp_path, phase1)

    async def phase2(h: Harness) -> None:
        job_id = phase1.job  # type: ignore[attr-defined]
        a = h.engine.attempts[job_id]
        # reloaded as CHECK; the first head found no such task on chain, so it was committed again
        assert a.commit is CState.COMMITTED
        assert a.commit_block == h.chain.head
        assert h.chain.tasks[job_id].committed_at == h.chain.head

    _run(tmp_path, phase2)
