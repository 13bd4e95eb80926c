"""The coordinator protocol client: long-poll, upload, release, retries with backoff and
failover, against fake coordinators that check every request like the real one."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from substrateinterface import Keypair

from chain.taskproto import device_hash, result_hash, spec_hash
from chainclient.sketch import image_sketch
from miner.client import (
    Assignment,
    Backoff,
    CoordinatorClient,
    CoordinatorError,
    CoordinatorPool,
    Endpoint,
    NoCoordinator,
    TaskRefused,
    parse_assignment,
)
from miner.solver import PatternSolver
from tests.miner.fakes import PRICE, FakeCoordinator, make_spec

FAST = Backoff(base_s=0.01, factor=2.0, cap_s=0.05, jitter=0.5)
FP = PatternSolver().fingerprint()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def solved(task: Assignment) -> tuple[bytes, dict[str, Any]]:
    png = PatternSolver().solve(task.spec)
    return png, {
        "result_hash": result_hash(png),
        "device_hash": device_hash(FP),
        "sketch": image_sketch(png),
        "salt": b"\x5a" * 32,
        "device_info": FP,
    }


def test_parse_assignment_checks_fields() -> None:
    spec = make_spec()
    good = {
        "task_id": "0x" + "11" * 32,
        "spec": spec,
        "spec_hash": "0x" + spec_hash(spec).hex(),
        "deadline_block": 9,
    }
    a = parse_assignment(good, "http://c")
    assert a.task_id == b"\x11" * 32
    assert a.deadline_block == 9
    assert a.coordinator == "http://c"
    assert a.price is None  # a coordinator that does not state prices
    priced = parse_assignment({**good, "price": str(2**128 - 1)}, "http://c")
    assert priced.price == 2**128 - 1
    for bad in (
        {**good, "task_id": "0x11"},
        {**good, "spec": "x"},
        {**good, "deadline_block": "9"},
        {**good, "deadline_block": True},
        {k: v for k, v in good.items() if k != "spec_hash"},
        {**good, "price": 100},
        {**good, "price": "-1"},
        {**good, "price": "0.1"},
    ):
        with pytest.raises(ValueError, match=r"task\.|hex|32 bytes"):
            parse_assignment(bad, "http://c")


# ---- one coordinator -----------------------------------------------------------------------------


def test_poll_upload_roundtrip_is_accepted_by_a_checking_coordinator(
    operator: Keypair, coordinator_factory: Callable[..., FakeCoordinator]
) -> None:
    coord = coordinator_factory(prefix="/base")  # signed path includes the URL's base path
    task_id = coord.add_task(deadline_block=77)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = CoordinatorClient(coord.url, operator, session)
            (task,) = await client.poll(1, 1.0)
            assert task.task_id == task_id
            assert task.deadline_block == 77
            assert spec_hash(task.spec) == task.spec_hash
            png, extra = solved(task)
            await client.upload(task.task_id, png, **extra)
            with pytest.raises(TaskRefused) as refused:  # a second upload conflicts
                await client.upload(task.task_id, png, **extra)
            assert refused.value.status == 409

    run(scenario())
    assert coord.tasks[task_id].result is not None
    assert coord.status_of("/results/") == [200, 409]


def test_poll_waits_and_answers_empty(operator: Keypair, coordinator: FakeCoordinator) -> None:
    async def scenario() -> float:
        async with aiohttp.ClientSession() as session:
            t0 = time.monotonic()
            assert await CoordinatorClient(coordinator.url, operator, session).poll(1, 0.3) == []
            return time.monotonic() - t0

    assert run(scenario()) >= 0.3
    assert coordinator.status_of("/poll") == [204]


def test_poll_returns_task_added_during_long_poll(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    async def scenario() -> list[Assignment]:
        async with aiohttp.ClientSession() as session:
            client = CoordinatorClient(coordinator.url, operator, session)
            poll = asyncio.create_task(client.poll(2, 5.0))
            await asyncio.sleep(0.2)
            coordinator.add_task()
            return await poll

    t0 = time.monotonic()
    assert len(run(scenario())) == 1
    assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize(
    ("tamper", "status"),
    [("result_hash", 422), ("device_hash", 422), ("unknown", 404)],
)
def test_upload_refusals_are_final(
    operator: Keypair, coordinator: FakeCoordinator, tamper: str, status: int
) -> None:
    coordinator.add_task()

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = CoordinatorClient(coordinator.url, operator, session)
            (task,) = await client.poll(1, 1.0)
            png, extra = solved(task)
            task_id = task.task_id
            if tamper == "unknown":
                task_id = b"\x99" * 32
            else:
                extra[tamper] = b"\x00" * 32
            with pytest.raises(TaskRefused) as refused:
                await client.upload(task_id, png, **extra)
            assert refused.value.status == status

    run(scenario())


def test_upload_to_a_task_held_by_another_miner_conflicts(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    coordinator.add_task()
    other = Keypair.create_from_uri("//OtherMiner")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            (task,) = await CoordinatorClient(coordinator.url, other, session).poll(1, 1.0)
            png, extra = solved(task)
            with pytest.raises(TaskRefused) as refused:
                await CoordinatorClient(coordinator.url, operator, session).upload(
                    task.task_id, png, **extra
                )
            assert refused.value.status == 409

    run(scenario())


def test_release_hands_the_task_back(operator: Keypair, coordinator: FakeCoordinator) -> None:
    task_id = coordinator.add_task()

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = CoordinatorClient(coordinator.url, operator, session)
            (task,) = await client.poll(1, 1.0)
            assert task.price == PRICE
            await client.release(task.task_id)
            (again,) = await client.poll(1, 1.0)
            assert again.task_id == task_id
            await client.release(task.task_id, reason="too cheap", min_price=10**18)
            assert await client.poll(1, 0.1, min_price=10**18) == []

    run(scenario())
    assert coordinator.releases == [task_id, task_id]
    assert coordinator.release_bodies[0] == b""
    assert json.loads(coordinator.release_bodies[1]) == {
        "reason": "too cheap",
        "min_price": str(10**18),
    }
    assert coordinator.poll_bodies[-1]["min_price"] == str(10**18)


def test_unregistered_operator_is_refused(
    coordinator_factory: Callable[..., FakeCoordinator], operator: Keypair
) -> None:
    coord = coordinator_factory(allowed_operators={"5Nobody"})

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(CoordinatorError) as err:
                await CoordinatorClient(coord.url, operator, session).poll(1, 0.1)
            assert err.value.status == 403

    run(scenario())


def test_request_has_a_deadline(operator: Keypair, coordinator: FakeCoordinator) -> None:
    coordinator.hang_s = 1.0

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = CoordinatorClient(coordinator.url, operator, session, request_timeout_s=0.3)
            t0 = time.monotonic()
            with pytest.raises(CoordinatorError, match="no answer"):
                await client.poll(1, 0.2)
            assert time.monotonic() - t0 < 2.0

    run(scenario())


# ---- pool: backoff, retries, failover ------------------------------------------------------------


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(base_s=1.0, factor=2.0, cap_s=8.0, jitter=0.5)
    rng = random.Random(1)
    assert b.delay(0, rng) == 0.0
    for failures, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [b.delay(failures, rng) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal * 0.3  # jittered


def upload_after_failures(
    operator: Keypair, coordinator: FakeCoordinator, *, fail: str, times: int, attempts: int
) -> None:
    """Poll one task, make the coordinator refuse the next `times` uploads (`fail` is the fake's
    counter: `upload_fail_next` answers 503, `forbid_next` 403), then upload."""
    coordinator.add_task()

    async def scenario() -> None:
        pool = CoordinatorPool(operator, [Endpoint(coordinator.url)], backoff=FAST)
        try:
            (task,) = await pool.poll(1, 1.0)
            png, extra = solved(task)
            setattr(coordinator, fail, times)
            await pool.upload(task, png, **extra, attempts=attempts)
        finally:
            await pool.close()

    run(scenario())


def test_upload_retries_transient_failures(operator: Keypair, coordinator: FakeCoordinator) -> None:
    upload_after_failures(operator, coordinator, fail="upload_fail_next", times=2, attempts=5)
    assert coordinator.status_of("/results/") == [503, 503, 200]


def test_upload_retries_a_coordinator_that_does_not_know_us_yet(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    """A restarted coordinator answers 403 until it has read the registry: not final."""
    upload_after_failures(operator, coordinator, fail="forbid_next", times=2, attempts=5)
    assert coordinator.status_of("/results/") == [403, 403, 200]


def test_upload_gives_up_after_its_attempts(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    with pytest.raises(CoordinatorError):
        upload_after_failures(operator, coordinator, fail="upload_fail_next", times=10, attempts=3)
    assert coordinator.status_of("/results/") == [503, 503, 503]


def test_upload_does_not_retry_a_refusal(operator: Keypair, coordinator: FakeCoordinator) -> None:
    coordinator.add_task()

    async def scenario() -> None:
        pool = CoordinatorPool(operator, [Endpoint(coordinator.url)], backoff=FAST)
        try:
            (task,) = await pool.poll(1, 1.0)
            png, extra = solved(task)
            extra["result_hash"] = b"\x01" * 32
            with pytest.raises(TaskRefused):
                await pool.upload(task, png, **extra, attempts=5)
        finally:
            await pool.close()

    run(scenario())
    assert coordinator.status_of("/results/") == [422]


def test_poll_fails_over_to_a_live_coordinator(
    operator: Keypair, coordinator_factory: Callable[..., FakeCoordinator]
) -> None:
    live = coordinator_factory()
    broken = coordinator_factory()
    broken.down = True
    live.add_task()
    dead = dead_url()

    async def scenario() -> list[Assignment]:
        # the down ones carry nearly all the weight, so they are tried first
        pool = CoordinatorPool(
            operator,
            [Endpoint(dead, 10**6), Endpoint(broken.url, 10**6), Endpoint(live.url, 1)],
            backoff=FAST,
            rng=random.Random(3),
        )
        try:
            return await pool.poll(1, 0.5)
        finally:
            await pool.close()

    (task,) = run(scenario())
    assert task.coordinator == live.url
    assert broken.status_of("/poll") == [] or broken.status_of("/poll") == [503]


def test_poll_backs_off_a_failing_coordinator_then_retries_it(
    operator: Keypair, coordinator: FakeCoordinator
) -> None:
    now = [100.0]
    coordinator.down = True

    async def scenario() -> None:
        pool = CoordinatorPool(
            operator,
            [Endpoint(coordinator.url)],
            backoff=Backoff(base_s=2.0, factor=2.0, cap_s=60.0, jitter=0.0),
            clock=lambda: now[0],
        )
        try:
            for expected_wait in (2.0, 4.0, 8.0):
                with pytest.raises(NoCoordinator) as no:
                    await pool.poll(1, 0.1)
                assert no.value.retry_in_s == pytest.approx(expected_wait)
                # while backing off it is not contacted at all
                with pytest.raises(NoCoordinator, match="backing off"):
                    await pool.poll(1, 0.1)
                now[0] += expected_wait
            coordinator.down = False
            coordinator.add_task()
            assert len(await pool.poll(1, 0.5)) == 1
            assert pool.health()[0]["failures"] == 0  # success resets the backoff
        finally:
            await pool.close()

    run(scenario())
    assert coordinator.status_of("/poll") == [503, 503, 503, 200]


def test_poll_choice_follows_stake_weights(operator: Keypair) -> None:
    pool = CoordinatorPool(
        operator,
        [Endpoint("http://a.example", 1), Endpoint("http://b.example", 3)],
        rng=random.Random(7),
    )
    firsts = Counter(
        pool._weighted_order(["http://a.example", "http://b.example"])[0] for _ in range(4000)
    )
    assert 0.70 < firsts["http://b.example"] / 4000 < 0.80


def test_no_coordinator_known(operator: Keypair) -> None:
    async def scenario() -> None:
        pool = CoordinatorPool(operator, [])
        with pytest.raises(NoCoordinator):
            await pool.poll(1, 0.1)
        await pool.close()

    run(scenario())


def test_connection_drop_is_retried(operator: Keypair, coordinator: FakeCoordinator) -> None:
    coordinator.add_task()

    async def scenario() -> None:
        pool = CoordinatorPool(operator, [Endpoint(coordinator.url)], backoff=FAST)
        try:
            (task,) = await pool.poll(1, 1.0)
            png, extra = solved(task)
            coordinator.fail_status, coordinator.fail_next = 0, 1
            await pool.upload(task, png, **extra, attempts=3)
        finally:
            await pool.close()

    run(scenario())
    assert coordinator.tasks[next(iter(coordinator.tasks))].result is not None
