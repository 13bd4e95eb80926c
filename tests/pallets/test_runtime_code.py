"""The runtime's identity (`:code`), `System.set_code` and the runtime-upgrade digest, and
`System.BlockWeight` (docs/runtime.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chain.codec import CodecError
from chain.crypto import SignatureScheme
from chain.frame.code import CODE_KEY, CODE_MAGIC, RuntimeCode, RuntimeVersion
from chain.frame.common import Weight
from chain.frame.pallet import ModuleError
from chain.hashing import blake2_256
from chain.primitives import DigestItem, Era, encode_signed_extrinsic, signing_payload
from genesis.builder import Genesis
from pallets import weights
from pallets.executive import InvalidBlock, execute_block
from pallets.sudo.pallet import Sudid
from pallets.system import pallet as system
from pallets.system.pallet import CodeUpdated
from tests.pallets.mock import MockRuntime, mock_config
from tests.pallets.test_executive import ALICE, BOB, UNIT, Chain, at, genesis

__all__ = ["genesis"]  # the module-scoped dev genesis fixture


@pytest.fixture
def chain(genesis: Genesis) -> Chain:
    return Chain(genesis)


def relabel(raw: bytes, **changes: Any) -> bytes:
    """The descriptor `raw` with some fields changed (a higher spec version, ...)."""
    return dataclasses.replace(RuntimeCode.decode(raw), **changes).encode()


def set_code(chain: Chain, code: bytes, nonce: int = 0) -> bytes:
    """//Alice (the dev sudo key) sets `code` through Sudo.sudo."""
    inner = chain.runtime.call("System", "set_code", code=code)
    return chain.sign(ALICE, chain.encode_call("Sudo", "sudo", call=inner), nonce)


# ---- :code ---------------------------------------------------------------------------------------


def test_genesis_code_describes_the_runtime(chain: Chain, genesis: Genesis) -> None:
    raw = genesis.storage[CODE_KEY]
    assert raw.startswith(CODE_MAGIC + b"\x01")
    assert not raw.startswith(b"\x00asm")
    code = RuntimeCode.decode(raw)
    assert code.version([name for name, _ in chain.runtime.version.apis]) == chain.runtime.version
    assert code.code_hash == blake2_256(chain.runtime.metadata())
    assert raw == chain.runtime.code()
    assert chain.ex.version_at(chain.head) == chain.runtime.version
    assert RuntimeCode.decode(code.encode()) == code


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00asm\x01\x00\x00\x00", CODE_MAGIC + b"\x02", CODE_MAGIC + b"\x01\x00"],
    ids=["empty", "wasm", "other-format", "truncated"],
)
def test_code_that_is_not_a_descriptor_does_not_decode(raw: bytes) -> None:
    with pytest.raises(CodecError):
        RuntimeCode.decode(raw)


def test_trailing_bytes_after_a_descriptor_do_not_decode(chain: Chain) -> None:
    with pytest.raises(CodecError):
        RuntimeCode.decode(chain.runtime.code() + b"\x00")


# ---- set_code ------------------------------------------------------------------------------------


def test_set_code_puts_the_upgrade_digest_and_switches_the_version_from_the_next_block(
    chain: Chain,
) -> None:
    old = chain.ex.version_at(chain.head)
    new_code = relabel(chain.runtime.code(), spec_version=old.spec_version + 1)
    parent, parent_hash = chain.head, chain.head_hash
    built = chain.build([set_code(chain, new_code)])
    state = chain.head
    # FRAME's update_code_in_storage: :code, the digest item after the pre-runtime ones, the event
    assert state.get(CODE_KEY) == new_code
    assert built.header.digest[-1] == DigestItem.runtime_environment_updated()
    assert [d.kind for d in built.header.digest] == [DigestItem.PRE_RUNTIME, 8]
    assert at(state, 1)[1:3] == [CodeUpdated(), Sudid(("Ok", ()))]
    # an importing node re-executes it with the header's pre-runtime items: same header
    again = execute_block(chain.ex, parent, built.header, built.extrinsics)
    assert again.header == built.header
    assert parent_hash == built.header.parent_hash
    # the block itself ran as the old version; the next one runs as the new one
    new = chain.ex.version_at(state)
    assert new == dataclasses.replace(old, spec_version=old.spec_version + 1)
    assert chain.version == (new.spec_version, new.transaction_version)
    # transactions signed for the old version are refused from now on
    assert chain.validate(_signed_for(chain, new, nonce=1))[0].sender == ALICE.public_key
    assert chain.invalid(_signed_for(chain, old, nonce=1)) == "BadProof"
    # the metadata served at the new head states the new version; the code hash is unchanged
    md = chain.ex.metadata_at(state)
    assert md != chain.runtime.metadata()
    assert RuntimeCode.decode(new_code).code_hash == blake2_256(chain.runtime.metadata())
    # the next block carries no upgrade digest
    nxt = chain.build([])
    assert [d.kind for d in nxt.header.digest] == [DigestItem.PRE_RUNTIME]


def _signed_for(chain: Chain, version: RuntimeVersion, nonce: int) -> bytes:
    """A transfer from //Alice signed for `version` (whatever the chain's is)."""
    call = chain.encode_call(
        "Balances", "transfer_keep_alive", dest=("Id", BOB.public_key), value=UNIT
    )
    payload = signing_payload(
        call,
        Era.immortal(),
        nonce,
        0,
        version.spec_version,
        version.transaction_version,
        chain.genesis.hash,
        chain.genesis.hash,
    )
    return encode_signed_extrinsic(
        call,
        ALICE.public_key,
        SignatureScheme.SR25519,
        ALICE.sign(payload),
        Era.immortal(),
        nonce,
        0,
    )


def test_a_header_without_the_deposited_digest_is_not_imported(chain: Chain) -> None:
    new_code = relabel(chain.runtime.code(), spec_version=chain.runtime.version.spec_version + 1)
    parent = chain.head
    built = chain.build([set_code(chain, new_code)])
    stripped = dataclasses.replace(built.header, digest=built.header.digest[:-1])
    with pytest.raises(InvalidBlock, match="digest"):
        execute_block(chain.ex, parent, stripped, built.extrinsics)


def test_a_header_with_a_digest_item_the_runtime_did_not_deposit_is_not_imported(
    chain: Chain,
) -> None:
    parent = chain.head
    built = chain.build([])
    forged = dataclasses.replace(
        built.header, digest=(*built.header.digest, DigestItem.runtime_environment_updated())
    )
    with pytest.raises(InvalidBlock, match="digest"):
        execute_block(chain.ex, parent, forged, built.extrinsics)


@pytest.fixture
def mock() -> MockRuntime:
    m = MockRuntime(mock_config(), {ALICE.public_key: 10**24}, ALICE.public_key)
    m.state.put(CODE_KEY, m.runtime.code())
    return m


def test_set_code_is_root_only(mock: MockRuntime) -> None:
    code = relabel(mock.runtime.code(), spec_version=mock.runtime.version.spec_version + 1)
    mock.assert_noop(ALICE.public_key, "System", "set_code", "BadOrigin", code=code)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, system.Error.SPEC_VERSION_NEEDS_TO_INCREASE),
        ({"spec_name": "other"}, system.Error.INVALID_SPEC_NAME),
        ({"code_hash": bytes(32), "spec_version": 10**6}, system.Error.UNSUPPORTED_CODE),
        ({"impl_name": "other", "spec_version": 10**6}, system.Error.UNSUPPORTED_CODE),
        ({"apis": (), "spec_version": 10**6}, system.Error.UNSUPPORTED_CODE),
        ({"state_version": 0, "spec_version": 10**6}, system.Error.UNSUPPORTED_CODE),
    ],
    ids=["same-version", "spec-name", "code-hash", "impl-name", "apis", "state-version"],
)
def test_set_code_refuses_another_runtime_or_no_new_version(
    mock: MockRuntime, changes: dict[str, Any], error: system.Error
) -> None:
    code = relabel(mock.runtime.code(), **changes)
    mock.assert_noop("root", "System", "set_code", error, code=code)


def test_set_code_refuses_what_is_not_a_descriptor(mock: MockRuntime) -> None:
    err = mock.assert_noop(
        "root",
        "System",
        "set_code",
        system.Error.FAILED_TO_EXTRACT_RUNTIME_VERSION,
        code=b"\x00asm\x01\x00\x00\x00",
    )
    assert isinstance(err, ModuleError)


def test_set_code_accepts_new_transaction_and_impl_versions(mock: MockRuntime) -> None:
    v = mock.runtime.version
    code = relabel(
        mock.runtime.code(),
        spec_version=v.spec_version + 1,
        impl_version=v.impl_version + 1,
        transaction_version=v.transaction_version + 1,
    )
    mock.dispatch("root", "System", "set_code", code=code)
    assert mock.state.get(CODE_KEY) == code
    assert mock.events() == [CodeUpdated()]
    assert system.Digest.get(mock.state)["logs"][-1] == "RuntimeEnvironmentUpdated"
    assert mock.runtime.version_of(code).transaction_version == v.transaction_version + 1


# ---- System.BlockWeight --------------------------------------------------------------------------


def test_block_weight_counts_each_class_and_restarts_every_block(chain: Chain) -> None:
    base = chain.runtime.config.transaction_payment.extrinsic_base_weight
    chain.build([chain.transfer(ALICE, BOB, UNIT), chain.transfer(BOB, ALICE, UNIT)])
    consumed = system.BlockWeight.get(chain.head)
    transfer = weights.balances_transfer_keep_alive()
    assert consumed.normal == transfer + base + transfer + base
    assert consumed.mandatory == weights.timestamp_set() + base  # the timestamp inherent
    assert consumed.operational == Weight()
    chain.build([])
    assert system.BlockWeight.get(chain.head).normal == Weight()
    assert system.BlockWeight.get(chain.head).mandatory == weights.timestamp_set() + base


def test_block_weight_counts_a_failed_call(chain: Chain) -> None:
    base = chain.runtime.config.transaction_payment.extrinsic_base_weight
    chain.build([chain.transfer(ALICE, BOB, 10**36)])  # more than Alice holds: it fails
    transfer = weights.balances_transfer_keep_alive()
    assert system.BlockWeight.get(chain.head).normal == transfer + base


def test_a_sudo_wrapped_set_code_counts_in_the_normal_class(chain: Chain) -> None:
    code = relabel(chain.runtime.code(), spec_version=chain.runtime.version.spec_version + 1)
    chain.build([set_code(chain, code)])
    # Sudo.sudo is Normal (the class of the extrinsic's outer call)
    consumed = system.BlockWeight.get(chain.head)
    assert consumed.normal.ref_time > 0
    assert consumed.operational == Weight()


def test_a_block_refuses_an_extrinsic_over_its_weight(genesis: Genesis) -> None:
    small = dataclasses.replace(
        genesis.config,
        max_block_weight=Weight(
            2 * (weights.balances_transfer_keep_alive().ref_time + 125_000_000), 10**6
        ),
    )
    chain = Chain(dataclasses.replace(genesis, config=small))
    builder = chain.begin()  # the timestamp inherent is Mandatory: not limited
    builder.apply(chain.transfer(ALICE, BOB, UNIT))
    with pytest.raises(Exception, match="exhaust"):
        builder.apply(chain.transfer(BOB, ALICE, UNIT))
