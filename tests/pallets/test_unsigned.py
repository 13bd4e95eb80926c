"""Unsigned transactions (FRAME's ValidateUnsigned) on the dev genesis: validity, blocks (no fee,
weight counted, re-validated on import), the pool (ready order, dedup by tag, bans, pruning) and
the fee API. The proofs are real: headers sealed and votes signed with //Alice's session keys."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chain.codec import encode_u32
from chain.consensus import bitfield_encode, decode_equivocation
from chain.frame.common import DispatchInfo
from chain.hashing import blake2_256
from chain.primitives import DigestItem, Header, encode_unsigned_extrinsic
from chain.storage.overlay import Overlay
from chain.storage.trie import ordered_root
from genesis.builder import Genesis
from node.keystore import derive_key
from node.txpool import PoolError, TxPool
from pallets import weights
from pallets.executive import (
    InvalidBlock,
    InvalidTransaction,
    ValidTransaction,
    execute_block,
)
from pallets.finality import pallet as finality
from pallets.finality.pallet import (
    EQUIVOCATION_LONGEVITY,
    UNSIGNED_PRIORITY,
    EquivocationReported,
    FinalityProof,
)
from pallets.runtime_apis import call_runtime_api
from pallets.slashing import pallet as slashing
from pallets.slashing.pallet import OffenceReported
from pallets.sudo.pallet import Sudid
from pallets.system import pallet as system
from pallets.system.pallet import ExtrinsicSuccess
from tests.pallets.mock import slot_equivocation, vote_equivocation
from tests.pallets.test_executive import ALICE, BOB, UNIT, Chain, at, genesis, records, scale

__all__ = ["genesis", "scale"]  # fixtures

ALICE_AURA = derive_key("//Alice", "sr25519").signer()
ALICE_GRANDPA = derive_key("//Alice", "ed25519").signer()


@pytest.fixture
def chain(genesis: Genesis) -> Chain:
    return Chain(genesis)


def unsigned(chain: Chain, pallet: str, name: str, **args: Any) -> bytes:
    return encode_unsigned_extrinsic(chain.encode_call(pallet, name, **args))


def report_xt(chain: Chain, raw_proof: bytes) -> bytes:
    return unsigned(chain, "Finality", "report_equivocation", proof=raw_proof)


def slot_report(chain: Chain, slot: int = 77, a: bytes = b"a", b: bytes = b"b") -> bytes:
    return report_xt(chain, slot_equivocation(ALICE_AURA, slot, a, b))


def offence_id(raw_proof: bytes) -> bytes:
    return slashing.offence_id("Equivocation", decode_equivocation(raw_proof).offence_key())


# ---- validity -----------------------------------------------------------------------------------


def test_unsigned_call_without_hook_stays_an_inherent_only(chain: Chain) -> None:
    with pytest.raises(InvalidTransaction) as info:
        chain.validate(unsigned(chain, "System", "remark", remark=b"x"))
    assert info.value.kind == "Call"
    assert info.value.detail == "unsigned transactions are inherents, made by the block author"


def test_valid_unsigned_report_has_no_sender_and_provides_the_offence(chain: Chain) -> None:
    raw_proof = slot_equivocation(ALICE_AURA, 77)
    valid, checked = chain.validate(report_xt(chain, raw_proof))
    assert valid == ValidTransaction(
        sender=None,
        nonce=0,
        priority=UNSIGNED_PRIORITY,
        requires=(),
        provides=(offence_id(raw_proof),),
        longevity=EQUIVOCATION_LONGEVITY,
        is_ready=True,
    )
    assert checked.fee == 0
    assert checked.weight == weights.finality_report_equivocation()


def test_invalid_unsigned_report_is_call(chain: Chain) -> None:
    with pytest.raises(InvalidTransaction) as info:
        chain.validate(report_xt(chain, b"\x00garbage"))
    assert info.value.kind == "Call"
    assert "refused" in info.value.detail


def test_signed_submission_of_an_unsigned_only_call_is_invalid(chain: Chain) -> None:
    """It would pay no fee: a signed one is refused by the pool and by blocks."""
    call = chain.encode_call("Finality", "report_equivocation", proof=b"x")
    xt = chain.sign(ALICE, call, 0)
    with pytest.raises(InvalidTransaction) as info:
        chain.validate(xt)
    assert info.value.kind == "Call"
    assert "unsigned transaction only" in info.value.detail
    with pytest.raises(InvalidTransaction):
        chain.begin().apply(xt)


def test_root_dispatch_of_an_unsigned_only_call_is_bad_origin(chain: Chain) -> None:
    inner = chain.runtime.call("Finality", "report_equivocation", proof=b"x")
    call = chain.encode_call("Sudo", "sudo", call=inner)
    state = chain.state(chain.build([chain.sign(ALICE, call, 0)]))
    assert Sudid(("Err", "BadOrigin")) in at(state, 1)


# ---- blocks -------------------------------------------------------------------------------------


def test_block_applies_unsigned_report_free_and_counts_its_weight(chain: Chain) -> None:
    xt = slot_report(chain)
    alice_before = system.get_account(chain.head, ALICE.public_key)
    builder = chain.begin()
    weight_before = builder.weight
    outcome = builder.apply(xt)
    assert outcome.success
    base = chain.runtime.config.transaction_payment.extrinsic_base_weight
    assert (
        builder.weight.ref_time
        == weight_before.ref_time + weights.finality_report_equivocation().ref_time + base.ref_time
    )
    built = builder.finalize()
    parent, parent_hash = chain.head, chain.head_hash
    chain.import_(built)
    state = chain.head
    events = at(state, 1)
    assert [type(e) for e in events] == [OffenceReported, EquivocationReported, ExtrinsicSuccess]
    assert events[1] == EquivocationReported(ALICE.public_key, "Slot")
    assert events[2] == ExtrinsicSuccess(
        DispatchInfo(weights.finality_report_equivocation(), "Normal", "No")
    )
    # nobody paid: the offender's account is untouched until the slash
    assert system.get_account(state, ALICE.public_key) == alice_before
    # import re-executes it to the same state root
    unsealed = built.header
    again = execute_block(chain.ex, parent, unsealed, built.extrinsics)
    assert again.header.state_root == unsealed.state_root
    assert unsealed.parent_hash == parent_hash


def test_same_offence_twice_in_a_block_is_refused(chain: Chain) -> None:
    builder = chain.begin()
    builder.apply(slot_report(chain))
    with pytest.raises(InvalidTransaction) as info:
        builder.apply(slot_report(chain, a=b"c", b=b"d"))
    assert info.value.kind == "Stale"


def block_on_head(chain: Chain, xts: list[bytes]) -> Header:
    chain.slot += 1
    return Header(
        parent_hash=chain.head_hash,
        number=chain.number + 1,
        state_root=bytes(32),
        extrinsics_root=ordered_root([chain.timestamp_inherent(), *xts]),
        digest=(DigestItem.pre_runtime(b"aura", chain.slot.to_bytes(8, "little")),),
    )


def test_import_revalidates_unsigned_and_refuses_an_invalid_one(chain: Chain) -> None:
    chain.build([slot_report(chain)])
    replay = slot_report(chain, a=b"e", b=b"f")  # the same offence, already reported
    header = block_on_head(chain, [replay])
    with pytest.raises(InvalidBlock, match="is invalid"):
        execute_block(chain.ex, chain.head, header, [chain.timestamp_inherent(), replay])


def test_import_refuses_an_unsigned_call_without_hook(chain: Chain) -> None:
    remark = unsigned(chain, "System", "remark", remark=b"x")
    header = block_on_head(chain, [remark])
    with pytest.raises(InvalidBlock, match="not an inherent"):
        execute_block(chain.ex, chain.head, header, [chain.timestamp_inherent(), remark])


def test_finality_proof_is_stored_through_a_block(chain: Chain) -> None:
    length = chain.genesis.config.session.length
    for _ in range(length):
        chain.build()
    assert chain.number == length
    session_start = chain.head_hash
    p = FinalityProof(1, 0, length, session_start, bitfield_encode([0], 1), b"\x01" * 96)
    built = chain.build([unsigned(chain, "Finality", "submit_finality_proof", proof=p)])
    state = chain.state(built)
    assert finality.FinalityProofs.get(state, 1) == p
    assert [type(e) for e in at(state, 1)] == [finality.FinalityProofStored, ExtrinsicSuccess]
    assert len(records(state)) == 3


# ---- the pool -----------------------------------------------------------------------------------


def make_pool(chain: Chain) -> TxPool:
    return TxPool(chain.ex, lambda: (chain.head, chain.head_hash, chain.number))


def test_pool_takes_unsigned_ready_and_first(chain: Chain) -> None:
    pool = make_pool(chain)
    transfer = chain.transfer(ALICE, BOB, UNIT, tip=10**18)
    pool.submit(transfer)
    xt = slot_report(chain)
    tx_hash, status = pool.submit(xt)
    assert status == "ready"
    assert [tx.raw for tx in pool.ready(chain.head)] == [xt, transfer]
    assert pool.pending() == [transfer, xt]
    assert pool.by_sender.keys() == {ALICE.public_key}  # unsigned txs have no sender slot
    assert pool.ready_count(chain.head) == 2
    assert tx_hash in pool.by_hash


def test_pool_deduplicates_unsigned_by_tag(chain: Chain) -> None:
    pool = make_pool(chain)
    first = slot_report(chain)
    pool.submit(first)
    with pytest.raises(PoolError) as info:
        pool.submit(slot_report(chain, a=b"c", b=b"d"))  # another proof of the same offence
    assert info.value.code == 1014
    with pytest.raises(PoolError) as dup:
        pool.submit(first)
    assert dup.value.code == 1013
    pool.submit(slot_report(chain, slot=78))  # another offence
    assert len(pool) == 2


def test_pool_bans_invalid_unsigned(chain: Chain) -> None:
    pool = make_pool(chain)
    bad = report_xt(chain, b"\x01nonsense")
    with pytest.raises(PoolError) as info:
        pool.submit(bad)
    assert info.value.code == 1010
    with pytest.raises(PoolError) as again:
        pool.submit(bad)
    assert again.value.code == 1012
    assert len(pool) == 0


def test_pool_does_not_ban_stale_or_future_unsigned(chain: Chain) -> None:
    """A stale report (the offence is on chain) or a proof of a block this node lacks may be
    fine elsewhere or later: refused, not banned."""
    pool = make_pool(chain)
    chain.build([slot_report(chain)])
    stale = slot_report(chain, a=b"x", b=b"y")
    p = FinalityProof(1, 0, 10, b"\x09" * 32, bitfield_encode([0], 1), b"\x01" * 96)
    future = unsigned(chain, "Finality", "submit_finality_proof", proof=p)
    for xt in (stale, stale, future, future):
        with pytest.raises(PoolError) as info:
            pool.submit(xt)
        assert info.value.code == 1010
    assert pool.banned == {}


def test_pool_prunes_included_and_drops_invalidated_unsigned(chain: Chain) -> None:
    pool = make_pool(chain)
    statuses: dict[str, list[Any]] = {"a": [], "b": []}
    a = slot_report(chain)
    b = report_xt(chain, vote_equivocation(ALICE_GRANDPA))
    hash_a, _ = pool.submit(a, statuses["a"].append)
    pool.submit(b, statuses["b"].append)
    # a block includes `a` itself and another proof of `b`'s offence (other vote targets)
    other_b = report_xt(
        chain, vote_equivocation(ALICE_GRANDPA, targets=(b"\x07" * 32, b"\x08" * 32))
    )
    built = chain.build([a, other_b])
    block_hash = built.header.hash()
    pool.on_block(
        block_hash, [blake2_256(a), blake2_256(other_b)], finalized=False, state=chain.head
    )
    assert len(pool) == 0
    assert statuses["a"] == [{"inBlock": "0x" + block_hash.hex()}]
    assert statuses["b"] == ["invalid"]
    assert hash_a not in pool.by_hash
    assert pool.by_tag == {}


def test_pool_drops_unsigned_past_its_longevity(chain: Chain) -> None:
    pool = make_pool(chain)
    statuses: list[Any] = []
    pool.submit(slot_report(chain), statuses.append)
    later = Overlay(chain.head)
    system.Number.put(later, chain.number + EQUIVOCATION_LONGEVITY - 1)
    pool.on_block(b"\x01" * 32, [], finalized=False, state=later)
    assert len(pool) == 1
    system.Number.put(later, chain.number + EQUIVOCATION_LONGEVITY)
    pool.on_block(b"\x02" * 32, [], finalized=False, state=later)
    assert len(pool) == 0
    assert statuses == ["dropped"]


@dataclasses.dataclass
class _Db:
    headers: dict[bytes, Header]

    def header(self, block_hash: bytes) -> Header | None:
        return self.headers.get(block_hash)


def test_pool_reports_finality_of_included_transactions(chain: Chain) -> None:
    pool = make_pool(chain)
    seen: list[Any] = []
    xt = slot_report(chain)
    pool.submit(xt, seen.append)
    b1 = chain.build([xt])
    h1 = b1.header.hash()
    pool.on_block(h1, [blake2_256(xt)], finalized=False, state=chain.head)
    b2 = chain.build()
    assert seen == [{"inBlock": "0x" + h1.hex()}]
    db = _Db({h1: b1.header, b2.header.hash(): b2.header})
    pool.on_finalized(db, b2.header.hash())
    assert seen[-1] == {"finalized": "0x" + h1.hex()}
    assert pool.awaiting_finality == {}


# ---- fees ---------------------------------------------------------------------------------------


def test_query_info_of_unsigned_report_is_free(chain: Chain, scale: Any) -> None:
    xt = slot_report(chain)
    data = xt + encode_u32(len(xt))
    info = scale(
        "RuntimeDispatchInfo",
        call_runtime_api(
            chain.ex, chain.head, chain.head_hash, "TransactionPaymentApi_query_info", data
        ),
    )
    assert info["partialFee"] == 0
    assert info["weight"]["ref_time"] == weights.finality_report_equivocation().ref_time
    decoded = chain.runtime.decode_call(
        chain.encode_call("Finality", "report_equivocation", proof=b"")
    )
    assert chain.ex.fee_details(chain.head, len(xt), decoded).inclusion_fee == 0
