"""polkadot-api (PAPI) 2.2.2 against a dev node of its own, with its raw provider (the new
JSON-RPC spec only) and its default one (the new spec's groups the node lists, legacy methods
for the rest).

Runs tests/compat/papi_check.mjs with Node.js (dependencies pinned in
tests/compat/package-lock.json, installed by `npm ci` when missing; skipped without node/npm).
It follows best and finalized blocks, reads headers, bodies, System.Account (one and all),
a constant and System.Events, estimates a fee and submits a transfer signed by //Alice (sr25519)
that it follows to finalization. The node is its own so that //Alice's nonce races nothing.

PAPI needs three things of the runtime beyond the RPC layer (docs/runtime.md):
  * a `:code` entry in state: PAPI keys each runtime by the hash of `:code` (read with
    chainHead_v1_storage); without one its follow stream fails (pinned-blocks.js) and nothing
    works;
  * the `System.Version` constant in metadata: it builds CheckSpecVersion / CheckTxVersion from
    it, for getEstimatedFees and signing;
  * `TaggedTransactionQueue_validate_transaction` through chainHead_v1_call: it validates a
    transaction before broadcasting it and while tracking it.
The typed API that `papi add` generates is checked by test_compat_papi_typed.py.

    node tests/compat/papi_check.mjs ws://127.0.0.1:9944 raw      # by hand
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess, run_check_script, start_node

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

COMPAT = Path(__file__).resolve().parents[1] / "compat"
SCRIPT = COMPAT / "papi_check.mjs"
SCRIPT_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def papi_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = start_node(tmp_path_factory.mktemp("papi-node") / "node.log", prometheus=False)
    try:
        node.wait_for_block(1)
        yield node
    finally:
        node.stop()


@pytest.mark.parametrize("provider", ["raw", "default"])
def test_polkadot_api_scenario(node_bin: str, papi_node: NodeProcess, provider: str) -> None:
    run = run_check_script(
        [node_bin, str(SCRIPT), papi_node.ws_url, provider, "//Alice"], timeout=SCRIPT_TIMEOUT_S
    )
    papi_node.assert_running()
    run.assert_all_passed(10)
