"""Solvers turn a task spec into PNG bytes.

A `Solver` is deterministic per device class: the same spec on the same class (the
`fingerprint()`: device, driver, library versions, dtype) gives the same bytes, so coordinators
can compare audited results by hash. `PatternSolver` is a small CPU solver (no model): it draws
a smooth colour field derived from blake2 of the spec and encodes it as PNG with zlib, which makes
its output the same on every machine with the same zlib. The diffusers engine is another Solver.

`load_solver("pattern")` or `load_solver("package.module:Class")` picks one by name.
"""

from __future__ import annotations

import hashlib
import importlib
import struct
import zlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from chain.taskproto import canonical_json, validate_spec
from miner import MinerError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PATTERN_VERSION = "1"
ZLIB_LEVEL = 6
BLOCK = 8  # pattern cells are BLOCK x BLOCK pixels (sizes are multiples of 8)


class SolverError(MinerError):
    """A solver could not be loaded or could not solve a spec."""


@runtime_checkable
class Solver(Protocol):
    def fingerprint(self) -> dict[str, str]:
        """The device class: device name, driver, library versions, dtype (strings only)."""
        ...

    def solve(self, spec: dict[str, Any]) -> bytes:
        """PNG bytes for a validated spec; deterministic for the same spec and device class.
        Blocking (called from a worker thread)."""
        ...


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG from `height` rows of `3 * width` bytes (filter 0, one IDAT)."""
    if len(rows) != height or any(len(r) != 3 * width for r in rows):
        raise SolverError("rows do not match the image size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, ZLIB_LEVEL))
        + chunk(b"IEND", b"")
    )


def _stream(key: bytes, label: bytes, n: int) -> bytes:
    """`n` pseudo-random bytes: blake2b(key, label || counter) blocks."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(label + counter.to_bytes(4, "little"), key=key).digest()
        counter += 1
    return bytes(out[:n])


def _walk(steps: bytes, start: int) -> bytes:
    """A smooth byte sequence: a random walk with steps in -2..2 (mod 256)."""
    out = bytearray(len(steps))
    value = start
    for i, s in enumerate(steps):
        value = (value + s % 5 - 2) & 0xFF
        out[i] = value
    return bytes(out)


def _blocks(values: bytes) -> bytes:
    return bytes(v for v in values for _ in range(BLOCK))


_SHIFT_TABLES = [bytes((i + k) & 0xFF for i in range(256)) for k in range(256)]


class PatternSolver:
    """A deterministic CPU solver: pixel (x, y) of channel c is col_c[x] + line_c[y] (mod 256),
    where both are random walks over 8-pixel cells seeded by blake2b of the canonical spec
    (prompt, seed, model, steps, ... and the size)."""

    def fingerprint(self) -> dict[str, str]:
        return {
            "device": "cpu",
            "driver": "none",
            "solver": f"pattern/{PATTERN_VERSION}",
            "zlib": zlib.ZLIB_RUNTIME_VERSION,
            "dtype": "uint8",
        }

    def solve(self, spec: dict[str, Any]) -> bytes:
        try:
            validate_spec(spec)
        except Exception as exc:
            raise SolverError(f"invalid spec: {exc}") from exc
        width, height = int(spec["width"]), int(spec["height"])
        key = hashlib.blake2b(canonical_json(_pattern_input(spec)), digest_size=32).digest()
        cols = [_blocks(_walk(_stream(key, b"x%d" % c, width // BLOCK), key[c])) for c in range(3)]
        lines = [
            _blocks(_walk(_stream(key, b"y%d" % c, height // BLOCK), key[3 + c])) for c in range(3)
        ]
        rows: list[bytes] = []
        row = bytearray(3 * width)
        for y in range(height):
            for c in range(3):
                row[c::3] = cols[c].translate(_SHIFT_TABLES[lines[c][y]])
            rows.append(bytes(row))
        return encode_png(width, height, rows)


def _pattern_input(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": PATTERN_VERSION, **spec}


def load_solver(name: str) -> Solver:
    """`pattern`, or `module:Class` (a class with no required arguments)."""
    if name == "pattern":
        return PatternSolver()
    if ":" not in name:
        raise SolverError(f"unknown solver {name!r}: use 'pattern' or 'package.module:Class'")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
        solver = factory()
    except Exception as exc:  # import errors, missing attributes, constructor failures
        raise SolverError(f"cannot load solver {name!r}: {exc}") from exc
    if not isinstance(solver, Solver):
        raise SolverError(f"{name!r} is not a Solver (needs fingerprint() and solve(spec))")
    return solver
