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


def test_cuda_and_cpu_sketches_agree(gpu_solver, solver) -> None:  # type: ignore[no-untyped-def]
    """GPU float16 and CPU float32 are two device classes whose honest results must agree by
    sketch (chain/sketch.py), while half the steps must not; the distances are printed (the
    CPU-only calibration could not measure this pair)."""
    from chain.sketch import DEFAULT_MAX_SKETCH_DISTANCE, sketch_distance
    from chain.taskproto import device_hash
    from chainclient.sketch import image_sketch

    assert gpu_solver.fingerprint()["cpu_capability"] == solver.fingerprint()["cpu_capability"]
    assert device_hash(gpu_solver.fingerprint()) != device_hash(solver.fingerprint())
    honest, fakes = [], []
    for seed in range(6):
        spec = make_spec(width=64, height=64, steps=4, seed=seed)
        gpu = image_sketch(gpu_solver.solve(spec))
        honest.append(sketch_distance(gpu, image_sketch(solver.solve(spec))))
        fakes.append(sketch_distance(gpu, image_sketch(solver.solve(dict(spec, steps=2)))))
    print(f"cuda fp16 vs cpu fp32: honest {honest}, half steps {fakes}")
    assert max(honest) <= DEFAULT_MAX_SKETCH_DISTANCE
    assert min(fakes) > DEFAULT_MAX_SKETCH_DISTANCE
