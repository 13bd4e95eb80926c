"""System: remarks, account records (creation, reaping, nonces) and storage layout."""

from __future__ import annotations

import pytest

from chain.frame.pallet import Origin
from chain.hashing import blake2_128, blake2_256, twox128
from pallets.balances.pallet import Endowed, Transfer
from pallets.system import pallet as system
from pallets.system.pallet import AccountData, AccountInfo, KilledAccount, NewAccount, Remarked
from tests.pallets.mock import ALICE, BOB, DAVE, MockRuntime


@pytest.mark.parametrize(
    "origin", [ALICE, Origin.root(), Origin.none()], ids=["signed", "root", "none"]
)
def test_remark_any_origin_changes_nothing(mock: MockRuntime, origin: object) -> None:
    before = mock.snapshot()
    mock.dispatch(origin, "System", "remark", remark=b"hello")
    assert mock.snapshot() == before
    assert mock.events() == []


def test_remark_with_event_emits_hash(mock: MockRuntime) -> None:
    mock.dispatch(BOB, "System", "remark_with_event", remark=b"hello")
    assert mock.events() == [Remarked(sender=BOB, hash=blake2_256(b"hello"))]


@pytest.mark.parametrize("origin", [Origin.root(), Origin.none()], ids=["root", "none"])
def test_remark_with_event_unsigned_is_bad_origin(mock: MockRuntime, origin: Origin) -> None:
    mock.assert_noop(origin, "System", "remark_with_event", "BadOrigin", remark=b"x")


def test_account_storage_key_is_blake2_128_concat(mock: MockRuntime) -> None:
    key = system.Account.key_for(ALICE)
    assert key == twox128(b"System") + twox128(b"Account") + blake2_128(ALICE) + ALICE
    assert mock.state.get(key) == system.ACCOUNT_INFO.encode(mock.account(ALICE))


def test_account_default_is_empty() -> None:
    info = AccountInfo()
    assert (info.nonce, info.providers, info.data) == (0, 0, AccountData())
    raw = system.ACCOUNT_INFO.encode(info)
    assert len(raw) == 4 * 4 + 16 * 4
    assert raw[-16:] == (1 << 127).to_bytes(16, "little")  # ExtraFlags' new-logic bit


def test_inc_nonce_creates_nonce_only_record(mock: MockRuntime) -> None:
    system.inc_nonce(mock.state, DAVE)
    system.inc_nonce(mock.state, DAVE)
    info = mock.account(DAVE)
    assert (info.nonce, info.providers) == (2, 0)
    assert mock.exists(DAVE)


def test_put_account_creates_and_reaps_with_events(mock: MockRuntime) -> None:
    events: list[object] = []
    ctx = mock.ctx("root", events)
    system.put_account(ctx, DAVE, AccountInfo(providers=1, data=AccountData(free=20)))
    assert mock.exists(DAVE)
    system.put_account(ctx, DAVE, AccountInfo(providers=0))
    assert not mock.exists(DAVE)
    assert events == [NewAccount(account=DAVE), KilledAccount(account=DAVE)]


def test_put_account_without_provider_for_missing_account_writes_nothing(mock: MockRuntime) -> None:
    before = mock.snapshot()
    events: list[object] = []
    system.put_account(mock.ctx("root", events), DAVE, AccountInfo(nonce=0, providers=0))
    assert mock.snapshot() == before
    assert events == []


def test_reaping_resets_nonce(mock: MockRuntime) -> None:
    system.inc_nonce(mock.state, BOB)
    mock.dispatch(BOB, "Balances", "transfer_all", dest=("Id", ALICE), keep_alive=False)
    assert not mock.exists(BOB)
    assert mock.account(BOB).nonce == 0


def test_first_provider_on_nonce_only_record_emits_new_account(mock: MockRuntime) -> None:
    system.inc_nonce(mock.state, DAVE)
    mock.dispatch(ALICE, "Balances", "transfer_allow_death", dest=("Id", DAVE), value=50)
    assert mock.events() == [
        NewAccount(account=DAVE),
        Endowed(account=DAVE, free_balance=50),
        Transfer(from_=ALICE, to=DAVE, amount=50),
    ]


def test_storage_items_use_frame_prefixes() -> None:
    assert system.Number.key == twox128(b"System") + twox128(b"Number")
    assert system.Events.key == twox128(b"System") + twox128(b"Events")
    assert system.Account.prefix == twox128(b"System") + twox128(b"Account")


def test_block_hash_uses_twox64_concat(mock: MockRuntime) -> None:
    system.BlockHash.put(mock.state, 7, b"\x07" * 32)
    key = system.BlockHash.key_for(7)
    assert key.endswith((7).to_bytes(4, "little"))
    assert len(key) == 32 + 8 + 4
    assert system.BlockHash.get(mock.state, 7) == b"\x07" * 32
    assert system.BlockHash.get(mock.state, 8) == bytes(32)
