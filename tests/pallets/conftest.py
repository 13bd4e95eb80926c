"""Pallet-test fixtures: `mock` (a fresh MockRuntime) and `new_test_ext` (a factory for other
parameters). Every mock made is checked against every pallet's invariants at teardown
(`runtime.try_state`, FRAME's try_state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.pallets.mock import GENESIS_BALANCES, SUDO_KEY, MockRuntime, mock_config

MockFactory = Callable[..., MockRuntime]


@pytest.fixture
def new_test_ext() -> Iterator[MockFactory]:
    """Factory for mocks with other parameters; every mock made is checked at teardown."""
    made: list[MockRuntime] = []

    def make(
        *, endowed: dict[bytes, int] | None = None, sudo_key: bytes | None = SUDO_KEY, **faucet: Any
    ) -> MockRuntime:
        mock = MockRuntime(
            mock_config(**faucet), GENESIS_BALANCES if endowed is None else endowed, sudo_key
        )
        made.append(mock)
        return mock

    yield make
    for mock in made:
        assert mock.state.depth == 0, "a checkpoint was left open"
        mock.runtime.try_state(mock.state)


@pytest.fixture
def mock(new_test_ext: MockFactory) -> MockRuntime:
    return new_test_ext()
