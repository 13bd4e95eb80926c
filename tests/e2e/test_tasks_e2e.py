"""Tasks end to end: a dev node, a coordinator and miners as processes on loopback.

(a) an app's image request returns images whose receipts point at the blocks holding the task's
    commitment, the miner's result and the settlement, and show what the task paid as the
    chain's TaskPaid has it (integration + slow: the default run);
(b) checked work (docs/verification.md), with the chain's check rate raised to 100%: an honest
    result is re-run by a checker the chain draws and ends Verified; a miner whose solver alters
    its images is found Guilty by the checkers and its InvalidResult slash is queued;
(c) a miner that goes silent (SIGSTOP) has its tasks reassigned and completed by another;
(d) a coordinator restart (SIGTERM, start again on the same data dir) loses no accepted task;
(e) prices: the coordinator's list reaches apps (GET /v1/prices), each task's price its on-chain
    record and receipt, and a miner whose --min-price is above a task's price never works on it;
and an abandoned long-poll must not swallow tasks (the coordinator notices its miner left).

Actors: coordinator //Charlie (2,000,000 CAI, operator //Charlie//operator), miners //Dave,
//Eve (and //Bob, //Ferdie in (b)), each bonding 25,000 CAI with operator //<name>//operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from substrateinterface import Keypair

from chainclient.signing import sign_request
from miner.solver import PatternSolver
from tests.e2e.conftest import Net, http, png_of, poll_until
from tests.miner.chainkit import CAI

PERBILL = 10**9
FERDIE_VOTE = 1_000_000 * CAI
PRICE = CAI // 10  # the coordinator's default price
BURN_SHARE = 200_000_000  # dev Tasks.BurnShare (Perbill)
PAYMENT = ("to_miner", "burned", "to_checkers", "refunded")


def h(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


def check_receipt_on_chain(net: Net, receipt: dict[str, Any], png: bytes) -> dict[str, Any]:
    """The receipt's blocks hold the commitment, the result and the settlement of its task, and
    the chain's result hash is the image's."""
    task_id_hex = receipt["task_id"]
    task_id = h(task_id_hex)
    task = net.kit.task(task_id)
    assert task is not None, f"task {receipt['task_id']} is not on chain"
    assert task["status"] == "Accepted", task
    assert task["miner"] == receipt["miner"]
    assert task["commitment"] is not None
    assert (task["committed_at"], task["submitted_at"], task["settled_at"]) == (
        receipt["commit_block"],
        receipt["result_block"],
        receipt["settle_block"],
    ), f"receipt {receipt} vs chain {task}"

    def events_at(block: int, name: str) -> list[Any]:
        return [a for _, n, a in net.kit.events(block, block) if n == name]

    committed = events_at(task["committed_at"], "Tasks.TaskCommitted")
    assert any(e["task_id"] == receipt["task_id"] for e in committed)
    submitted = events_at(task["submitted_at"], "Tasks.ResultSubmitted")
    assert any(
        e["task_id"] == receipt["task_id"] and e["commitment"] == task["commitment"]
        for e in submitted
    )
    settled = events_at(task["settled_at"], "Tasks.TaskSettled")
    assert {"task_id": receipt["task_id"], "status": "Accepted", "outcome": task["outcome"]} in (
        settled
    )
    # what it paid: the price escrowed at commit, moved as the chain's TaskPaid says
    assert int(receipt["price"]) == task["price"] == PRICE
    (paid,) = [
        e for e in events_at(task["settled_at"], "Tasks.TaskPaid") if e["task_id"] == task_id_hex
    ]
    assert {k: receipt[k] for k in PAYMENT} == {k: str(paid[k]) for k in PAYMENT}
    assert paid["miner"] == receipt["miner"]
    share = PRICE * BURN_SHARE // PERBILL
    assert int(receipt["to_miner"]) == PRICE - share  # accepted: the miner gets 80%
    assert int(receipt["burned"]) + int(receipt["to_checkers"]) == share
    assert receipt["refunded"] == "0"
    return task


# ---- (a) -----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_app_request_returns_images_with_receipts_on_chain(net_factory: Callable[..., Net]) -> None:
    net = net_factory(verification={"checkRate": 0})  # no checks: (b) has them
    net.register(["Dave", "Eve"])
    net.start_coordinator(task_timeout_blocks=40)
    net.start_miner("Dave")  # told the coordinator's URL
    net.start_miner("Eve", discover=True)  # finds it in the chain registry
    net.wait_miners_live(2)

    body = net.generate("a lighthouse at dusk", n=2, seed=42)
    assert len(body["data"]) == 2
    miners = {net.actors[n].staker.ss58_address for n in ("Dave", "Eve")}
    seen_tasks = set()
    for item in body["data"]:
        png = png_of(item)
        receipt = item["receipt"]
        assert receipt["miner"] in miners
        assert receipt["verification"] == "pending"  # accepted early, not final yet
        view = net.wait_settled(receipt["task_id"])
        assert view["receipt"]["verification"] == "unchecked"
        assert view["status"] == "succeeded"
        # the image is the pattern solver's for exactly the spec the coordinator committed
        assert png == PatternSolver().solve(view["spec"])
        assert net.task_image(receipt["task_id"]) == png
        check_receipt_on_chain(net, view["receipt"], png)
        seen_tasks.add(receipt["task_id"])
    assert len(seen_tasks) == 2
    for name in ("Dave", "Eve"):
        status, health = net.miners[name].health()
        assert status == 200
        assert health["last_chain_error"] == ""
    # SIGTERM: a clean stop with nothing in hand, exit status 0
    for name in ("Dave", "Eve"):
        assert net.miners[name].daemon.stop() == 0, net.miners[name].daemon.log_tail()


# ---- (b) -----------------------------------------------------------------------------------------


ENGINES = {
    # engine: (the honest miners' --solver, the cheater's --solver, its environment)
    "pattern": ("pattern", "tests.miner.cheating:CheatingSolver", {}),
    "diffusers": (
        "diffusers",
        "tests.miner.cheating:CheatingDiffusersSolver",
        {"CUCKOO_MINER_MODEL": "tiny", "CUCKOO_MINER_DEVICE": "cpu"},
    ),
}
TERMINAL = ("unchecked", "verified", "upheld", "guilty")


@pytest.mark.e2e
@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_checked_work_verifies_honest_results_and_finds_a_faker_guilty(
    net_factory: Callable[..., Net], engine: str
) -> None:
    if engine == "diffusers":
        pytest.importorskip("diffusers", reason="the miner engine needs `pip install -e .[miner]`")
    honest, cheater, cheater_env = ENGINES[engine]
    net = net_factory(verification={"checkRate": PERBILL})  # every result is checked
    names = ["Dave", "Eve", "Bob", "Ferdie"]
    net.register(names)
    kit = net.kit
    start = kit.best()
    dave = net.actors["Dave"].staker.ss58_address
    net.start_coordinator(task_timeout_blocks=80)
    # Dave fakes every image it returns (its own tasks, and the ones it is drawn to check); the
    # other three are honest
    cheater_env = {**cheater_env, "CUCKOO_MINER_DATA": str(net.tmp / "miner-Dave")}
    net.start_miner("Dave", solver=cheater, env={"CUCKOO_TEST_CHEAT": "1", **cheater_env})
    for name in names[1:]:
        net.start_miner(name, solver=honest)
    net.wait_miners_live(4)

    outcomes: dict[str, tuple[str, str]] = {}  # task id -> (miner, verification)
    views: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for batch in range(3):  # equal stakes: Dave is assigned about a quarter of the tasks
        ids = [net.create_task("a checked harbour", seed=100 * batch + i) for i in range(6)]

        def final(ids: list[str] = ids) -> bool:
            for task_id in ids:
                view = net.get_task(task_id)
                receipt = view.get("receipt") or {}
                if view["status"] == "failed":
                    raise AssertionError(f"task {task_id} failed: {view}\n{net.logs()}")
                if receipt.get("verification") not in TERMINAL:
                    return False
                views[task_id] = view
                outcomes[task_id] = (receipt["miner"], receipt["verification"])
            return True

        poll_until("every task's check to end", final, 240, on_fail=net.logs, interval=1.0)
        by_dave = [v for m, v in outcomes.values() if m == dave]
        honest_verified = [v for m, v in outcomes.values() if m != dave and v == "verified"]
        if by_dave and honest_verified:
            break
    elapsed = time.monotonic() - started
    assert by_dave, f"no task went to the cheater in {len(outcomes)} tasks"
    assert honest_verified, f"no honest result verified: {outcomes}"
    # the cheater's results are all found Guilty; honest results are never Guilty
    assert set(by_dave) == {"guilty"}, outcomes
    assert all(v in ("verified", "upheld") for m, v in outcomes.values() if m != dave), outcomes

    # on chain: each verdict is the chain's, with the rounds that led to it (read from the
    # events: a task leaves state RetentionBlocks after it settled). They are read until they
    # hold every task's settlement: once, read right after the coordinator's last verdict, one
    # settlement was not among them yet (1 run in 6; the cause is not known).
    events: list[tuple[int, str, Any]] = []
    settled: dict[str, Any] = {}

    def all_settled() -> bool:
        events[:] = kit.events(start)
        settled.clear()
        settled.update((a["task_id"], a) for _, n, a in events if n == "Tasks.TaskSettled")
        return all(task_id in settled for task_id in outcomes)

    poll_until("every task's settlement event", all_settled, 30, on_fail=net.logs, interval=1.0)
    guilty_ids = [t for t, (m, _) in outcomes.items() if m == dave]
    for task_id in outcomes:
        assert settled[task_id]["outcome"].lower() == outcomes[task_id][1], settled[task_id]
        assert settled[task_id]["status"] == ("Rejected" if task_id in guilty_ids else "Accepted")
    # and what each task paid: a guilty result's price back to the coordinator less the right
    # checkers' fee; a verified or upheld one's fee to its checkers instead of a burn
    share = PRICE * BURN_SHARE // PERBILL

    def paid_all() -> bool:
        for task_id in outcomes:
            views[task_id] = net.get_task(task_id)
            if views[task_id]["receipt"]["to_miner"] == "pending":
                return False
        return True

    poll_until("every receipt's payment", paid_all, 60, on_fail=net.logs, interval=1.0)
    for task_id in outcomes:
        r = views[task_id]["receipt"]
        assert sum(int(r[k]) for k in PAYMENT) == int(r["price"]) == PRICE, r
        assert int(r["to_checkers"]) > 0, r  # every result was checked, by right checkers
        if task_id in guilty_ids:
            assert (r["to_miner"], int(r["refunded"])) == ("0", PRICE - share), r
        else:
            assert (int(r["to_miner"]), r["refunded"]) == (PRICE - share, "0"), r
    opened = [(b, a) for b, n, a in events if n == "Tasks.CheckOpened"]
    verified_id = next(t for t, (m, v) in outcomes.items() if m != dave and v == "verified")
    (round0,) = [a for _, a in opened if a["task_id"] == verified_id]
    (checker,) = round0["checkers"]
    assert checker != outcomes[verified_id][0]  # re-run by another miner
    reveals = [a for _, n, a in events if n == "Tasks.ResultRevealed"]
    assert {"task_id": verified_id, "who": checker} in reveals  # the checker revealed its result
    closed = [a for _, n, a in events if n == "Tasks.RoundClosed"]
    for task_id in guilty_ids:
        rounds = [a for a in closed if a["task_id"] == task_id]
        assert rounds, f"no round closed for {task_id}"
        assert all(a["disagree"] > a["agree"] for a in rounds), rounds

    # the slash is queued (deferred) at the final Guilty verdict; read the queue at that block (it
    # may be applied by now: SlashDeferDuration eras are short on a test chain)
    verdict_block = max(
        b
        for b, n, a in events
        if n == "Tasks.Verdict" and a["task_id"] in guilty_ids and a["final"]
    )
    at = kit.si.get_block_hash(verdict_block)
    queued = [
        s
        for _, slashes in kit.si.query_map("Slashing", "UnappliedSlashes", block_hash=at)
        for s in slashes.value
    ]
    invalid = [s for s in queued if s["kind"] == "InvalidResult"]
    assert invalid, f"no InvalidResult slash queued: {queued}"
    assert {s["offender"] for s in invalid} == {dave}, invalid
    honest_stakers = {net.actors[n].staker.ss58_address for n in names[1:]}
    assert not [s for s in queued if s["offender"] in honest_stakers], queued

    checks = [m.health()[1].get("checks", {}) for m in net.miners.values()]
    blocks = [
        views[t]["receipt"]["settle_block"] - views[t]["receipt"]["result_block"] for t in outcomes
    ]
    print(
        f"\nchecked work ({engine}): {len(outcomes)} tasks in {elapsed:.0f} s, all checked "
        f"(checkRate 100%); outcomes "
        f"{ {v: sum(1 for _, x in outcomes.values() if x == v) for v in TERMINAL} }; "
        f"{len(guilty_ids)} by the cheater, all guilty; {len(opened)} check rounds opened; "
        f"result-to-final blocks min {min(blocks)} median {sorted(blocks)[len(blocks) // 2]} "
        f"max {max(blocks)}; InvalidResult slashes queued {len(invalid)}, other queued "
        f"{len(queued) - len(invalid)}; miners' check stats {checks}"
    )


# ---- (c) -----------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_silent_miner_tasks_are_reassigned_and_completed(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave", "Eve"], votes=[("Ferdie", "Dave", FERDIE_VOTE)])
    net.start_coordinator(task_timeout_blocks=20, miner_live_s=3.0)
    dave = net.start_miner("Dave")
    net.start_miner("Eve")
    net.wait_miners_live(2)
    dave_addr = net.actors["Dave"].staker.ss58_address
    eve_addr = net.actors["Eve"].staker.ss58_address

    dave.daemon.signal(signal.SIGSTOP)  # silent: still "live" for a few seconds, so it gets tasks
    ids = [net.create_task("a silent harbour", seed) for seed in range(1, 5)]
    views = [net.wait_settled(t, timeout=120) for t in ids]
    for view in views:
        assert view["status"] == "succeeded"
        assert view["receipt"]["miner"] == eve_addr, view
        check_receipt_on_chain(net, view["receipt"], net.task_image(view["id"]))
    reassigned = [v for v in views if v["attempts"] > 1]
    assert reassigned, f"no task was ever assigned to the silent miner: {views}"
    # on chain, the silent miner's committed tasks end as Missed, none as Accepted
    stats = net.kit.q("Tasks", "MinerStats", dave_addr)
    assert stats["accepted"] == 0
    assert stats["submitted"] == 0

    def all_missed() -> bool:
        s = net.kit.q("Tasks", "MinerStats", dave_addr)
        return s["missed"] == s["assigned"]

    poll_until("the silent miner's tasks to be missed on chain", all_missed, 60)
    dave.daemon.signal(signal.SIGCONT)


# ---- (d) -----------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_coordinator_restart_loses_no_accepted_task(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave", "Eve"])
    coordinator = net.start_coordinator(task_timeout_blocks=60)
    net.start_miner("Dave")
    net.start_miner("Eve")
    net.wait_miners_live(2)

    ids = [net.create_task("a restarted harbour", seed) for seed in range(1, 7)]
    assert coordinator.stop() == 0, coordinator.log_tail()
    net.restart_coordinator()
    for task_id in ids:
        view = net.wait_settled(task_id, timeout=120)
        assert view["status"] == "succeeded", view
        png = net.task_image(task_id)
        assert png == PatternSolver().solve(view["spec"])
        check_receipt_on_chain(net, view["receipt"], png)
    for name in ("Dave", "Eve"):  # the miners rode out the restart
        net.miners[name].daemon.assert_running()


# ---- (e) -----------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_prices_reach_apps_miners_and_receipts(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave", "Eve"])
    prices = net.tmp / "prices.json"
    prices.write_text(json.dumps({"default": "0.1", "models": {"tiny": {"64x64": "0.3"}}}))
    net.start_coordinator(extra_args=["--prices-file", str(prices)])
    net.start_miner("Dave", extra_args=["--min-price", "0.2"])  # takes the 64x64 tasks only
    net.start_miner("Eve")
    net.wait_miners_live(2)
    dave = net.actors["Dave"].staker.ss58_address

    status, listed = http("GET", net.coordinator_url + "/v1/prices")
    assert status == 200
    assert listed["data"] == [
        {"model": "tiny", "size": None, "price": str(PRICE), "price_cai": "0.1"},
        {"model": "tiny", "size": "64x64", "price": str(3 * PRICE), "price_cai": "0.3"},
    ]
    cheap, dear = [], []
    for seed in range(1, 7):
        for size, out in (("32x32", cheap), ("64x64", dear)):
            status, body = http(
                "POST",
                net.coordinator_url + "/v1/tasks",
                {"prompt": "a priced harbour", "size": size, "seed": seed, "steps": 2},
            )
            assert status == 202, body
            out.append(body["id"])
    views = {t: net.wait_settled(t, timeout=120) for t in cheap + dear}
    for task_id, view in views.items():
        r = view["receipt"]
        price = PRICE if task_id in cheap else 3 * PRICE
        assert (view["price"], r["price"]) == (str(price), str(price))
        assert sum(int(r[k]) for k in PAYMENT) == price
        if task_id in cheap:
            assert r["miner"] != dave, view  # under Dave's minimum: never his
    assert any(views[t]["receipt"]["miner"] == dave for t in dear), "Dave took no 0.3 CAI task"
    # the miner saw what each task paid, on chain too (one line per task)
    log = net.miners["Dave"].daemon.log_path.read_text()
    assert "pays 0.3 CAI" in log
    assert "pays 0.1 CAI" not in log


# ---- a coordinator bug the miner works around ----------------------------------------------------


def abandon_long_poll(url: str, operator: Keypair, hold_s: float = 1.0) -> None:
    """Open a signed long-poll and drop the connection before the coordinator answers (what a
    miner that exits mid-poll does)."""
    body = json.dumps({"max_tasks": 1, "wait_s": 20}).encode()
    headers = {
        **sign_request(operator, "POST", "/v1/miner/poll", body),
        "Content-Type": "application/json",
    }

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(
                session.post(url + "/v1/miner/poll", data=body, headers=headers)
            )
            await asyncio.sleep(hold_s)
            assert not request.done(), "the coordinator answered the long-poll early"
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request

    asyncio.run(run())


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_abandoned_long_poll_does_not_swallow_tasks(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave"])
    net.start_coordinator(task_timeout_blocks=60, miner_live_s=30.0)
    abandon_long_poll(net.coordinator_url, net.actors["Dave"].operator)
    task_id = net.create_task("an abandoned poll", 1)
    net.start_miner("Dave")  # polls again at once: the task should be its within seconds

    def succeeded() -> bool:
        return net.get_task(task_id)["status"] == "succeeded"

    # the deadline is 60 blocks (30 s) away: 15 s is plenty unless the task is stuck
    poll_until("the task to succeed", succeeded, 15, on_fail=net.logs)
