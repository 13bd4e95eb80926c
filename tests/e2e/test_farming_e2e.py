"""Self-dealing does not pay (docs/economics.md), end to end: a dev node, two coordinators and
two miners as real processes on loopback, the pattern solver for every image.

The honest pair: coordinator //Charlie (price 0.1 CAI a task) and miner //Dave, serving an app
that sends HONEST_TASKS requests at a steady pace over ERAS (at least six) eras; //Bob is a
miner that serves nobody and only checks, so that results are checked at the dev rate (10%)
in both runs. The farmer, one owner: coordinator //Ferdie (priced at the chain's minimum,
0.01 CAI) and miner //Eve, which polls only //Ferdie; the owner keeps FARM_WORKERS clients
asking its own coordinator for images for the same eras, as many as its miner can make. Its
miner computes every result (faking would be caught at the check rate and cost half its
stake, tests/e2e/test_adversaries_e2e.py), so checks pass.

The same scenario runs twice, with and without the farmer. Figures, from the chain's events:
- the farmer's emission (`Rewarded` to //Ferdie and //Eve: it would have earned nothing
  without farming), against what farming cost it: the burns of its tasks (`TaskPaid.burned`),
  the fees its tasks paid to checkers it does not own (`to_checkers`), and the transaction
  fees of its operators. The profit ratio is emission / cost: below 1.
- the honest pair's emission in both runs: within 10%.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair

from chain.crypto import ss58_decode
from genesis.builder import load_spec
from pallets.rewards.pallet import Rewarded
from pallets.runtime import build_runtime, runtime_config
from pallets.system import pallet as system
from pallets.tasks.pallet import TaskCommitted, TaskPaid
from pallets.transaction_payment.pallet import TransactionFeePaid
from tests.e2e.conftest import COORDINATOR_BOND, Daemon, Net, executable, http, poll_until
from tests.e2e.test_adversaries_e2e import wait_chain_settled
from tests.integration.conftest import free_ports
from tests.miner.chainkit import CAI, Actor

pytestmark = pytest.mark.e2e

HONEST_TASKS = 240
HONEST_PRICE = "0.1"
FARM_PRICE = "0.01"  # dev Tasks.MinTaskPrice
FARM_WORKERS = 8  # clients waiting for FARM_N images each: the farm runs as fast as its miner
FARM_N = 4  # images per request (the API's most)
ERAS = 8
ERA_BLOCKS = 10  # dev Staking.EraLength


def account(name: str) -> bytes:
    return ss58_decode(Keypair.create_from_uri(name).ss58_address)[0]


HONEST = {account("//Charlie"), account("//Dave")}
FARMER = {account("//Ferdie"), account("//Eve")}
FARMER_OPERATORS = {account("//Ferdie//operator"), account("//Eve//operator")}


@dataclasses.dataclass
class Figures:
    """One run, read from every block's events."""

    honest_emission: int = 0
    farmer_emission: int = 0
    farmer_burned: int = 0
    farmer_to_others: int = 0  # its tasks' burn shares paid to checkers it does not own
    farmer_fees: int = 0  # transaction fees of its operators while farming
    farmer_tasks: int = 0  # committed on chain
    farmer_accepted_unchecked: int = 0
    honest_tasks: int = 0  # committed on chain
    eras: int = 0
    blocks: int = 0

    @property
    def farmer_cost(self) -> int:
        return self.farmer_burned + self.farmer_to_others + self.farmer_fees

    @property
    def profit_ratio(self) -> float:
        return self.farmer_emission / self.farmer_cost if self.farmer_cost else 0.0


def cai(amount: int) -> str:
    return f"{amount / CAI:,.4f} CAI"


def bind_event_types() -> None:
    """Build the dev runtime once: it binds `RuntimeEvent` to every pallet's events."""
    build_runtime(runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"]))


def block_events(net: Net, number: int) -> list[Any]:
    """The decoded events of block `number` (the runtime's own codec: fast for big blocks)."""
    si = net.kit.si
    raw = si.rpc_request(
        "state_getStorage", ["0x" + system.Events.key.hex(), si.get_block_hash(number)]
    )["result"]
    if raw is None:
        return []
    records = system.Events.value_ty.decode_all(bytes.fromhex(raw[2:]))
    return [r.event for r in records]


def start_farm_coordinator(net: Net, actor: Actor, port: int) -> Daemon:
    key = net._key_file("farm-coordinator", "//Ferdie//operator")
    args = [
        *executable("cuckoo-coordinator", "coordinator.cli"),
        "--chain-url", net.node.ws_url,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--data-dir", str(net.tmp / "farm-coordinator-data"),
        "--operator-key-file", str(key),
        "--task-timeout-blocks", "30",
        "--miner-live-s", "60",
        "--price", FARM_PRICE,
    ]  # fmt: skip
    daemon = Daemon("farm coordinator", args, net._env(), net.tmp / "farm-coordinator.log").start()
    net.started.append(daemon)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        daemon.assert_running()
        try:
            status, body = http("GET", url + "/health", timeout=2)
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("ready") is True

    poll_until("the farm coordinator's /health", ready, 60, on_fail=daemon.log_tail)
    return daemon


def generate(url: str, prompt: str, seed: int) -> None:
    status, body = http(
        "POST",
        url + "/v1/images/generations",
        {"prompt": prompt, "n": FARM_N, "size": "64x64", "seed": seed, "steps": 2},
        timeout=120,
    )
    assert status == 200, f"POST {url}/v1/images/generations answered {status}: {body}"


def post_task(url: str, prompt: str, seed: int) -> None:
    status, body = http(
        "POST", url + "/v1/tasks", {"prompt": prompt, "size": "64x64", "seed": seed, "steps": 2}
    )
    assert status == 202, f"POST {url}/v1/tasks answered {status}: {body}"


def in_threads(workers: list[Callable[[], None]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    return threads


def run_market(tmp: Path, *, farmer: bool) -> Figures:
    net = Net(tmp)
    try:
        net.register(["Dave", "Bob", "Eve"] if farmer else ["Dave", "Bob"])
        farm_url = ""
        if farmer:
            (farm_port,) = free_ports(1)
            farm_url = f"http://127.0.0.1:{farm_port}"
            farm = Actor(
                Keypair.create_from_uri("//Ferdie"),
                Keypair.create_from_uri("//Ferdie//operator"),
                "farm",
            )
            net.kit.run_parallel([net.kit.coordinator_steps(farm, COORDINATOR_BOND, farm_url)])
        # a busy miner polls less often: keep its tasks assigned to it (no re-commits)
        net.start_coordinator(miner_live_s=60, extra_args=["--price", HONEST_PRICE])
        net.start_miner("Dave", extra_args=["--max-tasks", "4"])
        (nobody,) = free_ports(1)
        net.start_miner("Bob", coordinator_url=f"http://127.0.0.1:{nobody}")  # checks only
        if farmer:
            start_farm_coordinator(net, farm, farm_port)
            net.start_miner("Eve", coordinator_url=farm_url, extra_args=["--max-tasks", "8"])
        net.wait_miners_live(1)
        first = net.kit.best() + 1
        start_era = net.kit.q("Staking", "CurrentEra")
        stop = threading.Event()
        farmed = [0]

        def farm_worker(index: int) -> Callable[[], None]:
            def work() -> None:
                seed = index * 1_000_000
                while not stop.is_set():
                    seed += FARM_N
                    try:
                        generate(farm_url, "made-up work", seed)
                        farmed[0] += 1
                    except (AssertionError, OSError):
                        time.sleep(0.2)  # the coordinator is saturated: back off a little

            return work

        threads = in_threads([farm_worker(i) for i in range(FARM_WORKERS)]) if farmer else []
        # the honest app: HONEST_TASKS requests spread evenly over ERAS eras
        period = ERAS * ERA_BLOCKS * 0.5 / HONEST_TASKS  # e2e blocks are 500 ms
        began = time.monotonic()
        for i in range(HONEST_TASKS):
            post_task(net.coordinator_url, f"an honest request {i}", i)
            time.sleep(max(0.0, began + (i + 1) * period - time.monotonic()))
        poll_until(
            f"{ERAS} eras of load",
            lambda: net.kit.q("Staking", "CurrentEra") >= start_era + ERAS or None,
            120,
        )
        stop.set()
        for t in threads:
            t.join(timeout=30)
        last = wait_chain_settled(net, timeout=240)
        return tally(net, first, last, start_era)
    finally:
        net.close()


def tally(net: Net, first: int, last: int, start_era: int) -> Figures:
    bind_event_types()
    f = Figures(blocks=last - first + 1, eras=net.kit.q("Staking", "CurrentEra") - start_era)
    coordinator_of: dict[bytes, bytes] = {}
    for n in range(first, last + 1):
        for e in block_events(net, n):
            if isinstance(e, TaskCommitted):
                coordinator_of[e.task_id] = e.coordinator
                if e.coordinator in FARMER:
                    f.farmer_tasks += 1
                else:
                    f.honest_tasks += 1
            elif isinstance(e, TaskPaid) and coordinator_of.get(e.task_id) in FARMER:
                f.farmer_burned += e.burned
                f.farmer_accepted_unchecked += e.to_checkers == 0 and e.burned > 0
                if e.miner not in FARMER:  # cannot happen: its miner serves only it
                    f.farmer_to_others += e.to_miner
                # its own checker cannot check its own miner; any other checker is not its own
                f.farmer_to_others += e.to_checkers
            elif isinstance(e, TransactionFeePaid) and e.who in FARMER_OPERATORS:
                f.farmer_fees += e.actual_fee
            elif isinstance(e, Rewarded):
                if e.who in HONEST:
                    f.honest_emission += e.amount
                elif e.who in FARMER:
                    f.farmer_emission += e.amount
    return f


@pytest.mark.timeout(900)
def test_farming_its_own_coordinator_loses_money_and_leaves_the_honest_pair_alone(
    tmp_path: Path,
) -> None:
    control = run_market(tmp_path / "without-farmer", farmer=False)
    attacked = run_market(tmp_path / "with-farmer", farmer=True)
    change = attacked.honest_emission / control.honest_emission - 1
    print(
        f"\nwithout the farmer: {HONEST_TASKS} honest requests ({control.honest_tasks} tasks "
        f"committed), honest pair's emission "
        f"{cai(control.honest_emission)} over {control.eras} eras"
        f"\nwith the farmer: {HONEST_TASKS} honest requests ({attacked.honest_tasks} tasks "
        f"committed), honest pair's emission "
        f"{cai(attacked.honest_emission)} ({change:+.1%}); farmer {attacked.farmer_tasks} tasks "
        f"({attacked.farmer_accepted_unchecked} accepted unchecked) over {attacked.eras} eras"
        f"\nfarmer: emission {cai(attacked.farmer_emission)} (0 without farming) for "
        f"{cai(attacked.farmer_cost)} (burned {cai(attacked.farmer_burned)}, to others' "
        f"checkers {cai(attacked.farmer_to_others)}, fees {cai(attacked.farmer_fees)}): "
        f"profit ratio {attacked.profit_ratio:.3f}"
    )
    assert control.eras >= ERAS
    assert attacked.eras >= ERAS
    assert control.farmer_tasks == 0
    assert control.farmer_emission == 0
    # every request was committed (some twice: a task a busy miner released is committed anew)
    assert control.honest_tasks >= HONEST_TASKS
    assert attacked.honest_tasks >= HONEST_TASKS
    # the farmer did farm, at a volume that dwarfs the honest app's ...
    assert attacked.farmer_tasks > HONEST_TASKS
    assert attacked.farmer_emission > 0
    # ... and got back less than it paid for it
    assert attacked.profit_ratio < 1
    # the honest pair's emission did not move by more than 10%
    assert abs(change) <= 0.10
