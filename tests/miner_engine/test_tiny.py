"""The tiny pipeline: built from configs with seeded random weights, saved in the standard
diffusers layout, deterministic, reused when valid, rebuilt when not, loadable offline."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.miner_engine.conftest import needs_engine

pytestmark = [*needs_engine]

WEIGHTS = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_layout(tiny_model: Path) -> None:
    index = json.loads((tiny_model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_model / name).is_dir(), name
        assert index[name][1], name
    for rel in WEIGHTS:
        assert (tiny_model / rel).stat().st_size > 0
    scheduler = json.loads((tiny_model / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "EulerDiscreteScheduler"
    assert scheduler["timestep_spacing"] == "trailing"
    total = sum(p.stat().st_size for p in tiny_model.rglob("*") if p.is_file())
    assert total < 10_000_000


def test_tokenizer_encodes_text(tiny_model: Path) -> None:
    from transformers import CLIPTokenizer

    from miner.engine.tiny import BOS, EOS

    tok = CLIPTokenizer.from_pretrained(str(tiny_model / "tokenizer"), local_files_only=True)
    ids = tok("the cat").input_ids
    assert ids[0] == tok.convert_tokens_to_ids(BOS)
    assert ids[-1] == tok.convert_tokens_to_ids(EOS)
    assert tok.convert_tokens_to_ids(EOS) not in ids[1:-1]  # no unknown tokens
    assert tok("a cat").input_ids != tok("a dog").input_ids
    config = json.loads((tiny_model / "text_encoder" / "config.json").read_text())
    assert config["eos_token_id"] == tok.convert_tokens_to_ids(EOS)


def test_same_seed_same_bytes(tiny_model: Path, tmp_path: Path) -> None:
    from miner.engine.tiny import build_tiny_pipeline

    again = build_tiny_pipeline(tmp_path / "again", seed=0)
    assert _digests(again) == _digests(tiny_model)
    other = build_tiny_pipeline(tmp_path / "other", seed=1)
    for rel in WEIGHTS:
        assert _digests(other)[rel] != _digests(tiny_model)[rel]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_valid_build_is_reused_and_broken_one_rebuilt(tmp_path: Path) -> None:
    from miner.engine.tiny import build_tiny_pipeline, is_valid_build

    path = build_tiny_pipeline(tmp_path / "tiny", seed=0)
    stamp = (path / WEIGHTS[0]).stat().st_mtime_ns
    assert build_tiny_pipeline(path, seed=0) == path
    assert (path / WEIGHTS[0]).stat().st_mtime_ns == stamp  # reused, not rebuilt

    shutil.rmtree(path / "unet")  # e.g. an interrupted copy
    assert not is_valid_build(path, 0)
    build_tiny_pipeline(path, seed=0)
    assert is_valid_build(path, 0)
    assert not is_valid_build(path, 1)
    build_tiny_pipeline(path, seed=1)  # a different seed replaces the build
    assert is_valid_build(path, 1)


def test_reload_from_disk_and_generate(tiny_model: Path, solver: object) -> None:
    """A plain diffusers load of the saved folder generates, offline, the very image the
    engine produces for the same prompt, size, steps and seed."""
    import torch
    from diffusers import StableDiffusionPipeline

    from miner.engine.diffusers_solver import encode_png
    from tests.miner_engine.conftest import make_spec

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    spec = make_spec(width=32, height=48, steps=2, seed=99)
    image = pipe(
        spec["prompt"],
        height=48,
        width=32,
        num_inference_steps=2,
        guidance_scale=0.0,
        generator=torch.Generator("cpu").manual_seed(99),
    ).images[0]
    assert image.size == (32, 48)
    assert image.mode == "RGB"
    assert encode_png(image) == solver.solve(spec)  # type: ignore[attr-defined]


def test_unknown_family(tmp_path: Path) -> None:
    from miner.engine import ModelError
    from miner.engine.tiny import build_tiny_pipeline

    with pytest.raises(ModelError, match="family"):
        build_tiny_pipeline(tmp_path / "x", family="flux")
