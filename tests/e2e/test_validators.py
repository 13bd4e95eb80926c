"""Four validator processes on loopback: authorship in turn, BFT finality, faults, sync, bans.

One network (the `local` chain's four validators with 1 s slots) serves the module's tests in
order; each test leaves every validator running again. A `FinalityMonitor` samples all nodes
throughout: two nodes finalizing different blocks at one height, or a finalized head moving
back, fails the test at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.e2e.validators import (
    VALIDATORS,
    FinalityMonitor,
    ValidatorNet,
    best_number,
    finalized_number,
    peer_id,
    wait_until,
    write_spec,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValidatorNet]:
    tmp = tmp_path_factory.mktemp("validators")
    network = ValidatorNet(tmp, write_spec(tmp / "spec.json"))
    try:
        # staggered, as validators start in real life: //Alice authors alone first, and the
        # others may author their own first blocks before they have peers (forks at start-up
        # whose blocks only their authors hold: finality must not wait on them forever)
        alice = network.start("alice")
        wait_until("//Alice's first block", lambda: alice.best_number() >= 1, 30)
        for name in VALIDATORS[1:]:
            network.start(name)
        yield network
    finally:
        network.stop_all()


@pytest.fixture(scope="module")
def monitor() -> FinalityMonitor:
    return FinalityMonitor()


def _watch(net: ValidatorNet, monitor: FinalityMonitor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        monitor.sample(net.running())
        time.sleep(0.5)


def test_four_validators_author_in_turn_and_finalize_the_same_blocks(
    net: ValidatorNet, monitor: FinalityMonitor
) -> None:
    alice = net.nodes["alice"]
    wait_until(
        "every validator to see three peers",
        lambda: all(n.rpc("system_health")["peers"] == 3 for n in net.nodes.values()),
        30,
        on_fail=net.logs,
    )
    wait_until(
        "finality past block 8 on every node",
        lambda: all(finalized_number(n) >= 8 for n in net.nodes.values()),
        60,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    _watch(net, monitor, 5)
    # the same finalized chain everywhere, block by block
    low = min(finalized_number(n) for n in net.nodes.values())
    for number in range(1, low + 1):
        hashes = {n.rpc("chain_getBlockHash", [number]) for n in net.nodes.values()}
        assert len(hashes) == 1, f"nodes disagree at #{number}: {hashes}"
    # blocks come from all four authors in turn (Aura: slot % 4)
    authors = set()
    for number in range(1, low + 1):
        header = alice.rpc("chain_getHeader", [alice.rpc("chain_getBlockHash", [number])])
        pre = next(d for d in header["digest"]["logs"] if d.startswith("0x06"))
        slot = int.from_bytes(bytes.fromhex(pre[2 + 2 + 8 + 2 :])[:8], "little")
        authors.add(slot % 4)
    assert authors == {0, 1, 2, 3}
    # finalized blocks carry justifications (some of them: the ends of rounds)
    fin = alice.rpc("chain_getFinalizedHead")
    justified = 0
    h = fin
    for _ in range(6):
        block = alice.rpc("chain_getBlock", [h])
        if block["justifications"]:
            engine, raw = block["justifications"][0]
            assert bytes(engine) == b"FRNK"
            assert len(raw) > 100
            justified += 1
        h = block["block"]["header"]["parentHash"]
    assert justified >= 1
    # the RPC tells the truth about the network
    peers = alice.rpc("system_peers")
    assert sorted(p["peerId"] for p in peers) == sorted(peer_id(n) for n in VALIDATORS[1:])
    assert all(p["roles"] == "AUTHORITY" for p in peers)
    assert alice.rpc("system_localPeerId") == peer_id("alice")
    state = alice.rpc("system_syncState")
    assert state["currentBlock"] >= low
    assert state["highestBlock"] >= state["currentBlock"] - 1


def test_one_validator_down_finality_continues_and_it_catches_up(
    net: ValidatorNet, monitor: FinalityMonitor
) -> None:
    alice = net.nodes["alice"]
    net.kill("dave")
    start = best_number(alice)
    lags = []
    end = time.monotonic() + 20
    while time.monotonic() < end:
        monitor.sample(net.running())
        lags.append(best_number(alice) - finalized_number(alice))
        time.sleep(0.5)
    assert best_number(alice) >= start + 8, "blocks stopped with one validator down"
    lags_after_settle = lags[6:]
    assert max(lags_after_settle) <= 5, f"finality lag with 3 of 4 validators: {lags}"
    net.start("dave")
    dave = net.nodes["dave"]
    wait_until(
        "the restarted validator to catch up",
        lambda: (
            best_number(dave) >= best_number(alice) - 2
            and finalized_number(dave) >= finalized_number(alice) - 3
        ),
        60,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )


def test_two_validators_down_finality_stops_then_resumes(
    net: ValidatorNet, monitor: FinalityMonitor
) -> None:
    alice = net.nodes["alice"]
    net.kill("charlie")
    net.kill("dave")
    time.sleep(4)  # votes in flight settle
    stalled = finalized_number(alice)
    best_before = best_number(alice)
    _watch(net, monitor, 10)
    assert finalized_number(alice) <= stalled + 1, "finality went on with 2 of 4 validators"
    assert best_number(alice) > best_before, "Alice and Bob stopped authoring"
    net.start("charlie")
    net.start("dave")
    restarted = time.monotonic()
    wait_until(
        "finality to resume",
        lambda: finalized_number(alice) > stalled + 2,
        60,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    assert time.monotonic() - restarted <= 60


def test_a_fifth_node_syncs_from_genesis_and_follows(
    net: ValidatorNet, monitor: FinalityMonitor
) -> None:
    alice = net.nodes["alice"]
    observer = net.start("eve", validator=False, bootnodes=[net.bootnode("bob")])
    wait_until(
        "the new node to reach the head",
        lambda: best_number(observer) >= best_number(alice) - 1,
        90,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    target = best_number(alice) + 3
    wait_until("it to follow new blocks", lambda: best_number(observer) >= target, 30)
    wait_until(
        "it to finalize what the validators finalized",
        lambda: finalized_number(observer) >= finalized_number(alice) - 3,
        30,
        tick=lambda: monitor.sample(net.running()),
    )
    n = finalized_number(observer)
    assert observer.rpc("chain_getBlockHash", [n]) == alice.rpc("chain_getBlockHash", [n])
    assert observer.rpc("system_nodeRoles") == ["Full"]


def test_a_peer_sending_an_invalid_block_or_vote_is_banned(net: ValidatorNet) -> None:
    from tests.e2e.badpeer import send_invalid_and_check_ban

    alice = net.nodes["alice"]
    genesis = bytes.fromhex(alice.rpc("chain_getBlockHash", [0])[2:])
    for what in ("block", "vote"):
        outcome = asyncio.run(send_invalid_and_check_ban(net.bootnode("alice"), genesis, what))
        assert outcome.disconnected, f"{what}: the node kept the connection"
        assert outcome.reconnect_refused, f"{what}: the banned peer could connect again"
        listed = {p["peerId"] for p in alice.rpc("system_peers")}
        assert outcome.peer_id not in listed
    # the honest validators are unaffected
    assert alice.rpc("system_health")["peers"] >= 3


def test_no_conflicting_finality_was_ever_seen(net: ValidatorNet, monitor: FinalityMonitor) -> None:
    _watch(net, monitor, 2)
    assert len(monitor.final) >= 20, "too few finalized blocks were observed to judge"
