"""The chain for asyncio code: `Gateway` runs a `Connection` on one worker thread with a
deadline on every call; `HeadFollower` reports new heads from a subscription thread.

A call that passes its deadline raises `ChainUnavailable` at once; the worker is still blocked
in it until the socket timeout underneath (the same number of seconds) ends it, and then drops
the connection. A transport failure (the node went away, a socket timeout) drops the connection
too; the next call opens a new one. A JSON-RPC error object keeps it (`RpcError`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketException

from chainclient.connection import ChainUnavailable, Connection, RpcError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0


class Gateway:
    """One `Connection` on one worker thread; calls from the event loop, each with a deadline:

    number, block_hash = await gateway.run(Connection.head)
    tasks = await gateway.run(Connection.tasks, ids, block_hash)
    """

    def __init__(self, url: str, *, timeout_s: float = 15.0, thread_name: str = "chain") -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._conn = Connection(url, timeout_s=timeout_s)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._closed = False

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(connection, *args, **kwargs)` on the worker thread, within `timeout_s`."""
        return await self.run_within(self.timeout_s, fn, *args, **kwargs)

    async def run_within(
        self,
        timeout_s: float,
        fn: Callable[Concatenate[Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`run` with another deadline (a submission waiting for inclusion, a long listing)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self._guarded, fn, *args, **kwargs)
        future = loop.run_in_executor(self._executor, call)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            self.reset()
            raise ChainUnavailable(self.url, f"no answer within {timeout_s:g} s") from None

    def _guarded(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            return fn(self._conn, *args, **kwargs)
        except SubstrateRequestException as exc:
            raise RpcError.from_library(exc) from exc
        except (OSError, WebSocketException) as exc:  # the link is broken or timed out
            self._conn.close()
            raise ChainUnavailable(self.url, f"{type(exc).__name__}: {exc}") from exc

    def reset(self) -> None:
        """Drop the connection once the worker is free (after a stuck call gives up)."""
        if not self._closed:
            self._executor.submit(self._conn.close)

    async def close(self) -> None:
        """Close the connection (waiting up to CLOSE_TIMEOUT_S for a stuck call) and stop the
        worker."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await loop.run_in_executor(self._executor, self._conn.close)
        except TimeoutError:
            log.warning("chain connection to %s still busy at close", self.url)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)


class HeadFollower:
    """A thread subscribed to new heads that calls `on_head(number)` on the event loop; it
    reconnects after errors, backing off from RECONNECT_MIN_S to RECONNECT_MAX_S."""

    def __init__(
        self,
        url: str,
        loop: asyncio.AbstractEventLoop,
        on_head: Callable[[int], None],
        *,
        timeout_s: float = 15.0,
        thread_name: str = "chain-heads",
    ) -> None:
        self._url = url
        self._loop = loop
        self._on_head = on_head
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following (closing the connection ends a subscription waiting for a head)."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()

    def _handler(self, obj: Any, update_nr: int, subscription_id: str) -> bool | None:
        number = int(obj["header"]["number"])
        with contextlib.suppress(RuntimeError):  # the loop closed
            self._loop.call_soon_threadsafe(self._on_head, number)
        return True if self._stop.is_set() else None  # a value ends the subscription

    def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        while not self._stop.is_set():
            conn = self._conn = Connection(self._url, timeout_s=self._timeout_s)
            try:
                conn.si.subscribe_block_headers(self._handler)
                backoff = RECONNECT_MIN_S
            except Exception as exc:  # a thread boundary: report, reconnect
                if self._stop.is_set():
                    break
                log.warning("head subscription lost (%s); reconnecting", exc)
            finally:
                conn.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)
