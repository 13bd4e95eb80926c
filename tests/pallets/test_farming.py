"""The farming attack of issue 12 at its own scale, in process (docs/economics.md): one owner's
coordinator (//Bob) commits a full batch of 256 tasks every block to its own miner (//Dave) at
the minimum price, settles them early and lets emission pay it, for six eras, beside an honest
coordinator (//Alice) sending two 0.1 CAI tasks a block to an honest miner (//Charlie). The
same honest load runs once without the farmer.

Checks are off here (check rate 0): a checked farmed task pays its burn share to checkers and
earns no emission, so checks only make farming worse; the end-to-end test
(tests/e2e/test_farming_e2e.py) runs the attack with checks on, real processes and fees.
"""

from __future__ import annotations

from typing import Any

from pallets.rewards.pallet import Rewarded
from pallets.tasks.pallet import ResultCommit, TaskPaid
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, MockRuntime
from tests.pallets.test_staking import CAI, OP1, OP2, OP3, OP4, run_to_block
from tests.pallets.test_tasks import network, tc, tid

FARM_BATCH = 256  # Tasks.MaxBatch, as the farmer
FARM_PRICE = 10**16  # dev MinTaskPrice, 0.01 CAI
HONEST_PRICE = CAI // 10
ERAS = 6


def market(farmer: bool) -> dict[str, int]:
    """Run the market for ERAS eras (and the payout of the last); the figures, in planck."""
    m: MockRuntime = next(network(0))
    length = m.config.staking.era_length
    m.dispatch("root", "Balances", "force_set_balance", who=("Id", OP2), new_free=10**6 * CAI)
    events: list[Any] = []
    farmed: dict[int, list[str]] = {}
    honest: dict[int, list[str]] = {}
    start = (m.block_number // length + 1) * length
    events += run_to_block(m, start)
    for block in range(start, start + ERAS * length):
        deadline = block + 20
        honest[block] = [f"h{block}-{i}" for i in range(2)]
        m.dispatch(OP1, "Tasks", "commit_tasks", batch=[
            tc(n, CHARLIE, deadline, price=HONEST_PRICE) for n in honest[block]
        ])  # fmt: skip
        if farmer:
            farmed[block] = [f"f{block}-{i}" for i in range(FARM_BATCH)]
            m.dispatch(OP2, "Tasks", "commit_tasks", batch=[
                tc(n, DAVE, deadline, price=FARM_PRICE) for n in farmed[block]
            ])  # fmt: skip
        # results a block after the commit; early settlement once their draw is done
        for op, names in ((OP3, honest.get(block - 1)), (OP4, farmed.get(block - 1))):
            if names:
                batch = [ResultCommit(tid(n), b"\x60" * 32) for n in names]
                m.dispatch(op, "Tasks", "submit_results", batch=batch)
        for op, names in ((OP1, honest.get(block - 3)), (OP2, farmed.get(block - 3))):
            if names:
                m.dispatch(op, "Tasks", "settle_tasks", task_ids=[tid(n) for n in names])
        events += m.events()
        events += run_to_block(m, block + 1, check=block % length == 0)
    events += run_to_block(m, m.block_number + 30)  # the last results settle and eras are paid
    m.runtime.try_state(m.state)
    figures = {"farmer_emission": 0, "honest_emission": 0, "farmer_burned": 0, "farmed": 0}
    farm_ids = {tid(n) for names in farmed.values() for n in names}
    for e in events:
        if isinstance(e, Rewarded) and e.who in (BOB, DAVE):
            figures["farmer_emission"] += e.amount
        elif isinstance(e, Rewarded) and e.who in (ALICE, CHARLIE):
            figures["honest_emission"] += e.amount
        elif isinstance(e, TaskPaid) and e.task_id in farm_ids:
            figures["farmer_burned"] += e.burned
            figures["farmed"] += 1
    return figures


def test_a_farmer_at_256_tasks_a_block_gets_back_half_of_what_it_burns() -> None:
    without = market(farmer=False)
    attacked = market(farmer=True)
    ratio = attacked["farmer_emission"] / attacked["farmer_burned"]
    print(
        f"\nfarmer: {attacked['farmed']} tasks at 0.01 CAI over {ERAS} eras, burned "
        f"{attacked['farmer_burned'] / CAI:.4f} CAI, emission "
        f"{attacked['farmer_emission'] / CAI:.4f} CAI: profit ratio {ratio:.4f} (before fees)"
        f"\nhonest pair: emission {without['honest_emission'] / CAI:.4f} CAI without the farmer, "
        f"{attacked['honest_emission'] / CAI:.4f} CAI with it"
    )
    assert attacked["farmed"] == FARM_BATCH * ERAS * 10
    assert 0 < ratio < 1
    assert attacked["honest_emission"] == without["honest_emission"] > 0
