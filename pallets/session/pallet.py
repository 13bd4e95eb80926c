"""Session: the validator set, their session keys, and the session boundaries.

A bonded account registers its session keys with `set_keys`: an Aura (sr25519) key for block
authorship, a finality (ed25519) key for votes, and a BLS12-381 key (with its proof of
possession) for the per-session finality proofs. Root queues a new validator set with
`set_validators`; it is enacted at the next session boundary.

Session `s` starts at block `s * SessionLength`. In that block's `on_initialize` the index moves,
a queued set becomes `Validators`, and the authority lists are recomputed from the validators'
`NextKeys`: `Aura.Authorities` (who authors from the next block on: the node checks a block's
author against its parent's state) and the Finality set (`finality.enact_set`, which starts a new
set id only when the keys change). A chain whose genesis has no session section (no Validators)
keeps its genesis Aura authorities.

A key stays resolvable to its owner (`KeyOwner`, which equivocation reports read) for as long as
it can sign and a report of what it signed is taken, as with FRAME's historical session: a key
its owner replaces (`set_keys`, `purge_keys`) while it is in use (an Aura, finality or BLS
authority key now) keeps its `KeyOwner` entry; at the boundary where it leaves the authority
lists it gets `KeyOwnerUntil` = that session + `KeyRetentionSessions` (the bonding duration in
sessions: as long as the owner's stake stays slashable), and at the start of that session the
entry goes, unless the owner holds the key again. Meanwhile no other account may register it. A
key replaced before it was ever in use is unindexed at once.

The BLS proof of possession is stored, not verified here (a pairing costs ~1 s in pure Python);
`cuckoo-node verify-finality` and the nodes check it before trusting a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from chain.consensus import BLS_PUBLIC_LENGTH, BLS_SIGNATURE_LENGTH
from chain.frame.prelude import *
from pallets import weights
from pallets.aura import pallet as aura
from pallets.config import Ctx, RuntimeConfig, SessionConfig
from pallets.finality import pallet as finality
from pallets.staking import pallet as staking

SPEC = PalletSpec("Session", 7)
Config = SessionConfig

MAX_VALIDATORS = 100
AURA_KEY_TYPE = finality.AURA_KEY_TYPE
FINALITY_KEY_TYPE = finality.FINALITY_KEY_TYPE
BLS_KEY_TYPE = finality.BLS_KEY_TYPE


SPEC.constant("SessionLength", U32, lambda c: c.session.length, "Blocks per session.")


def key_retention_sessions(config: RuntimeConfig) -> int:
    """Sessions a key out of use stays resolvable to its owner: the bonding duration (during
    which an unbonding validator's stake can still be slashed), rounded up to whole sessions."""
    blocks = config.staking.bonding_duration * config.staking.era_length
    return max(1, -(-blocks // config.session.length))


SPEC.constant(
    "KeyRetentionSessions",
    U32,
    key_retention_sessions,
    "Sessions after it leaves use that a key still resolves to its owner (equivocation reports).",
)


@struct("cuckoo_runtime::opaque::SessionKeys")
class SessionKeys:
    aura: Annotated[bytes, aura.AUTHORITY_ID, "<Aura as BoundToRuntimeAppPublic>::Public"]
    grandpa: Annotated[
        bytes, finality.AUTHORITY_ID, "<Finality as BoundToRuntimeAppPublic>::Public"
    ]  # ed25519 public key (finality votes)
    bls: Annotated[bytes, FixedBytes(BLS_PUBLIC_LENGTH), "[u8; 48]"]  # BLS12-381 G1 public key

    def by_type(self) -> tuple[tuple[bytes, bytes], ...]:
        """(key type id, key) of each key, as KeyOwner indexes them."""
        return (
            (AURA_KEY_TYPE, self.aura),
            (FINALITY_KEY_TYPE, self.grandpa),
            (BLS_KEY_TYPE, self.bls),
        )


SESSION_KEYS = scale_of(SessionKeys)
KEY_TYPE_ID = NewType("sp_core::crypto::KeyTypeId", FixedBytes(4), "[u8; 4]")
BLS_POP = FixedBytes(BLS_SIGNATURE_LENGTH)

Validators: StorageValue[list[bytes]] = StorageValue(
    SPEC,
    "Validators",
    Vec(ACCOUNT_ID),
    default=[],
    docs="The current validator accounts, in authority order.",
)
CurrentIndex: StorageValue[int] = StorageValue(
    SPEC, "CurrentIndex", U32, default=0, docs="Current index of the session."
)
NextKeys: StorageMap[bytes, SessionKeys] = StorageMap(
    SPEC,
    "NextKeys",
    ACCOUNT_ID,
    SESSION_KEYS,
    hasher="Twox64Concat",
    docs="The session keys of each account, used from the next session boundary on.",
)
BlsPops: StorageMap[bytes, bytes] = StorageMap(
    SPEC,
    "BlsPops",
    ACCOUNT_ID,
    BLS_POP,
    hasher="Twox64Concat",
    docs="Each account's proof of possession of its BLS key (checked off chain).",
)
KeyOwner: StorageMap[tuple[bytes, bytes], bytes] = StorageMap(
    SPEC,
    "KeyOwner",
    Tuple(KEY_TYPE_ID, Bytes()),
    ACCOUNT_ID,
    hasher="Twox64Concat",
    docs="The owner of a key, by (key type id, key).",
)
KeyOwnerUntil: StorageMap[tuple[bytes, bytes], int] = StorageMap(
    SPEC,
    "KeyOwnerUntil",
    Tuple(KEY_TYPE_ID, Bytes()),
    U32,
    hasher="Twox64Concat",
    docs="Keys out of use whose KeyOwner entry stays until this session starts (reports of "
    "their equivocations are taken until then).",
)
KeyOwnerExpiries: StorageMap[int, list[tuple[bytes, bytes]]] = StorageMap(
    SPEC,
    "KeyOwnerExpiries",
    U32,
    Vec(Tuple(KEY_TYPE_ID, Bytes())),
    hasher="Twox64Concat",
    default=[],
    docs="The keys whose KeyOwnerUntil is this session.",
)
QueuedValidators: StorageValue[list[bytes]] = StorageValue(
    SPEC,
    "QueuedValidators",
    Vec(ACCOUNT_ID),
    docs="A validator set set by root, enacted at the next session boundary.",
)


@event(SPEC, 0)
class NewSession:
    """A new session started."""

    session_index: finality.SessionIndex


@event(SPEC, 1)
class ValidatorsQueued:
    """Root queued a validator set for the next session."""

    validators: Annotated[list[bytes], Vec(ACCOUNT_ID), "Vec<T::AccountId>"]


@event(SPEC, 2)
class KeysSet:
    """An account set its session keys."""

    who: T.AccountId


@event(SPEC, 3)
class KeysPurged:
    """An account removed its session keys."""

    who: T.AccountId


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    INVALID_PROOF = 0, "The BLS proof of possession must be 96 bytes."
    NOT_BONDED = 1, "Only a bonded account (with a staking ledger) may set session keys."
    DUPLICATED_KEY = 2, "A key is already owned by another account."
    NO_KEYS = 3, "The account has no session keys."
    STILL_VALIDATOR = 4, "A current or queued validator cannot purge its keys."
    NO_VALIDATORS = 5, "A validator set cannot be empty."
    DUPLICATE_VALIDATOR = 6, "An account appears twice in the validator set."
    TOO_MANY_VALIDATORS = 7, "At most MaxValidators validators."


SPEC.constant("MaxValidators", U32, lambda c: MAX_VALIDATORS, "Validators in a set.")


def key_owner(state: ReadState, key_type: bytes, key: bytes) -> bytes | None:
    """The account owning a session key, also a replaced key while it is retained (see the
    module docs); wired to Finality's `key_owners`."""
    owner: bytes | None = KeyOwner.get(state, (key_type, key))
    return owner


def keys_in_use(state: ReadState) -> list[tuple[bytes, bytes]]:
    """(key type, key) of every authority key now: Aura's, finality's and the BLS keys."""
    return [
        *((AURA_KEY_TYPE, k) for k in aura.Authorities.get(state)),
        *((FINALITY_KEY_TYPE, k) for k in finality.Authorities.get(state)),
        *((BLS_KEY_TYPE, k) for k in finality.BlsKeys.get(state)),
    ]


def _put_keys(ctx: Ctx, who: bytes, keys: SessionKeys, pop: bytes) -> None:
    old = NextKeys.get(ctx.state, AccountId(who))
    if old is not None:
        kept = set(keys.by_type())
        _release_keys(ctx, who, [k for k in old.by_type() if k not in kept])
    for key_type, key in keys.by_type():
        KeyOwner.put(ctx.state, (key_type, key), AccountId(who))
    NextKeys.put(ctx.state, AccountId(who), keys)
    BlsPops.put(ctx.state, AccountId(who), pop)


def _release_keys(ctx: Ctx, who: bytes, released: Sequence[tuple[bytes, bytes]]) -> None:
    """`who` no longer holds these keys: unindex each one that is neither in use (it gets its
    KeyOwnerUntil when it leaves the authority lists) nor retained already."""
    in_use = set(keys_in_use(ctx.state))
    for key_id in released:
        if key_id in in_use or KeyOwnerUntil.contains(ctx.state, key_id):
            continue
        if KeyOwner.get(ctx.state, key_id) == who:
            KeyOwner.remove(ctx.state, key_id)


# ---- calls ------------------------------------------------------------------------------------


@call(SPEC, 0, weight=weights.session_set_keys())
def set_keys(
    ctx: Ctx,
    keys: Annotated[SessionKeys, SESSION_KEYS, "T::Keys"],
    proof: Annotated[bytes, Bytes(), "Vec<u8>"],
) -> None:
    """Set the caller's session keys; `proof` is the proof of possession of the BLS key. They
    take effect at the next session boundary if the caller is (or becomes) a validator.
    Errors: NotBonded, InvalidProof, DuplicatedKey. Emits: KeysSet."""
    who = ctx.ensure_signed()
    ensure(staking.get_ledger(ctx.state, who) is not None, Error.NOT_BONDED)
    ensure(len(proof) == BLS_SIGNATURE_LENGTH, Error.INVALID_PROOF)
    for key_type, key in keys.by_type():
        owner = KeyOwner.get(ctx.state, (key_type, key))
        ensure(owner is None or owner == who, Error.DUPLICATED_KEY)
    _put_keys(ctx, who, keys, proof)
    ctx.emit(KeysSet(who))


@call(SPEC, 1, weight=weights.session_purge_keys())
def purge_keys(ctx: Ctx) -> None:
    """Remove the caller's session keys. Errors: StillValidator, NoKeys. Emits: KeysPurged."""
    who = ctx.ensure_signed()
    queued = QueuedValidators.get(ctx.state) or []
    ensure(who not in Validators.get(ctx.state) and who not in queued, Error.STILL_VALIDATOR)
    keys = NextKeys.get(ctx.state, AccountId(who))
    ensure(keys is not None, Error.NO_KEYS)
    assert keys is not None
    NextKeys.remove(ctx.state, AccountId(who))
    _release_keys(ctx, who, keys.by_type())
    BlsPops.remove(ctx.state, AccountId(who))
    ctx.emit(KeysPurged(who))


@call(SPEC, 2, weight=lambda a: weights.session_set_validators(len(a["validators"])))
def set_validators(
    ctx: Ctx, validators: Annotated[list[bytes], Vec(ACCOUNT_ID), "Vec<T::AccountId>"]
) -> None:
    """Root: queue the validator set of the next session, in authority order. Errors:
    NoValidators, TooManyValidators, DuplicateValidator, NoKeys. Emits: ValidatorsQueued."""
    ctx.ensure_root()
    ensure(bool(validators), Error.NO_VALIDATORS)
    ensure(len(validators) <= MAX_VALIDATORS, Error.TOO_MANY_VALIDATORS)
    ensure(len(set(validators)) == len(validators), Error.DUPLICATE_VALIDATOR)
    for v in validators:
        ensure(NextKeys.contains(ctx.state, AccountId(v)), Error.NO_KEYS)
    QueuedValidators.put(ctx.state, list(validators))
    ctx.emit(ValidatorsQueued(list(validators)))


# ---- session boundaries -----------------------------------------------------------------------


def is_session_start(config: RuntimeConfig, block_number: int) -> bool:
    return block_number > 0 and block_number % config.session.length == 0


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    if not is_session_start(ctx.config, ctx.block_number):
        return
    index = ctx.block_number // ctx.config.session.length
    CurrentIndex.put(ctx.state, index)
    queued = QueuedValidators.get(ctx.state)
    if queued is not None:
        _put_validators(ctx, queued)
        QueuedValidators.kill(ctx.state)
    expire_key_owners(ctx, index)
    before = keys_in_use(ctx.state)
    enact_authorities(ctx, index)
    retain_keys_out_of_use(ctx, index, before)
    ctx.emit(NewSession(index))


def retain_keys_out_of_use(ctx: Ctx, index: int, before: list[tuple[bytes, bytes]]) -> None:
    """Keys that left the authority lists at the start of session `index` stay resolvable
    until session `index + KeyRetentionSessions`; keys back in use are retained no more."""
    after = keys_in_use(ctx.state)
    if after == before:
        return
    now_used = set(after)
    until = index + key_retention_sessions(ctx.config)
    left = [k for k in before if k not in now_used and KeyOwner.contains(ctx.state, k)]
    for key_id in left:
        KeyOwnerUntil.put(ctx.state, key_id, until)
    if left:
        KeyOwnerExpiries.put(ctx.state, until, [*KeyOwnerExpiries.get(ctx.state, until), *left])
    for key_id in after:
        if KeyOwnerUntil.contains(ctx.state, key_id):
            KeyOwnerUntil.remove(ctx.state, key_id)


def expire_key_owners(ctx: Ctx, index: int) -> None:
    """Unindex the keys retained until session `index`, unless their owner holds them again."""
    for key_id in KeyOwnerExpiries.get(ctx.state, index):
        if KeyOwnerUntil.get(ctx.state, key_id) != index:
            continue  # back in use, or retained again until later
        KeyOwnerUntil.remove(ctx.state, key_id)
        owner = KeyOwner.get(ctx.state, key_id)
        keys = None if owner is None else NextKeys.get(ctx.state, AccountId(owner))
        if keys is None or key_id not in keys.by_type():
            KeyOwner.remove(ctx.state, key_id)
    KeyOwnerExpiries.remove(ctx.state, index)


def _put_validators(ctx: Ctx, validators: list[bytes]) -> None:
    """The validator set in force; Staking's ValidatorCount (what wallets show) follows it."""
    Validators.put(ctx.state, validators)
    staking.set_validator_count(ctx, len(validators))


def enact_authorities(ctx: Ctx, session: int) -> None:
    """Aura and finality authorities from the validators' keys (none: nothing changes)."""
    validators = Validators.get(ctx.state)
    keyed = [(v, k) for v in validators if (k := NextKeys.get(ctx.state, AccountId(v))) is not None]
    if not keyed:
        return
    if len(keyed) != len(validators):  # cannot happen through the calls; keep the lists aligned
        _put_validators(ctx, [v for v, _ in keyed])
    aura.Authorities.put(ctx.state, [k.aura for _, k in keyed])
    finality.enact_set(
        ctx,
        [k.grandpa for _, k in keyed],
        [
            (k.bls, BlsPops.get(ctx.state, AccountId(v)) or bytes(BLS_SIGNATURE_LENGTH))
            for v, k in keyed
        ],
        session=session,
    )


# ---- genesis ----------------------------------------------------------------------------------


def build_genesis(ctx: Ctx, keys: Sequence[tuple[bytes, SessionKeys, bytes]]) -> None:
    """Validators (in the given order) with their keys and BLS PoPs; Aura's authorities and
    the finality set 0 follow from them."""
    if not keys:
        raise ValueError("the session genesis needs at least one validator")
    if len(keys) > MAX_VALIDATORS:
        raise ValueError(f"at most {MAX_VALIDATORS} validators")
    seen: set[bytes] = set()
    for who, k, pop in keys:
        if who in seen:
            raise ValueError(f"validator {who.hex()} appears twice in the session genesis")
        seen.add(who)
        if len(pop) != BLS_SIGNATURE_LENGTH:
            raise ValueError(f"the BLS proof of possession of {who.hex()} is not 96 bytes")
        for key_type, key in k.by_type():
            if KeyOwner.contains(ctx.state, (key_type, key)):
                raise ValueError(f"{key_type.decode()} key 0x{key.hex()} is given twice")
            KeyOwner.put(ctx.state, (key_type, key), AccountId(who))
        NextKeys.put(ctx.state, AccountId(who), k)
        BlsPops.put(ctx.state, AccountId(who), pop)
    _put_validators(ctx, [who for who, _, _ in keys])
    CurrentIndex.put(ctx.state, 0)
    aura.build_genesis(ctx, [k.aura for _, k, _ in keys])
    finality.build_genesis(ctx, [k.grandpa for _, k, _ in keys], [(k.bls, p) for _, k, p in keys])


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """Every validator has keys; KeyOwner indexes exactly the keys accounts hold, the keys in
    use and the retained keys; each retained key is queued for expiry in a future session;
    Staking's ValidatorCount is the set's size."""
    validators = Validators.get(state)
    if validators and staking.ValidatorCount.get(state) != len(validators):
        raise AssertionError(
            f"Staking.ValidatorCount {staking.ValidatorCount.get(state)} != {len(validators)}"
        )
    for v in validators:
        if not NextKeys.contains(state, AccountId(v)):
            raise AssertionError(f"validator {v.hex()} has no session keys")
    indexed: set[tuple[bytes, bytes]] = set()
    for who, keys in NextKeys.iter(state):
        for key_type, key in keys.by_type():
            if KeyOwner.get(state, (key_type, key)) != who:
                raise AssertionError(f"KeyOwner of {key_type!r} 0x{key.hex()} is not {who.hex()}")
            indexed.add((key_type, key))
    index = CurrentIndex.get(state)
    for key_id, until in KeyOwnerUntil.iter(state):
        if not KeyOwner.contains(state, key_id) or until <= index:
            raise AssertionError(f"retained key 0x{key_id[1].hex()} is unowned or overdue")
        if key_id not in KeyOwnerExpiries.get(state, until):
            raise AssertionError(f"retained key 0x{key_id[1].hex()} is not queued to expire")
        indexed.add(key_id)
    indexed.update(k for k in keys_in_use(state) if KeyOwner.contains(state, k))
    owned = sum(1 for _ in KeyOwner.iter(state))
    if owned != len(indexed):
        raise AssertionError("KeyOwner has entries for keys no account holds")
