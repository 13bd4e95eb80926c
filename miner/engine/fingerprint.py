"""The device-class fingerprint: exactly what decides whether two miners produce bit-identical
images for the same spec.

Bytes are identical only when all of these match: the device model (CPU model and thread count,
or GPU name and compute capability), torch's CPU kernel capability (`default`, `avx2`,
`avx512`, ...: it picks the vectorised CPU kernels, and even the initial noise that
`torch.randn` draws on the CPU generator differs in its last bits between `default` and `avx2`,
so it matters for GPU runs too) and the environment variables that cap oneDNN's and MKL's
instruction sets, the CUDA runtime/driver/cuDNN versions, the torch, diffusers,
transformers and numpy versions (the scheduler computes its sigmas with numpy), the dtype, the
model (configs and weight files), and the engine's own settings (its version, which fixes the PNG
encoding, and the zlib that Pillow uses). Every value is a string (`chain.taskproto.device_hash`
hashes its canonical JSON). Miners whose fingerprints differ are never compared by exact hash:
the chain compares their image sketches instead (`chain/sketch.py`).

Nothing here imports torch or diffusers unless the caller already has (versions come from
package metadata), so it is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ENGINE_VERSION = "diffusers/2"  # 2: dtype choice, capability-independent tiny weights
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".gguf", ".msgpack")
CONTENT_HASH_LIMIT = 1 << 20  # config-sized files are hashed by content, larger ones by size
# environment variables that cap or change the instruction sets of torch's CPU libraries (oneDNN
# convolutions, MKL matrix products), so the kernels and the low bits of their results
KERNEL_ENV = (
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def cpu_model_name() -> str:
    """The CPU model as the OS reports it (`model name` in /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def nvidia_driver_version() -> str:
    """The NVIDIA kernel driver version, from /proc (no subprocess, no NVML)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(errors="replace")
    except OSError:
        return "unknown"
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return word
    return "unknown"


def _model_files(folder: Path) -> list[Path]:
    files = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):  # caches, build markers
            continue
        if path.is_file():
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def model_hash(folder: Path) -> str:
    """blake2b-256 (hex) over the model folder: configs by content, weights by name and size.
    Cheap (no weight file is read) and changes when any file is added, removed or resized."""
    folder = Path(folder)
    h = hashlib.blake2b(digest_size=32, person=b"cuckoo-model")
    for path in _model_files(folder):
        rel = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        if path.name.endswith(WEIGHT_SUFFIXES) or size > CONTENT_HASH_LIMIT:
            entry: dict[str, Any] = {"file": rel, "size": size}
        else:
            entry = {"file": rel, "blake2b": hashlib.blake2b(path.read_bytes()).hexdigest()}
        h.update(json.dumps(entry, sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def pillow_png_version() -> str:
    """Pillow and the zlib it encodes PNGs with (the zlib decides the compressed bytes)."""
    try:
        from PIL import features

        zlib_version = features.version("zlib") or "unknown"
    except Exception:  # pragma: no cover - Pillow is a dependency of the engine
        zlib_version = "unknown"
    return f"pillow {package_version('pillow')} zlib {zlib_version}"


def cpu_capability() -> str:
    """torch's CPU kernel capability ("DEFAULT", "AVX2", "AVX512", ...; set by the hardware or
    forced by $ATEN_CPU_CAPABILITY), or "unknown" when torch is not imported."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return "unknown"
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch < 2.1
        return "unknown"


def device_fingerprint(device: str, dtype: str) -> dict[str, str]:
    """The device part: `device` is "cpu" or "cuda[:N]"; uses torch (already imported) for
    CUDA details, the CPU capability and the CPU thread count."""
    torch: Any = sys.modules.get("torch")
    kernel_env = ";".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ)
    out: dict[str, str] = {
        "dtype": dtype,
        "cpu_capability": cpu_capability(),
        "kernel_env": kernel_env or "none",
    }
    if device.startswith("cuda"):
        if torch is None:
            raise RuntimeError("torch must be imported before fingerprinting a CUDA device")
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        out["device"] = f"cuda {torch.cuda.get_device_name(index)} sm_{major}{minor}"
        out["driver"] = (
            f"cuda {torch.version.cuda}; nvidia {nvidia_driver_version()}; cudnn {cudnn}"
        )
    else:
        threads = torch.get_num_threads() if torch is not None else os.cpu_count() or 1
        out["device"] = f"cpu {cpu_model_name()} ({platform.machine()}, {threads} threads)"
        out["driver"] = "cpu"
    return out


def engine_fingerprint(
    *, device: str, dtype: str, model_id: str, model_folder: Path, variant: str | None
) -> dict[str, str]:
    """The full fingerprint of one loaded engine."""
    return {
        **device_fingerprint(device, dtype),
        "engine": ENGINE_VERSION,
        "torch": package_version("torch"),
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "numpy": package_version("numpy"),
        "png": pillow_png_version(),
        "model": model_id,
        "model_hash": model_hash(model_folder),
        "variant": variant or "default",
    }
