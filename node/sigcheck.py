"""A block's signature checks on the other cores, while this process executes the block.

Before executing an imported block the importer lists the signature checks its execution will
ask for (`pallets.executive.signature_jobs`: scheme, signature, signing payload, signer, in block
order) and hands them to `ParallelSignatures.start`, which sends them in batches to worker
processes (`node.workerpool.worker_pool`: they die with the node) and returns the
`SignatureCheck` the execution uses. That check answers a listed job from its batch's result
when the batch is done, and checks it here otherwise (not waiting: a worker still starting, or
slower than this process, never makes the import slower than checking inline), so the verdicts
are those of `verify_signature`, whoever computes them: a bad signature still rejects the block.
A job that was not listed is checked here.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Final

from chain.crypto import SignatureScheme, verify_signature
from chain.storage.trie import ordered_root
from node.workerpool import worker_pool

if TYPE_CHECKING:  # the workers import this module: keep the runtime out of them
    from pallets.executive import SignatureJob

__all__ = [
    "BATCH",
    "FIRST_BATCH",
    "MIN_PARALLEL",
    "AheadChecks",
    "ParallelSignatures",
    "batch_bounds",
    "default_workers",
    "verify_batch",
]

log = logging.getLogger(__name__)

MIN_PARALLEL: Final = 64
"""Fewer checks than this are made inline: a round trip to a worker costs more."""
FIRST_BATCH: Final = 16
BATCH: Final = 512
"""Checks per message to a worker: the first message has `FIRST_BATCH` (its answer comes
soon), each next one twice as many as the one before, up to `BATCH` (sr25519: about 18 ms of
work). The pool hands a worker its next message from a thread of this process, which needs the
interpreter lock this process's execution holds: large messages keep the workers busy between
two such hand-overs."""
ROOT_WAIT_S: Final = 10.0
"""How long the end of an import waits for the workers' extrinsics root before computing it
itself (a worker that stalls must not stall the import)."""
WAIT_S: Final = 0.0001
"""How long a check waits for its batch's answer before checking inline (about the time an
sr25519 check takes); waiting also lets the pool's thread take in answers that arrived."""


def extrinsics_root(extrinsics: list[bytes]) -> bytes:
    """In a worker: `ordered_root` of a block's extrinsics (its header's extrinsics root)."""
    return ordered_root(extrinsics)


def verify_batch(jobs: Sequence[tuple[int, bytes, bytes, bytes]]) -> list[bool]:
    """In a worker: `verify_signature` of each job."""
    return [
        verify_signature(SignatureScheme(scheme), signature, payload, signer)
        for scheme, signature, payload, signer in jobs
    ]


def batch_bounds(n: int) -> list[int]:
    """Where the batches of `n` jobs start, and `n`: growing from FIRST_BATCH to BATCH."""
    bounds = [0]
    size = FIRST_BATCH
    while bounds[-1] < n:
        bounds.append(min(bounds[-1] + size, n))
        size = min(size * 2, BATCH)
    return bounds


def default_workers() -> int:
    """One worker per core but the one this process executes on (0 on a single core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


class ParallelSignatures:
    """Worker processes for signature checks, started at the first block that has enough of
    them (`MIN_PARALLEL`) and kept until `close`."""

    def __init__(self, workers: int | None = None, *, min_parallel: int = MIN_PARALLEL) -> None:
        self.workers = default_workers() if workers is None else workers
        self.min_parallel = min_parallel
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self, jobs: Sequence[SignatureJob], extrinsics: Sequence[bytes] = ()) -> AheadChecks:
        """Send `jobs` to the workers, and after them the extrinsics root of `extrinsics` (the
        block's); the check that answers from their results (all inline when there are too few
        jobs or no workers)."""
        if self.workers < 1 or len(jobs) < self.min_parallel:
            return AheadChecks((), [])
        pool = self._executor()
        bounds = batch_bounds(len(jobs))
        try:
            futures = [
                pool.submit(verify_batch, [(int(s), g, p, k) for s, g, p, k in jobs[a:b]])
                for a, b in itertools.pairwise(bounds)
            ]
            sent = list(extrinsics)
            root = pool.submit(extrinsics_root, sent) if sent else None
        except (concurrent.futures.BrokenExecutor, RuntimeError) as exc:
            log.warning("Signature workers unavailable (%s): checking inline", exc)
            self.close()
            return AheadChecks((), [])
        return AheadChecks(jobs, futures, bounds, (sent, root) if root is not None else None)

    def warm(self, timeout: float | None = None) -> None:
        """Start the workers now, not at the first big block (a worker takes a while to start:
        it imports the crypto libraries), and wait until they answer or `timeout` passes."""
        if self.workers >= 1:
            pool = self._executor()
            pings = [pool.submit(verify_batch, []) for _ in range(self.workers)]
            concurrent.futures.wait(pings, timeout=timeout)

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = worker_pool(self.workers)
        return self._pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class AheadChecks:
    """A `SignatureCheck` (pallets.executive) that answers from the workers' results when they
    are ready, and checks inline otherwise."""

    __slots__ = ("_futures", "_late", "_results", "_root", "_where")

    def __init__(
        self,
        jobs: Sequence[SignatureJob],
        futures: list[Future[list[bool]]],
        bounds: Sequence[int] = (0,),
        root: tuple[list[bytes], Future[bytes]] | None = None,
    ) -> None:
        self._root = root  # the extrinsics sent for their root, and its future
        # job -> (its batch, its place in the batch)
        self._where: dict[SignatureJob, tuple[int, int]] = {}
        for batch, (start, end) in enumerate(itertools.pairwise(bounds)):
            for i in range(start, end):
                self._where[jobs[i]] = (batch, i - start)
        self._futures = futures
        self._late: set[int] = set()  # batches waited for once in vain: not waited for again
        self._results: list[list[bool] | None] = [None] * len(futures)  # answers taken in

    def __call__(
        self, scheme: SignatureScheme, signature: bytes, payload: bytes, signer: bytes
    ) -> bool:
        where = self._where.get((scheme, signature, payload, signer))
        if where is not None:
            batch, place = where
            results = self._results[batch]
            if results is not None:
                return results[place]
            future = self._futures[batch]
            try:
                if batch not in self._late or future.done():
                    results = self._results[batch] = future.result(timeout=WAIT_S)
                    return results[place]
            except concurrent.futures.TimeoutError:  # the workers are behind: check it here
                self._late.add(batch)
            except Exception:  # any failure of the workers: the check made here is the reference
                log.debug("Signature worker failed; checking inline", exc_info=True)
        return verify_signature(scheme, signature, payload, signer)

    def extrinsics_root(self, extrinsics: Sequence[bytes]) -> bytes:
        """`ordered_root(extrinsics)`: the workers' answer when they were sent these
        extrinsics, computed here otherwise (or when they fail or take over `ROOT_WAIT_S`)."""
        if self._root is not None:
            sent, future = self._root
            if len(sent) == len(extrinsics) and sent == list(extrinsics):
                try:
                    return future.result(timeout=ROOT_WAIT_S)
                except Exception:  # the workers failed or stalled: computed here, the reference
                    log.debug("Extrinsics root worker failed; computing inline", exc_info=True)
        return ordered_root(extrinsics)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every batch is checked (tests, benchmarks)."""
        concurrent.futures.wait(self._futures, timeout=timeout)

    def cancel(self) -> None:
        """Drop the batches not started (the block was refused before reaching them)."""
        for future in self._futures:
            future.cancel()
        if self._root is not None:
            self._root[1].cancel()
