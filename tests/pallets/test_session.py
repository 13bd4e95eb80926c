"""Session: session keys, the validator set, session boundaries (Aura and finality authorities),
genesis (session keys, staking stakers) and the dev/local chain specs' validator keys."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from chain import bls
from chain.crypto import ss58_decode
from genesis.builder import ChainSpec, ChainSpecError, build_genesis, genesis_storage, load_spec
from node.keystore import derive_key
from pallets.aura import pallet as aura
from pallets.finality import pallet as finality
from pallets.finality.pallet import NewAuthorities
from pallets.runtime import (
    DEFAULT_SESSION_LENGTH,
    build_runtime,
    decode_runtime_config,
    runtime_config,
)
from pallets.session import pallet as session
from pallets.session.pallet import (
    BlsPops,
    CurrentIndex,
    Error,
    KeyOwner,
    KeyOwnerExpiries,
    KeyOwnerUntil,
    KeysPurged,
    KeysSet,
    NewSession,
    NextKeys,
    QueuedValidators,
    SessionKeys,
    Validators,
    ValidatorsQueued,
)
from pallets.staking import pallet as staking
from pallets.staking.pallet import StakingLedger
from tests.pallets.conftest import MockFactory
from tests.pallets.mock import (
    ALICE,
    BOB,
    CHARLIE,
    DAVE,
    EVE,
    MockRuntime,
    add_validators,
    fake_pop,
    fake_session_keys,
)
from tests.pallets.test_staking import ECONOMY_BALANCES, of_type, run_to_block

LENGTH = 10  # dev session.length
POP = b"\x07" * 96
REPO = Path(__file__).resolve().parents[2]
FIELD = {b"aura": "aura", b"gran": "grandpa", b"bls_": "bls"}  # SessionKeys field of a key type


@pytest.fixture
def vals(new_test_ext: MockFactory) -> MockRuntime:
    """Validators ALICE, BOB, CHARLIE (bonded, fake keys); DAVE and EVE endowed, not bonded."""
    mock = new_test_ext(endowed=dict(ECONOMY_BALANCES))
    add_validators(mock, [ALICE, BOB, CHARLIE])
    return mock


def check(mock: MockRuntime) -> None:
    session.check_invariants(mock.state, mock.config)
    finality.check_invariants(mock.state, mock.config)
    staking.check_invariants(mock.state, mock.config)


def bond(mock: MockRuntime, who: bytes, amount: int = 10**18) -> None:
    mock.dispatch(who, "Staking", "bond", value=amount)


def owners(mock: MockRuntime, keys: SessionKeys) -> list[bytes | None]:
    return [KeyOwner.get(mock.state, kt) for kt in keys.by_type()]


# ---- genesis ------------------------------------------------------------------------------------


def test_genesis_sets_validators_keys_and_both_authority_sets(vals: MockRuntime) -> None:
    st = vals.state
    trio = [ALICE, BOB, CHARLIE]
    assert Validators.get(st) == trio
    assert CurrentIndex.get(st) == 0
    assert QueuedValidators.get(st) is None
    for v in trio:
        keys = fake_session_keys(v)
        assert NextKeys.get(st, v) == keys
        assert BlsPops.get(st, v) == fake_pop(v)
        assert owners(vals, keys) == [v, v, v]
    assert aura.Authorities.get(st) == [fake_session_keys(v).aura for v in trio]
    assert finality.Authorities.get(st) == [fake_session_keys(v).grandpa for v in trio]
    assert finality.BlsKeys.get(st) == [fake_session_keys(v).bls for v in trio]
    assert finality.SetBlsKeys.get(st, 0) == [(fake_session_keys(v).bls, fake_pop(v)) for v in trio]
    assert finality.CurrentSetId.get(st) == 0
    assert finality.SessionSetId.get(st, 0) == 0
    check(vals)


def test_genesis_rejects_duplicate_validators_keys_and_bad_pops(mock: MockRuntime) -> None:
    ctx = mock.ctx("root", [])
    keys = fake_session_keys(ALICE)
    with pytest.raises(ValueError, match="twice"):
        session.build_genesis(ctx, [(ALICE, keys, POP), (ALICE, fake_session_keys(BOB), POP)])
    with pytest.raises(ValueError, match="given twice"):
        session.build_genesis(ctx, [(ALICE, keys, POP), (BOB, keys, POP)])
    with pytest.raises(ValueError, match="96 bytes"):
        session.build_genesis(ctx, [(ALICE, keys, POP[:95])])
    with pytest.raises(ValueError, match="at least one"):
        session.build_genesis(ctx, [])


def test_staking_genesis_bonds_and_freezes(mock: MockRuntime) -> None:
    staking.build_genesis(mock.ctx("root", []), [(ALICE, 600), (BOB, 100)])
    assert staking.get_ledger(mock.state, ALICE) == StakingLedger(ALICE, 600, 600, [])
    assert mock.account(ALICE).data.frozen == 600
    assert mock.account(BOB).data.frozen == 100
    staking.check_invariants(mock.state, mock.config)


@pytest.mark.parametrize(
    ("stakers", "match"),
    [
        ([(ALICE, 1_000)], "not enough balance"),  # must leave the existential deposit free
        ([(ALICE, 5)], "existential deposit"),
        ([(ALICE, 100), (ALICE, 100)], "duplicate"),
        ([(DAVE, 100)], "not enough balance"),  # not endowed
    ],
)
def test_staking_genesis_refuses_impossible_bonds(
    mock: MockRuntime, stakers: list[tuple[bytes, int]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        staking.build_genesis(mock.ctx("root", []), stakers)


# ---- set_keys -----------------------------------------------------------------------------------


def test_set_keys_stores_keys_pop_and_owners(vals: MockRuntime) -> None:
    bond(vals, DAVE)
    keys = fake_session_keys(DAVE)
    vals.dispatch(DAVE, "Session", "set_keys", keys=keys, proof=POP)
    assert vals.events() == [KeysSet(DAVE)]
    assert NextKeys.get(vals.state, DAVE) == keys
    assert BlsPops.get(vals.state, DAVE) == POP
    assert owners(vals, keys) == [DAVE, DAVE, DAVE]
    check(vals)


def test_set_keys_again_frees_keys_never_in_use_at_once(vals: MockRuntime) -> None:
    bond(vals, DAVE)
    old, new = fake_session_keys(DAVE), fake_session_keys(DAVE, 1)
    vals.dispatch(DAVE, "Session", "set_keys", keys=old, proof=POP)
    vals.dispatch(DAVE, "Session", "set_keys", keys=old, proof=POP)  # the same keys again: ok
    vals.dispatch(DAVE, "Session", "set_keys", keys=new, proof=POP)
    assert owners(vals, old) == [None, None, None]  # DAVE is no validator: they never signed
    assert owners(vals, new) == [DAVE, DAVE, DAVE]
    assert NextKeys.get(vals.state, DAVE) == new
    vals.dispatch(EVE, "Staking", "bond", value=10**18)
    vals.dispatch(EVE, "Session", "set_keys", keys=old, proof=POP)  # free for someone else
    check(vals)


def test_keys_replaced_in_use_stay_owned_until_the_retention_ends(vals: MockRuntime) -> None:
    """ALICE rotates in session 0: her old keys sign until session 1 starts, then stay hers
    (and nobody else's) for KeyRetentionSessions more sessions."""
    retention = session.key_retention_sessions(vals.config)
    assert retention == 2  # dev: bonding 2 eras of 10 blocks, sessions of 10 blocks
    old, new = fake_session_keys(ALICE), fake_session_keys(ALICE, 1)
    vals.dispatch(ALICE, "Session", "set_keys", keys=new, proof=POP)
    assert owners(vals, old) == [ALICE] * 3
    assert [KeyOwnerUntil.get(vals.state, k) for k in old.by_type()] == [None] * 3
    bond(vals, DAVE)
    for key_id in old.by_type():  # still ALICE's: nobody else may take them
        taken = dataclasses.replace(fake_session_keys(DAVE), **{FIELD[key_id[0]]: key_id[1]})
        vals.assert_noop(DAVE, "Session", "set_keys", Error.DUPLICATED_KEY, keys=taken, proof=POP)
    run_to_block(vals, LENGTH)  # session 1: the new keys sign, the old ones are retained
    assert aura.Authorities.get(vals.state)[0] == new.aura
    assert [KeyOwnerUntil.get(vals.state, k) for k in old.by_type()] == [1 + retention] * 3
    assert KeyOwnerExpiries.get(vals.state, 1 + retention) == list(old.by_type())
    run_to_block(vals, (1 + retention) * LENGTH - 1)
    assert owners(vals, old) == [ALICE] * 3
    check(vals)
    run_to_block(vals, (1 + retention) * LENGTH)
    assert owners(vals, old) == [None] * 3
    assert [KeyOwnerUntil.get(vals.state, k) for k in old.by_type()] == [None] * 3
    assert KeyOwnerExpiries.get(vals.state, 1 + retention) == []
    assert owners(vals, new) == [ALICE] * 3
    vals.dispatch(DAVE, "Session", "set_keys", keys=old, proof=POP)  # free now
    check(vals)


def test_a_retained_key_taken_back_by_its_owner_is_not_expired(vals: MockRuntime) -> None:
    old, new = fake_session_keys(BOB), fake_session_keys(BOB, 1)
    vals.dispatch(BOB, "Session", "set_keys", keys=new, proof=POP)
    run_to_block(vals, LENGTH)
    vals.dispatch(BOB, "Session", "set_keys", keys=old, proof=POP)  # back to the old keys
    assert owners(vals, new) == [BOB] * 3  # in use this session: retained in turn
    run_to_block(vals, 2 * LENGTH)  # old in use again: no longer retained; new retained
    assert [KeyOwnerUntil.get(vals.state, k) for k in old.by_type()] == [None] * 3
    run_to_block(vals, 6 * LENGTH)  # past both retentions
    assert owners(vals, old) == [BOB] * 3
    assert owners(vals, new) == [None] * 3
    check(vals)


def test_a_validator_leaving_the_set_keeps_its_keys_owned_for_the_retention(
    vals: MockRuntime,
) -> None:
    """CHARLIE leaves the set at session 1 and purges his keys: they stay his until session 3."""
    keys = fake_session_keys(CHARLIE)
    vals.dispatch("root", "Session", "set_validators", validators=[ALICE, BOB])
    run_to_block(vals, LENGTH)
    vals.dispatch(CHARLIE, "Session", "purge_keys")
    assert owners(vals, keys) == [CHARLIE] * 3
    assert NextKeys.get(vals.state, CHARLIE) is None
    check(vals)
    run_to_block(vals, 3 * LENGTH)
    assert owners(vals, keys) == [None] * 3
    check(vals)


def test_set_keys_needs_a_bond(vals: MockRuntime) -> None:
    vals.assert_noop(
        EVE, "Session", "set_keys", Error.NOT_BONDED, keys=fake_session_keys(EVE), proof=POP
    )


@pytest.mark.parametrize("length", [0, 48, 95, 97, 192])
def test_set_keys_proof_must_be_96_bytes(vals: MockRuntime, length: int) -> None:
    bond(vals, DAVE)
    vals.assert_noop(
        DAVE,
        "Session",
        "set_keys",
        Error.INVALID_PROOF,
        keys=fake_session_keys(DAVE),
        proof=b"\x01" * length,
    )


@pytest.mark.parametrize("field", ["aura", "grandpa", "bls"])
def test_set_keys_with_a_key_owned_by_another_is_duplicated(vals: MockRuntime, field: str) -> None:
    bond(vals, DAVE)
    taken = getattr(fake_session_keys(BOB), field)
    keys = dataclasses.replace(fake_session_keys(DAVE), **{field: taken})
    vals.assert_noop(DAVE, "Session", "set_keys", Error.DUPLICATED_KEY, keys=keys, proof=POP)


@pytest.mark.parametrize("origin", ["root", "none"])
def test_set_keys_and_purge_keys_need_a_signed_origin(vals: MockRuntime, origin: str) -> None:
    keys = fake_session_keys(DAVE)
    vals.assert_noop(origin, "Session", "set_keys", "BadOrigin", keys=keys, proof=POP)
    vals.assert_noop(origin, "Session", "purge_keys", "BadOrigin")


# ---- purge_keys ---------------------------------------------------------------------------------


def test_purge_keys_removes_keys_pop_and_owners(vals: MockRuntime) -> None:
    bond(vals, DAVE)
    keys = fake_session_keys(DAVE)
    vals.dispatch(DAVE, "Session", "set_keys", keys=keys, proof=POP)
    vals.dispatch(DAVE, "Session", "purge_keys")
    assert vals.events() == [KeysPurged(DAVE)]
    assert NextKeys.get(vals.state, DAVE) is None
    assert BlsPops.get(vals.state, DAVE) is None
    assert owners(vals, keys) == [None, None, None]
    check(vals)


def test_purge_keys_without_keys_is_no_keys(vals: MockRuntime) -> None:
    vals.assert_noop(DAVE, "Session", "purge_keys", Error.NO_KEYS)


def test_purge_keys_of_current_or_queued_validator_is_still_validator(vals: MockRuntime) -> None:
    vals.assert_noop(BOB, "Session", "purge_keys", Error.STILL_VALIDATOR)
    bond(vals, DAVE)
    vals.dispatch(DAVE, "Session", "set_keys", keys=fake_session_keys(DAVE), proof=POP)
    vals.dispatch("root", "Session", "set_validators", validators=[ALICE, DAVE])
    vals.assert_noop(DAVE, "Session", "purge_keys", Error.STILL_VALIDATOR)
    # BOB leaves the set at the boundary: then he may purge
    run_to_block(vals, LENGTH)
    vals.dispatch(BOB, "Session", "purge_keys")
    check(vals)


# ---- set_validators ---------------------------------------------------------------------------


def test_set_validators_queues_the_set(vals: MockRuntime) -> None:
    vals.dispatch("root", "Session", "set_validators", validators=[CHARLIE, ALICE])
    assert vals.events() == [ValidatorsQueued([CHARLIE, ALICE])]
    assert QueuedValidators.get(vals.state) == [CHARLIE, ALICE]
    assert Validators.get(vals.state) == [ALICE, BOB, CHARLIE]  # not before the boundary


def test_set_validators_is_root_only(vals: MockRuntime) -> None:
    vals.assert_noop(ALICE, "Session", "set_validators", "BadOrigin", validators=[ALICE])
    vals.assert_noop("none", "Session", "set_validators", "BadOrigin", validators=[ALICE])


@pytest.mark.parametrize(
    ("validators", "error"),
    [
        ([], Error.NO_VALIDATORS),
        ([ALICE, BOB, ALICE], Error.DUPLICATE_VALIDATOR),
        ([ALICE, DAVE], Error.NO_KEYS),
        ([bytes([i]) * 32 for i in range(101)], Error.TOO_MANY_VALIDATORS),
    ],
)
def test_set_validators_errors(vals: MockRuntime, validators: list[bytes], error: Error) -> None:
    vals.assert_noop("root", "Session", "set_validators", error, validators=validators)


# ---- session boundaries -------------------------------------------------------------------------


def test_index_moves_only_at_boundaries(vals: MockRuntime) -> None:
    events = run_to_block(vals, LENGTH - 1)
    assert of_type(events, NewSession) == []
    assert CurrentIndex.get(vals.state) == 0
    assert of_type(run_to_block(vals, LENGTH), NewSession) == [NewSession(1)]
    assert CurrentIndex.get(vals.state) == 1
    events = run_to_block(vals, 3 * LENGTH + 4)
    assert of_type(events, NewSession) == [NewSession(2), NewSession(3)]
    assert CurrentIndex.get(vals.state) == 3
    assert CurrentIndex.get(vals.state) == vals.block_number // LENGTH


def test_boundary_with_the_same_keys_keeps_the_set_id(vals: MockRuntime) -> None:
    auths = aura.Authorities.get(vals.state)
    events = run_to_block(vals, 2 * LENGTH)
    assert of_type(events, NewAuthorities) == []
    assert finality.CurrentSetId.get(vals.state) == 0
    assert aura.Authorities.get(vals.state) == auths
    assert [finality.SessionSetId.get(vals.state, s) for s in (0, 1, 2)] == [0, 0, 0]
    check(vals)


def test_queued_validators_enacted_at_the_boundary(vals: MockRuntime) -> None:
    bond(vals, DAVE)
    vals.dispatch(DAVE, "Session", "set_keys", keys=fake_session_keys(DAVE), proof=POP)
    vals.dispatch("root", "Session", "set_validators", validators=[DAVE, ALICE])
    run_to_block(vals, LENGTH - 1)
    assert Validators.get(vals.state) == [ALICE, BOB, CHARLIE]
    assert staking.ValidatorCount.get(vals.state) == 3
    assert finality.CurrentSetId.get(vals.state) == 0
    events = run_to_block(vals, LENGTH)
    new = [fake_session_keys(DAVE), fake_session_keys(ALICE)]
    assert Validators.get(vals.state) == [DAVE, ALICE]
    assert staking.ValidatorCount.get(vals.state) == 2  # what wallets show follows the set
    assert QueuedValidators.get(vals.state) is None
    assert aura.Authorities.get(vals.state) == [k.aura for k in new]
    assert finality.Authorities.get(vals.state) == [k.grandpa for k in new]
    assert finality.BlsKeys.get(vals.state) == [k.bls for k in new]
    assert finality.CurrentSetId.get(vals.state) == 1
    assert finality.SetBlsKeys.get(vals.state, 1) == [
        (new[0].bls, POP),
        (new[1].bls, fake_pop(ALICE)),
    ]
    assert len(finality.SetBlsKeys.get(vals.state, 0)) == 3  # the old set's keys are kept
    assert finality.SessionSetId.get(vals.state, 1) == 1
    assert of_type(events, NewAuthorities) == [NewAuthorities(1, [k.grandpa for k in new])]
    assert of_type(events, NewSession) == [NewSession(1)]
    # the next boundary changes nothing
    run_to_block(vals, 2 * LENGTH)
    assert finality.CurrentSetId.get(vals.state) == 1
    assert finality.SessionSetId.get(vals.state, 2) == 1
    check(vals)


def test_key_rotation_takes_effect_at_the_next_boundary(vals: MockRuntime) -> None:
    rotated = fake_session_keys(BOB, 1)
    vals.dispatch(BOB, "Session", "set_keys", keys=rotated, proof=POP)
    assert aura.Authorities.get(vals.state)[1] == fake_session_keys(BOB).aura
    run_to_block(vals, LENGTH)
    assert aura.Authorities.get(vals.state)[1] == rotated.aura
    assert finality.Authorities.get(vals.state)[1] == rotated.grandpa
    assert finality.CurrentSetId.get(vals.state) == 1
    check(vals)


def test_a_new_bls_key_alone_starts_a_new_set(vals: MockRuntime) -> None:
    """Same finality keys, another BLS key: the set id moves so that SetBlsKeys of the old set
    (read by verifiers of old proofs) stays right."""
    keys = dataclasses.replace(fake_session_keys(BOB), bls=b"\x55" * 48)
    vals.dispatch(BOB, "Session", "set_keys", keys=keys, proof=POP)
    run_to_block(vals, LENGTH)
    assert finality.CurrentSetId.get(vals.state) == 1
    assert finality.SetBlsKeys.get(vals.state, 0)[1] == (fake_session_keys(BOB).bls, fake_pop(BOB))
    assert finality.SetBlsKeys.get(vals.state, 1)[1] == (b"\x55" * 48, POP)


def test_chain_without_session_genesis_keeps_aura_authorities(mock: MockRuntime) -> None:
    before = aura.Authorities.get(mock.state)
    assert before == [ALICE]
    events = run_to_block(mock, 2 * LENGTH)
    assert of_type(events, NewSession) == [NewSession(1), NewSession(2)]
    assert aura.Authorities.get(mock.state) == before
    assert finality.Authorities.get(mock.state) == []


# ---- runtime parameters -------------------------------------------------------------------------


def dev_parameters() -> dict[str, Any]:
    params: dict[str, Any] = load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"]
    return copy.deepcopy(params)


def test_session_length_round_trips_through_json() -> None:
    cfg = runtime_config(dev_parameters())
    assert cfg.session.length == LENGTH
    assert cfg.to_json()["session"] == {"length": LENGTH}
    assert decode_runtime_config(cfg.encode()) == cfg


def test_session_length_defaults_and_must_be_positive() -> None:
    params = dev_parameters()
    del params["session"]
    assert runtime_config(params).session.length == DEFAULT_SESSION_LENGTH
    params["session"] = {"length": 0}
    with pytest.raises(ValueError, match=r"session\.length"):
        runtime_config(params)


# ---- chain specs --------------------------------------------------------------------------------


def spec_keys(chain: str) -> list[Any]:
    keys: list[Any] = load_spec(chain).raw["genesis"]["runtimeGenesis"]["config"]["session"]["keys"]
    return keys


def load_script() -> Any:
    path = REPO / "scripts" / "gen_session_keys.py"
    spec = importlib.util.spec_from_file_location("gen_session_keys", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_session_keys_are_the_dev_accounts_derivations() -> None:
    """dev: //Alice; local: //Alice, //Bob, //Charlie, //Dave. aura = sr25519, grandpa = ed25519
    of the name's URI, bls from the ed25519 seed, and its proof of possession."""
    assert spec_keys("dev") == spec_keys("local")[:1]
    entries = spec_keys("local")
    for entry, name in zip(entries, ["Alice", "Bob", "Charlie", "Dave"], strict=True):
        account, keys = entry
        sr = derive_key(f"//{name}", "sr25519")
        ed = derive_key(f"//{name}", "ed25519")
        assert ed.seed is not None
        secret = bls.secret_from_seed(ed.seed)
        assert ss58_decode(account)[0] == sr.public
        assert ss58_decode(keys["aura"])[0] == sr.public
        assert ss58_decode(keys["grandpa"])[0] == ed.public
        assert bytes.fromhex(keys["bls"][2:]) == bls.public_key(secret)
        assert bytes.fromhex(keys["blsPop"][2:]) == bls.prove_possession(secret)  # deterministic
    assert load_script().session_keys_entry("alice") == entries[0]


def test_local_spec_has_four_bonded_validators_and_dev_one() -> None:
    from pallets.runtime import RUNTIME_CONFIG_KEY

    for chain, n in (("dev", 1), ("local", 4)):
        storage = genesis_storage(load_spec(chain))
        cfg = decode_runtime_config(storage[RUNTIME_CONFIG_KEY])
        assert cfg.session.length == 10
        state = _ReadOnly(storage)
        accounts = [ss58_decode(e[0])[0] for e in spec_keys(chain)]
        assert len(accounts) == n
        assert session.Validators.get(state) == accounts
        assert staking.ValidatorCount.get(state) == n
        assert aura.Authorities.get(state) == accounts  # aura key == the account's sr25519 key
        assert len(finality.Authorities.get(state)) == n
        for who in accounts:
            ledger = staking.get_ledger(state, who)
            assert ledger is not None
            assert ledger.active == 1_000_000 * 10**18
        build_runtime(cfg).try_state(state)  # genesis holds every pallet's invariants
    assert (
        decode_runtime_config(
            genesis_storage(load_spec("dev"))[RUNTIME_CONFIG_KEY]
        ).aura.slot_duration_ms
        == 1000
    )
    assert (
        decode_runtime_config(
            genesis_storage(load_spec("local"))[RUNTIME_CONFIG_KEY]
        ).aura.slot_duration_ms
        == 2000
    )


class _ReadOnly:
    def __init__(self, storage: dict[bytes, bytes]) -> None:
        self.storage = storage

    def get(self, key: bytes) -> bytes | None:
        return self.storage.get(key)

    def iterate(self, prefix: bytes = b"", start: bytes | None = None) -> Any:
        for k in sorted(self.storage):
            if k.startswith(prefix) and (start is None or k >= start):
                yield k, self.storage[k]


def test_spec_with_both_session_keys_and_aura_authorities_is_refused() -> None:
    raw = copy.deepcopy(load_spec("dev").raw)
    config = raw["genesis"]["runtimeGenesis"]["config"]
    config["aura"] = {"authorities": [spec_keys("dev")[0][0]]}
    with pytest.raises(ChainSpecError, match="not both"):
        build_genesis(ChainSpec(raw))


def test_spec_with_aura_authorities_counts_them_as_validators() -> None:
    """Without a validator set, Aura's authorities author: Staking.ValidatorCount is theirs."""
    raw = copy.deepcopy(load_spec("dev").raw)
    config = raw["genesis"]["runtimeGenesis"]["config"]
    del config["session"]
    config["aura"] = {"authorities": [e[0] for e in spec_keys("local")[:3]]}
    state = _ReadOnly(genesis_storage(ChainSpec(raw)))
    assert session.Validators.get(state) == []
    assert staking.ValidatorCount.get(state) == 3


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda k: k.update(bls="0x1234"), "48 bytes"),
        (lambda k: k.update(blsPop="zz"), "0x-prefixed"),
        (lambda k: k.pop("grandpa"), "lack"),
        (lambda k: k.update(aura="not-an-address"), "SS58"),
    ],
)
def test_spec_with_malformed_session_keys_is_refused(mutate: Any, match: str) -> None:
    raw = copy.deepcopy(load_spec("dev").raw)
    mutate(raw["genesis"]["runtimeGenesis"]["config"]["session"]["keys"][0][1])
    with pytest.raises(ChainSpecError, match=match):
        build_genesis(ChainSpec(raw))


def test_raw_spec_round_trip_keeps_the_genesis_hash() -> None:
    from genesis.builder import to_raw

    spec = load_spec("local")
    raw = ChainSpec(json.loads(json.dumps(to_raw(spec))))
    assert build_genesis(raw).hash == build_genesis(spec).hash
