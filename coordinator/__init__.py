"""The coordinator daemon: an HTTP API for apps, a signed long-poll API for miners, and the
chain side (registry, task commitments, settlements, invalid-result reports) through
substrate-interface. See docs/coordinator.md."""

from __future__ import annotations

__all__ = ["CoordinatorError"]


class CoordinatorError(Exception):
    """The root of the coordinator's own errors."""
