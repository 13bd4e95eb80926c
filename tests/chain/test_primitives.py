"""chain.primitives: Era, Header, Block and v4 extrinsics against scalecodec and real keys."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scalecodec.base import RuntimeConfiguration, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair, KeypairType

from chain.codec import U32_MAX, U128_MAX, CodecError, Decoder, encode_compact
from chain.crypto import (
    SignatureScheme,
    account_id_from_public,
    ecdsa_public_from_secret,
    ecdsa_sign,
    verify_signature,
)
from chain.hashing import blake2_256
from chain.primitives import (
    Block,
    DigestItem,
    Era,
    Extrinsic,
    Header,
    UnsupportedSigner,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    signing_payload,
)

RC = RuntimeConfiguration()
RC.update_type_registry(load_type_registry_preset("core"))
RC.update_type_registry(load_type_registry_preset("legacy"))

GENESIS = bytes.fromhex("91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3")
AURA = b"aura"
hashes = st.binary(min_size=32, max_size=32)


def sc_era(value: Any) -> bytes:
    return bytes(RC.create_scale_object("Era").encode(value).data)


# --- Era -------------------------------------------------------------------------------------


@given(st.integers(0, 1 << 17), st.integers(0, U32_MAX))
def test_era_mortal_matches_scalecodec(period: int, current: int) -> None:
    era = Era.mortal(period, current)
    assert era.encode() == sc_era({"period": period, "current": current})
    sc = RC.create_scale_object("Era", data=ScaleBytes(bytearray(era.encode())))
    sc.decode()
    assert (era.period, era.phase) == (sc.period, sc.phase)
    assert era.birth(current) == sc.birth(current)
    assert era.death(current) == sc.death(current)
    assert era.birth(current) <= current < era.death(current)
    assert not era.is_immortal
    d = Decoder(era.encode())
    assert Era.decode(d) == era
    d.finish()


@given(st.integers(0, 0xFFFF))
def test_era_decode_agrees_with_scalecodec(enc: int) -> None:
    data = enc.to_bytes(2, "little")
    d = Decoder(data)
    if data[0] == 0:  # immortal: one byte, the second is not part of the era
        assert Era.decode(d).is_immortal
        assert d.pos == 1
        return
    sc = RC.create_scale_object("Era", data=ScaleBytes(bytearray(data)))
    try:
        sc.decode()
    except ValueError:
        with pytest.raises(CodecError):
            Era.decode(d)
        return
    era = Era.decode(d)
    d.finish()
    assert (era.period, era.phase) == (sc.period, sc.phase)
    assert era.encode() == data


@pytest.mark.parametrize("data", [b"\x10\x00", b"\x41\x00", b"\xf0\xff", b"\x05", b""])
def test_era_invalid_encodings(data: bytes) -> None:
    with pytest.raises(CodecError):
        Era.decode(Decoder(data))


def test_era_immortal() -> None:
    era = Era.immortal()
    assert era.is_immortal
    assert era.encode() == b"\x00" == sc_era("00")
    assert era.birth(1234) == 0
    assert era.death(1234) == 2**64 - 1
    assert Era.decode(Decoder(b"\x00")) == era


def test_era_examples() -> None:
    era = Era.mortal(64, 1000)
    assert (era.period, era.phase) == (64, 40)
    assert era.encode() == bytes.fromhex("8502")
    assert era.birth(1000) == 960 + 40 == 1000
    assert era.birth(1063) == 1000
    assert era.birth(1064) == 1064
    assert era.death(1000) == 1064
    assert Era.mortal(100, 5).period == 128
    assert Era.mortal(1, 5).period == 4
    assert Era.mortal(1 << 20, 5).period == 1 << 16
    big = Era.mortal(1 << 16, 12345)
    assert big.phase == 12345 // 16 * 16  # quantized by period >> 12
    with pytest.raises(ValueError, match="power of two"):
        Era(6, 0)
    with pytest.raises(ValueError, match="phase"):
        Era(8, 8)


# --- Header / Digest -------------------------------------------------------------------------

digest_items = st.one_of(
    st.binary(max_size=40).map(DigestItem.other),
    st.binary(min_size=8, max_size=8).map(lambda b: DigestItem.pre_runtime(AURA, b)),
    st.binary(min_size=64, max_size=64).map(lambda b: DigestItem.seal(AURA, b)),
    st.binary(max_size=40).map(lambda b: DigestItem.consensus(b"FRNK", b)),
    st.just(DigestItem.runtime_environment_updated()),
)
headers = st.builds(
    Header,
    hashes,
    st.integers(0, U32_MAX),
    hashes,
    hashes,
    st.lists(digest_items, max_size=4).map(tuple),
)


def sc_digest_value(item: DigestItem) -> Any:
    names = {0: "Other", 4: "Consensus", 5: "Seal", 6: "PreRuntime"}
    if item.kind == DigestItem.RUNTIME_ENVIRONMENT_UPDATED:
        return "RuntimeEnvironmentUpdated"
    if item.kind == DigestItem.OTHER:
        return {"Other": "0x" + item.data.hex()}
    return {names[item.kind]: ("0x" + item.engine.hex(), "0x" + item.data.hex())}


@given(headers)
def test_header_matches_scalecodec(header: Header) -> None:
    value = {
        "parent_hash": "0x" + header.parent_hash.hex(),
        "number": header.number,
        "state_root": "0x" + header.state_root.hex(),
        "extrinsics_root": "0x" + header.extrinsics_root.hex(),
        "digest": {"logs": [sc_digest_value(item) for item in header.digest]},
    }
    encoded = header.encode()
    assert encoded == bytes(RC.create_scale_object("Header").encode(value).data)
    assert header.hash() == blake2_256(encoded)
    assert Header.decode(encoded) == header
    assert Header.from_json(header.to_json()) == header
    assert Header.from_json(header.to_json()).hash() == header.hash()


def test_header_json_shape() -> None:
    seal = DigestItem.seal(AURA, b"\x07" * 64)
    pre = DigestItem.pre_runtime(AURA, (5).to_bytes(8, "little"))
    header = Header(b"\x00" * 32, 26, b"\x01" * 32, b"\x02" * 32, (pre, seal))
    assert header.to_json() == {
        "parentHash": "0x" + "00" * 32,
        "number": "0x1a",
        "stateRoot": "0x" + "01" * 32,
        "extrinsicsRoot": "0x" + "02" * 32,
        "digest": {
            "logs": [
                "0x0661757261200500000000000000",
                "0x0561757261" + "0101" + "07" * 64,
            ]
        },
    }
    expected = (
        b"\x00" * 32
        + b"\x68"
        + b"\x01" * 32
        + b"\x02" * 32
        + b"\x08"
        + pre.encode()
        + seal.encode()
    )
    assert header.encode() == expected
    assert header.hash() == blake2_256(expected)
    unsealed, got_seal = header.without_seal()
    assert got_seal == seal
    assert unsealed.digest == (pre,)
    assert unsealed.without_seal() == (unsealed, None)
    assert Header.from_json({**header.to_json(), "number": 26}) == header


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1],  # truncated
        lambda b: b + b"\x00",  # trailing byte
        lambda b: b[:97] + b"\x04\x09",  # unknown digest variant
        lambda b: b[:97] + b"\xfc",  # digest count 63, far more than the bytes left
    ],
)
def test_header_decode_strict(mutate: Any) -> None:
    header = Header(b"\x00" * 32, 1, b"\x01" * 32, b"\x02" * 32, (DigestItem.other(b"x"),))
    data = header.encode()
    assert data[97] == 4  # Compact(1) digest count, after 32 + 1 + 32 + 32 bytes
    with pytest.raises(CodecError):
        Header.decode(mutate(data))


def test_header_number_too_big() -> None:
    data = b"\x00" * 32 + encode_compact(U32_MAX + 1) + b"\x00" * 65
    with pytest.raises(CodecError):
        Header.decode(data)
    with pytest.raises(CodecError):
        Header.from_json(
            {**Header(b"\0" * 32, 0, b"\0" * 32, b"\0" * 32).to_json(), "number": "0x"}
        )


@given(headers, st.lists(st.binary(min_size=2, max_size=300), max_size=5))
def test_block_round_trip(header: Header, calls: list[bytes]) -> None:
    xts = tuple(encode_unsigned_extrinsic(c) for c in calls)
    block = Block(header, xts)
    encoded = block.encode()
    assert encoded == header.encode() + encode_compact(len(xts)) + b"".join(xts)
    assert Block.decode(encoded) == block
    js = block.to_json()
    assert js["header"] == header.to_json()
    assert js["extrinsics"] == ["0x" + x.hex() for x in xts]
    assert Block.from_json(js) == block
    with pytest.raises(CodecError):
        Block.decode(encoded + b"\x00")
    if xts:
        with pytest.raises(CodecError):
            Block.decode(encoded[:-1])


def test_block_rejects_unprefixed_extrinsic() -> None:
    header = Header(b"\x00" * 32, 1, b"\x01" * 32, b"\x02" * 32)
    with pytest.raises(ValueError, match="length prefix"):
        Block(header, (b"\x04\x00\x00",))


# --- Extrinsics ------------------------------------------------------------------------------

# balances.transfer_keep_alive(dest: MultiAddress::Id, value: Compact<u128>)
TRANSFER = bytes([5, 3, 0]) + bytes(range(32)) + encode_compact(10**12)
ALICE = Keypair.create_from_uri("//Alice")
ED = Keypair.create_from_seed("0x" + "42" * 32, crypto_type=KeypairType.ED25519)
ECDSA_SECRET = bytes.fromhex("5f" * 32)
ECDSA_ACCOUNT = account_id_from_public(
    SignatureScheme.ECDSA, ecdsa_public_from_secret(ECDSA_SECRET)
)


def sign(scheme: SignatureScheme, payload: bytes) -> tuple[bytes, bytes]:
    """(signer account id, signature) for one of the three test keys."""
    if scheme == SignatureScheme.SR25519:
        return ALICE.public_key, ALICE.sign(payload)
    if scheme == SignatureScheme.ED25519:
        return ED.public_key, ED.sign(payload)
    return ECDSA_ACCOUNT, ecdsa_sign(ECDSA_SECRET, payload)


def flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes((data[i] ^ 1,)) + data[i + 1 :]


@pytest.mark.parametrize("scheme", list(SignatureScheme))
@pytest.mark.parametrize(
    ("call", "era", "nonce", "tip"),
    [
        (TRANSFER, Era.mortal(64, 1000), 0, 0),
        (TRANSFER, Era.immortal(), 2**32 - 1, 7),
        (bytes([0, 7]) + encode_compact(400) + b"r" * 400, Era.mortal(4, 3), 70, U128_MAX),
    ],
)
def test_signed_extrinsic_round_trip(
    scheme: SignatureScheme, call: bytes, era: Era, nonce: int, tip: int
) -> None:
    birth_hash = GENESIS if era.is_immortal else blake2_256(b"birth block")
    payload = signing_payload(call, era, nonce, tip, 100, 1, GENESIS, birth_hash)
    if len(call) > 256:
        assert len(payload) == 32
    signer, signature = sign(scheme, payload)
    raw = encode_signed_extrinsic(call, signer, scheme, signature, era, nonce, tip)
    xt = Extrinsic.decode(raw)
    assert xt.raw == raw
    assert xt.signed
    assert (xt.signer, xt.scheme, xt.signature) == (signer, scheme, signature)
    assert (xt.era, xt.nonce, xt.tip, xt.call) == (era, nonce, tip, call)
    assert xt.hash == blake2_256(raw)
    assert (xt.pallet_index, xt.call_index) == (call[0], call[1])
    assert xt == Extrinsic(raw, True, signer, scheme, signature, era, nonce, tip, call)
    assert xt.scheme is not None
    assert xt.signature is not None
    assert xt.signer is not None
    again = signing_payload(xt.call, xt.era, xt.nonce, xt.tip, 100, 1, GENESIS, birth_hash)
    assert again == payload
    assert verify_signature(xt.scheme, xt.signature, again, xt.signer)
    for i in (0, 17, len(xt.signature) - 2):
        assert not verify_signature(xt.scheme, flip(xt.signature, i), again, xt.signer)
    assert not verify_signature(xt.scheme, xt.signature, flip(again, 3), xt.signer)
    assert not verify_signature(xt.scheme, xt.signature, again, flip(xt.signer, 31))
    wrong_spec = signing_payload(xt.call, xt.era, xt.nonce, xt.tip, 101, 1, GENESIS, birth_hash)
    assert not verify_signature(xt.scheme, xt.signature, wrong_spec, xt.signer)


def test_signed_layout_by_hand() -> None:
    signer = bytes(range(32))
    signature = b"\xab" * 64
    era = Era.mortal(64, 1000)
    raw = encode_signed_extrinsic(TRANSFER, signer, SignatureScheme.SR25519, signature, era, 5, 1)
    body = b"\x84" + b"\x00" + signer + b"\x01" + signature + b"\x85\x02" + b"\x14" + b"\x04"
    body += TRANSFER
    assert raw == encode_compact(len(body)) + body


def test_unsigned_extrinsic() -> None:
    call = bytes([2, 0]) + encode_compact(1_700_000_000_000)
    raw = encode_unsigned_extrinsic(call)
    assert raw == encode_compact(len(call) + 1) + b"\x04" + call
    xt = Extrinsic.decode(raw)
    assert not xt.signed
    assert (xt.signer, xt.scheme, xt.signature) == (None, None, None)
    assert (xt.era, xt.nonce, xt.tip, xt.call) == (Era.immortal(), 0, 0, call)


def test_payload_hashing_threshold() -> None:
    era = Era.immortal()
    extra_len = 1 + 1 + 1 + 4 + 4 + 32 + 32  # era, nonce, tip, spec, tx, genesis, birth
    call = bytes([0, 0]) + b"x" * (256 - extra_len - 2)
    payload = signing_payload(call, era, 0, 0, 1, 1, GENESIS, GENESIS)
    assert len(payload) == 256
    assert payload.startswith(call)
    longer = signing_payload(call + b"y", era, 0, 0, 1, 1, GENESIS, GENESIS)
    full = call + b"y" + b"\x00\x00\x00" + (1).to_bytes(4, "little") * 2 + GENESIS + GENESIS
    assert longer == blake2_256(full)


def _signed_raw(scheme: SignatureScheme = SignatureScheme.SR25519) -> bytes:
    payload = signing_payload(TRANSFER, Era.mortal(64, 9), 3, 0, 1, 1, GENESIS, GENESIS)
    signer, signature = sign(scheme, payload)
    return encode_signed_extrinsic(TRANSFER, signer, scheme, signature, Era.mortal(64, 9), 3, 0)


def _reprefix(body: bytes) -> bytes:
    return encode_compact(len(body)) + body


@pytest.mark.parametrize("scheme", list(SignatureScheme))
def test_truncated_extrinsics_rejected(scheme: SignatureScheme) -> None:
    raw = _signed_raw(scheme)
    prefix_len = len(encode_compact(len(raw)))  # 2 bytes here
    for cut in range(len(raw)):
        with pytest.raises(CodecError):
            Extrinsic.decode(raw[:cut])
    # a consistent length prefix over a truncated body: runs out inside the fields
    body = raw[prefix_len:]
    for cut in range(0, 1 + 33 + 1 + 64 + 2 + 1 + 1 + 2):
        with pytest.raises(CodecError):
            Extrinsic.decode(_reprefix(body[:cut]))


def test_malformed_extrinsics_rejected() -> None:
    raw = _signed_raw()
    body = raw[2:]
    assert raw[:2] == encode_compact(len(body))
    cases = {
        "trailing junk": raw + b"\x00",
        "length prefix too big": encode_compact(len(body) + 1) + body,
        "length prefix too small": encode_compact(len(body) - 1) + body,
        "non-canonical length prefix": b"\x03" + len(body).to_bytes(4, "little") + body,
        "empty": b"",
        "empty body": b"\x00",
    }
    for version in (0x85, 0x83, 0x05, 0x00, 0xFF, 0x80):
        cases[f"version {version:#x}"] = _reprefix(bytes((version,)) + body[1:])
    for name, data in cases.items():
        with pytest.raises(CodecError):
            Extrinsic.decode(data)
        assert name
    with pytest.raises(CodecError, match="version"):
        Extrinsic.decode(_reprefix(b"\x85" + body[1:]))
    # MultiAddress variants: only Id names a signer (Address32, the same 32 bytes, included:
    # else every signed extrinsic would have a second encoding, with another hash)
    for variant in (1, 2, 3, 4):
        with pytest.raises(UnsupportedSigner, match="unsupported address type"):
            Extrinsic.decode(_reprefix(body[:1] + bytes((variant,)) + body[2:]))
    with pytest.raises(CodecError, match="MultiAddress"):
        Extrinsic.decode(_reprefix(body[:1] + b"\x05" + body[2:]))
    # unknown MultiSignature variant
    with pytest.raises(CodecError, match="MultiSignature"):
        Extrinsic.decode(_reprefix(body[:34] + b"\x03" + body[35:]))
    # invalid era (period 2)
    era_at = 1 + 33 + 65
    with pytest.raises(CodecError, match="era"):
        Extrinsic.decode(_reprefix(body[:era_at] + b"\x10\x00" + body[era_at + 2 :]))
    # non-canonical nonce
    nonce_at = era_at + 2
    assert body[nonce_at] == 3 << 2
    with pytest.raises(CodecError, match="non-canonical"):
        Extrinsic.decode(_reprefix(body[:nonce_at] + b"\x0d\x00" + body[nonce_at + 1 :]))
    # nonce beyond u32
    big = encode_compact(U32_MAX + 1)
    with pytest.raises(CodecError, match="nonce"):
        Extrinsic.decode(_reprefix(body[:nonce_at] + big + body[nonce_at + 1 :]))
    # call shorter than pallet + call index
    with pytest.raises(CodecError, match="call"):
        Extrinsic.decode(_reprefix(body[: nonce_at + 2] + b"\x05"))
    with pytest.raises(CodecError, match="call"):
        Extrinsic.decode(_reprefix(b"\x04\x05"))


@given(st.binary(max_size=300))
def test_garbage_extrinsics_raise_only_codec_error(data: bytes) -> None:
    for candidate in (data, _reprefix(data), _reprefix(b"\x84" + data), _reprefix(b"\x04" + data)):
        try:
            xt = Extrinsic.decode(candidate)
        except CodecError:
            continue
        assert xt.raw == candidate


@given(st.binary(max_size=300), st.integers(0, 2))
def test_signed_extrinsic_mutations_raise_only_codec_error(junk: bytes, where: int) -> None:
    body = _signed_raw()[2:]
    cut = (len(junk) * 7 + where * 31) % len(body)
    mutated = body[:cut] + junk[: where * 3] + body[cut + where :]
    with contextlib.suppress(CodecError):
        Extrinsic.decode(_reprefix(mutated))


@pytest.mark.parametrize("scheme", [*list(SignatureScheme), 3, -1, 255])
def test_verify_signature_garbage_never_raises(scheme: Any) -> None:
    message = b"message"
    for sig_len in range(0, 131):
        for fill in (b"\x00", b"\xff", b"\x5a"):
            sig = fill * sig_len
            for account in (b"", b"\x01" * 31, b"\x03" * 32, b"\xff" * 32, b"\x02" * 33):
                assert verify_signature(scheme, sig, message, account) is False


def test_ed25519_small_order_key_accepts_identity_signature() -> None:
    """ed25519-zebra follows ZIP215, as Substrate's ed25519_verify does: for a small-order
    public key such as 0x00..00 the all-zero signature verifies for any message. Consensus
    compatible; FRAME's CheckNonZeroSender keeps the all-zero account out."""
    zero = b"\x00" * 32
    assert verify_signature(SignatureScheme.ED25519, b"\x00" * 64, b"any message", zero)
    assert not verify_signature(SignatureScheme.SR25519, b"\x00" * 64, b"any message", zero)


@given(st.binary(max_size=70), st.binary(max_size=40), st.binary(max_size=40))
def test_verify_signature_random_never_raises(sig: bytes, message: bytes, account: bytes) -> None:
    # ed25519 only checks the type: a small-order key can verify the identity signature (ZIP215)
    candidates = [sig, sig[:64] + b"\x00", sig[:64] + b"\x1b"]
    for candidate in candidates:
        for acc in (account, account[:32]):
            assert verify_signature(SignatureScheme.SR25519, candidate, message, acc) is False
            assert verify_signature(SignatureScheme.ECDSA, candidate, message, acc) is False
            assert isinstance(
                verify_signature(SignatureScheme.ED25519, candidate, message, acc), bool
            )


def test_encode_signed_extrinsic_validates() -> None:
    with pytest.raises(CodecError):
        encode_signed_extrinsic(
            TRANSFER, b"\x00" * 31, SignatureScheme.SR25519, b"\x00" * 64, Era(), 0, 0
        )
    with pytest.raises(CodecError):
        encode_signed_extrinsic(
            TRANSFER, b"\x00" * 32, SignatureScheme.ECDSA, b"\x00" * 64, Era(), 0, 0
        )
    with pytest.raises(CodecError):
        encode_signed_extrinsic(
            TRANSFER, b"\x00" * 32, SignatureScheme.SR25519, b"\x00" * 64, Era(), -1, 0
        )
    with pytest.raises(CodecError):
        encode_unsigned_extrinsic(b"\x00")
