"""Miner-test fixtures: the operator key and fake coordinators (real aiohttp servers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from substrateinterface import Keypair

from tests.miner.fakes import FakeCoordinator


@pytest.fixture
def operator() -> Keypair:
    return Keypair.create_from_uri("//MinerOperator")


@pytest.fixture
def coordinator_factory() -> Iterator[Callable[..., FakeCoordinator]]:
    started: list[FakeCoordinator] = []

    def make(**kwargs: object) -> FakeCoordinator:
        c = FakeCoordinator(**kwargs).start()  # type: ignore[arg-type]
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def coordinator(coordinator_factory: Callable[..., FakeCoordinator]) -> FakeCoordinator:
    return coordinator_factory()
