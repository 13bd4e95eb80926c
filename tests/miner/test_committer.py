"""ResultCommitter: one submit_results per block, UnknownTask retried next block, past-deadline
and foreign tasks dropped, a task paying less on chain than stated committed with a warning, a
journal that survives restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from pathlib import Path

import pytest
from substrateinterface import Keypair

from chain.taskproto import spec_hash
from miner.chain import PendingResult, ResultCommitter
from tests.miner.fakes import FakeChain, make_spec

SPEC = make_spec()


def pending(deadline: int = 100, spec: dict[str, object] | None = None) -> PendingResult:
    return PendingResult(
        task_id=secrets.token_bytes(32),
        commitment=secrets.token_bytes(32),
        spec_hash=spec_hash(spec or SPEC),
        deadline=deadline,
    )


def new(chain: FakeChain, journal: Path | None = None) -> ResultCommitter:
    return ResultCommitter(chain, chain.staker_key, journal=journal, poll_interval_s=0.01)


def test_commit_once_batches_everything_ready(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=None)
    committer = new(chain)
    items = [pending() for _ in range(5)]
    for i in items:
        chain.commit(i.task_id, SPEC, 100)
        committer.add(i)
    outcome = asyncio.run(committer.commit_once(chain.best))
    assert outcome is not None
    assert outcome.ok
    assert len(chain.batches) == 1
    assert {i.task_id for i in chain.batches[0][1]} == {i.task_id for i in items}
    assert committer.pending == []
    assert committer.committed == 5


def test_uncommitted_task_waits_for_the_next_block(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=None)
    committer = new(chain)
    ready, later = pending(), pending()
    chain.commit(ready.task_id, SPEC, 100)
    committer.add(ready)
    committer.add(later)

    async def scenario() -> None:
        await committer.commit_once(chain.best)  # only `ready` goes: `later` is not on chain yet
        assert [i.task_id for i in chain.batches[0][1]] == [ready.task_id]
        assert [p.task_id for p in committer.pending] == [later.task_id]
        chain.commit(later.task_id, SPEC, 100)  # the coordinator's batch lands
        await committer.commit_once(chain.best)
        assert [i.task_id for i in chain.batches[1][1]] == [later.task_id]

    asyncio.run(scenario())
    assert committer.pending == []
    assert chain.failures == []


def test_failed_batch_is_retried_next_block(operator: Keypair) -> None:
    """A race (the state changed between the read and the inclusion) fails the whole batch;
    the next round reads the chain again and submits what is still valid."""
    chain = FakeChain(operator, block_s=None)
    committer = new(chain)
    a, b = pending(), pending()
    for i in (a, b):
        chain.commit(i.task_id, SPEC, 100)
        committer.add(i)
    real_submit = chain.submit_results
    calls = []

    async def racing_submit(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        if len(calls) == 1:
            del chain.states[b.task_id]  # e.g. read from a block that was not the one built on
            out = await real_submit(items)
            chain.commit(b.task_id, SPEC, 100)
            return out
        return await real_submit(items)

    chain.submit_results = racing_submit  # type: ignore[method-assign]

    async def scenario() -> None:
        first = await committer.commit_once(chain.best)
        assert first is not None
        assert not first.ok
        assert first.error == "UnknownTask"
        assert len(committer.pending) == 2
        chain.advance()
        second = await committer.commit_once(chain.best)
        assert second is not None
        assert second.ok

    asyncio.run(scenario())
    assert calls == [2, 2]
    assert committer.pending == []


def test_drops_past_deadline_foreign_final_and_mismatched(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=None)
    chain.advance(49)  # best = 50
    committer = new(chain)
    never = pending(deadline=50)  # never committed on chain, deadline reached
    expired = pending(deadline=50)
    chain.commit(expired.task_id, SPEC, 50)
    foreign = pending()
    chain.commit(foreign.task_id, SPEC, 100, miner=b"\x07" * 32)
    other_spec = pending()
    chain.commit(other_spec.task_id, make_spec(prompt="something else"), 100)
    good = pending()
    chain.commit(good.task_id, SPEC, 100)
    for i in (never, expired, foreign, other_spec, good):
        committer.add(i)
    outcome = asyncio.run(committer.commit_once(chain.best))
    assert outcome is not None
    assert outcome.ok
    assert [i.task_id for i in chain.batches[0][1]] == [good.task_id]
    assert committer.pending == []
    assert committer.dropped == 4


def test_result_already_on_chain_counts_as_committed(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=None)
    committer = new(chain)
    item = pending()
    chain.commit(item.task_id, SPEC, 100)
    asyncio.run(chain.submit_results([item]))  # e.g. committed just before a restart
    committer.add(item)
    assert asyncio.run(committer.commit_once(chain.best)) is None
    assert committer.pending == []
    assert committer.committed == 1
    assert committer.dropped == 0


def test_run_submits_at_most_once_per_block(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=0.2)
    committer = new(chain)

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(committer.run(stop, drain_s=5))
        for _ in range(12):  # results trickle in faster than blocks
            item = pending(deadline=10_000)
            chain.commit(item.task_id, SPEC, 10_000)
            committer.add(item)
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    blocks = [b for b, _ in chain.batches]
    assert len(blocks) == len(set(blocks))
    assert len(blocks) < 12
    assert sum(len(items) for _, items in chain.batches) == 12
    assert committer.pending == []


def test_run_waits_out_an_unavailable_chain(operator: Keypair) -> None:
    chain = FakeChain(operator, block_s=0.05)
    committer = new(chain)
    item = pending(deadline=10_000)
    chain.commit(item.task_id, SPEC, 10_000)

    async def scenario() -> None:
        stop = asyncio.Event()
        chain.available = False
        committer.add(item)
        runner = asyncio.create_task(committer.run(stop, drain_s=10))
        await asyncio.sleep(0.3)
        assert chain.batches == []
        assert "down" in committer.last_error
        chain.available = True
        stop.set()  # drains: commits what is pending before returning
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
    assert len(chain.batches) == 1
    assert committer.pending == []


def test_journal_survives_a_restart(operator: Keypair, tmp_path: Path) -> None:
    journal = tmp_path / "pending-results.json"
    chain = FakeChain(operator, block_s=None)
    first = new(chain, journal)
    items = [pending(), pending()]
    for i in items:
        first.add(i)  # not on chain yet: stays pending
    asyncio.run(first.commit_once(chain.best))
    assert journal.exists()

    second = new(chain, journal)
    assert sorted(p.task_id for p in second.pending) == sorted(i.task_id for i in items)
    assert second.pending[0] in items  # every field round-trips
    for i in items:
        chain.commit(i.task_id, SPEC, 100)
    outcome = asyncio.run(second.commit_once(chain.best))
    assert outcome is not None
    assert outcome.ok
    assert new(chain, journal).pending == []


def test_unreadable_journal_is_ignored(operator: Keypair, tmp_path: Path) -> None:
    journal = tmp_path / "pending-results.json"
    journal.write_text("{not json")
    assert new(FakeChain(operator), journal).pending == []


def test_a_task_paying_less_on_chain_is_committed_with_a_warning(
    operator: Keypair, caplog: pytest.LogCaptureFixture
) -> None:
    """The image was delivered already: only the commitment gets it paid (uncommitted, the task
    would be Missed and its price refunded to the coordinator that understated it)."""
    chain = FakeChain(operator, block_s=None)
    committer = ResultCommitter(chain, chain.staker_key, min_price=10**17)
    item = dataclasses.replace(pending(), price=10**18)
    chain.commit(item.task_id, SPEC, 100, price=10**16)
    committer.add(item)
    with caplog.at_level("WARNING", logger="miner.chain"):
        outcome = asyncio.run(committer.commit_once(chain.best))
    assert outcome is not None
    assert outcome.ok
    assert committer.committed == 1
    (warning,) = [r.getMessage() for r in caplog.records if "pays" in r.getMessage()]
    assert "pays 0.01 CAI on chain" in warning
    assert "stated 1 CAI" in warning


def test_pending_results_keep_their_stated_price(tmp_path: Path) -> None:
    item = dataclasses.replace(pending(), price=2**128 - 1)
    assert PendingResult.from_json(item.to_json()) == item
    legacy = {k: v for k, v in item.to_json().items() if k != "price"}  # journals from before
    assert PendingResult.from_json(legacy).price is None
