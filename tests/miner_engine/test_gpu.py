"""CUDA checks (run with `pytest -m gpu` on a machine with a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.miner_engine.conftest import make_spec, needs_engine

pytestmark = [*needs_engine, pytest.mark.gpu]


@pytest.fixture(scope="module")
def gpu_solver(engine_data: Path):  # type: ignore[no-untyped-def]
    import torch

    from miner.engine import DiffusersSolver

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    engine = DiffusersSolver("tiny", "auto", engine_data, progress=False)
    yield engine
    engine.close()


def test_cuda_fp16_deterministic(gpu_solver) -> None:  # type: ignore[no-untyped-def]
    assert gpu_solver.device.startswith("cuda")
    assert gpu_solver.dtype_name == "float16"
    fp = gpu_solver.fingerprint()
    assert fp["device"].startswith("cuda ")
    assert fp["driver"].startswith("cuda ")
    spec = make_spec(width=64, height=64, steps=2)
    png = gpu_solver.solve(spec)
    assert gpu_solver.solve(spec) == png
    assert gpu_solver.solve(make_spec(seed=1)) != png


def test_cuda_batch(gpu_solver) -> None:  # type: ignore[no-untyped-def]
    specs = [make_spec(seed=s) for s in range(4)] + [make_spec(width=32, height=48, seed=9)]
    out = gpu_solver.solve_batch(specs)
    assert len(out) == 5
    assert len(set(out)) == 5
    assert out == gpu_solver.solve_batch(specs)  # the same batch again: the same bytes
