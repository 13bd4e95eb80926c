"""The coordinator daemon: an HTTP API for apps, a signed long-poll API for miners, and the
chain side (registry, task commitments, settlements, invalid-result reports) through
substrate-interface. See docs/coordinator.md."""

from __future__ import annotations

__all__ = ["CoordinatorError", "RefusedMinerRequest"]

_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "gone_error",
}


class CoordinatorError(Exception):
    """The root of the coordinator's own errors."""


class RefusedMinerRequest(CoordinatorError):
    """A refused miner request: HTTP status, error code and message for the JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def type(self) -> str:
        """The error body's `type`, by the status."""
        return _ERROR_TYPES.get(self.status, "invalid_request_error")
