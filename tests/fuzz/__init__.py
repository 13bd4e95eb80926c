"""A mutation fuzzer for what a node decodes from others: extrinsics (and their validation by
the pool), calls, runtime-API inputs, headers and blocks, and every p2p message kind.

Each target starts from real encodings (seeds): signed transfers and sudo calls, calls nested to
`MAX_CALL_DEPTH`, blocks of a chain from `tests.chaingen`, and one message of every p2p kind.
Inputs are seeds (or earlier inputs that decoded) with a few byte-level mutations: bit flips,
interesting bytes and compact prefixes, insertions, deletions, repeated chunks (deep nesting),
truncation, splices. For each input the target asserts:

- only the typed errors of that entry point are raised (`CodecError` for decoders, `PoolError`
  from the pool, `RuntimeApiError` from runtime APIs; the node's gossip handler answers a
  verdict and raises nothing): anything else, `RecursionError` included, is a crash;
- an input that decodes encodes back to the same bytes (canonical encoding: one value, one
  encoding, so one hash).

A crash's input and traceback are saved under the output directory. Run it for as long as you
like with `python -m tests.fuzz --seconds 600`; `tests/fuzz/test_fuzz.py` runs it briefly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from chain.codec import CodecError, encode_u32
from chain.consensus import (
    PRECOMMIT,
    PREVOTE,
    BlsPartial,
    Justification,
    Precommit,
    SignedVote,
    SlotEquivocation,
    Vote,
    VoteEquivocation,
    decode_equivocation,
)
from chain.crypto import SignatureScheme, verify_signature
from chain.frame.outer import MAX_CALL_DEPTH
from chain.primitives import (
    Block,
    Extrinsic,
    Header,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
)
from genesis.builder import load_spec
from node.blocks import decode_block_item, encode_block_item
from node.network import Verdict
from node.network import messages as m
from node.service import Node, NodeConfig
from node.txpool import PoolError, PoolLimits, TxPool
from pallets.runtime_apis import RuntimeApiError, call_runtime_api
from tests.chaingen import build_chain, dev_account, sign_call, sign_transfer

MAX_INPUT_BYTES = 1 << 20
DEFAULT_RECURSION_LIMIT = 1000  # CPython's
REPEATS = (2, 16, 255, 256, 1000)  # how often a repeated chunk repeats (calls nested that deep)
MAX_CORPUS = 256  # per target: seeds, then inputs that decoded
INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x01",
    b"\x03",
    b"\x04",
    b"\x84",
    b"\xfc",  # compact 63
    b"\x01\x01",  # compact 64
    b"\xfe\xff\xff\xff",  # 4-byte compact
    b"\x03\xff\xff\xff\xff",  # big compact
    b"\x13" + b"\xff" * 8,
    b"\xff" * 17,
)


class RoundTripError(AssertionError):
    """An input decoded, but its value encodes to other bytes."""


def round_trip(encoded: bytes, data: bytes, what: str) -> None:
    if encoded != data:
        raise RoundTripError(f"{what}: decoded from {data.hex()} but encodes as {encoded.hex()}")


@dataclasses.dataclass
class Target:
    """`check(data)` raises `allowed` for refused input and returns whether it was accepted
    (decoded); any other exception is a crash."""

    name: str
    seeds: list[bytes]
    check: Callable[[bytes], bool]
    allowed: tuple[type[BaseException], ...]
    corpus: list[bytes] = dataclasses.field(default_factory=list)
    inputs: int = 0
    accepted: int = 0

    def __post_init__(self) -> None:
        self.corpus = list(self.seeds)


@dataclasses.dataclass(frozen=True)
class Crash:
    target: str
    data: bytes
    error: str  # the last line of the traceback
    trace: str
    where: str  # the exception's type and the line that raised it: one crash per (target, where)


@dataclasses.dataclass
class Stats:
    inputs: int = 0
    crashes: list[Crash] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


# ---- mutations ------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """`data` with one to four byte-level mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        n = len(out)
        op = rng.randrange(9)
        at = rng.randrange(n + 1)
        if op == 0 and n:
            out[at % n] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            out[at % n] = rng.randrange(256)
        elif op == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n:
            del out[at : at + rng.randint(1, max(1, n // 4))]
        elif op == 4 and n:
            start = rng.randrange(n)
            out[at:at] = out[start : start + rng.randint(1, 64)]
        elif op == 5 and n:  # a chunk repeated: nesting (calls in calls), long vectors
            start = rng.randrange(n)
            chunk = out[start : start + rng.randint(1, 4)]
            out[start:start] = chunk * rng.choice(REPEATS)
        elif op == 6:
            del out[at:]
        elif op == 7 and others:
            other = rng.choice(others)
            out = out[:at] + other[rng.randrange(len(other) + 1) :]
        elif op == 8:
            value = rng.choice(INTERESTING)
            out[at : at + len(value)] = value
    return bytes(out[:MAX_INPUT_BYTES])


# ---- the fuzzing loop -----------------------------------------------------------------------


def fuzz(
    targets: list[Target],
    *,
    seed: int,
    seconds: float | None = None,
    max_inputs: int | None = None,
    out_dir: Path | None = None,
    progress: Callable[[Stats, list[Target]], None] | None = None,
    progress_every_s: float = 5.0,
) -> Stats:
    """Feed mutated inputs to the targets in turn until `seconds` pass or `max_inputs` were
    run. Each crash is recorded once per (target, exception type and line that raised it); its
    input goes to `out_dir`.

    Runs under Python's default recursion limit, whatever an import raised it to (py-ecc, which
    the chain generator's BLS keys load, sets 100,000): a node may run with either."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    try:
        return _fuzz(targets, seed, seconds, max_inputs, out_dir, progress, progress_every_s)
    finally:
        sys.setrecursionlimit(limit)


def _fuzz(
    targets: list[Target],
    seed: int,
    seconds: float | None,
    max_inputs: int | None,
    out_dir: Path | None,
    progress: Callable[[Stats, list[Target]], None] | None,
    progress_every_s: float,
) -> Stats:
    rng = random.Random(seed)
    stats = Stats()
    seen: set[tuple[str, str]] = set()
    start = last = time.monotonic()
    while True:
        now = time.monotonic()
        if seconds is not None and now - start >= seconds:
            break
        if max_inputs is not None and stats.inputs >= max_inputs:
            break
        if progress is not None and now - last >= progress_every_s:
            last = now
            stats.seconds = now - start
            progress(stats, targets)
        target = targets[stats.inputs % len(targets)]
        data = mutate(rng, rng.choice(target.corpus), target.corpus)
        crash = run_one(target, data)
        stats.inputs += 1
        if crash is not None and (crash.target, crash.where) not in seen:
            seen.add((crash.target, crash.where))
            stats.crashes.append(crash)
            if out_dir is not None:
                save(crash, out_dir)
    stats.seconds = time.monotonic() - start
    return stats


def run_one(target: Target, data: bytes) -> Crash | None:
    """Run one input; a Crash unless it was accepted or refused with an allowed error."""
    target.inputs += 1
    try:
        accepted = target.check(data)
    except target.allowed:
        return None
    except Exception as exc:  # a crash: an untyped error, or a round trip that differs
        lines = traceback.format_exception(exc)
        trace = "".join(lines[-40:])  # a RecursionError's is 3,000 frames long
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{type(exc).__name__} at {last.filename}:{last.lineno}"
        return Crash(target.name, data, lines[-1].strip()[:300], trace, where)
    if accepted:
        target.accepted += 1
        if data not in target.corpus:  # it decoded: mutate it further later
            if len(target.corpus) < MAX_CORPUS:
                target.corpus.append(data)
            elif len(target.seeds) < MAX_CORPUS:  # replace earlier finds in turn, never seeds
                kept = MAX_CORPUS - len(target.seeds)
                target.corpus[len(target.seeds) + target.accepted % kept] = data
    return None


def save(crash: Crash, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{crash.target}-{hashlib.sha256(crash.data).hexdigest()[:16]}"
    (out_dir / f"{name}.bin").write_bytes(crash.data)
    (out_dir / f"{name}.txt").write_text(crash.trace)
    return out_dir / f"{name}.bin"


# ---- the targets ----------------------------------------------------------------------------


@contextmanager
def fuzz_targets() -> Iterator[list[Target]]:
    """The targets, around a dev node (in a temporary directory) holding a small chain from
    `tests.chaingen`; closed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="cuckoo-fuzz-"))
    loop = asyncio.new_event_loop()
    node: Node | None = None
    try:
        blocks = build_chain(tmp / "chain", n_blocks=3, txs_per_block=2, n_accounts=2, seed=7)
        node = Node(
            NodeConfig(spec=load_spec("dev"), base_path=tmp / "chain", prometheus_port=None)
        )
        yield list(_targets(node, blocks, loop))
    finally:
        if node is not None:
            node.close()
        loop.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _targets(node: Node, blocks: list[Block], loop: asyncio.AbstractEventLoop) -> Iterator[Target]:
    rt, ex = node.runtime, node.executive
    state = node.chain.state_at()
    best_hash = node.chain.best_hash
    pool = TxPool(ex, node.pool.best, PoolLimits(max_count=512))
    xts = _extrinsics(node) + [x for b in blocks for x in b.extrinsics]
    calls = [Extrinsic.decode(x).call for x in xts]

    def extrinsic(data: bytes) -> bool:
        """Decoding (canonical), the call's weight and fee, then the pool's validation."""
        try:
            xt = Extrinsic.decode(data)
        except CodecError:
            xt = None
        if xt is not None:
            if xt.signed:
                assert xt.signer is not None
                assert xt.scheme is not None
                assert xt.signature is not None
                again = encode_signed_extrinsic(
                    xt.call, xt.signer, xt.scheme, xt.signature, xt.era, xt.nonce, xt.tip
                )
            else:
                again = encode_unsigned_extrinsic(xt.call)
            round_trip(again, data, "extrinsic")
            call_value(xt.call, len(data))
        with suppress(PoolError):
            pool.submit(data)
        return xt is not None

    def call_value(data: bytes, length: int) -> bool:
        try:
            call = rt.decode_call(data)
        except CodecError:
            return False
        round_trip(rt.call_type.encode(call), data, "call")
        ex.dispatch_info(call)
        ex.fee_details(state, length, call)
        return True

    def runtime_api(data: bytes) -> bool:
        method = API_METHODS[data[0] % len(API_METHODS)] if data else API_METHODS[0]
        call_runtime_api(ex, state, best_hash, method, data[1:])
        return True

    def header(data: bytes) -> bool:
        round_trip(Header.decode(data).encode(), data, "header")
        return True

    def block(data: bytes) -> bool:
        decoded = Block.decode(data)
        round_trip(decoded.encode(), data, "block")
        for xt in decoded.extrinsics:
            with suppress(CodecError):
                Extrinsic.decode(xt)
        return True

    def frame(data: bytes) -> bool:
        """A p2p frame as the network service handles it: gossip kinds through the node's
        handler (it answers a verdict, whatever the payload), the rest through the decoders."""
        if not data:
            return False
        kind, payload = data[0], data[1:]
        if kind in m.GOSSIP_KINDS:
            handler = node.network_handler()
            verdict = loop.run_until_complete(handler.on_gossip("12D3KooWfuzz", kind, payload))
            assert isinstance(verdict, Verdict), verdict
            return verdict is not Verdict.INVALID
        decoder = FRAME_DECODERS.get(kind)
        if decoder is None:
            return False
        decoder(payload)
        return True

    yield Target("extrinsic", xts, extrinsic, ())
    yield Target("call", calls, lambda d: call_value(d, len(d)), ())
    api_seeds = [bytes((i,)) + x + encode_u32(len(x)) for x in xts[:8] for i in range(2)]
    api_seeds += [b"\x02" + bytes(32), b"\x03" + encode_u32(14), b"\x03" + encode_u32(15)]
    api_seeds += [b"\x04\x02" + x + best_hash for x in xts[:4]] + [b"\x05" + x for x in xts[:4]]
    api_seeds += [b"\x06" + b.encode() for b in blocks[:2]]
    api_seeds += [b"\x07" + b.encode() + b"\x00" for b in blocks[:2]]
    api_seeds += [b"\x08\x04\x04", b"\x09" + encode_u32(120)]
    yield Target("runtime_api", api_seeds, runtime_api, (RuntimeApiError, CodecError))
    yield Target("header", [b.header.encode() for b in blocks], header, (CodecError,))
    yield Target("block", [b.encode() for b in blocks], block, (CodecError,))
    messages = _messages(node, blocks)
    for name, (decode, encode) in MESSAGE_CODECS.items():
        seeds = [payload for kind, payload in messages if kind == name]

        def message(
            data: bytes, decode: Any = decode, encode: Any = encode, name: str = name
        ) -> bool:
            round_trip(encode(decode(data)), data, name)
            return True

        yield Target(name, seeds, message, (CodecError,))
    frames = [bytes((FRAME_KINDS[k],)) + payload for k, payload in messages if k in FRAME_KINDS]
    frames += [bytes((m.TRANSACTIONS,)) + x for x in xts]
    frames += [bytes((m.AUTH,)) + bytes(64), bytes((m.PONG,)) + bytes(8)]
    yield Target("frame", frames, frame, (CodecError,))


API_METHODS = (
    "TransactionPaymentApi_query_info",
    "TransactionPaymentApi_query_fee_details",
    "AccountNonceApi_account_nonce",
    "Metadata_metadata_at_version",
    "TaggedTransactionQueue_validate_transaction",
    "BlockBuilder_apply_extrinsic",
    "Core_execute_block",
    "BlockBuilder_check_inherents",
    "TransactionPaymentApi_query_weight_to_fee",
    "TransactionPaymentApi_query_length_to_fee",
)


def _extrinsics(node: Node) -> list[bytes]:
    """Signed transfers and sudo calls (Alice is the dev chain's sudo key), unsigned calls,
    calls nested to the limit and one level beyond it."""
    rt = node.runtime
    alice, bob = dev_account("alice"), dev_account("bob")

    def encode(pallet: str, name: str, **args: Any) -> bytes:
        return rt.call_type.encode(rt.call(pallet, name, **args))

    remark = rt.call("System", "remark", remark=b"fuzz")
    sudo_calls = [
        encode(
            "Sudo",
            "sudo",
            call=rt.call("Balances", "force_set_balance", who=("Id", bob.public), new_free=10**18),
        ),
        encode("Sudo", "sudo_as", who=("Id", bob.public), call=remark),
        encode("Sudo", "sudo", call=rt.call("Sudo", "sudo", call=remark)),
        encode("Sudo", "set_key", new=("Index", 7)),
    ]
    nested = bytes((rt.by_name["Sudo"].index, 0))
    deep = [
        nested * (levels - 1) + encode("System", "remark", remark=b"")
        for levels in (3, MAX_CALL_DEPTH, MAX_CALL_DEPTH + 1)
    ]
    signed = [
        sign_transfer(node, alice, 0, bob.public, 10**15),
        sign_transfer(node, bob, 5, alice.public, 1),
    ]
    signed += [
        sign_call(node, alice.public, alice.sign, i + 1, c) for i, c in enumerate(sudo_calls)
    ]
    signed.append(
        sign_call(
            node,
            alice.public,
            alice.sign,
            9,
            encode("Balances", "transfer_allow_death", dest=("Address20", bytes(20)), value=1),
        )
    )
    unsigned = [
        encode_unsigned_extrinsic(c)
        for c in (
            *deep,
            encode("Timestamp", "set", now=6_000),
            encode("Finality", "report_equivocation", proof=b"\x00" * 40),
        )
    ]
    return signed + unsigned


def _messages(node: Node, blocks: list[Block]) -> list[tuple[str, bytes]]:
    """One payload (or more) of every p2p message kind, as (codec name, payload)."""
    h = blocks[-1].header
    status = m.Status(h.number, h.hash(), 1, blocks[0].hash())
    vote = Vote(PREVOTE, h.hash(), h.number)
    signed_vote = SignedVote(vote, 3, 0, bytes(range(32)), bytes(64))
    precommit = Precommit(h.hash(), h.number, bytes(64), bytes(32))
    justification = Justification(
        1, 0, h.hash(), h.number, (precommit,), tuple(b.header for b in blocks)
    )
    slot_eq = SlotEquivocation(bytes(32), 5, blocks[0].header, blocks[1].header)
    vote_eq = VoteEquivocation(
        0, 1, PRECOMMIT, bytes(32), (h.hash(), 3, bytes(64)), (bytes(32), 3, bytes(64))
    )
    hello = m.Hello(
        m.PROTOCOL_NAME,
        m.PROTOCOL_VERSION,
        node.genesis_hash,
        m.ROLE_AUTHORITY,
        bytes(32),
        "/ip4/127.0.0.1/tcp/30333/ws",
        status,
        bytes(32),
    )
    items = [encode_block_item(b, None) for b in blocks] + [
        encode_block_item(blocks[-1], justification.encode())
    ]
    return [
        ("status", status.encode()),
        ("hello", hello.encode()),
        ("block_request", m.encode_block_request(7, 1, 128)[1:]),
        ("block_response", m.encode_block_response(7, items)[1:]),
        ("peers", m.encode_peers(["/ip4/10.0.0.1/tcp/30333/ws/p2p/12D3KooW", ""])[1:]),
        ("ping", m.encode_ping(m.PING, 2**63)[1:]),
        ("vote", signed_vote.encode()),
        ("commit", justification.encode()),
        ("bls_partial", BlsPartial(1, 0, h.number, h.hash(), 2, bytes(96)).encode()),
        ("equivocation", slot_eq.encode()),
        ("equivocation", vote_eq.encode()),
        *(("block_announce", item) for item in items),
    ]


MESSAGE_CODECS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {
    "status": (m.Status.decode, lambda v: v.encode()),
    "hello": (m.Hello.decode, lambda v: v.encode()),
    "block_request": (m.decode_block_request, lambda v: m.encode_block_request(*v)[1:]),
    "block_response": (m.decode_block_response, lambda v: m.encode_block_response(*v)[1:]),
    "peers": (m.decode_peers, lambda v: m.encode_peers(v)[1:]),
    "ping": (m.decode_ping, lambda v: m.encode_ping(m.PING, v)[1:]),
    "vote": (SignedVote.decode, lambda v: v.encode()),
    "commit": (Justification.decode, lambda v: v.encode()),
    "bls_partial": (BlsPartial.decode, lambda v: v.encode()),
    "equivocation": (decode_equivocation, lambda v: v.encode()),
    "block_announce": (decode_block_item, lambda v: encode_block_item(*v)),
}
FRAME_KINDS = {
    "status": m.STATUS,
    "hello": m.HELLO,
    "block_request": m.BLOCK_REQUEST,
    "block_response": m.BLOCK_RESPONSE,
    "peers": m.PEERS,
    "ping": m.PING,
    "vote": m.VOTE,
    "commit": m.COMMIT,
    "bls_partial": m.BLS_PARTIAL,
    "block_announce": m.BLOCK_ANNOUNCE,
}
FRAME_DECODERS: dict[int, Callable[[bytes], Any]] = {
    m.STATUS: m.Status.decode,
    m.HELLO: m.Hello.decode,
    m.BLOCK_REQUEST: m.decode_block_request,
    m.BLOCK_RESPONSE: m.decode_block_response,
    m.PEERS: m.decode_peers,
    m.PING: m.decode_ping,
    m.PONG: m.decode_ping,
    # the handshake's proof: the service checks its length, then the signature
    m.AUTH: lambda proof: (
        len(proof) == 64
        and verify_signature(SignatureScheme.ED25519, proof, m.AUTH_DOMAIN, bytes(32))
    ),
}
