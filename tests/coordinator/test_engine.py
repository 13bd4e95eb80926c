"""Engine flows against the fake chain: audits, mismatches, reports, reassignment, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chain.taskproto import device_hash, result_hash
from chainclient.registry import Registration
from coordinator.model import AState, CState, JobStatus, Role
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
GOOD, BAD = make_png(32, 32, seed=0), make_png(32, 32, seed=1)
DEV_A = {"device": "A"}
DEV_B = {"device": "B"}


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
    h: Harness, i: int, png: bytes, dev: dict[str, str] = DEV_A, *, submit: bool = True
) -> int:
    """Miner i takes its tasks and returns `png` for each (and commits it on chain)."""
    r = rec(h, i)
    pending = any(
        a.miner == r.staker and a.state is AState.ASSIGNED for a in h.engine.attempts.values()
    )
    tasks = await h.engine.poll(r, 8, 1.0 if pending else 0)  # wait for the hand-out if due
    for a in tasks:
        await h.engine.upload(rec(h, i), a.task_id, png, result_hash(png), device_hash(dev), None)
        if submit:
            h.chain.submit_result("0x" + a.task_id.hex(), result_hash(png), device_hash(dev))
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


def test_unaudited_job_commits_confirms_and_settles(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        a = h.engine.attempts[job.job_id]
        assert a.commit is CState.COMMITTED
        assert a.commit_block == h.chain.head
        assert a.audit_of is None
        await work(h, holder(h, job.job_id), GOOD)
        await settle(h)
        assert job.status is JobStatus.SUCCEEDED
        assert job.verification == "unaudited"
        assert h.chain.settled == [(job.job_id, True)]
        assert job.job_id not in h.engine.jobs  # closed: everything settled
        view = h.engine.load_job_record(job.job_id)
        assert view is not None
        assert view[1][job.job_id].settle_block is not None

    _run(tmp_path, check)


def test_audit_agreeing_results_are_exact(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        assert job.slots == [Role.PRIMARY, Role.AUDIT]
        await settle(h, 1)
        audit = h.engine.attempts[job.attempts[1]]
        assert audit.audit_of == job.job_id  # committed in the same batch as its original
        assert audit.miner != h.engine.attempts[job.job_id].miner
        for i in range(3):
            await work(h, i, GOOD)
        await settle(h)
        assert job.verification == "exact"
        assert sorted(h.chain.settled) == sorted([(job.job_id, True), (audit.task_id, True)])

    _run(tmp_path, check, audit_rate=1.0)


def test_mismatch_goes_to_a_third_miner_and_the_minority_is_reported(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        cheat = holder(h, job.job_id)  # the primary returns a different image
        await work(h, cheat, BAD)
        for i in range(3):
            if i != cheat:
                await work(h, i, GOOD)
        await settle(h, 2)
        assert Role.TIEBREAK in job.slots
        for i in range(3):
            if i != cheat:
                await work(h, i, GOOD)
        await settle(h, 4)
        assert job.status is JobStatus.SUCCEEDED
        assert job.verification == "exact"
        assert job.chosen != job.job_id  # the majority's image
        assert [r[0] for r in h.chain.reports] == [job.job_id]
        witnesses = h.chain.reports[0][1]
        assert len(witnesses) == 1
        assert witnesses[0] != job.job_id
        accepted = {t for t, ok in h.chain.settled if ok}
        assert job.job_id not in accepted
        assert len(accepted) == 2
        assert h.chain.tasks[job.job_id].status == "Rejected"

    _run(tmp_path, check, audit_rate=1.0)


def _stripes() -> bytes:
    """Rows alternate rising and falling gradients: half the dHash bits of either ramp."""
    import io

    from PIL import Image

    img = Image.new("L", (36, 32))
    px = img.load()
    assert px is not None
    for y in range(32):
        for x in range(36):
            px[x, y] = x * 7 if (y // 4) % 2 == 0 else 255 - x * 7
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_no_majority_is_failed_verification(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        primary = holder(h, job.job_id)
        audit = holder(h, job.job_id, Role.AUDIT)
        await work(h, primary, GOOD, {"device": "a"})
        await work(h, audit, BAD, {"device": "b"})
        await settle(h, 2)
        assert Role.TIEBREAK in job.slots
        third = holder(h, job.job_id, Role.TIEBREAK)
        assert third not in (primary, audit)
        await work(h, third, _stripes(), {"device": "c"})
        await settle(h, 4)
        assert job.status is JobStatus.SUCCEEDED
        assert (job.verification, job.chosen) == ("failed", job.job_id)
        assert h.chain.reports == []
        assert sorted(ok for _, ok in h.chain.settled) == [True, True, True]  # nobody penalised

    _run(tmp_path, check, audit_rate=1.0)


def test_cross_device_perceptual_agreement(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        await work(h, holder(h, job.job_id), GOOD, {"device": "gpu"})
        await work(
            h, holder(h, job.job_id, Role.AUDIT), make_png(48, 40, seed=0), {"device": "cpu"}
        )
        await settle(h, 4)
        assert job.verification == "perceptual"

    _run(tmp_path, check, audit_rate=1.0)


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
        assert new.audit_of == job.job_id  # linked to the committed original
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
