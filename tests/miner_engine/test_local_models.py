"""Loading a local folder by path: the SD and SDXL families are picked from model_index.json and
load offline through `from_pretrained(..., local_files_only=True)`; fp16 variants load."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from miner.solver import SolverError, load_solver
from tests.miner_engine.conftest import make_spec, needs_engine

pytestmark = [*needs_engine]


def _size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    size: tuple[int, int] = Image.open(io.BytesIO(png)).size
    return size


def test_sd_folder_by_path(tiny_model: Path, solver: Any, tmp_path: Path) -> None:
    from miner.engine import DiffusersSolver

    copy = tmp_path / "my-sd-turbo"
    shutil.copytree(tiny_model, copy)
    engine = DiffusersSolver(copy, "cpu", tmp_path, progress=False, warmup=False)
    assert type(engine.pipeline).__name__ == "StableDiffusionPipeline"
    fp = engine.fingerprint()
    assert fp["model"] == "my-sd-turbo"
    assert fp["model_hash"] == solver.fingerprint()["model_hash"]
    spec = make_spec(model="my-sd-turbo")
    assert engine.solve(spec) == solver.solve(make_spec())  # same weights, same bytes
    with pytest.raises(SolverError, match="not this engine's model"):
        engine.solve(make_spec())  # a task for another model is refused
    named = DiffusersSolver(copy, "cpu", tmp_path, progress=False, warmup=False, model_id="sd-t")
    assert named.fingerprint()["model"] == "sd-t"
    assert named.solve(make_spec(model="sd-t")) == engine.solve(spec)


def test_load_solver_by_name(engine_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's `--solver miner.engine.diffusers_solver:DiffusersSolver` (no arguments:
    model, device and data dir come from the environment)."""
    from miner.engine import DiffusersSolver, EngineError

    monkeypatch.setenv("CUCKOO_MINER_MODEL", "tiny")
    monkeypatch.setenv("CUCKOO_MINER_DEVICE", "cpu")
    monkeypatch.setenv("CUCKOO_MINER_DATA", str(engine_data))
    engine = load_solver("miner.engine.diffusers_solver:DiffusersSolver")
    assert isinstance(engine, DiffusersSolver)
    assert engine.model.path == engine_data / "models" / "tiny"
    assert engine.solve(make_spec()).startswith(b"\x89PNG")
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.solve(make_spec())


def test_sdxl_folder(tmp_path: Path, engine_data: Path) -> None:
    from miner.engine import DiffusersSolver
    from miner.engine.tiny import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path / "tiny-sdxl", seed=0, family="sdxl")
    assert (folder / "text_encoder_2").is_dir()
    assert (folder / "tokenizer_2").is_dir()
    engine = DiffusersSolver(folder, "cpu", tmp_path, progress=False)
    assert type(engine.pipeline).__name__ == "StableDiffusionXLPipeline"
    spec = make_spec(model="tiny-sdxl", width=32, height=48)
    png = engine.solve(spec)
    assert _size(png) == (32, 48)
    assert engine.solve(spec) == png
    assert engine.solve(make_spec(model="tiny-sdxl", width=32, height=48, seed=1)) != png
    engine.close()


def test_fp16_variant_folder_loads_on_cpu(tiny_model: Path, tmp_path: Path) -> None:
    """A folder with only fp16-variant weights (as downloaded with variant="fp16") loads,
    upcast to float32 on the CPU."""
    from miner.engine import DiffusersSolver

    copy = tmp_path / "fp16-only"
    shutil.copytree(tiny_model, copy)
    for name in ("unet", "vae", "text_encoder"):
        for f in (copy / name).glob("*.safetensors"):
            f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    engine = DiffusersSolver(copy, "cpu", tmp_path, progress=False, warmup=False)
    assert engine.variant == "fp16"
    assert engine.fingerprint()["variant"] == "fp16"
    assert _size(engine.solve(make_spec(model="fp16-only", width=32, height=32))) == (32, 32)
