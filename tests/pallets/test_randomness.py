"""Randomness (RANDAO with hash onions): the onion itself (`chain.onion`), the pallet's digest
rules in `on_initialize` on the mock runtime, and the same rules enforced on real blocks by the
executive on the dev genesis."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import pytest

from chain import onion
from chain.codec import encode_u64
from chain.frame.pallet import DispatchError
from chain.hashing import blake2_256
from chain.onion import HashOnion, onion_seed
from chain.primitives import DigestItem, encode_unsigned_extrinsic
from chain.storage.trie import MemoryNodeStore, Trie
from genesis.builder import build_genesis, load_spec
from pallets.aura import pallet as aura
from pallets.executive import Executive, InvalidBlock
from pallets.randomness import pallet as randomness
from pallets.randomness.pallet import Mix, Onion, Onions, current_mix
from pallets.runtime import build_runtime
from pallets.system import pallet as system
from tests.pallets.mock import ALICE, BOB, MockRuntime

SMALL = 6  # the onion length in tests that exhaust one


def naive_chain(seed: bytes, n: int) -> list[bytes]:
    """h_0 .. h_n, computed without checkpoints."""
    out = [seed]
    for _ in range(n):
        out.append(hashlib.blake2b(out[-1], digest_size=32).digest())
    return out


# ---- chain.onion --------------------------------------------------------------------------------


def test_onion_values_and_reveals_match_the_plain_hash_chain() -> None:
    seed = onion_seed(b"secret", 1)
    n = 3000
    plain = naive_chain(seed, n)
    o = HashOnion(seed, n, interval=64)
    assert o.tip() == plain[n]
    for i in (0, 1, 63, 64, 65, 1000, 2999, 3000):
        assert o.value(i) == plain[i]
    for k in (0, 1, 64, 2999):
        assert o.reveal(k) == plain[n - k - 1]
        assert blake2_256(o.reveal(k)) == (o.tip() if k == 0 else o.reveal(k - 1))
    with pytest.raises(IndexError):
        o.reveal(n)  # exhausted
    with pytest.raises(IndexError):
        o.value(n + 1)


def test_onion_default_length_and_seed_domains() -> None:
    assert onion.ONION_LENGTH == 2**20
    a, b = onion_seed(b"k" * 32, 1), onion_seed(b"k" * 32, 2)
    assert len(a) == 32
    assert len({a, b, onion_seed(b"j" * 32, 1)}) == 3
    assert a != blake2_256(b"k" * 32)  # domain-separated
    with pytest.raises(ValueError, match="generation"):
        onion_seed(b"k", -1)
    shown = repr(HashOnion(a, 4))
    assert "tip" in shown
    assert a.hex()[:16] not in shown  # the seed never


# ---- the pallet on the mock runtime -------------------------------------------------------------


def rand(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + value


def run_block(mock: MockRuntime, *payloads: bytes, slot: int | None = None) -> None:
    """A block's start: Aura's and Randomness's on_initialize with this digest (an Aura slot and
    `payloads` as rand pre-runtime items). A failing block leaves storage unchanged."""
    mock.run_to_block(mock.block_number + 1)
    slot = mock.block_number if slot is None else slot
    logs: list[Any] = [("PreRuntime", (aura.ENGINE_ID, encode_u64(slot)))]
    logs += [("PreRuntime", (randomness.ENGINE_ID, p)) for p in payloads]
    state = mock.state
    state.checkpoint()
    try:
        system.Digest.put(state, {"logs": logs})
        ctx = mock.ctx("root", [])
        aura.on_initialize(ctx)
        randomness.on_initialize(ctx)
    except BaseException:
        state.revert_checkpoint()
        mock.block_number -= 1
        raise
    state.commit_checkpoint()


def rejected(mock: MockRuntime, *payloads: bytes, match: str, slot: int | None = None) -> None:
    before = mock.snapshot()
    with pytest.raises(DispatchError, match=match):
        run_block(mock, *payloads, slot=slot)
    assert mock.snapshot() == before


@pytest.fixture
def small_onions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onion, "ONION_LENGTH", SMALL)


@functools.cache
def _onion(secret: bytes, generation: int, length: int) -> HashOnion:
    return HashOnion(onion_seed(secret, generation), length)


def alice_onion(generation: int = 1) -> HashOnion:
    """A test onion of the current ONION_LENGTH (computed once per length)."""
    return _onion(b"alice", generation, onion.ONION_LENGTH)


def test_blocks_without_a_rand_digest_stay_valid_for_authors_without_an_onion(
    mock: MockRuntime,
) -> None:
    for _ in range(3):
        run_block(mock)
    assert current_mix(mock.state) == bytes(32)
    assert list(Onions.iter(mock.state)) == []


def test_commit_registers_an_onion_and_leaves_the_mix(mock: MockRuntime) -> None:
    o = alice_onion()
    run_block(mock, randomness.encode_commit(o.tip()))
    assert Onions.get(mock.state, ALICE) == Onion(o.tip(), 0, 1)
    assert current_mix(mock.state) == bytes(32)
    assert not Mix.exists(mock.state)


def test_each_reveal_moves_the_tip_and_folds_into_the_mix(mock: MockRuntime) -> None:
    o = alice_onion()
    run_block(mock, randomness.encode_commit(o.tip()))
    mix = bytes(32)
    mixes = {mix}
    for k in range(5):
        value = o.reveal(k)
        run_block(mock, randomness.encode_reveal(value))
        mix = blake2_256(mix + value)
        assert current_mix(mock.state) == mix
        assert Onions.get(mock.state, ALICE) == Onion(value, k + 1, 1)
        mixes.add(mix)
    assert len(mixes) == 6  # a new mix at every reveal


def test_a_wrong_reveal_is_rejected(mock: MockRuntime) -> None:
    o = alice_onion()
    run_block(mock, randomness.encode_commit(o.tip()))
    rejected(mock, rand(1, o.reveal(1)), match="does not hash")  # skips a value
    rejected(mock, rand(1, o.tip()), match="does not hash")  # replays the tip
    rejected(mock, rand(1, alice_onion(2).reveal(0)), match="does not hash")  # another onion


def test_a_missing_reveal_is_rejected(mock: MockRuntime) -> None:
    run_block(mock, randomness.encode_commit(alice_onion().tip()))
    rejected(mock, match="must reveal")


def test_a_commit_while_values_are_left_is_rejected(mock: MockRuntime) -> None:
    o = alice_onion()
    run_block(mock, randomness.encode_commit(o.tip()))
    run_block(mock, randomness.encode_reveal(o.reveal(0)))
    rejected(mock, randomness.encode_commit(alice_onion(2).tip()), match="commit while")


def test_a_reveal_without_an_onion_is_rejected(mock: MockRuntime) -> None:
    rejected(mock, rand(1, b"\x07" * 32), match="without a live onion")


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x01" + b"\x00" * 31, b"\x01" + b"\x00" * 33, b"\x02" + b"\x00" * 32],
    ids=["empty", "kind-only", "short", "long", "unknown-kind"],
)
def test_a_malformed_payload_is_rejected(mock: MockRuntime, payload: bytes) -> None:
    rejected(mock, payload, match="malformed")


def test_two_rand_items_are_rejected(mock: MockRuntime) -> None:
    o = alice_onion()
    tip = randomness.encode_commit(o.tip())
    rejected(mock, tip, tip, match="more than one")
    run_block(mock, tip)
    reveal = randomness.encode_reveal(o.reveal(0))
    rejected(mock, reveal, reveal, match="more than one")


@pytest.mark.usefixtures("small_onions")
def test_an_exhausted_onion_is_followed_by_a_new_generation(mock: MockRuntime) -> None:
    first = alice_onion(1)
    assert first.length == SMALL
    run_block(mock, randomness.encode_commit(first.tip()))
    for k in range(SMALL):
        run_block(mock, randomness.encode_reveal(first.reveal(k)))
    assert Onions.get(mock.state, ALICE) == Onion(first.value(0), SMALL, 1)
    assert not randomness.is_live(Onions.get(mock.state, ALICE))
    # h_0 is revealed: nothing below it can be shown; a block without a digest is valid again
    rejected(mock, rand(1, b"\x00" * 32), match="without a live onion")
    mix = current_mix(mock.state)
    run_block(mock)
    assert current_mix(mock.state) == mix
    second = alice_onion(2)
    run_block(mock, randomness.encode_commit(second.tip()))
    assert Onions.get(mock.state, ALICE) == Onion(second.tip(), 0, 2)
    rejected(mock, match="must reveal")
    run_block(mock, randomness.encode_reveal(second.reveal(0)))
    assert current_mix(mock.state) == blake2_256(mix + second.reveal(0))


def test_each_author_reveals_its_own_onion(mock: MockRuntime) -> None:
    aura.Authorities.put(mock.state, [ALICE, BOB])  # slot s is authored by [ALICE, BOB][s % 2]
    a, b = alice_onion(), _onion(b"bob", 1, onion.ONION_LENGTH)
    run_block(mock, randomness.encode_commit(a.tip()), slot=10)
    run_block(mock, slot=11)  # Bob has no onion: he may carry no digest
    run_block(mock, randomness.encode_commit(b.tip()), slot=13)
    run_block(mock, randomness.encode_reveal(a.reveal(0)), slot=14)
    # slot 15 is Bob's: Alice's next value is not his
    rejected(mock, randomness.encode_reveal(a.reveal(1)), match="does not hash", slot=15)
    run_block(mock, randomness.encode_reveal(b.reveal(0)), slot=15)
    assert Onions.get(mock.state, ALICE) == Onion(a.reveal(0), 1, 1)
    assert Onions.get(mock.state, BOB) == Onion(b.reveal(0), 1, 1)
    assert current_mix(mock.state) == blake2_256(blake2_256(bytes(32) + a.reveal(0)) + b.reveal(0))


def test_metadata_declares_the_storage_and_the_onion_length(mock: MockRuntime) -> None:
    spec = randomness.SPEC
    assert (spec.name, spec.index, spec.module) == ("Randomness", 16, "pallet_cuckoo_randomness")
    assert [s.name for s in spec.storage] == ["Onions", "Mix"]
    assert all(s.docs for s in spec.storage)
    [length] = spec.constants
    assert length.name == "OnionLength"
    assert length.getter(mock.config) == 2**20


# ---- the rules on real blocks (the executive, dev genesis) -----------------------------------


class DevChain:
    """Blocks on the dev genesis (one authority, //Alice), built and executed by the executive."""

    def __init__(self) -> None:
        genesis = build_genesis(load_spec("dev"))
        self.runtime = build_runtime(genesis.config)
        self.ex = Executive(self.runtime)
        self.store = MemoryNodeStore(genesis.nodes)
        self.head = Trie(self.store, genesis.header.state_root)
        self.head_hash = genesis.hash
        self.number = 0
        self.slot = 1_000

    def build(self, *rand_payloads: bytes) -> None:
        slot = self.slot + 1
        digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
        digest += [DigestItem.pre_runtime(randomness.ENGINE_ID, p) for p in rand_payloads]
        builder = self.ex.begin_block(self.head, self.head_hash, self.number + 1, digest)
        call = self.runtime.call("Timestamp", "set", now=slot * 1000)
        builder.apply_inherent(encode_unsigned_extrinsic(self.runtime.call_type.encode(call)))
        built = builder.finalize()
        self.store.update(built.nodes)
        self.head = Trie(self.store, built.header.state_root)
        self.head_hash = built.header.hash()
        self.number, self.slot = built.header.number, slot


@pytest.mark.usefixtures("small_onions")
def test_the_executive_enforces_the_rules_on_real_blocks() -> None:
    chain = DevChain()
    author = aura.Authorities.get(chain.head)[0]
    chain.build()  # no onion yet: a plain block is valid
    o = alice_onion()
    chain.build(randomness.encode_commit(o.tip()))
    with pytest.raises(InvalidBlock, match=r"on_initialize failed: .*must reveal"):
        chain.build()
    with pytest.raises(InvalidBlock, match="does not hash"):
        chain.build(randomness.encode_reveal(o.reveal(1)))
    mixes = []
    for k in range(SMALL):
        chain.build(randomness.encode_reveal(o.reveal(k)))
        mixes.append(current_mix(chain.head))
    assert len(set(mixes)) == SMALL
    assert Onions.get(chain.head, author) == Onion(o.value(0), SMALL, 1)
    chain.build()  # exhausted: plain blocks are valid again
    chain.build(randomness.encode_commit(alice_onion(2).tip()))
    assert Onions.get(chain.head, author) == Onion(alice_onion(2).tip(), 0, 2)
    chain.runtime.try_state(chain.head)
