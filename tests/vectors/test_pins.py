"""Consensus pins: metadata bytes, genesis hashes and the state roots of a recorded chain.

These change only by a deliberate, consensus-visible change (say so in the commit, and
regenerate with `python -m tests.vectors.scenario --write`). A refactor of the framework, the
pallets or their wiring must leave every one of them as it is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.frame.strategies import decode_metadata
from tests.vectors import scenario

PINS: dict[str, Any] = json.loads(scenario.PINS.read_text())


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two decoded metadata values first differ (a readable path)."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b:
                return f"{path}.{key}: present on one side only"
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return f"{path}: {len(a)} items != {len(b)}" if len(a) != len(b) else None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def test_metadata_bytes_are_pinned() -> None:
    _, metadata = scenario.spec_pins("dev")
    pinned = bytes.fromhex(scenario.METADATA_DEV.read_text().strip())
    if metadata != pinned:
        _, now = decode_metadata(metadata)
        _, then = decode_metadata(pinned)
        where = _first_difference(then.value, now.value, "metadata")
        pytest.fail(f"metadata changed ({len(pinned)} -> {len(metadata)} bytes) at {where}")


@pytest.mark.parametrize("name", ["dev", "local"])
def test_spec_genesis_and_metadata_are_pinned(name: str) -> None:
    pins, _ = scenario.spec_pins(name)
    assert pins == PINS["specs"][name]


def test_recorded_chain_state_roots_are_pinned() -> None:
    recorded = scenario.to_json(scenario.record())
    pinned = PINS["recorded_chain"]
    assert recorded["genesis_hash"] == pinned["genesis_hash"]
    assert recorded["failed_extrinsics"] == pinned["failed_extrinsics"] == 2
    for now, then in zip(recorded["blocks"], pinned["blocks"], strict=True):
        assert now == then, f"block #{then['number']} differs: the state root or header changed"


def test_first_difference_names_the_path() -> None:
    assert _first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == ".a[1].b: 2 != 3"
    assert _first_difference([1, 2], [1, 2, 3]) == ": 2 items != 3"
    assert _first_difference({"x": 1}, {"x": 1}) is None
