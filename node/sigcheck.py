"""A block's signature checks on the other cores, while this process executes the block.

Before executing an imported block the importer lists the signature checks its execution will
ask for (`pallets.executive.signature_jobs`: scheme, signature, signing payload, signer, in block
order) and hands them to `ParallelSignatures.start`, which sends them, cut in batches, with the
block's extrinsics, to worker processes (they die with the node: `node.workerpool`) and returns
the `SignatureCheck` the execution uses. The first worker computes the block's extrinsics root
first; then the workers take batches from the front of the list, one at a time, through a
counter shared with this process.

As Substrate's batch verification does, the check never makes execution wait: it answers a
listed check whose batch is not answered yet "valid for now", remembering it. At the block's
end `settle` takes batches from the back of the list and checks them here while the workers go
on from the front (no batch is checked twice, and neither side waits while the other has work
left), then takes in the workers' answers and says whether every check answered "for now" is
valid. When one is not, the import executes the block again checking every signature inline, so
the verdict and the error are those of serial checking. A check that was not listed is made
here. This process runs no thread for the workers: it writes a block's batches once, and reads
the answers at the block's end.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Final, Protocol

from chain.crypto import SignatureScheme, verify_signature
from chain.storage.trie import ordered_root
from node.workerpool import arm_parent_death

if TYPE_CHECKING:  # the workers import this module: keep the runtime out of them
    from multiprocessing.process import BaseProcess
    from multiprocessing.sharedctypes import SynchronizedArray

    from pallets.executive import SignatureJob

__all__ = [
    "MAX_BATCH",
    "MIN_BATCH",
    "MIN_PARALLEL",
    "SETTLE_WAIT_S",
    "AheadChecks",
    "BatchSource",
    "ParallelSignatures",
    "batch_bounds",
    "default_workers",
    "serve",
    "verify_batch",
]

log = logging.getLogger(__name__)

MIN_PARALLEL: Final = 64
"""Fewer checks than this are made inline: a round trip to a worker costs more."""
MIN_BATCH: Final = 32
MAX_BATCH: Final = 1024
"""Checks per batch, guided: each batch is half of what is left per side (the workers and this
process), at least `MIN_BATCH` and at most `MAX_BATCH` (sr25519: about 40 ms of work), so a block
is a few large batches, which the workers take first, and small ones at the back, which this
process takes at the block's end: the two sides finish close together."""
SETTLE_WAIT_S: Final = 30.0
"""How long the end of an import waits for a worker's answer before checking the batch itself
(a worker that stalls must not stall the import)."""
START_WAIT_S: Final = 120.0
"""How long `warm` waits for the workers to start (they import the crypto libraries)."""

_SCHEMES: Final = {int(scheme): scheme for scheme in SignatureScheme}

# The counter the workers and this process take batches with: [block, front, back]; batches
# front..back-1 of block `block` are still to be taken (workers from the front, this process
# from the back).
_BLOCK, _FRONT, _BACK = 0, 1, 2

Batch = list[tuple[int, bytes, bytes, bytes]]  # (scheme as int, signature, payload, signer)


def verify_batch(jobs: Sequence[tuple[int, bytes, bytes, bytes]]) -> list[bool]:
    """`verify_signature` of each job (in a worker, or here for a batch taken back)."""
    schemes = _SCHEMES
    return [
        verify_signature(schemes[scheme], signature, payload, signer)
        for scheme, signature, payload, signer in jobs
    ]


def batch_bounds(n: int, workers: int = 1) -> list[int]:
    """Where the batches of `n` jobs start, and `n`: each half of what is left per side (the
    `workers` and this process), within `MIN_BATCH` and `MAX_BATCH`."""
    bounds = [0]
    while bounds[-1] < n:
        left = n - bounds[-1]
        size = max(MIN_BATCH, min(MAX_BATCH, left // (2 * (max(workers, 1) + 1))))
        bounds.append(min(bounds[-1] + size, n))
    return bounds


def default_workers() -> int:
    """One worker per core but the one this process executes on (0 on a single core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


# ---- the workers ------------------------------------------------------------------------------


def _take_front(counter: SynchronizedArray[int], block: int) -> int | None:
    with counter.get_lock():
        if counter[_BLOCK] != block or counter[_FRONT] >= counter[_BACK]:
            return None
        taken = counter[_FRONT]
        counter[_FRONT] = taken + 1
        return int(taken)


def _worker(conn: Connection, counter: SynchronizedArray[int], parent_pid: int) -> None:
    """A worker's life: for each block sent, its extrinsics root (if asked), then batches from
    the front of the counter until none is left; answers go back on `conn`."""
    arm_parent_death(parent_pid)
    serve(conn, counter)


def serve(conn: Connection, counter: SynchronizedArray[int]) -> None:
    """A worker's loop (`_worker`, after it arms its death with the node's)."""
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        block, batches, extrinsics = message
        if extrinsics is not None:
            conn.send(("root", block, ordered_root(extrinsics)))
        while (index := _take_front(counter, block)) is not None:
            conn.send(("batch", block, index, verify_batch(batches[index])))


# ---- this process -----------------------------------------------------------------------------


class BatchSource(Protocol):
    """Where a block's batch answers come from (`AheadChecks`)."""

    def take_back(self) -> int | None:
        """A batch no worker has taken, now this process's to check (the last one left); None
        when none is left."""

    def answers(self, timeout: float) -> list[tuple[int, list[bool]]] | None:
        """Batch answers that came in, waiting up to `timeout` for one; None when the workers
        are gone."""

    def root(self, timeout: float) -> bytes | None:
        """The workers' extrinsics root, waiting up to `timeout`; None if none comes."""

    def cancel(self) -> None:
        """No more batches of this block are to be taken."""


class ParallelSignatures:
    """Worker processes for signature checks, started at the first block that has enough of
    them (`MIN_PARALLEL`) and kept until `close`."""

    def __init__(self, workers: int | None = None, *, min_parallel: int = MIN_PARALLEL) -> None:
        self.workers = default_workers() if workers is None else workers
        self.min_parallel = min_parallel
        self._procs: list[tuple[BaseProcess, Connection]] = []
        self._counter: SynchronizedArray[int] | None = None
        self._waiting: list[Connection] = []  # workers that have not said they are ready
        self._block = 0

    def start(self, jobs: Sequence[SignatureJob], extrinsics: Sequence[bytes] = ()) -> AheadChecks:
        """Send `jobs` to the workers in batches, with `extrinsics` (the block's) for the
        first worker to compute their root; the check that answers from their results (all
        inline when there are too few jobs, no workers, or workers still starting: the first
        block that needs them starts them, and is checked inline meanwhile)."""
        if self.workers < 1 or len(jobs) < self.min_parallel:
            return AheadChecks((), None)
        try:
            self._launch()
            if not self._ready(0):
                return AheadChecks((), None)
            bounds = batch_bounds(len(jobs), self.workers)
            batches: list[Batch] = [
                [(int(s), g, p, k) for s, g, p, k in jobs[a:b]]
                for a, b in itertools.pairwise(bounds)
            ]
            counter = self._counter
            assert counter is not None
            self._block += 1
            block = self._block
            with counter.get_lock():
                counter[_BLOCK], counter[_FRONT], counter[_BACK] = block, 0, len(batches)
            sent = list(extrinsics)
            conns = [conn for _, conn in self._procs]
            for i, conn in enumerate(conns):
                while conn.poll():  # answers of an earlier block left unread (it was refused)
                    conn.recv()
                conn.send((block, batches, sent if i == 0 and sent else None))
        except (OSError, EOFError, ValueError) as exc:
            log.warning("Signature workers unavailable (%s): checking inline", exc)
            self.close()
            return AheadChecks((), None)
        source = _Workers(self, block, conns, counter)
        return AheadChecks(jobs, source, bounds, batches, sent if sent else None)

    def warm(self, timeout: float | None = None) -> None:
        """Start the workers now, not at the first big block (a worker takes a while to start:
        it imports the crypto libraries), and wait until they answer or `timeout` passes."""
        if self.workers >= 1:
            try:
                self._launch()
                self._ready(START_WAIT_S if timeout is None else timeout)
            except (OSError, EOFError, ValueError) as exc:
                log.warning("Signature workers did not start (%s)", exc)
                self.close()

    def _launch(self) -> None:
        """Start the worker processes, unless they run (not waiting for them)."""
        if self._procs:
            return
        ctx = multiprocessing.get_context("spawn")
        counter = ctx.Array("q", 3)
        procs: list[tuple[BaseProcess, Connection]] = []
        for n in range(self.workers):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker,
                args=(theirs, counter, os.getpid()),
                name=f"signature-worker-{n}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            procs.append((proc, mine))
        self._procs, self._counter, self._waiting = procs, counter, [conn for _, conn in procs]

    def _ready(self, timeout: float) -> bool:
        """Whether every worker has said it is ready (its imports done), waiting up to
        `timeout` for those that have not."""
        deadline = time.monotonic() + timeout
        while self._waiting:
            conn = self._waiting[0]
            if not conn.poll(max(deadline - time.monotonic(), 0)):
                return False
            if conn.recv() != ("ready",):
                raise OSError("a signature worker said something else than ready")
            self._waiting.pop(0)
        return True

    def broken(self) -> None:
        """A worker failed: stop them all (new ones start with the next big block)."""
        log.warning("A signature worker failed: checking inline, restarting the workers")
        self.close()

    def close(self) -> None:
        procs, self._procs, self._counter, self._waiting = self._procs, [], None, []
        for _, conn in procs:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        for proc, conn in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            conn.close()


class _Workers:
    """A block's batches at the workers (`BatchSource`)."""

    def __init__(
        self,
        owner: ParallelSignatures,
        block: int,
        conns: list[Connection],
        counter: SynchronizedArray[int],
    ) -> None:
        self._owner = owner
        self._block = block
        self._conns = conns
        self._counter = counter
        self._root: bytes | None = None
        self._pending: list[tuple[int, list[bool]]] = []  # answers read while looking for the root

    def take_back(self) -> int | None:
        counter = self._counter
        with counter.get_lock():
            if counter[_BLOCK] != self._block or counter[_FRONT] >= counter[_BACK]:
                return None
            counter[_BACK] -= 1
            return int(counter[_BACK])

    def answers(self, timeout: float) -> list[tuple[int, list[bool]]] | None:
        found, self._pending = self._pending, []
        if found:
            return found
        try:
            ready = wait(self._conns, timeout)
            for conn in ready:
                assert isinstance(conn, Connection)
                while conn.poll():
                    self._take(conn.recv(), found)
        except (EOFError, OSError):
            self._owner.broken()
            return None
        return found

    def root(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        conn = self._conns[0]
        try:
            while self._root is None:
                left = deadline - time.monotonic()
                if left <= 0 or not conn.poll(left):
                    return None
                self._take(conn.recv(), self._pending)
        except (EOFError, OSError):
            self._owner.broken()
            return None
        return self._root

    def _take(self, message: Any, found: list[tuple[int, list[bool]]]) -> None:
        kind, block = message[0], message[1]
        if block != self._block:
            return  # an answer for an earlier block (refused before its end)
        if kind == "root":
            self._root = message[2]
        elif kind == "batch":
            found.append((message[2], message[3]))

    def cancel(self) -> None:
        counter = self._counter
        with counter.get_lock():
            if counter[_BLOCK] == self._block:
                counter[_BACK] = counter[_FRONT]


class AheadChecks:
    """A `SignatureCheck` (pallets.executive) answering from the workers' results, or "valid
    for now" (see the module's docstring); `settle` at the block's end."""

    __slots__ = ("_batches", "_pending", "_results", "_root_of", "_source", "_where")

    def __init__(
        self,
        jobs: Sequence[SignatureJob],
        source: BatchSource | None,
        bounds: Sequence[int] = (0,),
        batches: Sequence[Batch] = (),
        root_of: list[bytes] | None = None,
    ) -> None:
        self._source = source
        self._root_of = root_of  # the extrinsics the workers compute the root of
        # job -> (its batch, its place in the batch)
        self._where: dict[SignatureJob, tuple[int, int]] = {}
        for batch, (start, end) in enumerate(itertools.pairwise(bounds)):
            for i in range(start, end):
                self._where[jobs[i]] = (batch, i - start)
        self._batches = batches
        self._results: list[list[bool] | None] = [None] * (len(bounds) - 1)  # answers in
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
            self._pending.append(where)
            return True
        return results[place]

    def settle(self) -> bool:
        """Whether every check answered "valid for now" is valid: batches taken back from the
        end of the list and checked here while the workers take theirs from the front, then
        the workers' answers (a batch they do not answer in `SETTLE_WAIT_S` is checked
        here)."""
        if not self._pending:
            return True
        source = self._source
        results = self._results
        if source is not None:
            while (index := source.take_back()) is not None:
                results[index] = verify_batch(self._batches[index])
            while any(results[batch] is None for batch, _ in self._pending):
                found = source.answers(SETTLE_WAIT_S)
                if not found:  # the workers are gone or stalled: checked here
                    break
                for index, answered in found:
                    results[index] = answered
        valid = True
        for batch, place in self._pending:
            verdicts = results[batch]
            if verdicts is None:  # the workers failed or stalled: checked here
                verdicts = verify_batch(self._batches[batch])
                results[batch] = verdicts
            valid = valid and verdicts[place]
        return valid

    def extrinsics_root(self, extrinsics: Sequence[bytes]) -> bytes:
        """`ordered_root(extrinsics)`: the workers' answer when they were sent these
        extrinsics, computed here otherwise (or when none comes in `SETTLE_WAIT_S`)."""
        sent = self._root_of
        if (
            self._source is not None
            and sent is not None
            and len(sent) == len(extrinsics)
            and sent == list(extrinsics)
        ):
            root = self._source.root(SETTLE_WAIT_S)
            if root is not None:
                return root
        return ordered_root(extrinsics)

    def cancel(self) -> None:
        """No more batches of this block are to be checked (it was refused before its end)."""
        if self._source is not None:
            self._source.cancel()
