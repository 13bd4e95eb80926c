"""Sudo: root dispatch through the key, nested-call results, key management."""

from __future__ import annotations

from typing import Any

import pytest

from chain.frame.pallet import DispatchError, ModuleError
from pallets import weights
from pallets.balances.pallet import BalanceSet, Transfer
from pallets.balances.pallet import Error as BalancesError
from pallets.faucet.pallet import Error as FaucetError
from pallets.faucet.pallet import LastDrip
from pallets.sudo import pallet as sudo
from pallets.sudo.pallet import Error, KeyChanged, KeyRemoved, Sudid, SudoAsDone
from pallets.system.pallet import Remarked
from tests.pallets.mock import ALICE, BOB, CHARLIE, DAVE, ED, GENESIS_ISSUANCE, MockRuntime


def set_balance(mock: MockRuntime, who: bytes, amount: int) -> Any:
    return mock.runtime.call("Balances", "force_set_balance", who=("Id", who), new_free=amount)


def module_error(err: Any) -> tuple[str, Any]:
    return ModuleError(err).to_value()


def test_sudo_dispatches_as_root(mock: MockRuntime) -> None:
    mock.dispatch(ALICE, "Sudo", "sudo", call=set_balance(mock, BOB, 700))
    assert mock.free(BOB) == 700
    assert mock.events() == [BalanceSet(who=BOB, free=700), Sudid(sudo_result=("Ok", ()))]


def test_sudo_inner_failure_is_reported_in_sudid(mock: MockRuntime) -> None:
    inner = mock.runtime.call(
        "Balances", "force_transfer", source=("Id", CHARLIE), dest=("Id", BOB), value=101
    )
    before = mock.snapshot()
    mock.dispatch(ALICE, "Sudo", "sudo", call=inner)
    assert mock.events() == [
        Sudid(sudo_result=("Err", module_error(BalancesError.INSUFFICIENT_BALANCE)))
    ]
    assert mock.snapshot() == before


def test_sudo_inner_bad_origin_is_reported(mock: MockRuntime) -> None:
    inner = mock.runtime.call("Balances", "transfer_allow_death", dest=("Id", BOB), value=1)
    mock.dispatch(ALICE, "Sudo", "sudo", call=inner)
    assert mock.events() == [Sudid(sudo_result=("Err", ("BadOrigin", None)))]


def test_sudo_as_inner_changes_are_reverted_on_failure(new_test_ext: Any) -> None:
    mock = new_test_ext(amount=ED - 1)  # drip writes LastDrip, then minting fails
    inner = mock.runtime.call("Faucet", "drip")
    before = mock.snapshot()
    mock.dispatch(ALICE, "Sudo", "sudo_as", who=("Id", DAVE), call=inner)
    assert mock.events() == [
        SudoAsDone(sudo_result=("Err", module_error(BalancesError.EXISTENTIAL_DEPOSIT)))
    ]
    assert LastDrip.get(mock.state, DAVE) is None
    assert mock.snapshot() == before


def test_sudo_inner_failure_discards_inner_events(mock: MockRuntime) -> None:
    events: list[Any] = []
    ctx = mock.ctx(ALICE, events)

    def failing_dispatch(inner_ctx: Any, call: Any) -> None:
        inner_ctx.emit(Remarked(sender=BOB, hash=bytes(32)))
        raise DispatchError("Other")

    ctx.dispatch = failing_dispatch
    mock.state.checkpoint()
    sudo.sudo(ctx, call=None)
    mock.state.commit_checkpoint()
    assert events == [Sudid(sudo_result=("Err", ("Other", None)))]


def test_sudo_non_key_is_require_sudo(mock: MockRuntime) -> None:
    mock.assert_noop(BOB, "Sudo", "sudo", Error.REQUIRE_SUDO, call=set_balance(mock, BOB, 700))


def test_sudo_root_origin_is_bad_origin(mock: MockRuntime) -> None:
    mock.assert_noop("root", "Sudo", "sudo", "BadOrigin", call=set_balance(mock, BOB, 700))


def test_sudo_without_key_is_require_sudo(new_test_ext: Any) -> None:
    mock = new_test_ext(sudo_key=None)
    mock.assert_noop(ALICE, "Sudo", "sudo", Error.REQUIRE_SUDO, call=set_balance(mock, BOB, 700))


def test_sudo_weight_includes_inner_call(mock: MockRuntime) -> None:
    inner = set_balance(mock, BOB, 700)
    call = mock.call("Sudo", "sudo", call=inner)
    assert call.weight == weights.sudo_sudo() + inner.weight


def test_set_key_changes_key(mock: MockRuntime) -> None:
    mock.dispatch(ALICE, "Sudo", "set_key", new=("Id", BOB))
    assert sudo.Key.get(mock.state) == BOB
    assert mock.events() == [KeyChanged(old=ALICE, new=BOB)]
    mock.assert_noop(ALICE, "Sudo", "sudo", Error.REQUIRE_SUDO, call=set_balance(mock, BOB, 1))
    mock.dispatch(BOB, "Sudo", "sudo", call=set_balance(mock, BOB, 700))


def test_set_key_non_key_is_require_sudo(mock: MockRuntime) -> None:
    mock.assert_noop(BOB, "Sudo", "set_key", Error.REQUIRE_SUDO, new=("Id", BOB))


@pytest.mark.parametrize("new", [("Index", 0), ("Address32", BOB)], ids=lambda a: a[0])
def test_set_key_cannot_lookup(mock: MockRuntime, new: tuple[str, object]) -> None:
    mock.assert_noop(ALICE, "Sudo", "set_key", "CannotLookup", new=new)


def test_sudo_as_dispatches_signed(mock: MockRuntime) -> None:
    inner = mock.runtime.call("Balances", "transfer_allow_death", dest=("Id", CHARLIE), value=50)
    mock.dispatch(ALICE, "Sudo", "sudo_as", who=("Id", BOB), call=inner)
    assert (mock.free(BOB), mock.free(CHARLIE)) == (450, 150)
    assert mock.events() == [
        Transfer(from_=BOB, to=CHARLIE, amount=50),
        SudoAsDone(sudo_result=("Ok", ())),
    ]


def test_sudo_as_inner_failure_is_reported(mock: MockRuntime) -> None:
    inner = mock.runtime.call("Balances", "transfer_keep_alive", dest=("Id", ALICE), value=100)
    mock.dispatch(ALICE, "Sudo", "sudo_as", who=("Id", CHARLIE), call=inner)
    assert mock.events() == [
        SudoAsDone(sudo_result=("Err", module_error(BalancesError.EXPENDABILITY)))
    ]
    assert mock.free(CHARLIE) == 100


def test_sudo_as_non_key_is_require_sudo(mock: MockRuntime) -> None:
    inner = mock.runtime.call("Faucet", "drip")
    mock.assert_noop(BOB, "Sudo", "sudo_as", Error.REQUIRE_SUDO, who=("Id", BOB), call=inner)


@pytest.mark.parametrize(
    "who", [("Address20", b"\x00" * 20), ("Address32", BOB)], ids=lambda a: a[0]
)
def test_sudo_as_cannot_lookup(mock: MockRuntime, who: tuple[str, object]) -> None:
    inner = mock.runtime.call("Faucet", "drip")
    mock.assert_noop(ALICE, "Sudo", "sudo_as", "CannotLookup", who=who, call=inner)


def test_sudo_nested_call_as_root_is_bad_origin(mock: MockRuntime) -> None:
    drip = mock.runtime.call("Faucet", "drip")
    inner = mock.runtime.call("Sudo", "sudo_as", who=("Id", BOB), call=drip)
    mock.dispatch(ALICE, "Sudo", "sudo", call=inner)  # sudo_as needs the signed key, not root
    assert mock.events() == [Sudid(sudo_result=("Err", ("BadOrigin", None)))]


def test_sudo_as_key_nested_sudo(mock: MockRuntime) -> None:
    inner = mock.runtime.call("Sudo", "sudo", call=set_balance(mock, BOB, 900))
    mock.dispatch(ALICE, "Sudo", "sudo_as", who=("Id", ALICE), call=inner)
    assert mock.events() == [
        BalanceSet(who=BOB, free=900),
        Sudid(sudo_result=("Ok", ())),
        SudoAsDone(sudo_result=("Ok", ())),
    ]
    assert mock.issuance() == GENESIS_ISSUANCE + 400


def test_remove_key(mock: MockRuntime) -> None:
    mock.dispatch(ALICE, "Sudo", "remove_key")
    assert mock.events() == [KeyRemoved()]
    assert sudo.Key.get(mock.state) is None
    mock.assert_noop(ALICE, "Sudo", "sudo", Error.REQUIRE_SUDO, call=set_balance(mock, BOB, 1))


def test_sudid_err_event_round_trips(mock: MockRuntime) -> None:
    event = Sudid(sudo_result=("Err", module_error(FaucetError.RATE_LIMITED)))
    raw = mock.runtime.event_type.encode(event)
    assert raw == bytes((4, 0, 1, 3, 6, 1, 0, 0, 0))
    assert mock.runtime.event_type.decode_all(raw) == event
