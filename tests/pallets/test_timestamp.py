"""Timestamp: set once per block by an unsigned inherent, never too early, required each block."""

from __future__ import annotations

import pytest

from chain.frame.pallet import DispatchError
from pallets.timestamp import pallet as timestamp
from tests.pallets.mock import ALICE, MockRuntime

MIN_PERIOD = 500


def finalize(mock: MockRuntime) -> None:
    timestamp.on_finalize(mock.ctx("root", []))


def test_set_stores_now(mock: MockRuntime) -> None:
    mock.dispatch("none", "Timestamp", "set", now=1_000)
    assert timestamp.Now.get(mock.state) == 1_000
    assert timestamp.DidUpdate.get(mock.state) is True
    assert mock.events() == []


def test_set_twice_in_a_block_fails(mock: MockRuntime) -> None:
    mock.dispatch("none", "Timestamp", "set", now=1_000)
    err = mock.assert_noop("none", "Timestamp", "set", "Other", now=2_000)
    assert "only once" in str(err)


def test_set_too_early_fails(mock: MockRuntime) -> None:
    mock.dispatch("none", "Timestamp", "set", now=1_000)
    finalize(mock)
    err = mock.assert_noop("none", "Timestamp", "set", "Other", now=1_000 + MIN_PERIOD - 1)
    assert "MinimumPeriod" in str(err)
    mock.dispatch("none", "Timestamp", "set", now=1_000 + MIN_PERIOD)
    assert timestamp.Now.get(mock.state) == 1_000 + MIN_PERIOD


def test_set_first_block_any_time(mock: MockRuntime) -> None:
    mock.dispatch("none", "Timestamp", "set", now=1)
    assert timestamp.Now.get(mock.state) == 1


@pytest.mark.parametrize("origin", [ALICE, "root"], ids=["signed", "root"])
def test_set_requires_none_origin(mock: MockRuntime, origin: object) -> None:
    mock.assert_noop(origin, "Timestamp", "set", "BadOrigin", now=1_000)


def test_on_finalize_without_set_fails(mock: MockRuntime) -> None:
    with pytest.raises(DispatchError) as info:
        finalize(mock)
    assert info.value.kind == "Other"


def test_on_finalize_clears_did_update(mock: MockRuntime) -> None:
    mock.dispatch("none", "Timestamp", "set", now=1_000)
    finalize(mock)
    assert not timestamp.DidUpdate.exists(mock.state)
    with pytest.raises(DispatchError):
        finalize(mock)


def test_set_is_a_free_mandatory_inherent() -> None:
    call = timestamp.SPEC.call_by_name("set")
    assert (call.dispatch_class, call.pays_fee) == ("Mandatory", False)
