"""Fixtures for the inference engine's tests: one tiny pipeline built per session (in a temporary
folder) and one CPU engine on it, so `import diffusers` (about 10 s) is paid once.

The tests need the `miner` extra (torch, diffusers, ...); without it they are skipped.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HAVE_ENGINE = all(
    importlib.util.find_spec(name) is not None for name in ("torch", "diffusers", "transformers")
)
_skip = pytest.mark.skipif(
    not HAVE_ENGINE, reason="the miner extra (torch, diffusers) is not installed"
)
# numpy 2 vs diffusers' EulerDiscreteScheduler; harmless (shared/research/diffusion.md)
_numpy_copy = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
needs_engine = [_skip, _numpy_copy]

# nothing may reach a hub, in this process or in the subprocesses it starts
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# OpenMP threads that sleep instead of spinning while they wait: on a busy 2-core CI box the
# spinning made torch calls from the main thread 3-10x slower (it changes no result)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "tiny",
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "",
        "width": 32,
        "height": 32,
        "steps": 2,
        "seed": 1234,
        "guidance_scale": "0.0",
    }
    spec.update(overrides)
    return spec


@pytest.fixture(scope="session")
def engine_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the tiny model built in it (data/models/tiny)."""
    if not HAVE_ENGINE:
        pytest.skip("the miner extra (torch, diffusers) is not installed")
    from miner.engine.tiny import build_tiny_pipeline

    data = tmp_path_factory.mktemp("engine-data")
    build_tiny_pipeline(data / "models" / "tiny", seed=0)
    return data


@pytest.fixture(scope="session")
def tiny_model(engine_data: Path) -> Path:
    return engine_data / "models" / "tiny"


@pytest.fixture(scope="session")
def solver(engine_data: Path) -> Iterator[Any]:
    """One CPU engine on the shared tiny model."""
    from miner.engine import DiffusersSolver

    engine = DiffusersSolver("tiny", "cpu", engine_data, progress=False)
    yield engine
    engine.close()
