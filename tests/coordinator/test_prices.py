"""Paid tasks in the coordinator: the price list (per model and size, published at
GET /v1/prices, refused under the chain's MinTaskPrice), each committed task carrying its price,
the escrow checked against the operator's usable balance (503 insufficient_funds; commit batches
within the balance), receipts that show what was paid once the task settled (kept on disk, and
found in the events for a task the chain pruned while the coordinator was stopped), and miners'
minimum prices."""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from coordinator.engine import InsufficientFunds
from coordinator.model import AState, CState, JobStatus
from coordinator.prices import PriceError, PriceList, load_prices, parse_prices, validate_prices
from tests.coordinator.harness import DEPOSIT, MODELS, Harness, running, split
from tests.coordinator.test_api import _req
from tests.coordinator.test_engine import GOOD, SPEC, holder, make_live, rec, settle, work

CAI = 10**18
PRICES = PriceList(
    default=CAI // 10,
    models={"sd-turbo": CAI // 2},
    sizes={("sd-turbo", "16x16"): 2 * CAI, ("tiny", "16x16"): CAI // 5},
)


def _run(tmp_path: Path, check: Callable[[Harness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with running(
            tmp_path,
            run_chain=False,
            engine_kwargs={"prices": PRICES, "task_deposit": DEPOSIT},
            **kw,
        ) as h:
            await check(h)

    asyncio.run(main())


# ---- the price list ------------------------------------------------------------------------------


def test_prices_file_sets_defaults_models_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"default": "0.2", "models": {"tiny": 0.05, "sd-turbo": {"default": "1", "8x8": "0.5"}}}
        )
    )
    prices = load_prices(path, default=CAI // 10)
    assert prices.price_of("other", 8, 8) == CAI // 5  # the file's default, not --price
    assert prices.price_of("tiny", 512, 512) == CAI // 20  # a JSON number, read as a decimal
    assert prices.price_of("sd-turbo", 512, 512) == CAI
    assert prices.price_of("sd-turbo", 8, 8) == CAI // 2
    assert parse_prices({}, 7).price_of("tiny", 8, 8) == 7  # --price where the file says nothing
    assert prices.entries(["tiny", "sd-turbo"]) == [
        {"model": "tiny", "size": None, "price": str(CAI // 20), "price_cai": "0.05"},
        {"model": "sd-turbo", "size": None, "price": str(CAI), "price_cai": "1"},
        {"model": "sd-turbo", "size": "8x8", "price": str(CAI // 2), "price_cai": "0.5"},
    ]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "JSON object"),
        ({"cost": "1"}, "unknown key 'cost'"),
        ({"default": -1}, "non-negative"),
        ({"default": "0.1234567890123456789"}, "18 decimals"),
        ({"default": True}, "number of CAI"),
        ({"models": {"tiny": {"huge": "1"}}}, "'huge' is neither"),
        ({"models": ["tiny"]}, "'models' must map"),
    ],
)
def test_a_malformed_price_list_is_refused(obj: object, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        parse_prices(obj, CAI)


def test_prices_under_the_chains_minimum_are_refused() -> None:
    minimum = CAI // 100  # dev Tasks.MinTaskPrice
    validate_prices(PRICES, MODELS, minimum)
    cheap = dataclasses.replace(PRICES, sizes={**PRICES.sizes, ("tiny", "8x8"): minimum - 1})
    with pytest.raises(PriceError, match=r"model tiny size 8x8 is 0\.009999999999999999 CAI"):
        validate_prices(cheap, MODELS, minimum)
    unserved = dataclasses.replace(PRICES, models={"other": 1})
    validate_prices(unserved, MODELS, minimum)  # not a served model: never used


def test_decimal_json_numbers_are_exact() -> None:
    assert parse_prices({"default": decimal.Decimal("0.3")}, 0).default == 3 * CAI // 10


# ---- published and carried -----------------------------------------------------------------------


def test_prices_are_published_to_apps_without_a_key(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        status, body, _ = await _req("GET", h.url + "/v1/prices")
        assert status == 200
        assert (body["object"], body["unit"], body["decimals"]) == ("list", "planck", 18)
        assert body["default"] == {"price": str(CAI // 10), "price_cai": "0.1"}
        assert body["data"] == [
            {"model": "tiny", "size": None, "price": str(CAI // 10), "price_cai": "0.1"},
            {"model": "tiny", "size": "16x16", "price": str(CAI // 5), "price_cai": "0.2"},
            {"model": "sd-turbo", "size": None, "price": str(CAI // 2), "price_cai": "0.5"},
            {"model": "sd-turbo", "size": "16x16", "price": str(2 * CAI), "price_cai": "2"},
        ]
        status, doc, _ = await _req("GET", h.url + "/openapi.json")
        assert "/v1/prices" in doc["paths"]

    _run(tmp_path, check, api_keys=frozenset({"k"}))


def test_each_committed_task_carries_its_models_and_sizes_price(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        specs = [
            SPEC,  # tiny 8x8: the default
            dict(SPEC, width=16, height=16),  # tiny 16x16
            dict(SPEC, model="sd-turbo"),  # sd-turbo, any other size
            dict(SPEC, model="sd-turbo", width=16, height=16),
        ]
        jobs = await h.engine.submit(specs)
        assert [j.price for j in jobs] == [CAI // 10, CAI // 5, CAI // 2, 2 * CAI]
        await settle(h, 1)
        for job in jobs:
            assert h.chain.tasks[job.job_id].price == job.price  # what commit_tasks carried
        # the miner sees the price in its poll, the app in the task view
        r = rec(h, holder(h, jobs[3].job_id))
        status, body, _ = await _req("GET", h.url + "/v1/tasks/0x" + jobs[3].job_id.hex())
        assert (status, body["price"]) == (200, str(2 * CAI))
        (a,) = [a for a in await h.engine.poll(r, 8, 0) if a.job_id == jobs[3].job_id]
        assert a.price == 2 * CAI

    _run(tmp_path, check)


# ---- receipts: what was paid ---------------------------------------------------------------------


def paid(receipt: dict[str, Any]) -> tuple[str, ...]:
    return tuple(receipt[k] for k in ("price", "to_miner", "burned", "to_checkers", "refunded"))


@pytest.mark.parametrize("outcome", [None, "Verified", "Guilty"])
def test_the_receipt_shows_how_the_price_moved_once_settled(
    tmp_path: Path, outcome: str | None
) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        if outcome is not None:
            h.chain.check[job.job_id] = outcome
        await settle(h, 1)
        await work(h, holder(h, job.job_id), GOOD)
        await settle(h, 1)
        a = h.engine.attempts[job.job_id]
        assert paid(h.engine.receipt(a)) == (str(CAI // 10), *["pending"] * 4)
        await settle(h, 5)
        record = h.engine.load_job_record(job.job_id)
        assert record is not None
        receipt = h.engine.receipt(record[1][job.job_id])
        status = "Rejected" if outcome == "Guilty" else "Accepted"
        p = split(CAI // 10, status, checkers=0 if outcome is None else 1)
        assert paid(receipt) == tuple(
            str(v) for v in (CAI // 10, p.to_miner, p.burned, p.to_checkers, p.refunded)
        )
        if outcome is None:
            assert (receipt["to_miner"], receipt["burned"]) == (str(8 * CAI // 100), str(CAI // 50))
        assert receipt["settle_block"] == h.chain.tasks[job.job_id].settled_at
        assert h.engine.counters["payments_read"] == 1
        assert job.job_id not in h.engine.jobs  # closed once its payment is known

    _run(tmp_path, check)


def test_receipts_survive_a_restart_and_the_chains_pruning(tmp_path: Path) -> None:
    async def phase1(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        await work(h, holder(h, job.job_id), GOOD)
        await settle(h, 4)
        assert job.job_id not in h.engine.jobs
        for _ in range(110):  # the chain prunes the task RetentionBlocks after it settled
            h.chain.block()
        assert job.job_id not in h.chain.tasks
        phase1.job = job.job_id  # type: ignore[attr-defined]

    _run(tmp_path, phase1)

    async def phase2(h: Harness) -> None:
        job_id = phase1.job  # type: ignore[attr-defined]
        status, view, _ = await _req("GET", h.url + "/v1/tasks/0x" + job_id.hex())
        assert status == 200
        p = split(CAI // 10, "Accepted")
        assert paid(view["receipt"]) == tuple(
            str(v) for v in (CAI // 10, p.to_miner, p.burned, 0, 0)
        )
        assert view["receipt"]["verification"] == "unchecked"

    _run(tmp_path, phase2)


def test_a_task_pruned_while_the_coordinator_was_stopped_is_found_in_the_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped after its result was confirmed and before it saw it settle: the chain settled it
    and pruned it RetentionBlocks later; back, the coordinator reads its outcome and payment
    from the events instead of `Tasks.Tasks`."""

    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        await work(h, holder(h, job.job_id), GOOD, submit=True)
        h.chain.block()  # the result lands on chain, the delivery is confirmed
        a = h.engine.attempts[job.job_id]
        assert a.state is AState.CONFIRMED
        assert a.final_status is None  # the coordinator stops here
        while h.chain.tasks[job.job_id].settled_at is None:
            h.chain.block(offline=True)
        settled_at = h.chain.tasks[job.job_id].settled_at
        assert settled_at is not None
        while h.chain.head < settled_at + 105:
            h.chain.block(offline=True)
        assert job.job_id not in h.chain.tasks  # settled, then pruned
        for _ in range(30):  # back: 8 blocks of events searched per head
            h.chain.block()
        record = h.engine.load_job_record(job.job_id)
        assert record is not None
        a = record[1][job.job_id]
        assert (a.final_status, a.outcome, a.settle_block) == ("Accepted", "Unchecked", settled_at)
        p = split(CAI // 10, "Accepted")
        assert a.payment == p
        assert a.scan_from is None
        assert record[0].status is JobStatus.SUCCEEDED

    with caplog.at_level("WARNING", logger="coordinator.engine"):
        _run(tmp_path, check, task_timeout_blocks=20)
    assert any("left the chain's state" in r.getMessage() for r in caplog.records)


# ---- funds ---------------------------------------------------------------------------------------


def test_a_request_the_operator_cannot_escrow_is_503_and_changes_nothing(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        fee_reserve = h.engine.cfg.fee_reserve
        # room for one 0.1 CAI task (price and deposit), not two
        h.engine.set_funds(fee_reserve + CAI // 10 + DEPOSIT + CAI // 20)
        status, _, _ = await _req("POST", h.url + "/v1/tasks", body={"prompt": "a", "size": "8x8"})
        assert status == 202
        for path, extra in (("/v1/tasks", {}), ("/v1/images/generations", {"n": 1})):
            status, err, _ = await _req(
                "POST", h.url + path, body={"prompt": "b", "size": "8x8", **extra}
            )
            assert status == 503
            assert err["error"]["code"] == "insufficient_funds"
            assert err["error"]["type"] == "server_error"
            assert "0.11 CAI" in err["error"]["message"]  # what it needs
        assert len(h.engine.jobs) == 1
        assert h.engine.counters["refused_insufficient_funds"] == 2
        # the committed task's escrow is in the reserved balance now: the next head frees room
        await make_live(h)
        await settle(h, 1)
        (a,) = h.engine.attempts.values()
        assert a.commit is CState.COMMITTED
        h.engine.set_funds(fee_reserve + CAI // 10 + DEPOSIT)
        assert (await _req("POST", h.url + "/v1/tasks", body={"prompt": "c", "size": "8x8"}))[
            0
        ] == 202
        with pytest.raises(InsufficientFunds):
            await h.engine.submit([SPEC])

    _run(tmp_path, check)


def test_commit_batches_stay_within_the_operators_balance(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        jobs = await h.engine.submit([dict(SPEC, seed=i) for i in range(3)])
        await settle(h, 0)
        h.engine.set_funds(h.engine.cfg.fee_reserve + 2 * (CAI // 10 + DEPOSIT))
        items = h.engine.take_commits(h.chain.head, 10)
        assert len(items) == 2  # the third waits for refunds and returned deposits
        assert h.engine.counters["commits_short_of_funds"] == 1
        h.engine.commits_confirmed(items, h.chain.head)
        h.engine.set_funds(h.engine.cfg.fee_reserve + CAI // 10 + DEPOSIT)
        (last,) = h.engine.take_commits(h.chain.head, 10)
        assert {i.task_id for i in [*items, last]} == {j.job_id for j in jobs}

    _run(tmp_path, check)


# ---- miners' minimum prices ----------------------------------------------------------------------


def test_a_miner_that_refuses_a_price_gets_no_task_paying_less(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])  # 0.1 CAI
        await settle(h, 1)
        first = holder(h, job.job_id)
        r = rec(h, first)
        (a,) = await h.engine.poll(r, 8, 0)
        await h.engine.release(r, a.task_id, reason="too cheap", min_price=CAI // 5)
        assert h.engine.miners[r.staker].min_price == CAI // 5
        assert h.engine.miners[r.staker].stats["refused_price"] == 1
        assert holder(h, job.job_id) != first  # went to another miner
        for _ in range(6):
            (other,) = await h.engine.submit([dict(SPEC, seed=9)])
            assert h.engine.attempts[other.job_id].miner != r.staker
        (dear,) = await h.engine.submit([dict(SPEC, width=16, height=16)])  # 0.2 CAI: taken
        assert dear.price == CAI // 5

    _run(tmp_path, check, n_miners=3)


def test_a_poll_stating_a_minimum_hands_cheaper_queued_tasks_to_others(tmp_path: Path) -> None:
    async def check(h: Harness) -> None:
        await make_live(h)
        jobs = await h.engine.submit([dict(SPEC, seed=i) for i in range(6)])
        await settle(h, 1)
        r = rec(h, 0)
        queued = [j.job_id for j in jobs if h.engine.attempts[j.job_id].miner == r.staker]
        assert queued  # seeded draw: miner 0 holds some
        assert await h.engine.poll(r, 8, 0, min_price=CAI) == []
        for job_id in queued:
            assert h.engine.attempts[job_id].state is AState.RELEASED
            assert holder(h, job_id) != 0

    _run(tmp_path, check)


def test_miner_release_reason_over_http(tmp_path: Path) -> None:
    from chainclient.signing import sign_request

    async def check(h: Harness) -> None:
        await make_live(h)
        (job,) = await h.engine.submit([SPEC])
        await settle(h, 1)
        i = holder(h, job.job_id)
        await h.engine.poll(rec(h, i), 8, 0)
        body = json.dumps({"reason": "under my minimum", "min_price": str(CAI)}).encode()
        path = "/v1/miner/release/0x" + job.job_id.hex()
        headers = sign_request(h.keys[i], "POST", path, body)
        status, answer, _ = await _req("POST", h.url + path, raw=body, headers=headers)
        assert (status, answer) == (200, {"released": True})
        assert h.engine.miners[rec(h, i).staker].min_price == CAI

    _run(tmp_path, check)
