"""The engine's heavy imports, made lazily and typed as Any.

torch, diffusers and transformers take about 10 s to import, so nothing imports them at module
level; importing them through `importlib` also keeps the type checker out of these (partly
typed, very large) packages, the equivalent of `ignore_missing_imports` for them.
"""

from __future__ import annotations

import importlib
from typing import Any


def torch() -> Any:
    return importlib.import_module("torch")


def diffusers() -> Any:
    return importlib.import_module("diffusers")


def transformers() -> Any:
    return importlib.import_module("transformers")
