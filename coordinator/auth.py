"""Signed miner requests: verification of the X-Cuckoo-* headers against the registry.

A miner signs `chain.taskproto.request_message(method, path, body, timestamp_ms, nonce)` with
its operator key (sr25519). The coordinator refuses a request that is unsigned or wrongly
signed, stale (more than 30 s from now), replayed (nonce seen for that operator in the last
60 s) with 401, and one from an operator that does not serve an Active registered miner with
403.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Protocol

import sr25519
from substrateinterface.utils.ss58 import ss58_decode

from chain.taskproto import request_message
from coordinator import CoordinatorError

MAX_SKEW_MS = 30_000
NONCE_TTL_MS = 60_000
MAX_NONCES = 1_000_000  # across all operators; beyond this the oldest are forgotten early
NONCE_RE = re.compile(r"[0-9a-fA-F]{32}")
H_OPERATOR = "X-Cuckoo-Operator"
H_TIMESTAMP = "X-Cuckoo-Timestamp"
H_NONCE = "X-Cuckoo-Nonce"
H_SIGNATURE = "X-Cuckoo-Signature"


@dataclasses.dataclass(frozen=True, slots=True)
class MinerRecord:
    """What the registry says about one miner (keyed by its staker)."""

    staker: bytes
    operator: bytes
    status: str  # Active | Inactive | Suspended
    own_stake: int
    votes: int
    name: str = ""
    gpu_model: str = ""

    @property
    def weight(self) -> int:
        return self.own_stake + self.votes

    @property
    def is_active(self) -> bool:
        return self.status == "Active"


class RegistryView(Protocol):
    """The registry as the coordinator last read it (injected in tests)."""

    def miner_by_operator(self, operator: bytes) -> MinerRecord | None: ...


class StaticRegistry:
    """A RegistryView over a fixed list (tests, benchmarks); `set` replaces it."""

    def __init__(self, miners: list[MinerRecord] | None = None) -> None:
        self._by_staker: dict[bytes, MinerRecord] = {}
        self._by_operator: dict[bytes, MinerRecord] = {}
        self.set(miners or [])

    def set(self, miners: list[MinerRecord]) -> None:
        self._by_staker = {m.staker: m for m in miners}
        self._by_operator = {m.operator: m for m in miners}

    def miner_by_operator(self, operator: bytes) -> MinerRecord | None:
        return self._by_operator.get(operator)

    def miners(self) -> list[MinerRecord]:
        return list(self._by_staker.values())


class AuthError(CoordinatorError):
    """A refused miner request: HTTP status, error type and code for the JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def type(self) -> str:
        return "authentication_error" if self.status == 401 else "permission_error"


@functools.lru_cache(maxsize=4096)
def decode_operator(ss58: str) -> bytes:
    """The 32-byte public key of an SS58 address (any prefix); ValueError if malformed.
    Cached: every miner request names its operator."""
    try:
        public = bytes.fromhex(ss58_decode(ss58))
    except Exception as exc:  # the ss58 library raises ValueError and others
        raise ValueError(f"not an SS58 address: {ss58!r}") from exc
    if len(public) != 32:
        raise ValueError("not a 32-byte account")
    return public


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
    ) -> MinerRecord:
        """The miner whose operator signed this request, or AuthError."""
        values = [headers.get(h) for h in (H_OPERATOR, H_TIMESTAMP, H_NONCE, H_SIGNATURE)]
        if any(v is None or v == "" for v in values):
            raise AuthError(401, "missing_signature", "X-Cuckoo-* signature headers are required")
        operator_ss58, ts_text, nonce, sig_text = (str(v) for v in values)
        try:
            operator = decode_operator(operator_ss58)
        except ValueError as exc:
            raise AuthError(401, "bad_operator", str(exc)) from exc
        if not ts_text.isdigit() or len(ts_text) > 16:
            raise AuthError(401, "bad_timestamp", "X-Cuckoo-Timestamp must be unix milliseconds")
        timestamp = int(ts_text)
        now = self._clock_ms()
        if abs(now - timestamp) > MAX_SKEW_MS:
            raise AuthError(401, "stale_timestamp", "request timestamp is more than 30 s off")
        if not NONCE_RE.fullmatch(nonce):
            raise AuthError(401, "bad_nonce", "X-Cuckoo-Nonce must be 32 hex characters")
        try:
            if not sig_text.startswith("0x"):
                raise ValueError("no 0x")
            signature = bytes.fromhex(sig_text[2:])
            if len(signature) != 64:
                raise ValueError("length")
        except ValueError as exc:
            raise AuthError(
                401, "bad_signature", "X-Cuckoo-Signature must be 0x + 64 bytes"
            ) from exc
        message = request_message(method, path, body, timestamp, nonce)
        try:
            valid = bool(sr25519.verify(signature, message, operator))
        except Exception:  # the binding raises on malformed points
            valid = False
        if not valid:
            raise AuthError(401, "bad_signature", "signature does not verify")
        if not self._nonces.check_and_add(operator, nonce, now):
            raise AuthError(401, "replayed_nonce", "nonce already used in the last 60 s")
        record = self._registry.miner_by_operator(operator)
        if record is None:
            raise AuthError(403, "not_registered", "operator does not serve a registered miner")
        if not record.is_active:
            raise AuthError(403, "miner_not_active", f"miner registration is {record.status}")
        return record
