"""The new JSON-RPC spec (chainHead_v1, chainSpec_v1, transaction_v1, transactionWatch_v1,
archive_v1) against the shared dev node over WebSocket: follow events as blocks are produced,
every operation and its events, continue and stopOperation, unpin, the follow limit, archive
reads of an unpinned block, and transactions that land in blocks.

The dev chain finalizes every block as it is authored (newBlock, bestBlockChanged, finalized);
forks, pruning and the other limits are covered in-process by tests/node/test_chainhead.py.
Transactions are sent from //Ferdie, like the other raw RPC tests.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from chain.hashing import blake2_128_concat, blake2_256, storage_prefix
from chain.primitives import Header
from tests.integration.conftest import NodeProcess, WsClient, rpc_response

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FOLLOW_EVENT = "chainHead_v1_followEvent"
CORE_API = "0xdf6acb689907609b"  # blake2_64("Core")
GROUPS = {
    "chainHead_v1": {
        "body",
        "call",
        "continue",
        "follow",
        "header",
        "stopOperation",
        "storage",
        "unfollow",
        "unpin",
    },
    "chainSpec_v1": {"chainName", "genesisHash", "properties"},
    "transaction_v1": {"broadcast", "stop"},
    "transactionWatch_v1": {"submitAndWatch", "unwatch"},
    "archive_v1": {
        "body",
        "call",
        "finalizedHeight",
        "genesisHash",
        "hashByHeight",
        "header",
        "stopStorage",
        "storage",
        "storageDiff",
        "stopStorageDiff",
    },
}


def hx(data: bytes) -> str:
    return "0x" + data.hex()


def account_key(uri: str) -> str:
    who = Keypair.create_from_uri(uri).public_key
    return hx(storage_prefix("System", "Account") + blake2_128_concat(who))


class Follower:
    """One chainHead_v1_follow subscription on a WsClient: its events in order."""

    def __init__(self, ws: WsClient, with_runtime: bool = True) -> None:
        self.ws = ws
        self.sub = ws.result("chainHead_v1_follow", [with_runtime])
        self.initialized = self.next()
        assert self.initialized["event"] == "initialized", self.initialized

    def next(self, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, note in enumerate(self.ws.notifications):
                if note["params"]["subscription"] == self.sub:
                    del self.ws.notifications[i]
                    return note["params"]["result"]  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, "no follow event in time"
            self.ws.recv()

    def until(self, kind: str, op: str | None = None) -> list[dict[str, Any]]:
        out = []
        while True:
            event = self.next()
            out.append(event)
            if event["event"] == kind and (op is None or event.get("operationId") == op):
                return out

    def operation(self, method: str, *params: Any) -> tuple[str, list[dict[str, Any]]]:
        """Start an operation, then its events up to its last one."""
        started = self.ws.result(method, [self.sub, *params])
        assert started["result"] == "started", started
        op = started["operationId"]
        events = []
        while True:
            event = self.next()
            if event.get("operationId") != op:
                continue
            events.append(event)
            if event["event"] not in ("operationStorageItems", "operationWaitingForContinue"):
                return op, events
            if event["event"] == "operationWaitingForContinue":
                assert self.ws.result("chainHead_v1_continue", [self.sub, op]) is None

    def finalized_hash(self) -> str:
        return self.initialized["finalizedBlockHashes"][-1]  # type: ignore[no-any-return]


def test_rpc_methods_lists_each_new_spec_group_whole(dev_node: NodeProcess) -> None:
    methods = set(dev_node.rpc("rpc_methods")["methods"])
    for group, names in GROUPS.items():
        listed = {m.removeprefix(group + "_") for m in methods if m.startswith(group + "_")}
        assert listed == names, group


def test_chain_spec_methods(dev_node: NodeProcess) -> None:
    assert dev_node.rpc("chainSpec_v1_chainName") == dev_node.rpc("system_chain")
    genesis = dev_node.rpc("chain_getBlockHash", [0])
    assert dev_node.rpc("chainSpec_v1_genesisHash") == genesis
    assert dev_node.rpc("archive_v1_genesisHash") == genesis
    assert dev_node.rpc("chainSpec_v1_properties") == dev_node.rpc("system_properties")


def test_follow_reports_blocks_as_they_are_produced(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        f = Follower(ws)
        runtime = f.initialized["finalizedBlockRuntime"]
        assert runtime["type"] == "valid"
        assert runtime["spec"]["specName"] == "cuckoo"
        assert runtime["spec"]["apis"][CORE_API] == 4
        legacy = dev_node.rpc("state_getRuntimeVersion")
        assert runtime["spec"]["specVersion"] == legacy["specVersion"]
        assert runtime["spec"]["transactionVersion"] == legacy["transactionVersion"]
        parent = f.finalized_hash()
        first_best = f.next()
        assert first_best["event"] == "bestBlockChanged"
        for _ in range(2):  # the dev chain: each block is best and final as it is authored
            new = f.next()
            assert new["event"] == "newBlock"
            assert new["parentBlockHash"] in (parent, first_best["bestBlockHash"])
            assert new["newRuntime"] is None
            assert f.next() == {"event": "bestBlockChanged", "bestBlockHash": new["blockHash"]}
            assert f.next() == {
                "event": "finalized",
                "finalizedBlockHashes": [new["blockHash"]],
                "prunedBlockHashes": [],
            }
            parent = new["blockHash"]
            assert ws.result("chainHead_v1_unpin", [f.sub, parent]) is None
        assert ws.result("chainHead_v1_unfollow", [f.sub]) is None


def test_header_body_storage_and_call_on_a_pinned_block(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        f = Follower(ws)
        at = f.finalized_hash()
        raw = ws.result("chainHead_v1_header", [f.sub, at])
        header = Header.decode(bytes.fromhex(raw[2:]))
        assert hx(header.hash()) == at
        assert dev_node.rpc("chain_getHeader", [at])["number"] == hex(header.number)

        _, [body] = f.operation("chainHead_v1_body", at)
        assert body["event"] == "operationBodyDone"
        assert body["value"] == dev_node.rpc("chain_getBlock", [at])["block"]["extrinsics"]

        alice = account_key("//Alice")
        value = dev_node.rpc("state_getStorage", [alice, at])
        system = hx(storage_prefix("System", "Account"))
        items = [
            {"key": alice, "type": "value"},
            {"key": alice, "type": "hash"},
            {"key": system, "type": "closestDescendantMerkleValue"},
            {"key": hx(b":nothing:here"), "type": "value"},
        ]
        _, events = f.operation("chainHead_v1_storage", at, items, None)
        assert events[-1]["event"] == "operationStorageDone"
        got = [i for e in events[:-1] for i in e["items"]]
        assert got[:2] == [
            {"key": alice, "value": value},
            {"key": alice, "hash": hx(blake2_256(bytes.fromhex(value[2:])))},
        ]
        assert got[2]["key"] == system
        assert len(got[2]["closestDescendantMerkleValue"]) == 66
        assert len(got) == 3

        for function, params in (
            ("Core_version", "0x"),
            ("Metadata_metadata", ""),
            (
                "AccountNonceApi_account_nonce",
                "0x" + Keypair.create_from_uri("//Alice").public_key.hex(),
            ),
        ):
            _, [done] = f.operation("chainHead_v1_call", at, function, params)
            assert done["event"] == "operationCallDone", done
            assert done["output"] == dev_node.rpc("state_call", [function, params or "0x", at])
        _, [failed] = f.operation("chainHead_v1_call", at, "Nothing_here", "0x")
        assert failed["event"] == "operationError"
        assert "Nothing_here" in failed["error"]


def test_whole_state_comes_in_pages_and_stop_operation_ends_one(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        f = Follower(ws)
        at = f.finalized_hash()
        _, events = f.operation(
            "chainHead_v1_storage", at, [{"key": "0x", "type": "descendantsHashes"}], None
        )
        kinds = [e["event"] for e in events]
        assert kinds.count("operationWaitingForContinue") >= 1, kinds
        assert kinds[-1] == "operationStorageDone"
        keys = [
            i["key"] for e in events if e["event"] == "operationStorageItems" for i in e["items"]
        ]
        expected: list[str] = []
        while page := dev_node.rpc(
            "state_getKeysPaged", ["0x", 1000, expected[-1] if expected else None, at]
        ):
            expected += page
        assert keys == expected

        started = ws.result(
            "chainHead_v1_storage", [f.sub, at, [{"key": "0x", "type": "descendantsValues"}], None]
        )
        op = started["operationId"]
        f.until("operationWaitingForContinue", op)
        assert ws.result("chainHead_v1_stopOperation", [f.sub, op]) is None
        assert ws.result("chainHead_v1_continue", [f.sub, op]) is None  # gone: no effect
        _, [done] = f.operation("chainHead_v1_body", at)  # the follow goes on
        assert done["event"] == "operationBodyDone"


def test_an_unpinned_block_is_served_by_archive(dev_node: NodeProcess) -> None:
    dev_node.wait_for_block(5)  # the oldest of `initialized`'s 4 finalized blocks is not genesis
    with WsClient(dev_node.ws_url) as ws:
        f = Follower(ws)
        old = f.initialized["finalizedBlockHashes"][0]
        assert ws.result("chainHead_v1_unpin", [f.sub, [old]]) is None
        resp = ws.call("chainHead_v1_header", [f.sub, old])
        assert resp["error"]["code"] == -32801

        raw = ws.result("archive_v1_header", [old])
        number = Header.decode(bytes.fromhex(raw[2:])).number
        assert ws.result("archive_v1_hashByHeight", [number]) == [old]
        assert ws.result("archive_v1_finalizedHeight") >= number
        assert (
            ws.result("archive_v1_body", [old])
            == dev_node.rpc("chain_getBlock", [old])["block"]["extrinsics"]
        )
        call = ws.result("archive_v1_call", [old, "Core_version", "0x"])
        assert call == {
            "success": True,
            "value": dev_node.rpc("state_call", ["Core_version", "0x", old]),
        }
        failed = ws.result("archive_v1_call", [old, "Nothing_here", "0x"])
        assert failed["success"] is False
        unknown = hx(b"\x07" * 32)
        assert ws.result("archive_v1_header", [unknown]) is None
        assert ws.result("archive_v1_body", [unknown]) is None
        assert ws.result("archive_v1_call", [unknown, "Core_version", "0x"]) is None

        alice = account_key("//Alice")
        sub = ws.result("archive_v1_storage", [old, [{"key": alice, "type": "value"}], None])
        events = []
        while not events or events[-1]["event"] != "storageDone":
            msg = ws.recv()
            if (
                msg.get("method") == "archive_v1_storageEvent"
                and msg["params"]["subscription"] == sub
            ):
                events.append(msg["params"]["result"])
        assert events[0] == {
            "event": "storage",
            "key": alice,
            "value": dev_node.rpc("state_getStorage", [alice, old]),
        }
        assert len(events) == 2

        # the storage diff of a block against its parent: at least System.Number moved
        number_key = hx(storage_prefix("System", "Number"))
        sub = ws.result(
            "archive_v1_storageDiff", [old, [{"key": number_key, "returnType": "value"}], None]
        )
        events = []
        while not events or events[-1]["event"] != "storageDiffDone":
            msg = ws.recv()
            if (
                msg.get("method") == "archive_v1_storageDiffEvent"
                and msg["params"]["subscription"] == sub
            ):
                events.append(msg["params"]["result"])
        assert events[0].get("key") == number_key, events
        assert events[0]["type"] == ("added" if number == 1 else "modified")  # genesis has none
        assert events[0]["value"] == "0x" + number.to_bytes(4, "little").hex()


def test_follow_limit_per_connection(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        subs = [ws.result("chainHead_v1_follow", [False]) for _ in range(4)]
        resp = ws.call("chainHead_v1_follow", [False])
        assert resp["error"]["code"] == -32800
        assert ws.result("chainHead_v1_unfollow", [subs[0]]) is None
        assert isinstance(ws.result("chainHead_v1_follow", [False]), str)


def _transfer(dev_node: NodeProcess, amount: int) -> str:
    si = SubstrateInterface(url=dev_node.ws_url)
    try:
        bob = Keypair.create_from_uri("//Bob").ss58_address
        call = si.compose_call("Balances", "transfer_keep_alive", {"dest": bob, "value": amount})
        xt = si.create_signed_extrinsic(call=call, keypair=Keypair.create_from_uri("//Ferdie"))
        return str(xt.data.to_hex())
    finally:
        si.close()


def test_transaction_broadcast_lands_in_a_block(dev_node: NodeProcess) -> None:
    tx = _transfer(dev_node, 10**15)
    with WsClient(dev_node.ws_url) as ws:
        f = Follower(ws, with_runtime=False)
        op = ws.result("transaction_v1_broadcast", [tx])
        assert isinstance(op, str)
        deadline = time.monotonic() + 20
        found = None
        while found is None:
            assert time.monotonic() < deadline, "the transaction was not included"
            event = f.next()
            if event["event"] == "finalized":
                for block in event["finalizedBlockHashes"]:
                    if tx in ws.result("archive_v1_body", [block]):
                        found = block
        assert ws.result("transaction_v1_stop", [op]) is None
        assert ws.call("transaction_v1_stop", [op])["error"]["code"] == -32602
        # an invalid transaction is accepted as an operation and silently not broadcast (bytes
        # of our own: the pool bans undecodable ones, and the shared node's other tests send some)
        op = ws.result("transaction_v1_broadcast", [hx(b"not a transaction: spec_v1 test")])
        assert ws.result("transaction_v1_stop", [op]) is None
    # over HTTP there is no connection for the operation to belong to
    resp = rpc_response(dev_node.http_url, "transaction_v1_broadcast", [tx])
    assert resp["error"]["code"] == -32601


def test_transaction_watch_reports_validated_included_finalized(dev_node: NodeProcess) -> None:
    tx = _transfer(dev_node, 2 * 10**15)
    with WsClient(dev_node.ws_url) as ws:
        sub = ws.result("transactionWatch_v1_submitAndWatch", [tx])
        events = []
        while not events or events[-1]["event"] not in ("finalized", "invalid", "dropped", "error"):
            msg = ws.recv()
            if msg.get("method") == "transactionWatch_v1_watchEvent":
                assert msg["params"]["subscription"] == sub
                events.append(msg["params"]["result"])
        assert [e["event"] for e in events] == ["validated", "bestChainBlockIncluded", "finalized"]
        block = events[-1]["block"]
        assert events[1]["block"] == block
        assert ws.result("archive_v1_body", [block["hash"]])[block["index"]] == tx
        # the subscription ended with the finalized event
        assert ws.call("transactionWatch_v1_unwatch", [sub])["error"]["code"] == -32602
        again = ws.result("transactionWatch_v1_submitAndWatch", [tx])  # already on chain
        msg = ws.recv()
        assert msg["params"]["subscription"] == again
        assert msg["params"]["result"]["event"] == "invalid"
