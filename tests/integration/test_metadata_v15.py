"""Metadata V15 read by two independent decoders, Polkadot.js (@polkadot/types) and
polkadot-api (substrate-bindings), through tests/compat/metadata_v15_check.mjs: every type of
the registry extracts, the runtime APIs are the declared ones with their inputs, the outer enums
are the runtime's, the pallets carry docs, and the System constants decode to their values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from genesis.builder import build_genesis, load_spec
from pallets.runtime import build_runtime
from pallets.runtime_apis import RUNTIME_API_DECLS
from tests.integration.conftest import COMPAT_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_v15_decodes_with_polkadot_js_and_polkadot_api(node_bin: str, tmp_path: Path) -> None:
    runtime = build_runtime(build_genesis(load_spec("dev")).config)
    raw = runtime.metadata(at=15)
    assert raw[:5] == b"meta\x0f"
    path = tmp_path / "v15.hex"
    path.write_text(raw.hex())
    out = subprocess.run(
        [node_bin, str(COMPAT_DIR / "metadata_v15_check.mjs"), str(path)],
        cwd=COMPAT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout)
    pjs, papi = seen["pjs"], seen["papi"]
    assert (pjs["version"], papi["tag"]) == (15, "v15")
    assert pjs["types"] > 200
    declared = [
        {"name": api.name, "methods": [(m.name, [n for n, _ in m.inputs]) for m in api.methods]}
        for api, _ in RUNTIME_API_DECLS
    ]
    assert [
        {"name": a["name"], "methods": [(m["name"], m["inputs"]) for m in a["methods"]]}
        for a in pjs["apis"]
    ] == declared
    assert papi["apis"] == [f"{api.name}:{len(api.methods)}" for api, _ in RUNTIME_API_DECLS]
    assert pjs["outerEnums"] == {
        "call": "cuckoo_runtime::RuntimeCall",
        "event": "cuckoo_runtime::RuntimeEvent",
        "error": "cuckoo_runtime::RuntimeError",
    }
    assert papi["custom"] == 0
    assert all(n > 0 for n in pjs["palletDocs"].values()), pjs["palletDocs"]
    consts = pjs["systemConstants"]
    v = runtime.version
    assert (consts["version"]["specName"], consts["version"]["specVersion"]) == (
        v.spec_name,
        v.spec_version,
    )
    assert consts["version"]["transactionVersion"] == v.transaction_version
    assert consts["blockWeights"]["maxBlock"]["refTime"] == runtime.config.max_block_weight.ref_time
    assert consts["blockWeights"]["perClass"]["mandatory"]["maxTotal"] is None
    assert consts["blockLength"]["max"]["normal"] == runtime.config.max_block_length
    assert set(consts["dbWeight"]) == {"read", "write"}
