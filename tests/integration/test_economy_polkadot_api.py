"""The staking economy through @polkadot/api 16.5.6, as a Polkadot.js Apps user does it.

Runs tests/compat/economy_check.mjs with Node.js against the shared dev node: faucet drip, bond,
register a miner with a separate operator key, bond and vote from a second account, each signed and
followed to Finalized with its events, and the results read back through `query.staking.ledger`
and `query.registry.miners.entries()`. Its signers are fresh faucet-funded keys, so no nonce races
with other modules. When tests/compat/node_modules is missing or holds other versions, `npm ci`
installs the pinned ones first; the test is skipped (with the reason) only when node/npm are not on
PATH or that install cannot be done.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess, run_check_script

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

COMPAT = Path(__file__).resolve().parents[1] / "compat"
SCRIPT = COMPAT / "economy_check.mjs"
SCRIPT_TIMEOUT_S = 150
CHECKS = 14  # PASS lines the script prints when everything runs


def test_bond_register_and_vote_through_polkadot_api(node_bin: str, dev_node: NodeProcess) -> None:
    run = run_check_script([node_bin, str(SCRIPT), dev_node.ws_url], timeout=SCRIPT_TIMEOUT_S)
    run.assert_all_passed(CHECKS)
    assert run.passed == CHECKS, run.report[-4000:]
    dev_node.assert_running()
