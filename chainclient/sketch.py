"""`image_sketch(png)`: the small summary of an image that a miner and a checker reveal on chain,
compared by the runtime when their device classes differ (`chain.sketch`, whose docstring gives
the format and the reasons for it).

The sketch holds the exact R, G, B values of one pixel in each cell of an 18 x 18 grid over the
image, at positions drawn from SHAKE-256 of the image size (so every machine picks the same
pixels, and the pixels are not on a lattice aligned with the 8-pixel blocks of a VAE). Decoding
is Pillow's PNG decoder (lossless, so the pixels are the PNG's on every machine) and everything
after it is integer indexing: the same PNG bytes give the same sketch everywhere. Miners and
checkers compute it from the PNG they produce, the coordinator recomputes it from the PNG it is
delivered.
"""

from __future__ import annotations

import hashlib
import io

from chain.sketch import CHANNELS, SKETCH_MAX_BYTES, SKETCH_VERSION, grid_shape, sketch_header

POSITIONS_DOMAIN = b"cuckoo/sketch/v1/positions"
MAX_PIXELS = 1 << 24  # 4096 x 4096; larger images are refused before their pixels are decoded


class SketchError(ValueError):
    """The bytes are not a PNG image that can be sketched."""


def sample_positions(width: int, height: int) -> list[tuple[int, int]]:
    """The (x, y) pixel sampled in each grid cell, row by row: cell (i, j) spans columns
    [i*W/cols, (i+1)*W/cols) and rows [j*H/rows, (j+1)*H/rows) (integer division), and the
    pixel's offsets in it come from SHAKE-256 of the domain and the size."""
    cols, rows = grid_shape(width, height)
    stream = hashlib.shake_256(
        POSITIONS_DOMAIN + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    ).digest(4 * cols * rows)
    out = []
    for j in range(rows):
        y0, y1 = j * height // rows, (j + 1) * height // rows
        for i in range(cols):
            x0, x1 = i * width // cols, (i + 1) * width // cols
            k = 4 * (j * cols + i)
            dx = int.from_bytes(stream[k : k + 2], "little") % (x1 - x0)
            dy = int.from_bytes(stream[k + 2 : k + 4], "little") % (y1 - y0)
            out.append((x0 + dx, y0 + dy))
    return out


def image_sketch(png: bytes) -> bytes:
    """The version-1 sketch of a PNG image (at most `chain.sketch.SKETCH_MAX_BYTES` bytes).
    ValueError when `png` is not a decodable PNG, or is larger than MAX_PIXELS pixels or
    65535 pixels on a side."""
    from PIL import Image  # Pillow: a dependency of the chain client's users (the daemons)

    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.format != "PNG":
                raise SketchError(f"not a PNG image ({img.format})")
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise SketchError(f"image of {width}x{height} pixels is too large to sketch")
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            header = sketch_header(width, height)
            pixels = rgb.load()
            if pixels is None:  # pragma: no cover - load() of a decoded image returns access
                raise SketchError("no pixel access")
            out = bytearray(header)
            for x, y in sample_positions(width, height):
                value = pixels[x, y]
                if not (isinstance(value, tuple) and len(value) == CHANNELS):
                    raise SketchError(f"pixel ({x}, {y}) is {value!r}, not an RGB triple")
                out += bytes(value)
    except SketchError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, EOFError, zlib errors, ...
        raise SketchError(f"undecodable image: {type(exc).__name__}: {exc}") from exc
    if out[0] != SKETCH_VERSION or len(out) > SKETCH_MAX_BYTES:  # pragma: no cover - by design
        raise AssertionError("sketch layout")
    return bytes(out)
