"""The node's side of the Randomness pallet, in process over real LevelDB stores on the dev chain
(one authority, //Alice): the author commits its onion's tip in its first block and reveals the
next value in every block after it, so the mix changes at every block; another node imports those
blocks (re-executing every rule) and rejects a block with a wrong or missing reveal; onions roll
over to a new generation when exhausted, and a restarted node reveals from the same onion.

Blocks are authored for slots in the past (the import's future-slot check never applies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from unittest import mock

import pytest

from chain import onion
from chain.hashing import blake2_256
from chain.primitives import Block, DigestItem, encode_unsigned_extrinsic
from genesis.builder import load_spec
from node.authoring import ONION_SECRET_DOMAIN, OnionKeeper
from node.keystore import KeystoreError, Signer, derive_key
from node.service import Node, NodeConfig
from pallets.aura import pallet as aura
from pallets.executive import InvalidBlock
from pallets.randomness import pallet as randomness

SPEC = load_spec("dev")
ALICE = "//Alice"
SR_ALICE = derive_key(ALICE).signer()
SLOT_MS = 1000
BASE_SLOT = int(time.time() * 1000) // SLOT_MS - 10_000  # about three hours ago
SMALL = 3  # onion length in the roll-over tests

NodeFactory = Callable[..., Node]


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[NodeFactory]:
    opened: list[Node] = []

    def make(dev_key: str | None = ALICE, *, base: Path | None = None) -> Node:
        base = base or tmp_path / f"node{len(opened)}"
        node = Node(NodeConfig(spec=SPEC, base_path=base, prometheus_port=None, dev_key=dev_key))
        opened.append(node)
        return node

    yield make
    for node in opened:
        node.close()


@pytest.fixture
def small_onions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onion, "ONION_LENGTH", SMALL)


def rand_items(block: Block) -> list[bytes]:
    return [
        d.data
        for d in block.header.digest
        if d.kind == DigestItem.PRE_RUNTIME and d.engine == randomness.ENGINE_ID
    ]


def author_chain(node: Node, slots: Sequence[int]) -> list[Block]:
    blocks = []
    for slot in slots:
        imported = node.author.author_block(slot)
        assert imported is not None
        block = node.chain.block(imported.hash)
        assert block is not None
        blocks.append(block)
    return blocks


def hand_built(
    node: Node, parent_hash: bytes, slot: int, rand: Sequence[bytes], *, rules: bool = False
) -> Block:
    """A block on `parent_hash` with these rand payloads, sealed by //Alice (the slot's author),
    executed by `node`'s runtime without Randomness' hook (so it may break its rules) unless
    `rules`."""
    parent = node.db.header(parent_hash)
    assert parent is not None
    state = node.db.state_at_root(parent.state_root)
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
    digest += [DigestItem.pre_runtime(randomness.ENGINE_ID, p) for p in rand]
    with mock.patch.dict(randomness.SPEC.hooks):
        if not rules:
            del randomness.SPEC.hooks["on_initialize"]
        builder = node.executive.begin_block(state, parent_hash, parent.number + 1, digest)
        call = node.runtime.call("Timestamp", "set", now=slot * node.slot_ms)
        builder.apply_inherent(encode_unsigned_extrinsic(node.runtime.call_type.encode(call)))
        built = builder.finalize()
    seal = DigestItem.seal(aura.ENGINE_ID, SR_ALICE.sign(built.header.hash()))
    header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
    return Block(header, built.extrinsics)


# ---- authoring and import ---------------------------------------------------------------------


def test_a_dev_node_commits_then_reveals_and_the_mix_changes_every_block(
    make_node: NodeFactory,
) -> None:
    alice = make_node(ALICE)
    blocks = author_chain(alice, range(BASE_SLOT, BASE_SLOT + 6))
    me = SR_ALICE.public
    # the first block commits the tip of onion #1; the mix stays as it was
    [first] = rand_items(blocks[0])
    kind, tip = randomness.decode_payload(first)
    assert kind == randomness.COMMIT
    state = alice.chain.state_at(blocks[0].hash())
    assert randomness.Onions.get(state, me) == randomness.Onion(tip, 0, 1)
    mix = randomness.current_mix(state)
    assert mix == bytes(32)
    # every later block reveals the value under the last one, and the mix moves with it
    for n, block in enumerate(blocks[1:], start=1):
        items = rand_items(block)
        assert len(items) == 1
        kind, value = randomness.decode_payload(items[0])
        assert kind == randomness.REVEAL
        assert blake2_256(value) == tip
        state = alice.chain.state_at(block.hash())
        assert randomness.Onions.get(state, me) == randomness.Onion(value, n, 1)
        assert randomness.current_mix(state) == blake2_256(mix + value) != mix
        tip, mix = value, randomness.current_mix(state)
        # the rand item follows Aura's pre-runtime item
        kinds = [(d.kind, d.engine) for d in block.header.digest]
        assert kinds[:2] == [(DigestItem.PRE_RUNTIME, b"aura"), (DigestItem.PRE_RUNTIME, b"rand")]

    # another node imports the chain, executing every rule again, to the same mix
    observer = make_node(None)
    for block in blocks:
        observer.importer.import_block(block)
    assert observer.chain.best_hash == blocks[-1].hash()
    assert randomness.current_mix(observer.chain.state_at()) == mix


def test_import_rejects_a_wrong_or_missing_reveal(make_node: NodeFactory) -> None:
    alice = make_node(ALICE)
    blocks = author_chain(alice, range(BASE_SLOT, BASE_SLOT + 3))
    observer = make_node(None)
    for block in blocks:
        observer.importer.import_block(block)
    head = blocks[-1].hash()
    slot = BASE_SLOT + 3
    [last] = rand_items(blocks[-1])
    _, tip = randomness.decode_payload(last)
    wrong = [
        ([randomness.encode_reveal(b"\x42" * 32)], "does not hash"),  # a value of its choice
        ([randomness.encode_reveal(tip)], "does not hash"),  # the last reveal again
        ([], "must reveal"),  # withholding the reveal
        ([randomness.encode_commit(b"\x42" * 32)], "commit while"),  # a fresh onion instead
        ([last, last], "more than one"),
    ]
    for rand, why in wrong:
        block = hand_built(observer, head, slot, rand)
        with pytest.raises(InvalidBlock, match=why):
            observer.importer.import_block(block)
        assert observer.chain.best_hash == head
    # the block Alice's node authors for that slot is accepted
    [good] = author_chain(alice, [slot])
    observer.importer.import_block(good)
    assert observer.chain.best_hash == good.hash()


@pytest.mark.usefixtures("small_onions")
def test_an_exhausted_onion_rolls_over_to_the_next_generation(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    alice = make_node(ALICE)
    caplog.set_level(logging.INFO, logger="node.authoring")
    n = 2 * (SMALL + 1) + 1
    blocks = author_chain(alice, range(BASE_SLOT, BASE_SLOT + n))
    kinds = [randomness.decode_payload(rand_items(b)[0])[0] for b in blocks]
    c, r = randomness.COMMIT, randomness.REVEAL
    assert kinds == [c, r, r, r, c, r, r, r, c]
    state = alice.chain.state_at()
    record = randomness.Onions.get(state, SR_ALICE.public)
    assert record is not None
    assert (record.revealed, record.generation) == (0, 3)
    computed = [m for m in caplog.messages if m.startswith("Computed randomness onion")]
    assert [m.split()[3] for m in computed] == ["#1", "#2", "#3"]  # once per generation
    observer = make_node(None)
    for block in blocks:
        observer.importer.import_block(block)
    assert observer.chain.best_hash == blocks[-1].hash()


@pytest.mark.usefixtures("small_onions")
def test_a_restarted_node_reveals_from_the_same_onion(make_node: NodeFactory) -> None:
    alice = make_node(ALICE)
    author_chain(alice, [BASE_SLOT, BASE_SLOT + 1])
    base = alice.config.base_path
    alice.close()
    again = make_node(ALICE, base=base)
    asyncio.run(again.author._prepare_onions())  # what `run` does before the first slot
    [block] = author_chain(again, [BASE_SLOT + 2])
    kind, _ = randomness.decode_payload(rand_items(block)[0])
    assert kind == randomness.REVEAL
    record = randomness.Onions.get(again.chain.state_at(), SR_ALICE.public)
    assert record is not None
    assert (record.revealed, record.generation) == (2, 1)


def test_a_node_whose_onion_is_not_on_chain_does_not_author(make_node: NodeFactory) -> None:
    """A tip the node cannot open (another seed committed under its key): no invalid block."""
    alice = make_node(ALICE)
    foreign = onion.HashOnion(onion.onion_seed(b"not alice's key", 1), 4)
    commit = randomness.encode_commit(foreign.tip())
    block = hand_built(alice, alice.genesis_hash, BASE_SLOT, [commit], rules=True)
    alice.importer.import_block(block)
    assert alice.chain.best_hash == block.hash()
    assert alice.author.author_block(BASE_SLOT + 1) is None
    assert alice.chain.best_hash == block.hash()


# ---- the keystore's derived secret ------------------------------------------------------------


def test_derive_secret_is_per_key_and_per_domain_and_stable() -> None:
    alice, bob = derive_key(ALICE).signer(), derive_key("//Bob").signer()
    again = derive_key(ALICE).signer()
    a = alice.derive_secret(ONION_SECRET_DOMAIN)
    assert a == again.derive_secret(ONION_SECRET_DOMAIN)
    assert len(a) == 32
    assert a != bob.derive_secret(ONION_SECRET_DOMAIN)
    assert a != alice.derive_secret(b"another purpose")
    assert a not in (blake2_256(ONION_SECRET_DOMAIN + alice.public), alice.public)
    assert a.hex() not in repr(alice)
    with pytest.raises(KeystoreError, match="domain"):
        alice.derive_secret(b"")


@pytest.mark.usefixtures("small_onions")
def test_the_keeper_caches_one_onion_per_key_and_generation() -> None:
    keeper = OnionKeeper()
    signer: Signer = derive_key(ALICE).signer()
    first = keeper.get(signer, 1)
    assert keeper.get(signer, 1) is first
    assert first.length == SMALL
    assert keeper.get(signer, 2).tip() != first.tip()
    keeper.get(signer, 3)
    assert keeper.get(signer, 1) is not first  # generations below the previous one are dropped
