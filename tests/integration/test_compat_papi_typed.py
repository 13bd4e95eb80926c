"""polkadot-api (PAPI) 2.x against the shared dev node: its code generator (`papi add`) accepts
the chain, and the typed API it generates works (tests/compat/papi_typed_check.mjs): runtime APIs
(`typedApi.apis.<Api>.<method>()`), the System constants PAPI reads, a signed transfer.

PAPI identifies a runtime by the hash of `:code` and reads its metadata V15 through
`Metadata_metadata_at_version` (docs/runtime.md); before both existed, `papi add` crashed. The
pinned package is in tests/compat/package.json; without node/npm the test is skipped.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import COMPAT_DIR, NodeProcess, node_env, run_check_script

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

PAPI_CLI = COMPAT_DIR / "node_modules" / "@polkadot-api" / "cli" / "dist" / "main" / "src"
SCRIPT = COMPAT_DIR / "papi_typed_check.mjs"
TIMEOUT_S = 180


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args[1:3]} ran over {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")


def test_papi_add_and_the_typed_api(node_bin: str, dev_node: NodeProcess, tmp_path: Path) -> None:
    env = node_env(node_bin)
    # a project of its own: `papi add` writes .papi/ there and, with noDescriptorsPackage,
    # neither edits a package.json nor runs npm (the packages come from tests/compat)
    (tmp_path / "node_modules").symlink_to(COMPAT_DIR / "node_modules")
    (tmp_path / "package.json").write_text('{"name": "papi-check", "private": true}\n')
    config = {
        "version": 0,
        "descriptorPath": ".papi/descriptors",
        "entries": {},
        "options": {"noDescriptorsPackage": True},
    }
    (tmp_path / ".papi").mkdir()
    (tmp_path / ".papi" / "polkadot-api.json").write_text(json.dumps(config))
    added = run(
        [node_bin, str(PAPI_CLI / "main.js"), "add", "cuckoo", "-w", dev_node.ws_url],
        tmp_path,
        env,
    )
    assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
    assert "Compilation successful" in added.stdout, added.stdout[-3000:]
    entry = json.loads((tmp_path / ".papi" / "polkadot-api.json").read_text())["entries"]["cuckoo"]
    code_hash = dev_node.rpc("state_getStorageHash", ["0x3a636f6465"])
    assert entry["codeHash"] == code_hash  # PAPI identifies the runtime by :code's hash
    assert entry["genesis"] == dev_node.rpc("chain_getBlockHash", [0])

    descriptors = tmp_path / ".papi" / "descriptors" / "dist" / "index.js"
    run_check_script(
        [node_bin, str(SCRIPT), dev_node.ws_url, str(descriptors)], timeout=TIMEOUT_S, env=env
    ).assert_all_passed(11)
    dev_node.assert_running()
