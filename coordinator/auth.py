"""Signed miner requests: verification of the X-Cuckoo-* headers against the registry.

A miner signs its requests with its operator key (`chainclient.signing`, which also checks the
signature). The coordinator refuses a request that is unsigned or wrongly signed, stale (more
than 30 s from now), replayed (nonce seen for that operator in the last 60 s) with 401, and one
from an operator that does not serve an Active registered miner with 403.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Protocol

from chainclient.registry import Registration
from chainclient.signing import RequestRefused, verify_request
from coordinator import RefusedMinerRequest

MAX_SKEW_MS = 30_000
NONCE_TTL_MS = 60_000
MAX_NONCES = 1_000_000  # across all operators; beyond this the oldest are forgotten early


class RegistryView(Protocol):
    """The registry as the coordinator last read it (injected in tests)."""

    def miner_by_operator(self, operator: bytes) -> Registration | None: ...


class StaticRegistry:
    """A RegistryView over a fixed list (tests, benchmarks); `set` replaces it."""

    def __init__(self, miners: list[Registration] | None = None) -> None:
        self._by_staker: dict[bytes, Registration] = {}
        self._by_operator: dict[bytes, Registration] = {}
        self.set(miners or [])

    def set(self, miners: list[Registration]) -> None:
        self._by_staker = {m.staker: m for m in miners}
        self._by_operator = {m.operator: m for m in miners}

    def miner_by_operator(self, operator: bytes) -> Registration | None:
        return self._by_operator.get(operator)

    def miners(self) -> list[Registration]:
        return list(self._by_staker.values())


class AuthError(RefusedMinerRequest):
    """A miner request refused for its signature, nonce or registration (401 or 403)."""


class NonceCache:
    """Nonces seen per operator within the TTL (a bounded, time-ordered memory)."""

    def __init__(self, ttl_ms: int = NONCE_TTL_MS, capacity: int = MAX_NONCES) -> None:
        self._ttl_ms = ttl_ms
        self._capacity = capacity
        self._seen: dict[tuple[bytes, str], int] = {}
        self._order: collections.deque[tuple[int, tuple[bytes, str]]] = collections.deque()

    def _prune(self, now_ms: int) -> None:
        while self._order and (
            self._order[0][0] <= now_ms - self._ttl_ms or len(self._order) > self._capacity
        ):
            seen_at, key = self._order.popleft()
            if self._seen.get(key) == seen_at:
                del self._seen[key]

    def check_and_add(self, operator: bytes, nonce: str, now_ms: int) -> bool:
        """True and remember it if `nonce` is fresh for `operator`; False for a replay."""
        self._prune(now_ms)
        key = (operator, nonce.lower())
        if key in self._seen:
            return False
        self._seen[key] = now_ms
        self._order.append((now_ms, key))
        return True

    def __len__(self) -> int:
        return len(self._seen)


class MinerAuth:
    """Verifies signed miner requests; `clock_ms` is injectable for tests."""

    def __init__(self, registry: RegistryView, clock_ms: Callable[[], int]) -> None:
        self._registry = registry
        self._clock_ms = clock_ms
        self._nonces = NonceCache()

    def verify(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Registration:
        """The miner whose operator signed this request, or AuthError."""
        now = self._clock_ms()
        try:
            signed = verify_request(
                method, path, body, headers, now_ms=now, max_skew_ms=MAX_SKEW_MS
            )
        except RequestRefused as exc:
            raise AuthError(401, exc.code, exc.message) from exc
        operator, nonce = signed.operator, signed.nonce
        if not self._nonces.check_and_add(operator, nonce, now):
            raise AuthError(401, "replayed_nonce", "nonce already used in the last 60 s")
        record = self._registry.miner_by_operator(operator)
        if record is None:
            raise AuthError(403, "not_registered", "operator does not serve a registered miner")
        if not record.is_active:
            raise AuthError(403, "miner_not_active", f"miner registration is {record.status}")
        return record
