"""The engine's error types. Every message is one line, fit for a log line or a CLI error."""

from __future__ import annotations

from miner.solver import SolverError


def one_line(text: str, limit: int = 300) -> str:
    """`text` with its whitespace (newlines included) collapsed, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class EngineError(SolverError):
    """The inference engine cannot start or cannot run (root of the engine's errors)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class ModelError(EngineError):
    """The model folder is missing, is not a diffusers folder, or does not load."""


class DeviceError(EngineError):
    """An unknown device, or a device that this machine does not have."""


class EngineOOM(EngineError):
    """The device ran out of memory for this task: hand the task back and keep running."""
