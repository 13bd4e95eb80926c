"""Raw JSON-RPC and Prometheus against the shared dev node: method listing, block hash forms,
key paging, metadata decoding, metrics."""

from __future__ import annotations

import re
import urllib.request

import pytest
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair, SubstrateInterface

from chain.hashing import storage_prefix
from tests.integration.conftest import NodeProcess, RpcCallError, WsClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")


# ---- rpc_methods -------------------------------------------------------------------------------

CLIENT_NEEDS = {
    # substrate-interface and @polkadot/api drop or fail on anything missing from this list
    "rpc_methods",
    "system_chain",
    "system_properties",
    "system_name",
    "system_version",
    "system_health",
    "system_chainType",
    "system_accountNextIndex",
    "chain_getBlockHash",
    "chain_getHeader",
    "chain_getBlock",
    "chain_getFinalizedHead",
    "chain_subscribeNewHead",
    "chain_subscribeNewHeads",
    "chain_unsubscribeNewHeads",
    "chain_subscribeFinalizedHeads",
    "chain_unsubscribeFinalizedHeads",
    "state_getRuntimeVersion",
    "state_getMetadata",
    "state_getStorage",
    "state_queryStorageAt",
    "state_getKeysPaged",
    "state_call",
    "state_subscribeRuntimeVersion",
    "state_subscribeStorage",
    "state_unsubscribeStorage",
    "author_submitExtrinsic",
    "author_submitAndWatchExtrinsic",
    "author_unwatchExtrinsic",
    "author_pendingExtrinsics",
    "payment_queryInfo",
}


def test_rpc_methods_lists_what_clients_need(dev_node: NodeProcess) -> None:
    out = dev_node.rpc("rpc_methods")
    assert out["version"] == 1
    methods = out["methods"]
    assert methods == sorted(set(methods))
    missing = CLIENT_NEEDS - set(methods)
    assert not missing, missing


def test_every_listed_method_is_served(dev_node: NodeProcess) -> None:
    """No name in the list answers 'Method not found' (subscriptions: over a WebSocket)."""
    methods = dev_node.rpc("rpc_methods")["methods"]
    with WsClient(dev_node.ws_url) as ws:
        for name in methods:
            resp = ws.call(name, [])
            if "error" in resp:
                assert resp["error"]["code"] != -32601, (name, resp)


def test_unlisted_method_is_not_served(dev_node: NodeProcess) -> None:
    assert "state_traceBlock" not in dev_node.rpc("rpc_methods")["methods"]
    with pytest.raises(RpcCallError) as info:
        dev_node.rpc("state_traceBlock", [])
    assert info.value.code == -32601


def test_submit_and_watch_reports_ready_in_block_finalized(dev_node: NodeProcess) -> None:
    si = SubstrateInterface(url=dev_node.ws_url)
    try:
        call = si.compose_call("System", "remark", {"remark": "0x" + "ab" * 8})
        xt = si.create_signed_extrinsic(call=call, keypair=Keypair.create_from_uri("//Ferdie"))
    finally:
        si.close()
    with WsClient(dev_node.ws_url) as ws:
        sub = ws.result("author_submitAndWatchExtrinsic", [xt.data.to_hex()])
        statuses = []
        while not (statuses and isinstance(statuses[-1], dict) and "finalized" in statuses[-1]):
            msg = ws.recv()
            assert msg["method"] == "author_extrinsicUpdate"
            assert msg["params"]["subscription"] == sub
            statuses.append(msg["params"]["result"])
        assert statuses[0] == "ready"
        assert [next(iter(s)) for s in statuses[1:]] == ["inBlock", "finalized"]
        block = statuses[1]["inBlock"]
        assert statuses[2]["finalized"] == block
        body = dev_node.rpc("chain_getBlock", [block])["block"]["extrinsics"]
        assert xt.data.to_hex() in body
        assert ws.result("author_unwatchExtrinsic", [sub]) in (True, False)


# ---- chain_getBlockHash ------------------------------------------------------------------------


def test_block_hash_forms(dev_node: NodeProcess) -> None:
    dev_node.wait_for_block(2)
    genesis = dev_node.rpc("chain_getBlockHash", [0])
    assert HASH_RE.match(genesis)
    assert dev_node.rpc("chain_getBlockHash", ["0x0"]) == genesis
    assert dev_node.rpc("chain_getBlockHash", ["0x00"]) == genesis
    one = dev_node.rpc("chain_getBlockHash", [1])
    assert dev_node.rpc("chain_getBlockHash", [[0, 1]]) == [genesis, one]
    assert dev_node.rpc("chain_getBlockHash", [[]]) == []
    assert dev_node.rpc("chain_getBlockHash", [10**9]) is None
    assert dev_node.rpc("chain_getBlockHash", [[1, 10**9]]) == [one, None]
    # no argument and null both mean the best block
    for params in ([], [None]):
        best = dev_node.rpc("chain_getBlockHash", params)
        header = dev_node.rpc("chain_getHeader", [best])
        assert dev_node.rpc("chain_getBlockHash", [int(header["number"], 16)]) == best
    assert dev_node.rpc("chain_getHeader", [one])["parentHash"] == genesis


def test_block_hash_of_the_head_is_the_best_header(dev_node: NodeProcess) -> None:
    head = dev_node.rpc("chain_getHeader")
    number = int(head["number"], 16)
    h = dev_node.rpc("chain_getBlockHash", [number])
    assert dev_node.rpc("chain_getHeader", [h]) == head
    block = dev_node.rpc("chain_getBlock", [h])
    assert block["block"]["header"] == head
    # dev chain: every block is final at once, with a one-precommit justification
    [[engine, raw]] = block["justifications"]
    assert bytes(engine) == b"FRNK"
    from chain.consensus import Justification

    just = Justification.decode(bytes(raw))
    assert ("0x" + just.target_hash.hex(), just.target_number) == (h, number)
    assert len(just.precommits) == 1


def test_finalized_head_is_known_and_not_ahead_of_best(dev_node: NodeProcess) -> None:
    fin = dev_node.rpc("chain_getFinalizedHead")
    fin_number = int(dev_node.rpc("chain_getHeader", [fin])["number"], 16)
    assert fin_number <= dev_node.best_number()
    assert dev_node.rpc("chain_getBlockHash", [fin_number]) == fin


# ---- state_getKeysPaged ------------------------------------------------------------------------


def test_keys_paged_walks_system_account_in_order(dev_node: NodeProcess) -> None:
    prefix = "0x" + storage_prefix("System", "Account").hex()
    everything = dev_node.rpc("state_getKeysPaged", [prefix, 1000])
    assert len(everything) >= 6  # the dev accounts
    assert everything == sorted(everything)
    assert all(k.startswith(prefix) for k in everything)

    collected: list[str] = []
    start = prefix  # substrate-interface starts from the prefix itself
    while True:
        page = dev_node.rpc("state_getKeysPaged", [prefix, 2, start])
        assert len(page) <= 2
        assert page == sorted(page)
        assert all(k > start for k in page)  # strictly after the start key
        collected += page
        if len(page) < 2:
            break
        start = page[-1]
    # accounts may be created meanwhile by other modules: compare at one block instead
    at = dev_node.rpc("chain_getBlockHash", [])
    snapshot = dev_node.rpc("state_getKeysPaged", [prefix, 1000, None, at])
    paged: list[str] = []
    start = prefix
    while page := dev_node.rpc("state_getKeysPaged", [prefix, 3, start, at]):
        paged += page
        start = page[-1]
    assert paged == snapshot
    assert len(set(collected)) == len(collected)


def test_keys_paged_count_zero_and_past_the_end(dev_node: NodeProcess) -> None:
    prefix = "0x" + storage_prefix("System", "Account").hex()
    assert dev_node.rpc("state_getKeysPaged", [prefix, 0]) == []
    assert dev_node.rpc("state_getKeysPaged", [prefix, 10, prefix + "ff" * 48]) == []


def test_storage_round_trips_with_query_storage_at(dev_node: NodeProcess) -> None:
    prefix = "0x" + storage_prefix("System", "Account").hex()
    keys = dev_node.rpc("state_getKeysPaged", [prefix, 3])
    at = dev_node.rpc("chain_getBlockHash", [])
    [changes] = dev_node.rpc("state_queryStorageAt", [keys, at])
    assert changes["block"] == at
    for key, value in changes["changes"]:
        assert dev_node.rpc("state_getStorage", [key, at]) == value
        assert dev_node.rpc("state_getStorageSize", [key, at]) == (len(value) - 2) // 2


# ---- metadata ----------------------------------------------------------------------------------


def test_metadata_decodes_as_v14_in_scalecodec(dev_node: NodeProcess) -> None:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    config.update_type_registry(load_type_registry_preset("legacy", use_remote_preset=False))
    raw = dev_node.rpc("state_getMetadata")
    assert raw.startswith("0x6d657461" + "0e")  # "meta", version 14
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
    metadata.decode()
    magic, versioned = metadata.value
    assert magic == "0x6d657461"
    v14 = versioned["V14"]
    pallets = {p["name"]: p["index"] for p in v14["pallets"]}
    core = {
        "System": 0,
        "Timestamp": 1,
        "Balances": 2,
        "TransactionPayment": 3,
        "Sudo": 4,
        "Aura": 5,
        "Faucet": 6,
    }
    assert {name: pallets.get(name) for name in core} == core  # more pallets may follow
    assert len(set(pallets.values())) == len(pallets)
    assert v14["extrinsic"]["version"] == 4
    assert [e["identifier"] for e in v14["extrinsic"]["signed_extensions"]] == [
        "CheckNonZeroSender",
        "CheckSpecVersion",
        "CheckTxVersion",
        "CheckGenesis",
        "CheckMortality",
        "CheckNonce",
        "CheckWeight",
        "ChargeTransactionPayment",
    ]
    paths = {"::".join(t["type"]["path"]) for t in v14["types"]["types"]}
    for needed in (
        "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic",
        "sp_runtime::multiaddress::MultiAddress",
        "sp_core::crypto::AccountId32",
        "sp_runtime::MultiSignature",
        "sp_runtime::generic::era::Era",
        "frame_system::EventRecord",
        "sp_weights::weight_v2::Weight",
    ):
        assert needed in paths, needed


def test_metadata_at_an_old_block_and_at_an_unknown_one(dev_node: NodeProcess) -> None:
    one = dev_node.rpc("chain_getBlockHash", [1])
    assert dev_node.rpc("state_getMetadata", [one]) == dev_node.rpc("state_getMetadata")
    with pytest.raises(RpcCallError) as info:
        dev_node.rpc("state_getMetadata", ["0x" + "cd" * 32])
    assert info.value.code == 4003


# ---- Prometheus --------------------------------------------------------------------------------


def _metrics(dev_node: NodeProcess) -> dict[str, float]:
    assert dev_node.metrics_url is not None
    with urllib.request.urlopen(dev_node.metrics_url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_prometheus_metrics_follow_the_chain(dev_node: NodeProcess) -> None:
    dev_node.wait_for_block(2)
    before = dev_node.best_number()
    m = _metrics(dev_node)
    after = dev_node.best_number()
    best = m['substrate_block_height{status="best"}']
    finalized = m['substrate_block_height{status="finalized"}']
    assert before <= best <= after
    assert 0 < finalized <= best
    ready = m["substrate_ready_transactions_number"]
    assert ready == int(ready)
    assert 0 <= ready <= 8192  # the pool's capacity
    dev_node.wait_for_block(after + 1)
    assert _metrics(dev_node)['substrate_block_height{status="best"}'] > best
