"""Image checks of a delivery: is it a PNG, and of what size (no full decode)."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 4096 * 4096


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG whose header and chunk structure Pillow accepts; None for
    anything else."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    try:
        with PngImagePlugin.PngImageFile(io.BytesIO(data)) as img:  # no format probing
            if img.width * img.height > MAX_PIXELS:
                return None
            size = (img.width, img.height)
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return size


def is_png(data: bytes) -> bool:
    return png_size(data) is not None
