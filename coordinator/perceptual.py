"""Image checks: is it a PNG, and its 64-bit difference hash (dHash) for perceptual comparison."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 4096 * 4096


def is_png(data: bytes) -> bool:
    """A PNG whose header and chunk structure Pillow accepts (no full decode)."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    try:
        with PngImagePlugin.PngImageFile(io.BytesIO(data)) as img:  # no format probing
            if img.width * img.height > MAX_PIXELS:
                return False
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def dhash(data: bytes, size: int = 8) -> int:
    """64-bit dHash: grey, resize to 9x8, one bit per horizontal neighbour comparison.
    Raises ValueError when the image cannot be decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = img.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
            pixels = grey.tobytes()  # mode L: one byte per pixel, row by row
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from exc
    bits = 0
    for row in range(size):
        for col in range(size):
            left = pixels[row * (size + 1) + col]
            right = pixels[row * (size + 1) + col + 1]
            bits = (bits << 1) | int(left > right)
    return bits


def distance(a: bytes, b: bytes) -> int:
    """Hamming distance between the dHashes of two encoded images (0..64)."""
    return (dhash(a) ^ dhash(b)).bit_count()
