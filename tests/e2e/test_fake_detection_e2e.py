"""Cheap fakes are detected across device classes, end to end: three cheating miners (one per
kind of fake: half the denoising steps, another seed, a half-size image upscaled) run the
diffusers engine (the tiny model) in bfloat16, a device class no checker shares, so every check
of their results compares sketches, never hashes. Three honest checkers run float32 with
torch's AVX-512, AVX2 and default kernels; they take no tasks of their own (they poll a port
nobody serves) and hold most of the stake, so the chain draws them as checkers. Every result is
checked (checkRate 100%), and slashes are deferred past the test so that no cheater is
suspended while it is measured. The chain's verdict on each fake is counted per kind.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import pytest

from chain.sketch import sketch_distance
from tests.e2e.conftest import MINER_BOND, Net, http, poll_until
from tests.e2e.test_adversaries_e2e import fund
from tests.e2e.test_device_classes_e2e import CLASSES, WINDOWS
from tests.integration.conftest import free_ports
from tests.miner.chainkit import CAI

PERBILL = 1_000_000_000
PER_KIND = 30
# honest checkers: float32 on three kernel sets (the mixed-class test's first three classes)
CHECKERS = {name: CLASSES[name] for name in ("Dave", "Eve", "Bob")}
CHEATERS = {"Ferdie": "halfsteps", "Heidi": "otherseed", "Ivan": "upscale"}
CHECKER_BOND = 500_000 * CAI
TERMINAL = ("unchecked", "verified", "upheld", "guilty")


def h(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cheap_fakes_are_detected_across_device_classes(
    net_factory: Callable[..., Net],
) -> None:
    pytest.importorskip("diffusers", reason="the miner engine needs `pip install -e .[miner]`")
    net = net_factory(
        verification={"checkRate": PERBILL, **WINDOWS}, slashing={"slashDeferDuration": 1000}
    )
    kit = net.kit
    fund(net, {n: MINER_BOND + 1_000 * CAI for n in ("Heidi", "Ivan")})
    net.register([*CHECKERS, *CHEATERS], bonds={n: CHECKER_BOND for n in CHECKERS})
    net.start_coordinator(task_timeout_blocks=200)
    engine = {"CUCKOO_MINER_MODEL": "tiny", "CUCKOO_MINER_DEVICE": "cpu"}
    (nobody,) = free_ports(1)
    for name, env in CHECKERS.items():
        net.start_miner(
            name,
            solver="diffusers",
            env={**engine, "CUCKOO_MINER_DATA": str(net.tmp / f"miner-{name}"), **env},
            wait=False,
            coordinator_url=f"http://127.0.0.1:{nobody}",
        )
    for name, kind in CHEATERS.items():
        net.start_miner(
            name,
            solver="tests.miner.cheating:CheapFakeDiffusersSolver",
            env={
                **engine,
                "CUCKOO_MINER_DATA": str(net.tmp / f"miner-{name}"),
                "CUCKOO_MINER_DTYPE": "bfloat16",
                "CUCKOO_TEST_CHEAT": "1",
                "CUCKOO_TEST_FAKE": kind,
            },
            wait=False,
        )
    for miner in net.miners.values():
        net.wait_miner_ready(miner)
    net.wait_miners_live(len(CHEATERS))

    started = time.monotonic()
    ids = []
    for i in range(PER_KIND * len(CHEATERS)):
        status, body = http(
            "POST",
            net.coordinator_url + "/v1/tasks",
            {"prompt": f"a lighthouse at dusk, plate {i}", "size": "64x64", "seed": i, "steps": 4},
        )
        assert status == 202, f"POST /v1/tasks answered {status}: {body}"
        ids.append(body["id"])
    outcome: dict[str, tuple[str, str]] = {}
    waiting = set(ids)

    def all_final() -> bool:
        for task_id in list(waiting):
            view = net.get_task(task_id)
            receipt = view.get("receipt") or {}
            if view["status"] == "failed":
                waiting.discard(task_id)  # no result obtained (e.g. retried elsewhere)
            elif receipt.get("verification") in TERMINAL:
                outcome[task_id] = (receipt["miner"], receipt["verification"])
                waiting.discard(task_id)
        return not waiting

    poll_until("every task's verdict", all_final, 780, on_fail=net.logs, interval=2.0)
    elapsed = time.monotonic() - started

    kind_of = {net.actors[n].staker.ss58_address: k for n, k in CHEATERS.items()}
    checker_of = {net.actors[n].staker.ss58_address for n in CHECKERS}
    threshold = kit.si.get_constant("Tasks", "MaxSketchDistance").value
    per_kind: dict[str, collections.Counter[str]] = {
        k: collections.Counter() for k in CHEATERS.values()
    }
    distances: dict[str, list[int]] = {k: [] for k in CHEATERS.values()}
    for task_id, (miner, verdict) in outcome.items():
        kind = kind_of.get(miner)
        assert kind is not None, f"an honest checker got a task: {miner}"
        per_kind[kind][verdict] += 1
        check = kit.q("Tasks", "Checks", "0x" + h(task_id).hex())
        mine = check and check["miner_reveal"]
        if not mine:
            continue
        for c in check["checkers"]:
            r = c["reveal"]
            if r is not None and c["account"] in checker_of:
                assert r["device_hash"] != mine["device_hash"]  # across classes, by sketch
                distances[kind].append(
                    sketch_distance(
                        bytes.fromhex(mine["sketch"][2:]), bytes.fromhex(r["sketch"][2:])
                    )
                )
    rows = []
    for kind, counts in per_kind.items():
        checked = sum(counts.values()) - counts["unchecked"]
        rate = counts["guilty"] / checked if checked else 0.0
        rows.append((kind, checked, counts["guilty"], rate, min(distances[kind], default=0)))
    print(
        f"\ncheap fakes across device classes ({len(outcome)} tasks in {elapsed:.0f} s; honest "
        f"checkers fp32 on 3 kernel sets, cheaters bf16; threshold {threshold}):"
    )
    for kind, checked, guilty, rate, nearest in rows:
        print(
            f"  {kind:<10} checked {checked:>3}  Guilty {guilty:>3}  detected {rate:.1%}  "
            f"nearest honest-checker sketch distance {nearest}"
        )
    for kind, checked, _, rate, nearest in rows:
        assert checked >= PER_KIND // 2, (kind, per_kind[kind])
        assert rate >= 0.99, (kind, per_kind[kind])
        assert nearest > threshold, (kind, distances[kind])
