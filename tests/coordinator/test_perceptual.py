"""Perceptual comparison (dHash) and PNG checks."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from coordinator.perceptual import dhash, distance, is_png
from coordinator.testing import make_png


def _noisy(png: bytes) -> bytes:
    img = Image.open(io.BytesIO(png)).convert("RGB").filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    back = Image.open(io.BytesIO(out.getvalue()))
    out2 = io.BytesIO()
    back.save(out2, format="PNG")
    return out2.getvalue()


def _pattern(kind: int) -> bytes:
    img = Image.new("L", (128, 128))
    px = img.load()
    assert px is not None
    for y in range(128):
        for x in range(128):
            px[x, y] = (
                ((x // 16 + y // 16) % 2) * 255
                if kind == 0
                else (x * 2 if (y // 8) % 2 else 255 - x * 2)
            )
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_same_image_distance_zero() -> None:
    png = make_png(64, 64, seed=3)
    assert distance(png, png) == 0
    assert dhash(png) == dhash(bytes(png))


def test_slightly_altered_image_is_close() -> None:
    png = _pattern(1)
    assert distance(png, _noisy(png)) <= 10


def test_different_images_are_far() -> None:
    assert distance(_pattern(0), _pattern(1)) > 20
    assert distance(make_png(64, 64, seed=0), make_png(64, 64, seed=1)) > 20


def test_is_png() -> None:
    assert is_png(make_png(8, 8))
    assert not is_png(b"not a png")
    assert not is_png(make_png(8, 8)[:30])
    assert not is_png(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
