"""The mock runtime for pallet tests, in the spirit of FRAME's `new_test_ext` / `build_and_execute`.

`mock` gives a fresh genesis (small existential deposit, cheap fees, an open faucet) over an
in-memory store, with an Overlay on top that records everything a test changes. Calls go through
`runtime.dispatch` inside a checkpoint, exactly as the executive runs them. After every test every
pallet's invariants are checked (`runtime.try_state`, FRAME's `try_state`).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest

from chain.codec import encode_u64
from chain.consensus import PRECOMMIT, SlotEquivocation, Vote, VoteEquivocation, vote_payload
from chain.frame.common import Weight
from chain.frame.outer import DecodedCall
from chain.frame.pallet import DispatchError, ModuleError, Origin
from chain.frame.runtime import Runtime
from chain.hashing import blake2_256
from chain.primitives import DigestItem, Header
from chain.storage.kv import MemoryKV
from chain.storage.overlay import Overlay
from genesis.builder import load_spec
from node.keystore import Signer
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.config import Ctx
from pallets.faucet import pallet as faucet
from pallets.runtime import RuntimeConfig, build_runtime, runtime_config
from pallets.session import pallet as session
from pallets.session.pallet import SessionKeys
from pallets.staking import pallet as staking
from pallets.sudo import pallet as sudo
from pallets.system import pallet as system
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment import pallet as transaction_payment

ED = 10
FAUCET_AMOUNT = 1000
FAUCET_PERIOD = 5

ALICE = bytes([1]) * 32
BOB = bytes([2]) * 32
CHARLIE = bytes([3]) * 32
DAVE = bytes([4]) * 32  # not endowed at genesis
EVE = bytes([5]) * 32  # not endowed at genesis

GENESIS_BALANCES = {ALICE: 1_000, BOB: 500, CHARLIE: 100}
GENESIS_ISSUANCE = sum(GENESIS_BALANCES.values())
SUDO_KEY = ALICE


def mock_config(**faucet_overrides: Any) -> RuntimeConfig:
    """The dev chain's parameters (so pallets added later get working values) with a small ED,
    cheap fees and an open faucet."""
    dev = runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
    faucet_cfg = {"enabled": True, "amount": FAUCET_AMOUNT, "period_blocks": FAUCET_PERIOD}
    return dataclasses.replace(
        dev,
        system=system.Config(block_hash_count=250, ss58_prefix=42),
        timestamp=timestamp.Config(minimum_period_ms=500),
        aura=aura.Config(slot_duration_ms=1000),
        balances=balances.Config(existential_deposit=ED),
        transaction_payment=transaction_payment.Config(
            byte_fee=1,
            weight_fee_per_ref_time=1,
            weight_fee_divisor=1_000_000,
            extrinsic_base_weight=Weight(5_000_000, 0),
        ),
        faucet=faucet.Config(**{**faucet_cfg, **faucet_overrides}),
        # the slashing tests' arithmetic is written for a 10% invalid-result slash
        slashing=dataclasses.replace(dev.slashing, invalid_result_slash=100_000_000),
    )


OriginLike = Origin | bytes | str


def as_origin(origin: OriginLike) -> Origin:
    if isinstance(origin, Origin):
        return origin
    if isinstance(origin, bytes):
        return Origin.signed(origin)
    return {"root": Origin.root(), "none": Origin.none()}[origin]


class MockRuntime:
    """One test's externalities: a genesis store, an Overlay of the test's changes, a runtime."""

    def __init__(
        self, config: RuntimeConfig, endowed: dict[bytes, int], sudo_key: bytes | None
    ) -> None:
        self.config = config
        self.runtime: Runtime[RuntimeConfig] = build_runtime(config)
        self.backend = MemoryKV()
        genesis = Overlay(self.backend)
        ctx = self.runtime.ctx(genesis, Origin.root(), 0, [])
        balances.build_genesis(ctx, list(endowed.items()))
        aura.build_genesis(ctx, [ALICE])
        if sudo_key is not None:
            sudo.Key.put(genesis, sudo_key)
        self.backend.write_batch(genesis.changes().items())
        self.state = Overlay(self.backend)
        self.block_number = 1
        self._events: list[Any] = []

    # ---- dispatch ------------------------------------------------------------------------------

    def ctx(self, origin: OriginLike, events: list[Any] | None = None) -> Ctx:
        sink = self._events if events is None else events
        return self.runtime.ctx(self.state, as_origin(origin), self.block_number, sink)

    def call(self, pallet: str, call_name: str, **args: Any) -> DecodedCall:
        """A call as a block would carry it: encoded to bytes and decoded back."""
        call = self.runtime.call(pallet, call_name, **args)
        return self.runtime.decode_call(self.runtime.call_type.encode(call))

    def dispatch(self, origin: OriginLike, pallet: str, call_name: str, **args: Any) -> None:
        """Run the call in a checkpoint (reverted on DispatchError, which is re-raised)."""
        call = self.call(pallet, call_name, **args)
        events: list[Any] = []
        self._events = []
        self.state.checkpoint()
        try:
            self.runtime.dispatch(self.ctx(origin, events), call)
        except BaseException:  # DispatchError, or a runtime bug: leave no checkpoint open
            self.state.revert_checkpoint()
            raise
        self.state.commit_checkpoint()
        self._events = events

    def events(self) -> list[Any]:
        """Events of the last dispatch (none when it failed)."""
        return list(self._events)

    def snapshot(self) -> dict[bytes, bytes | None]:
        return self.state.changes()

    def assert_noop(
        self,
        origin: OriginLike,
        pallet: str,
        call_name: str,
        expected: enum.IntEnum | str,
        **args: Any,
    ) -> DispatchError:
        """The call fails with exactly `expected` (a pallet error member, or a DispatchError kind)
        and leaves storage byte-for-byte unchanged."""
        before = self.snapshot()
        with pytest.raises(DispatchError) as info:
            self.dispatch(origin, pallet, call_name, **args)
        assert_error(info.value, expected)
        assert self.snapshot() == before, "a failed call changed storage"
        assert self.events() == []
        return info.value

    # ---- state helpers ---------------------------------------------------------------------------

    def account(self, who: bytes) -> system.AccountInfo:
        return system.get_account(self.state, who)

    def free(self, who: bytes) -> int:
        return balances.free_balance(self.state, who)

    def exists(self, who: bytes) -> bool:
        return system.Account.contains(self.state, who)

    def issuance(self) -> int:
        return balances.TotalIssuance.get(self.state)

    def set_frozen(self, who: bytes, frozen: int) -> None:
        """Freeze `frozen` of `who`'s free balance with a lock of its own (as another pallet
        would); 0 removes it."""
        balances.set_lock(self.ctx("root", []), who, b"testlock", frozen)

    def run_to_block(self, n: int) -> None:
        self.block_number = n


def assert_error(err: DispatchError, expected: enum.IntEnum | str) -> None:
    if isinstance(expected, enum.IntEnum):
        assert isinstance(err, ModuleError), f"expected {expected!r}, got {err.kind} ({err})"
        assert err.error is expected, f"got {err.error!r}"
    else:
        assert not isinstance(err, ModuleError), f"expected {expected}, got module error {err}"
        assert err.kind == expected, f"expected {expected}, got {err.kind} ({err})"


# ---- validators (Session / Finality tests) -------------------------------------------------------


def fake_session_keys(who: bytes, version: int = 0) -> SessionKeys:
    """Distinct keys per account (and per `version`, for rotations); not real key material."""
    tag = bytes([who[0], version])
    return SessionKeys(aura=b"\xa1" * 2 + tag * 15, grandpa=b"\x9a" * 2 + tag * 15, bls=tag * 24)


def fake_pop(who: bytes, version: int = 0) -> bytes:
    return bytes([who[0], version, 0xF0]) * 32


def add_validators(
    mock: MockRuntime,
    validators: list[bytes],
    *,
    bond: int | None = None,
    keys: dict[bytes, SessionKeys] | None = None,
) -> None:
    """As a genesis with a session section would: bond each validator (`bond`, default half its
    free balance; 0: no bond) and give it session keys (fake ones unless `keys` has them)."""
    ctx = mock.ctx("root", [])
    stakers = [(v, mock.free(v) // 2 if bond is None else bond) for v in validators]
    staking.build_genesis(ctx, [(v, amount) for v, amount in stakers if amount])
    given = keys or {}
    session.build_genesis(
        ctx, [(v, given.get(v) or fake_session_keys(v), fake_pop(v)) for v in validators]
    )


def sealed_header(signer: Signer, slot: int, variant: bytes, number: int = 5) -> Header:
    """A header for `slot` with an Aura pre-runtime digest and `signer`'s (sr25519) seal."""
    unsealed = Header(
        parent_hash=b"\x11" * 32,
        number=number,
        state_root=blake2_256(variant),
        extrinsics_root=b"\x22" * 32,
        digest=(DigestItem.pre_runtime(b"aura", encode_u64(slot)),),
    )
    seal = DigestItem.seal(b"aura", signer.sign(unsealed.hash()))
    return dataclasses.replace(unsealed, digest=(*unsealed.digest, seal))


def slot_equivocation(signer: Signer, slot: int, a: bytes = b"a", b: bytes = b"b") -> bytes:
    """A `chain.consensus.SlotEquivocation` proof: two headers sealed by `signer` for `slot`."""
    first, second = sealed_header(signer, slot, a), sealed_header(signer, slot, b)
    return SlotEquivocation(signer.public, slot, first, second).encode()


def signed_vote(
    signer: Signer, set_id: int, round_number: int, phase: int, target: bytes, number: int
) -> tuple[bytes, int, bytes]:
    sig = signer.sign(vote_payload(Vote(phase, target, number), round_number, set_id))
    return (target, number, sig)


def vote_equivocation(
    signer: Signer,
    set_id: int = 0,
    round_number: int = 1,
    phase: int = PRECOMMIT,
    targets: tuple[bytes, bytes] = (b"\x01" * 32, b"\x02" * 32),
) -> bytes:
    """A `chain.consensus.VoteEquivocation` proof: two votes by `signer` (ed25519) in one round."""
    a = signed_vote(signer, set_id, round_number, phase, targets[0], 7)
    b = signed_vote(signer, set_id, round_number, phase, targets[1], 7)
    return VoteEquivocation(set_id, round_number, phase, signer.public, a, b).encode()
