"""Image sketches: the format (chainclient.sketch builds it from a PNG, chain.sketch checks and
compares it), the runtime's distance rule, and its calibrated threshold against the recorded
calibration (bench/data/verification_calibration.json)."""

from __future__ import annotations

import ast
import base64
import io
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from chain import sketch
from chain.sketch import (
    DEAD_ZONE,
    DEFAULT_MAX_SKETCH_DISTANCE,
    HEADER_BYTES,
    SKETCH_MAX_BYTES,
    UNCOMPARABLE,
    is_well_formed,
    sketch_distance,
    sketch_header,
    sketches_agree,
)
from chainclient.sketch import image_sketch, sample_positions

REPO = Path(__file__).resolve().parents[2]
CALIBRATION = REPO / "bench" / "data" / "verification_calibration.json"


def _png(img: Image.Image, **save: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))


def _perturbed(img: Image.Image, amplitude: int, seed: int) -> Image.Image:
    """`img` with every value moved by a random amount in [-amplitude, amplitude] (clipped)."""
    rng = random.Random(seed)
    data = bytes(min(255, max(0, v + rng.randint(-amplitude, amplitude))) for v in img.tobytes())
    return Image.frombytes("RGB", img.size, data)


def _sketch(width: int, height: int, fill: int = 0) -> bytes:
    cols, rows = sketch.grid_shape(width, height)
    return sketch_header(width, height) + bytes([fill]) * (cols * rows * 3)


# -- format --


@pytest.mark.parametrize(("width", "height"), [(512, 512), (64, 96), (8, 8), (1024, 16), (17, 1)])
def test_sketch_layout(width: int, height: int) -> None:
    out = image_sketch(_png(_noise(width, height, 1)))
    cols, rows = min(18, width), min(18, height)
    assert out[0] == sketch.SKETCH_VERSION
    assert int.from_bytes(out[1:3], "little") == width
    assert int.from_bytes(out[3:5], "little") == height
    assert (out[5], out[6]) == (cols, rows)
    assert len(out) == HEADER_BYTES + cols * rows * 3 <= SKETCH_MAX_BYTES
    assert is_well_formed(out)


def test_sketch_is_the_sampled_pixels() -> None:
    img = _noise(100, 60, 2)
    out = image_sketch(_png(img))
    positions = sample_positions(100, 60)
    assert len(positions) == 18 * 18
    assert positions == sample_positions(100, 60)  # a function of the size alone
    assert positions != sample_positions(100, 64)
    for k, (x, y) in enumerate(positions):
        i, j = k % 18, k // 18
        assert i * 100 // 18 <= x < (i + 1) * 100 // 18  # one pixel inside each cell
        assert j * 60 // 18 <= y < (j + 1) * 60 // 18
        assert out[HEADER_BYTES + 3 * k : HEADER_BYTES + 3 * k + 3] == bytes(img.getpixel((x, y)))


def test_sketch_depends_on_pixels_not_encoding() -> None:
    img = _noise(64, 64, 3)
    base = image_sketch(_png(img, compress_level=1))
    assert image_sketch(_png(img, compress_level=9)) == base
    assert image_sketch(_png(img.convert("RGBA"))) == base  # exact mode conversions
    grey = img.convert("L")
    assert image_sketch(_png(grey)) == image_sketch(_png(grey.convert("RGB")))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
    ids=["empty", "text", "broken-png"],
)
def test_undecodable_input_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"undecodable|not a PNG"):
        image_sketch(data)


def test_truncated_and_non_png_input() -> None:
    png = _png(_noise(64, 64, 4))
    with pytest.raises(ValueError, match="undecodable"):
        image_sketch(png[: len(png) // 2])
    buf = io.BytesIO()
    _noise(64, 64, 4).save(buf, format="JPEG")
    with pytest.raises(ValueError, match="not a PNG"):
        image_sketch(buf.getvalue())


def test_oversized_image_is_refused_before_decoding() -> None:
    # 5000 x 4000 of one colour compresses to a few kB; its pixels are never decoded
    png = _png(Image.new("RGB", (5000, 4000), (9, 9, 9)))
    with pytest.raises(ValueError, match="too large"):
        image_sketch(png)


def test_malformed_sketches() -> None:
    good = _sketch(64, 64)
    assert is_well_formed(good)
    bad = [
        b"",
        good[:HEADER_BYTES],
        good[:-1],
        good + b"\0",
        bytes([2]) + good[1:],  # an unknown version
        good[:1] + (0).to_bytes(2, "little") + good[3:],  # zero width
        good[:5] + bytes([17, 18]) + good[7:],  # grid not the size's
        _sketch(1024, 1024) + bytes(SKETCH_MAX_BYTES),  # over the on-chain bound
    ]
    for b in bad:
        assert not is_well_formed(b)
        assert sketch_distance(b, good) == UNCOMPARABLE
        assert sketch_distance(good, b) == UNCOMPARABLE
    assert not is_well_formed(bytearray(good))  # type: ignore[arg-type]


def test_header_refuses_sizes_it_cannot_encode() -> None:
    for width, height in ((0, 8), (8, 0), (65536, 8)):
        with pytest.raises(ValueError, match="outside"):
            sketch_header(width, height)


# -- the distance --


def test_distance_rule() -> None:
    a = _sketch(64, 64, 100)
    n = len(a) - HEADER_BYTES
    assert sketch_distance(a, a) == 0
    assert sketch_distance(a, _sketch(64, 64, 100 + DEAD_ZONE)) == 0  # inside the dead zone
    assert sketch_distance(a, _sketch(64, 64, 105)) == (5 - DEAD_ZONE) * 1000
    assert sketch_distance(a, _sketch(64, 64, 95)) == (5 - DEAD_ZONE) * 1000
    one = bytearray(a)
    one[-1] = 100 + DEAD_ZONE + 1  # one value one level past the dead zone: rounds up
    assert sketch_distance(a, bytes(one)) == -(-1000 // n) == 2
    assert sketch_distance(_sketch(64, 64, 0), _sketch(64, 64, 255)) == (255 - DEAD_ZONE) * 1000
    assert sketch_distance(a, _sketch(64, 72, 100)) == UNCOMPARABLE  # another size
    assert UNCOMPARABLE > 0xFFFF_FFFF  # above any u32 threshold the chain spec can carry
    assert sketches_agree(a, a)
    assert not sketches_agree(a, _sketch(64, 72, 100), max_distance=0xFFFF_FFFF)


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.randoms(use_true_random=False),
)
def test_distance_is_symmetric_and_bounded(width: int, height: int, rng: random.Random) -> None:
    cols, rows = sketch.grid_shape(width, height)
    head = sketch_header(width, height)
    a = head + rng.randbytes(cols * rows * 3)
    b = head + rng.randbytes(cols * rows * 3)
    d = sketch_distance(a, b)
    assert d == sketch_distance(b, a)
    assert 0 <= d <= (255 - DEAD_ZONE) * 1000
    assert sketch_distance(a, a) == 0


def test_distance_is_fast() -> None:
    a = image_sketch(_png(_noise(512, 512, 5)))
    b = image_sketch(_png(_noise(512, 512, 6)))
    start = time.perf_counter()
    for _ in range(200):
        sketch_distance(a, b)
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} us per comparison"


def test_runtime_module_is_integer_only() -> None:
    """chain/sketch.py runs inside the runtime: no float, no true division, no imports beyond
    __future__ (so no clock, randomness, files or network)."""
    tree = ast.parse(Path(sketch.__file__).read_text())
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node.lineno
        assert not isinstance(node, ast.Div), node.lineno
        assert not (isinstance(node, ast.Name) and node.id == "float"), node.lineno
        if isinstance(node, ast.ImportFrom):
            assert node.module == "__future__", node.lineno
        assert not isinstance(node, ast.Import), node.lineno


# -- behaviour on synthetic images --


def test_small_perturbations_agree_and_other_images_do_not() -> None:
    img = _noise(128, 128, 7)
    base = image_sketch(_png(img))
    # every value moved by up to 2 levels (the rounding noise of another dtype)
    assert sketch_distance(base, image_sketch(_png(_perturbed(img, 2, 1)))) == 0
    # up to 4 levels: 2/9 of the values are 1 past the dead zone and 2/9 are 2 past it, 0.667
    # levels per value on average (less where clipping at 0 or 255 shrinks the move): far more
    # than any honest pair measured, so these do not agree
    near = sketch_distance(base, image_sketch(_png(_perturbed(img, 4, 2))))
    assert 500 < near < 720
    assert near > DEFAULT_MAX_SKETCH_DISTANCE
    # another image, and the same image at half the resolution upscaled back
    assert sketch_distance(base, image_sketch(_png(_noise(128, 128, 8)))) > 50_000
    upscaled = img.resize((64, 64), Image.Resampling.BOX).resize((128, 128))
    assert sketch_distance(base, image_sketch(_png(upscaled))) > 10 * DEFAULT_MAX_SKETCH_DISTANCE


# -- the calibration --


@pytest.fixture(scope="module")
def calibration() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CALIBRATION.read_text())
    return data


def test_calibration_matches_this_sketch_format(calibration: dict[str, Any]) -> None:
    assert calibration["sketch"] == {
        "version": sketch.SKETCH_VERSION,
        "grid": sketch.GRID,
        "values": sketch.GRID * sketch.GRID * 3,
        "dead_zone": DEAD_ZONE,
        "scale": sketch.SCALE,
    }
    assert not calibration["quick"]
    assert set(calibration["models"]) == {"tiny", "sd15"}
    assert calibration["threshold"]["chain_default"] == DEFAULT_MAX_SKETCH_DISTANCE


def test_threshold_separates_every_recorded_pair(calibration: dict[str, Any]) -> None:
    """Honest cross-class pairs never exceed the threshold; >= 99% of the fakes do, per model and
    per kind of fake."""
    for name, model in calibration["models"].items():
        honest = [d for row in model["honest"].values() for d in row["distance"]]
        assert len(honest) >= 30, name
        assert max(honest) <= DEFAULT_MAX_SKETCH_DISTANCE, name
        kinds = {
            kind: [d for ds in against.values() for d in ds]
            for kind, against in model["fakes"].items()
        }
        assert {"halfsteps", "otherseed", "othermodel", "halfres-bicubic"} <= set(kinds)
        for kind, distances in kinds.items():
            caught = sum(1 for d in distances if d > DEFAULT_MAX_SKETCH_DISTANCE)
            assert caught * 100 >= 99 * len(distances), (name, kind)


def test_recorded_boundary_sketches_recompute(calibration: dict[str, Any]) -> None:
    """The sketches nearest the decision, recorded by the calibration, give the recorded
    verdicts under this module's distance (a change of the rule shows up here)."""
    for name, model in calibration["models"].items():
        boundary = model["boundary"]
        sketches = {k: base64.b64decode(v) for k, v in boundary["sketches"].items()}
        assert all(is_well_formed(s) for s in sketches.values()), name
        for a, b in boundary["honest"]:
            assert sketches_agree(sketches[a], sketches[b]), (name, a, b)
        for a, b in boundary["fakes"]:
            assert not sketches_agree(sketches[a], sketches[b]), (name, a, b)
        assert len(boundary["honest"]) >= 10
        assert len(boundary["fakes"]) >= 10
