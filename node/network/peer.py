"""One connected peer: its bounded outbound queue, request bookkeeping and rate limits.

The service owns the tasks; a Peer only holds state. Time comes from `time.monotonic` unless a
clock is injected (the token bucket's tests inject one).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import time
from collections.abc import Callable
from typing import Protocol

from node.network.messages import Status
from node.network.peerid import PeerId


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclasses.dataclass(frozen=True, slots=True)
class PeerInfo:
    peer_id: PeerId
    roles: int
    best_hash: bytes
    best_number: int
    finalized_number: int
    finalized_hash: bytes
    address: str  # the multiaddr we dialed, or the one the peer advertised ("" if none)
    direction: Direction
    dropped_frames: int = 0


class WebSocket(Protocol):
    """What the service needs of aiohttp's client and server WebSocket objects."""

    async def send_bytes(self, data: bytes) -> None: ...


class LruSet:
    """A bounded set that forgets its oldest keys."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def add(self, key: bytes) -> bool:
        """Insert `key`; True if it was not there."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self._items[key] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class TokenBucket:
    """`rate` tokens per second, at most `burst` stored."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class FrameQueue:
    """The bounded outbound queue of one peer: at most `max_frames` frames and `max_bytes`
    bytes. `put` never waits; it returns False (and the frame is dropped) when full."""

    def __init__(
        self, max_frames: int, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_frames, self._max_bytes, self._clock = max_frames, max_bytes, clock
        self._frames: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self.dropped = 0
        self.full_since: float | None = None  # when it last became full; None once drained

    def put(self, data: bytes) -> bool:
        if len(self._frames) >= self._max_frames or self._bytes + len(data) > self._max_bytes:
            self.dropped += 1
            if self.full_since is None:
                self.full_since = self._clock()
            return False
        self._frames.append(data)
        self._bytes += len(data)
        self._ready.set()
        return True

    async def get(self) -> bytes:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        data = self._frames.popleft()
        self._bytes -= len(data)
        if self.full_since is not None and (
            len(self._frames) <= self._max_frames // 2 and self._bytes <= self._max_bytes // 2
        ):
            self.full_since = None
        return data

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_bytes(self) -> int:
        return self._bytes


@dataclasses.dataclass(kw_only=True, eq=False, slots=True)
class Peer:
    """A peer after a successful handshake."""

    peer_id: PeerId
    roles: int
    status: Status
    address: str  # dialed, or the one it advertised (not checked: see `verified_address`)
    direction: Direction
    remote_ip: str  # the address an inbound connection came from ("" for outbound)
    queue: FrameQueue
    request_slots: asyncio.Semaphore  # bounds our outstanding requests to the peer
    request_bucket: TokenBucket
    abuse_bucket: TokenBucket
    known: LruSet  # gossip hashes this peer sent us or we sent it
    pending: dict[int, tuple[asyncio.Future[list[bytes]], int]] = dataclasses.field(
        init=False, default_factory=dict
    )
    next_request_id: int = dataclasses.field(init=False, default=0)
    # the address we may pass on to other peers: one we dialed and that proved to be this peer
    # (outbound: the address itself; inbound: once a probe of the advertised address succeeded)
    verified_address: str = dataclasses.field(init=False, default="")
    close_reason: str | None = dataclasses.field(init=False, default=None)
    in_handler: bool = dataclasses.field(init=False, default=False)
    # the connection's (reader) task
    task: asyncio.Task[None] | None = dataclasses.field(init=False, default=None)
    writer_task: asyncio.Task[None] | None = dataclasses.field(init=False, default=None)

    def info(self) -> PeerInfo:
        return PeerInfo(
            peer_id=self.peer_id,
            roles=self.roles,
            best_hash=self.status.best_hash,
            best_number=self.status.best_number,
            finalized_number=self.status.finalized_number,
            finalized_hash=self.status.finalized_hash,
            address=self.address,
            direction=self.direction,
            dropped_frames=self.queue.dropped,
        )
