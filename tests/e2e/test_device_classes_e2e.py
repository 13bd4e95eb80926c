"""Honest miners on mixed device classes, end to end: 1,000 tasks through the coordinator's app
API, served by four honest miner processes running the diffusers engine (the tiny model) on
different device classes: CPU float32 with torch's AVX-512, AVX2 and default kernels (oneDNN and
MKL capped to match, as on CPUs without those instruction sets) and CPU bfloat16. A quarter of
the results are drawn for a check, so most checks compare two classes, by sketch. Nobody may be
slashed, rejected or reported: the calibrated threshold (chain/sketch.py) must hold for honest
cross-class pairs in a real network, not only in the calibration bench.

On a CPU without AVX-512, torch falls back to a lower capability, which the fingerprint records:
the classes are then fewer, and the test says how many it saw.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import pytest

from chain.sketch import sketch_distance
from tests.e2e.conftest import Net, http, poll_until

PERBILL = 1_000_000_000
TASKS = 1_000
CLASSES: dict[str, dict[str, str]] = {  # miner -> its environment (device class)
    "Dave": {"ATEN_CPU_CAPABILITY": "avx512"},
    "Eve": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "Bob": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
    "Ferdie": {"ATEN_CPU_CAPABILITY": "avx512", "CUCKOO_MINER_DTYPE": "bfloat16"},
}
TERMINAL = ("unchecked", "verified", "upheld", "guilty")
WINDOWS = {"specWindow": 40, "commitWindow": 40, "revealWindow": 40, "appealWindow": 40}


def h(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_honest_miners_on_mixed_device_classes_are_never_slashed(
    net_factory: Callable[..., Net],
) -> None:
    pytest.importorskip("diffusers", reason="the miner engine needs `pip install -e .[miner]`")
    # the test chain's blocks are 500 ms (half the dev chain's): windows of 20 s, not 5-10 s,
    # so that a miner busy with its own tasks on a loaded 2-core machine still reveals in time
    # the checks are read from state after all 1,000 tasks end: keep settled tasks that long
    net = net_factory(
        verification={"checkRate": PERBILL // 4, **WINDOWS}, tasks={"retentionBlocks": 100_000}
    )
    names = list(CLASSES)
    net.register(names)
    kit = net.kit
    start_block = kit.best()
    net.start_coordinator(task_timeout_blocks=200)
    for name, env in CLASSES.items():
        net.start_miner(
            name,
            solver="diffusers",
            env={
                "CUCKOO_MINER_MODEL": "tiny",
                "CUCKOO_MINER_DEVICE": "cpu",
                "CUCKOO_MINER_DATA": str(net.tmp / f"miner-{name}"),
                **env,
            },
        )
    net.wait_miners_live(len(names))

    started = time.monotonic()
    ids: list[str] = []
    for i in range(TASKS):
        status, body = http(
            "POST",
            net.coordinator_url + "/v1/tasks",
            {
                "prompt": f"a harbour at dusk, study {i % 37}",
                "size": "32x32",
                "seed": i,
                "steps": 2,
            },
        )
        assert status == 202, f"POST /v1/tasks answered {status}: {body}"
        ids.append(body["id"])
    outcomes: dict[str, tuple[str, str]] = {}  # app task id -> (miner, verification)
    open_ids = set(ids)

    def all_final() -> bool:
        for task_id in list(open_ids):
            view = net.get_task(task_id)
            if view["status"] == "failed":
                raise AssertionError(f"task {task_id} failed: {view}\n{net.logs()}")
            receipt = view.get("receipt") or {}
            if receipt.get("verification") in TERMINAL:
                outcomes[task_id] = (receipt["miner"], receipt["verification"])
                open_ids.discard(task_id)
        return not open_ids

    poll_until("every task's final outcome", all_final, 780, on_fail=net.logs, interval=2.0)
    elapsed = time.monotonic() - started

    # nobody was reported, slashed or rejected
    events = kit.events(start_block)
    by_name = collections.Counter(n for _, n, _ in events)
    assert by_name["Slashing.OffenceReported"] == 0, [a for _, n, a in events if "Slashing" in n]
    assert by_name["Slashing.OffenderSlashed"] == 0
    stats = {n: kit.q("Tasks", "MinerStats", net.actors[n].staker.ss58_address) for n in names}
    assert all(s["rejected"] == 0 for s in stats.values()), stats
    counts = collections.Counter(v for _, v in outcomes.values())
    assert counts["guilty"] == 0, counts
    assert sum(s["accepted"] for s in stats.values()) >= TASKS

    # the checks compared results across device classes, by sketch, within the threshold
    threshold = kit.si.get_constant("Tasks", "MaxSketchDistance").value
    devices: dict[str, str] = {}
    cross, same, distances = 0, 0, []
    escalated = 0
    for task_id in ids:
        check = kit.q("Tasks", "Checks", "0x" + h(task_id).hex())
        if check is None:
            continue
        mine = check["miner_reveal"]
        assert mine is not None, check
        devices[outcomes[task_id][0]] = mine["device_hash"]
        escalated += check["round"] > 0
        for c in check["checkers"]:
            r = c["reveal"]
            assert r is not None, (task_id, check)  # every honest checker revealed
            if r["device_hash"] == mine["device_hash"]:
                same += 1
                assert r["result_hash"] == mine["result_hash"], (task_id, check)
            else:
                cross += 1
                d = sketch_distance(
                    bytes.fromhex(mine["sketch"][2:]), bytes.fromhex(r["sketch"][2:])
                )
                distances.append(d)
    classes = len(set(devices.values()))
    print(
        f"\nmixed device classes: {TASKS} honest tasks in {elapsed:.0f} s on {classes} device "
        f"classes ({len(names)} miners); outcomes {dict(counts)}; comparisons: {cross} across "
        f"classes by sketch (max distance {max(distances, default=0)}, threshold {threshold}), "
        f"{same} within a class by hash; escalated {escalated}; slashed 0, rejected 0; "
        f"MinerStats {stats}"
    )
    assert classes >= 3, f"only {classes} device classes: {devices}"
    assert cross >= 100, f"only {cross} cross-class comparisons"
    assert max(distances) <= threshold
    assert escalated == 0
    for name in names:
        assert net.miners[name].daemon.stop() == 0, net.miners[name].daemon.log_tail()
