"""The diffusers engine on the CPU: deterministic PNG bytes (in one process and across
processes), the spec's fields honoured, batching, out-of-memory handling, the fingerprint."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from chain.taskproto import device_hash
from miner.solver import PNG_SIGNATURE, Solver, SolverError
from tests.miner_engine.conftest import make_spec, needs_engine

pytestmark = [*needs_engine]
REPO = Path(__file__).resolve().parents[2]


def _image(png: bytes) -> Any:
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    img.load()
    return img


class Recorder:
    """Wraps the engine's pipeline and records the arguments of each call."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.pipeline(**kwargs)


@pytest.fixture
def recorder(solver: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(solver.pipeline)
    monkeypatch.setattr(solver, "pipeline", rec)
    return rec


def test_is_a_solver(solver: Any) -> None:
    assert isinstance(solver, Solver)
    assert solver.device == "cpu"
    assert solver.dtype_name == "float32"


def test_same_seed_same_png(solver: Any) -> None:
    spec = make_spec()
    first = solver.solve(spec)
    assert first.startswith(PNG_SIGNATURE)
    assert solver.solve(dict(spec)) == first
    img = _image(first)
    assert img.mode == "RGB"
    assert img.info == {}  # no metadata, no timestamps


def test_different_seed_or_prompt_differs(solver: Any) -> None:
    base = solver.solve(make_spec())
    assert solver.solve(make_spec(seed=1235)) != base
    assert solver.solve(make_spec(prompt="a lighthouse at dawn")) != base


@pytest.mark.parametrize(("width", "height"), [(64, 64), (32, 48)])
def test_size_is_honoured(solver: Any, width: int, height: int) -> None:
    assert _image(solver.solve(make_spec(width=width, height=height))).size == (width, height)


def test_fields_reach_the_pipeline(solver: Any, recorder: Recorder) -> None:
    solver.solve(
        make_spec(
            width=32, height=48, steps=3, seed=77, guidance_scale="4.5", negative_prompt="fog"
        )
    )
    (call,) = recorder.calls
    assert (call["width"], call["height"]) == (32, 48)
    assert call["num_inference_steps"] == 3
    assert call["guidance_scale"] == 4.5
    assert call["negative_prompt"] == ["fog"]
    assert call["prompt"] == ["a lighthouse at dusk"]
    (gen,) = call["generator"]
    assert gen.device.type == "cpu"
    assert gen.initial_seed() == 77
    solver.solve(make_spec())
    assert recorder.calls[1]["negative_prompt"] is None  # "" means none, as in a plain call


def test_guidance_steps_and_negative_prompt_change_the_image(solver: Any) -> None:
    cfg = make_spec(guidance_scale="5.0", negative_prompt="fog")
    base = solver.solve(cfg)
    assert solver.solve(make_spec(guidance_scale="5.0", negative_prompt="rain")) != base
    assert solver.solve(make_spec(guidance_scale="2.0", negative_prompt="fog")) != base
    assert solver.solve(make_spec(steps=1)) != solver.solve(make_spec(steps=3))


@pytest.mark.parametrize(
    "bad",
    [
        {"guidance_scale": "lots"},
        {"guidance_scale": "-1"},
        {"guidance_scale": "NaN"},
        {"width": 60},
        {"steps": 0},
        {"seed": "1"},
    ],
)
def test_invalid_spec(solver: Any, bad: dict[str, Any]) -> None:
    with pytest.raises(SolverError) as info:
        solver.solve(make_spec(**bad))
    assert "\n" not in str(info.value)


def test_solve_batch_on_cpu_equals_single_solves(solver: Any, recorder: Recorder) -> None:
    specs = [make_spec(seed=s) for s in (5, 6)] + [make_spec(width=32, height=48, seed=7)]
    out = solver.solve_batch(specs)
    assert len(recorder.calls) == 3  # max_batch 1 on the CPU: one call per spec
    assert out == [solver.solve(spec) for spec in specs]


def test_solve_batch_groups_like_a_gpu(
    solver: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(solver, "max_batch", 4)
    specs = [
        make_spec(seed=1),
        make_spec(width=32, height=48, seed=2),
        make_spec(seed=3, prompt="a ship"),
        make_spec(seed=4, guidance_scale="3.0", negative_prompt="fog"),
        make_spec(seed=5),
    ]
    out = solver.solve_batch(specs)
    assert [len(c["prompt"]) for c in recorder.calls] == [3, 1, 1]
    first = recorder.calls[0]
    assert [g.initial_seed() for g in first["generator"]] == [1, 3, 5]  # one generator per item
    assert first["prompt"] == ["a lighthouse at dusk", "a ship", "a lighthouse at dusk"]
    assert [_image(png).size for png in out] == [(32, 32), (32, 48), (32, 32), (32, 32), (32, 32)]
    # each item is its own seed's image (equal up to low bits to a single run)
    assert out[0] != out[4]
    assert len(set(out)) == 5


def test_oom_raises_engine_oom(solver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from miner.engine import EngineError, EngineOOM

    def boom(**kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")

    expected = solver.solve(make_spec())
    monkeypatch.setattr(solver, "pipeline", boom)
    with pytest.raises(EngineOOM) as info:
        solver.solve(make_spec())
    assert isinstance(info.value, EngineError)
    assert isinstance(info.value, SolverError)
    assert "\n" not in str(info.value)
    with pytest.raises(EngineOOM):
        solver.solve_batch([make_spec(), make_spec(seed=2)])
    monkeypatch.undo()
    assert solver.solve(make_spec()) == expected  # the engine keeps working


def test_batch_that_does_not_fit_is_split(
    solver: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    inner = recorder.pipeline

    def tight(**kwargs: Any) -> Any:
        if len(kwargs["prompt"]) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return inner(**kwargs)

    recorder.pipeline = tight
    monkeypatch.setattr(solver, "max_batch", 4)
    specs = [make_spec(seed=s) for s in (11, 12, 13)]
    out = solver.solve_batch(specs)
    assert [len(c["prompt"]) for c in recorder.calls] == [3, 1, 2, 1, 1]
    monkeypatch.setattr(solver, "pipeline", inner)
    assert out == [solver.solve(spec) for spec in specs]


def test_fingerprint(solver: Any, tiny_model: Path) -> None:
    import diffusers
    import torch
    import transformers

    from miner.engine.fingerprint import model_hash

    fp = solver.fingerprint()
    assert fp == solver.fingerprint()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fp.items())
    assert fp["driver"] == "cpu"
    assert fp["device"].startswith("cpu ")
    assert f"{torch.get_num_threads()} threads" in fp["device"]
    assert fp["dtype"] == "float32"
    assert fp["torch"] == torch.__version__
    assert fp["diffusers"] == diffusers.__version__
    assert fp["transformers"] == transformers.__version__
    assert fp["model"] == "tiny"
    assert fp["model_hash"] == model_hash(tiny_model)
    assert device_hash(fp) == device_hash(solver.fingerprint())
    fp["dtype"] = "mutated"  # a copy: callers cannot change the engine's fingerprint
    assert solver.fingerprint()["dtype"] == "float32"


def test_model_hash_tracks_configs_and_weights(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from miner.engine.fingerprint import model_hash

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert model_hash(copy) == model_hash(tiny_model)  # the folder's name or place is not hashed
    (copy / ".cache").mkdir()  # hidden files (hub caches, build markers) are not either
    (copy / ".cache" / "x").write_text("x")
    assert model_hash(copy) == model_hash(tiny_model)
    config = copy / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"trailing"', '"leading"'))
    changed = model_hash(copy)
    assert changed != model_hash(tiny_model)
    with open(copy / "unet" / "diffusion_pytorch_model.safetensors", "ab") as fh:
        fh.write(b"\0")
    assert model_hash(copy) != changed


CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, warnings
    from pathlib import Path
    warnings.simplefilter("ignore")
    from miner.engine import DiffusersSolver
    spec = json.loads(sys.argv[2])
    engine = DiffusersSolver("tiny", "cpu", Path(sys.argv[1]), progress=False)
    print("PNG", hashlib.sha256(engine.solve(spec)).hexdigest(), flush=True)
    """
)


@pytest.mark.slow
def test_same_bytes_across_processes(solver: Any, engine_data: Path) -> None:
    """Two fresh processes (different hash seeds) give the very bytes this process gives."""
    import hashlib
    import json

    spec = make_spec(seed=4242, guidance_scale="3.5", negative_prompt="fog", width=32, height=48)
    here = hashlib.sha256(solver.solve(spec)).hexdigest()
    children = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, HF_HUB_OFFLINE="1")
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(engine_data), json.dumps(spec)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    digests = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err[-2000:]
        (line,) = [x for x in out.splitlines() if x.startswith("PNG ")]
        digests.append(line.split()[1])
    assert digests == [here, here]
