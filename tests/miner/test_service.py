"""MinerService against fake coordinators and a fake chain: the whole loop (poll, solve, upload,
commit), discovery from the registry, failover, and stopping mid-task (finished or released,
never lost)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair

from chain.hashing import blake2_256
from chain.taskproto import result_commitment
from chainclient.registry import Registration
from miner import MinerError
from miner.chain import NotRegistered
from miner.client import Backoff
from miner.service import MinerConfig, MinerService
from miner.solver import PatternSolver, Solver
from tests.miner.fakes import FailingSolver, FakeChain, FakeCoordinator, SlowSolver, make_spec

FAST = Backoff(base_s=0.02, factor=2.0, cap_s=0.2, jitter=0.5)


def config(*urls: str, **kw: Any) -> MinerConfig:
    base: dict[str, Any] = {
        "coordinator_urls": tuple(urls),
        "poll_wait_s": 0.3,
        "request_timeout_s": 2.0,
        "commit_poll_s": 0.02,
        "backoff": FAST,
        "refresh_interval_s": 0.2,
    }
    base.update(kw)
    return MinerConfig(**base)


async def wait_for(what: str, probe: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def committed_on_chain(chain: FakeChain, coord: FakeCoordinator, task_id: bytes) -> bool:
    """The task's commitment on chain is opened by what the coordinator received."""
    state = chain.states.get(task_id)
    task = coord.tasks[task_id]
    if state is None or state.status != "Submitted" or task.result is None:
        return False
    h = {k.lower(): v for k, v in (task.headers or {}).items()}
    opening = [
        bytes.fromhex(h[name][2:])
        for name in ("x-cuckoo-device", "x-cuckoo-sketch", "x-cuckoo-salt")
    ]
    expected = result_commitment(chain.staker_key, task_id, blake2_256(task.result), *opening)
    return state.commitment == expected


async def start(service: MinerService) -> asyncio.Task[None]:
    runner = asyncio.create_task(service.run())
    await wait_for("ready", lambda: service.is_ready or runner.done())
    if runner.done():
        await runner
    return runner


def test_tasks_are_solved_uploaded_and_committed(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    chain = FakeChain(operator)
    ids = [coordinator.add_task(make_spec(seed=i), deadline_block=10_000) for i in range(4)]
    for i, t in enumerate(ids):
        chain.commit(t, make_spec(seed=i), 10_000)

    async def scenario() -> MinerService:
        service = MinerService(config(coordinator.url), operator, PatternSolver(), chain)
        runner = await start(service)
        await wait_for(
            "all committed", lambda: all(committed_on_chain(chain, coordinator, t) for t in ids)
        )
        service.request_stop()
        await asyncio.wait_for(runner, 10)
        return service

    service = asyncio.run(scenario())
    for i, t in enumerate(ids):  # the image is the pattern solver's for that spec
        assert coordinator.tasks[t].result == PatternSolver().solve(make_spec(seed=i))
    assert service.stats.uploaded == 4
    assert service.stats.released == 0
    assert service.committer is not None
    assert service.committer.committed == 4


def test_result_is_committed_once_the_coordinator_commits_the_task(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    """The coordinator may hand out a task before its own commit lands on chain."""
    chain = FakeChain(operator)
    task_id = coordinator.add_task()

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, PatternSolver(), chain)
        runner = await start(service)
        await wait_for("uploaded", lambda: coordinator.tasks[task_id].result is not None)
        await asyncio.sleep(0.3)  # several blocks: nothing to commit yet
        assert chain.batches == []
        assert chain.failures == []
        chain.commit(task_id, make_spec(), 10_000)
        await wait_for("committed", lambda: committed_on_chain(chain, coordinator, task_id))
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())


def coordinator_record(tag: bytes, name: str, url: str, status: str, stake: int) -> Registration:
    return Registration(tag * 32, tag.lower() * 32, status, stake, 0, name=name, url=url)


def test_discovers_active_coordinators_on_chain(
    operator: Keypair, coordinator_factory: Callable[..., FakeCoordinator]
) -> None:
    active, inactive = coordinator_factory(), coordinator_factory()
    active_task = active.add_task()
    inactive.add_task()
    records = [
        coordinator_record(b"A", "a", active.url, "Active", 2_000_000),
        coordinator_record(b"B", "b", inactive.url, "Inactive", 9_000_000),
        coordinator_record(b"C", "c", "ftp://nope", "Active", 9_000_000),
    ]
    chain = FakeChain(operator, coordinators=records)
    chain.commit(active_task, make_spec(), 10_000)

    async def scenario() -> None:
        service = MinerService(config(), operator, PatternSolver(), chain)
        runner = await start(service)
        await wait_for("committed", lambda: committed_on_chain(chain, active, active_task))
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert inactive.polls == 0


def test_fails_over_and_comes_back(
    operator: Keypair, coordinator_factory: Callable[..., FakeCoordinator]
) -> None:
    a, b = coordinator_factory(), coordinator_factory()
    a.down = True
    chain = FakeChain(operator)
    first = b.add_task()
    chain.commit(first, make_spec(), 10_000)

    async def scenario() -> None:
        service = MinerService(config(a.url, b.url), operator, PatternSolver(), chain)
        runner = await start(service)
        await wait_for("b's task", lambda: committed_on_chain(chain, b, first))
        b.down, a.down = True, False  # now b fails and a recovers
        second = a.add_task(make_spec(seed=99))
        chain.commit(second, make_spec(seed=99), 10_000)
        await wait_for("a's task", lambda: committed_on_chain(chain, a, second), limit_s=15)
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())


def test_stop_mid_task_finishes_it(operator: Keypair, coordinator: FakeCoordinator) -> None:
    chain = FakeChain(operator)
    solver = SlowSolver()
    task_id = coordinator.add_task()
    chain.commit(task_id, make_spec(), 10_000)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, solver, chain)
        runner = await start(service)
        await wait_for("solving", solver.started.is_set)
        service.request_stop()
        await asyncio.sleep(0.3)
        assert not runner.done()  # waits for the task in hand
        solver.gate.set()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert committed_on_chain(chain, coordinator, task_id)  # uploaded and committed before exit
    assert coordinator.releases == []


def test_stop_mid_task_releases_it_after_the_drain_timeout(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    chain = FakeChain(operator)
    solver = SlowSolver()
    task_id = coordinator.add_task()

    async def scenario() -> None:
        service = MinerService(
            config(coordinator.url, drain_timeout_s=0.2), operator, solver, chain
        )
        runner = await start(service)
        await wait_for("solving", solver.started.is_set)
        service.request_stop()
        await asyncio.wait_for(runner, 5)

    try:
        asyncio.run(scenario())
    finally:
        solver.gate.set()
    assert coordinator.releases == [task_id]
    assert coordinator.tasks[task_id].result is None
    assert list(coordinator.queue) == [task_id]


def test_stop_releases_tasks_not_started(operator: Keypair, coordinator: FakeCoordinator) -> None:
    chain = FakeChain(operator)
    solver = SlowSolver()
    ids = [coordinator.add_task(make_spec(seed=i)) for i in range(3)]
    for i, t in enumerate(ids):
        chain.commit(t, make_spec(seed=i), 10_000)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url, max_tasks=3), operator, solver, chain)
        runner = await start(service)
        await wait_for("solving", solver.started.is_set)
        service.request_stop()
        solver.gate.set()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert committed_on_chain(chain, coordinator, ids[0])
    assert sorted(coordinator.releases) == sorted(ids[1:])
    for t in ids:  # never lost: done, or back in the coordinator's queue
        assert coordinator.tasks[t].result is not None or t in coordinator.queue


@pytest.mark.parametrize("solver", [FailingSolver(), None])
def test_bad_task_or_solver_failure_is_released(
    operator: Keypair, coordinator: FakeCoordinator, solver: Solver | None
) -> None:
    chain = FakeChain(operator)
    if solver is None:  # a coordinator whose spec hash does not match its spec
        task_id = coordinator.add_task(claimed_spec_hash=b"\x01" * 32)
        solver = PatternSolver()
    else:
        task_id = coordinator.add_task()

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, solver, chain)
        runner = await start(service)
        await wait_for("released", lambda: task_id in coordinator.releases)
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert coordinator.tasks[task_id].result is None


def test_task_past_its_deadline_is_released_unsolved(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    chain = FakeChain(operator, block_s=None)
    chain.advance(100)
    solver = SlowSolver(delay_s=0.01)
    task_id = coordinator.add_task(deadline_block=50)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, solver, chain)
        runner = await start(service)
        await wait_for("released", lambda: task_id in coordinator.releases)
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert not solver.started.is_set()


def test_unregistered_or_suspended_miner_does_not_start(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    async def scenario(chain: FakeChain) -> None:
        await MinerService(config(coordinator.url), operator, PatternSolver(), chain).run()

    with pytest.raises(NotRegistered):
        asyncio.run(scenario(FakeChain(operator, registered=False)))
    with pytest.raises(MinerError, match="suspended"):
        asyncio.run(scenario(FakeChain(operator, status="Suspended")))
    assert coordinator.polls == 0


def test_status_server_reports_health(
    operator: Keypair, coordinator: FakeCoordinator, tmp_path: Path
) -> None:
    chain = FakeChain(operator)

    def get(port: int) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    async def scenario() -> None:
        service = MinerService(
            config(coordinator.url, status_port=0, data_dir=tmp_path / "data"),
            operator,
            PatternSolver(),
            chain,
        )
        runner = await start(service)
        assert service.status_port
        status, body = await asyncio.to_thread(get, service.status_port)
        assert status == 200
        assert body["status"] == "ready"
        assert body["operator"] == operator.ss58_address
        assert body["staker"] == chain.staker.ss58_address
        assert body["coordinators"][0]["url"] == coordinator.url
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())


def test_stop_during_a_long_poll_releases_what_it_brings(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    """The poll in flight is not abandoned (the coordinator could hand it tasks that nobody
    would then hold); a task it brings after the stop goes back to the coordinator."""
    chain = FakeChain(operator)
    solver = SlowSolver(delay_s=0.0)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url, poll_wait_s=2.0), operator, solver, chain)
        runner = await start(service)
        await wait_for("a poll in flight", lambda: coordinator.polls > 0)
        service.request_stop()
        await asyncio.sleep(0.2)
        task_id = coordinator.add_task()  # handed to the poll still open
        await asyncio.wait_for(runner, 10)
        assert coordinator.releases == [task_id]
        assert list(coordinator.queue) == [task_id]

    asyncio.run(scenario())
    assert not solver.started.is_set()


def test_a_task_delivered_again_is_not_solved_twice(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    """A restarted coordinator may hand out a task the miner already uploaded."""
    chain = FakeChain(operator)
    calls: list[int] = []

    class Counting(PatternSolver):
        def solve(self, spec: dict[str, Any]) -> bytes:
            calls.append(1)
            return super().solve(spec)

    task_id = coordinator.add_task()
    chain.commit(task_id, make_spec(), 10_000)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, Counting(), chain)
        runner = await start(service)
        await wait_for("committed", lambda: committed_on_chain(chain, coordinator, task_id))
        coordinator.queue.append(task_id)  # delivered again
        await wait_for("re-delivered", lambda: not coordinator.queue)
        await asyncio.sleep(0.2)
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert calls == [1]
    assert coordinator.status_of("/results/") == [200]


# ---- prices (--min-price) ------------------------------------------------------------------------


def test_a_task_paying_under_min_price_is_handed_back_unsolved_with_the_reason(
    operator: Keypair, coordinator: FakeCoordinator, caplog: pytest.LogCaptureFixture
) -> None:
    chain = FakeChain(operator)
    solver = SlowSolver(delay_s=0.01)
    cheap = coordinator.add_task(make_spec(seed=1), price=10**16)  # 0.01 CAI
    unstated = coordinator.add_task(make_spec(seed=2), price=None)
    fair = coordinator.add_task(make_spec(seed=3), price=10**17)  # 0.1 CAI
    chain.commit(fair, make_spec(seed=3), 10_000, price=10**17)

    async def scenario() -> MinerService:
        service = MinerService(
            config(coordinator.url, min_price=5 * 10**16), operator, solver, chain
        )
        runner = await start(service)
        await wait_for(
            "the fair task committed",
            lambda: fair in chain.states and (chain.states[fair].status == "Submitted"),
        )
        await wait_for("both handed back", lambda: {cheap, unstated} <= set(coordinator.releases))
        service.request_stop()
        await asyncio.wait_for(runner, 10)
        return service

    with caplog.at_level("WARNING", logger="miner.service"):
        service = asyncio.run(scenario())
    assert coordinator.tasks[cheap].result is None
    assert coordinator.tasks[unstated].result is None
    assert service.stats.refused_price >= 2
    refusals = [r.getMessage() for r in caplog.records if "refusing task" in r.getMessage()]
    assert any("0x" + cheap.hex() in m and "0.01 CAI" in m and "0.05 CAI" in m for m in refusals)
    assert any("0x" + unstated.hex() in m and "not stated" in m for m in refusals)
    # the coordinator is told why, and the least this miner takes
    said = [json.loads(b) for b in coordinator.release_bodies]
    assert {"min_price": str(5 * 10**16)}.items() <= said[0].items()
    assert "--min-price" in said[0]["reason"]
    # and the polls ask for nothing paying less
    assert coordinator.poll_bodies[0]["min_price"] == str(5 * 10**16)


def test_a_task_whose_on_chain_price_is_under_min_price_is_not_delivered(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    """A coordinator that states a price above what it escrowed on chain gets no image."""
    chain = FakeChain(operator)
    liar = coordinator.add_task(make_spec(seed=4), price=10**18)  # says 1 CAI
    chain.commit(liar, make_spec(seed=4), 10_000, price=10**16)  # escrows 0.01 CAI

    async def scenario() -> MinerService:
        service = MinerService(
            config(coordinator.url, min_price=10**17), operator, PatternSolver(), chain
        )
        runner = await start(service)
        await wait_for("handed back", lambda: liar in coordinator.releases)
        service.request_stop()
        await asyncio.wait_for(runner, 10)
        return service

    service = asyncio.run(scenario())
    assert coordinator.tasks[liar].result is None
    assert chain.batches == []
    assert service.stats.refused_price >= 1
    assert "on-chain price (0.01 CAI)" in json.loads(coordinator.release_bodies[0])["reason"]


def test_without_min_price_every_task_is_taken(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    chain = FakeChain(operator)
    task_id = coordinator.add_task(price=None)
    chain.commit(task_id, make_spec(), 10_000, price=1)

    async def scenario() -> None:
        service = MinerService(config(coordinator.url), operator, PatternSolver(), chain)
        runner = await start(service)
        await wait_for("committed", lambda: committed_on_chain(chain, coordinator, task_id))
        service.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert "min_price" not in coordinator.poll_bodies[0]
