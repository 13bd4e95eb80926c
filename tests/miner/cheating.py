"""A cheating solver for tests only (`--solver tests.miner.cheating:CheatingSolver`).

It claims the pattern solver's device class but alters every image it returns (one pixel of
the pattern changes), so its result hash differs from an honest miner's on the same spec. It
cheats only when CUCKOO_TEST_CHEAT=1 is set in its environment, so a forgotten flag in a test
shows up as an honest miner rather than a silent pass.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any

from miner.solver import PatternSolver, encode_png


def decode_rgb_png(png: bytes) -> tuple[int, int, list[bytearray]]:
    """Rows of an 8-bit RGB PNG written by `encode_png` (filter 0, one IDAT)."""
    width, height = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    rows = [bytearray(raw[y * stride + 1 : (y + 1) * stride]) for y in range(height)]
    return width, height, rows


class CheatingSolver(PatternSolver):
    def solve(self, spec: dict[str, Any]) -> bytes:
        png = super().solve(spec)
        if os.environ.get("CUCKOO_TEST_CHEAT") != "1":
            return png
        width, height, rows = decode_rgb_png(png)
        rows[0][0] ^= 0xFF  # one altered pixel: a different hash, perceptually the same image
        return encode_png(width, height, [bytes(r) for r in rows])


class CheatingDiffusersSolver:
    """The diffusers engine, wrapped to alter its images (`--solver
    tests.miner.cheating:CheatingDiffusersSolver`; settings from CUCKOO_MINER_MODEL,
    CUCKOO_MINER_DEVICE, CUCKOO_MINER_DATA). Its fingerprint is the engine's own, so honest miners
    on the same device class expect the same bytes. Cheats only with CUCKOO_TEST_CHEAT=1."""

    def __init__(self) -> None:
        from miner.engine.diffusers_solver import DiffusersSolver

        self._engine = DiffusersSolver()

    def fingerprint(self) -> dict[str, str]:
        return self._engine.fingerprint()

    def solve(self, spec: dict[str, Any]) -> bytes:
        png = self._engine.solve(spec)
        if os.environ.get("CUCKOO_TEST_CHEAT") != "1":
            return png
        import io

        from PIL import Image

        with Image.open(io.BytesIO(png)) as im:
            im = im.convert("RGB")
            r, g, b = im.getpixel((0, 0))  # type: ignore[misc]
            im.putpixel((0, 0), ((r + 128) % 256, g, b))
            out = io.BytesIO()
            im.save(out, format="PNG", compress_level=1)
        return out.getvalue()
