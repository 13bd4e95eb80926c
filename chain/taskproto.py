"""The task protocol shared by coordinators, miners and the chain: what is hashed and signed.

- A task *spec* is a JSON object of strings and integers only (no floats: the hash must not
  depend on float formatting). Its hash, committed on chain, is blake2_256 of its canonical JSON
  (sorted keys, no whitespace, UTF-8).
- A *result hash* is blake2_256 of the PNG bytes; a *device hash* is blake2_256 of the canonical
  JSON of the device-class fingerprint (device name, driver, torch and diffusers versions, dtype).
- A *result commitment* (what a miner or checker puts on chain before anything tells it
  whether, or by whom, it is checked) is `result_commitment(...)`: blake2_256 of a domain, the
  committer's staker account, the task id, the result hash, the device hash, the hash of the
  image sketch and a 32-byte secret salt. Revealing those values opens it (docs/verification.md).
- Every miner request to a coordinator is signed by the miner's operator key (sr25519) over
  `request_message(...)`: the method, path, body hash, a millisecond timestamp and a random nonce,
  so a request cannot be replayed, redirected or altered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from chain import ChainError
from chain.hashing import blake2_256

SPEC_FIELDS: Mapping[str, type] = MappingProxyType(
    {
        "model": str,
        "prompt": str,
        "negative_prompt": str,
        "width": int,
        "height": int,
        "steps": int,
        "seed": int,
        "guidance_scale": str,  # a decimal string such as "0.0"
    }
)
REQUEST_DOMAIN = b"cuckoo-miner-request/v1"
COMMITMENT_DOMAIN = b"cuckoo/result/v1"
SALT_LENGTH = 32
MAX_PROMPT_BYTES = 2000
MAX_SIDE = 1024
MAX_STEPS = 100


class SpecError(ChainError):
    """A task spec that is not well-formed."""


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise SpecError unless `spec` has exactly the protocol's fields with sane values."""
    if set(spec) != set(SPEC_FIELDS):
        missing = sorted(set(SPEC_FIELDS) - set(spec))
        extra = sorted(set(spec) - set(SPEC_FIELDS))
        raise SpecError(f"spec fields: missing {missing}, unexpected {extra}")
    for name, typ in SPEC_FIELDS.items():
        value = spec[name]
        if type(value) is not typ:  # bool is not an int here
            raise SpecError(f"spec.{name} must be {typ.__name__}")
    if not spec["prompt"].strip() or len(spec["prompt"].encode()) > MAX_PROMPT_BYTES:
        raise SpecError(f"spec.prompt must be 1..{MAX_PROMPT_BYTES} bytes")
    for side in ("width", "height"):
        if not 8 <= spec[side] <= MAX_SIDE or spec[side] % 8:
            raise SpecError(f"spec.{side} must be a multiple of 8 from 8 to {MAX_SIDE}")
    if not 1 <= spec["steps"] <= MAX_STEPS:
        raise SpecError(f"spec.steps must be 1..{MAX_STEPS}")
    if not 0 <= spec["seed"] < 2**63:
        raise SpecError("spec.seed must be a non-negative 63-bit integer")


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_hash(spec: Mapping[str, Any]) -> bytes:
    validate_spec(spec)
    return blake2_256(canonical_json(spec))


def result_hash(png: bytes) -> bytes:
    return blake2_256(png)


def device_hash(fingerprint: Mapping[str, Any]) -> bytes:
    return blake2_256(canonical_json(fingerprint))


def result_commitment(
    staker: bytes,
    task_id: bytes,
    result_hash: bytes,
    device_hash: bytes,
    sketch: bytes,
    salt: bytes,
) -> bytes:
    """The blind commitment to a result: it hides the result hash until it is revealed, and it
    binds the committer (copying another's commitment opens only for that other account)."""
    for name, value in (
        ("staker", staker),
        ("task_id", task_id),
        ("result_hash", result_hash),
        ("device_hash", device_hash),
        ("salt", salt),
    ):
        if len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes, got {len(value)}")
    return blake2_256(
        COMMITMENT_DOMAIN + staker + task_id + result_hash + device_hash + blake2_256(sketch) + salt
    )


def request_message(method: str, path: str, body: bytes, timestamp_ms: int, nonce: str) -> bytes:
    """The bytes a miner signs for one request (and the coordinator verifies)."""
    return b"\n".join(
        (
            REQUEST_DOMAIN,
            method.upper().encode(),
            path.encode(),
            blake2_256(body).hex().encode(),
            str(timestamp_ms).encode(),
            nonce.encode(),
        )
    )
