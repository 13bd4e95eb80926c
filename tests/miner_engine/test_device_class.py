"""Device classes: everything that changes the engine's output bytes is in the fingerprint (CPU
kernel capability, dtype, library versions), the tiny model's weights do not depend on the CPU
that built them, and the dtype is chosen by argument, environment or the device's default.

The capability tests start one process per `ATEN_CPU_CAPABILITY` value this CPU supports (torch
reads it once, at import)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from chain.taskproto import device_hash
from tests.miner_engine.conftest import make_spec, needs_engine

pytestmark = [*needs_engine]
REPO = Path(__file__).resolve().parents[2]
CAPABILITIES = {"default": "DEFAULT", "avx2": "AVX2", "avx512": "AVX512"}

FINGERPRINT_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from miner.engine.fingerprint import engine_fingerprint
    fp = engine_fingerprint(device="cpu", dtype="float32", model_id="tiny",
                            model_folder=Path(sys.argv[1]), variant=None)
    print("FP " + json.dumps(fp, sort_keys=True), flush=True)
    """
)

BUILD_CHILD = textwrap.dedent(
    """
    import hashlib, sys, warnings
    from pathlib import Path
    warnings.simplefilter("ignore")
    import torch
    from miner.engine.tiny import build_tiny_pipeline
    path = build_tiny_pipeline(Path(sys.argv[1]), seed=0)
    for rel in sys.argv[2:]:
        print("W", rel, hashlib.sha256((path / rel).read_bytes()).hexdigest(), flush=True)
    print("CAP", torch.backends.cpu.get_cpu_capability(), flush=True)
    """
)


def _run(code: str, capability: str, *args: str, **env_extra: str) -> list[str]:
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, HF_HUB_OFFLINE="1", **env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def supported_capabilities() -> list[str]:
    """The ATEN_CPU_CAPABILITY values torch honours on this CPU (at least "default")."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = []
    for value, reported in CAPABILITIES.items():
        (line,) = _run(probe, value)
        if line == reported:
            out.append(value)
    assert "default" in out
    return out


def test_fingerprint_names_the_cpu_capability_and_numpy(solver: Any) -> None:
    import numpy
    import torch

    fp = solver.fingerprint()
    assert fp["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert fp["numpy"] == numpy.__version__
    assert fp["kernel_env"] == "none" or "=" in fp["kernel_env"]
    assert fp["engine"] == "diffusers/2"


def test_two_cpu_capabilities_are_two_device_classes(
    tiny_model: Path, supported_capabilities: list[str]
) -> None:
    if len(supported_capabilities) < 2:
        pytest.skip("this CPU supports only torch's default kernels")
    hashes = {}
    for capability in supported_capabilities[:2]:
        (line,) = [
            x for x in _run(FINGERPRINT_CHILD, capability, str(tiny_model)) if x[:3] == "FP "
        ]
        fp = json.loads(line[3:])
        assert fp["cpu_capability"] == CAPABILITIES[capability]
        hashes[capability] = device_hash(fp)
    first, second = supported_capabilities[:2]
    assert hashes[first] != hashes[second]
    # and the same capability in another process is the same class
    (line,) = [x for x in _run(FINGERPRINT_CHILD, first, str(tiny_model)) if x[:3] == "FP "]
    assert device_hash(json.loads(line[3:])) == hashes[first]
    # unless oneDNN's instruction set is capped there
    capped = _run(FINGERPRINT_CHILD, first, str(tiny_model), ONEDNN_MAX_CPU_ISA="AVX2")
    (line,) = [x for x in capped if x[:3] == "FP "]
    fp = json.loads(line[3:])
    assert fp["kernel_env"] == "ONEDNN_MAX_CPU_ISA=AVX2"
    assert device_hash(fp) != hashes[first]


def test_torch_noise_depends_on_the_capability(supported_capabilities: list[str]) -> None:
    """Why the capability is in the fingerprint even of GPU runs: the initial latents are drawn
    on the CPU generator, and torch's vectorised normal sampler rounds differently from the
    scalar one (measured here: default vs avx2 differ, avx2 vs avx512 agree)."""
    if "avx2" not in supported_capabilities:
        pytest.skip("no avx2 kernels on this CPU")
    code = (
        "import hashlib, torch; g = torch.Generator('cpu').manual_seed(1234); "
        "print(hashlib.sha256(torch.randn((1, 4, 64, 64), generator=g).numpy().tobytes())"
        ".hexdigest())"
    )
    assert _run(code, "default") != _run(code, "avx2")


@pytest.mark.slow
def test_tiny_weights_do_not_depend_on_the_capability(
    tiny_model: Path, supported_capabilities: list[str], tmp_path: Path
) -> None:
    """The session's tiny model (built with this CPU's best kernels) has the very weight bytes
    of one built with torch's default (scalar) kernels."""
    from tests.miner_engine.test_tiny import WEIGHTS

    here = {rel: hashlib.sha256((tiny_model / rel).read_bytes()).hexdigest() for rel in WEIGHTS}
    lines = _run(BUILD_CHILD, "default", str(tmp_path / "tiny"), *WEIGHTS)
    assert "CAP DEFAULT" in lines
    there = {x.split()[1]: x.split()[2] for x in lines if x.startswith("W ")}
    assert there == here


def test_deterministic_init_keeps_exact_constants_and_replaces_the_rest() -> None:
    import torch

    from miner.engine.tiny import INIT_BITS, deterministic_init

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.LayerNorm(8))
    deterministic_init(module, 3, "m")
    weight, bias = module[0].weight.detach(), module[0].bias.detach()
    assert torch.equal(module[1].weight, torch.ones(8))  # LayerNorm's exact init is kept
    assert torch.equal(module[1].bias, torch.zeros(8))
    # k * 2^(e - 15) with 2^e ~ 16^-1/2: fan_in 16 has bit length 5, so e = -2
    scaled = weight * 2.0 ** (2 + INIT_BITS)
    assert torch.equal(scaled, scaled.round())
    assert float(weight.abs().max()) <= 0.25
    assert float(weight.std()) > 0.1  # spread over the range, not a constant
    assert not torch.equal(bias, torch.zeros(8))
    again = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.LayerNorm(8))
    deterministic_init(again, 3, "m")
    assert torch.equal(again[0].weight, weight)  # whatever torch drew before
    deterministic_init(again, 4, "m")
    assert not torch.equal(again[0].weight, weight)


# -- dtype --


def test_parse_dtype() -> None:
    from miner.engine import DeviceError
    from miner.engine.diffusers_solver import parse_dtype

    assert parse_dtype(None, "cpu") == "float32"
    assert parse_dtype("auto", "cuda:0") == "float16"
    assert parse_dtype(" BFloat16 ", "cpu") == "bfloat16"
    assert parse_dtype("float16", "cpu") == "float16"
    with pytest.raises(DeviceError, match="unknown dtype"):
        parse_dtype("fp8", "cpu")


@pytest.fixture(scope="module")
def bf16_solver(engine_data: Path) -> Any:
    from miner.engine import DiffusersSolver

    engine = DiffusersSolver("tiny", "cpu", engine_data, progress=False, dtype="bfloat16")
    yield engine
    engine.close()


def test_bfloat16_engine_is_another_class_within_the_sketch_threshold(
    solver: Any, bf16_solver: Any
) -> None:
    """An honest bf16 checker and an honest fp32 miner: other bytes, another device class, and
    sketches that agree; a miner that ran half the steps is caught by the same bf16 checker."""
    from chain.sketch import DEFAULT_MAX_SKETCH_DISTANCE, sketch_distance
    from chainclient.sketch import image_sketch

    assert bf16_solver.dtype_name == "bfloat16"
    assert str(bf16_solver.pipeline.unet.dtype) == "torch.bfloat16"
    fp = bf16_solver.fingerprint()
    assert fp["dtype"] == "bfloat16"
    assert device_hash(fp) != device_hash(solver.fingerprint())
    spec = make_spec(width=64, height=64, steps=4, seed=77)
    honest, checker = solver.solve(spec), bf16_solver.solve(spec)
    assert honest != checker
    assert bf16_solver.solve(spec) == checker  # bf16 is deterministic too
    distance = sketch_distance(image_sketch(honest), image_sketch(checker))
    assert distance <= DEFAULT_MAX_SKETCH_DISTANCE
    fake = solver.solve(dict(spec, steps=2))
    assert sketch_distance(image_sketch(fake), image_sketch(checker)) > DEFAULT_MAX_SKETCH_DISTANCE


def test_dtype_from_the_environment(engine_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from miner.engine import DeviceError, DiffusersSolver

    monkeypatch.setenv("CUCKOO_MINER_DTYPE", "bfloat16")
    engine = DiffusersSolver("tiny", "cpu", engine_data, progress=False, warmup=False)
    try:
        assert engine.dtype_name == "bfloat16"
        assert engine.fingerprint()["dtype"] == "bfloat16"
    finally:
        engine.close()
    monkeypatch.setenv("CUCKOO_MINER_DTYPE", "int8")
    with pytest.raises(DeviceError, match="unknown dtype"):
        DiffusersSolver("tiny", "cpu", engine_data, progress=False, warmup=False)


def test_miner_cli_dtype_flag(engine_data: Path) -> None:
    from miner.cli import build_parser, build_solver

    parser = build_parser()
    args = parser.parse_args(
        [
            "--chain-url",
            "ws://127.0.0.1:9944",
            "--device",
            "cpu",
            "--dtype",
            "bfloat16",
            "--data-dir",
            str(engine_data),
        ]
    )
    engine = build_solver(args)
    try:
        assert engine.fingerprint()["dtype"] == "bfloat16"
    finally:
        engine.close()  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        parser.parse_args(["--chain-url", "ws://x", "--dtype", "fp8"])
    assert parser.parse_args(["--chain-url", "ws://x"]).dtype is None
