"""Runtime APIs through `call_runtime_api` (what `state_call` runs), on the dev genesis: every API
`Core_version` advertises answers, with FRAME's encodings, decoded here by scalecodec from the
types metadata V15 publishes (docs/runtime.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chain.codec import CodecError, encode_compact, encode_u32, encode_u64
from chain.frame.common import WEIGHT, Weight
from chain.hashing import blake2_64
from chain.primitives import Block, DigestItem, Extrinsic
from genesis.builder import Genesis
from pallets import weights
from pallets.runtime import RUNTIME_APIS
from pallets.runtime_apis import (
    APPLY_EXTRINSIC_RESULT,
    BLOCK,
    CHECK_INHERENTS_RESULT,
    INHERENT_DATA,
    RUNTIME_API_DECLS,
    TIMESTAMP_INHERENT,
    TRANSACTION_SOURCE,
    TRANSACTION_VALIDITY,
    RuntimeApiError,
    call_runtime_api,
)
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment import pallet as transaction_payment
from tests.frame.strategies import portable
from tests.pallets.test_executive import ALICE, BOB, CHARLIE, UNIT, Chain, genesis

__all__ = ["genesis"]  # the module-scoped dev genesis fixture


@pytest.fixture
def chain(genesis: Genesis) -> Chain:
    return Chain(genesis)


def api(chain: Chain, method: str, data: bytes = b"") -> bytes:
    return call_runtime_api(chain.ex, chain.head, chain.head_hash, method, data)


def decoded(desc: Any, raw: bytes) -> Any:
    """`raw` decoded by scalecodec from the scale-info description of `desc` (what metadata V15
    tells a client), strictly (no bytes left)."""
    p = portable(desc)
    return p.decode(p.ids[0], raw)


def validate(chain: Chain, xt: bytes, source: str = "External") -> Any:
    data = TRANSACTION_SOURCE.encode(source) + xt + chain.head_hash
    return decoded(
        TRANSACTION_VALIDITY, api(chain, "TaggedTransactionQueue_validate_transaction", data)
    )


# ---- Core_version advertises what is served ------------------------------------------------------


def test_core_version_advertises_exactly_the_declared_apis(chain: Chain) -> None:
    declared = [(a.name, a.version) for a, _ in RUNTIME_API_DECLS]
    assert list(RUNTIME_APIS) == declared
    version = api(chain, "Core_version")
    assert version == chain.runtime.version.encode()
    advertised = chain.runtime.version.api_ids()
    assert advertised == [(blake2_64(n.encode()), v) for n, v in declared]


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("Core_version", b""),
        ("Metadata_metadata_versions", b""),
        ("Metadata_metadata_at_version", encode_u32(15)),
        ("AccountNonceApi_account_nonce", bytes(32)),
        ("TransactionPaymentApi_query_weight_to_fee", WEIGHT.encode(Weight(1_000, 0))),
        ("TransactionPaymentApi_query_length_to_fee", encode_u32(100)),
        ("AuraApi_slot_duration", b""),
        ("AuraApi_authorities", b""),
        ("BlockBuilder_inherent_extrinsics", INHERENT_DATA.encode({"data": []})),
    ],
)
def test_every_method_output_decodes_as_its_declared_type(
    chain: Chain, method: str, data: bytes
) -> None:
    api_name, _, name = method.partition("_")
    (m,) = [a.method(name) for a, _ in RUNTIME_API_DECLS if a.name == api_name]
    assert m is not None
    decoded(m.output, api(chain, method, data))


def test_input_with_bytes_left_over_is_refused(chain: Chain) -> None:
    with pytest.raises(CodecError):
        api(chain, "AccountNonceApi_account_nonce", bytes(33))


def test_unknown_method_of_a_known_api_is_an_error(chain: Chain) -> None:
    with pytest.raises(RuntimeApiError, match="not found"):
        api(chain, "Core_nothing")


# ---- TaggedTransactionQueue ----------------------------------------------------------------------


def test_validate_transaction_of_a_valid_transfer(chain: Chain) -> None:
    xt = chain.transfer(ALICE, BOB, UNIT, tip=3)
    result = validate(chain, xt)
    assert list(result) == ["Ok"]
    ok = result["Ok"]
    tag = "0x" + (ALICE.public_key + encode_u32(0)).hex()
    assert ok["provides"] == [tag]
    assert ok["requires"] == []
    assert (ok["priority"], ok["propagate"]) == (3, True)
    assert ok["longevity"] > 0


def test_validate_transaction_with_a_future_nonce_requires_the_previous_one(chain: Chain) -> None:
    ok = validate(chain, chain.transfer(ALICE, BOB, UNIT, nonce=2))["Ok"]
    assert ok["requires"] == ["0x" + (ALICE.public_key + encode_u32(1)).hex()]


def _tampered(xt: bytes) -> bytes:
    """`xt` with one byte of its destination account flipped: its signature no longer holds."""
    out = bytearray(xt)
    out[-20] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda c: c.transfer(ALICE, BOB, UNIT, signer=CHARLIE.public_key), "BadProof"),
        (lambda c: _tampered(c.transfer(ALICE, BOB, UNIT)), "BadProof"),
        (
            lambda c: c.sign(
                ALICE, c.encode_call("Timestamp", "set", now=1), 0
            ),  # an inherent signed
            "Call",
        ),
    ],
    ids=["wrong-signer", "tampered", "inherent"],
)
def test_validate_transaction_of_an_invalid_transfer(chain: Chain, make: Any, reason: str) -> None:
    assert validate(chain, make(chain)) == {"Err": {"Invalid": reason}}


def test_validate_transaction_of_a_spent_nonce_is_stale(chain: Chain) -> None:
    chain.build([chain.transfer(ALICE, BOB, UNIT)])
    assert validate(chain, chain.transfer(ALICE, BOB, UNIT, nonce=0)) == {
        "Err": {"Invalid": "Stale"}
    }


def test_validate_transaction_of_undecodable_bytes_is_an_invalid_call(chain: Chain) -> None:
    junk = encode_compact(3) + b"\x84\x00\x01"
    assert validate(chain, junk) == {"Err": {"Invalid": "Call"}}


# ---- BlockBuilder --------------------------------------------------------------------------------


def test_apply_extrinsic_dry_runs_on_the_post_state(chain: Chain) -> None:
    chain.build([])
    head_root = chain.head.root
    ok = decoded(
        APPLY_EXTRINSIC_RESULT,
        api(chain, "BlockBuilder_apply_extrinsic", chain.transfer(ALICE, BOB, UNIT)),
    )
    assert ok == {"Ok": {"Ok": ()}}
    failed = decoded(
        APPLY_EXTRINSIC_RESULT,
        api(chain, "BlockBuilder_apply_extrinsic", chain.transfer(ALICE, BOB, 10**36)),
    )
    assert failed["Ok"]["Err"]["Module"]["index"] == 2  # Balances.InsufficientBalance
    invalid = decoded(
        APPLY_EXTRINSIC_RESULT,
        api(chain, "BlockBuilder_apply_extrinsic", chain.transfer(ALICE, BOB, UNIT, nonce=9)),
    )
    assert invalid == {"Err": {"Invalid": "Future"}}
    assert chain.head.root == head_root  # nothing kept


def test_inherent_extrinsics_makes_the_timestamp_inherent(chain: Chain) -> None:
    data = INHERENT_DATA.encode({"data": [(TIMESTAMP_INHERENT, encode_u64(1_234_000))]})
    out = api(chain, "BlockBuilder_inherent_extrinsics", data)
    extrinsics = BLOCK.desc.fields[1].ty
    assert len(decoded(extrinsics, out)) == 1
    (raw,) = extrinsics.decode_all(out)
    xt = Extrinsic.decode(raw)
    call = chain.runtime.decode_call(xt.call)
    assert (xt.signed, call.name, call.args["now"]) == (False, "Timestamp.set", 1_234_000)


def _inherents(chain: Chain, block: Block, moment: int) -> Any:
    data = BLOCK.encode(block) + INHERENT_DATA.encode(
        {"data": [(TIMESTAMP_INHERENT, encode_u64(moment))]}
    )
    return decoded(CHECK_INHERENTS_RESULT, api(chain, "BlockBuilder_check_inherents", data))


def test_check_inherents_applies_the_timestamp_rules(chain: Chain) -> None:
    parent_now = timestamp.Now.get(chain.head)
    builder = chain.begin()
    built = builder.finalize()
    block = Block(built.header, built.extrinsics)
    now = (chain.slot) * 1_000
    assert _inherents(chain, block, now) == {
        "okay": True,
        "fatal_error": False,
        "errors": {"data": []},
    }
    late = _inherents(chain, block, now - 31_000)  # the block is 31 s ahead of our clock
    assert (late["okay"], late["fatal_error"]) == (False, True)
    ((key, error),) = late["errors"]["data"]
    assert key == "0x" + TIMESTAMP_INHERENT.hex()
    assert error in ("0x01", "\x01")  # TooFarInFuture (scalecodec shows bytes as text or hex)
    assert parent_now == 0 or now >= parent_now
    empty = Block(built.header, ())
    assert _inherents(chain, empty, now)["okay"] is False


def test_finalize_block_has_no_block_to_finalize(chain: Chain) -> None:
    with pytest.raises(RuntimeApiError, match="no block is being built"):
        api(chain, "BlockBuilder_finalize_block")


# ---- Core ----------------------------------------------------------------------------------------


def test_execute_block_checks_a_child_block(chain: Chain) -> None:
    parent, parent_hash = chain.head, chain.head_hash
    built = chain.begin().finalize()
    block = Block(built.header, built.extrinsics)
    assert (
        call_runtime_api(chain.ex, parent, parent_hash, "Core_execute_block", BLOCK.encode(block))
        == b""
    )
    forged = Block(dataclasses.replace(built.header, state_root=bytes(32)), built.extrinsics)
    with pytest.raises(RuntimeApiError, match="state root"):
        call_runtime_api(chain.ex, parent, parent_hash, "Core_execute_block", BLOCK.encode(forged))


def test_initialize_block_takes_a_child_header(chain: Chain) -> None:
    built = chain.begin().finalize()
    assert api(chain, "Core_initialize_block", built.header.encode()) == b""
    no_slot = dataclasses.replace(built.header, digest=(DigestItem.other(b"x"),))
    with pytest.raises(RuntimeApiError, match="initialize"):
        api(chain, "Core_initialize_block", no_slot.encode())


# ---- TransactionPaymentApi v4 --------------------------------------------------------------------


def test_weight_and_length_to_fee(chain: Chain) -> None:
    cfg = chain.runtime.config.transaction_payment
    w = weights.balances_transfer_keep_alive()
    out = api(chain, "TransactionPaymentApi_query_weight_to_fee", WEIGHT.encode(w))
    fee = int.from_bytes(out, "little")
    assert fee == transaction_payment.weight_to_fee(cfg, w) > 0
    length = api(chain, "TransactionPaymentApi_query_length_to_fee", encode_u32(100))
    assert int.from_bytes(length, "little") == cfg.byte_fee * 100
