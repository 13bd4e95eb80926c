"""Cheating solvers for tests only (`--solver tests.miner.cheating:CheatingSolver`, ...).

`CheatingSolver` claims the pattern solver's device class but alters every image it returns
(one pixel of the pattern changes), so its result hash differs from an honest miner's on the
same spec. The role-aware solvers (`StrategicCheatingSolver`, `LazyCheckerSolver`,
`LyingCheckerSolver`) tell the tasks they are assigned from the tasks they are drawn to check
(`mark_checks`) and cheat in only one of the two roles. Every solver here cheats only when
CUCKOO_TEST_CHEAT=1 is set in its environment, so a forgotten flag in a test shows up as an
honest miner rather than a silent pass.
"""

from __future__ import annotations

import inspect
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


# ---- solvers that know whether they solve their own task or a check ---------------------------

CHECK_MARK = "_cuckoo_test_check"  # a key the check watcher adds to the specs it solves


def mark_checks() -> None:
    """Make the miner daemon's check watcher (`miner.checker.CheckWatcher`) hand a role-aware
    solver the specs of the tasks it checks with CHECK_MARK set, so that the solver can act
    differently as a checker than as a task's miner (the daemon calls one `solve(spec)` for
    both). Watchers of other solvers are left alone. Idempotent; the daemon builds its watcher
    after it loaded the solver, so calling this from the solver's constructor is enough."""
    from miner import checker

    watcher = checker.CheckWatcher
    if getattr(watcher, "_test_marks_checks", False):
        return
    signature = inspect.signature(watcher.__init__)
    if "solve" not in signature.parameters:
        raise TypeError("CheckWatcher.__init__ no longer takes `solve`: update mark_checks()")
    original = watcher.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        solve = bound.arguments["solve"]
        # the daemon passes its service's bound `_solve_spec`, which runs the service's solver
        solver = getattr(getattr(solve, "__self__", None), "_solver", None)
        if isinstance(solver, _RoleAwareSolver):

            async def solve_check(spec: dict[str, Any]) -> bytes:
                return bytes(await solve({**spec, CHECK_MARK: True}))

            bound.arguments["solve"] = solve_check
        original(*bound.args, **bound.kwargs)

    watcher.__init__ = init  # type: ignore[method-assign]
    watcher._test_marks_checks = True  # type: ignore[attr-defined]


def altered(png: bytes) -> bytes:
    """The pattern image with one pixel changed: another hash, perceptually the same image."""
    width, height, rows = decode_rgb_png(png)
    rows[0][0] ^= 0xFF
    return encode_png(width, height, [bytes(r) for r in rows])


def constant_png(spec: dict[str, Any]) -> bytes:
    """A flat grey image of the spec's size: a guess that costs nothing to make."""
    width, height = int(spec["width"]), int(spec["height"])
    return encode_png(width, height, [bytes([128]) * (3 * width)] * height)


class _RoleAwareSolver(PatternSolver):
    """The pattern solver, with `own(spec)` for the tasks it is assigned and `check(spec)` for
    the tasks it is drawn to check (see `mark_checks`). Cheats only with CUCKOO_TEST_CHEAT=1."""

    def __init__(self) -> None:
        mark_checks()

    def solve(self, spec: dict[str, Any]) -> bytes:
        spec = dict(spec)
        checking = bool(spec.pop(CHECK_MARK, False))
        if os.environ.get("CUCKOO_TEST_CHEAT") != "1":
            return super().solve(spec)
        return self.check(spec) if checking else self.own(spec)

    def own(self, spec: dict[str, Any]) -> bytes:
        return super().solve(spec)

    def check(self, spec: dict[str, Any]) -> bytes:
        return super().solve(spec)


class StrategicCheatingSolver(_RoleAwareSolver):
    """Fakes every result of its own (one altered pixel) and re-runs the tasks it checks
    honestly: a wrong check always loses (any disagreement goes to three more checkers), so a
    cheater that wants rewards checks honestly and fakes only its own work."""

    def own(self, spec: dict[str, Any]) -> bytes:
        return altered(super().own(spec))


class LazyCheckerSolver(_RoleAwareSolver):
    """Computes its own tasks honestly, but answers every check with a flat grey image instead
    of re-running the task (a checker that wants the checker's work unit for free)."""

    def check(self, spec: dict[str, Any]) -> bytes:
        return constant_png(spec)


class LyingCheckerSolver(_RoleAwareSolver):
    """Computes its own tasks honestly and re-runs the tasks it checks, but alters the image it
    commits to as a checker: a sybil checker voting against the miner it checks."""

    def check(self, spec: dict[str, Any]) -> bytes:
        return altered(super().check(spec))


class CheapFakeDiffusersSolver:
    """The diffusers engine, faking every image the cheap way named by CUCKOO_TEST_FAKE:
    `halfsteps` (half the denoising steps), `otherseed` (another seed: any cached image) or
    `upscale` (a half-size image upscaled to the asked size, bicubic). Settings and fingerprint
    as `CheatingDiffusersSolver`. Cheats only with CUCKOO_TEST_CHEAT=1."""

    def __init__(self) -> None:
        from miner.engine.diffusers_solver import DiffusersSolver

        self._engine = DiffusersSolver()
        self.kind = os.environ.get("CUCKOO_TEST_FAKE", "halfsteps")
        if self.kind not in ("halfsteps", "otherseed", "upscale"):
            raise ValueError(f"unknown CUCKOO_TEST_FAKE {self.kind!r}")

    def fingerprint(self) -> dict[str, str]:
        return self._engine.fingerprint()

    def solve(self, spec: dict[str, Any]) -> bytes:
        if os.environ.get("CUCKOO_TEST_CHEAT") != "1":
            return self._engine.solve(spec)
        if self.kind == "halfsteps":
            return self._engine.solve(dict(spec, steps=max(1, spec["steps"] // 2)))
        if self.kind == "otherseed":
            return self._engine.solve(dict(spec, seed=(spec["seed"] + 1) % 2**63))
        import io

        from PIL import Image

        small = self._engine.solve(
            dict(spec, width=max(8, spec["width"] // 2), height=max(8, spec["height"] // 2))
        )
        with Image.open(io.BytesIO(small)) as im:
            big = im.convert("RGB").resize(
                (spec["width"], spec["height"]), Image.Resampling.BICUBIC
            )
            out = io.BytesIO()
            big.save(out, format="PNG")
        return out.getvalue()
