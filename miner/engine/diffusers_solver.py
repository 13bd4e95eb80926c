"""The miner's GPU inference engine: a `miner.solver.Solver` on diffusers pipelines.

`DiffusersSolver(model, device, data_dir)` loads a local diffusers folder once (Stable Diffusion
or SDXL family, picked from `model_index.json`; `model="tiny"` builds or reuses the tiny
random-weight pipeline under `data_dir/models/tiny`), warms it up with one small generation and
reuses it for every task. The dtype is float16 on CUDA and float32 on the CPU unless asked
otherwise ("float32", "bfloat16" or "float16"; argument or $CUCKOO_MINER_DTYPE); it is part of
the device class. Nothing is fetched from a hub (`HF_HUB_OFFLINE=1`, `local_files_only=True`).

Determinism: the initial noise comes from a CPU `torch.Generator` seeded with `spec.seed` (the
same on every device), torch runs with deterministic algorithms (cuDNN deterministic, no
benchmark autotuning, no TF32; `CUBLAS_WORKSPACE_CONFIG` is set before CUDA starts; these are
process-wide settings) and the PNG is encoded by Pillow with fixed parameters and no metadata.
The same spec on the same device class (`fingerprint()`) then gives the same PNG bytes.
Batching changes the kernels' shapes and so may change low bits: `solve_batch` only batches on
a GPU, and only specs that share size, steps, guidance scale and whether a negative prompt is
given; set `max_batch=1` where results must equal single-task runs bit for bit.

torch and diffusers are imported when an engine is built, not when this module is imported
(`import diffusers` takes about 10 s).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chain.taskproto import validate_spec
from miner.engine import _imports
from miner.engine.errors import DeviceError, EngineError, EngineOOM, ModelError
from miner.engine.fingerprint import WEIGHT_SUFFIXES, engine_fingerprint
from miner.engine.tiny import build_tiny_pipeline
from miner.solver import SolverError

log = logging.getLogger(__name__)

TINY_MODELS = {"tiny": "sd", "tiny-sdxl": "sdxl"}  # name -> tiny.build_tiny_pipeline family
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
REQUIRED_COMPONENTS: dict[str, tuple[str, ...]] = {
    "StableDiffusionPipeline": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "StableDiffusionXLPipeline": (
        "unet",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    ),
}
WEIGHTED_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DTYPES = ("float32", "bfloat16", "float16")
PNG_COMPRESS_LEVEL = 1  # fixed: part of the engine's output format (3-5x faster than 6)
WARMUP_SIZE = 64
MAX_GUIDANCE = 100.0
GPU_MAX_BATCH = 8


def default_data_dir() -> Path:
    return Path(os.environ.get("CUCKOO_MINER_DATA", "~/.cuckoo-miner")).expanduser()


@dataclasses.dataclass(frozen=True, slots=True)
class SolveTimings:
    """Where one solve spent its time: waiting for the engine (another task held it), inside
    the pipeline call (the whole batch when batched), and PNG encoding."""

    wait_s: float
    pipeline_s: float
    encode_s: float
    batch: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class ModelFolder:
    """A checked local diffusers folder."""

    path: Path
    pipeline_class: str
    index: dict[str, Any]


def inspect_model_folder(folder: Path) -> ModelFolder:
    """Check that `folder` is a supported diffusers folder (without importing diffusers);
    ModelError otherwise."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelError(f"model path {folder} is not a folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelError(f"{folder} is not a diffusers model folder (no model_index.json)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{index_path} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ModelError(f"{index_path} is not a JSON object")
    cls = index.get("_class_name")
    if cls not in PIPELINES:
        raise ModelError(
            f"{folder}: pipeline class {cls!r} is not supported "
            f"(expected one of {', '.join(PIPELINES)})"
        )
    for name in REQUIRED_COMPONENTS[cls]:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and all(entry)):
            raise ModelError(f"{index_path} does not name the {name} component")
    for name, entry in index.items():
        if name.startswith("_") or not (isinstance(entry, list) and len(entry) == 2):
            continue
        if entry[0] is None or entry[1] is None:
            continue
        component = folder / name
        if not component.is_dir():
            raise ModelError(f"{folder}: the {name}/ component folder is missing")
        if name in WEIGHTED_COMPONENTS and not _weight_files(component):
            raise ModelError(f"{folder}: no weight files in {name}/")
    return ModelFolder(folder, cls, index)


def _weight_files(component: Path) -> list[str]:
    return sorted(p.name for p in component.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))


def _is_fp16_variant(name: str) -> bool:
    return ".fp16." in name or ".fp16-" in name


def pick_variant(model: ModelFolder, half: bool) -> str | None:
    """Return "fp16" when every weighted component ships fp16-variant files and either the
    engine runs in float16 or some component has no plain weights; None (plain files) otherwise."""
    has_plain, has_fp16 = [], []
    for name in WEIGHTED_COMPONENTS:
        if name not in model.index or not (model.path / name).is_dir():
            continue
        files = _weight_files(model.path / name)
        has_plain.append(any(not _is_fp16_variant(f) for f in files))
        has_fp16.append(any(_is_fp16_variant(f) for f in files))
    if all(has_fp16) and (half or not all(has_plain)):
        return "fp16"
    if all(has_plain):
        return None
    raise ModelError(f"{model.path}: components mix fp16-only and plain weight files")


def parse_device(device: str) -> str:
    """Normalise a device argument ("auto", "cpu", "cuda", "cuda:N"); DeviceError otherwise."""
    text = str(device).strip().lower()
    if not DEVICE_RE.match(text):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return text


def parse_dtype(dtype: str | None, device: str) -> str:
    """The dtype name for `device` ("cpu" or "cuda:N"): `dtype` ("auto"/None: float16 on CUDA,
    float32 on the CPU), or DeviceError for an unknown one."""
    text = "auto" if dtype is None else str(dtype).strip().lower()
    if text == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if text not in DTYPES:
        raise DeviceError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    return text


def parse_guidance(value: str) -> float:
    try:
        guidance = float(Decimal(value))
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise SolverError(f"spec.guidance_scale {value!r} is not a decimal number") from exc
    if not math.isfinite(guidance) or not 0.0 <= guidance <= MAX_GUIDANCE:
        raise SolverError(f"spec.guidance_scale must be 0..{MAX_GUIDANCE:g}")
    return guidance


def encode_png(image: Any) -> bytes:
    """PNG bytes of a PIL image, with fixed parameters and no metadata (no text chunks, no
    timestamp, no ICC profile), so the same pixels always give the same bytes."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise EngineError(f"the pipeline returned {type(image).__name__}, not a PIL image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    image.info.clear()
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    index: int
    prompt: str
    negative_prompt: str
    seed: int


def _batch_key(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        spec["model"],
        spec["width"],
        spec["height"],
        spec["steps"],
        spec["guidance_scale"],
        bool(spec["negative_prompt"]),
    )


class DiffusersSolver:
    """A Solver on a local diffusers pipeline, loaded once and reused (thread-safe: one
    pipeline call at a time; PNG encoding runs outside the lock).

    model: "tiny" (or "tiny-sdxl") or the path of a local diffusers folder. device: "auto"
    (CUDA when present), "cuda", "cuda:N" or "cpu". dtype: "auto" (float16 on CUDA, float32 on
    the CPU), "float32", "bfloat16" or "float16". data_dir: where the tiny model is built (default
    $CUCKOO_MINER_DATA or ~/.cuckoo-miner). max_batch: largest batched pipeline call in
    `solve_batch` (default 8 on a GPU, 1 on the CPU). model_id: the name task specs use for
    this model (spec.model must equal it; default "tiny", "tiny-sdxl" or the folder's name).

    The defaults also come from $CUCKOO_MINER_MODEL, $CUCKOO_MINER_DEVICE, $CUCKOO_MINER_DTYPE
    and $CUCKOO_MINER_MODEL_ID, so that
    `miner.solver.load_solver("miner.engine.diffusers_solver:DiffusersSolver")` works.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | None = None,
        data_dir: Path | None = None,
        *,
        max_batch: int | None = None,
        warmup: bool = True,
        progress: bool = True,
        tiny_seed: int = 0,
        model_id: str | None = None,
        dtype: str | None = None,
    ) -> None:
        started = time.perf_counter()
        self._progress = progress
        model = model if model is not None else os.environ.get("CUCKOO_MINER_MODEL", "tiny")
        requested = parse_device(
            device if device is not None else os.environ.get("CUCKOO_MINER_DEVICE", "auto")
        )
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        is_tiny = str(model) in TINY_MODELS
        if not is_tiny:  # check the folder before paying for the imports
            inspect_model_folder(Path(model))

        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts
        self._say("importing torch")
        torch = _imports.torch()
        self._torch: Any = torch
        self.device = self._resolve_device(requested)
        self.on_gpu = self.device.startswith("cuda")
        self.dtype_name = parse_dtype(
            dtype if dtype is not None else os.environ.get("CUCKOO_MINER_DTYPE"), self.device
        )
        self.dtype = getattr(torch, self.dtype_name)
        self.half = self.dtype_name == "float16"  # loads fp16-variant weights when present
        self.max_batch = max(
            1, max_batch if max_batch is not None else (GPU_MAX_BATCH if self.on_gpu else 1)
        )
        self._set_determinism()

        if is_tiny:
            folder = self.data_dir / "models" / str(model)
            self._say(f"building or reusing the {model} model at {folder}")
            build_tiny_pipeline(folder, tiny_seed, family=TINY_MODELS[str(model)])
            self.model_id = model_id or os.environ.get("CUCKOO_MINER_MODEL_ID") or str(model)
        else:
            folder = Path(model).expanduser().resolve()
            self.model_id = model_id or os.environ.get("CUCKOO_MINER_MODEL_ID") or folder.name
        self.model = inspect_model_folder(folder)
        self.variant = pick_variant(self.model, self.half)

        self._lock = threading.Lock()
        self.pipeline: Any = self._load()
        self._fingerprint = engine_fingerprint(
            device=self.device,
            dtype=self.dtype_name,
            model_id=self.model_id,
            model_folder=self.model.path,
            variant=self.variant,
        )
        if warmup:
            side = self._native_size()
            self._say(f"warming up ({side}x{side}, 1 step)")
            self._generate([_Job(0, "warm-up", "", 0)], side, side, 1, 0.0)
        self._say(
            f"ready: {self.model_id} ({self.model.pipeline_class}) on {self.device} "
            f"({self.dtype_name}) in {time.perf_counter() - started:.1f} s"
        )

    # -- set-up ---------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        log.info("engine: %s", message)
        if self._progress:
            print(f"engine: {message}", file=sys.stderr, flush=True)

    def _resolve_device(self, requested: str) -> str:
        torch = self._torch
        if requested == "cpu":
            return "cpu"
        available = torch.cuda.is_available()
        if requested == "auto":
            return "cuda:0" if available else "cpu"
        if not available:
            raise DeviceError(f"device {requested!r} requested but CUDA is not available here")
        index = int(requested.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {requested!r} requested but this machine has {count} GPU(s)")
        return f"cuda:{index}"

    def _set_determinism(self) -> None:
        torch = self._torch
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def _load(self) -> Any:
        self._say("importing diffusers")
        diffusers = _imports.diffusers()
        if not self._progress:
            diffusers.utils.logging.disable_progress_bar()
        cls = getattr(diffusers, self.model.pipeline_class)
        self._say(
            f"loading {self.model.path} ({self.model.pipeline_class}, {self.dtype_name}"
            f"{', variant ' + self.variant if self.variant else ''}) onto {self.device}"
        )
        try:
            pipe = cls.from_pretrained(
                self.model.path, dtype=self.dtype, variant=self.variant, local_files_only=True
            )
            pipe = pipe.to(self.device)
        except self._torch.cuda.OutOfMemoryError as exc:
            self._free_device_memory()
            raise EngineOOM(f"out of memory loading {self.model.path} onto {self.device}") from exc
        except Exception as exc:
            raise ModelError(
                f"cannot load model {self.model.path}: {type(exc).__name__}: {exc}"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _native_size(self) -> int:
        """The model's native image side (512 for SD-Turbo, 64 for the tiny model)."""
        try:
            side = int(self.pipeline.unet.config.sample_size) * int(self.pipeline.vae_scale_factor)
        except (AttributeError, TypeError, ValueError):
            return WARMUP_SIZE
        return max(8, min(side - side % 8, 1024))

    def _free_device_memory(self) -> None:
        if self.on_gpu:
            self._torch.cuda.empty_cache()

    # -- the Solver protocol --------------------------------------------------------------

    def fingerprint(self) -> dict[str, str]:
        return dict(self._fingerprint)

    def solve(self, spec: dict[str, Any]) -> bytes:
        return self.solve_timed(spec)[0]

    def solve_timed(self, spec: dict[str, Any]) -> tuple[bytes, SolveTimings]:
        """`solve`, and where its time went."""
        guidance = self._check(spec)
        job = _Job(0, spec["prompt"], spec["negative_prompt"], spec["seed"])
        (image,), wait_s, pipeline_s = self._generate(
            [job], spec["width"], spec["height"], spec["steps"], guidance
        )
        t0 = time.perf_counter()
        png = encode_png(image)
        return png, SolveTimings(wait_s, pipeline_s, time.perf_counter() - t0)

    def solve_batch(self, specs: Sequence[dict[str, Any]]) -> list[bytes]:
        """PNG bytes for each spec, in order. On a GPU, specs that share size, steps, guidance
        scale and negative-prompt presence run as batched pipeline calls (one CPU generator per
        item); on the CPU (max_batch 1) they run one by one. EngineOOM when even a single
        image does not fit (a batch that does not fit is split and retried)."""
        guidances = [self._check(spec) for spec in specs]
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for i, spec in enumerate(specs):
            job = _Job(i, spec["prompt"], spec["negative_prompt"], spec["seed"])
            groups.setdefault(_batch_key(spec), []).append(job)
        out: list[bytes | None] = [None] * len(specs)
        for jobs in groups.values():
            first = specs[jobs[0].index]
            for chunk in _chunks(jobs, self.max_batch):
                images = self._generate_splitting(
                    chunk,
                    first["width"],
                    first["height"],
                    first["steps"],
                    guidances[jobs[0].index],
                )
                for job, image in zip(chunk, images, strict=True):
                    out[job.index] = encode_png(image)
        return [png for png in out if png is not None]

    # -- generation -----------------------------------------------------------------------

    def _check(self, spec: Mapping[str, Any]) -> float:
        try:
            validate_spec(spec)
        except Exception as exc:
            raise SolverError(f"invalid spec: {exc}") from exc
        if spec["model"] != self.model_id:
            raise SolverError(
                f"spec.model {spec['model']!r} is not this engine's model {self.model_id!r}"
            )
        return parse_guidance(spec["guidance_scale"])

    def _generate_splitting(
        self, jobs: list[_Job], width: int, height: int, steps: int, guidance: float
    ) -> list[Any]:
        try:
            return self._generate(jobs, width, height, steps, guidance)[0]
        except EngineOOM:
            if len(jobs) == 1:
                raise
            half = len(jobs) // 2
            log.warning("engine: batch of %d did not fit; splitting", len(jobs))
            return self._generate_splitting(
                jobs[:half], width, height, steps, guidance
            ) + self._generate_splitting(jobs[half:], width, height, steps, guidance)

    def _generate(
        self, jobs: list[_Job], width: int, height: int, steps: int, guidance: float
    ) -> tuple[list[Any], float, float]:
        """PIL images for `jobs` (one pipeline call), the wait for the lock and the call's
        time."""
        torch = self._torch
        negatives = [job.negative_prompt for job in jobs]
        kwargs: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            # no negative prompt: None, exactly as a plain pipeline call without one
            "negative_prompt": negatives if any(negatives) else None,
            "height": height,
            "width": width,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "generator": [torch.Generator("cpu").manual_seed(job.seed) for job in jobs],
            "output_type": "pil",
        }
        images: list[Any] | None = None
        t0 = time.perf_counter()
        with self._lock:
            t1 = time.perf_counter()
            if self.pipeline is None:
                raise EngineError("the engine is closed")
            try:
                with torch.inference_mode():
                    images = list(self.pipeline(**kwargs).images)
                if self.on_gpu:
                    torch.cuda.synchronize(self.device)
            except torch.cuda.OutOfMemoryError:
                pass  # handled below, once the traceback (and the tensors it holds) is gone
            t2 = time.perf_counter()
            if images is None:
                self._free_device_memory()
        if images is None:
            raise EngineOOM(
                f"out of {self.device} memory for {len(jobs)} image(s) of {width}x{height} "
                f"in {steps} step(s)"
            )
        if len(images) != len(jobs):
            raise EngineError(f"the pipeline returned {len(images)} images for {len(jobs)}")
        return images, t1 - t0, t2 - t1

    def close(self) -> None:
        """Drop the pipeline and free its device memory."""
        with self._lock:
            self.pipeline = None
            self._free_device_memory()

    def __repr__(self) -> str:
        return f"DiffusersSolver({self.model_id!r}, device={self.device!r}, {self.dtype_name})"


def _chunks(items: list[_Job], size: int) -> Iterator[list[_Job]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
