"""The fuzzer, briefly (`python -m tests.fuzz --seconds N` runs it for longer), and property
tests: valid values of every wire type encode and decode back to themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.codec import CodecError
from chain.consensus import (
    PHASES,
    BlsPartial,
    Justification,
    Precommit,
    SignedVote,
    SlotEquivocation,
    Vote,
    VoteEquivocation,
    decode_equivocation,
)
from chain.crypto import SignatureScheme
from chain.primitives import (
    Block,
    DigestItem,
    Era,
    Extrinsic,
    Header,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
)
from genesis.builder import load_spec
from node.blocks import decode_block_item, encode_block_item
from node.network import messages as m
from pallets.runtime import build_runtime, runtime_config
from tests.frame.strategies import calls
from tests.fuzz import RoundTripError, Target, fuzz, fuzz_targets, round_trip, run_one

BRIEF_INPUTS = 40_000  # a few seconds on this project's machines


@pytest.fixture(scope="module")
def targets() -> Iterator[list[Target]]:
    with fuzz_targets() as made:
        yield made


def test_no_seed_crashes(targets: list[Target]) -> None:
    for target in targets:
        assert target.seeds, target.name
        for seed in target.seeds:
            assert run_one(target, seed) is None, target.name


def test_a_brief_run_finds_no_crash(targets: list[Target], tmp_path: Path) -> None:
    stats = fuzz(targets, seed=1, max_inputs=BRIEF_INPUTS, out_dir=tmp_path)
    assert stats.inputs == BRIEF_INPUTS
    assert not stats.crashes, "\n\n".join(c.trace for c in stats.crashes)
    assert all(t.inputs > 0 for t in targets)
    assert all(t.accepted > 0 for t in targets)  # mutants still reach past the first check


def test_an_untyped_error_or_a_round_trip_that_differs_is_a_crash_saved(tmp_path: Path) -> None:
    def check(data: bytes) -> bool:
        if data.startswith(b"\x01"):
            raise ValueError("untyped")
        if data.startswith(b"\x02"):
            round_trip(b"other", data, "toy")
        if data.startswith(b"\x03"):
            raise CodecError("typed")
        return True

    toy = Target("toy", [b"\x00" * 4, b"\x01", b"\x02", b"\x03"], check, (CodecError,))
    stats = fuzz([toy], seed=3, max_inputs=500, out_dir=tmp_path)
    errors = {c.error.split(":")[0] for c in stats.crashes}
    assert errors == {"ValueError", f"{RoundTripError.__module__}.RoundTripError"}
    for crash in stats.crashes:
        saved = list(tmp_path.glob("toy-*.bin"))
        assert crash.data in {p.read_bytes() for p in saved}
    assert len(list(tmp_path.glob("toy-*.txt"))) == len(list(tmp_path.glob("toy-*.bin")))


# ---- valid values round trip ------------------------------------------------------------------

h32 = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
engine = st.sampled_from([b"aura", b"FRNK", b"BABE"])
digest_items = st.one_of(
    st.builds(DigestItem.other, st.binary(max_size=40)),
    st.builds(DigestItem.pre_runtime, engine, st.binary(max_size=40)),
    st.builds(DigestItem.consensus, engine, st.binary(max_size=40)),
    st.builds(DigestItem.seal, engine, st.binary(max_size=64)),
    st.just(DigestItem.runtime_environment_updated()),
)
headers = st.builds(Header, h32, u32, h32, h32, st.lists(digest_items, max_size=4).map(tuple))
eras = st.one_of(
    st.just(Era.immortal()),
    st.builds(Era.mortal, st.integers(4, 1 << 16), st.integers(0, 2**32)),
)


@st.composite
def extrinsics(draw: st.DrawFn) -> bytes:
    call = draw(st.binary(min_size=2, max_size=80))
    if draw(st.booleans()):
        return encode_unsigned_extrinsic(call)
    scheme = draw(st.sampled_from(list(SignatureScheme)))
    sig = draw(st.binary(min_size=65, max_size=65))[: 65 if scheme == SignatureScheme.ECDSA else 64]
    return encode_signed_extrinsic(
        call, draw(h32), scheme, sig, draw(eras), draw(u32), draw(st.integers(0, 2**128 - 1))
    )


blocks = st.builds(Block, headers, st.lists(extrinsics(), max_size=4).map(tuple))
votes = st.builds(Vote, st.sampled_from(sorted(PHASES)), h32, u32)
signed_votes = st.builds(SignedVote, votes, u64, u64, h32, st.binary(min_size=64, max_size=64))
precommits = st.builds(Precommit, h32, u32, st.binary(min_size=64, max_size=64), h32)
justifications = st.builds(
    Justification,
    u64,
    u64,
    h32,
    u32,
    st.lists(precommits, max_size=4).map(tuple),
    st.lists(headers, max_size=3).map(tuple),
)
statuses = st.builds(m.Status, u32, h32, u32, h32)
addresses = st.text(max_size=40).filter(lambda a: len(a.encode()) <= m.MAX_ADDRESS_LENGTH)
hellos = st.builds(
    m.Hello,
    st.text(max_size=20),
    u32,
    h32,
    st.integers(0, 255),
    h32,
    addresses,
    statuses,
    h32,
)
vote_sides = st.tuples(h32, u32, st.binary(min_size=64, max_size=64))
equivocations = st.one_of(
    st.builds(SlotEquivocation, h32, u64, headers, headers),
    st.builds(
        VoteEquivocation, u64, u64, st.sampled_from(sorted(PHASES)), h32, vote_sides, vote_sides
    ),
)
partials = st.builds(BlsPartial, u32, u64, u32, h32, u32, st.binary(min_size=96, max_size=96))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_valid_values_decode_to_themselves(data: st.DataObject) -> None:
    header = data.draw(headers)
    assert Header.decode(header.encode()) == header
    block = data.draw(blocks)
    assert Block.decode(block.encode()) == block
    just = data.draw(st.none() | st.binary(max_size=100))
    assert decode_block_item(encode_block_item(block, just)) == (block, just)
    for raw in block.extrinsics:
        xt = Extrinsic.decode(raw)
        again = (
            encode_signed_extrinsic(
                xt.call, xt.signer, xt.scheme, xt.signature, xt.era, xt.nonce, xt.tip
            )
            if xt.signed
            else encode_unsigned_extrinsic(xt.call)
        )
        assert again == raw
    vote = data.draw(signed_votes)
    assert SignedVote.decode(vote.encode()) == vote
    justification = data.draw(justifications)
    assert Justification.decode(justification.encode()) == justification
    status = data.draw(statuses)
    assert m.Status.decode(status.encode()) == status
    hello = data.draw(hellos)
    assert m.Hello.decode(hello.encode()) == hello
    proof = data.draw(equivocations)
    assert decode_equivocation(proof.encode()) == proof
    partial = data.draw(partials)
    assert BlsPartial.decode(partial.encode()) == partial
    request = (data.draw(u64), data.draw(u32), data.draw(st.integers(0, 2**16 - 1)))
    assert m.decode_block_request(m.encode_block_request(*request)[1:]) == request
    items = data.draw(st.lists(st.binary(max_size=50), max_size=m.MAX_BLOCKS_PER_REQUEST // 16))
    assert m.decode_block_response(m.encode_block_response(7, items)[1:]) == (7, items)
    peers = data.draw(st.lists(addresses, max_size=m.MAX_PEERS_PER_MESSAGE))
    assert m.decode_peers(m.encode_peers(peers)[1:]) == peers
    nonce = data.draw(u64)
    assert m.decode_ping(m.encode_ping(m.PING, nonce)[1:]) == nonce


RUNTIME = build_runtime(
    runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
)


@settings(max_examples=150, deadline=None)
@given(calls(RUNTIME))
def test_valid_calls_decode_to_themselves(call: Any) -> None:
    raw = RUNTIME.call_type.encode(call)
    assert RUNTIME.decode_call(raw) == call
    assert RUNTIME.call_type.encode(RUNTIME.decode_call(raw)) == raw
