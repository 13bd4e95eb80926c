"""Hostile and broken input over HTTP and WebSocket against the shared dev node.

Every case must come back as a JSON-RPC error object (code + message), and the node must stay
healthy afterwards: an autouse fixture checks `system_health` after each test, heavy cases also
check that blocks keep coming, and the last tests check block production and that no dev secret
ever reached the log. Signed extrinsics are built by hand with `chain.primitives` and signed with
substrate-interface's Keypair; the sender is //Dave (other modules use other accounts).
"""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import websocket
from substrateinterface import Keypair

from chain.codec import encode_compact
from chain.crypto import SignatureScheme
from chain.primitives import IMMORTAL, Era, encode_signed_extrinsic, signing_payload
from tests.integration.conftest import (
    NodeProcess,
    WsClient,
    rpc,
    rpc_request,
    rpc_response,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DAVE = Keypair.create_from_uri("//Dave")
FERDIE = Keypair.create_from_uri("//Ferdie")
MAX_SUBSCRIPTIONS = 1024
TOO_MANY_SUBSCRIPTIONS = -32000
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
ALICE_MINI_SECRET = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"

Call = Callable[[str, Any], dict[str, Any]]


# ---- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _node_stays_healthy(dev_node: NodeProcess) -> Iterator[None]:
    yield
    dev_node.assert_running()
    assert rpc(dev_node.http_url, "system_health")["shouldHavePeers"] is False


@pytest.fixture(params=["http", "ws"])
def call(request: pytest.FixtureRequest, dev_node: NodeProcess) -> Iterator[Call]:
    """`call(method, params)` -> the response object, over HTTP or over one WebSocket."""
    if request.param == "http":
        yield lambda method, params: rpc_response(dev_node.http_url, method, params)
        return
    with WsClient(dev_node.ws_url) as ws:
        yield ws.call


def assert_error(
    resp: dict[str, Any], code: int | tuple[int, ...], *, data_has: str = ""
) -> dict[str, Any]:
    assert "result" not in resp, resp
    err = resp["error"]
    assert isinstance(err["code"], int)
    assert isinstance(err["message"], str)
    assert err["message"]
    codes = code if isinstance(code, tuple) else (code,)
    assert err["code"] in codes, err
    if data_has:
        assert data_has.lower() in f"{err['message']} {err.get('data')}".lower(), err
    return err  # type: ignore[no-any-return]


def transfer_call(dest: Keypair, value: int) -> bytes:
    """Balances.transfer_keep_alive(MultiAddress::Id(dest), value) as SCALE call bytes."""
    return b"\x02\x03\x00" + dest.public_key + encode_compact(value)


class Signer:
    """Builds and signs v4 extrinsics by hand against the node's runtime and genesis."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        version = node.rpc("state_getRuntimeVersion")
        self.spec_version: int = version["specVersion"]
        self.tx_version: int = version["transactionVersion"]
        self.genesis = bytes.fromhex(node.rpc("chain_getBlockHash", [0])[2:])

    def onchain_nonce(self, who: Keypair) -> int:
        out = self.node.rpc(
            "state_call", ["AccountNonceApi_account_nonce", "0x" + who.public_key.hex()]
        )
        return int.from_bytes(bytes.fromhex(out[2:]), "little")

    def xt(
        self,
        who: Keypair,
        *,
        nonce: int | None = None,
        value: int | None = None,
        era: Era = IMMORTAL,
        birth_hash: bytes | None = None,
        genesis: bytes | None = None,
        spec_version: int | None = None,
        signature: bytes | None = None,
    ) -> str:
        call = transfer_call(FERDIE, secrets.randbelow(10**9) + 1 if value is None else value)
        nonce = self.onchain_nonce(who) if nonce is None else nonce
        genesis = self.genesis if genesis is None else genesis
        payload = signing_payload(
            call,
            era,
            nonce,
            0,
            self.spec_version if spec_version is None else spec_version,
            self.tx_version,
            genesis,
            genesis if birth_hash is None else birth_hash,
        )
        sig = who.sign(payload) if signature is None else signature
        raw = encode_signed_extrinsic(
            call, who.public_key, SignatureScheme.SR25519, sig, era, nonce, 0
        )
        return "0x" + raw.hex()


@pytest.fixture(scope="module")
def signer(dev_node: NodeProcess) -> Signer:
    """A Signer, after //Dave has one transaction on chain (so that a stale nonce exists)."""
    s = Signer(dev_node)
    if s.onchain_nonce(DAVE) == 0:
        dev_node.rpc("author_submitExtrinsic", [s.xt(DAVE, nonce=0)])
        deadline_block = dev_node.best_number() + 20
        while s.onchain_nonce(DAVE) == 0:
            assert dev_node.best_number() < deadline_block, "//Dave's transfer was never included"
            dev_node.wait_for_block(dev_node.best_number() + 1)
    return s


# ---- author_submitExtrinsic -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0xzz", "0x123", "1234", 1234, None, ["0x00"], {"xt": "0x00"}])
def test_submit_malformed_hex_is_invalid_params(call: Call, bad: Any) -> None:
    assert_error(call("author_submitExtrinsic", [bad]), -32602)


def test_submit_without_params_is_invalid_params(call: Call) -> None:
    assert_error(call("author_submitExtrinsic", []), -32602)


@pytest.mark.parametrize(
    "raw",
    [
        "0x",
        "0x1234",
        "0x00",
        "0x" + "ff" * 40,  # a length prefix that claims more than follows
        "0x0c" + "04" + "0000",  # unsigned (inherent) System.remark from outside
        "0x" + "10" + "84" + "00" * 3,  # signed, then cut short
        "0x0c04ff00",  # an unsigned call to a pallet index that does not exist
    ],
)
def test_submit_valid_hex_but_bad_scale(call: Call, raw: str) -> None:
    # the pool bans the hash of undecodable bytes: the same bytes again (other transport) -> 1012
    codes = (1001, 1010, 1012) if raw in _SUBMITTED_BAD else (1001, 1010)
    _SUBMITTED_BAD.add(raw)
    assert_error(call("author_submitExtrinsic", [raw]), codes)


_SUBMITTED_BAD: set[str] = set()


def test_resubmitting_banned_bytes_is_1012(dev_node: NodeProcess) -> None:
    raw = "0x0c04ff" + secrets.token_hex(1)
    first = rpc_response(dev_node.http_url, "author_submitExtrinsic", [raw])
    assert_error(first, (1001, 1010))
    again = rpc_response(dev_node.http_url, "author_submitExtrinsic", [raw])
    assert_error(again, 1012, data_has="banned")


def test_submit_forged_signature(call: Call, signer: Signer) -> None:
    xt = signer.xt(DAVE, signature=secrets.token_bytes(64))
    assert_error(call("author_submitExtrinsic", [xt]), 1010, data_has="bad signature")


def test_submit_signature_of_another_account(call: Call, signer: Signer) -> None:
    xt = signer.xt(DAVE)
    forged = signer.xt(DAVE, signature=FERDIE.sign(b"not the payload"))
    assert xt != forged
    assert_error(call("author_submitExtrinsic", [forged]), 1010, data_has="bad signature")


def test_submit_stale_nonce(call: Call, signer: Signer) -> None:
    nonce = signer.onchain_nonce(DAVE)
    assert nonce >= 1
    err = assert_error(call("author_submitExtrinsic", [signer.xt(DAVE, nonce=nonce - 1)]), 1010)
    assert "outdated" in err["data"].lower()


def test_submit_far_future_nonce(call: Call, signer: Signer) -> None:
    xt = signer.xt(DAVE, nonce=signer.onchain_nonce(DAVE) + 1000)
    err = assert_error(call("author_submitExtrinsic", [xt]), 1010)
    assert "future" in err["data"].lower()


def test_submit_expired_mortal_era(call: Call, signer: Signer, dev_node: NodeProcess) -> None:
    dev_node.wait_for_block(13, timeout=30)  # two whole periods past the era's death
    era = Era.mortal(4, 1)  # born at block 1, dead since block 5
    assert era.birth(1) == 1
    birth_hash = bytes.fromhex(dev_node.rpc("chain_getBlockHash", [1])[2:])
    xt = signer.xt(DAVE, era=era, birth_hash=birth_hash)
    err = assert_error(call("author_submitExtrinsic", [xt]), 1010)
    # Substrate answers "bad signature" (the payload is checked against today's birth hash)
    data = err["data"].lower()
    assert any(w in data for w in ("bad signature", "outdated", "ancient birth block")), err


def test_submit_wrong_genesis_hash(call: Call, signer: Signer) -> None:
    xt = signer.xt(DAVE, genesis=secrets.token_bytes(32))
    assert_error(call("author_submitExtrinsic", [xt]), 1010, data_has="bad signature")


def test_submit_wrong_spec_version(call: Call, signer: Signer) -> None:
    xt = signer.xt(DAVE, spec_version=signer.spec_version + 1)
    assert_error(call("author_submitExtrinsic", [xt]), 1010, data_has="bad signature")


def test_submit_from_account_that_cannot_pay(call: Call, signer: Signer) -> None:
    fresh = Keypair.create_from_seed("0x" + secrets.token_hex(32))
    xt = signer.xt(fresh, nonce=0)
    assert_error(call("author_submitExtrinsic", [xt]), 1010, data_has="Inability to pay some fees")


def test_rejected_transactions_never_reach_the_pool(dev_node: NodeProcess) -> None:
    pending = dev_node.rpc("author_pendingExtrinsics")
    assert all(isinstance(x, str) for x in pending)
    assert len(pending) <= 1  # at most a transaction waiting for the next block


# ---- method and params errors -----------------------------------------------------------------


def test_unknown_method(call: Call) -> None:
    err = assert_error(call("chain_getBlockByMagic", []), -32601)
    assert err["message"] == "Method not found"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("chain_getBlockHash", ["abc"]),
        ("chain_getBlockHash", [-1]),
        ("chain_getBlockHash", [True]),
        ("chain_getBlockHash", [{"n": 1}]),
        ("chain_getHeader", ["0x1234"]),
        ("chain_getHeader", [12]),
        ("chain_getBlock", ["0x" + "ab" * 31]),
        ("state_getStorage", [12]),
        ("state_getStorage", ["0x26aa", "0x" + "00" * 33]),
        ("state_getKeysPaged", ["0x", "ten"]),
        ("state_getKeysPaged", ["0x", 1_000_000]),
        ("state_queryStorageAt", ["0x26aa"]),
        ("state_call", [12, "0x"]),
        ("system_accountNextIndex", ["not-an-address"]),
        ("system_accountNextIndex", ["0x1234"]),
        ("payment_queryInfo", ["0xzz"]),
    ],
)
def test_bad_params(call: Call, method: str, params: list[Any]) -> None:
    assert_error(call(method, params), -32602)


def test_named_params_are_refused(dev_node: NodeProcess) -> None:
    status, body = rpc_request(
        dev_node.http_url, b'{"jsonrpc":"2.0","id":7,"method":"system_health","params":{"x":1}}'
    )
    assert status == 200
    assert b'"code":-32602' in body


def test_unknown_block_hash_is_4003(call: Call) -> None:
    key = "0x26aa394eea5630e07c48ae0c9558cef7"  # System.Number's prefix half: any key will do
    err = assert_error(call("state_getStorage", [key, "0x" + "ab" * 32]), 4003)
    assert "UnknownBlock" in err["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"jsonrpc":"2.0","id":1,"method":"system_health"',
        b"[]",
        b'{"jsonrpc":"1.0","id":1,"method":"system_health"}',
        b'{"jsonrpc":"2.0","id":[1],"method":"system_health"}',
        b'{"jsonrpc":"2.0","id":1,"method":42}',
        b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"system_health"}'] * 101) + b"]",
    ],
)
def test_malformed_requests_over_http(dev_node: NodeProcess, body: bytes) -> None:
    status, out = rpc_request(dev_node.http_url, body)
    assert status == 200
    assert b'"error"' in out
    assert b'"code":-32' in out


def test_malformed_frames_over_ws(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        for frame in ("not json", "[]", '{"jsonrpc":"2.0","id":1}', "[" * 100_000):
            ws.send_raw(frame)
            msg = ws.recv()
            assert msg["error"]["code"] in (-32700, -32600), (frame[:20], msg)
        assert "peers" in ws.result("system_health")


def test_subscription_method_over_http_is_an_error(dev_node: NodeProcess) -> None:
    err = assert_error(rpc_response(dev_node.http_url, "chain_subscribeNewHeads", []), -32601)
    assert "WebSocket" in err["message"]


# ---- resource limits --------------------------------------------------------------------------


def test_deeply_nested_json_is_a_parse_error(dev_node: NodeProcess) -> None:
    for body in (
        b"[" * 100_000,
        b'{"jsonrpc":"2.0","id":1,"method":"system_health","params":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ):
        status, out = rpc_request(dev_node.http_url, body)
        assert status == 200
        assert b'"code":-32700' in out
    dev_node.assert_advancing()


def test_body_over_the_limit_is_413(dev_node: NodeProcess) -> None:
    filler = b"a" * (16 * 1024 * 1024)
    body = b'{"jsonrpc":"2.0","id":1,"method":"system_health","params":["' + filler + b'"]}'
    status, _ = rpc_request(dev_node.http_url, body, timeout=30)
    assert status == 413
    dev_node.assert_advancing()


def test_chunked_body_over_the_limit_is_413(dev_node: NodeProcess) -> None:
    url = urlparse(dev_node.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    chunk = b"[" + b" " * (1024 * 1024 - 1)

    def body() -> Iterator[bytes]:
        for _ in range(17):
            yield chunk

    try:
        conn.request(
            "POST",
            "/",
            body=body(),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server may close while the client is still writing
    finally:
        conn.close()
    assert status == 413
    dev_node.assert_advancing()


def _send_then_read_until_closed(ws: WsClient, frame: str) -> None:
    ws.ws.send(frame)
    while True:
        ws.ws.recv()  # a close frame reads as "", then the next read raises


def test_frame_over_the_limit_closes_only_that_websocket(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as big, WsClient(dev_node.ws_url) as bystander:
        with pytest.raises((websocket.WebSocketException, ConnectionError)):
            _send_then_read_until_closed(big, "x" * (16 * 1024 * 1024))
        assert "peers" in bystander.result("system_health")
    dev_node.assert_advancing()


def test_subscription_flood_hits_the_per_connection_limit(dev_node: NodeProcess) -> None:
    extra = 6
    with WsClient(dev_node.ws_url) as ws:
        ids = [ws.send("state_subscribeRuntimeVersion") for _ in range(MAX_SUBSCRIPTIONS + extra)]
        responses = [ws.wait_response(rid) for rid in ids]
        accepted = [r["result"] for r in responses if "result" in r]
        refused = [r["error"] for r in responses if "error" in r]
        assert len(accepted) == MAX_SUBSCRIPTIONS
        assert len(set(accepted)) == MAX_SUBSCRIPTIONS
        assert len(refused) == extra
        assert all(e["code"] == TOO_MANY_SUBSCRIPTIONS for e in refused), refused[0]
        assert all("Too many subscriptions" in e["message"] for e in refused)
        # the connection still serves plain calls, and a freed slot can be used again
        assert "peers" in ws.result("system_health")
        assert ws.result("state_unsubscribeRuntimeVersion", [accepted[0]]) is True
        sub = ws.result("chain_subscribeNewHeads")
        assert isinstance(sub, str)
        assert ws.call("chain_subscribeNewHeads")["error"]["code"] == TOO_MANY_SUBSCRIPTIONS
        while not any(n["params"]["subscription"] == sub for n in ws.notifications):
            ws.recv()
    # a new connection starts with an empty quota
    with WsClient(dev_node.ws_url) as ws:
        assert isinstance(ws.result("state_subscribeRuntimeVersion"), str)
    dev_node.assert_advancing()


def test_unsubscribe_with_unknown_id_answers_false(dev_node: NodeProcess) -> None:
    with WsClient(dev_node.ws_url) as ws:
        assert ws.result("chain_unsubscribeNewHeads", ["nope"]) is False
        assert ws.call("chain_unsubscribeNewHeads", [])["error"]["code"] == -32602


# ---- afterwards -------------------------------------------------------------------------------


def test_blocks_still_advance_and_transactions_still_work(
    dev_node: NodeProcess, signer: Signer
) -> None:
    dev_node.assert_advancing()
    nonce = signer.onchain_nonce(DAVE)
    dev_node.rpc("author_submitExtrinsic", [signer.xt(DAVE, nonce=nonce)])
    start = dev_node.best_number()
    while signer.onchain_nonce(DAVE) == nonce:
        assert dev_node.best_number() < start + 20, "a valid transfer was not included"
        dev_node.wait_for_block(dev_node.best_number() + 1)


def test_no_dev_secret_in_the_node_log(dev_node: NodeProcess) -> None:
    alice = Keypair.create_from_uri("//Alice")
    log = dev_node.log_path.read_text(errors="replace").lower()
    assert "prepared block" in log  # the log is the node's, and it is being written
    for secret in (DEV_PHRASE, ALICE_MINI_SECRET, alice.private_key.hex()):
        assert secret.lower() not in log
