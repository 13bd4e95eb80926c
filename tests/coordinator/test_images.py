"""Image checks of a delivery, and the (stand-in) image sketch a delivery must carry."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chainclient.sketch import SketchError, image_sketch
from coordinator.images import is_png, png_size
from coordinator.testing import make_png


def test_png_size_reads_valid_pngs_only() -> None:
    assert png_size(make_png(16, 8)) == (16, 8)
    assert is_png(make_png(8, 8))
    assert png_size(b"not a png") is None
    assert png_size(make_png(8, 8)[:30]) is None
    assert png_size(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40) is None
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="GIF")
    assert png_size(out.getvalue()) is None


def test_image_sketch_is_deterministic_and_tells_images_apart() -> None:
    a, b = make_png(64, 64, seed=0), make_png(64, 64, seed=1)
    assert image_sketch(a) == image_sketch(make_png(64, 64, seed=0))
    assert len(image_sketch(a)) == 7 + 18 * 18 * 3  # chain/sketch.py's layout
    assert image_sketch(a) != image_sketch(b)
    with pytest.raises(SketchError):
        image_sketch(b"not an image")
