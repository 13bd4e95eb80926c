"""Calibration of the cross-device-class similarity rule (chain/sketch.py, chainclient/sketch.py).

    python bench/verification_calibration.py [--quick] [--models tiny,sd15] [--work-dir DIR]

Writes bench/data/verification_calibration.json (with --quick: <work-dir>/quick.json) and prints
a table. Exit status 1 when the chain's DEFAULT_MAX_SKETCH_DISTANCE does not keep every honest
pair within it and catch at least 99% of the fakes of every model.

Method. Each model runs a set of task specs through the miner's own engine
(miner.engine.DiffusersSolver, PNG bytes as a miner delivers them) in several device classes, one
process each: float32 with torch's avx512, avx2 and default CPU kernels (with oneDNN's and MKL's
instruction sets capped to match, as on a CPU without AVX-512), bfloat16 and float16 (avx512
kernels). Every pair of classes on one spec is an honest cross-class pair. The fakes, made in the
float32 avx512 class: half the steps, one step (when that is fewer than half), another seed, half
the resolution upscaled by Pillow to the spec's size (nearest, bilinear, bicubic and Lanczos),
and another model (the same architecture with other random weights); each fake is compared with
every honest class. Models:

- tiny: miner/engine/tiny.py, at its native 64x64 and at 96x64, 4 and 8 steps, guidance 0 and 5,
  24 specs (4 with --quick); about 0.3 s an image in float32, 4 s in float16 on this CPU.
- sd15: the Stable Diffusion 1.5 architecture (860M-parameter UNet, the SD VAE, CLIP ViT-L/14's
  text tower; configs below) with random weights from a fixed seed (no weights can be
  downloaded), 128x128 (a 16x16 latent), 4 and 8 steps, guidance 0 and 5, 6 specs; 5-20 s an
  image in float32 on the 2-core CPU this was measured on. float16 is not run on it (no native
  float16 kernels: 605 s for one image; that image was at distance 0 from float32 and bfloat16).

A full run took 754 s with building the two SD1.5 folders (4 GB each), 605 s with them built
(a second run regenerated every image and gave the very same distances and sketches); runs with
the images already in --work-dir only re-analyse them. No GPU was available: GPU against CPU is
not measured here (tests/miner_engine/test_gpu.py measures it on a CUDA machine).

Measured (sketch v1, 972 sampled values, dead zone 2 levels, distance in 1/1000 level per value):

    model  honest pairs  honest max  fake checks  fake min (kind)      at threshold 47
    tiny        240          20          960      209 (half steps)     0 honest above, 100% caught
    sd15         36          14          192       95 (8 -> 4 steps)   0 honest above, 100% caught

Honest distances come from bfloat16 alone: the float32 classes differ in at most a few pixels
(14-17 of 24 tiny specs even give identical PNGs across kernel sets; pixel MAD < 0.001), float16
stays within the dead zone (pixel MAD <= 0.087), bfloat16 moves pixels by 0.69-0.73 levels on
average (at most 5). Half the steps moves them by 1.2-2.4 levels: with random weights the UNet
changes the image little per step, so this is by far the hardest fake (another seed, another
model or an upscaled smaller image are 34,000-45,000 away). The threshold is half the smallest
fake distance (47): 2.3x the largest honest distance, 2x below the nearest fake.

What this does not establish: trained weights and GPUs. A trained model changes far more per
step (fakes further away), but float16 on a GPU against float32 on a CPU may move pixels by more
than bfloat16 did here; the threshold is a chain spec parameter (verification.maxSketchDistance)
to be measured again with the real model on the GPUs miners use.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as `python bench/verification_calibration.py`
    sys.path.insert(0, str(REPO))

DATA = REPO / "bench" / "data" / "verification_calibration.json"
SD15_MARKER = ".cuckoo-sd15-random.json"
SD15_BUILDER_VERSION = "1"

# Stable Diffusion 1.5's component configs (runwayml/stable-diffusion-v1-5: unet/config.json,
# vae/config.json, and the text tower of openai/clip-vit-large-patch14), written out here because
# nothing can be downloaded. The scheduler is Euler with trailing spacing (few-step sampling) on
# SD1.5's beta schedule, instead of SD1.5's default PNDM.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
}
SD15_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# Honest device classes emulated on this CPU, one subprocess each: torch's CPU kernels
# (ATEN_CPU_CAPABILITY), with oneDNN's and MKL's instruction sets capped to match (as on a machine
# without AVX-512), and the dtypes. `capability` is what torch must report for the class to count.
CLASSES: dict[str, dict[str, Any]] = {
    "cpu-avx512-fp32": {"env": {"ATEN_CPU_CAPABILITY": "avx512"}, "dtype": "float32"},
    "cpu-avx2-fp32": {
        "env": {
            "ATEN_CPU_CAPABILITY": "avx2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        },
        "dtype": "float32",
    },
    "cpu-default-fp32": {
        "env": {
            "ATEN_CPU_CAPABILITY": "default",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        },
        "dtype": "float32",
    },
    "cpu-avx512-bf16": {"env": {"ATEN_CPU_CAPABILITY": "avx512"}, "dtype": "bfloat16"},
    "cpu-avx512-fp16": {"env": {"ATEN_CPU_CAPABILITY": "avx512"}, "dtype": "float16"},
}
EXPECTED_CAPABILITY = {"avx512": "AVX512", "avx2": "AVX2", "default": "DEFAULT"}
PROMPTS = (
    "a lighthouse at dusk",
    "a red fox in fresh snow, detailed fur",
    "an oil painting of a harbour with boats",
    "a bowl of ramen, studio photo",
    "isometric city block at night, neon",
    "portrait of an old sailor, charcoal sketch",
)
UPSCALE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")


# -- models --


def build_sd15(path: Path, seed: int) -> Path:
    """A Stable Diffusion 1.5 architecture (860M-parameter UNet, the SD VAE, CLIP ViT-L/14's text
    tower) with random weights from `miner.engine.tiny.deterministic_init(seed)`, saved as a
    diffusers folder at `path` (about 4.3 GB in float32); reused when already built."""
    try:
        marker = json.loads((path / SD15_MARKER).read_text())
        if marker == {"builder": SD15_BUILDER_VERSION, "seed": seed}:
            return path
    except (OSError, ValueError):
        pass
    import diffusers
    import transformers

    from miner.engine.tiny import BOS, EOS, deterministic_init, write_tokenizer_files

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
    try:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        _, _, vocab = write_tokenizer_files(scratch)  # no CLIP vocabulary can be downloaded
        tokenizer = transformers.CLIPTokenizer.from_pretrained(
            str(scratch), local_files_only=True, model_max_length=77
        )
        text_config = transformers.CLIPTextConfig(
            **SD15_TEXT, bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[EOS]
        )
        unet = diffusers.UNet2DConditionModel(**SD15_UNET)
        vae = diffusers.AutoencoderKL(**SD15_VAE)
        text_encoder = transformers.CLIPTextModel(text_config)
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
            deterministic_init(module, seed, name)
        pipe = diffusers.StableDiffusionPipeline(
            unet=unet.eval(),
            vae=vae.eval(),
            text_encoder=text_encoder.eval(),
            tokenizer=tokenizer,
            scheduler=diffusers.EulerDiscreteScheduler(**SD15_SCHEDULER),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        out = tmp / "model"
        pipe.save_pretrained(out, safe_serialization=True)
        (out / SD15_MARKER).write_text(
            json.dumps({"builder": SD15_BUILDER_VERSION, "seed": seed}) + "\n"
        )
        if path.exists():
            shutil.rmtree(path)
        os.rename(out, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_model(kind: str, path: Path, seed: int) -> Path:
    if kind == "tiny":
        from miner.engine.tiny import build_tiny_pipeline

        return build_tiny_pipeline(path, seed)
    return build_sd15(path, seed)


# -- the generating child (one device class per process) --


def run_child(job_file: Path) -> None:
    """Solve every job of `job_file` with the miner's engine in this process's device class,
    write `<name>.png` beside it, and `result.json` (fingerprint, device hash, timings)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    job = json.loads(job_file.read_text())
    import warnings

    warnings.filterwarnings("ignore")
    from chain.taskproto import device_hash
    from miner.engine.diffusers_solver import DiffusersSolver

    out = job_file.parent
    t0 = time.perf_counter()
    solver = DiffusersSolver(
        job["model_dir"],
        "cpu",
        out / "data",
        warmup=False,
        progress=False,
        model_id=job["model_id"],
        dtype=job["dtype"],
    )
    load_s = time.perf_counter() - t0
    times = {}
    for item in job["jobs"]:
        t1 = time.perf_counter()
        png = solver.solve(item["spec"])
        times[item["name"]] = round(time.perf_counter() - t1, 3)
        (out / f"{item['name']}.png").write_bytes(png)
    fp = solver.fingerprint()
    (out / "result.json").write_text(
        json.dumps(
            {
                "fingerprint": fp,
                "device_hash": device_hash(fp).hex(),
                "load_s": round(load_s, 2),
                "solve_s": times,
            },
            indent=1,
        )
    )


def spawn(job_dir: Path, env_extra: dict[str, str], job: dict[str, Any]) -> dict[str, Any]:
    job_dir.mkdir(parents=True, exist_ok=True)
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job, indent=1))
    env = dict(os.environ)
    env.update(env_extra)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(job_file)],
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads((job_dir / "result.json").read_text())
    return result


def supported_classes() -> dict[str, dict[str, Any]]:
    """The classes this CPU can run: torch must report the capability each one asks for."""
    out = {}
    for name, cls in CLASSES.items():
        want = cls["env"]["ATEN_CPU_CAPABILITY"]
        env = dict(os.environ, **cls["env"])
        got = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if got == EXPECTED_CAPABILITY[want]:
            out[name] = cls
        else:
            print(f"class {name}: this CPU reports {got} for {want}; not run", file=sys.stderr)
    return out


RUNS = {"generated": 0, "reused": 0}  # generating processes run by this invocation, or reused


def cached_spawn(job_dir: Path, env_extra: dict[str, str], job: dict[str, Any]) -> dict[str, Any]:
    """`spawn`, unless `job_dir` already holds the result of this very job (same job file)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads((job_dir / "job.json").read_text()) == job:
            cached: dict[str, Any] = json.loads((job_dir / "result.json").read_text())
            RUNS["reused"] += 1
            return cached
    RUNS["generated"] += 1
    return spawn(job_dir, env_extra, job)


# -- the plan: specs, honest classes, fakes --


def make_specs(
    model_id: str, count: int, sizes: list[tuple[int, int]], steps: list[int], guidances: list[str]
) -> list[dict[str, Any]]:
    specs = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        specs.append(
            {
                "model": model_id,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "negative_prompt": "",
                "width": width,
                "height": height,
                "steps": steps[i % len(steps)],
                "seed": 1000 + 7919 * i,
                "guidance_scale": guidances[(i // len(steps)) % len(guidances)],
            }
        )
    return specs


def fake_jobs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cheap fakes of each spec (the other model is a separate run): half the steps, one step
    (when that is fewer than half), another seed, and half the resolution (upscaled later)."""
    jobs = []
    for i, spec in enumerate(specs):
        if spec["steps"] >= 2:
            jobs.append({"name": f"s{i}-halfsteps", "spec": dict(spec, steps=spec["steps"] // 2)})
        if spec["steps"] // 2 > 1:
            jobs.append({"name": f"s{i}-1step", "spec": dict(spec, steps=1)})
        jobs.append({"name": f"s{i}-otherseed", "spec": dict(spec, seed=spec["seed"] + 1)})
        half = {
            "width": max(8, spec["width"] // 2 - spec["width"] // 2 % 8),
            "height": max(8, spec["height"] // 2 - spec["height"] // 2 % 8),
        }
        jobs.append({"name": f"s{i}-halfres", "spec": dict(spec, **half)})
    return jobs


def generate(
    model: str,
    specs: list[dict[str, Any]],
    classes: dict[str, dict[str, Any]],
    work: Path,
    fake_class: str,
) -> dict[str, Any]:
    """Run the honest classes and the fakes for `model` ("tiny" or "sd15"); PNGs under
    work/<model>/. Returns each run's result (fingerprint, timings)."""
    models = work / "models"
    main_dir = build_model(model, models / f"{model}-0", 0)
    other_dir = build_model(model, models / f"{model}-1", 1)
    model_id = specs[0]["model"]
    honest = [{"name": f"s{i}", "spec": spec} for i, spec in enumerate(specs)]
    runs: dict[str, Any] = {}
    for name, cls in classes.items():
        job = {
            "model_dir": str(main_dir),
            "model_id": model_id,
            "dtype": cls["dtype"],
            "jobs": honest,
        }
        print(f"[{model}] honest class {name}: {len(honest)} images", file=sys.stderr, flush=True)
        runs[name] = cached_spawn(work / model / name, cls["env"], job)
    cls = classes[fake_class]
    job = {
        "model_dir": str(main_dir),
        "model_id": model_id,
        "dtype": cls["dtype"],
        "jobs": fake_jobs(specs),
    }
    print(
        f"[{model}] fakes in {fake_class}: {len(job['jobs'])} images", file=sys.stderr, flush=True
    )
    runs["fakes"] = cached_spawn(work / model / "fakes", cls["env"], job)
    job = {"model_dir": str(other_dir), "model_id": model_id, "dtype": cls["dtype"], "jobs": honest}
    print(f"[{model}] other model in {fake_class}", file=sys.stderr, flush=True)
    runs["othermodel"] = cached_spawn(work / model / "othermodel", cls["env"], job)
    return runs


# -- analysis --


def _sketch_file(path: Path) -> bytes:
    from chainclient.sketch import image_sketch

    return image_sketch(path.read_bytes())


def _upscaled(path: Path, width: int, height: int, method: str) -> bytes:
    """The PNG of the image at `path` upscaled by Pillow to `width` x `height`."""
    from PIL import Image

    filters = {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
    }
    with Image.open(path) as img:
        big = img.convert("RGB").resize((width, height), filters[method])
    buf = io.BytesIO()
    big.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _pixel_mad_milli(a: Path, b: Path) -> int:
    """Mean absolute difference of every pixel value, in thousandths of a level."""
    import numpy
    from PIL import Image

    with Image.open(a) as ia, Image.open(b) as ib:
        x = numpy.asarray(ia.convert("RGB"), dtype=numpy.int64)
        y = numpy.asarray(ib.convert("RGB"), dtype=numpy.int64)
    return int(numpy.abs(x - y).sum() * 1000 // x.size)


def analyse(
    model: str, specs: list[dict[str, Any]], runs: dict[str, Any], work: Path, boundary: int = 10
) -> dict[str, Any]:
    """Every honest cross-class pair's sketch distance, every fake's distance to every honest
    class, and the sketches of the pairs nearest the decision (for tests/chain/test_sketch.py)."""
    from chain.sketch import sketch_distance
    from chainclient.sketch import image_sketch

    base = work / model
    classes = [name for name in runs if name not in ("fakes", "othermodel")]
    sketches: dict[str, bytes] = {}
    honest: list[dict[str, Any]] = []
    fakes: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        for c in classes:
            sketches[f"s{i}/{c}"] = _sketch_file(base / c / f"s{i}.png")
        for x, a in enumerate(classes):
            for b in classes[x + 1 :]:
                pa, pb = base / a / f"s{i}.png", base / b / f"s{i}.png"
                honest.append(
                    {
                        "spec": i,
                        "a": a,
                        "b": b,
                        "distance": sketch_distance(sketches[f"s{i}/{a}"], sketches[f"s{i}/{b}"]),
                        "same_png": pa.read_bytes() == pb.read_bytes(),
                        "pixel_mad_milli": _pixel_mad_milli(pa, pb),
                    }
                )
        kinds: dict[str, bytes] = {}
        for kind in ("halfsteps", "1step", "otherseed"):
            path = base / "fakes" / f"s{i}-{kind}.png"
            if path.exists():
                kinds[kind] = _sketch_file(path)
        for method in UPSCALE_FILTERS:
            kinds[f"halfres-{method}"] = image_sketch(
                _upscaled(
                    base / "fakes" / f"s{i}-halfres.png", spec["width"], spec["height"], method
                )
            )
        kinds["othermodel"] = _sketch_file(base / "othermodel" / f"s{i}.png")
        for kind, sk in kinds.items():
            sketches[f"s{i}/fake-{kind}"] = sk
            for c in classes:
                fakes.append(
                    {
                        "spec": i,
                        "kind": kind,
                        "against": c,
                        "distance": sketch_distance(sk, sketches[f"s{i}/{c}"]),
                    }
                )
    near_honest = sorted(honest, key=lambda r: -r["distance"])[:boundary]
    near_fakes = sorted(fakes, key=lambda r: r["distance"])[:boundary]
    keep = {f"s{r['spec']}/{r['a']}" for r in near_honest} | {
        f"s{r['spec']}/{r['b']}" for r in near_honest
    }
    keep |= {f"s{r['spec']}/fake-{r['kind']}" for r in near_fakes}
    keep |= {f"s{r['spec']}/{r['against']}" for r in near_fakes}
    return {
        "honest": honest,
        "fakes": fakes,
        "boundary": {
            "honest": [[f"s{r['spec']}/{r['a']}", f"s{r['spec']}/{r['b']}"] for r in near_honest],
            "fakes": [
                [f"s{r['spec']}/fake-{r['kind']}", f"s{r['spec']}/{r['against']}"]
                for r in near_fakes
            ],
            "sketches": {key: base64.b64encode(sketches[key]).decode() for key in sorted(keep)},
        },
    }


def tables(result: dict[str, Any]) -> dict[str, Any]:
    """The records of `analyse` as per-spec lists (what the JSON report keeps): honest[pair] =
    {distance, pixel_mad_milli, same_png: [one per spec]}, fakes[kind][honest class] =
    [distance per spec]."""
    honest: dict[str, dict[str, list[Any]]] = {}
    for r in result["honest"]:
        row = honest.setdefault(
            f"{r['a']} ~ {r['b']}", {"distance": [], "pixel_mad_milli": [], "same_png": []}
        )
        row["distance"].append(r["distance"])
        row["pixel_mad_milli"].append(r["pixel_mad_milli"])
        row["same_png"].append(int(r["same_png"]))
    fakes: dict[str, dict[str, list[int]]] = {}
    for r in result["fakes"]:
        fakes.setdefault(r["kind"], {}).setdefault(r["against"], []).append(r["distance"])
    return {"honest": honest, "fakes": fakes, "boundary": result["boundary"]}


def summarise(table: dict[str, Any], threshold: int) -> dict[str, Any]:
    """Maxima, minima and rates at `threshold` of a `tables` result."""
    honest = [d for row in table["honest"].values() for d in row["distance"]]
    by_kind = {
        kind: [d for ds in against.values() for d in ds] for kind, against in table["fakes"].items()
    }
    fakes = [d for ds in by_kind.values() for d in ds]
    return {
        "honest_pairs": len(honest),
        "honest_max": max(honest),
        "honest_mean_milli": sum(honest) * 1000 // len(honest),
        "honest_identical_png_pairs": sum(sum(row["same_png"]) for row in table["honest"].values()),
        "fake_checks": len(fakes),
        "fake_min": min(fakes),
        "fake_min_by_kind": {k: min(v) for k, v in by_kind.items()},
        "fake_median_by_kind": {k: sorted(v)[len(v) // 2] for k, v in by_kind.items()},
        "threshold": threshold,
        "detected": sum(1 for d in fakes if d > threshold),
        "detection_rate_ppm": sum(1 for d in fakes if d > threshold) * 1_000_000 // len(fakes),
        "detection_rate_ppm_by_kind": {
            k: sum(1 for d in v if d > threshold) * 1_000_000 // len(v) for k, v in by_kind.items()
        },
        "false_positives": sum(1 for d in honest if d > threshold),
        "false_positive_rate_ppm": sum(1 for d in honest if d > threshold)
        * 1_000_000
        // len(honest),
    }


# -- the run --

PLANS: dict[str, dict[str, Any]] = {
    # model -> spec plan; "skip_classes": classes not run for this model, with the reason
    "tiny": {
        "specs": 24,
        "quick_specs": 4,
        "sizes": [(64, 64), (96, 64)],
        "steps": [4, 8],
        "guidance": ["0.0", "5.0"],
        "skip_classes": {},
    },
    "sd15": {
        "specs": 6,
        "sizes": [(128, 128)],
        "steps": [4, 8],
        "guidance": ["0.0", "5.0"],
        "skip_classes": {
            "cpu-avx512-fp16": "float16 has no native kernels on this CPU: one SD1.5 image "
            "(spec s0) took 605 s against 5-15 s in float32, so the class is calibrated on the "
            "tiny model; that one image, measured by hand, was at sketch distance 0 from float32 "
            "and from bfloat16 (pixel MAD 0.059 and 0.501 levels)",
        },
    },
}
DESCRIPTIONS = {
    "tiny": "miner/engine/tiny.py (seed 0; other model: seed 1), 7 MB, at its native 64x64 and "
    "96x64",
    "sd15": "Stable Diffusion 1.5 architecture (UNet2DConditionModel 860M, AutoencoderKL, CLIP "
    "ViT-L/14 text tower; configs in this script) with deterministic random weights (seed 0; "
    "other model: seed 1), Euler trailing scheduler, 128x128 (a 16x16 latent) to fit a 2-core "
    "CPU",
}


def choose_threshold(summaries: dict[str, dict[str, Any]]) -> int:
    """Half the smallest distance of any fake on any model (rounded down)."""
    return min(s["fake_min"] for s in summaries.values()) // 2


def print_table(report: dict[str, Any]) -> None:
    threshold = report["threshold"]["computed"]
    print(
        f"\nsketch v{report['sketch']['version']}: {report['sketch']['values']} values, "
        f"dead zone {report['sketch']['dead_zone']}, distance in 1/1000 level per value"
    )
    print(
        f"threshold: computed {threshold} (chain default {report['threshold']['chain_default']})\n"
    )
    for model, m in report["models"].items():
        s = m["summary"]
        print(f"== {model}: {m['description']}")
        print(f"   classes: {', '.join(m['classes'])}")
        for name, why in m["skipped_classes"].items():
            print(f"   not run: {name}: {why}")
        print(
            f"   honest cross-class pairs {s['honest_pairs']:4d}: max {s['honest_max']:5d}, "
            f"mean {s['honest_mean_milli'] / 1000:.1f}, identical PNGs "
            f"{s['honest_identical_png_pairs']}, above threshold {s['false_positives']}"
        )
        for pair, row in m["honest"].items():
            print(
                f"      {pair:36s} distance max {max(row['distance']):4d}  pixel MAD max "
                f"{max(row['pixel_mad_milli']) / 1000:.3f}  identical PNGs "
                f"{sum(row['same_png'])}/{len(row['same_png'])}"
            )
        print(
            f"   fake checks {s['fake_checks']:4d}: min {s['fake_min']}, detected "
            f"{s['detected']} ({s['detection_rate_ppm'] / 10000:.2f}%)"
        )
        for kind, low in s["fake_min_by_kind"].items():
            print(
                f"      {kind:18s} min {low:6d}  median {s['fake_median_by_kind'][kind]:6d}  "
                f"detected {s['detection_rate_ppm_by_kind'][kind] / 10000:.2f}%"
            )
        print(
            f"   margin (fake min / honest max): {s['fake_min'] / max(1, s['honest_max']):.1f}x\n"
        )


def compact_json(obj: Any, indent: str = "") -> str:
    """JSON with one line for each container that fits in 100 characters (the records)."""
    flat = json.dumps(obj)
    if len(indent) + len(flat) <= 100 or not isinstance(obj, (dict, list)) or not obj:
        return flat
    inner = indent + " "
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {compact_json(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + compact_json(v, inner) for v in obj) + "\n" + indent + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the tiny model only, {PLANS['tiny']['quick_specs']} specs (~1 min)",
    )
    parser.add_argument(
        "--models", default=None, help="comma-separated subset of " + ",".join(PLANS)
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cuckoo-verification-calibration",
        help="models and images (reused by later runs; SD1.5 needs ~9 GB)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON report (default {DATA.relative_to(REPO)}; with --quick, <work-dir>/quick.json)",
    )
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    models = ["tiny"] if args.quick else list(PLANS)
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = sorted(set(models) - set(PLANS))
        if unknown:
            parser.error(f"unknown models {unknown}")
    out = args.out or (args.work_dir / "quick.json" if args.quick else DATA)
    work = args.work_dir / ("quick" if args.quick else "full")
    started = time.perf_counter()

    from chain import sketch

    supported = supported_classes()
    report: dict[str, Any] = {
        "about": "bench/verification_calibration.py: sketch distances of honest cross-class pairs "
        "and of cheap fakes; see the script's docstring",
        "sketch": {
            "version": sketch.SKETCH_VERSION,
            "grid": sketch.GRID,
            "values": sketch.GRID * sketch.GRID * sketch.CHANNELS,
            "dead_zone": sketch.DEAD_ZONE,
            "scale": sketch.SCALE,
        },
        "quick": args.quick,
        "models": {},
    }
    summaries = {}
    for model in models:
        plan = PLANS[model]
        count = plan["quick_specs"] if args.quick else plan["specs"]
        specs = make_specs(model, count, plan["sizes"], plan["steps"], plan["guidance"])
        skipped = dict(plan["skip_classes"])
        for name in CLASSES:
            if name not in supported:
                skipped.setdefault(name, "this CPU does not support its kernel set")
        classes = {k: v for k, v in supported.items() if k not in skipped}
        runs = generate(model, specs, classes, work, "cpu-avx512-fp32")
        result = analyse(model, specs, runs, work)
        report["models"][model] = {
            "description": DESCRIPTIONS[model],
            "specs": specs,
            "classes": {
                name: {
                    "env": CLASSES[name]["env"],
                    "dtype": CLASSES[name]["dtype"],
                    "cpu_capability": runs[name]["fingerprint"]["cpu_capability"],
                    "device_hash": runs[name]["device_hash"],
                    "load_s": runs[name]["load_s"],
                    "solve_s_per_image": round(
                        sum(runs[name]["solve_s"].values()) / len(runs[name]["solve_s"]), 2
                    ),
                }
                for name in classes
            },
            "skipped_classes": skipped,
            "fingerprint": runs["cpu-avx512-fp32"]["fingerprint"],
            **tables(result),
        }
        summaries[model] = summarise(report["models"][model], 0)
    threshold = choose_threshold(summaries)
    report["threshold"] = {
        "rule": "half the smallest fake distance over all models, rounded down",
        "computed": threshold,
        "chain_default": sketch.DEFAULT_MAX_SKETCH_DISTANCE,
    }
    for model in models:
        m = report["models"][model]
        m["summary"] = summarise(m, threshold)
        m["summary_at_chain_default"] = summarise(m, sketch.DEFAULT_MAX_SKETCH_DISTANCE)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["generating_runs"] = dict(RUNS)  # reused: images of an earlier run of the same jobs
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(compact_json(report) + "\n")
    print_table(report)
    print(f"written {out} in {report['elapsed_s']} s")
    ok = all(
        report["models"][m]["summary_at_chain_default"]["false_positives"] == 0
        and report["models"][m]["summary_at_chain_default"]["detection_rate_ppm"] >= 990_000
        for m in models
    )
    if not ok:
        print("the chain's DEFAULT_MAX_SKETCH_DISTANCE does not separate these measurements")
    return 0 if ok else 1


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    run_child(Path(sys.argv[2]))
    sys.exit(0)

if __name__ == "__main__":
    sys.exit(main())
