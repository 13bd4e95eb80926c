"""Pallet-test fixtures: `mock` (a fresh MockRuntime) and `new_test_ext` (a factory for other
parameters). Every mock made is checked against the Balances invariants at teardown (try_state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pallets.balances import pallet as balances
from pallets.system import pallet as system
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
        balances.check_invariants(mock.state)
        check_account_invariants(mock)


def check_account_invariants(mock: MockRuntime) -> None:
    """System/Balances account invariants: a record exists iff it has a provider or a nonce; a
    funded account holds at least the existential deposit and has its balance provider."""
    ed = mock.config.balances.existential_deposit
    for who, info in system.Account.iter(mock.state):
        assert info.providers > 0 or info.sufficients > 0 or info.nonce > 0, who.hex()
        funded = info.data.free > 0 or info.data.reserved > 0
        assert info.providers == int(funded), f"{who.hex()}: providers {info.providers}"
        assert info.data.free == 0 or info.data.free + info.data.reserved >= ed, who.hex()


@pytest.fixture
def mock(new_test_ext: MockFactory) -> MockRuntime:
    return new_test_ext()
