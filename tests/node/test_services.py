"""The node's services alone, each built with fakes of the protocols it takes
(node/interfaces.py): no database, no runtime, no network. The consensus rules themselves are
tested on real nodes in test_consensus_rules.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from chain.consensus import BlsPartial
from chain.primitives import Block, Header
from node.blocks import AlreadyKnown, NotNow, UnknownParent, decode_block_item, encode_block_item
from node.finality.bls_driver import BlsDriver
from node.interfaces import ImportedBlock
from node.netbridge import NetworkLink, NodeNetworkHandler
from node.network import (
    BLOCK_ANNOUNCE,
    BLS_PARTIAL,
    COMMIT,
    TRANSACTIONS,
    VOTE,
    NetworkError,
    Status,
    Verdict,
)
from node.notifications import ChainEvents
from node.txpool import PoolError
from pallets.executive import InvalidBlock, InvalidTransaction

PEER = "12D3KooWpeer"


def header(number: int, parent: bytes = b"\x00" * 32) -> Header:
    return Header(parent, number, b"\x01" * 32, b"\x02" * 32)


def chain_of(length: int) -> list[Block]:
    """`length` blocks #0.. each on the previous one (headers only, no extrinsics)."""
    blocks: list[Block] = []
    parent = b"\x00" * 32
    for number in range(length):
        block = Block(header(number, parent), ())
        blocks.append(block)
        parent = block.hash()
    return blocks


class FakeChain:
    """A `ChainReader` over a list of canonical blocks, the last one best and final."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.genesis_hash = blocks[0].hash()

    @property
    def best_hash(self) -> bytes:
        return self.blocks[-1].hash()

    def best_header(self) -> Header:
        return self.blocks[-1].header

    @property
    def finalized_hash(self) -> bytes:
        return self.best_hash

    def finalized_header(self) -> Header:
        return self.best_header()

    def hash_at(self, number: int) -> bytes | None:
        return self.blocks[number].hash() if 0 <= number < len(self.blocks) else None

    def block_item(self, number: int) -> bytes | None:
        if not 0 <= number < len(self.blocks):
            return None
        return encode_block_item(self.blocks[number], None)

    def state_at(self, block_hash: bytes | None = None) -> dict[bytes, bytes]:
        return {}  # empty storage: every storage item reads as its default


@dataclasses.dataclass
class Recorder:
    """Every fake below: records the calls it gets, answers what it was told."""

    calls: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    raises: Exception | None = None
    verdict: Verdict = Verdict.ACCEPT

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.raises is not None:
            raise self.raises

    # BlockImport
    def import_block(self, block: Block, justification: bytes | None = None) -> None:
        self._call("import_block", block, justification)

    def apply_justification(self, block_hash: bytes, raw: bytes) -> None:
        self._call("apply_justification", block_hash, raw)

    # PeerTransactions
    def submit_from_peer(self, raw: bytes) -> None:
        self._call("submit_from_peer", raw)

    # FinalityGossip
    def on_vote(self, raw: bytes) -> Verdict:
        self._call("on_vote", raw)
        return self.verdict

    def on_commit(self, raw: bytes) -> Verdict:
        self._call("on_commit", raw)
        return self.verdict

    # BlsPartials
    async def on_partial(self, raw: bytes) -> Verdict:
        self._call("on_partial", raw)
        return self.verdict

    # SyncTrigger
    def wake(self) -> None:
        self._call("wake")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@dataclasses.dataclass
class Handler:
    chain: FakeChain
    blocks: Recorder
    transactions: Recorder
    finality: Recorder
    bls: Recorder
    sync: Recorder
    handler: NodeNetworkHandler

    def gossip(self, kind: int, payload: bytes) -> Verdict:
        return asyncio.run(self.handler.on_gossip(PEER, kind, payload))


@pytest.fixture
def h() -> Handler:
    chain = FakeChain(chain_of(3))
    fakes = [Recorder() for _ in range(5)]
    blocks, transactions, finality, bls, sync = fakes
    handler = NodeNetworkHandler(
        chain=chain,
        blocks=blocks,
        transactions=transactions,
        finality=finality,
        bls=bls,
        sync=sync,
    )
    return Handler(chain, blocks, transactions, finality, bls, sync, handler)


# ---- the network handler ------------------------------------------------------------------------


def test_finality_messages_go_to_the_gadget_with_its_verdict(h: Handler) -> None:
    h.finality.verdict = Verdict.KEEP
    assert h.gossip(VOTE, b"vote") is Verdict.KEEP
    assert h.gossip(COMMIT, b"commit") is Verdict.KEEP
    assert h.finality.calls == [("on_vote", (b"vote",)), ("on_commit", (b"commit",))]
    h.bls.verdict = Verdict.INVALID
    assert h.gossip(BLS_PARTIAL, b"partial") is Verdict.INVALID
    assert h.bls.calls == [("on_partial", (b"partial",))]
    assert h.gossip(99, b"?") is Verdict.IGNORE


def test_bls_partials_are_ignored_without_a_driver(h: Handler) -> None:
    handler = NodeNetworkHandler(
        chain=h.chain,
        blocks=h.blocks,
        transactions=h.transactions,
        finality=h.finality,
        bls=None,
        sync=h.sync,
    )
    assert asyncio.run(handler.on_gossip(PEER, BLS_PARTIAL, b"partial")) is Verdict.IGNORE


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (None, Verdict.ACCEPT),
        (PoolError.invalid(InvalidTransaction("BadFormat", "x")), Verdict.INVALID),
        (PoolError.invalid(InvalidTransaction("BadProof")), Verdict.INVALID),
        (PoolError.invalid(InvalidTransaction("BadSigner")), Verdict.INVALID),
        (PoolError.invalid(InvalidTransaction("CannotLookup", "x")), Verdict.INVALID),
        (PoolError.invalid(InvalidTransaction("Stale")), Verdict.IGNORE),
        (PoolError.invalid(InvalidTransaction("Call", "rate limited")), Verdict.IGNORE),
        (PoolError(1012, "Transaction is temporarily banned"), Verdict.IGNORE),
        (PoolError(1013, "Transaction Already Imported"), Verdict.IGNORE),
    ],
)
def test_transaction_verdicts_follow_the_pool(
    h: Handler, error: PoolError | None, verdict: Verdict
) -> None:
    h.transactions.raises = error
    assert h.gossip(TRANSACTIONS, b"tx") is verdict
    assert h.transactions.calls == [("submit_from_peer", (b"tx",))]


@pytest.mark.parametrize(
    ("error", "verdict", "woken"),
    [
        (None, Verdict.ACCEPT, False),
        (UnknownParent("unknown parent"), Verdict.KEEP, True),
        (NotNow("in the future"), Verdict.IGNORE, False),
        (InvalidBlock("bad Aura seal"), Verdict.INVALID, False),
    ],
)
def test_block_verdicts_follow_the_import(
    h: Handler, error: InvalidBlock | None, verdict: Verdict, woken: bool
) -> None:
    block = chain_of(4)[3]
    h.blocks.raises = error
    assert h.gossip(BLOCK_ANNOUNCE, encode_block_item(block, b"just")) is verdict
    assert h.blocks.calls == [("import_block", (block, b"just"))]
    assert h.sync.names() == (["wake"] if woken else [])


def test_a_known_block_with_a_bad_justification_is_invalid(h: Handler) -> None:
    block = h.chain.blocks[2]
    h.blocks.raises = AlreadyKnown("block already imported")
    assert h.gossip(BLOCK_ANNOUNCE, encode_block_item(block, None)) is Verdict.IGNORE
    assert h.gossip(BLOCK_ANNOUNCE, encode_block_item(block, b"just")) is Verdict.INVALID
    assert h.blocks.names() == ["import_block", "import_block", "apply_justification"]
    assert h.gossip(BLOCK_ANNOUNCE, b"\xff") is Verdict.INVALID


def test_block_requests_are_served_until_the_best_block(h: Handler) -> None:
    items = h.handler.on_block_request(PEER, 1, 10)
    assert [decode_block_item(i)[0] for i in items] == h.chain.blocks[1:]
    assert h.handler.on_block_request(PEER, 3, 2) == []


def test_only_a_peer_ahead_of_us_wakes_the_sync(h: Handler) -> None:
    ahead = dataclasses.make_dataclass("Info", ["best_number"])
    h.handler.on_peer_status(PEER, ahead(2))  # type: ignore[arg-type]
    assert h.sync.names() == []
    h.handler.on_peer_status(PEER, ahead(3))  # type: ignore[arg-type]
    assert h.sync.names() == ["wake"]


# ---- the network link before it runs ----------------------------------------------------------


def test_a_network_link_not_started_has_no_peers() -> None:
    chain = FakeChain(chain_of(3))
    link = NetworkLink(chain)  # type: ignore[arg-type]
    assert not link.is_running
    assert link.broadcast(BLOCK_ANNOUNCE, b"x") == 0
    assert (link.peers(), link.peer_count(), link.best_peer_number()) == ([], 0, None)
    assert link.listen_addresses() == []
    link.update_status()  # nobody to tell
    with pytest.raises(NetworkError):
        asyncio.run(link.request_blocks(PEER, 1, 1))  # type: ignore[arg-type]
    best = chain.blocks[2]
    assert link.status() == Status(2, best.hash(), 2, best.hash())


# ---- chain events -------------------------------------------------------------------------------


def test_listeners_run_in_order_and_a_failing_one_does_not_stop_the_others() -> None:
    events = ChainEvents()
    heard: list[str] = []
    block = ImportedBlock(b"\x07" * 32, header(7), (), {}, finalized=False)

    def failing(_: ImportedBlock) -> None:
        heard.append("failing")
        raise RuntimeError("listener bug")

    def second(_: ImportedBlock) -> None:
        heard.append("second")

    events.subscribe_best(failing)
    events.subscribe_best(second)
    events.subscribe_imported(lambda b: heard.append(f"imported #{b.header.number}"))
    events.publish_best(block)
    events.publish_imported(block)
    assert heard == ["failing", "second", "imported #7"]
    events.unsubscribe_best(failing)
    events.unsubscribe_best(failing)  # twice: no error
    events.publish_best(block)
    assert heard[3:] == ["second"]


def test_finality_listeners_hear_the_block_until_they_unsubscribe() -> None:
    events = ChainEvents()
    heard: list[tuple[bytes, int]] = []

    def listener(block_hash: bytes, h: Header) -> None:
        heard.append((block_hash, h.number))

    events.subscribe_finalized(listener)
    events.publish_finalized(b"\x05" * 32, header(5))
    events.unsubscribe_finalized(listener)
    events.publish_finalized(b"\x06" * 32, header(6))
    assert heard == [(b"\x05" * 32, 5)]


# ---- the BLS driver -----------------------------------------------------------------------------


class FakeCollector:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.partials: list[BlsPartial] = []

    async def on_partial(self, partial: BlsPartial, validators_bls: list[bytes]) -> Verdict:
        self.partials.append(partial)
        return self.verdict

    def ready_proof(self) -> None:
        return None


def test_bls_partials_are_judged_on_our_canonical_chain_only() -> None:
    chain = FakeChain(chain_of(3))
    collector = FakeCollector(Verdict.ACCEPT)
    submitted: list[bytes] = []
    driver = BlsDriver(
        chain=chain,  # type: ignore[arg-type]
        collector=collector,  # type: ignore[arg-type]
        runtime=None,  # type: ignore[arg-type]
        session_length=2,
        gossip=Recorder(),  # type: ignore[arg-type]
        transactions=submitted,  # type: ignore[arg-type]
    )
    ours = BlsPartial(1, 0, 2, chain.blocks[2].hash(), 0, b"\x00" * 96)
    other = dataclasses.replace(ours, block_hash=b"\x09" * 32)
    assert asyncio.run(driver.on_partial(b"\x01\x02")) is Verdict.INVALID
    assert asyncio.run(driver.on_partial(other.encode())) is Verdict.IGNORE
    assert asyncio.run(driver.on_partial(ours.encode())) is Verdict.ACCEPT
    assert collector.partials == [ours]
    assert submitted == []
    driver.close()
