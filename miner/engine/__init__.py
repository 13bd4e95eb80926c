"""The miner's inference engine: diffusers pipelines on torch (CUDA float16 when present, CPU
float32 otherwise, or the dtype asked for), a tiny seeded random-weight pipeline for development
and tests, and the device-class fingerprint.

Importing this package is cheap: torch and diffusers are imported only when an engine is built.
"""

from miner.engine.diffusers_solver import DiffusersSolver, SolveTimings, inspect_model_folder
from miner.engine.errors import DeviceError, EngineError, EngineOOM, ModelError
from miner.engine.fingerprint import engine_fingerprint, model_hash
from miner.engine.tiny import build_tiny_pipeline

__all__ = [
    "DeviceError",
    "DiffusersSolver",
    "EngineError",
    "EngineOOM",
    "ModelError",
    "SolveTimings",
    "build_tiny_pipeline",
    "engine_fingerprint",
    "inspect_model_folder",
    "model_hash",
]
