"""PatternSolver: deterministic, honours the size, writes valid PNG; solver loading by name."""

from __future__ import annotations

import struct
import zlib

import pytest

from chain.taskproto import device_hash
from miner.solver import PNG_SIGNATURE, PatternSolver, Solver, SolverError, load_solver
from tests.miner.cheating import CheatingSolver, decode_rgb_png
from tests.miner.fakes import make_spec


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    assert png.startswith(PNG_SIGNATURE)
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC in {kind!r}"
        out.append((kind, data))
        pos += 12 + length
    assert pos == len(png)
    return out


def test_solve_same_spec_gives_same_bytes() -> None:
    spec = make_spec()
    assert PatternSolver().solve(spec) == PatternSolver().solve(dict(spec))


@pytest.mark.parametrize(
    "change", [{"seed": 8}, {"prompt": "a blue fox"}, {"negative_prompt": "blur"}, {"steps": 3}]
)
def test_solve_other_spec_gives_other_bytes(change: dict[str, object]) -> None:
    spec = make_spec()
    assert PatternSolver().solve(spec) != PatternSolver().solve({**spec, **change})


@pytest.mark.parametrize(("width", "height"), [(8, 8), (64, 48), (512, 256), (1024, 1024)])
def test_solve_honours_size_and_writes_valid_png(width: int, height: int) -> None:
    png = PatternSolver().solve(make_spec(width=width, height=height))
    parsed = chunks(png)
    assert parsed[0][0] == b"IHDR"
    assert parsed[-1] == (b"IEND", b"")
    w, h, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", parsed[0][1])
    assert (w, h, depth, colour, comp, filt, interlace) == (width, height, 8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(d for k, d in parsed if k == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    assert all(raw[y * (1 + 3 * width)] == 0 for y in range(height))  # filter type 0


def test_solve_draws_a_pattern_not_a_flat_image() -> None:
    _, _, rows = decode_rgb_png(PatternSolver().solve(make_spec(width=128, height=128)))
    pixels = {bytes(r[i : i + 3]) for r in rows for i in range(0, len(r), 3)}
    assert len(pixels) > 100


def test_solve_rejects_invalid_spec() -> None:
    with pytest.raises(SolverError):
        PatternSolver().solve({**make_spec(), "width": 12})
    with pytest.raises(SolverError):
        PatternSolver().solve({"prompt": "x"})


def test_fingerprint_is_strings_and_stable() -> None:
    fp = PatternSolver().fingerprint()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fp.items())
    assert {"device", "driver", "dtype"} <= set(fp)
    assert device_hash(fp) == device_hash(PatternSolver().fingerprint())


def test_load_solver_by_name() -> None:
    assert isinstance(load_solver("pattern"), PatternSolver)
    cheat = load_solver("tests.miner.cheating:CheatingSolver")
    assert isinstance(cheat, CheatingSolver)
    assert isinstance(cheat, Solver)


@pytest.mark.parametrize(
    "name", ["gpu", "no.such.module:X", "tests.miner.cheating:Nope", "json:dumps"]
)
def test_load_solver_refuses_unknown(name: str) -> None:
    with pytest.raises(SolverError):
        load_solver(name)


def test_cheating_solver_alters_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec()
    honest = PatternSolver().solve(spec)
    monkeypatch.delenv("CUCKOO_TEST_CHEAT", raising=False)
    assert CheatingSolver().solve(spec) == honest
    monkeypatch.setenv("CUCKOO_TEST_CHEAT", "1")
    altered = CheatingSolver().solve(spec)
    assert altered != honest
    assert altered.startswith(PNG_SIGNATURE)
    assert CheatingSolver().fingerprint() == PatternSolver().fingerprint()
