"""`state_getStorage` reads of the best state are remembered by state root (node/rpc/api.py), and
the chain database remembers the best block and its state between writes (node/chaindb.py):
answers still follow every new block, and a key is still checked before the block."""

from __future__ import annotations

import pytest

from chain.hashing import blake2_128_concat, storage_prefix
from node.rpc.api import STORAGE_MEMO_ENTRIES, UNKNOWN_BLOCK, NodeRpc
from node.rpc.server import INVALID_PARAMS, RpcError
from node.service import Node
from tests.node.test_hostile_extrinsics import ALICE, block_with, transfer


@pytest.fixture
def node(dev_node: Node) -> Node:
    return dev_node


ALICE_KEY = "0x" + (storage_prefix("System", "Account") + blake2_128_concat(ALICE.public)).hex()


def read_best(node: Node, key: str) -> str | None:
    """The value at the best block, read from the database without the RPC layer."""
    header = node.db.header(node.db.kv.get(b"m:best") or b"")
    assert header is not None
    value = node.db.state_at_root(header.state_root).get(bytes.fromhex(key[2:]))
    return None if value is None else "0x" + value.hex()


def test_answers_follow_new_blocks(node: Node) -> None:
    api: NodeRpc = node.rpc_api()
    genesis = node.chain.best_hash
    before = api.state_get_storage([ALICE_KEY])
    assert before is not None
    assert api.state_get_storage([ALICE_KEY]) == before  # from the memo now
    node.importer.import_block(block_with(node, applied=(transfer(node),)))
    assert node.chain.best_hash != genesis
    after = api.state_get_storage([ALICE_KEY])
    assert after == read_best(node, ALICE_KEY)
    assert after != before  # the transfer and its fee
    assert api.state_get_storage([ALICE_KEY]) == after
    # an older block still answers its own state, and does not disturb the memo
    assert api.state_get_storage([ALICE_KEY, "0x" + genesis.hex()]) == before
    assert api.state_get_storage([ALICE_KEY, None]) == after


def test_a_bad_key_or_block_is_refused_as_before(node: Node) -> None:
    api = node.rpc_api()
    api.state_get_storage([ALICE_KEY])
    with pytest.raises(RpcError) as bad_key:
        api.state_get_storage(["0xzz", "0x" + "00" * 32])
    assert bad_key.value.code == INVALID_PARAMS  # the key is checked before the block
    with pytest.raises(RpcError) as unknown:
        api.state_get_storage([ALICE_KEY, "0x" + "00" * 32])
    assert unknown.value.code == UNKNOWN_BLOCK
    assert api.state_get_storage([ALICE_KEY.upper().replace("0X", "0x")]) == api.state_get_storage(
        [ALICE_KEY]
    )


def test_missing_keys_and_a_full_memo(node: Node) -> None:
    api = node.rpc_api()
    absent = "0x" + "ab" * 40
    assert api.state_get_storage([absent]) is None
    assert api.state_get_storage([absent]) is None
    for i in range(STORAGE_MEMO_ENTRIES + 10):
        assert api.state_get_storage([f"0x{i:08x}"]) is None
    assert api.state_get_storage([ALICE_KEY]) == read_best(node, ALICE_KEY)


def test_chaindb_best_follows_its_writes(node: Node) -> None:
    db = node.db
    genesis = db.best_hash()
    state = db.state_at(genesis)
    assert db.state_at(genesis) is state  # remembered
    node.importer.import_block(block_with(node))
    best = db.best_hash()
    assert best != genesis
    assert best == db.kv.get(b"m:best")
    assert db.state_at(best).root == node.chain.best_header().state_root
    assert db.state_at(genesis).root == state.root
