"""The executive on the dev genesis: applying blocks, transaction validity, replay, runtime APIs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from scalecodec.base import ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair

from chain.codec import encode_u32
from chain.crypto import SignatureScheme
from chain.frame.pallet import ModuleError
from chain.hashing import blake2_64
from chain.primitives import (
    DigestItem,
    Era,
    Extrinsic,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    signing_payload,
)
from chain.storage.overlay import Overlay
from chain.storage.trie import MemoryNodeStore, Trie
from genesis.builder import ChainSpec, Genesis, build_genesis, load_spec
from pallets import weights
from pallets.balances import pallet as balances
from pallets.balances.pallet import Endowed, Minted, Transfer, Withdraw
from pallets.balances.pallet import Error as BalancesError
from pallets.executive import (
    MAX_FUTURE_NONCE_GAP,
    BlockBuilder,
    BuiltBlock,
    Executive,
    InvalidBlock,
    InvalidTransaction,
    execute_block,
)
from pallets.faucet.pallet import Dripped
from pallets.runtime import build_runtime
from pallets.runtime_apis import RuntimeApiError, call_runtime_api
from pallets.system import pallet as system
from pallets.system.pallet import (
    AccountData,
    AccountInfo,
    ExtrinsicFailed,
    ExtrinsicSuccess,
    NewAccount,
)
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment.pallet import TransactionFeePaid
from tests.frame.strategies import decode_metadata

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")
CHARLIE = Keypair.create_from_uri("//Charlie")
NEWBIE = Keypair.create_from_uri("//Newbie")  # not in the dev genesis
UNIT = 10**18
IMMORTAL = Era.immortal()


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return build_genesis(load_spec("dev"))


class Chain:
    """A single-fork chain over an in-memory node store, one block per `build`."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.runtime = build_runtime(genesis.config)
        self.ex = Executive(self.runtime)
        self.store = MemoryNodeStore(genesis.nodes)
        self.head = Trie(self.store, genesis.header.state_root)
        self.head_hash = genesis.hash
        self.number = 0
        self.slot = 1_000

    @property
    def version(self) -> tuple[int, int]:
        """(spec, transaction) version the head's `:code` states: what to sign for."""
        v = self.ex.version_at(self.head)
        return v.spec_version, v.transaction_version

    def encode_call(self, pallet: str, name: str, **args: Any) -> bytes:
        return self.runtime.call_type.encode(self.runtime.call(pallet, name, **args))

    def sign(
        self,
        kp: Keypair,
        call: bytes,
        nonce: int,
        *,
        era: Era = IMMORTAL,
        tip: int = 0,
        birth_hash: bytes | None = None,
        signer: bytes | None = None,
    ) -> bytes:
        if birth_hash is None:
            birth_hash = self.block_hash(era.birth(self.number))
        payload = signing_payload(
            call, era, nonce, tip, *self.version, self.genesis.hash, birth_hash
        )
        return encode_signed_extrinsic(
            call,
            signer or kp.public_key,
            SignatureScheme.SR25519,
            kp.sign(payload),
            era,
            nonce,
            tip,
        )

    def block_hash(self, number: int) -> bytes:
        if number == self.number:
            return self.head_hash
        return system.BlockHash.get(self.head, number)

    def transfer(self, kp: Keypair, dest: Keypair, value: int, nonce: int = 0, **kw: Any) -> bytes:
        call = self.encode_call(
            "Balances", "transfer_keep_alive", dest=("Id", dest.public_key), value=value
        )
        return self.sign(kp, call, nonce, **kw)

    def begin(self, *, inherent: bool = True) -> BlockBuilder:
        self.slot += 1
        digest = [DigestItem.pre_runtime(b"aura", self.slot.to_bytes(8, "little"))]
        builder = self.ex.begin_block(self.head, self.head_hash, self.number + 1, digest)
        if inherent:
            builder.apply_inherent(self.timestamp_inherent())
        return builder

    def timestamp_inherent(self) -> bytes:
        return encode_unsigned_extrinsic(
            self.encode_call("Timestamp", "set", now=self.slot * 1_000)
        )

    def build(self, xts: list[bytes] = ()) -> BuiltBlock:  # type: ignore[assignment]
        builder = self.begin()
        for xt in xts:
            builder.apply(xt)
        return self.import_(builder.finalize())

    def import_(self, built: BuiltBlock) -> BuiltBlock:
        self.store.update(built.nodes)
        self.head = Trie(self.store, built.header.state_root)
        self.head_hash = built.header.hash()
        self.number = built.header.number
        return built

    def state(self, built: BuiltBlock) -> Trie:
        return Trie(MemoryNodeStore({**self.store.nodes, **built.nodes}), built.header.state_root)

    def validate(self, xt: bytes, state: Any = None, number: int | None = None) -> Any:
        return self.ex.validate_transaction(
            self.head if state is None else state,
            self.head_hash,
            self.number if number is None else number,
            xt,
        )

    def invalid(self, xt: bytes, **kw: Any) -> str:
        with pytest.raises(InvalidTransaction) as info:
            self.validate(xt, **kw)
        return info.value.kind


@pytest.fixture
def chain(genesis: Genesis) -> Chain:
    return Chain(genesis)


def records(state: Any) -> list[system.EventRecord]:
    return system.Events.get(state)


def at(state: Any, index: int) -> list[Any]:
    return [r.event for r in records(state) if r.phase == ("ApplyExtrinsic", index)]


# ---- applying extrinsics -------------------------------------------------------------------------


def test_apply_signed_transfer_events_in_frame_order(chain: Chain) -> None:
    built = chain.build([chain.transfer(ALICE, BOB, UNIT)])
    state = chain.state(built)
    evs = records(state)
    assert [r.phase for r in evs] == [("ApplyExtrinsic", 0)] + [("ApplyExtrinsic", 1)] * 4
    assert type(evs[0].event) is ExtrinsicSuccess  # the timestamp inherent
    assert [type(e) for e in at(state, 1)] == [
        Withdraw,
        Transfer,
        TransactionFeePaid,
        ExtrinsicSuccess,
    ]
    withdraw, transfer, paid, success = at(state, 1)
    assert withdraw == Withdraw(who=ALICE.public_key, amount=paid.actual_fee)
    assert transfer == Transfer(from_=ALICE.public_key, to=BOB.public_key, amount=UNIT)
    assert (paid.who, paid.tip) == (ALICE.public_key, 0)
    assert success.dispatch_info.weight == weights.balances_transfer_keep_alive()
    assert system.EventCount.get(state) == 5
    assert system.ExtrinsicCount.get(state) == 2
    chain.runtime.try_state(state)


def test_apply_charges_fee_plus_tip_and_bumps_nonce(chain: Chain) -> None:
    before = system.get_account(chain.head, ALICE.public_key)
    xt = chain.transfer(ALICE, BOB, UNIT, tip=5)
    _, checked = chain.validate(xt)
    state = chain.state(chain.build([xt]))
    after = system.get_account(state, ALICE.public_key)
    assert after.nonce == before.nonce + 1
    assert after.data.free == before.data.free - UNIT - checked.fee - 5
    assert at(state, 1)[2] == TransactionFeePaid(
        who=ALICE.public_key, actual_fee=checked.fee + 5, tip=5
    )


def test_apply_failing_call_changes_only_fee_and_nonce(chain: Chain) -> None:
    baseline = chain.begin().finalize().changes  # the same block with no extrinsic
    chain.slot -= 1  # rebuild the same slot
    builder = chain.begin()
    outcome = builder.apply(chain.transfer(ALICE, BOB, 10**36))
    failed = builder.finalize()
    assert not outcome.success
    assert isinstance(outcome.error, ModuleError)
    assert outcome.error.error is BalancesError.INSUFFICIENT_BALANCE
    extra = set(failed.changes) - set(baseline)
    assert extra == {system.Account.key_for(ALICE.public_key), balances.TotalIssuance.key}
    per_block = {
        system.Events.key,
        system.EventCount.key,
        system.ExtrinsicCount.key,
        system.BlockWeight.key,
    }
    assert {k for k in baseline if baseline[k] != failed.changes[k]} <= per_block
    state = chain.state(failed)
    before = system.get_account(chain.head, ALICE.public_key)
    after = system.get_account(state, ALICE.public_key)
    fee = at(state, 1)[0].amount
    assert after == AccountInfo(
        before.nonce + 1,
        before.consumers,
        before.providers,
        before.sufficients,
        AccountData(before.data.free - fee, 0, before.data.frozen, before.data.flags),
    )
    assert [type(e) for e in at(state, 1)] == [Withdraw, TransactionFeePaid, ExtrinsicFailed]
    assert at(state, 1)[2].dispatch_error == outcome.error.to_value()
    chain.runtime.try_state(state)


def test_apply_same_extrinsic_twice_is_stale(chain: Chain) -> None:
    xt = chain.transfer(ALICE, BOB, UNIT)
    builder = chain.begin()
    builder.apply(xt)
    with pytest.raises(InvalidTransaction) as info:
        builder.apply(xt)
    assert info.value.kind == "Stale"


def test_apply_future_nonce_is_refused_in_block(chain: Chain) -> None:
    builder = chain.begin()
    with pytest.raises(InvalidTransaction) as info:
        builder.apply(chain.transfer(ALICE, BOB, UNIT, nonce=1))
    assert info.value.kind == "Future"


def test_apply_garbage_is_bad_format(chain: Chain) -> None:
    with pytest.raises(InvalidTransaction) as info:
        chain.begin().apply(b"\x01\x02\x03")
    assert info.value.kind == "BadFormat"


def test_block_without_timestamp_fails_on_finalize(chain: Chain) -> None:
    builder = chain.begin(inherent=False)
    with pytest.raises(InvalidBlock, match="on_finalize"):
        builder.finalize()


def test_block_without_aura_digest_fails_on_initialize(chain: Chain) -> None:
    with pytest.raises(InvalidBlock, match="on_initialize"):
        chain.ex.begin_block(chain.head, chain.head_hash, 1, [])


def test_block_slot_must_increase(chain: Chain) -> None:
    chain.build()
    digest = [DigestItem.pre_runtime(b"aura", chain.slot.to_bytes(8, "little"))]
    with pytest.raises(InvalidBlock, match="slot"):
        chain.ex.begin_block(chain.head, chain.head_hash, chain.number + 1, digest)


def test_apply_inherent_rejects_signed_and_non_mandatory(chain: Chain) -> None:
    builder = chain.begin(inherent=False)
    with pytest.raises(InvalidBlock):
        builder.apply_inherent(chain.transfer(ALICE, BOB, UNIT))
    with pytest.raises(InvalidBlock):
        builder.apply_inherent(encode_unsigned_extrinsic(chain.encode_call("Faucet", "drip")))


def test_apply_second_timestamp_inherent_is_invalid_block(chain: Chain) -> None:
    builder = chain.begin()
    with pytest.raises(InvalidBlock, match="Timestamp"):
        builder.apply_inherent(chain.timestamp_inherent())


def test_blocks_advance_timestamp_and_block_hashes(chain: Chain) -> None:
    first = chain.build()
    chain.build()
    assert timestamp.Now.get(chain.head) == chain.slot * 1_000
    assert system.Number.get(chain.head) == 2
    assert system.BlockHash.get(chain.head, 0) == chain.genesis.hash
    assert system.BlockHash.get(chain.head, 1) == first.header.hash()


def test_block_hashes_are_pruned_after_block_hash_count() -> None:
    raw = copy.deepcopy(load_spec("dev").raw)
    raw["genesis"]["runtimeGenesis"]["parameters"]["system"]["blockHashCount"] = 4
    chain = Chain(build_genesis(ChainSpec(raw)))
    for _ in range(7):
        chain.build()
    kept = {n for n in range(7) if system.BlockHash.contains(chain.head, n)}
    assert kept == {0, 3, 4, 5, 6}  # the genesis hash and the last BlockHashCount hashes


# ---- faucet through the executive ---------------------------------------------------------------


def test_faucet_drip_is_feeless_for_new_account(chain: Chain) -> None:
    xt = chain.sign(NEWBIE, chain.encode_call("Faucet", "drip"), 0)
    valid, checked = chain.validate(xt)
    assert checked.fee == 0
    assert valid.is_ready
    state = chain.state(chain.build([xt]))
    amount = chain.runtime.config.faucet.amount
    assert balances.free_balance(state, NEWBIE.public_key) == amount
    assert system.get_account(state, NEWBIE.public_key).nonce == 1
    events = at(state, 1)
    assert [type(e) for e in events] == [NewAccount, Endowed, Minted, Dripped, ExtrinsicSuccess]
    assert events[-1].dispatch_info.pays_fee in ("No", ("No", None))
    chain.runtime.try_state(state)


def test_faucet_rate_limited_drip_is_refused_by_pool(chain: Chain) -> None:
    call = chain.encode_call("Faucet", "drip")
    chain.build([chain.sign(NEWBIE, call, 0)])
    assert chain.invalid(chain.sign(NEWBIE, call, 1)) == "Call"


def test_fee_paying_call_from_unknown_account_is_payment(chain: Chain) -> None:
    assert chain.invalid(chain.transfer(NEWBIE, BOB, 1)) == "Payment"


# ---- validate_transaction ----------------------------------------------------------------------


def test_validate_transaction_ok(chain: Chain) -> None:
    valid, checked = chain.validate(chain.transfer(ALICE, BOB, UNIT))
    assert valid.sender == ALICE.public_key
    assert (valid.nonce, valid.requires, valid.is_ready) == (0, (), True)
    assert valid.provides == (ALICE.public_key + encode_u32(0),)
    assert checked.fee > 0


def test_validate_transaction_bad_signature_is_bad_proof(chain: Chain) -> None:
    xt = chain.transfer(BOB, CHARLIE, UNIT, signer=ALICE.public_key)  # Bob signs for Alice
    assert chain.invalid(xt) == "BadProof"


def test_validate_transaction_wrong_genesis_is_bad_proof(chain: Chain) -> None:
    call = chain.encode_call("System", "remark", remark=b"")
    payload = signing_payload(call, Era.immortal(), 0, 0, *chain.version, bytes(32), bytes(32))
    xt = encode_signed_extrinsic(
        call, ALICE.public_key, SignatureScheme.SR25519, ALICE.sign(payload), Era.immortal(), 0, 0
    )
    assert chain.invalid(xt) == "BadProof"


def test_validate_transaction_zero_signer_is_bad_signer(chain: Chain) -> None:
    assert chain.invalid(chain.transfer(ALICE, BOB, 1, signer=bytes(32))) == "BadSigner"


def test_validate_transaction_stale_nonce(chain: Chain) -> None:
    chain.build([chain.transfer(ALICE, BOB, UNIT, nonce=0)])
    assert chain.invalid(chain.transfer(ALICE, BOB, UNIT, nonce=0)) == "Stale"


def test_validate_transaction_future_nonce(chain: Chain) -> None:
    valid, _ = chain.validate(chain.transfer(ALICE, BOB, UNIT, nonce=MAX_FUTURE_NONCE_GAP))
    assert not valid.is_ready
    assert valid.requires == (ALICE.public_key + encode_u32(MAX_FUTURE_NONCE_GAP - 1),)
    assert (
        chain.invalid(chain.transfer(ALICE, BOB, UNIT, nonce=MAX_FUTURE_NONCE_GAP + 1)) == "Future"
    )


def test_validate_transaction_insufficient_fee_is_payment(chain: Chain) -> None:
    state = Overlay(chain.head)
    ed = chain.runtime.config.balances.existential_deposit
    info = system.get_account(state, CHARLIE.public_key)
    system.Account.put(
        state,
        CHARLIE.public_key,
        AccountInfo(0, 0, 1, 0, AccountData(ed + 1, 0, 0, info.data.flags)),
    )
    assert chain.invalid(chain.transfer(CHARLIE, BOB, 1), state=state) == "Payment"


def test_validate_transaction_tip_counts_towards_payment(chain: Chain) -> None:
    free = balances.free_balance(chain.head, BOB.public_key)
    assert chain.invalid(chain.transfer(BOB, ALICE, 1, tip=free)) == "Payment"


def test_validate_transaction_mortal_era_ok_then_expired_is_stale(chain: Chain) -> None:
    chain.build()
    era = Era.mortal(4, chain.number)
    xt = chain.transfer(ALICE, BOB, UNIT, era=era)
    valid, _ = chain.validate(xt)
    assert valid.longevity == era.death(chain.number + 1) - (chain.number + 1)
    for _ in range(4):
        chain.build()
    assert chain.invalid(xt) == "Stale"


def test_validate_transaction_birth_block_in_future_is_ancient_birth_block(chain: Chain) -> None:
    chain.build()
    era = Era.mortal(4, chain.number + 1)  # born at the block being built: hash not yet known
    xt = chain.transfer(ALICE, BOB, UNIT, era=era, birth_hash=bytes(32))
    assert chain.invalid(xt) == "AncientBirthBlock"


def test_validate_transaction_birth_older_than_block_hash_count(chain: Chain) -> None:
    count = chain.runtime.config.system.block_hash_count
    era = Era.mortal(8192, 100)
    parent = 100 + count + 1
    assert era.birth(parent + 1) == 100
    xt = chain.transfer(ALICE, BOB, UNIT, era=era, birth_hash=bytes(32))
    assert chain.invalid(xt, state=Overlay(chain.head), number=parent) == "AncientBirthBlock"


@pytest.mark.parametrize(
    ("pallet", "name", "args"),
    [
        ("Balances", "transfer_keep_alive", {"dest": ("Id", bytes(32)), "value": 1}),
        ("Timestamp", "set", {"now": 5}),
        ("Faucet", "drip", {}),
    ],
)
def test_validate_transaction_unsigned_is_call(
    chain: Chain, pallet: str, name: str, args: dict[str, Any]
) -> None:
    assert (
        chain.invalid(encode_unsigned_extrinsic(chain.encode_call(pallet, name, **args))) == "Call"
    )


def test_validate_transaction_signed_inherent_is_call(chain: Chain) -> None:
    xt = chain.sign(ALICE, chain.encode_call("Timestamp", "set", now=5), 0)
    assert chain.invalid(xt) == "Call"


def test_validate_transaction_undecodable_call_is_call(chain: Chain) -> None:
    assert chain.invalid(chain.sign(ALICE, b"\x63\x00", 0)) == "Call"


@pytest.mark.parametrize(
    "raw", [b"", b"\x00", b"\x04\x05\x06", b"\x10\x99\x00\x00\x00", b"\xff" * 40]
)
def test_validate_transaction_garbage_is_bad_format(chain: Chain, raw: bytes) -> None:
    assert chain.invalid(raw) == "BadFormat"


def test_validate_transaction_does_not_write(chain: Chain) -> None:
    state = Overlay(chain.head)
    chain.validate(chain.transfer(ALICE, BOB, UNIT), state=state)
    assert state.changes() == {}


# ---- block replay ------------------------------------------------------------------------------


def test_execute_block_reproduces_state_root(chain: Chain) -> None:
    parent = chain.head
    built = chain.build([chain.transfer(ALICE, CHARLIE, UNIT), chain.transfer(BOB, CHARLIE, UNIT)])
    again = execute_block(chain.ex, parent, built.header, built.extrinsics)
    assert again.header.state_root == built.header.state_root
    assert again.changes == built.changes


def test_execute_block_different_order_gives_different_root(chain: Chain) -> None:
    t1, t2 = chain.transfer(ALICE, CHARLIE, UNIT), chain.transfer(BOB, CHARLIE, UNIT)
    b1 = chain.begin()
    b1.apply(t1)
    b1.apply(t2)
    chain.slot -= 1
    b2 = chain.begin()
    b2.apply(t2)
    b2.apply(t1)
    one, two = b1.finalize(), b2.finalize()
    assert one.header.state_root != two.header.state_root
    assert one.header.extrinsics_root != two.header.extrinsics_root
    for raw in (t1, t2):  # the balances agree; only the event order differs
        who = Extrinsic.decode(raw).signer
        assert system.get_account(chain.state(one), who) == system.get_account(
            chain.state(two), who
        )


def test_execute_block_rejects_wrong_state_root(chain: Chain) -> None:
    parent = chain.head
    built = chain.build([chain.transfer(ALICE, CHARLIE, UNIT)])
    import dataclasses

    forged = dataclasses.replace(built.header, state_root=bytes(32))
    with pytest.raises(InvalidBlock, match="state root"):
        execute_block(chain.ex, parent, forged, built.extrinsics)


# ---- runtime APIs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scale(genesis: Genesis) -> Any:
    rc, m = decode_metadata(build_runtime(genesis.config).metadata())
    rc.update_type_registry_types({"Weight": "sp_weights::weight_v2::Weight"})
    apis = load_type_registry_preset("core")["runtime_api"]
    for api in ("Core", "TransactionPaymentApi"):
        rc.update_type_registry_types(apis[api]["types"])

    def decode(type_string: str, data: bytes) -> Any:
        return rc.create_scale_object(type_string, data=ScaleBytes(data), metadata=m).decode()

    return decode


def test_core_version(chain: Chain, scale: Any) -> None:
    version = scale(
        "RuntimeVersion",
        call_runtime_api(chain.ex, chain.head, chain.head_hash, "Core_version", b""),
    )
    assert (version["spec_name"], version["impl_name"]) == ("cuckoo", "cuckoo-node")
    v = chain.runtime.version
    assert version["spec_version"] == v.spec_version
    assert (version["transaction_version"], version["state_version"]) == (1, 1)
    assert len(version["apis"]) == len(v.apis)
    apis = dict(version["apis"])
    assert apis["0x" + blake2_64(b"Core").hex()] == 4
    assert "0x37c8bb1350a9a2a8" in apis  # TransactionPaymentApi


def test_account_nonce_api(chain: Chain) -> None:
    def nonce() -> int:
        out = call_runtime_api(
            chain.ex, chain.head, chain.head_hash, "AccountNonceApi_account_nonce", ALICE.public_key
        )
        return int.from_bytes(out, "little")

    assert nonce() == 0
    chain.build([chain.transfer(ALICE, BOB, UNIT)])
    assert nonce() == 1


def test_query_info_matches_charged_fee(chain: Chain, scale: Any) -> None:
    xt = chain.transfer(ALICE, BOB, UNIT)
    info = scale(
        "RuntimeDispatchInfo",
        call_runtime_api(
            chain.ex,
            chain.head,
            chain.head_hash,
            "TransactionPaymentApi_query_info",
            xt + encode_u32(len(xt)),
        ),
    )
    declared = weights.balances_transfer_keep_alive()
    assert info["weight"] == {"ref_time": declared.ref_time, "proof_size": declared.proof_size}
    assert info["class"] == "Normal"
    state = chain.state(chain.build([xt]))
    assert info["partialFee"] == at(state, 1)[0].amount


def test_query_fee_details_sums_to_partial_fee(chain: Chain, scale: Any) -> None:
    xt = chain.transfer(ALICE, BOB, UNIT, tip=7)
    data = xt + encode_u32(len(xt))
    info = scale(
        "RuntimeDispatchInfo",
        call_runtime_api(
            chain.ex, chain.head, chain.head_hash, "TransactionPaymentApi_query_info", data
        ),
    )
    details = scale(
        "FeeDetails",
        call_runtime_api(
            chain.ex, chain.head, chain.head_hash, "TransactionPaymentApi_query_fee_details", data
        ),
    )
    assert sum(details["inclusion_fee"].values()) == info["partialFee"]
    assert details["tip"] == 7


def test_query_info_free_call_has_zero_fee(chain: Chain, scale: Any) -> None:
    xt = chain.sign(NEWBIE, chain.encode_call("Faucet", "drip"), 0)
    info = scale(
        "RuntimeDispatchInfo",
        call_runtime_api(
            chain.ex,
            chain.head,
            chain.head_hash,
            "TransactionPaymentApi_query_info",
            xt + encode_u32(len(xt)),
        ),
    )
    assert info["partialFee"] == 0


def test_query_info_unsigned_has_zero_fee(chain: Chain, scale: Any) -> None:
    xt = encode_unsigned_extrinsic(chain.encode_call("System", "remark", remark=b"x"))
    info = scale(
        "RuntimeDispatchInfo",
        call_runtime_api(
            chain.ex,
            chain.head,
            chain.head_hash,
            "TransactionPaymentApi_query_info",
            xt + encode_u32(len(xt)),
        ),
    )
    assert info["partialFee"] == 0


def test_aura_apis(chain: Chain) -> None:
    assert call_runtime_api(
        chain.ex, chain.head, chain.head_hash, "AuraApi_slot_duration", b""
    ) == (1000).to_bytes(8, "little")
    auths = call_runtime_api(chain.ex, chain.head, chain.head_hash, "AuraApi_authorities", b"")
    assert auths == b"\x04" + ALICE.public_key


def test_metadata_api_serves_v14_and_v15(chain: Chain) -> None:
    def api(method: str, data: bytes = b"") -> bytes:
        return call_runtime_api(chain.ex, chain.head, chain.head_hash, method, data)

    md = chain.runtime.metadata()
    assert api("Metadata_metadata_versions") == b"\x08" + encode_u32(14) + encode_u32(15)
    assert api("Metadata_metadata").endswith(md)
    assert api("Metadata_metadata_at_version", encode_u32(14)).endswith(md)
    v15 = api("Metadata_metadata_at_version", encode_u32(15))
    assert v15[0] == 1  # Some
    assert v15.endswith(chain.runtime.metadata(at=15))
    assert chain.runtime.metadata(at=15)[:5] == b"meta\x0f"
    assert api("Metadata_metadata_at_version", encode_u32(16)) == b"\x00"


def test_unknown_runtime_api_is_an_error(chain: Chain) -> None:
    with pytest.raises(RuntimeApiError):
        call_runtime_api(chain.ex, chain.head, chain.head_hash, "Nope_nothing", b"")
