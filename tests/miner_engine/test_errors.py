"""One-line errors of a distinct type for a missing or malformed model folder and for an unknown
or absent device; most are raised before torch or diffusers are imported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from miner import MinerError
from miner.solver import SolverError
from tests.miner_engine.conftest import needs_engine

pytestmark = [*needs_engine]


def _error(exc_type: type[Exception], *args: Any, **kwargs: Any) -> str:
    from miner.engine import DiffusersSolver

    with pytest.raises(exc_type) as info:
        DiffusersSolver(*args, progress=False, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) <= 300
    return message


def test_error_types() -> None:
    from miner.engine import DeviceError, EngineError, EngineOOM, ModelError

    for cls in (DeviceError, ModelError, EngineOOM):
        assert issubclass(cls, EngineError)
    assert issubclass(EngineError, SolverError)
    assert issubclass(EngineError, MinerError)


def test_missing_folder(tmp_path: Path) -> None:
    from miner.engine import ModelError

    assert "does not exist" in _error(ModelError, tmp_path / "nope", "cpu", tmp_path)


def test_not_a_folder(tmp_path: Path) -> None:
    from miner.engine import ModelError

    (tmp_path / "file").write_text("x")
    assert "not a folder" in _error(ModelError, tmp_path / "file", "cpu", tmp_path)


def test_no_model_index(tmp_path: Path) -> None:
    from miner.engine import ModelError

    assert "model_index.json" in _error(ModelError, tmp_path, "cpu", tmp_path)


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    return copy


def test_malformed_model_index(model_copy: Path) -> None:
    from miner.engine import ModelError

    (model_copy / "model_index.json").write_text("{not json")
    assert "not valid JSON" in _error(ModelError, model_copy, "cpu")
    (model_copy / "model_index.json").write_text("[1, 2]")
    assert "not a JSON object" in _error(ModelError, model_copy, "cpu")


def test_unsupported_pipeline_class(model_copy: Path) -> None:
    from miner.engine import ModelError

    index = json.loads((model_copy / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (model_copy / "model_index.json").write_text(json.dumps(index))
    assert "FluxPipeline" in _error(ModelError, model_copy, "cpu")


def test_missing_component(model_copy: Path) -> None:
    from miner.engine import ModelError

    shutil.rmtree(model_copy / "vae")
    assert "vae/" in _error(ModelError, model_copy, "cpu")


def test_component_without_weights(model_copy: Path) -> None:
    from miner.engine import ModelError

    (model_copy / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    assert "no weight files in unet/" in _error(ModelError, model_copy, "cpu")


def test_corrupt_weights(model_copy: Path) -> None:
    from miner.engine import ModelError

    weights = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "cannot load model" in _error(ModelError, model_copy, "cpu")


def test_unknown_device(tmp_path: Path) -> None:
    from miner.engine import DeviceError

    assert "unknown device 'tpu'" in _error(DeviceError, "tiny", "tpu", tmp_path)
    _error(DeviceError, "tiny", "cuda:x", tmp_path)


def test_absent_cuda(tmp_path: Path) -> None:
    import torch

    from miner.engine import DeviceError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "CUDA is not available" in _error(DeviceError, "tiny", "cuda", tmp_path)


def test_variant_choice(model_copy: Path) -> None:
    from miner.engine import ModelError
    from miner.engine.diffusers_solver import inspect_model_folder, pick_variant

    model = inspect_model_folder(model_copy)
    assert pick_variant(model, half=False) is None
    assert pick_variant(model, half=True) is None  # no fp16 files
    for name in ("unet", "vae", "text_encoder"):
        for f in (model_copy / name).glob("*.safetensors"):
            shutil.copy(f, f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    assert pick_variant(model, half=True) == "fp16"
    assert pick_variant(model, half=False) is None
    for f in (model_copy / "unet").glob("*.safetensors"):
        if ".fp16." not in f.name:
            f.unlink()
    assert pick_variant(model, half=False) == "fp16"  # only fp16 files: load them, upcast
    (model_copy / "vae" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    with pytest.raises(ModelError, match="mix"):
        pick_variant(model, half=False)
