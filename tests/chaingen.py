"""A generator of deterministic dev chains for tests and benchmarks.

`build_chain(base_path, n_blocks, txs_per_block, n_accounts, seed)` authors a `dev` chain into the
LevelDB store at `base_path` (the layout `cuckoo-node --base-path` uses) and returns its blocks
#1..#n_blocks, read back from the store.

Block #1 funds `n_accounts` accounts (derived from `seed`) from //Alice; every later block holds
`txs_per_block` `Balances.transfer_keep_alive` between those accounts, picked by a `random.Random`
seeded with `seed`. Timestamps come from the slot numbers (`start_slot + i`), never from the
clock. Every block is final at once with its finality justification stored, as a dev node
authors (//Alice is the single finality authority), so `export-blocks` carries them.

The chain is bit-for-bit reproducible: sr25519 signatures from `py-sr25519-bindings` are
randomized (schnorrkel mixes OS randomness into the nonce), so this module signs with a small
deterministic schnorrkel signer (`sr25519_sign_deterministic`: the nonce is derived from the
secret nonce and the message). Its signatures are ordinary schnorrkel signatures; `sr25519.verify`
accepts them. Both the transfers and the Aura seals use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import sr25519

from chain.codec import encode_compact
from chain.crypto import SignatureScheme
from chain.hashing import blake2_256
from chain.primitives import (
    Block,
    DigestItem,
    Era,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    signing_payload,
)
from genesis.builder import load_spec
from node.interfaces import SealedBlock
from node.keystore import _Transcript, derive_key, dev_suri
from node.service import Node, NodeConfig
from pallets.aura import pallet as aura

__all__ = [
    "Account",
    "account_from_seed",
    "build_chain",
    "cuckoo_node",
    "dev_account",
    "ristretto_base_mul",
    "sign_transfer",
    "sr25519_sign_deterministic",
    "transfer_call",
]

START_SLOT = 1_000_000  # slot * 1000 ms: timestamps in January 1970 + 11.5 days, fixed
FUNDING = 10**21  # 1,000 CAI per generated account (existential deposit: 10^15)

# ---- deterministic schnorrkel (sr25519) signing ------------------------------------------------
# ristretto255 over edwards25519 (RFC 9496), with Python integers. Signing only: a few ms each.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_INVSQRT_A_MINUS_D = 54469307008909316920995813868745141605393597292927456921205312896311721017578
_BY = 4 * pow(5, -1, _P) % _P


def _recover_x(y: int) -> int:
    xx = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _SQRT_M1 % _P
    if x & 1:
        x = _P - x
    return x


_BX = _recover_x(_BY)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
_BASE: _Point = (_BX, _BY, 1, _BX * _BY % _P)


def _add(p: _Point, q: _Point) -> _Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(k: int, p: _Point) -> _Point:
    acc: _Point = (0, 1, 1, 0)
    while k:
        if k & 1:
            acc = _add(acc, p)
        p = _add(p, p)
        k >>= 1
    return acc


def _is_negative(x: int) -> bool:
    return bool(x % _P & 1)


def _abs(x: int) -> int:
    x %= _P
    return _P - x if x & 1 else x


def _sqrt_ratio_m1(u: int, v: int) -> tuple[bool, int]:
    v3 = v * v * v % _P
    v7 = v3 * v3 * v % _P
    r = u * v3 * pow(u * v7, (_P - 5) // 8, _P) % _P
    check = v * r * r % _P
    correct = check == u % _P
    flipped = check == -u % _P
    flipped_i = check == -u * _SQRT_M1 % _P
    if flipped or flipped_i:
        r = r * _SQRT_M1 % _P
    return correct or flipped, _abs(r)


def _ristretto_encode(p: _Point) -> bytes:
    x0, y0, z0, t0 = p
    u1 = (z0 + y0) * (z0 - y0) % _P
    u2 = x0 * y0 % _P
    _, invsqrt = _sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % _P
    den2 = invsqrt * u2 % _P
    z_inv = den1 * den2 * t0 % _P
    if _is_negative(t0 * z_inv):
        x, y = y0 * _SQRT_M1 % _P, x0 * _SQRT_M1 % _P
        den_inv = den1 * _INVSQRT_A_MINUS_D % _P
    else:
        x, y, den_inv = x0, y0, den2
    if _is_negative(x * z_inv):
        y = -y % _P
    return _abs(den_inv * (z0 - y)).to_bytes(32, "little")


def ristretto_base_mul(scalar: int) -> bytes:
    """The compressed ristretto255 point scalar * B."""
    return _ristretto_encode(_mul(scalar % _L, _BASE))


def sr25519_sign_deterministic(public: bytes, secret: bytes, message: bytes) -> bytes:
    """A schnorrkel signature in the "substrate" signing context, with a derived nonce.

    `secret` is the 64-byte secret key of `sr25519.pair_from_seed` (scalar ++ nonce seed).
    """
    key = int.from_bytes(secret[:32], "little")
    t = _Transcript(b"SigningContext")
    t.append(b"", b"substrate")
    t.append(b"sign-bytes", message)
    t.append(b"proto-name", b"Schnorr-sig")
    t.append(b"sign:pk", public)
    r = (
        int.from_bytes(
            hashlib.blake2b(secret[32:] + public + message, digest_size=64).digest(), "little"
        )
        % _L
    )
    big_r = ristretto_base_mul(r)
    t.append(b"sign:R", big_r)
    k = int.from_bytes(t.challenge(b"sign:c", 64), "little") % _L
    s = (k * key + r) % _L
    sig = bytearray(big_r + s.to_bytes(32, "little"))
    sig[63] |= 0x80  # schnorrkel's marker: not an ed25519 signature
    return bytes(sig)


# ---- accounts and transactions -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Account:
    public: bytes  # = AccountId32
    secret: bytes  # 64-byte sr25519 secret key

    def sign(self, message: bytes) -> bytes:
        return sr25519_sign_deterministic(self.public, self.secret, message)


def account_from_seed(seed: bytes) -> Account:
    public, secret = sr25519.pair_from_seed(seed)
    return Account(bytes(public), bytes(secret))


def dev_account(name: str) -> Account:
    """A well-known dev account ("alice" -> //Alice)."""
    derived = derive_key(dev_suri(name))
    assert derived.seed is not None  # hard junctions keep the seed
    return account_from_seed(derived.seed)


def transfer_call(node: Node, dest: bytes, value: int) -> bytes:
    rt = node.runtime
    return rt.call_type.encode(
        rt.call("Balances", "transfer_keep_alive", dest=("Id", dest), value=value)
    )


def sign_transfer(node: Node, sender: Account, nonce: int, dest: bytes, value: int) -> bytes:
    """A signed, immortal `transfer_keep_alive` (no tip), ready for a block."""
    return sign_call(node, sender.public, sender.sign, nonce, transfer_call(node, dest, value))


def sign_call(
    node: Node, public: bytes, sign: Callable[[bytes], bytes], nonce: int, call: bytes
) -> bytes:
    """An immortal signed extrinsic (no tip) of the encoded `call` from `public`, its signature
    made by `sign` over the signing payload."""
    version = node.executive.version
    payload = signing_payload(
        call,
        Era.immortal(),
        nonce,
        0,
        version.spec_version,
        version.transaction_version,
        node.genesis_hash,
        node.genesis_hash,
    )
    return encode_signed_extrinsic(
        call, public, SignatureScheme.SR25519, sign(payload), Era.immortal(), nonce, 0
    )


# ---- the command line ----------------------------------------------------------------------------


def cuckoo_node(*args: str | Path) -> list[str]:
    """argv running `cuckoo-node ARGS` with this interpreter's environment (the venv's script
    when there is one, else `python -m node.cli`)."""
    script = Path(sys.executable).parent / "cuckoo-node"
    head = [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "node.cli"]
    return [*head, *(str(a) for a in args)]


# ---- chains ------------------------------------------------------------------------------------


def _author(node: Node, alice: Account, slot: int, txs: list[bytes]) -> bytes:
    """Build, seal (deterministically) and commit one block on the best block; its hash."""
    parent_hash = node.chain.best_hash
    parent = node.chain.best_header()
    state = node.db.state_at_root(parent.state_root)
    digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
    builder = node.executive.begin_block(state, parent_hash, parent.number + 1, digest)
    ts_call = node.runtime.call_type.encode(
        node.runtime.call("Timestamp", "set", now=slot * node.slot_ms)
    )
    builder.apply_inherent(encode_unsigned_extrinsic(ts_call))
    for raw in txs:
        builder.apply(raw)  # full checks, the signature included
    built = builder.finalize()
    seal = DigestItem.seal(aura.ENGINE_ID, alice.sign(built.header.hash()))
    header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
    # final at once, as on a dev node: //Alice is the whole finality set and signs the
    # one-precommit justification (ed25519: deterministic)
    justification = node.gadget.instant_justification(header)
    if justification is None:
        raise ValueError("the dev chain's finality set is not //Alice alone")
    return node.importer.import_authored(
        SealedBlock(header, built, slot, alice.public, justification)
    ).hash


def build_chain(
    base_path: Path | str,
    n_blocks: int,
    txs_per_block: int,
    n_accounts: int,
    seed: int,
    *,
    start_slot: int = START_SLOT,
) -> list[Block]:
    """Author a dev chain of `n_blocks` blocks into a fresh store at `base_path`; see the module
    docstring. Returns blocks #1..#n_blocks as stored."""
    if n_blocks < 1 or n_accounts < 2 or txs_per_block < 0:
        raise ValueError("need n_blocks >= 1, n_accounts >= 2, txs_per_block >= 0")
    rng = random.Random(seed)
    seed_bytes = encode_compact(seed) if seed >= 0 else str(seed).encode()
    accounts = [
        account_from_seed(blake2_256(b"chaingen:" + seed_bytes + i.to_bytes(4, "little")))
        for i in range(n_accounts)
    ]
    alice = dev_account("alice")
    node = Node(
        NodeConfig(
            spec=load_spec("dev"),
            base_path=Path(base_path),
            prometheus_port=None,
            dev_key=dev_suri("alice"),
        )
    )
    try:
        if node.chain.best_header().number != 0:
            raise ValueError(f"{base_path} already holds blocks; build_chain needs a fresh store")
        alice_nonce = node.executive.account_nonce(node.chain.state_at(), alice.public)
        funding = [
            sign_transfer(node, alice, alice_nonce + i, acc.public, FUNDING)
            for i, acc in enumerate(accounts)
        ]
        _author(node, alice, start_slot + 1, funding)
        nonces = [0] * n_accounts
        for number in range(2, n_blocks + 1):
            txs = []
            for _ in range(txs_per_block):
                src, dst = rng.sample(range(n_accounts), 2)
                value = rng.randrange(10**15, 10**18)
                txs.append(
                    sign_transfer(node, accounts[src], nonces[src], accounts[dst].public, value)
                )
                nonces[src] += 1
            _author(node, alice, start_slot + number, txs)
        blocks = []
        for number in range(1, n_blocks + 1):
            block_hash = node.db.hash_at(number)
            assert block_hash is not None
            header = node.db.header(block_hash)
            body = node.db.body(block_hash)
            assert header is not None
            assert body is not None
            blocks.append(Block(header, tuple(body)))
        return blocks
    finally:
        node.close()
