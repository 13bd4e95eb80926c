"""`cuckoo-node verify-finality`: offline on hex input, and online against a stub JSON-RPC node.
Real py-ecc pairings (~1 s each): the material is built once per module."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
from py_ecc.optimized_bls12_381 import G1, add, multiply, neg

from chain import bls
from chain.codec import encode_u32
from chain.consensus import bitfield_encode, finality_proof_message
from node.finality.bls_proofs import (
    FinalityProof,
    encode_set_bls_keys,
    finality_proof_key,
    session_index_key,
    set_bls_keys_key,
)
from node.keystore import derive_bls_signer
from node.verifycmd import add_verify_parser, run_verify

GENESIS = b"\x01" * 32
SESSION, SET_ID, NUMBER = 2, 0, 20
BLOCK = b"\x20" * 32
FINALIZED = b"\x25" * 32  # block #25
MESSAGE = finality_proof_message(GENESIS, SESSION, SET_ID, NUMBER, BLOCK)


@dataclasses.dataclass(frozen=True)
class Material:
    keys: list[tuple[bytes, bytes]]  # (public, proof of possession) of //Alice..//Dave
    signatures: list[bytes]  # Alice, Bob, Charlie over MESSAGE
    proof: FinalityProof  # by Alice, Bob, Charlie


@pytest.fixture(scope="module")
def material() -> Material:
    signers = [derive_bls_signer(s) for s in ("//Alice", "//Bob", "//Charlie", "//Dave")]
    keys = [(s.public, s.prove_possession()) for s in signers]
    signatures = [s.sign(MESSAGE) for s in signers[:3]]
    proof = FinalityProof(
        SESSION, SET_ID, NUMBER, BLOCK, bitfield_encode([0, 1, 2], 4), bls.aggregate(signatures)
    )
    return Material(keys, signatures, proof)


def cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="cuckoo-node")
    add_verify_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["verify-finality", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run_verify(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def offline(proof: FinalityProof, keys: list[tuple[bytes, bytes]]) -> tuple[int, str, str]:
    return cli(
        "--proof-hex",
        "0x" + proof.encode().hex(),
        "--keys-hex",
        encode_set_bls_keys(keys).hex(),
        "--genesis",
        "0x" + GENESIS.hex(),
    )


# ---- offline ----------------------------------------------------------------------------------


def test_offline_valid(material: Material) -> None:
    code, out, err = offline(material.proof, material.keys)
    assert code == 0, out
    assert out.splitlines()[-1] == "VALID"
    assert "finality proof of session 2" in out
    assert f"#20 0x{BLOCK.hex()}" in out
    assert "3/4 (validators 0, 1, 2; threshold 3)" in out
    assert "set id:    0" in out
    assert "not checked (offline)" in out
    assert "checking 3 proofs of possession" in err


def test_offline_tampered_signature(material: Material) -> None:
    wrong = bls.aggregate(material.signatures[:2])  # a valid point, but only two signed
    code, out, _ = offline(dataclasses.replace(material.proof, signature=wrong), material.keys)
    assert code == 1
    assert "INVALID: the aggregate signature does not verify" in out


def test_offline_flipped_signer_bit(material: Material) -> None:
    swapped = bitfield_encode([0, 1, 3], 4)  # bit 2 cleared, bit 3 set: Dave did not sign
    code, out, _ = offline(dataclasses.replace(material.proof, signers=swapped), material.keys)
    assert code == 1
    assert "3/4 (validators 0, 1, 3; threshold 3)" in out
    assert "INVALID: the aggregate signature does not verify" in out


def test_offline_too_few_signers_and_bad_bitfield(material: Material) -> None:
    two = dataclasses.replace(
        material.proof,
        signers=bitfield_encode([0, 1], 4),
        signature=bls.aggregate(material.signatures[:2]),
    )
    code, out, err = offline(two, material.keys)
    assert code == 1
    assert "INVALID: 2 of 4 validators signed; more than 2/3 (3) are needed" in out
    assert "checking" not in err  # refused before any pairing
    code, out, _ = offline(dataclasses.replace(material.proof, signers=b"\x17"), material.keys)
    assert code == 1
    assert "INVALID: bad signer bitfield" in out
    code, out, _ = offline(dataclasses.replace(material.proof, signers=b"\x07\x00"), material.keys)
    assert code == 1
    assert "INVALID: bad signer bitfield" in out


def test_offline_rogue_key_is_caught_by_its_proof_of_possession(material: Material) -> None:
    """Validator 3 registers pk3 = r*G1 - pk0 - pk1: alone, it can make an aggregate "by 0, 1
    and 3" that verifies. Its proof of possession cannot be valid, and that is what fails."""
    pk0, pk1 = (pubkey_to_G1(material.keys[i][0]) for i in (0, 1))  # type: ignore[arg-type]
    r = 0x1234567890ABCDEF
    rogue = G1_to_pubkey(add(multiply(G1, r), neg(add(pk0, pk1))))
    keys = [*material.keys[:3], (bytes(rogue), bls.prove_possession(r))]
    forged = FinalityProof(
        SESSION, SET_ID, NUMBER, BLOCK, bitfield_encode([0, 1, 3], 4), bls.sign(r, MESSAGE)
    )
    signer_keys = [keys[0][0], keys[1][0], keys[3][0]]
    assert bls.fast_aggregate_verify(signer_keys, MESSAGE, forged.signature)  # the attack
    code, out, _ = offline(forged, keys)
    assert code == 1
    assert "INVALID: validator 3: bad proof of possession" in out


def test_offline_usage_errors(material: Material) -> None:
    code, _, err = cli("--proof-hex", material.proof.encode().hex(), "--genesis", GENESIS.hex())
    assert code == 2
    assert "needs all of" in err
    keys = encode_set_bls_keys(material.keys).hex()
    code, _, err = cli("--proof-hex", "zz", "--keys-hex", keys, "--genesis", GENESIS.hex())
    assert code == 2
    assert "not valid hex" in err
    code, _, err = cli("--proof-hex", "00", "--keys-hex", keys, "--genesis", GENESIS.hex())
    assert code == 2
    assert "not a SCALE FinalityProof" in err
    proof = material.proof.encode().hex()
    code, _, err = cli("--proof-hex", proof, "--keys-hex", keys, "--genesis", "0x0102")
    assert code == 2
    assert "32-byte" in err


# ---- online -----------------------------------------------------------------------------------


class StubNode:
    """A JSON-RPC node serving just what verify-finality reads, in a thread."""

    def __init__(self) -> None:
        self.storage: dict[bytes, bytes] = {}
        self.blocks: dict[int, bytes] = {0: GENESIS, NUMBER: BLOCK, 25: FINALIZED}
        self.calls: list[tuple[str, list[Any]]] = []
        self.fail: str | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    def _result(self, method: str, params: list[Any]) -> Any:
        if method == "chain_getBlockHash":
            h = self.blocks.get(params[0])
            return None if h is None else "0x" + h.hex()
        if method == "chain_getFinalizedHead":
            return "0x" + FINALIZED.hex()
        if method == "chain_getHeader":
            numbers = {h: n for n, h in self.blocks.items()}
            n = numbers.get(bytes.fromhex(params[0][2:]))
            return None if n is None else {"number": hex(n), "parentHash": "0x" + "00" * 32}
        if method == "state_getStorage":
            value = self.storage.get(bytes.fromhex(params[0][2:]))
            return None if value is None else "0x" + value.hex()
        raise AssertionError(method)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((body["method"], body["params"]))
        if self.fail == body["method"]:
            error = {"code": -32000, "message": "boom"}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})
        result = self._result(body["method"], body["params"])
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return port

    def start(self) -> None:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def node(material: Material) -> Iterator[StubNode]:
    stub = StubNode()
    stub.storage = {
        session_index_key(): encode_u32(3),
        finality_proof_key(SESSION): material.proof.encode(),
        set_bls_keys_key(SET_ID): encode_set_bls_keys(material.keys),
    }
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


def test_online_latest_proof_valid(node: StubNode) -> None:
    code, out, err = cli("--rpc", node.url)
    assert code == 0, out + err
    assert out.splitlines()[-1] == "VALID"
    assert "finality proof of session 2" in out
    assert "3/4 (validators 0, 1, 2; threshold 3)" in out
    assert "canonical: yes (state at #25" in out
    reads = [p for m, p in node.calls if m == "state_getStorage"]
    assert reads[1] == ["0x" + finality_proof_key(3).hex(), "0x" + FINALIZED.hex()]  # scanned
    assert reads[2][0] == "0x" + finality_proof_key(2).hex()
    assert all(p[1] == "0x" + FINALIZED.hex() for p in reads)  # the finalized state


def test_online_not_canonical_missing_and_at(node: StubNode) -> None:
    node.blocks[NUMBER] = b"\x21" * 32  # the chain has another block at #20
    code, out, err = cli("--rpc", node.url, "--session", "2")
    assert code == 1
    assert f"INVALID: block #20 of this chain is 0x{'21' * 32}, not the proven block" in out
    assert "checking" not in err
    code, out, _ = cli("--rpc", node.url, "--session", "3")
    assert code == 1
    assert "NO PROOF" in out
    del node.storage[finality_proof_key(SESSION)]
    code, out, _ = cli("--rpc", node.url, "--at", "0x" + GENESIS.hex())
    assert code == 1
    assert "NO PROOF" in out
    assert node.calls[-1] == (
        "state_getStorage",
        ["0x" + finality_proof_key(0).hex(), "0x" + GENESIS.hex()],
    )


def test_online_missing_keys_and_rpc_errors(node: StubNode) -> None:
    del node.storage[set_bls_keys_key(SET_ID)]
    code, out, _ = cli("--rpc", node.url, "--session", "2")
    assert code == 1
    assert "INVALID: no BLS keys stored for set 0" in out
    node.fail = "chain_getFinalizedHead"
    code, _, err = cli("--rpc", node.url)
    assert code == 2
    assert "chain_getFinalizedHead: boom" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli("--rpc", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert code == 2
    assert "cannot reach" in err
    code, _, err = cli("--rpc-url", "ftp://example")
    assert code == 2
    assert "http(s) URL" in err
