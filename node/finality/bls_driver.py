"""Per-session BLS finality proofs in the running node.

When the finalized head reaches the first block of session s, each validator of the set signs
that block with its BLS key (chain.consensus.finality_proof_message) and gossips the partial
signature; whoever holds partials from more than 2/3 of the set aggregates them, checks the
aggregate, and submits the unsigned `Finality.submit_finality_proof`. The first one included
wins; the others are refused by the pool or the runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

from chain.consensus import BlsPartial
from chain.frame.runtime import Runtime
from chain.primitives import Header
from node.errors import StateDiscarded
from node.finality.bls_proofs import BlsProofCollector, encode_submit_call
from node.interfaces import ChainReader, Gossip, TransactionSubmit
from node.keystore import BLS_KEY_TYPE, Keystore, KeystoreError
from node.network import BLS_PARTIAL
from node.txpool import PoolError
from node.verdict import Verdict
from node.workerpool import worker_pool
from pallets.config import RuntimeConfig
from pallets.finality import pallet as finality
from pallets.session import pallet as session_pallet

log = logging.getLogger(__name__)


@dataclasses.dataclass(kw_only=True, frozen=True, eq=False, slots=True)
class BlsDriver:
    """`BlsPartials` (node.interfaces); hears finalized blocks through `on_finalized`.

    `executor`: where the collector's BLS work runs, shut down by `close`."""

    chain: ChainReader
    collector: BlsProofCollector
    runtime: Runtime[RuntimeConfig]
    session_length: int
    gossip: Gossip
    transactions: TransactionSubmit
    executor: concurrent.futures.Executor | None = None
    _handled: set[int] = dataclasses.field(init=False, default_factory=set)
    _tasks: set[asyncio.Task[None]] = dataclasses.field(init=False, default_factory=set)
    _submitted: set[int] = dataclasses.field(init=False, default_factory=set)

    @classmethod
    def create(
        cls,
        *,
        keystore: Keystore,
        chain: ChainReader,
        runtime: Runtime[RuntimeConfig],
        session_length: int,
        gossip: Gossip,
        transactions: TransactionSubmit,
    ) -> BlsDriver | None:
        """A driver for a validator whose keystore holds a BLS key; None without one."""
        try:
            keys = keystore.public_keys(BLS_KEY_TYPE)
        except KeystoreError:
            return None
        signer = keystore.bls_signer(keys[0]) if keys else None
        if signer is None:
            return None
        # py-ecc is pure Python: in a thread it would hold the GIL for seconds and starve the
        # event loop (block import, votes), so BLS work runs in one worker process, which
        # dies with the node (node/workerpool.py)
        pool = worker_pool(max_workers=1)
        collector = BlsProofCollector(chain.genesis_hash, signer, verify_pool=pool, lazy=True)
        return cls(
            chain=chain,
            collector=collector,
            runtime=runtime,
            session_length=session_length,
            gossip=gossip,
            transactions=transactions,
            executor=pool,
        )

    def _session_target(self, session: int) -> tuple[bytes, int] | None:
        number = session * self.session_length
        h = self.chain.hash_at(number)
        return (h, number) if h is not None else None

    def _set_keys(self, block_hash: bytes) -> tuple[int, list[bytes]] | None:
        """The set id and BLS keys in the state of `block_hash`; None when state pruning
        deleted that state (a session start older than the window)."""
        try:
            state = self.chain.state_at(block_hash)
        except StateDiscarded:
            return None
        return finality.CurrentSetId.get(state), list(finality.BlsKeys.get(state))

    def _proven(self, session: int) -> bool:
        return finality.FinalityProofs.get(self.chain.state_at(), session) is not None

    def on_finalized(self, block_hash: bytes, header: Header) -> None:
        session = session_pallet.CurrentIndex.get(self.chain.state_at(block_hash))
        if session == 0 or session in self._handled:
            return
        target = self._session_target(session)
        if target is None or target[1] > header.number:
            return
        self._handled.add(session)
        if self._proven(session):
            return
        found = self._set_keys(target[0])
        if found is None:
            log.info("Not signing session %d: its first block's state was pruned", session)
            return
        set_id, keys = found
        self._spawn(self._sign(session, set_id, keys, target))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sign(
        self, session: int, set_id: int, keys: list[bytes], target: tuple[bytes, int]
    ) -> None:
        try:
            partial = await self.collector.on_finalized(
                session, set_id, keys, target, self._proven(session)
            )
        except Exception:
            log.exception("BLS signing for session %d failed", session)
            return
        if partial is None:
            return
        self.gossip.broadcast(BLS_PARTIAL, partial.encode())
        self._maybe_submit()

    async def on_partial(self, raw: bytes) -> Verdict:
        try:
            partial = BlsPartial.decode(raw)
        except Exception:
            return Verdict.INVALID
        if self.chain.hash_at(partial.block_number) != partial.block_hash:
            return Verdict.IGNORE  # not (yet) our canonical block: cannot judge it
        found = self._set_keys(partial.block_hash)
        if found is None:
            return Verdict.IGNORE  # its state was pruned: cannot judge it
        _, keys = found
        verdict = await self.collector.on_partial(partial, keys)
        self._maybe_submit()
        return verdict

    def _maybe_submit(self) -> None:
        proof = self.collector.ready_proof()
        if proof is None or proof.session in self._submitted or self._proven(proof.session):
            return
        self._submitted.add(proof.session)
        try:
            self.transactions.submit_extrinsic(encode_submit_call(self.runtime, proof))
        except PoolError as exc:  # usually another validator's proof got there first
            log.debug("BLS finality proof of session %d not accepted: %s", proof.session, exc)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
