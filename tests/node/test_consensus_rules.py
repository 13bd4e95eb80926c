"""The node's consensus rules, in process, with real keys over real LevelDB stores on the local
chain (four validators //Alice..//Dave, 2 s slots, sessions of 10 blocks): block import checks
(author, seal, slot, parent, finality), fork choice and finality, slot-equivocation reports,
authoring once per slot, justifications, the finality gadget's cap at a set change, and the
network handler's gossip verdicts.

Every Node opens a copy of one template store (genesis built and the BLS key derived once per
module); blocks are built with the node's executive for slots far enough in the past and sealed
with the slot author's sr25519 key, which the test picks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import multiprocessing
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sr25519

import node.sigcheck as node_sigcheck
from chain.consensus import (
    PRECOMMIT,
    ConsensusError,
    Justification,
    Precommit,
    SlotEquivocation,
    Vote,
    header_slot,
    vote_payload,
)
from chain.crypto import SignatureScheme, verify_signature
from chain.primitives import (
    Block,
    DigestItem,
    Extrinsic,
    Header,
    encode_unsigned_extrinsic,
)
from chain.storage.trie import ordered_root
from genesis.builder import load_spec
from node.blocks import AlreadyKnown, NotNow, UnknownParent, decode_block_item, encode_block_item
from node.finality.gadget import VoterChain
from node.interfaces import Clock
from node.keystore import Signer, derive_key
from node.network import BLOCK_ANNOUNCE, BLS_PARTIAL, COMMIT, TRANSACTIONS, VOTE, Verdict
from node.service import Node, NodeConfig
from node.sigcheck import AheadChecks, ParallelSignatures, batch_bounds
from node.sync import Syncer
from node.txpool import PoolError
from pallets.aura import pallet as aura
from pallets.executive import (
    BuiltBlock,
    InvalidBlock,
    InvalidTransaction,
    SignatureJob,
    decode_block_extrinsics,
    execute_decoded,
    signature_jobs,
)
from pallets.finality import pallet as finality
from tests.chaingen import sign_call

SPEC = load_spec("local")
SLOT_MS = 2000
NAMES = ("//Alice", "//Bob", "//Charlie", "//Dave")
SR: dict[str, Signer] = {n: derive_key(n).signer() for n in NAMES}
ED: dict[str, Signer] = {n: derive_key(n, "ed25519").signer() for n in NAMES}
SR_BY_PUBLIC = {s.public: s for s in SR.values()}
ALICE, BOB, CHARLIE, DAVE = NAMES
# A slot about three hours ago whose author is //Alice (authorities in genesis order).
BASE_SLOT = (int(time.time() * 1000) // SLOT_MS - 5_000) // 4 * 4
KEY_FILE_PREFIXES = (b"aura".hex(), b"gran".hex())  # keystore file names: hex(type) ++ hex(key)


# ---- nodes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store with the local genesis and one BLS key (//Alice's) but no Aura or finality
    key, so a copy opened with any dev_key holds that validator's keys only."""
    base = tmp_path_factory.mktemp("template")
    Node(NodeConfig(spec=SPEC, base_path=base, prometheus_port=None, dev_key=ALICE)).close()
    keystore = base / "chains" / SPEC.id / "keystore"
    for f in keystore.iterdir():
        if f.name.startswith(KEY_FILE_PREFIXES):
            f.unlink()
    return base


NodeFactory = Callable[..., Node]


@pytest.fixture
def make_node(template: Path, tmp_path: Path) -> Iterator[NodeFactory]:
    opened: list[Node] = []

    def make(
        dev_key: str | None = ALICE, *, base: Path | None = None, clock: Clock = time.time
    ) -> Node:
        if base is None:
            base = tmp_path / f"node{len(opened)}"
            shutil.copytree(template, base)
        config = NodeConfig(spec=SPEC, base_path=base, prometheus_port=None, dev_key=dev_key)
        node = Node(config, clock=clock)
        opened.append(node)
        return node

    yield make
    for node in opened:
        node.close()


@pytest.fixture
def node(make_node: NodeFactory) -> Node:
    return make_node(ALICE)


# ---- blocks -------------------------------------------------------------------------------------


def slot_of(name: str, after: int, n_authorities: int = 4) -> int:
    """The first slot after `after` whose author is `name` (genesis authority order)."""
    index = NAMES.index(name)
    slot = after + 1
    while slot % n_authorities != index:
        slot += 1
    return slot


def build(
    node: Node,
    parent_hash: bytes,
    slot: int,
    *,
    signer: Signer | None = None,
    ts_delta: int = 0,
    txs: Sequence[bytes] = (),
) -> Block:
    """A block on `parent_hash` for `slot`, executed (not stored) by `node`'s runtime and sealed
    by `signer` (default: the slot's author in the parent state)."""
    parent = node.db.header(parent_hash)
    assert parent is not None
    state = node.db.state_at_root(parent.state_root)
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
    builder = node.executive.begin_block(state, parent_hash, parent.number + 1, digest)
    now = slot * node.slot_ms + ts_delta
    ts_call = node.runtime.call_type.encode(node.runtime.call("Timestamp", "set", now=now))
    builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
    for raw in txs:
        builder.apply(raw)
    built = builder.finalize()
    if signer is None:
        author = aura.author_of(aura.Authorities.get(state), slot)
        assert author is not None
        signer = SR_BY_PUBLIC[author]
    seal = DigestItem.seal(aura.ENGINE_ID, signer.sign(built.header.hash()))
    header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
    return Block(header, built.extrinsics)


def chain_on(node: Node, parent_hash: bytes, slots: Sequence[int]) -> list[Block]:
    """Build and import one block per slot, each on the previous one."""
    return chain_on_with(node, parent_hash, [(slot, ()) for slot in slots])


def chain_on_with(
    node: Node, parent_hash: bytes, blocks: Sequence[tuple[int, Sequence[bytes]]]
) -> list[Block]:
    """Build and import one block per (slot, transactions), each on the previous one."""
    out = []
    for slot, txs in blocks:
        block = build(node, parent_hash, slot, txs=txs)
        node.importer.import_block(block)
        out.append(block)
        parent_hash = block.hash()
    return out


def reseal(block: Block, header: Header, signer: Signer) -> Block:
    """`block` with `header` (unsealed) sealed anew by `signer`."""
    seal = DigestItem.seal(aura.ENGINE_ID, signer.sign(header.hash()))
    return Block(dataclasses.replace(header, digest=(*header.digest, seal)), block.extrinsics)


def signed_call(
    node: Node, who: Signer, nonce: int, call: bytes, *, by: Signer | None = None
) -> bytes:
    """An immortal signed extrinsic from `who`, its signature made by `by` (default `who`)."""
    return sign_call(node, who.public, (by or who).sign, nonce, call)


def transfer(node: Node, who: Signer, nonce: int, value: int, *, by: Signer | None = None) -> bytes:
    call = node.runtime.call_type.encode(
        node.runtime.call(
            "Balances", "transfer_keep_alive", dest=("Id", SR[DAVE].public), value=value
        )
    )
    return signed_call(node, who, nonce, call, by=by)


def justification(
    target: Header,
    voters: Sequence[str | Signer],
    *,
    set_id: int = 0,
    round_number: int = 1,
    precommit_for: Header | None = None,
    ancestry: Sequence[Header] = (),
) -> bytes:
    """Precommits of `voters` (dev names or ed25519 signers) for `precommit_for` (default:
    `target`) justifying `target`."""
    pc = precommit_for or target
    pc_hash = pc.hash()
    payload = vote_payload(Vote(PRECOMMIT, pc_hash, pc.number), round_number, set_id)
    keys = [ED[v] if isinstance(v, str) else v for v in voters]
    precommits = tuple(Precommit(pc_hash, pc.number, k.sign(payload), k.public) for k in keys)
    return Justification(
        round_number, set_id, target.hash(), target.number, precommits, tuple(ancestry)
    ).encode()


# ---- 1. import checks ---------------------------------------------------------------------------


def test_genesis_authorities_are_the_four_validators_in_order(node: Node) -> None:
    state = node.chain.state_at()
    assert aura.Authorities.get(state) == [SR[n].public for n in NAMES]
    assert finality.Authorities.get(state) == [ED[n].public for n in NAMES]
    assert finality.CurrentSetId.get(state) == 0
    assert node.slot_ms == SLOT_MS


def test_import_accepts_a_block_sealed_by_the_slot_author(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    imported = node.importer.import_block(block)
    assert imported.hash == block.hash() == node.chain.best_hash
    assert not imported.finalized
    assert node.chain.finalized_hash == node.genesis_hash


def test_import_rejects_a_seal_by_another_validator(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT), signer=SR[ALICE])
    with pytest.raises(InvalidBlock, match="bad Aura seal"):
        node.importer.import_block(block)
    assert node.db.header(block.hash()) is None
    assert node.chain.best_hash == node.genesis_hash


def test_import_rejects_a_bad_seal_signature(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, seal = block.header.without_seal()
    assert seal is not None
    bad = bytearray(seal.data)
    bad[5] ^= 0x01
    header = dataclasses.replace(
        unsealed, digest=(*unsealed.digest, DigestItem.seal(aura.ENGINE_ID, bytes(bad)))
    )
    with pytest.raises(InvalidBlock, match="bad Aura seal"):
        node.importer.import_block(Block(header, block.extrinsics))
    assert node.db.header(header.hash()) is None


def test_import_rejects_an_unsealed_block(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, _ = block.header.without_seal()
    with pytest.raises(InvalidBlock, match="no Aura seal"):
        node.importer.import_block(Block(unsealed, block.extrinsics))
    assert node.db.header(unsealed.hash()) is None


def test_import_rejects_a_seal_of_another_engine(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, seal = block.header.without_seal()
    assert seal is not None
    header = dataclasses.replace(
        unsealed, digest=(*unsealed.digest, DigestItem.seal(b"BABE", seal.data))
    )
    with pytest.raises(InvalidBlock, match="no Aura seal"):
        node.importer.import_block(Block(header, block.extrinsics))


def test_import_rejects_a_block_without_a_slot(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, _ = block.header.without_seal()
    no_slot = dataclasses.replace(unsealed, digest=())
    with pytest.raises(InvalidBlock, match="no Aura pre-runtime digest"):
        node.importer.import_block(reseal(block, no_slot, SR[BOB]))


def test_import_far_future_slot_is_invalid_near_future_is_not_now(node: Node) -> None:
    now_slot = node.author.current_slot()
    far = build(node, node.genesis_hash, slot_of(BOB, now_slot + 5))
    with pytest.raises(InvalidBlock, match="far in the future") as info:
        node.importer.import_block(far)
    assert not isinstance(info.value, NotNow)
    # 1..2 slots ahead: more than FUTURE_DRIFT_MS early, less than FAR_FUTURE_SLOTS.
    near_slot = now_slot + 2
    near = build(node, node.genesis_hash, near_slot)
    assert near_slot * SLOT_MS > time.time() * 1000 + 500
    with pytest.raises(NotNow, match="in the future"):
        node.importer.import_block(near)
    assert node.db.header(near.hash()) is None
    assert node.db.header(far.hash()) is None


def test_import_of_the_current_slot_is_accepted(node: Node) -> None:
    slot = node.author.current_slot()
    block = build(node, node.genesis_hash, slot)
    node.importer.import_block(block)
    assert node.chain.best_hash == block.hash()


@dataclasses.dataclass
class FakeClock:
    now: float  # seconds since the epoch

    def __call__(self) -> float:
        return self.now


def test_future_slots_are_judged_by_the_injected_clock(make_node: NodeFactory) -> None:
    slot = slot_of(BOB, BASE_SLOT)
    clock = FakeClock((slot - 5) * SLOT_MS / 1000)  # five slots before `slot` starts
    node = make_node(ALICE, clock=clock)
    assert node.author.current_slot() == slot - 5
    block = build(node, node.genesis_hash, slot)
    with pytest.raises(InvalidBlock, match="far in the future") as info:
        node.importer.import_block(block)
    assert not isinstance(info.value, NotNow)
    clock.now = (slot - 2) * SLOT_MS / 1000
    with pytest.raises(NotNow, match="in the future"):
        node.importer.import_block(block)
    clock.now = (slot * SLOT_MS - 500) / 1000  # FUTURE_DRIFT_MS before the slot starts
    assert node.author.current_slot() == slot - 1
    node.importer.import_block(block)
    assert node.chain.best_hash == block.hash()


def test_import_unknown_parent(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, _ = block.header.without_seal()
    orphan = reseal(block, dataclasses.replace(unsealed, parent_hash=b"\x11" * 32), SR[BOB])
    with pytest.raises(UnknownParent):
        node.importer.import_block(orphan)


def test_import_already_known(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    node.importer.import_block(block)
    with pytest.raises(AlreadyKnown):
        node.importer.import_block(block)


def test_import_rejects_a_wrong_number(node: Node) -> None:
    block = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    unsealed, _ = block.header.without_seal()
    wrong = reseal(block, dataclasses.replace(unsealed, number=2), SR[BOB])
    with pytest.raises(InvalidBlock, match="does not follow its parent"):
        node.importer.import_block(wrong)


def test_import_rejects_a_slot_that_does_not_increase(node: Node) -> None:
    slot = slot_of(BOB, BASE_SLOT)
    (b1,) = chain_on(node, node.genesis_hash, [slot])
    b2 = build(node, b1.hash(), slot + 4)  # //Bob's next slot, then claimed for `slot` again
    unsealed, _ = b2.header.without_seal()
    same = DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))
    replayed = reseal(b2, dataclasses.replace(unsealed, digest=(same,)), SR[BOB])
    with pytest.raises(InvalidBlock, match="slot must increase"):
        node.importer.import_block(replayed)
    assert node.chain.best_hash == b1.hash()
    assert node.db.header(replayed.hash()) is None


def test_import_rejects_blocks_not_descending_from_the_finalized_block(node: Node) -> None:
    s = BASE_SLOT
    a1, a2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    (b1,) = chain_on(node, node.genesis_hash, [s + 3])
    node.importer.finalize(a2.hash(), None)
    assert node.chain.finalized_hash == a2.hash()
    b2 = build(node, b1.hash(), s + 5)  # height 2 on a fork below the finalized #2
    with pytest.raises(InvalidBlock, match="does not descend from the finalized"):
        node.importer.import_block(b2)
    c1 = build(node, node.genesis_hash, s + 6)  # height 1: at or below the finalized height
    with pytest.raises(InvalidBlock, match="does not descend from the finalized"):
        node.importer.import_block(c1)
    a1b = build(node, a1.hash(), s + 7)  # a sibling of the finalized block
    with pytest.raises(InvalidBlock, match="does not descend from the finalized"):
        node.importer.import_block(a1b)
    a3 = build(node, a2.hash(), s + 8)  # on the finalized block: fine
    node.importer.import_block(a3)
    assert node.chain.best_hash == a3.hash()


def test_import_rejects_a_justification_for_another_block(node: Node) -> None:
    a1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    a2 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT), ts_delta=1)
    other = build(node, node.genesis_hash, slot_of(CHARLIE, BASE_SLOT))
    just = justification(other.header, [ALICE, BOB, CHARLIE])
    with pytest.raises(InvalidBlock, match="justification is for another block"):
        node.importer.import_block(a1, just)
    assert node.db.header(a1.hash()) is None
    with pytest.raises(InvalidBlock, match="undecodable justification"):
        node.importer.import_block(a2, b"\x01\x02")
    assert node.db.header(a2.hash()) is None
    assert node.chain.best_hash == node.genesis_hash


# ---- 2. fork choice -----------------------------------------------------------------------------


def test_fork_choice_longest_chain_and_first_seen_on_ties(node: Node) -> None:
    s = BASE_SLOT
    (a1,) = chain_on(node, node.genesis_hash, [s + 1])
    assert node.chain.best_hash == a1.hash()
    (b1,) = chain_on(node, node.genesis_hash, [s + 2])
    assert node.chain.best_hash == a1.hash()  # equal length: the first stays
    (a2,) = chain_on(node, a1.hash(), [s + 3])
    assert node.chain.best_hash == a2.hash()
    b2, b3 = chain_on(node, b1.hash(), [s + 4, s + 5])
    assert node.chain.best_hash == b3.hash()  # longer wins
    assert [node.db.hash_at(n) for n in range(4)] == [
        node.genesis_hash,
        b1.hash(),
        b2.hash(),
        b3.hash(),
    ]
    assert node.db.leaves() == [(3, b3.hash()), (2, a2.hash())]


def test_finalizing_the_shorter_fork_moves_best_and_the_canonical_index(node: Node) -> None:
    s = BASE_SLOT
    a1, a2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    b1, _, b3 = chain_on(node, node.genesis_hash, [s + 3, s + 5, s + 6])
    assert node.chain.best_hash == b3.hash()
    node.importer.finalize(a1.hash(), None)
    assert node.chain.finalized_hash == a1.hash()
    assert node.chain.best_hash == a2.hash()  # the highest leaf that descends from the final block
    assert [node.db.hash_at(n) for n in range(4)] == [
        node.genesis_hash,
        a1.hash(),
        a2.hash(),
        None,
    ]
    assert node.db.ancestor_at(b3.hash(), 1) == b1.hash()
    assert not node.db.is_descendant(a1.hash(), b3.hash())
    # the next block on the finalized fork becomes best although the dead fork is as high
    (a3,) = chain_on(node, a2.hash(), [s + 7])
    assert node.chain.best_hash == a3.hash()
    assert node.db.hash_at(3) == a3.hash()


def test_finality_never_goes_backwards_or_to_a_conflicting_block(node: Node) -> None:
    s = BASE_SLOT
    a1, a2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    b1, _, b3 = chain_on(node, node.genesis_hash, [s + 3, s + 5, s + 6])
    node.importer.finalize(a2.hash(), None)
    best = node.chain.best_hash
    node.importer.finalize(a1.hash(), None)  # backwards
    assert node.chain.finalized_hash == a2.hash()
    node.importer.finalize(b3.hash(), None)  # higher, but on a conflicting fork
    assert node.chain.finalized_hash == a2.hash()
    assert node.chain.best_hash == best == a2.hash()
    node.importer.finalize(b1.hash(), None)
    assert node.chain.finalized_hash == a2.hash()
    node.importer.finalize(b"\x42" * 32, None)  # unknown
    assert node.chain.finalized_hash == a2.hash()


def test_finalize_prunes_leaves_at_or_below_the_finalized_height(node: Node) -> None:
    s = BASE_SLOT
    a1, a2, a3 = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3])
    (b1,) = chain_on(node, node.genesis_hash, [s + 5])
    (c2,) = chain_on(node, a1.hash(), [s + 6])
    (d3,) = chain_on(node, a2.hash(), [s + 7])
    assert {h for _, h in node.db.leaves()} == {a3.hash(), b1.hash(), c2.hash(), d3.hash()}
    node.importer.finalize(a2.hash(), None)
    leaves = node.db.leaves()
    assert (1, b1.hash()) not in leaves
    assert (2, c2.hash()) not in leaves
    assert leaves == sorted([(3, a3.hash()), (3, d3.hash())])
    assert node.chain.best_hash == a3.hash()  # best already descended from it: unchanged


# ---- 2b. the pool across reorgs ------------------------------------------------------------------


def _statuses(node: Node, raw: bytes) -> list[Any]:
    """Submit `raw` to `node`'s pool with a watcher; the list its statuses go to (the first,
    "ready", is the submission's answer)."""
    seen: list[Any] = []
    seen.append(node.transactions.submit_extrinsic(raw, seen.append)[1])
    return seen


def _hex(block: Block) -> str:
    return "0x" + block.hash().hex()


def test_a_reorg_returns_the_retracted_transactions_to_the_pool(node: Node) -> None:
    s = BASE_SLOT
    kept, moved = transfer(node, SR[BOB], 0, 10**18), transfer(node, SR[CHARLIE], 0, 10**18)
    watch_kept, watch_moved = _statuses(node, kept), _statuses(node, moved)
    (a1,) = chain_on_with(node, node.genesis_hash, [(s + 1, [kept, moved])])
    assert node.pool.pending() == []
    assert watch_moved == ["ready", {"inBlock": _hex(a1)}]
    # a longer fork holding `kept` only: `moved` comes back to the pool, the inherent does not
    _, b2 = chain_on_with(node, node.genesis_hash, [(s + 2, []), (s + 3, [kept])])
    assert node.chain.best_hash == b2.hash()
    assert node.pool.pending() == [moved]
    assert watch_moved == ["ready", {"inBlock": _hex(a1)}, {"retracted": _hex(a1)}, "ready"]
    assert watch_kept == [
        "ready",
        {"inBlock": _hex(a1)},
        {"retracted": _hex(a1)},
        {"inBlock": _hex(b2)},
    ]
    # the pool's transaction goes into the next block, and its watcher hears of it
    (b3,) = chain_on_with(node, b2.hash(), [(s + 5, node.pool.pending())])
    assert node.pool.pending() == []
    assert watch_moved[-1] == {"inBlock": _hex(b3)}
    node.importer.finalize(b3.hash(), None)
    assert watch_moved[-1] == {"finalized": _hex(b3)}
    assert watch_kept[-1] == {"finalized": _hex(b2)}


def test_retracted_transactions_that_are_invalid_now_stay_out(node: Node) -> None:
    s = BASE_SLOT
    first = transfer(node, SR[BOB], 0, 10**18)
    watched = _statuses(node, first)
    chain_on_with(node, node.genesis_hash, [(s + 1, [first])])
    other = transfer(node, SR[BOB], 0, 2 * 10**18)  # the same nonce: `first` is stale there
    chain_on_with(node, node.genesis_hash, [(s + 2, [other]), (s + 3, [])])
    assert node.pool.pending() == []
    assert watched[-1] == "invalid"
    assert node.pool.submit(transfer(node, SR[BOB], 1, 10**18))[1] == "ready"  # nothing banned


def test_finality_that_moves_best_to_another_fork_returns_the_transactions(node: Node) -> None:
    s = BASE_SLOT
    tx = transfer(node, SR[BOB], 0, 10**18)
    a1, _ = chain_on_with(node, node.genesis_hash, [(s + 1, []), (s + 2, [])])
    _b1, b2, _b3 = chain_on_with(node, node.genesis_hash, [(s + 3, []), (s + 5, [tx]), (s + 6, [])])
    assert node.pool.pending() == []
    node.importer.finalize(a1.hash(), None)  # best moves back to the a-fork
    assert node.pool.pending() == [tx]
    assert b2.hash() not in node.pool.awaiting_finality


# ---- 3. slot equivocation -----------------------------------------------------------------------


def _expected_report(node: Node, proof: SlotEquivocation) -> bytes:
    call = node.runtime.call("Finality", "report_equivocation", proof=proof.encode())
    return encode_unsigned_extrinsic(node.runtime.call_type.encode(call))


def test_two_blocks_for_one_slot_by_one_author_are_reported_once(node: Node) -> None:
    slot = slot_of(BOB, BASE_SLOT)
    first = build(node, node.genesis_hash, slot)
    second = build(node, node.genesis_hash, slot, ts_delta=1)
    third = build(node, node.genesis_hash, slot, ts_delta=2)
    assert len({first.hash(), second.hash(), third.hash()}) == 3
    node.importer.import_block(first)
    assert node.pool.pending() == []
    node.importer.import_block(second)
    expected = _expected_report(
        node, SlotEquivocation(SR[BOB].public, slot, first.header, second.header)
    )
    assert node.pool.pending() == [expected]
    node.importer.import_block(third)
    assert node.pool.pending() == [expected]  # one report per offence
    assert len(node.pool) == 1


def test_the_report_holds_a_valid_proof_against_the_author(node: Node) -> None:
    slot = slot_of(CHARLIE, BASE_SLOT)
    first = build(node, node.genesis_hash, slot)
    second = build(node, node.genesis_hash, slot, ts_delta=1)
    node.importer.import_block(first)
    node.importer.import_block(second)
    (raw,) = node.pool.pending()
    proof = SlotEquivocation(SR[CHARLIE].public, slot, first.header, second.header)
    proof.check()
    assert raw == _expected_report(node, proof)
    assert header_slot(first.header) == header_slot(second.header) == slot


def test_blocks_of_different_slots_or_authors_are_not_reported(node: Node) -> None:
    s = BASE_SLOT
    chain_on(node, node.genesis_hash, [s + 1, s + 2])  # Bob, Charlie
    chain_on(node, node.genesis_hash, [s + 5, s + 6])  # Bob, Charlie again: other slots
    assert node.pool.pending() == []


def test_own_block_and_an_imported_one_for_the_same_slot_are_reported(node: Node) -> None:
    slot = slot_of(ALICE, BASE_SLOT)
    own = node.author.author_block(slot)
    assert own is not None
    other = build(node, node.genesis_hash, slot, ts_delta=1)  # "another //Alice process"
    node.importer.import_block(other)
    expected = _expected_report(
        node, SlotEquivocation(SR[ALICE].public, slot, own.header, other.header)
    )
    assert node.pool.pending() == [expected]


# ---- 4. authoring -------------------------------------------------------------------------------


def test_a_node_authors_only_its_own_slots(make_node: NodeFactory) -> None:
    bob = make_node(BOB)
    assert bob.author.author_block(slot_of(ALICE, BASE_SLOT)) is None
    assert bob.author.author_block(slot_of(CHARLIE, BASE_SLOT)) is None
    assert bob.chain.best_hash == bob.genesis_hash
    assert bob.db.last_authored_slot() == -1
    slot = slot_of(BOB, BASE_SLOT)
    imported = bob.author.author_block(slot)
    assert imported is not None
    assert bob.chain.best_hash == imported.hash
    assert header_slot(imported.header) == slot
    assert bob.db.last_authored_slot() == slot
    observer = make_node(None)
    assert not observer.is_authority
    assert observer.author.author_block(slot_of(ALICE, BASE_SLOT)) is None


def test_a_node_never_authors_twice_for_one_slot_also_after_a_restart(
    make_node: NodeFactory,
) -> None:
    node = make_node(ALICE)
    s = BASE_SLOT
    slot = s + 8  # //Alice's
    first = node.author.author_block(slot)
    assert first is not None
    assert node.author.author_block(slot) is None
    # A longer fork of earlier slots becomes best: its state's CurrentSlot is below `slot`.
    _, b2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    assert node.chain.best_hash == b2.hash()
    assert aura.CurrentSlot.get(node.chain.state_at()) < slot
    assert node.author.author_block(slot) is None  # only last_authored_slot stops it
    assert node.chain.best_hash == b2.hash()
    base = node.config.base_path
    node.close()
    again = make_node(ALICE, base=base)
    assert again.db.last_authored_slot() == slot
    assert again.chain.best_hash == b2.hash()
    assert again.author.author_block(slot) is None
    assert again.author.author_block(slot - 4) is None  # older slots neither
    later = again.author.author_block(slot + 4)
    assert later is not None
    assert later.header.parent_hash == b2.hash()
    assert again.db.last_authored_slot() == slot + 4


# ---- 5. justifications --------------------------------------------------------------------------


def test_a_justification_of_three_of_four_finalizes(node: Node) -> None:
    s = BASE_SLOT
    b1, b2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    raw = justification(b1.header, [ALICE, BOB, DAVE])
    node.importer.apply_justification(b1.hash(), raw)
    assert node.chain.finalized_hash == b1.hash()
    assert node.db.justification(b1.hash()) == raw
    assert node.chain.best_hash == b2.hash()
    block, just = decode_block_item(node.chain.block_item(1) or b"")
    assert block == Block(b1.header, b1.extrinsics)
    assert just == raw
    block2, just2 = decode_block_item(node.chain.block_item(2) or b"")
    assert block2.hash() == b2.hash()
    assert just2 is None
    assert node.chain.block_item(3) is None


def test_a_justification_of_two_of_four_is_rejected(node: Node) -> None:
    (b1,) = chain_on(node, node.genesis_hash, [slot_of(BOB, BASE_SLOT)])
    raw = justification(b1.header, [ALICE, BOB])
    with pytest.raises(ConsensusError, match="more than 2/3"):
        node.importer.apply_justification(b1.hash(), raw)
    assert node.chain.finalized_hash == node.genesis_hash
    assert node.db.justification(b1.hash()) is None


@pytest.mark.parametrize(
    ("voters", "kwargs", "error"),
    [
        ([ALICE, BOB, BOB], {}, "two precommits by one voter"),
        ([ALICE, BOB, CHARLIE], {"set_id": 1}, "is for set 1"),
    ],
)
def test_bad_justifications_are_rejected(
    node: Node, voters: list[str], kwargs: dict[str, int], error: str
) -> None:
    (b1,) = chain_on(node, node.genesis_hash, [slot_of(BOB, BASE_SLOT)])
    raw = justification(b1.header, voters, **kwargs)
    with pytest.raises(ConsensusError, match=error):
        node.importer.apply_justification(b1.hash(), raw)
    assert node.chain.finalized_hash == node.genesis_hash


def test_a_justification_by_outsiders_or_with_bad_signatures_is_rejected(node: Node) -> None:
    (b1,) = chain_on(node, node.genesis_hash, [slot_of(BOB, BASE_SLOT)])
    eve = derive_key("//Eve", "ed25519").signer()
    raw = justification(b1.header, [ALICE, BOB, eve])
    with pytest.raises(ConsensusError, match="outside the set"):
        node.importer.apply_justification(b1.hash(), raw)
    good = Justification.decode(justification(b1.header, [ALICE, BOB, CHARLIE]))
    pc = good.precommits[2]
    forged = dataclasses.replace(pc, signature=ED[DAVE].sign(b"something else"))
    bad = dataclasses.replace(good, precommits=(*good.precommits[:2], forged)).encode()
    with pytest.raises(ConsensusError, match="bad precommit signature"):
        node.importer.apply_justification(b1.hash(), bad)
    assert node.chain.finalized_hash == node.genesis_hash


def test_precommits_for_a_descendant_justify_with_ancestry(node: Node) -> None:
    s = BASE_SLOT
    b1, b2, b3 = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3])
    without = justification(b1.header, [ALICE, BOB, CHARLIE], precommit_for=b3.header)
    with pytest.raises(ConsensusError, match="does not descend"):
        node.importer.apply_justification(b1.hash(), without)
    raw = justification(
        b1.header,
        [ALICE, BOB, CHARLIE],
        precommit_for=b3.header,
        ancestry=[b3.header, b2.header],
    )
    node.importer.apply_justification(b1.hash(), raw)
    assert node.chain.finalized_hash == b1.hash()
    assert node.db.justification(b1.hash()) == raw


def test_a_late_justification_of_a_final_block_is_stored(node: Node) -> None:
    s = BASE_SLOT
    b1, b2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    node.importer.apply_justification(b2.hash(), justification(b2.header, [ALICE, BOB, CHARLIE]))
    assert node.chain.finalized_hash == b2.hash()
    late = justification(b1.header, [BOB, CHARLIE, DAVE])
    node.importer.apply_justification(b1.hash(), late)
    assert node.chain.finalized_hash == b2.hash()
    assert node.db.justification(b1.hash()) == late


def test_import_with_a_justification_finalizes_and_serves_it(
    node: Node, make_node: NodeFactory
) -> None:
    s = BASE_SLOT
    _, b2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    raw = justification(b2.header, [ALICE, CHARLIE, DAVE])
    node.importer.apply_justification(b2.hash(), raw)
    follower = make_node(CHARLIE)
    for n in (1, 2):
        item = node.chain.block_item(n)
        assert item is not None
        block, just = decode_block_item(item)
        follower.importer.import_block(block, just)
    assert follower.chain.finalized_hash == b2.hash()
    assert follower.db.justification(b2.hash()) == raw
    assert follower.chain.block_item(2) == node.chain.block_item(2)


def test_import_with_an_insufficient_justification_is_invalid(node: Node) -> None:
    (b1,) = chain_on(node, node.genesis_hash, [slot_of(BOB, BASE_SLOT)])
    b2 = build(node, b1.hash(), slot_of(CHARLIE, BASE_SLOT))
    with pytest.raises(InvalidBlock, match="invalid justification"):
        node.importer.import_block(b2, justification(b2.header, [ALICE, BOB]))
    assert node.chain.finalized_hash == node.genesis_hash
    assert node.db.header(b2.hash()) is None  # the block is refused with it
    assert node.chain.best_hash == b1.hash()


def corrupt_signature(raw: bytes) -> bytes:
    just = Justification.decode(raw)
    pc = just.precommits[0]
    flipped = dataclasses.replace(pc, signature=bytes([pc.signature[0] ^ 1]) + pc.signature[1:])
    return dataclasses.replace(just, precommits=(flipped, *just.precommits[1:])).encode()


@pytest.mark.parametrize(
    ("corrupt", "error"),
    [
        (corrupt_signature, "bad precommit signature"),
        (lambda raw: raw[:-1], "undecodable justification"),
        (lambda raw: raw[:40] + bytes([raw[40] ^ 1]) + raw[41:], "for another block"),
    ],
)
def test_a_valid_block_with_a_corrupted_justification_leaves_the_store_unchanged(
    node: Node, corrupt: Callable[[bytes], bytes], error: str
) -> None:
    """The justification is checked before the block is written: refused, nothing stored, no
    event; the same block with its good justification then imports and is final."""
    b1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    good = justification(b1.header, [ALICE, BOB, CHARLIE])
    before = list(node.db.kv.iterate())
    heard: list[bytes] = []
    node.events.subscribe_imported(lambda imported: heard.append(imported.hash))
    with pytest.raises(InvalidBlock, match=f"invalid justification: .*{error}"):
        node.importer.import_block(b1, corrupt(good))
    assert list(node.db.kv.iterate()) == before
    assert heard == []
    assert node.db.header(b1.hash()) is None
    node.importer.import_block(b1, good)
    assert heard == [b1.hash()]
    assert node.chain.finalized_hash == b1.hash()
    assert node.db.justification(b1.hash()) == good


def test_a_pending_justification_applies_when_its_block_arrives(node: Node) -> None:
    b1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    raw = justification(b1.header, [ALICE, BOB, CHARLIE])
    node.importer.defer_justification(b1.hash(), raw)
    node.importer.import_block(b1)
    assert node.chain.finalized_hash == b1.hash()
    assert node.db.justification(b1.hash()) == raw


# ---- 6. the gadget's cap at a set change ------------------------------------------------------


def test_best_head_is_capped_at_the_first_block_of_a_new_set(node: Node) -> None:
    """A real set change: sudo Session.set_validators([Alice, Bob, Charlie]) in block #1, enacted
    at the session boundary #10 (Finality.CurrentSetId 0 -> 1)."""
    rt = node.runtime
    inner = rt.call(
        "Session", "set_validators", validators=[SR[n].public for n in (ALICE, BOB, CHARLIE)]
    )
    sudo = signed_call(node, SR[ALICE], 0, rt.call_type.encode(rt.call("Sudo", "sudo", call=inner)))
    parent, slot = node.genesis_hash, BASE_SLOT
    hashes = [node.genesis_hash]
    for number in range(1, 13):
        slot += 1
        block = build(node, parent, slot, txs=[sudo] if number == 1 else [])
        node.importer.import_block(block)
        parent = block.hash()
        hashes.append(parent)
    gadget, sets = node.gadget, node.sets
    assert [sets.set_of(h)[0] for h in hashes] == [0] * 10 + [1] * 3
    assert len(sets.set_of(hashes[10])[1]) == 3
    assert len(aura.Authorities.get(node.chain.state_at(hashes[10]))) == 3
    view = VoterChain(node.chain, sets)
    assert node.chain.best_hash == hashes[12]
    assert view.best_head() == (hashes[10], 10)
    assert sets.finalizing_set(hashes[10])[0] == 0  # the old set finalizes the change
    node.importer.finalize(hashes[5], None)
    assert view.best_head() == (hashes[10], 10)
    assert gadget.set_id == 0
    node.importer.finalize(hashes[10], None)
    assert gadget.set_id == 1  # the voter moved to the new set
    assert len(gadget.authorities) == 3
    assert view.best_head() == (hashes[12], 12)


def test_best_head_without_a_set_change_is_the_best_block(node: Node) -> None:
    s = BASE_SLOT
    blocks = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3])
    view = VoterChain(node.chain, node.sets)
    assert view.best_head() == (blocks[-1].hash(), 3)
    node.importer.finalize(blocks[1].hash(), None)
    assert view.best_head() == (blocks[-1].hash(), 3)
    assert view.finalized() == (blocks[1].hash(), 2)


# ---- 7. gossip verdicts -------------------------------------------------------------------------


def _gossip(node: Node, kind: int, payload: bytes) -> Verdict:
    return asyncio.run(node.network_handler().on_gossip("12D3KooWpeer", kind, payload))


def _item(block: Block, just: bytes | None = None) -> bytes:
    return encode_block_item(block, just)


def test_block_gossip_verdicts(node: Node) -> None:
    s = BASE_SLOT
    assert _gossip(node, BLOCK_ANNOUNCE, b"\xff\x01\x02") is Verdict.INVALID
    b1 = build(node, node.genesis_hash, s + 1)
    assert _gossip(node, BLOCK_ANNOUNCE, _item(b1)) is Verdict.ACCEPT
    assert node.chain.best_hash == b1.hash()
    assert _gossip(node, BLOCK_ANNOUNCE, _item(b1)) is Verdict.IGNORE
    b2 = build(node, b1.hash(), s + 2)
    unsealed, _ = b2.header.without_seal()
    orphan = reseal(b2, dataclasses.replace(unsealed, parent_hash=b"\x33" * 32), SR[CHARLIE])
    assert _gossip(node, BLOCK_ANNOUNCE, _item(orphan)) is Verdict.KEEP
    forged = build(node, b1.hash(), s + 2, signer=SR[BOB])
    assert _gossip(node, BLOCK_ANNOUNCE, _item(forged)) is Verdict.INVALID
    early = build(node, b1.hash(), node.author.current_slot() + 2)
    assert _gossip(node, BLOCK_ANNOUNCE, _item(early)) is Verdict.IGNORE
    assert node.chain.best_hash == b1.hash()


def test_known_block_gossip_with_a_justification(node: Node) -> None:
    b1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    node.importer.import_block(b1)
    good = justification(b1.header, [ALICE, BOB, CHARLIE])
    bad = justification(b1.header, [ALICE])
    assert _gossip(node, BLOCK_ANNOUNCE, _item(b1, bad)) is Verdict.INVALID
    assert node.chain.finalized_hash == node.genesis_hash
    assert _gossip(node, BLOCK_ANNOUNCE, _item(b1, good)) is Verdict.IGNORE
    assert node.chain.finalized_hash == b1.hash()


def garbage_payloads(valid: bytes) -> list[bytes]:
    """Bytes that are not a message: empty, short, random, cut, and grown."""
    rng = random.Random(7)
    random_ = [bytes(rng.getrandbits(8) for _ in range(n)) for n in (1, 5, 40, 300)]
    cuts = [valid[:n] for n in (1, len(valid) // 2, len(valid) - 1)]
    flipped = [valid[:n] + bytes([valid[n] ^ 0xFF]) + valid[n + 1 :] for n in (0, 3, 40)]
    return [b"", *random_, *cuts, *flipped, valid + b"\x00", b"\xff" * 64]


def test_garbage_gossip_of_every_kind_is_judged_without_a_traceback(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a peer sends as gossip, the handler returns a verdict (the network bans on
    INVALID, with one log line) and logs no traceback. (A block whose parent hash was hit is
    held: KEEP.)"""
    b1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT))
    valid = {
        BLOCK_ANNOUNCE: _item(b1, justification(b1.header, [ALICE, BOB, CHARLIE])),
        TRANSACTIONS: transfer(node, SR[BOB], 0, 10**18),
        VOTE: b"\x01" + b"\x00" * 140,
        COMMIT: justification(b1.header, [ALICE, BOB, CHARLIE]),
        BLS_PARTIAL: b"\x00" * 200,
    }
    for kind, message in valid.items():
        for payload in garbage_payloads(message):
            assert _gossip(node, kind, payload) is not Verdict.ACCEPT, (kind, payload)
    assert node.db.header(b1.hash()) is None
    assert not [r for r in caplog.records if r.exc_info]


def test_transaction_gossip_accept_and_duplicate(node: Node) -> None:
    tx = transfer(node, SR[BOB], 0, 10**18)
    assert _gossip(node, TRANSACTIONS, tx) is Verdict.ACCEPT
    assert node.pool.pending() == [tx]
    assert _gossip(node, TRANSACTIONS, tx) is Verdict.IGNORE  # duplicate
    assert _gossip(node, TRANSACTIONS, b"\x08\x00") is Verdict.INVALID  # not an extrinsic


def test_transaction_gossip_stale_is_ignored(node: Node) -> None:
    tx = transfer(node, SR[BOB], 0, 10**18)
    b1 = build(node, node.genesis_hash, slot_of(BOB, BASE_SLOT), txs=[tx])
    node.importer.import_block(b1)
    stale = transfer(node, SR[BOB], 0, 2 * 10**18)
    assert _gossip(node, TRANSACTIONS, stale) is Verdict.IGNORE
    assert node.pool.pending() == []


def test_transaction_gossip_with_a_bad_signature_is_invalid(node: Node) -> None:
    forged = transfer(node, SR[BOB], 0, 10**18, by=SR[CHARLIE])
    assert _gossip(node, TRANSACTIONS, forged) is Verdict.INVALID


def test_the_pool_refuses_a_forged_transaction_as_a_bad_signature(node: Node) -> None:
    """What the verdict above relies on: the pool's error says "bad signature" in `data`."""
    forged = transfer(node, SR[BOB], 0, 10**18, by=SR[CHARLIE])
    with pytest.raises(PoolError) as info:
        node.pool.submit(forged)
    assert info.value.code == 1010
    assert "bad signature" in (info.value.data or "")
    assert "bad signature" not in info.value.message
    assert node.pool.pending() == []


# ---- timestamps ---------------------------------------------------------------------------------


def test_a_block_whose_timestamp_is_not_its_slot_is_rejected(node: Node) -> None:
    slot = slot_of(BOB, BASE_SLOT)
    # the runtime refuses the timestamp: building fails, and so would importing such a block
    # (import re-executes it with the same runtime)
    with pytest.raises(InvalidBlock, match="Aura slot"):
        build(node, node.genesis_hash, slot, ts_delta=30 * 24 * 3600 * 1000)  # +30 days
    assert node.author.author_block(slot_of(ALICE, slot)) is not None


# ---- sync ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class FakePeer:
    peer_id: str
    best_number: int


class FakeNetwork:
    """A `node.interfaces.PeerNetwork`: one peer serving `source`'s chain (or what `serve`
    returns), recording requests and reports."""

    PEER = "12D3KooWsource"

    def __init__(self, source: Node, serve: Callable[[int, int], list[bytes]] | None = None):
        self.source = source
        self.serve = serve or (
            lambda start, count: source.network_handler().on_block_request(self.PEER, start, count)
        )
        self.requests: list[tuple[int, int]] = []
        self.reports: list[tuple[str, bool]] = []

    def peers(self) -> list[FakePeer]:
        return [FakePeer(self.PEER, self.source.chain.best_header().number)]

    def best_peer_number(self) -> int:
        return self.source.chain.best_header().number

    def peer_count(self) -> int:
        return 1

    def listen_addresses(self) -> list[str]:
        return []

    async def request_blocks(self, peer_id: str, start: int, count: int) -> list[bytes]:
        assert peer_id == self.PEER
        self.requests.append((start, count))
        return self.serve(start, count)

    def report(self, peer_id: str, reason: str, ban: bool) -> None:
        self.reports.append((reason, ban))

    def broadcast(self, kind: int, payload: bytes) -> int:
        return 0


def _sync(node: Node, net: FakeNetwork, max_steps: int = 10) -> Syncer:
    """Sync `node` from the one peer of `net` until a step makes no progress."""
    syncer = Syncer(node.chain, node.importer, net)
    for _ in range(max_steps):
        if not asyncio.run(syncer._step()):
            break
    return syncer


def test_sync_imports_the_peers_chain_with_its_justifications(
    node: Node, make_node: NodeFactory
) -> None:
    s = BASE_SLOT
    blocks = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3, s + 4, s + 5])
    raw = justification(blocks[2].header, [ALICE, BOB, CHARLIE])
    node.importer.apply_justification(blocks[2].hash(), raw)
    follower = make_node(DAVE)
    net = FakeNetwork(node)
    assert Syncer(follower.chain, follower.importer, net).is_major_syncing()  # 5 blocks behind
    syncer = _sync(follower, net)
    assert not syncer.is_major_syncing()
    assert net.requests == [(1, 5)]
    assert net.reports == []
    assert follower.chain.best_hash == blocks[-1].hash()
    assert follower.chain.finalized_hash == blocks[2].hash()
    assert follower.db.justification(blocks[2].hash()) == raw
    assert syncer.status.imported == 5


def test_sync_from_a_fork_restarts_after_the_finalized_block(
    node: Node, make_node: NodeFactory
) -> None:
    s = BASE_SLOT
    blocks = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3])
    follower = make_node(DAVE)
    (own,) = chain_on(follower, follower.genesis_hash, [s + 7])
    net = FakeNetwork(node)
    _sync(follower, net)
    assert net.requests == [(2, 2), (1, 3)]  # #2 does not attach: again from finalized #0 + 1
    assert net.reports == []
    assert follower.chain.best_hash == blocks[-1].hash()
    assert follower.db.header(own.hash()) is not None


def test_sync_bans_a_peer_that_serves_an_invalid_block(node: Node, make_node: NodeFactory) -> None:
    s = BASE_SLOT
    (b1,) = chain_on(node, node.genesis_hash, [s + 1])
    forged = build(node, b1.hash(), s + 2, signer=SR[DAVE])
    follower = make_node(DAVE)

    def serve(start: int, count: int) -> list[bytes]:
        return [_item(b1), _item(forged)][start - 1 : start - 1 + count]

    net = FakeNetwork(node, serve)
    node.importer.import_block(build(node, b1.hash(), s + 2))  # the peer claims #2
    _sync(follower, net)
    assert follower.chain.best_hash == b1.hash()
    assert len(net.reports) == 1
    reason, ban = net.reports[0]
    assert ban
    assert "invalid block #2" in reason


@pytest.mark.parametrize("is_known", [False, True])
def test_sync_bans_a_peer_that_serves_a_corrupted_justification(
    node: Node, make_node: NodeFactory, caplog: pytest.LogCaptureFixture, is_known: bool
) -> None:
    """A block we lack is refused with it (nothing stored); a block we have keeps its state.
    Either way the peer is banned, and the log has no traceback."""
    s = BASE_SLOT
    b1, b2, b3 = chain_on(node, node.genesis_hash, [s + 1, s + 2, s + 3])
    bad = corrupt_signature(justification(b1.header, [ALICE, BOB, CHARLIE]))
    follower = make_node(DAVE)
    if is_known:  # and a fork of its own: #3 does not attach, so sync goes back to #1
        follower.importer.import_block(b1)
        chain_on(follower, b1.hash(), [s + 5])
    before = list(follower.db.kv.iterate())

    def serve(start: int, count: int) -> list[bytes]:
        blocks = [b1, b2, b3][start - 1 : start - 1 + count]
        return [_item(b, bad if b is b1 else None) for b in blocks]

    net = FakeNetwork(node, serve)
    _sync(follower, net)  # raises if a step fails
    assert net.requests[-1] == (1, 3)
    assert list(follower.db.kv.iterate()) == before
    assert follower.chain.finalized_hash == follower.genesis_hash
    [(reason, ban)] = net.reports
    assert ban
    assert "bad precommit signature" in reason
    assert not [r for r in caplog.records if r.exc_info]


def test_sync_bans_a_peer_that_serves_blocks_out_of_order(
    node: Node, make_node: NodeFactory
) -> None:
    s = BASE_SLOT
    b1, b2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    follower = make_node(DAVE)
    net = FakeNetwork(node, lambda start, count: [_item(b2), _item(b1)])
    _sync(follower, net)
    assert follower.chain.best_hash == follower.genesis_hash
    assert net.reports == [("block response out of order", True)]


def test_block_requests_are_served_from_the_canonical_chain(node: Node) -> None:
    s = BASE_SLOT
    a1, a2 = chain_on(node, node.genesis_hash, [s + 1, s + 2])
    chain_on(node, node.genesis_hash, [s + 5])  # a shorter fork is not served
    handler = node.network_handler()
    items = handler.on_block_request("12D3KooWpeer", 1, 10)
    assert [decode_block_item(i)[0].hash() for i in items] == [a1.hash(), a2.hash()]
    assert handler.on_block_request("12D3KooWpeer", 3, 5) == []


# ---- one pass per extrinsic; signatures on the other cores -----------------------------------


@pytest.fixture
def verified_signatures(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The signatures sr25519 verifies in this process, in order."""
    seen: list[bytes] = []
    verify = sr25519.verify

    def counting(signature: bytes, message: bytes, public: bytes) -> bool:
        seen.append(bytes(signature))
        return bool(verify(signature, message, public))

    monkeypatch.setattr(sr25519, "verify", counting)
    return seen


def _signature(raw: bytes) -> bytes:
    xt = Extrinsic.decode(raw)
    assert xt.signature is not None
    return xt.signature


def test_import_reuses_the_pools_check_of_a_gossiped_transaction(
    node: Node,
    make_node: NodeFactory,
    verified_signatures: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = transfer(node, SR[BOB], 0, 10**18)
    follower, stranger = make_node(DAVE), make_node(CHARLIE)
    follower.pool.submit(raw)  # as gossip brings it: decoded and verified once, here
    block = build(node, node.genesis_hash, slot_of(ALICE, BASE_SLOT), txs=[raw])
    decoded: list[bytes] = []
    decode = Extrinsic.decode

    def counting_decode(data: bytes) -> Extrinsic:
        decoded.append(bytes(data))
        return decode(data)

    monkeypatch.setattr(Extrinsic, "decode", counting_decode)
    verified_signatures.clear()
    follower.importer.import_block(block)
    assert raw not in decoded  # not decoded again ...
    assert _signature(raw) not in verified_signatures  # ... nor verified again
    assert follower.chain.best_hash == block.hash()
    stranger.importer.import_block(block)  # a node that never saw it verifies it
    assert verified_signatures.count(_signature(raw)) == 1
    assert stranger.db.header(block.hash()) == follower.db.header(block.hash())


def _signature_jobs(node: Node, n: int, bad: int | None = None) -> list[SignatureJob]:
    """`n` sr25519 checks by Bob over distinct payloads, the one at `bad` with a wrong
    signature."""
    jobs: list[SignatureJob] = []
    for i in range(n):
        payload = b"payload %d" % i
        signature = SR[BOB].sign(payload if i != bad else b"another payload")
        jobs.append((SignatureScheme.SR25519, signature, payload, SR[BOB].public))
    return jobs


def _batches(jobs: Sequence[SignatureJob], bounds: Sequence[int]) -> list[node_sigcheck.Batch]:
    return [[(int(s), g, p, k) for s, g, p, k in jobs[a:b]] for a, b in itertools.pairwise(bounds)]


def test_signature_checks_in_workers_give_the_verdicts_of_verify_signature(node: Node) -> None:
    workers = ParallelSignatures(workers=1, min_parallel=1)
    workers.warm(timeout=60)
    try:
        for bad in (None, 150):
            jobs = _signature_jobs(node, 200, bad)
            checks = workers.start(jobs)
            assert all(checks(*job) for job in jobs)  # valid for now
            assert checks.settle() is (bad is None)
        assert len(batch_bounds(200)) > 3  # several batches: some the worker's, some taken back
    finally:
        workers.close()


def test_the_workers_and_this_process_check_each_batch_once(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker loop (`serve`, here in a thread) takes batches from the front while `settle`
    takes them from the back: every check is made exactly once, by one side or the other."""
    made: list[tuple[int, bytes, bytes, bytes]] = []
    reference = node_sigcheck.verify_batch

    def counting(jobs: Sequence[tuple[int, bytes, bytes, bytes]]) -> list[bool]:
        made.extend(jobs)
        return reference(jobs)

    monkeypatch.setattr(node_sigcheck, "verify_batch", counting)
    counter = multiprocessing.Array("q", 3)
    mine, theirs = multiprocessing.Pipe()
    worker = threading.Thread(target=node_sigcheck.serve, args=(theirs, counter), daemon=True)
    worker.start()
    try:
        assert mine.poll(30)
        assert mine.recv() == ("ready",)
        jobs = _signature_jobs(node, 300, bad=299)
        bounds = batch_bounds(len(jobs))
        batches = _batches(jobs, bounds)
        counter[0], counter[1], counter[2] = 7, 0, len(batches)
        mine.send((7, batches, None))

        class Owner:
            def broken(self) -> None:
                raise AssertionError("the worker failed")

        source = node_sigcheck._Workers(Owner(), 7, [mine], counter)  # type: ignore[arg-type]
        checks = AheadChecks(jobs, source, bounds, batches)
        assert all(checks(*job) for job in jobs)
        assert checks.settle() is False  # the last check's signature is not Bob's over it
        assert sorted(made) == sorted(_batches(jobs, [0, len(jobs)])[0])  # each once
    finally:
        mine.send(None)
        worker.join(timeout=30)


def test_the_extrinsics_root_from_the_workers_is_ordered_root_of_what_was_sent(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs: list[SignatureJob] = []
    extrinsics = [transfer(node, SR[BOB], nonce, 10**18) for nonce in range(3)]
    for raw in extrinsics:
        xt = Extrinsic.decode(raw)
        assert xt.signature is not None
        jobs.append((SignatureScheme.SR25519, xt.signature, b"payload", SR[BOB].public))
    workers = ParallelSignatures(workers=1, min_parallel=1)
    workers.warm(timeout=60)
    try:
        checks = workers.start(jobs, extrinsics)
        computed_here: list[int] = []

        def inline(values: Sequence[bytes]) -> bytes:
            computed_here.append(len(values))
            return ordered_root(values)

        monkeypatch.setattr(node_sigcheck, "ordered_root", inline)
        assert checks.extrinsics_root(list(extrinsics)) == ordered_root(extrinsics)
        assert computed_here == []  # the worker's answer
        other = [*extrinsics[:2], transfer(node, SR[BOB], 7, 10**18)]
        assert checks.extrinsics_root(other) == ordered_root(other)
        assert computed_here == [3]  # not what was sent: computed here
    finally:
        workers.close()


def test_a_wrong_extrinsics_root_rejects_the_block_when_workers_compute_it(
    node: Node, make_node: NodeFactory
) -> None:
    slot = slot_of(ALICE, BASE_SLOT)
    good = build(
        node, node.genesis_hash, slot, txs=[transfer(node, SR[BOB], n, 10**18) for n in range(3)]
    )
    header = dataclasses.replace(
        good.header, extrinsics_root=bytes(32), digest=good.header.digest[:-1]
    )
    bad = reseal(Block(header, good.extrinsics), header, SR[ALICE])
    parallel = make_node(CHARLIE)
    parallel.signatures.min_parallel = 1
    parallel.signatures.workers = 1
    parallel.signatures.warm(timeout=60)
    with pytest.raises(InvalidBlock, match="extrinsics root mismatch"):
        parallel.importer.import_block(bad)
    parallel.importer.import_block(good)
    assert parallel.chain.best_hash == good.hash()


def _unchecked_block(node: Node, slot: int, txs: list[bytes]) -> BuiltBlock:
    """Block #1 at `slot` with `txs`, built by a faulty author who checks no signature
    (unsealed)."""
    parent = node.db.header(node.genesis_hash)
    assert parent is not None
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
    builder = node.executive.begin_block(
        node.db.state_at_root(parent.state_root), node.genesis_hash, 1, digest
    )
    now = slot * node.slot_ms
    ts_call = node.runtime.call_type.encode(node.runtime.call("Timestamp", "set", now=now))
    builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
    for raw in txs:
        builder.apply(raw, verified=True)  # checks no signature
    return builder.finalize()


def test_a_bad_signature_rejects_the_block_when_workers_check_it(
    node: Node, make_node: NodeFactory
) -> None:
    txs = [transfer(node, SR[BOB], n, 10**18) for n in range(4)]
    txs[2] = transfer(node, SR[BOB], 2, 10**18, by=SR[CHARLIE])  # signed by another key
    slot = slot_of(ALICE, BASE_SLOT)
    built = _unchecked_block(node, slot, txs)
    bad = reseal(Block(built.header, built.extrinsics), built.header, SR[ALICE])
    good = build(
        node, node.genesis_hash, slot, txs=[*txs[:2], transfer(node, SR[BOB], 2, 10**18), txs[3]]
    )
    serial, parallel = make_node(DAVE), make_node(CHARLIE)
    serial.signatures.workers = 0
    parallel.signatures.min_parallel = 1
    parallel.signatures.workers = 1
    parallel.signatures.warm(timeout=60)
    with pytest.raises(InvalidBlock) as inline_refusal:
        serial.importer.import_block(bad)
    with pytest.raises(InvalidBlock) as worker_refusal:
        parallel.importer.import_block(bad)
    assert str(worker_refusal.value) == str(inline_refusal.value)
    cause = worker_refusal.value.__cause__
    assert isinstance(cause, InvalidTransaction)
    assert cause.kind == "BadProof"
    assert Extrinsic.decode(txs[2]).hash.hex() in str(worker_refusal.value)
    assert parallel.chain.best_hash == parallel.genesis_hash  # nothing written
    parallel.importer.import_block(good)
    serial.importer.import_block(good)
    assert parallel.chain.best_hash == serial.chain.best_hash == good.hash()


@pytest.mark.parametrize("height", [1, 3])
def test_signature_jobs_are_the_checks_execution_asks_for(node: Node, height: int) -> None:
    s = BASE_SLOT
    chain_on(node, node.genesis_hash, [s + 1 + 4 * i for i in range(height - 1)])
    txs = [transfer(node, SR[BOB], n, 10**18) for n in range(3)]
    block = build(node, node.chain.best_hash, slot_of(ALICE, s + 4 * height), txs=txs)
    unsealed, _ = block.header.without_seal()
    parent = node.db.state_at_root(node.chain.best_header().state_root)
    items = decode_block_extrinsics(node.executive, block.extrinsics)
    jobs = signature_jobs(node.executive, parent, unsealed, items)
    asked: list[SignatureJob] = []

    def recording(*job: Any) -> bool:
        asked.append(job)  # type: ignore[arg-type]
        return verify_signature(*job)

    execute_decoded(node.executive, parent, unsealed, items, signature_check=recording)
    assert asked == jobs
    assert len(jobs) == 3


class _Unanswered:
    """A `BatchSource` whose workers never take a batch (they are behind execution): every
    listed check is answered "valid for now", and `settle` takes every batch back."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def take_back(self) -> int | None:
        if self.left == 0:
            return None
        self.left -= 1
        return self.left

    def answers(self, timeout: float) -> list[tuple[int, list[bool]]] | None:
        return []

    def root(self, timeout: float) -> bytes | None:
        return None

    def cancel(self) -> None:
        self.left = 0


def _deferred_checks(jobs: Sequence[SignatureJob]) -> AheadChecks:
    bounds = batch_bounds(len(jobs))
    return AheadChecks(jobs, _Unanswered(len(bounds) - 1), bounds, _batches(jobs, bounds))


def test_checks_answered_for_now_are_settled_at_the_blocks_end(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = BASE_SLOT
    txs = [transfer(node, SR[BOB], n, 10**18) for n in range(40)]
    block = build(node, node.genesis_hash, slot_of(ALICE, s), txs=txs)
    unsealed, _ = block.header.without_seal()
    parent = node.db.state_at_root(node.chain.best_header().state_root)
    items = decode_block_extrinsics(node.executive, block.extrinsics)
    jobs = signature_jobs(node.executive, parent, unsealed, items)
    checks = _deferred_checks(jobs)
    made: list[tuple[Any, ...]] = []
    settling: list[bool] = []

    def counting(*job: Any) -> bool:
        assert settling, "a signature was checked during execution"
        made.append(job)
        return verify_signature(*job)

    def settle() -> bool:
        settling.append(True)
        return checks.settle()

    monkeypatch.setattr(node_sigcheck, "verify_signature", counting)
    built = execute_decoded(
        node.executive, parent, unsealed, items, signature_check=checks, settle=settle
    )
    assert built.header.state_root == unsealed.state_root
    # made at settle (the last batch first), each once; none during execution
    assert sorted(made, key=repr) == sorted((tuple(job) for job in jobs), key=repr)
    assert len(made) == len(jobs) == 40


def test_a_bad_signature_answered_for_now_refuses_the_block_as_serial_checking_does(
    node: Node,
) -> None:
    txs = [transfer(node, SR[BOB], n, 10**18) for n in range(6)]
    txs[3] = transfer(node, SR[BOB], 3, 10**18, by=SR[CHARLIE])  # signed by another key
    built = _unchecked_block(node, slot_of(ALICE, BASE_SLOT), txs)
    parent = node.db.state_at(node.genesis_hash)
    items = decode_block_extrinsics(node.executive, built.extrinsics)
    jobs = signature_jobs(node.executive, parent, built.header, items)
    checks = _deferred_checks(jobs)
    with pytest.raises(InvalidBlock) as serial:
        execute_decoded(node.executive, parent, built.header, items)
    with pytest.raises(InvalidBlock) as deferred:
        execute_decoded(
            node.executive,
            parent,
            built.header,
            items,
            signature_check=checks,
            settle=checks.settle,
        )
    assert str(deferred.value) == str(serial.value)
    assert Extrinsic.decode(txs[3]).hash.hex() in str(deferred.value)
    cause = deferred.value.__cause__
    assert isinstance(cause, InvalidTransaction)
    assert cause.kind == "BadProof"


def test_the_first_block_that_needs_workers_starts_them_and_is_checked_inline(
    node: Node,
) -> None:
    workers = ParallelSignatures(workers=1, min_parallel=1)
    try:
        jobs = _signature_jobs(node, 100, bad=3)
        first = workers.start(jobs)  # starts the worker, does not wait for it
        assert [first(*job) for job in jobs[:5]] == [True, True, True, False, True]  # inline
        assert first.settle() is True  # nothing was answered "for now"
        workers.warm(timeout=60)
        second = workers.start(jobs)
        assert all(second(*job) for job in jobs)  # now the worker's: valid for now
        assert second.settle() is False
    finally:
        workers.close()
