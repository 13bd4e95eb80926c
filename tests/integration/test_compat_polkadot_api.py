"""@polkadot/api 16.5.6 (the library behind Polkadot.js Apps) against the shared dev node.

Runs tests/compat/polkadot_api_check.mjs with Node.js. Its dependencies are pinned in
tests/compat/package-lock.json; when tests/compat/node_modules is missing, `npm ci` installs them
from the npm registry first. Without node/npm, or when the registry cannot be reached, the test is
skipped with the reason (CI has both).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess, run_check_script

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

COMPAT = Path(__file__).resolve().parents[1] / "compat"
SCRIPT = COMPAT / "polkadot_api_check.mjs"
SCRIPT_TIMEOUT_S = 150


def test_polkadot_api_scenario(node_bin: str, dev_node: NodeProcess) -> None:
    run_check_script(
        [node_bin, str(SCRIPT), dev_node.ws_url], timeout=SCRIPT_TIMEOUT_S
    ).assert_all_passed(14)
    dev_node.assert_running()
