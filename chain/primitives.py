"""Block primitives: Era, DigestItem, Header, Block, and the v4 UncheckedExtrinsic.

Encodings follow Substrate (COMPAT.md §7 and §9) so that unmodified substrate-interface and
@polkadot/api clients agree with the node byte for byte:

* Header = parent_hash[32] ++ Compact<u32> number ++ state_root[32] ++ extrinsics_root[32]
  ++ Vec<DigestItem>; its hash is blake2_256 of that encoding.
* UncheckedExtrinsic = Compact<u32> len ++ body; signed body = 0x84 ++ MultiAddress ++
  MultiSignature ++ Era ++ Compact<u32> nonce ++ Compact<u128> tip ++ call; unsigned = 0x04 ++ call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from chain.codec import (
    U32_MAX,
    U128_MAX,
    CodecError,
    Decoder,
    decode_exact,
    encode_bytes,
    encode_compact,
    encode_u32,
    parse_hex,
)
from chain.crypto import SIGNATURE_LENGTHS, SignatureScheme
from chain.hashing import blake2_256
from chain.records import fast_init

IMMORTAL_DEATH = 2**64 - 1
MAX_UNHASHED_PAYLOAD = 256


# --- Era -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Era:
    """Transaction mortality. `period == 0` means immortal; otherwise a mortal era of `period`
    blocks (a power of two in 4..65536) starting at blocks congruent to `phase` mod `period`."""

    period: int = 0
    phase: int = 0

    def __post_init__(self) -> None:
        if self.period == 0:
            if self.phase != 0:
                raise ValueError("an immortal era has phase 0")
            return
        p = self.period
        if p < 4 or p > 1 << 16 or p & (p - 1):
            raise ValueError(f"era period must be a power of two in 4..65536, got {p}")
        if not 0 <= self.phase < p:
            raise ValueError(f"era phase {self.phase} not in 0..{p - 1}")
        if self.phase % max(p >> 12, 1):
            raise ValueError(f"era phase {self.phase} is not quantized for period {p}")

    @staticmethod
    def immortal() -> Era:
        return IMMORTAL

    @staticmethod
    def mortal(period: int, current: int) -> Era:
        """The era of `period` (rounded up to a power of two, clamped to 4..65536) that
        contains block `current`, as `Era::mortal` in sp_runtime and scalecodec compute it."""
        if current < 0:
            raise ValueError(f"current block must be non-negative, got {current}")
        p = 1 << (period - 1).bit_length() if period > 1 else 1
        p = min(max(p, 4), 1 << 16)
        quantize = max(p >> 12, 1)
        return Era(p, (current % p) // quantize * quantize)

    @property
    def is_immortal(self) -> bool:
        return self.period == 0

    def birth(self, current: int) -> int:
        """First block of the era instance that contains `current` (0 if immortal)."""
        if self.period == 0:
            return 0
        return (max(current, self.phase) - self.phase) // self.period * self.period + self.phase

    def death(self, current: int) -> int:
        """First block at which the era has ended (2**64-1 if immortal)."""
        if self.period == 0:
            return IMMORTAL_DEATH
        return self.birth(current) + self.period

    def encode(self) -> bytes:
        if self.period == 0:
            return b"\x00"
        p = self.period
        trailing_zeros = (p & -p).bit_length() - 1
        quantize = max(p >> 12, 1)
        enc = min(15, max(1, trailing_zeros - 1)) | ((self.phase // quantize) << 4)
        return enc.to_bytes(2, "little")

    @staticmethod
    def decode(d: Decoder) -> Era:
        first = d.u8()
        if first == 0:
            return IMMORTAL
        return _mortal_era(first | (d.u8() << 8))


IMMORTAL = Era()


@functools.lru_cache(maxsize=1 << 16)  # one entry per 2-byte encoding at most
def _mortal_era(enc: int) -> Era:
    period = 2 << (enc & 0xF)
    phase = (enc >> 4) * max(period >> 12, 1)
    if period < 4 or phase >= period:
        raise CodecError(f"invalid mortal era 0x{enc:04x}: period {period}, phase {phase}")
    return Era(period, phase)


# --- Digest ----------------------------------------------------------------------------------

_ENGINE_KINDS = frozenset((4, 5, 6))
_DIGEST_KINDS = frozenset((0, 4, 5, 6, 8))


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One `sp_runtime::generic::DigestItem`.

    `engine` is the 4-byte ConsensusEngineId for CONSENSUS/SEAL/PRE_RUNTIME and empty otherwise;
    `data` is the payload (empty for RUNTIME_ENVIRONMENT_UPDATED)."""

    kind: int
    engine: bytes = b""
    data: bytes = b""

    OTHER: ClassVar[int] = 0
    CONSENSUS: ClassVar[int] = 4
    SEAL: ClassVar[int] = 5
    PRE_RUNTIME: ClassVar[int] = 6
    RUNTIME_ENVIRONMENT_UPDATED: ClassVar[int] = 8

    def __post_init__(self) -> None:
        if self.kind not in _DIGEST_KINDS:
            raise ValueError(f"unknown digest item kind {self.kind}")
        if self.kind in _ENGINE_KINDS:
            if len(self.engine) != 4:
                raise ValueError(f"consensus engine id must be 4 bytes, got {len(self.engine)}")
        elif self.engine:
            raise ValueError(f"digest item kind {self.kind} has no engine id")
        if self.kind == 8 and self.data:
            raise ValueError("RuntimeEnvironmentUpdated carries no data")
        if type(self.engine) is not bytes:
            object.__setattr__(self, "engine", bytes(self.engine))
        if type(self.data) is not bytes:
            object.__setattr__(self, "data", bytes(self.data))

    @classmethod
    def pre_runtime(cls, engine: bytes, data: bytes) -> DigestItem:
        return cls(cls.PRE_RUNTIME, engine, data)

    @classmethod
    def consensus(cls, engine: bytes, data: bytes) -> DigestItem:
        return cls(cls.CONSENSUS, engine, data)

    @classmethod
    def seal(cls, engine: bytes, signature: bytes) -> DigestItem:
        return cls(cls.SEAL, engine, signature)

    @classmethod
    def other(cls, data: bytes) -> DigestItem:
        return cls(cls.OTHER, b"", data)

    @classmethod
    def runtime_environment_updated(cls) -> DigestItem:
        return cls(cls.RUNTIME_ENVIRONMENT_UPDATED)

    def encode(self) -> bytes:
        if self.kind == 0:
            return b"\x00" + encode_bytes(self.data)
        if self.kind == 8:
            return b"\x08"
        return bytes((self.kind,)) + self.engine + encode_bytes(self.data)

    @classmethod
    def decode(cls, d: Decoder) -> DigestItem:
        kind = d.u8()
        if kind == 0:
            return cls(0, b"", d.bytes())
        if kind in _ENGINE_KINDS:
            engine = d.read(4)
            return cls(kind, engine, d.bytes())
        if kind == 8:
            return cls(8)
        raise CodecError(f"unsupported digest item variant {kind}")

    @classmethod
    def from_bytes(cls, data: bytes) -> DigestItem:
        """Strictly decode one SCALE DigestItem (no trailing bytes)."""
        return decode_exact(data, cls.decode)


# --- Header ----------------------------------------------------------------------------------


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass(frozen=True)
class Header:
    parent_hash: bytes
    number: int
    state_root: bytes
    extrinsics_root: bytes
    digest: tuple[DigestItem, ...] = ()
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("parent_hash", "state_root", "extrinsics_root"):
            value = getattr(self, name)
            if len(value) != 32:
                raise ValueError(f"header {name} must be 32 bytes, got {len(value)}")
            if type(value) is not bytes:
                object.__setattr__(self, name, bytes(value))
        if not 0 <= self.number <= U32_MAX:
            raise ValueError(f"block number {self.number} does not fit in u32")
        if type(self.digest) is not tuple:
            object.__setattr__(self, "digest", tuple(self.digest))
        for item in self.digest:
            if not isinstance(item, DigestItem):
                raise TypeError(f"digest items must be DigestItem, got {type(item).__name__}")

    def encode(self) -> bytes:
        parts = [
            self.parent_hash,
            encode_compact(self.number),
            self.state_root,
            self.extrinsics_root,
            encode_compact(len(self.digest)),
        ]
        parts.extend(item.encode() for item in self.digest)
        return b"".join(parts)

    def hash(self) -> bytes:
        """blake2_256 of the SCALE encoding (cached)."""
        h = self._hash
        if h is None:
            h = blake2_256(self.encode())
            object.__setattr__(self, "_hash", h)
        return h

    @classmethod
    def decode_from(cls, d: Decoder) -> Header:
        parent_hash = d.read(32)
        number = d.compact()
        if number > U32_MAX:
            raise CodecError(f"block number {number} does not fit in u32")
        state_root = d.read(32)
        extrinsics_root = d.read(32)
        count = d.compact()
        if count > d.remaining():
            raise CodecError(f"digest claims {count} items, only {d.remaining()} bytes left")
        digest = tuple(DigestItem.decode(d) for _ in range(count))
        return cls(parent_hash, number, state_root, extrinsics_root, digest)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        return decode_exact(data, cls.decode_from)

    def to_json(self) -> dict[str, Any]:
        return {
            "parentHash": _hex(self.parent_hash),
            "number": hex(self.number),
            "stateRoot": _hex(self.state_root),
            "extrinsicsRoot": _hex(self.extrinsics_root),
            "digest": {"logs": [_hex(item.encode()) for item in self.digest]},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Header:
        try:
            number_raw = obj["number"]
            digest = obj["digest"]
            logs = digest["logs"]
            parent_hash = parse_hex(obj["parentHash"], "parentHash", 32)
            state_root = parse_hex(obj["stateRoot"], "stateRoot", 32)
            extrinsics_root = parse_hex(obj["extrinsicsRoot"], "extrinsicsRoot", 32)
        except (KeyError, TypeError) as exc:
            raise CodecError(f"header JSON: missing or malformed field {exc}") from exc
        if isinstance(number_raw, str):
            if not number_raw.startswith("0x"):
                raise CodecError(f"header JSON: number must be hex, got {number_raw!r}")
            try:
                number = int(number_raw, 16)
            except ValueError as exc:
                raise CodecError(f"header JSON: invalid number {number_raw!r}") from exc
        elif isinstance(number_raw, int) and not isinstance(number_raw, bool):
            number = number_raw
        else:
            raise CodecError(f"header JSON: invalid number {number_raw!r}")
        if not 0 <= number <= U32_MAX:
            raise CodecError(f"header JSON: block number {number} does not fit in u32")
        if not isinstance(logs, list):
            raise CodecError("header JSON: digest.logs must be a list")
        items = tuple(DigestItem.from_bytes(parse_hex(log, "digest log")) for log in logs)
        return cls(parent_hash, number, state_root, extrinsics_root, items)

    def without_seal(self) -> tuple[Header, DigestItem | None]:
        """(this header without its trailing Seal digest item, that seal) or (self, None)."""
        if self.digest and self.digest[-1].kind == DigestItem.SEAL:
            unsealed = Header(
                self.parent_hash,
                self.number,
                self.state_root,
                self.extrinsics_root,
                self.digest[:-1],
            )
            return unsealed, self.digest[-1]
        return self, None


# --- Extrinsic -------------------------------------------------------------------------------

_ADDRESS_NAMES = MappingProxyType({1: "Index", 2: "Raw", 3: "Address32", 4: "Address20"})


class UnsupportedSigner(CodecError):
    """A signed extrinsic whose signer is a `MultiAddress` other than `Id`. The signer resolves
    through FRAME's `AccountIdLookup`, which knows `Id` only here (no indices pallet), so such a
    transaction can never be valid: Substrate answers `UnknownTransaction::CannotLookup`.
    `Address32` in particular carries the same 32 bytes as `Id`; accepting it would give every
    signed transaction a second encoding (another hash, the same valid signature)."""


_SIG_LEN = MappingProxyType({int(k): v for k, v in SIGNATURE_LENGTHS.items()})
_SCHEMES = MappingProxyType({int(s): s for s in SignatureScheme})


def _bounded_compact_at(raw: bytes, pos: int, limit: int, what: str, ty: str) -> tuple[int, int]:
    """A compact integer at `pos` that must fit in `ty` (at most `limit`); the position after."""
    if pos < len(raw) and not raw[pos] & 3:  # single-byte compact: the common case
        return raw[pos] >> 2, pos + 1
    value, pos = _compact_at(raw, pos)
    if value > limit:
        raise CodecError(f"{what} {value} does not fit in {ty}")
    return value, pos


def _compact_at(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a canonical compact integer at `pos`; return (value, next position)."""
    n = len(data)
    if pos >= n:
        raise CodecError(f"unexpected end of input at offset {pos}")
    first = data[pos]
    mode = first & 3
    if mode == 0:
        return first >> 2, pos + 1
    if mode == 1:
        if pos + 2 > n:
            raise CodecError(f"unexpected end of input at offset {pos}")
        value = (first | (data[pos + 1] << 8)) >> 2
        if value < 1 << 6:
            raise CodecError("non-canonical compact integer")
        return value, pos + 2
    if mode == 2:
        if pos + 4 > n:
            raise CodecError(f"unexpected end of input at offset {pos}")
        value = int.from_bytes(data[pos : pos + 4], "little") >> 2
        if value < 1 << 14:
            raise CodecError("non-canonical compact integer")
        return value, pos + 4
    size = (first >> 2) + 4
    end = pos + 1 + size
    if end > n:
        raise CodecError(f"unexpected end of input at offset {pos}")
    value = int.from_bytes(data[pos + 1 : end], "little")
    if value < 1 << 30 or (size > 4 and value >> ((size - 1) * 8) == 0):
        raise CodecError("non-canonical compact integer")
    return value, end


@fast_init
@dataclass(frozen=True)
class Extrinsic:
    """A decoded v4 UncheckedExtrinsic. Build it with `Extrinsic.decode(raw)`.

    `raw` is the full encoding including the compact length prefix; `call` is the raw call
    (pallet index, call index, SCALE args). Unsigned extrinsics have signer, scheme and
    signature None, an immortal era, nonce 0 and tip 0."""

    raw: bytes
    signed: bool
    signer: bytes | None
    scheme: SignatureScheme | None
    signature: bytes | None
    era: Era
    nonce: int
    tip: int
    call: bytes
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)
    # the last signing payload made of it, and what it was made for (`signing_payload_for`)
    _payload: tuple[tuple[int, int, bytes, bytes], bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def hash(self) -> bytes:
        """blake2_256 of the full encoding, length prefix included (cached)."""
        h = self._hash
        if h is None:
            h = blake2_256(self.raw)
            object.__setattr__(self, "_hash", h)
        return h

    def signing_payload_for(
        self, spec_version: int, tx_version: int, genesis_hash: bytes, birth_hash: bytes
    ) -> bytes:
        """`signing_payload` of this extrinsic (signed) for a runtime version and chain; the
        last one made is kept, so checking the same extrinsic twice (ahead of execution and in
        it) builds it once."""
        key = (spec_version, tx_version, genesis_hash, birth_hash)
        memo = self._payload
        if memo is not None and memo[0] == key:
            return memo[1]
        payload = signing_payload(
            self.call,
            self.era,
            self.nonce,
            self.tip,
            spec_version,
            tx_version,
            genesis_hash,
            birth_hash,
        )
        object.__setattr__(self, "_payload", (key, payload))
        return payload

    @property
    def pallet_index(self) -> int:
        return self.call[0]

    @property
    def call_index(self) -> int:
        return self.call[1]

    @classmethod
    def decode(cls, raw: bytes) -> Extrinsic:
        if type(raw) is not bytes:
            raw = bytes(raw)
        n = len(raw)
        if n == 0:
            raise CodecError("empty extrinsic")
        first = raw[0]
        if first & 3 == 0:
            length, pos = first >> 2, 1
        else:
            length, pos = _compact_at(raw, 0)
        if length != n - pos:
            raise CodecError(
                f"extrinsic length prefix says {length} bytes but {n - pos} bytes follow"
            )
        if length == 0:
            raise CodecError("empty extrinsic body")
        version = raw[pos]
        pos += 1
        if version == 0x04:
            call = raw[pos:]
            if len(call) < 2:
                raise CodecError("extrinsic call too short: need pallet and call index")
            return _make_extrinsic(cls, raw, False, None, None, None, IMMORTAL, 0, 0, call)
        if version != 0x84:
            raise CodecError(
                f"unsupported extrinsic version byte 0x{version:02x}"
                " (expected 0x84 signed v4 or 0x04 unsigned v4)"
            )
        # MultiAddress
        if pos + 33 > n:
            raise CodecError("truncated extrinsic: signer address")
        address_kind = raw[pos]
        if address_kind != 0:
            name = _ADDRESS_NAMES.get(address_kind)
            if name is not None:
                raise UnsupportedSigner(
                    f"unsupported address type MultiAddress::{name} for the signer"
                    " (only MultiAddress::Id)"
                )
            raise CodecError(f"invalid MultiAddress variant {address_kind}")
        signer = raw[pos + 1 : pos + 33]
        pos += 33
        # MultiSignature
        if pos >= n:
            raise CodecError("truncated extrinsic: signature")
        sig_kind = raw[pos]
        sig_len = _SIG_LEN.get(sig_kind)
        if sig_len is None:
            raise CodecError(f"invalid MultiSignature variant {sig_kind}")
        end = pos + 1 + sig_len
        if end > n:
            raise CodecError("truncated extrinsic: signature")
        signature = raw[pos + 1 : end]
        pos = end
        # Extra: Era ++ Compact<u32> nonce ++ Compact<u128> tip
        if pos >= n:
            raise CodecError("truncated extrinsic: era")
        era_first = raw[pos]
        if era_first == 0:
            era = IMMORTAL
            pos += 1
        else:
            if pos + 2 > n:
                raise CodecError("truncated extrinsic: era")
            era = _mortal_era(era_first | (raw[pos + 1] << 8))
            pos += 2
        nonce, pos = _bounded_compact_at(raw, pos, U32_MAX, "nonce", "u32")
        tip, pos = _bounded_compact_at(raw, pos, U128_MAX, "tip", "u128")
        call = raw[pos:]
        if len(call) < 2:
            raise CodecError("extrinsic call too short: need pallet and call index")
        scheme = _SCHEMES[sig_kind]
        return _make_extrinsic(cls, raw, True, signer, scheme, signature, era, nonce, tip, call)


_new_object = object.__new__


def _make_extrinsic(
    cls: type[Extrinsic],
    raw: bytes,
    signed: bool,
    signer: bytes | None,
    scheme: SignatureScheme | None,
    signature: bytes | None,
    era: Era,
    nonce: int,
    tip: int,
    call: bytes,
) -> Extrinsic:
    """Construct without the frozen dataclass __init__ (10 object.__setattr__ calls, ~2x the
    cost of the whole decode). Same result as `cls(raw, signed, ...)`."""
    xt: Extrinsic = _new_object(cls)
    xt.__dict__.update(
        raw=raw,
        signed=signed,
        signer=signer,
        scheme=scheme,
        signature=signature,
        era=era,
        nonce=nonce,
        tip=tip,
        call=call,
        _hash=None,
        _payload=None,
    )
    return xt


def encode_extra(era: Era, nonce: int, tip: int) -> bytes:
    """The signed-extension Extra: Era ++ Compact<u32> nonce ++ Compact<u128> tip."""
    if not 0 <= nonce <= U32_MAX:
        raise CodecError(f"nonce {nonce} does not fit in u32")
    if not 0 <= tip <= U128_MAX:
        raise CodecError(f"tip {tip} does not fit in u128")
    return era.encode() + encode_compact(nonce) + encode_compact(tip)


def signing_payload(
    call: bytes,
    era: Era,
    nonce: int,
    tip: int,
    spec_version: int,
    tx_version: int,
    genesis_hash: bytes,
    birth_hash: bytes,
) -> bytes:
    """The message a signer signs: call ++ extra ++ additional_signed, hashed with blake2_256
    when longer than 256 bytes. `birth_hash` is the genesis hash for immortal eras."""
    if len(genesis_hash) != 32 or len(birth_hash) != 32:
        raise CodecError("genesis and birth hashes must be 32 bytes")
    payload = b"".join(
        (
            call,
            encode_extra(era, nonce, tip),
            encode_u32(spec_version),
            encode_u32(tx_version),
            genesis_hash,
            birth_hash,
        )
    )
    if len(payload) > MAX_UNHASHED_PAYLOAD:
        return blake2_256(payload)
    return payload


def encode_signed_extrinsic(
    call: bytes,
    signer: bytes,
    scheme: SignatureScheme,
    signature: bytes,
    era: Era,
    nonce: int,
    tip: int,
) -> bytes:
    """A signed v4 extrinsic (MultiAddress::Id signer), with its compact length prefix."""
    if len(signer) != 32:
        raise CodecError(f"signer must be a 32-byte AccountId32, got {len(signer)} bytes")
    scheme = SignatureScheme(scheme)
    if len(signature) != SIGNATURE_LENGTHS[scheme]:
        raise CodecError(
            f"{scheme.name.lower()} signature must be {SIGNATURE_LENGTHS[scheme]} bytes,"
            f" got {len(signature)}"
        )
    if len(call) < 2:
        raise CodecError("call too short: need pallet and call index")
    body = b"".join(
        (
            b"\x84\x00",
            bytes(signer),
            bytes((scheme,)),
            bytes(signature),
            encode_extra(era, nonce, tip),
            bytes(call),
        )
    )
    return encode_compact(len(body)) + body


def encode_unsigned_extrinsic(call: bytes) -> bytes:
    """An unsigned (inherent) v4 extrinsic, with its compact length prefix."""
    if len(call) < 2:
        raise CodecError("call too short: need pallet and call index")
    return encode_compact(len(call) + 1) + b"\x04" + bytes(call)


# --- Block -----------------------------------------------------------------------------------


def _check_length_prefixed(xt: bytes) -> None:
    length, pos = _compact_at(xt, 0)
    if length != len(xt) - pos:
        raise CodecError(
            f"extrinsic length prefix says {length} bytes but {len(xt) - pos} bytes follow"
        )


@dataclass(frozen=True)
class Block:
    """A header and opaque extrinsics, each its full encoding including the length prefix."""

    header: Header
    extrinsics: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if type(self.extrinsics) is not tuple:
            object.__setattr__(self, "extrinsics", tuple(self.extrinsics))
        for xt in self.extrinsics:
            try:
                _check_length_prefixed(xt)
            except CodecError as exc:
                raise ValueError(f"malformed block extrinsic: {exc}") from exc

    def hash(self) -> bytes:
        return self.header.hash()

    def encode(self) -> bytes:
        return b"".join(
            (self.header.encode(), encode_compact(len(self.extrinsics)), *self.extrinsics)
        )

    @classmethod
    def decode(cls, data: bytes) -> Block:
        d = Decoder(bytes(data))
        block = cls.decode_from(d)
        if d.remaining():
            raise CodecError(f"{d.remaining()} trailing bytes after block")
        return block

    @classmethod
    def decode_from(cls, d: Decoder) -> Block:
        """The block at the decoder's position, which may be followed by more (a block with
        its justifications, as in an export stream)."""
        data = d.data
        header = Header.decode_from(d)
        count = d.compact()
        if count > d.remaining():
            raise CodecError(f"block claims {count} extrinsics, only {d.remaining()} bytes left")
        extrinsics = []
        pos = d.pos
        for _ in range(count):
            length, body = _compact_at(data, pos)
            end = body + length
            if end > len(data):
                raise CodecError("truncated block: extrinsic runs past the end")
            extrinsics.append(data[pos:end])
            pos = end
        d.pos = pos
        return cls(header, tuple(extrinsics))

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header.to_json(), "extrinsics": [_hex(x) for x in self.extrinsics]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Block:
        try:
            header = Header.from_json(obj["header"])
            raw = obj["extrinsics"]
        except (KeyError, TypeError) as exc:
            raise CodecError(f"block JSON: missing or malformed field {exc}") from exc
        if not isinstance(raw, list):
            raise CodecError("block JSON: extrinsics must be a list")
        extrinsics = tuple(parse_hex(x, "extrinsic") for x in raw)
        for xt in extrinsics:
            _check_length_prefixed(xt)
        return cls(header, extrinsics)
