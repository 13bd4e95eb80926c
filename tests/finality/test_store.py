from __future__ import annotations

from collections.abc import Iterable

import pytest

from chain.consensus import PRECOMMIT, PREVOTE, Vote
from chain.storage.kv import MemoryKV
from node.finality.store import KVVoteStore, MemoryVoteStore, decode_record, encode_record

A = b"\xaa" * 32
B = b"\xbb" * 32


class SyncCheckingKV(MemoryKV):
    """Records whether every batch was written with sync=True."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[bool] = []

    def write_batch(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        self.batches.append(sync)
        super().write_batch(ops, sync=sync)


@pytest.fixture(params=["kv", "memory"])
def store(request: pytest.FixtureRequest) -> KVVoteStore | MemoryVoteStore:
    return KVVoteStore(MemoryKV()) if request.param == "kv" else MemoryVoteStore()


def test_empty_store_has_nothing(store: KVVoteStore | MemoryVoteStore) -> None:
    assert store.last_signed(0) is None


def test_records_both_phases_of_the_highest_round(store: KVVoteStore | MemoryVoteStore) -> None:
    pv, pc = Vote(PREVOTE, A, 5), Vote(PRECOMMIT, B, 4)
    store.record(3, 7, pv)
    assert store.last_signed(3) == (7, {PREVOTE: pv})
    store.record(3, 7, pc)
    assert store.last_signed(3) == (7, {PREVOTE: pv, PRECOMMIT: pc})
    assert store.last_signed(2) is None


def test_the_two_highest_rounds_are_kept(store: KVVoteStore | MemoryVoteStore) -> None:
    r7 = Vote(PREVOTE, A, 5)
    store.record(0, 7, r7)
    r8 = Vote(PREVOTE, B, 6)
    store.record(0, 8, r8)
    late = Vote(PRECOMMIT, A, 5)
    store.record(0, 7, late)  # a late precommit in the previous round
    assert store.last_signed(0) == (8, {PREVOTE: r8})
    assert store.recent(0) == {7: {PREVOTE: r7, PRECOMMIT: late}, 8: {PREVOTE: r8}}
    store.record(0, 6, Vote(PRECOMMIT, B, 1))  # below both: not kept
    r10 = Vote(PREVOTE, A, 9)
    store.record(0, 10, r10)
    assert store.recent(0) == {10: {PREVOTE: r10}}
    assert store.recent(1) == {}


def test_same_vote_twice_is_fine_a_different_one_is_refused(
    store: KVVoteStore | MemoryVoteStore,
) -> None:
    vote = Vote(PREVOTE, A, 5)
    store.record(0, 1, vote)
    store.record(0, 1, vote)
    with pytest.raises(ValueError, match="different vote"):
        store.record(0, 1, Vote(PREVOTE, B, 5))
    assert store.last_signed(0) == (1, {PREVOTE: vote})


def test_kv_store_survives_a_reopen_and_syncs_every_write() -> None:
    kv = SyncCheckingKV()
    KVVoteStore(kv).record(4, 9, Vote(PRECOMMIT, A, 3))
    assert KVVoteStore(kv).last_signed(4) == (9, {PRECOMMIT: Vote(PRECOMMIT, A, 3)})
    assert kv.batches == [True]
    assert all(k.startswith(b"g:") for k, _ in kv.iterate())


def test_kv_store_forgets_earlier_sets_when_a_new_one_starts() -> None:
    kv = MemoryKV([(b"other", b"x")])
    store = KVVoteStore(kv)
    store.record(1, 3, Vote(PREVOTE, A, 1))
    store.record(2, 1, Vote(PREVOTE, B, 2))
    assert store.last_signed(1) is None
    assert store.last_signed(2) == (1, {PREVOTE: Vote(PREVOTE, B, 2)})
    assert kv.get(b"other") == b"x"


def test_record_encoding_round_trips() -> None:
    record = {
        11: {PRECOMMIT: Vote(PRECOMMIT, B, 3)},
        12: {PREVOTE: Vote(PREVOTE, A, 5), PRECOMMIT: Vote(PRECOMMIT, B, 4)},
    }
    assert decode_record(encode_record(record)) == record
    assert decode_record(encode_record({})) == {}
