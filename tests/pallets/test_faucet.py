"""Faucet: drips mint, are rate-limited per account, and can be disabled."""

from __future__ import annotations

from typing import Any

import pytest

from chain.frame.pallet import Origin
from chain.storage.kv import MemoryKV
from chain.storage.overlay import Overlay
from pallets.balances.pallet import Endowed, Minted
from pallets.balances.pallet import Error as BalancesError
from pallets.faucet import pallet as faucet
from pallets.faucet.pallet import Dripped, Error, LastDrip
from pallets.system.pallet import NewAccount
from tests.pallets.mock import (
    ALICE,
    DAVE,
    ED,
    FAUCET_AMOUNT,
    FAUCET_PERIOD,
    GENESIS_ISSUANCE,
    MockRuntime,
)


def test_drip_new_account_mints_and_endows(mock: MockRuntime) -> None:
    mock.run_to_block(3)
    mock.dispatch(DAVE, "Faucet", "drip")
    assert mock.events() == [
        NewAccount(account=DAVE),
        Endowed(account=DAVE, free_balance=FAUCET_AMOUNT),
        Minted(who=DAVE, amount=FAUCET_AMOUNT),
        Dripped(who=DAVE, amount=FAUCET_AMOUNT),
    ]
    assert mock.free(DAVE) == FAUCET_AMOUNT
    assert mock.issuance() == GENESIS_ISSUANCE + FAUCET_AMOUNT
    assert LastDrip.get(mock.state, DAVE) == 3


def test_drip_existing_account_mints(mock: MockRuntime) -> None:
    mock.dispatch(ALICE, "Faucet", "drip")
    assert mock.events() == [
        Minted(who=ALICE, amount=FAUCET_AMOUNT),
        Dripped(who=ALICE, amount=FAUCET_AMOUNT),
    ]
    assert mock.free(ALICE) == 1000 + FAUCET_AMOUNT


def test_drip_again_within_period_is_rate_limited(mock: MockRuntime) -> None:
    mock.dispatch(DAVE, "Faucet", "drip")
    for block in range(1, 1 + FAUCET_PERIOD):
        mock.run_to_block(block)
        mock.assert_noop(DAVE, "Faucet", "drip", Error.RATE_LIMITED)


def test_drip_again_after_period_succeeds(mock: MockRuntime) -> None:
    mock.dispatch(DAVE, "Faucet", "drip")
    mock.run_to_block(1 + FAUCET_PERIOD)
    mock.dispatch(DAVE, "Faucet", "drip")
    assert mock.free(DAVE) == 2 * FAUCET_AMOUNT
    assert LastDrip.get(mock.state, DAVE) == 1 + FAUCET_PERIOD


def test_drip_rate_limit_is_per_account(mock: MockRuntime) -> None:
    mock.dispatch(DAVE, "Faucet", "drip")
    mock.dispatch(ALICE, "Faucet", "drip")


def test_drip_disabled(new_test_ext: Any) -> None:
    mock = new_test_ext(enabled=False)
    mock.assert_noop(DAVE, "Faucet", "drip", Error.DISABLED)


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()], ids=["root", "none"])
def test_drip_unsigned_is_bad_origin(mock: MockRuntime, origin: Origin) -> None:
    mock.assert_noop(origin, "Faucet", "drip", "BadOrigin")


def test_drip_below_ed_for_new_account_is_noop(new_test_ext: Any) -> None:
    mock = new_test_ext(amount=ED - 1)
    mock.assert_noop(DAVE, "Faucet", "drip", BalancesError.EXISTENTIAL_DEPOSIT)


def test_drip_is_free_and_unweighted_by_fee() -> None:
    call = faucet.SPEC.call_by_name("drip")
    assert call.pays_fee is False
    assert call.args == []


def test_is_drip_allowed() -> None:
    cfg = faucet.Config(enabled=True, amount=1, period_blocks=5)

    state = Overlay(MemoryKV())
    assert faucet.is_drip_allowed(state, cfg, DAVE, 0)
    LastDrip.put(state, DAVE, 10)
    assert not faucet.is_drip_allowed(state, cfg, DAVE, 14)
    assert faucet.is_drip_allowed(state, cfg, DAVE, 15)
    assert not faucet.is_drip_allowed(state, faucet.Config(enabled=False), ALICE, 100)
