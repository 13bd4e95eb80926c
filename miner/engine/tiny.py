"""A tiny text-to-image Stable Diffusion pipeline with seeded random weights, for development
and tests (about 7 MB; an image in well under a second on a CPU).

`build_tiny_pipeline(path)` builds it from configs (UNet, VAE, CLIP text encoder, a CLIP
tokenizer whose vocab and merges are generated here, an SD-Turbo style EulerDiscreteScheduler
with trailing timestep spacing) and saves it in the standard diffusers layout, so that it loads
through the same `from_pretrained` path as a real model. Nothing is fetched from a hub. The
images are coloured noise, but every loading and generation code path is the real one.

The build is deterministic (the same seed gives the same weight bytes on every machine) and
atomic (built in a temporary folder beside `path`, then renamed into place); an existing valid
build is reused.

Why the weights do not come from torch's initialisers: torch's CPU random fills are vectorised
per CPU capability (`ATEN_CPU_CAPABILITY`: default, avx2, avx512), and their last bits differ
between those kernels (measured: 14 of 36 text-encoder tensors, 76 of 208 UNet tensors differ by
about 1e-8 between `default` and `avx2`). Two miners that built "the same" tiny model on different
CPUs would then hold different weights under one model name, and their exact-hash comparison
would fail for honest work. `deterministic_init` therefore overwrites every randomly initialised
tensor with integers drawn from SHAKE-256 times a power of two: exact in float32, the same bytes
everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from miner.engine import _imports
from miner.engine.errors import ModelError

TINY_BUILDER_VERSION = "2"  # 2: weights from deterministic_init (capability-independent)
MARKER = ".cuckoo-tiny.json"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# a handful of merges, so the byte-pair path of the tokenizer is exercised
MERGES = (("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"), ("e", "r"))
TEXT_VOCAB_SIZE = 1000
INIT_DOMAIN = b"cuckoo/engine/deterministic-init/v1"
INIT_BITS = 15  # weights are k * 2^(e - 15) with k a signed 16-bit integer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def write_tokenizer_files(folder: Path) -> tuple[Path, Path, dict[str, int]]:
    """Write a CLIP-style `vocab.json` and `merges.txt` (byte-level symbols, the same with the
    end-of-word suffix, the merges, and the two special tokens) and return the paths and vocab."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in MERGES]
    tokens += [BOS, EOS]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_path.write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES), encoding="utf-8"
    )
    return vocab_path, merges_path, vocab


def _fan_in(name: str, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]]) -> int:
    """The fan-in that scales a tensor: inputs per output for a weight (as torch's default
    kaiming-uniform bound 1/sqrt(fan_in)); a bias takes its sibling weight's."""
    if len(shape) >= 2:
        size = 1
        for dim in shape[1:]:
            size *= dim
        return max(1, size)
    sibling = shapes.get(name.rpartition(".")[0] + ".weight")
    if sibling is not None and len(sibling) >= 2:
        return _fan_in("", sibling, shapes)
    return max(1, shape[0] if shape else 1)


def deterministic_init(module: Any, seed: int, tag: str) -> None:
    """Overwrite every randomly initialised floating-point parameter of `module` with values that
    are the same on every machine: uniform integers k in [-2^15, 2^15) from SHAKE-256 (keyed by
    `seed`, `tag` and the parameter name) times 2^(e - 15), where 2^e ~ 1/sqrt(fan_in) is fixed by
    the shape alone. Parameters that are all zeros or all ones (norm scales and shifts, zeroed
    biases) were set exactly by their initialisers and are kept."""
    torch = _imports.torch()
    import numpy

    named = dict(module.named_parameters())
    shapes = {name: tuple(int(d) for d in p.shape) for name, p in named.items()}
    with torch.no_grad():
        for name in sorted(named):
            param = named[name]
            if not param.is_floating_point() or param.numel() == 0:
                continue
            flat = param.detach().reshape(-1)
            if param.numel() > 1 and (bool((flat == 0).all()) or bool((flat == 1).all())):
                continue
            fan_in = _fan_in(name, shapes[name], shapes)
            exponent = -(fan_in.bit_length() // 2)  # 2^exponent ~ fan_in^-1/2, integers only
            raw = hashlib.shake_256(INIT_DOMAIN + f"/{seed}/{tag}/{name}".encode()).digest(
                2 * param.numel()
            )
            ints = numpy.frombuffer(raw, dtype="<i2").astype(numpy.float32)
            values = torch.from_numpy(ints) * (2.0 ** (exponent - INIT_BITS))
            param.copy_(values.reshape(param.shape).to(param.dtype))


FAMILIES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
SDXL_TIME_EMBED_DIM = 8


def _components(seed: int, scratch: Path, family: str) -> dict[str, Any]:
    """The pipeline's modules, with weights from `deterministic_init(module, seed, name)`."""
    diffusers, transformers = _imports.diffusers(), _imports.transformers()
    xl = family == "sdxl"

    # loaded from vocab.json + merges.txt, the files a real SD folder's tokenizer/ ships
    _, _, vocab = write_tokenizer_files(scratch)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(
        str(scratch), local_files_only=True, model_max_length=77
    )
    ids = tokenizer("the cat").input_ids
    if ids[0] != vocab[BOS] or ids[-1] != vocab[EOS] or vocab[EOS] in ids[1:-1]:
        raise ModelError(f"the generated tokenizer does not encode text (ids {ids})")
    text_config = transformers.CLIPTextConfig(
        vocab_size=TEXT_VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    unet_xl: dict[str, Any] = {}
    if xl:  # two text encoders side by side, plus SDXL's size/crop ("text_time") conditioning
        unet_xl = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": SDXL_TIME_EMBED_DIM,
            "projection_class_embeddings_input_dim": 6 * SDXL_TIME_EMBED_DIM
            + text_config.projection_dim,
            "use_linear_projection": True,
        }
    unet = diffusers.UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_config.hidden_size * (2 if xl else 1),
        attention_head_dim=8,
        norm_num_groups=32,
        **unet_xl,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    text_encoder = transformers.CLIPTextModel(text_config)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        deterministic_init(module, seed, name)
    scheduler = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
        prediction_type="epsilon",
    )
    components: dict[str, Any] = {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }
    if xl:
        text_encoder_2 = transformers.CLIPTextModelWithProjection(text_config)
        deterministic_init(text_encoder_2, seed, "text_encoder_2")
        components["text_encoder_2"] = text_encoder_2.eval()
        components["tokenizer_2"] = tokenizer
    else:
        components.update(
            safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    return components


def is_valid_build(path: Path, seed: int | None = None, family: str = "sd") -> bool:
    """Whether `path` holds a complete tiny build of `family` (and of `seed`, when given)."""
    try:
        marker = json.loads((path / MARKER).read_text())
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or not isinstance(index, dict):
        return False
    if marker.get("builder") != TINY_BUILDER_VERSION:
        return False
    if seed is not None and marker.get("seed") != seed:
        return False
    if marker.get("family", "sd") != family:
        return False
    names = COMPONENTS + (("text_encoder_2", "tokenizer_2") if family == "sdxl" else ())
    return all((path / name).is_dir() and any((path / name).iterdir()) for name in names)


def build_tiny_pipeline(path: Path, seed: int = 0, *, family: str = "sd") -> Path:
    """Build the tiny pipeline from `seed` and save it at `path` (diffusers layout), unless a
    valid build of the same seed is already there. Returns `path`. `family` "sd" builds a
    StableDiffusionPipeline, "sdxl" a StableDiffusionXLPipeline (two text encoders, as in
    SDXL-Turbo's layout)."""
    if family not in FAMILIES:
        raise ModelError(f"unknown tiny model family {family!r}: use {' or '.join(FAMILIES)}")
    path = Path(path)
    if is_valid_build(path, seed, family):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HUB_OFFLINE"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
    try:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        pipeline_class = getattr(_imports.diffusers(), FAMILIES[family])
        pipe = pipeline_class(**_components(seed, scratch, family))
        out = tmp / "model"
        pipe.save_pretrained(out, safe_serialization=True)
        (out / MARKER).write_text(
            json.dumps(
                {"builder": TINY_BUILDER_VERSION, "family": family, "seed": seed}, sort_keys=True
            )
            + "\n"
        )
        _replace(out, path, seed, family)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot build the tiny model at {path}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace(built: Path, path: Path, seed: int, family: str) -> None:
    """Move `built` to `path`; an invalid folder already at `path` is set aside first."""
    try:
        os.rename(built, path)
        return
    except OSError:
        if is_valid_build(path, seed, family):  # another process finished the same build first
            return
    trash = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, trash)
    os.rename(built, path)
    shutil.rmtree(trash, ignore_errors=True)
