"""Hostile extrinsics at each of a node's entry points, in process on the dev chain: RPC (over
a real WebSocket), the pool, transaction and block gossip, block import.

- Calls nested deeper than `MAX_CALL_DEPTH` (46,001 levels of `Sudo.sudo` is 92 KB; 257 is the
  first refused): refused as undecodable, in one log line per request, never a traceback.
- A signed transaction whose signer is `MultiAddress::Address32` instead of `Id` (the same 32
  bytes): a second encoding of a valid transaction, with another hash and the same valid
  signature, which a third party could get included first. Only `Id` names a signer.

In both cases the pool bans the hash, a peer that gossips it gets an INVALID verdict, and a block
holding it does not import.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import aiohttp
import orjson
import pytest

from chain.codec import encode_u32
from chain.frame.outer import MAX_CALL_DEPTH
from chain.primitives import Block, DigestItem, encode_unsigned_extrinsic
from chain.storage.trie import ordered_root
from node.blocks import encode_block_item
from node.network import BLOCK_ANNOUNCE, TRANSACTIONS, Verdict
from node.rpc.api import build_rpc
from node.service import Node
from node.txpool import PoolError
from pallets.aura import pallet as aura
from pallets.executive import InvalidBlock
from tests.chaingen import dev_account, sign_transfer

pytestmark = pytest.mark.timeout(120)

ALICE = dev_account("alice")  # the dev chain's author and sudo key, and funded
BOB = dev_account("bob")
PEER = "12D3KooWpeer"
TOO_DEEP = (MAX_CALL_DEPTH + 1, 46_001)


@pytest.fixture
def node(dev_node: Node) -> Node:
    return dev_node


# ---- inputs --------------------------------------------------------------------------------------


def nested(node: Node, levels: int, tag: int = 0) -> bytes:
    """An unsigned extrinsic: `levels` calls, `Sudo.sudo` around ... around `System.remark`
    (`tag` varies the remark, so the bytes and hash)."""
    rt = node.runtime
    remark = rt.call_type.encode(rt.call("System", "remark", remark=bytes((tag,))))
    return encode_unsigned_extrinsic(bytes((rt.by_name["Sudo"].index, 0)) * (levels - 1) + remark)


def transfer(node: Node, nonce: int = 0) -> bytes:
    return sign_transfer(node, ALICE, nonce, BOB.public, 10**18)


def as_address32(signed: bytes) -> bytes:
    """The same signed extrinsic with its signer as `MultiAddress::Address32` (0x03)."""
    at = signed.index(b"\x84\x00" + ALICE.public)
    return signed[: at + 1] + b"\x03" + signed[at + 2 :]


def block_with(node: Node, *, applied: tuple[bytes, ...] = (), extra: bytes | None = None) -> Block:
    """A block on the best block, sealed by //Alice, with `applied` executed; `extra` is
    appended to its body (and extrinsics root) without being executed."""
    slot = int(time.time() * 1000) // node.slot_ms - 100
    parent = node.chain.best_header()
    state = node.db.state_at_root(parent.state_root)
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
    builder = node.executive.begin_block(state, node.chain.best_hash, parent.number + 1, digest)
    now = node.runtime.call("Timestamp", "set", now=slot * node.slot_ms)
    builder.apply_inherent(encode_unsigned_extrinsic(node.runtime.call_type.encode(now)))
    for raw in applied:
        builder.apply(raw)
    built = builder.finalize()
    body = built.extrinsics if extra is None else (*built.extrinsics, extra)
    header = dataclasses.replace(built.header, extrinsics_root=ordered_root(list(body)))
    seal = DigestItem.seal(aura.ENGINE_ID, ALICE.sign(header.hash()))
    return Block(dataclasses.replace(header, digest=(*header.digest, seal)), tuple(body))


def gossip(node: Node, kind: int, payload: bytes) -> Verdict:
    return asyncio.run(node.network_handler().on_gossip(PEER, kind, payload))


def rpc(node: Node, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Each request over one WebSocket to the node's RPC server (started on a free port)."""

    async def go() -> list[dict[str, Any]]:
        server = build_rpc(node.rpc_api())
        port = await server.start("127.0.0.1", 0)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"ws://127.0.0.1:{port}") as ws,
            ):
                out = []
                for i, (method, params) in enumerate(requests):
                    await ws.send_bytes(
                        orjson.dumps(
                            {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                        )
                    )
                    out.append(orjson.loads((await ws.receive(timeout=20)).data))
                return out
        finally:
            await server.stop()

    return asyncio.run(go())


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("RPC ")]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert len(caplog.text) < 10_000


# ---- calls nested too deep -----------------------------------------------------------------------


@pytest.mark.parametrize("levels", TOO_DEEP)
def test_every_rpc_entry_point_refuses_a_nested_call_in_one_line(
    node: Node, levels: int, caplog: pytest.LogCaptureFixture
) -> None:
    hexes = [f"0x{nested(node, levels, tag).hex()}" for tag in range(2)]
    raw = nested(node, levels)
    api_input = "0x" + (raw + encode_u32(len(raw))).hex()  # (extrinsic, its length)
    requests: list[tuple[str, list[Any]]] = [
        ("author_submitExtrinsic", [hexes[0]]),
        ("author_submitAndWatchExtrinsic", [hexes[1]]),
        ("payment_queryInfo", [hexes[0]]),
        ("payment_queryFeeDetails", [hexes[0]]),
        ("state_call", ["TransactionPaymentApi_query_info", api_input]),
        ("state_call", ["TransactionPaymentApi_query_fee_details", api_input]),
    ]
    with caplog.at_level(logging.DEBUG):
        answers = rpc(node, requests)
    expected = [1001, 1001, -32602, -32602, 4003, 4003]
    assert [a["error"]["code"] for a in answers] == expected, answers
    for answer in answers:
        assert f"deeper than {MAX_CALL_DEPTH}" in str(answer["error"]), answer
    assert answers[0]["error"]["message"] == "Extrinsic has invalid format"
    lines = refusal_lines(caplog)
    assert len(lines) == len(requests), [r.getMessage() for r in lines]
    assert all(r.levelno == logging.INFO for r in lines)
    assert_no_traceback(caplog)
    assert node.pool.pending() == []


@pytest.mark.parametrize("levels", TOO_DEEP)
def test_the_pool_bans_a_nested_call(node: Node, levels: int) -> None:
    raw = nested(node, levels)
    with pytest.raises(PoolError) as first:
        node.transactions.submit_extrinsic(raw)
    assert (first.value.code, first.value.kind) == (1001, "BadFormat")
    with pytest.raises(PoolError) as again:
        node.transactions.submit_extrinsic(raw)
    assert again.value.code == 1012  # temporarily banned


@pytest.mark.parametrize("levels", TOO_DEEP)
def test_gossip_of_a_nested_call_is_invalid(
    node: Node, levels: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert gossip(node, TRANSACTIONS, nested(node, levels)) is Verdict.INVALID
    assert_no_traceback(caplog)


def test_a_block_holding_a_nested_call_does_not_import(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    block = block_with(node, extra=nested(node, 46_001))
    with pytest.raises(InvalidBlock, match=f"deeper than {MAX_CALL_DEPTH}"):
        node.importer.import_block(block)
    with caplog.at_level(logging.DEBUG):
        assert gossip(node, BLOCK_ANNOUNCE, encode_block_item(block, None)) is Verdict.INVALID
    assert_no_traceback(caplog)
    assert node.chain.best_header().number == 0


def test_the_deepest_call_allowed_is_refused_only_for_what_it_is(node: Node) -> None:
    """256 levels decode: the pool refuses the unsigned sudo as any unsigned call, not as
    undecodable."""
    with pytest.raises(PoolError) as info:
        node.transactions.submit_extrinsic(nested(node, MAX_CALL_DEPTH))
    assert (info.value.code, info.value.kind) == (1010, "Call")
    assert "inherents" in (info.value.data or "")


# ---- MultiAddress::Address32 as the signer ------------------------------------------------------


def test_the_pool_refuses_an_address32_signer_and_takes_the_original(node: Node) -> None:
    original = transfer(node)
    mutant = as_address32(original)
    assert mutant != original
    assert len(mutant) == len(original)
    with pytest.raises(PoolError) as info:
        node.transactions.submit_extrinsic(mutant)
    assert (info.value.code, info.value.message) == (1011, "Unknown Transaction Validity")
    assert info.value.kind == "CannotLookup"
    assert node.transactions.submit_extrinsic(original)[1] == "ready"
    assert node.pool.pending() == [original]
    with pytest.raises(PoolError) as again:
        node.transactions.submit_extrinsic(mutant)
    assert again.value.code == 1012  # banned


def test_rpc_refuses_an_address32_signer_in_one_line(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    mutant = as_address32(transfer(node))
    with caplog.at_level(logging.DEBUG):
        [answer] = rpc(node, [("author_submitExtrinsic", ["0x" + mutant.hex()])])
    assert answer["error"] == {
        "code": 1011,
        "message": "Unknown Transaction Validity",
        "data": "Could not lookup information required to validate the transaction",
    }
    assert len(refusal_lines(caplog)) == 1
    assert_no_traceback(caplog)


def test_gossip_of_an_address32_signer_is_invalid(node: Node) -> None:
    assert gossip(node, TRANSACTIONS, as_address32(transfer(node))) is Verdict.INVALID
    assert node.pool.pending() == []


def test_a_block_holding_an_address32_signer_does_not_import(node: Node) -> None:
    """Consensus: the mutant executes exactly as the original would (same signer, same state
    root), so only the signer rule keeps such a block out."""
    original = transfer(node)
    good = block_with(node, applied=(original,))
    body = tuple(as_address32(x) if x == original else x for x in good.extrinsics)
    header, _ = good.header.without_seal()
    header = dataclasses.replace(header, extrinsics_root=ordered_root(list(body)))
    seal = DigestItem.seal(aura.ENGINE_ID, ALICE.sign(header.hash()))
    mutant = Block(dataclasses.replace(header, digest=(*header.digest, seal)), body)
    with pytest.raises(InvalidBlock, match="Address32"):
        node.importer.import_block(mutant)
    assert gossip(node, BLOCK_ANNOUNCE, encode_block_item(mutant, None)) is Verdict.INVALID
    node.importer.import_block(good)
    assert node.chain.best_hash == good.hash()
