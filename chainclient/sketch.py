"""`image_sketch(png)`: a small deterministic digest of an image's decoded pixels, committed with
every result (docs/verification.md) so that checkers on another device class can compare images
by similarity rather than by bytes.

STAND-IN: the real sketch (and its distance, `chain/sketch.py`) is written separately and
replaces this module when merged; this one keeps the same name and signature: the image, decoded,
in greyscale, reduced to 16 x 16 pixels (box filter), one byte per pixel.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

SKETCH_SIDE = 16
MAX_PIXELS = 4096 * 4096


class SketchError(ValueError):
    """The bytes are not an image that can be decoded."""


def image_sketch(png: bytes) -> bytes:
    """SKETCH_SIDE ** 2 bytes: the greyscale image reduced to SKETCH_SIDE x SKETCH_SIDE.
    Raises SketchError when `png` cannot be decoded."""
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as img:
            if img.width * img.height > MAX_PIXELS:
                raise SketchError("image too large")
            grey = img.convert("L").resize((SKETCH_SIDE, SKETCH_SIDE), Image.Resampling.BOX)
            return grey.tobytes()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SketchError(f"cannot decode image: {exc}") from exc
