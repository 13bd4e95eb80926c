"""Image sketches and the rule by which the chain compares them (docs/verification.md section 7).

When a miner and a checker ran a task on different device classes (different `device_hash`),
their PNG bytes differ even when both are honest (another dtype, CPU kernel set, GPU or driver
changes low bits of many pixels), so the runtime compares their *sketches* instead:
`sketch_distance(miner, checker) <= MaxSketchDistance` means they agree.

A sketch (built from the PNG by `chainclient.sketch.image_sketch`, checked here) is

    version u8 (= SKETCH_VERSION) ++ width u16 LE ++ height u16 LE ++ cols u8 ++ rows u8
    ++ rows x cols x 3 bytes: the full-resolution R, G, B values of one pixel per grid cell

with `cols = min(GRID, width)`, `rows = min(GRID, height)`: the image is cut into a cols x rows
grid and one pixel is sampled in each cell, at a position that depends only on the image size.
At most 7 + 18 x 18 x 3 = 979 bytes.

Why full-resolution pixels and not a downsampled image: the calibration
(bench/verification_calibration.py, bench/data/verification_calibration.json) found that honest
cross-class pairs (fp32 vs bf16 vs fp16, CPU kernel sets) differ by a level or two in many
pixels (bf16 against fp32: 0.7 levels on average, at most 5), and that the hardest cheap fake,
half the denoising steps, differs from the honest image by only a few levels per pixel too, at
every scale alike: averaging pixels into blocks shrinks both (SD1.5 architecture, first three
specs: mean absolute difference 0.69 honest against 1.16 for half steps per pixel, 0.17 against
0.29 in 4x4 blocks of the image) while the full-resolution pixels keep them furthest apart. The
other fakes (another seed or model, a smaller image upscaled) differ by about 40 levels per pixel
and are caught by any rule.

The distance ignores a difference of up to DEAD_ZONE levels per value (what rounding two nearly
equal floats to 8 bits gives): it is the mean over the sampled values of
max(|a - b| - DEAD_ZONE, 0), in thousandths of a level. The dead zone is what separates the two:
by plain mean absolute difference the nearest half-step fake was 1.7x the largest honest pair (on
both models); with a dead zone of 2 levels it is 10x on the tiny model (honest at most 20, fakes
at least 209) and 6.8x on the SD1.5 architecture (14 and 95).

Pure integer arithmetic, deterministic, about 0.1 ms per comparison.
"""

from __future__ import annotations

SKETCH_VERSION = 1
GRID = 18  # cells per side (fewer when the image is narrower than that in pixels)
HEADER_BYTES = 7
CHANNELS = 3
SKETCH_MAX_BYTES = 1024  # the on-chain bound of a revealed sketch
DEAD_ZONE = 2  # levels (of 255) of difference per value that count as nothing
SCALE = 1000  # distances are in thousandths of a level per sampled value
UNCOMPARABLE = 1 << 32  # malformed or mismatched sketches: above any u32 threshold
# The calibrated agreement threshold (the chain spec's verification.maxSketchDistance, a u32):
# half the smallest distance of any measured cheap fake (95: SD1.5 at half its 8 steps), 2.3 times
# the largest measured honest cross-class distance (20: tiny model, bf16 vs fp32); see
# bench/data/verification_calibration.json.
DEFAULT_MAX_SKETCH_DISTANCE = 47


def grid_shape(width: int, height: int) -> tuple[int, int]:
    """(cols, rows) of the sampling grid for an image of this size."""
    return min(GRID, width), min(GRID, height)


def sketch_header(width: int, height: int) -> bytes:
    """The header of a sketch of a `width` x `height` image; ValueError for a size a sketch
    cannot describe."""
    if not (1 <= width <= 0xFFFF and 1 <= height <= 0xFFFF):
        raise ValueError(f"image size {width}x{height} is outside 1..65535 per side")
    cols, rows = grid_shape(width, height)
    return (
        bytes([SKETCH_VERSION])
        + width.to_bytes(2, "little")
        + height.to_bytes(2, "little")
        + bytes([cols, rows])
    )


def is_well_formed(sketch: bytes) -> bool:
    """Whether `sketch` is a version-1 sketch whose header and length agree."""
    if not isinstance(sketch, bytes) or len(sketch) < HEADER_BYTES:
        return False
    if len(sketch) > SKETCH_MAX_BYTES or sketch[0] != SKETCH_VERSION:
        return False
    width = int.from_bytes(sketch[1:3], "little")
    height = int.from_bytes(sketch[3:5], "little")
    if width == 0 or height == 0 or sketch[5:7] != bytes(grid_shape(width, height)):
        return False
    return len(sketch) == HEADER_BYTES + sketch[5] * sketch[6] * CHANNELS


def sketch_distance(a: bytes, b: bytes) -> int:
    """How far apart two sketches are: the mean over the sampled values of
    max(|a - b| - DEAD_ZONE, 0), in thousandths of a level, rounded up. UNCOMPARABLE when
    either is malformed or they describe images of different sizes."""
    if not (is_well_formed(a) and is_well_formed(b)) or a[:HEADER_BYTES] != b[:HEADER_BYTES]:
        return UNCOMPARABLE
    total = 0
    for x, y in zip(a[HEADER_BYTES:], b[HEADER_BYTES:], strict=True):
        d = x - y if x > y else y - x
        if d > DEAD_ZONE:
            total += d - DEAD_ZONE
    count = len(a) - HEADER_BYTES
    return (total * SCALE + count - 1) // count


def sketches_agree(a: bytes, b: bytes, max_distance: int = DEFAULT_MAX_SKETCH_DISTANCE) -> bool:
    """The runtime's rule: two sketches agree iff their distance is at most `max_distance`."""
    return sketch_distance(a, b) <= max_distance
