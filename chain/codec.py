"""Hand-written SCALE codec for the hot types.

SCALE (Substrate's canonical binary encoding): fixed-width little-endian integers, compact
integers with a 2-bit mode, length-prefixed vectors. scalecodec is 60-170x slower, so the hot
path uses these functions; tests cross-check them byte for byte against scalecodec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chain import ChainError

T = TypeVar("T")

U8_MAX = (1 << 8) - 1
U16_MAX = (1 << 16) - 1
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1


class CodecError(ChainError):
    """Bytes that are not valid SCALE for the expected type."""


def encode_compact(value: int) -> bytes:
    """Encode a non-negative integer as SCALE `Compact<T>`."""
    if value < 0:
        raise CodecError(f"compact integers are unsigned, got {value}")
    if value < 1 << 6:
        return bytes((value << 2,))
    if value < 1 << 14:
        return ((value << 2) | 0b01).to_bytes(2, "little")
    if value < 1 << 30:
        return ((value << 2) | 0b10).to_bytes(4, "little")
    n = (value.bit_length() + 7) // 8
    if n > 67:
        raise CodecError("compact integer too large")
    return bytes((((n - 4) << 2) | 0b11,)) + value.to_bytes(n, "little")


def encode_u8(value: int) -> bytes:
    return _fixed(value, 1)


def encode_u16(value: int) -> bytes:
    return _fixed(value, 2)


def encode_u32(value: int) -> bytes:
    return _fixed(value, 4)


def encode_u64(value: int) -> bytes:
    return _fixed(value, 8)


def encode_u128(value: int) -> bytes:
    return _fixed(value, 16)


def _fixed(value: int, width: int) -> bytes:
    try:
        return value.to_bytes(width, "little")
    except OverflowError as exc:
        raise CodecError(f"{value} does not fit in u{width * 8}") from exc


def encode_bool(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def encode_bytes(value: bytes) -> bytes:
    """`Vec<u8>`: compact length then the bytes."""
    return encode_compact(len(value)) + value


def encode_str(value: str) -> bytes:
    return encode_bytes(value.encode())


class Decoder:
    """A cursor over SCALE bytes. Every read checks bounds and raises `CodecError`.

    `depth` is how deeply the value being decoded nests in itself: decoders of recursive types
    (a call carrying a call) count it and refuse input nested beyond their limit, so that the
    work and the Python stack a decode takes are bounded by the limit, not by the input."""

    __slots__ = ("data", "depth", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.depth = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CodecError(f"unexpected end of input: need {n} bytes at offset {self.pos}")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        pos = self.pos
        try:
            b = self.data[pos]
        except IndexError:
            raise CodecError(f"unexpected end of input at offset {pos}") from None
        self.pos = pos + 1
        return b

    def u16(self) -> int:
        return int.from_bytes(self.read(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "little")

    def u128(self) -> int:
        return int.from_bytes(self.read(16), "little")

    def bool(self) -> bool:
        b = self.u8()
        if b > 1:
            raise CodecError(f"invalid bool byte {b}")
        return b == 1

    def compact(self) -> int:
        first = self.u8()
        mode = first & 0b11
        if mode == 0:
            return first >> 2
        if mode == 1:
            value = (first | (self.u8() << 8)) >> 2
            if value < 1 << 6:
                raise CodecError("non-canonical compact integer")
            return value
        if mode == 2:
            value = int.from_bytes(bytes((first,)) + self.read(3), "little") >> 2
            if value < 1 << 14:
                raise CodecError("non-canonical compact integer")
            return value
        n = (first >> 2) + 4
        value = int.from_bytes(self.read(n), "little")
        if value < 1 << 30 or (n > 4 and value >> ((n - 1) * 8) == 0):
            raise CodecError("non-canonical compact integer")
        return value

    def bytes(self) -> bytes:
        n = self.compact()
        return self.read(n)

    def str(self) -> str:
        try:
            return self.bytes().decode()
        except UnicodeDecodeError as exc:
            raise CodecError("string is not valid UTF-8") from exc

    def finish(self) -> None:
        """Raise unless every byte was consumed (strict decoding, like scalecodec)."""
        if self.pos != len(self.data):
            raise CodecError(f"{len(self.data) - self.pos} trailing bytes after value")


def decode_exact(data: bytes, decode: Callable[[Decoder], T]) -> T:
    """Decode one value that must take all of `data` (strict, like scalecodec)."""
    d = Decoder(bytes(data))
    value = decode(d)
    d.finish()
    return value


def parse_hex(value: object, what: str, length: int | None = None) -> bytes:
    """Bytes from a 0x-prefixed hex string (JSON-RPC, chain specs); CodecError naming `what`."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise CodecError(f"{what}: expected a 0x-prefixed hex string, got {value!r}")
    try:
        out = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise CodecError(f"{what}: invalid hex") from exc
    if length is not None and len(out) != length:
        raise CodecError(f"{what}: expected {length} bytes, got {len(out)}")
    return out
