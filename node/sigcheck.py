"""A block's signature checks on the other cores, while this process executes the block.

Before executing an imported block the importer lists the signature checks its execution will
ask for (`pallets.executive.signature_jobs`: scheme, signature, signing payload, signer, in block
order) and hands them to `ParallelSignatures.start`, which sends the block's extrinsics root and
then the checks, in batches, to worker processes (`node.workerpool.worker_pool`: they die with
the node), and returns the `SignatureCheck` the execution uses. As Substrate's batch verification
does, that check never makes execution wait: it answers a listed check from its batch's result
when that is in, and otherwise "valid for now", remembering it. At the block's end `settle` takes
back the batches no worker has started and checks them here (no check is made twice), waits for
the rest, and says whether every check answered "for now" is valid. When one is not, the import
executes the block again checking every signature inline, so the verdict and the error are those
of serial checking: a bad signature still rejects the block, with the same message. A check that
was not listed is made here.
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
    "MAX_BATCH",
    "MIN_BATCH",
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
MIN_BATCH: Final = 64
MAX_BATCH: Final = 4096
"""Checks per message to a worker, guided: each message takes half of what is left per worker
(at least `MIN_BATCH`, at most `MAX_BATCH`), so a block goes out in a few messages, large ones
first, small ones last. Few messages because the pool hands each over from a thread of this
process, which needs the interpreter lock this process's execution holds; small ones last
because `settle` can take back only the messages no worker has started."""
SETTLE_WAIT_S: Final = 30.0
"""How long the end of an import waits for a worker's answer before computing it itself (a
worker that stalls must not stall the import)."""


def extrinsics_root(extrinsics: list[bytes]) -> bytes:
    """In a worker: `ordered_root` of a block's extrinsics (its header's extrinsics root)."""
    return ordered_root(extrinsics)


def verify_batch(jobs: Sequence[tuple[int, bytes, bytes, bytes]]) -> list[bool]:
    """In a worker: `verify_signature` of each job."""
    schemes = _SCHEMES
    return [
        verify_signature(schemes[scheme], signature, payload, signer)
        for scheme, signature, payload, signer in jobs
    ]


_SCHEMES: Final = {int(scheme): scheme for scheme in SignatureScheme}


def batch_bounds(n: int, workers: int = 1) -> list[int]:
    """Where the batches of `n` jobs start, and `n`: each half of what is left per worker,
    within `MIN_BATCH` and `MAX_BATCH`."""
    bounds = [0]
    while bounds[-1] < n:
        left = n - bounds[-1]
        size = max(MIN_BATCH, min(MAX_BATCH, left // (2 * max(workers, 1))))
        bounds.append(min(bounds[-1] + size, n))
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
        bounds = batch_bounds(len(jobs), self.workers)
        try:
            sent = list(extrinsics)
            root = pool.submit(extrinsics_root, sent) if sent else None  # first: execution needs
            futures = [  # it at its end, and the checks not until the block's end either
                pool.submit(verify_batch, [(int(s), g, p, k) for s, g, p, k in jobs[a:b]])
                for a, b in itertools.pairwise(bounds)
            ]
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
    are in, and otherwise answers "valid" for now and remembers the check (Substrate's batch
    verification: the block's signature verdicts are settled at its end, `settle`). A check
    that was not listed is made here."""

    __slots__ = ("_batches", "_futures", "_pending", "_results", "_root", "_where")

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
        self._batches: list[Sequence[SignatureJob]] = []
        for batch, (start, end) in enumerate(itertools.pairwise(bounds)):
            self._batches.append(jobs[start:end])
            for i in range(start, end):
                self._where[jobs[i]] = (batch, i - start)
        self._futures = futures
        self._results: list[list[bool] | None] = [None] * len(futures)  # answers taken in
        self._pending: list[tuple[int, int]] = []  # checks answered "valid for now"

    def __call__(
        self, scheme: SignatureScheme, signature: bytes, payload: bytes, signer: bytes
    ) -> bool:
        where = self._where.get((scheme, signature, payload, signer))
        if where is None:
            return verify_signature(scheme, signature, payload, signer)
        batch, place = where
        results = self._results[batch]
        if results is None:
            future = self._futures[batch]
            if not future.done():
                self._pending.append(where)
                return True
            results = self._take(batch)
        return results[place]

    def _take(self, batch: int) -> list[bool]:
        """A batch's answers: the workers' (waiting for them), or made here when the workers
        failed or stalled."""
        results = self._results[batch]
        if results is None:
            try:
                results = self._futures[batch].result(timeout=SETTLE_WAIT_S)
            except Exception:  # the workers failed: the checks made here are the reference
                log.debug("Signature worker failed; checking inline", exc_info=True)
                results = _verify_here(self._batches[batch])
            self._results[batch] = results
        return results

    def settle(self) -> bool:
        """Whether every check answered "valid for now" is valid. The batches the workers have
        not started are taken back and checked here, last first, while the workers finish
        theirs (no check is made twice); then their answers are waited for."""
        if not self._pending:
            return True
        for batch in reversed(range(len(self._futures))):
            if self._results[batch] is None and self._futures[batch].cancel():
                self._results[batch] = _verify_here(self._batches[batch])
        return all(self._take(batch)[place] for batch, place in self._pending)

    def extrinsics_root(self, extrinsics: Sequence[bytes]) -> bytes:
        """`ordered_root(extrinsics)`: the workers' answer when they were sent these
        extrinsics, computed here otherwise (or when the workers have not started it, fail or
        take over `SETTLE_WAIT_S`)."""
        if self._root is not None:
            sent, future = self._root
            if len(sent) == len(extrinsics) and sent == list(extrinsics) and not future.cancel():
                try:
                    return future.result(timeout=SETTLE_WAIT_S)
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


def _verify_here(jobs: Sequence[SignatureJob]) -> list[bool]:
    return [verify_signature(*job) for job in jobs]
