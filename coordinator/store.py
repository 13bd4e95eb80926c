"""Durable state: jobs, their on-chain tasks (attempts) and result images in SQLite (WAL).

One writer thread owns the write connection and commits in groups: every `put` queued while the
previous transaction was being written goes into the next one, so many accepted tasks share one
fsync. `await store.flush()` returns once everything queued before it is on disk. Reads happen
once, at start (`load`). The in-memory engine is the source of truth while running; every change
of a job or attempt is written here as a whole row (upsert).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from coordinator import CoordinatorError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id BLOB PRIMARY KEY,
    row TEXT NOT NULL,
    is_open INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    task_id BLOB PRIMARY KEY,
    job_id BLOB NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_job ON attempts (job_id);
CREATE TABLE IF NOT EXISTS images (task_id BLOB PRIMARY KEY, png BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (is_open);
"""


class StoreError(CoordinatorError):
    """The data directory cannot be used."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Write:
    table: str  # "jobs" | "attempts" | "images": INSERT OR REPLACE of one row
    params: tuple[Any, ...]


_COLUMNS = {
    "jobs": "(job_id, row, is_open)",
    "attempts": "(task_id, job_id, row)",
    "images": "(task_id, png)",
}
ROWS_PER_STATEMENT = 200  # multi-row upserts: few GIL round trips for the writer thread


_FLUSH = object()
_STOP = object()


class Store:
    """SQLite file `coordinator.sqlite3` under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "coordinator.sqlite3"
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock_fd: int | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and schema, take the data-dir lock, start the writer thread."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data dir {self.data_dir}: {exc}") from exc
        self._take_lock()
        conn = self._connect()
        try:
            conn.executescript(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema {row[0]}, this version uses {SCHEMA_VERSION}"
                )
            conn.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()
        self._thread = threading.Thread(target=self._writer, name="coordinator-store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self.data_dir / "coordinator.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreError(
                f"data dir {self.data_dir} is in use by another coordinator process"
            ) from exc
        self._lock_fd = fd

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # ---- writes ---------------------------------------------------------------------------

    def put_job(self, job_id: bytes, row: dict[str, Any], *, is_open: bool) -> None:
        self._put("jobs", (job_id, orjson.dumps(row), int(is_open)))

    def put_attempt(self, task_id: bytes, job_id: bytes, row: dict[str, Any]) -> None:
        self._put("attempts", (task_id, job_id, orjson.dumps(row)))

    def _put(self, table: str, params: tuple[Any, ...]) -> None:
        if self._error is not None:
            raise StoreError(f"store writer failed: {self._error}")
        self._queue.put(_Write(table, params))

    async def flush(self) -> None:
        """Wait until every write queued so far is committed (fsync'd)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((_FLUSH, loop, done))
        await done

    def flush_sync(self, timeout: float = 30.0) -> None:
        event = threading.Event()
        self._queue.put((_FLUSH, None, event))
        event.wait(timeout)

    def _writer(self) -> None:
        conn = self._connect()
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                with contextlib.suppress(queue.Empty):
                    while len(items) < 10_000:
                        items.append(self._queue.get_nowait())
                writes = [i for i in items if isinstance(i, _Write)]
                try:
                    if writes:
                        conn.execute("BEGIN")
                        _write_rows(conn, writes)
                        conn.execute("COMMIT")
                except sqlite3.Error as exc:  # disk full, I/O error: refuse further writes
                    self._error = exc
                for item in items:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, tuple) and item[0] is _FLUSH:
                        _, loop, done = item
                        if loop is None:
                            done.set()
                        else:
                            loop.call_soon_threadsafe(_resolve, done, self._error)
        finally:
            conn.close()

    # ---- images ---------------------------------------------------------------------------

    def put_image(self, task_id: bytes, png: bytes) -> None:
        """Queue the PNG with the rows: one group commit (one fsync) for many uploads."""
        self._put("images", (task_id, png))

    def read_image(self, task_id: bytes) -> bytes | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT png FROM images WHERE task_id = ?", (task_id,)).fetchone()
        finally:
            conn.close()
        return None if row is None else bytes(row[0])

    # ---- reads ----------------------------------------------------------------------------

    def load(self, *, open_only: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rows of the jobs that are still open (or all) and of all their attempts."""
        conn = self._connect()
        try:
            where = "WHERE is_open = 1" if open_only else ""
            jobs = [json.loads(r[0]) for r in conn.execute(f"SELECT row FROM jobs {where}")]
            attempts = [
                json.loads(r[0])
                for r in conn.execute(
                    "SELECT a.row FROM attempts a JOIN jobs j ON a.job_id = j.job_id "
                    + where.replace("is_open", "j.is_open")
                )
            ]
        finally:
            conn.close()
        return jobs, attempts

    def get_job(self, job_id: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """One job (open or closed) with its attempts, read from disk."""
        conn = self._connect()
        try:
            row = conn.execute("SELECT row FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            attempts = [
                json.loads(r[0])
                for r in conn.execute("SELECT row FROM attempts WHERE job_id = ?", (job_id,))
            ]
        finally:
            conn.close()
        return json.loads(row[0]), attempts

    def counts(self) -> Iterator[tuple[str, int]]:
        conn = self._connect()
        try:
            yield from conn.execute("SELECT is_open, COUNT(*) FROM jobs GROUP BY is_open")
        finally:
            conn.close()


def _write_rows(conn: sqlite3.Connection, writes: list[_Write]) -> None:
    """Upsert rows in order (the last write of a key wins), many rows per statement."""
    i = 0
    while i < len(writes):
        table = writes[i].table
        j = i
        while j < len(writes) and writes[j].table == table and j - i < ROWS_PER_STATEMENT:
            j += 1
        group = writes[i:j]
        width = len(group[0].params)
        placeholders = ",".join(["(" + ",".join("?" * width) + ")"] * len(group))
        sql = f"INSERT OR REPLACE INTO {table} {_COLUMNS[table]} VALUES {placeholders}"
        conn.execute(sql, [p for w in group for p in w.params])
        i = j


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(StoreError(f"store writer failed: {error}"))
    else:
        done.set_result(None)
