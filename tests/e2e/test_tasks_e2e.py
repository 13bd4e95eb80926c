"""Tasks end to end: a dev node, a coordinator and miners as processes on loopback.

(a) an app's image request returns images whose receipts point at the blocks holding the task's
    commitment, the miner's result and the settlement (integration + slow: the default run);
(b) a miner whose solver alters its images is caught by an audit, reported, and slashed with
    its voter after the deferral window; the honest miners are never reported;
(c) a miner that goes silent (SIGSTOP) has its tasks reassigned and completed by another;
(d) a coordinator restart (SIGTERM, start again on the same data dir) loses no accepted task;
and an abandoned long-poll must not swallow tasks (the coordinator notices its miner left).

Actors: coordinator //Charlie (2,000,000 CAI, operator //Charlie//operator), miners //Dave,
//Eve (and //Bob as the tie-breaker in (b)), each bonding 25,000 CAI with operator
//<name>//operator; voter //Ferdie votes 1,000,000 CAI for //Dave's miner.
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

from chain.hashing import blake2_256
from chainclient.signing import sign_request
from miner.solver import PatternSolver
from tests.e2e.conftest import MINER_BOND, Net, png_of, poll_until
from tests.miner.chainkit import CAI

PERBILL = 10**9
FERDIE_VOTE = 1_000_000 * CAI


def h(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


def check_receipt_on_chain(net: Net, receipt: dict[str, Any], png: bytes) -> dict[str, Any]:
    """The receipt's blocks hold the commitment, the result and the settlement of its task, and
    the chain's result hash is the image's."""
    task_id = h(receipt["task_id"])
    task = net.kit.task(task_id)
    assert task is not None, f"task {receipt['task_id']} is not on chain"
    assert task["status"] == "Accepted", task
    assert task["miner"] == receipt["miner"]
    assert task["result_hash"] == "0x" + blake2_256(png).hex()
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
        e["task_id"] == receipt["task_id"] and e["result_hash"] == task["result_hash"]
        for e in submitted
    )
    settled = events_at(task["settled_at"], "Tasks.TaskSettled")
    assert {"task_id": receipt["task_id"], "status": "Accepted"} in settled
    return task


# ---- (a) -----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_app_request_returns_images_with_receipts_on_chain(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave", "Eve"])
    net.start_coordinator(audit_rate=0.0, task_timeout_blocks=40)
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
        assert receipt["verification"] == "unaudited"
        view = net.wait_settled(receipt["task_id"])
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


@pytest.mark.e2e
@pytest.mark.timeout(420)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_cheating_miner_is_reported_and_slashed_with_its_voter(
    net_factory: Callable[[], Net], engine: str
) -> None:
    if engine == "diffusers":
        pytest.importorskip("diffusers", reason="the miner engine needs `pip install -e .[miner]`")
    honest, cheater, cheater_env = ENGINES[engine]
    net = net_factory()
    net.register(["Dave", "Eve", "Bob"], votes=[("Ferdie", "Dave", FERDIE_VOTE)])
    kit = net.kit
    start = kit.best()
    dave, ferdie = net.actors["Dave"].staker, Keypair.create_from_uri("//Ferdie")
    watched = [dave, ferdie, net.actors["Eve"].staker, net.actors["Bob"].staker]
    before = {kp.ss58_address: kit.q("Staking", "Ledger", kp.ss58_address) for kp in watched}
    net.start_coordinator(audit_rate=1.0, task_timeout_blocks=40)
    # Dave alters every image it returns; Eve and Bob are honest (and break the tie)
    cheater_env = {**cheater_env, "CUCKOO_MINER_DATA": str(net.tmp / "miner-Dave")}
    net.start_miner("Dave", solver=cheater, env={"CUCKOO_TEST_CHEAT": "1", **cheater_env})
    net.start_miner("Eve", solver=honest)
    net.start_miner("Bob", solver=honest)
    net.wait_miners_live(3)

    def reports() -> list[tuple[int, Any]]:
        return [(b, a) for b, n, a in kit.events(start) if n == "Tasks.InvalidResultReported"]

    found: list[tuple[int, Any]] = []
    for seed in range(1, 6):  # Dave carries most of the weight, so it is in nearly every job
        body = net.generate("a cheater's harbour", seed=seed)
        (item,) = body["data"]
        assert item["receipt"]["miner"] != dave.ss58_address  # the app gets an honest image
        deadline = time.monotonic() + 10
        while not found and time.monotonic() < deadline:
            found = reports()
            time.sleep(0.5)
        if found:
            break
    assert found, f"no report after 5 audited jobs\n{net.logs()}"
    offenders = {a["offender"] for _, a in found}
    assert offenders == {dave.ss58_address}, f"only the cheater is reported: {found}"
    report_block = found[0][0]
    at = kit.si.get_block_hash(report_block)
    queued = [
        s
        for _, slashes in kit.si.query_map("Slashing", "UnappliedSlashes", block_hash=at)
        for s in slashes.value
    ]
    assert any(
        s["offender"] == dave.ss58_address and s["kind"] == "InvalidResult" for s in queued
    ), queued

    # after the deferral window the slash lands on Dave and on Ferdie's vote
    def slashed() -> list[Any]:
        return [a for _, n, a in kit.events(report_block) if n == "Slashing.OffenderSlashed"]

    applied = poll_until("the deferred slash", slashed, 60, on_fail=net.logs)
    assert {a["offender"] for a in applied} == {dave.ss58_address}
    fraction = kit.si.get_constant("Slashing", "InvalidResultSlash").value
    first = applied[0]
    assert first["own"] == MINER_BOND * fraction // PERBILL
    assert first["voters"] == FERDIE_VOTE * fraction // PERBILL
    time.sleep(1.0)  # any other offence of the same window lands in the same block
    applied = slashed()
    after = {who: kit.q("Staking", "Ledger", who) for who in before}
    assert after[dave.ss58_address]["total"] == before[dave.ss58_address]["total"] - sum(
        a["own"] for a in applied
    )
    assert after[ferdie.ss58_address]["total"] == before[ferdie.ss58_address]["total"] - sum(
        a["voters"] for a in applied
    )
    assert kit.q("Registry", "Miners", dave.ss58_address)["status"] == "Suspended"
    for name in ("Eve", "Bob"):  # the honest miners: never reported, never slashed
        who = net.actors[name].staker.ss58_address
        assert after[who] == before[who]
        assert kit.q("Registry", "Miners", who)["status"] == "Active"
    assert all(a["offender"] == dave.ss58_address for _, a in reports())


# ---- (c) -----------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_silent_miner_tasks_are_reassigned_and_completed(net_factory: Callable[[], Net]) -> None:
    net = net_factory()
    net.register(["Dave", "Eve"], votes=[("Ferdie", "Dave", FERDIE_VOTE)])
    net.start_coordinator(audit_rate=0.0, task_timeout_blocks=20, miner_live_s=3.0)
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
    coordinator = net.start_coordinator(audit_rate=0.0, task_timeout_blocks=60)
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
    net.start_coordinator(audit_rate=0.0, task_timeout_blocks=60, miner_live_s=30.0)
    abandon_long_poll(net.coordinator_url, net.actors["Dave"].operator)
    task_id = net.create_task("an abandoned poll", 1)
    net.start_miner("Dave")  # polls again at once: the task should be its within seconds

    def succeeded() -> bool:
        return net.get_task(task_id)["status"] == "succeeded"

    # the deadline is 60 blocks (30 s) away: 15 s is plenty unless the task is stuck
    poll_until("the task to succeed", succeeded, 15, on_fail=net.logs)
