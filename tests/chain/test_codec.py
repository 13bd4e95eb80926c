"""chain.codec against scalecodec: byte equality, round trips, strictness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scalecodec.base import RuntimeConfiguration, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from chain.codec import (
    U8_MAX,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    U128_MAX,
    CodecError,
    Decoder,
    encode_bool,
    encode_bytes,
    encode_compact,
    encode_str,
    encode_u8,
    encode_u16,
    encode_u32,
    encode_u64,
    encode_u128,
)

RC = RuntimeConfiguration()
RC.update_type_registry(load_type_registry_preset("core"))


def sc_encode(type_string: str, value: Any) -> bytes:
    return bytes(RC.create_scale_object(type_string).encode(value).data)


def sc_decode(type_string: str, data: bytes) -> Any:
    return RC.create_scale_object(type_string, data=ScaleBytes(bytearray(data))).decode()


# values that straddle every compact mode boundary
BOUNDARIES = [
    0,
    1,
    63,
    64,
    (1 << 14) - 1,
    1 << 14,
    (1 << 30) - 1,
    1 << 30,
    U32_MAX,
    1 << 32,
    U64_MAX,
    1 << 64,
    U128_MAX,
]

compact_values = st.one_of(
    st.sampled_from(BOUNDARIES),
    st.integers(0, 1 << 6),
    st.integers(0, 1 << 14),
    st.integers(0, 1 << 30),
    st.integers(0, U128_MAX),
    st.integers(0, U128_MAX).map(lambda v: v >> (v % 128)),
)


@given(compact_values)
def test_compact_matches_scalecodec(value: int) -> None:
    enc = encode_compact(value)
    assert enc == sc_encode("Compact<u128>", value)
    d = Decoder(enc)
    assert d.compact() == value
    d.finish()
    assert sc_decode("Compact<u128>", enc) == value


FIXED: list[tuple[str, Callable[[int], bytes], Callable[[Decoder], int], int]] = [
    ("u8", encode_u8, Decoder.u8, U8_MAX),
    ("u16", encode_u16, Decoder.u16, U16_MAX),
    ("u32", encode_u32, Decoder.u32, U32_MAX),
    ("u64", encode_u64, Decoder.u64, U64_MAX),
    ("u128", encode_u128, Decoder.u128, U128_MAX),
]


@pytest.mark.parametrize(("type_string", "enc", "dec", "maximum"), FIXED)
@given(data=st.data())
def test_fixed_width_matches_scalecodec(
    type_string: str,
    enc: Callable[[int], bytes],
    dec: Callable[[Decoder], int],
    maximum: int,
    data: st.DataObject,
) -> None:
    value = data.draw(st.one_of(st.sampled_from([0, 1, maximum]), st.integers(0, maximum)))
    encoded = enc(value)
    assert encoded == sc_encode(type_string, value)
    assert len(encoded) == (maximum.bit_length() // 8)
    d = Decoder(encoded)
    assert dec(d) == value
    d.finish()
    assert sc_decode(type_string, encoded) == value


@pytest.mark.parametrize(("enc", "maximum"), [(f[1], f[3]) for f in FIXED])
def test_fixed_width_overflow_rejected(enc: Callable[[int], bytes], maximum: int) -> None:
    with pytest.raises(CodecError):
        enc(maximum + 1)
    with pytest.raises(CodecError):
        enc(-1)


@pytest.mark.parametrize("value", [False, True])
def test_bool(value: bool) -> None:
    encoded = encode_bool(value)
    assert encoded == sc_encode("bool", value)
    d = Decoder(encoded)
    assert d.bool() is value
    d.finish()


def test_bool_invalid_byte() -> None:
    with pytest.raises(CodecError):
        Decoder(b"\x02").bool()


@given(st.binary(max_size=300))
def test_bytes_matches_scalecodec(value: bytes) -> None:
    encoded = encode_bytes(value)
    assert encoded == sc_encode("Bytes", value)
    d = Decoder(encoded)
    assert d.bytes() == value
    d.finish()


@given(st.text(max_size=100))
def test_str_round_trip(value: str) -> None:
    d = Decoder(encode_str(value))
    assert d.str() == value
    d.finish()


def test_invalid_utf8_rejected() -> None:
    with pytest.raises(CodecError):
        Decoder(b"\x04\xff").str()


@pytest.mark.parametrize(
    "encoded",
    [
        "0100",  # 0 in two-byte mode
        "fd00",  # 63 in two-byte mode
        "02000000",  # 0 in four-byte mode
        "feff0000",  # (1 << 14) - 1 in four-byte mode
        "0300000000",  # 0 in big-integer mode
        "03ffffff3f",  # (1 << 30) - 1 in big-integer mode
        "070000004000",  # 1 << 30 with a superfluous zero byte
        "0b" + "ff" * 5 + "00",  # leading zero byte in big-integer mode
    ],
)
def test_non_canonical_compact_rejected(encoded: str) -> None:
    with pytest.raises(CodecError, match="non-canonical"):
        Decoder(bytes.fromhex(encoded)).compact()


@given(compact_values)
def test_truncated_compact_raises(value: int) -> None:
    enc = encode_compact(value)
    for cut in range(len(enc)):
        with pytest.raises(CodecError):
            Decoder(enc[:cut]).compact()


@pytest.mark.parametrize(
    "read",
    [Decoder.u8, Decoder.u16, Decoder.u32, Decoder.u64, Decoder.u128, Decoder.bool],
)
def test_truncated_fixed_raises(read: Callable[[Decoder], object]) -> None:
    with pytest.raises(CodecError):
        read(Decoder(b""))


@given(st.binary(min_size=1, max_size=100))
def test_truncated_bytes_raises(value: bytes) -> None:
    encoded = encode_bytes(value)
    with pytest.raises(CodecError):
        Decoder(encoded[:-1]).bytes()


def test_read_past_end_and_trailing_bytes() -> None:
    d = Decoder(b"\x01\x02")
    with pytest.raises(CodecError):
        d.read(3)
    assert d.read(1) == b"\x01"
    with pytest.raises(CodecError, match="trailing"):
        d.finish()
    assert d.u8() == 2
    d.finish()


def test_negative_compact_rejected() -> None:
    with pytest.raises(CodecError):
        encode_compact(-1)
