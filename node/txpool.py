"""The transaction pool: validated transactions waiting for a block.

Each transaction is validated against the best state when it arrives (signature, era, nonce,
fee payability). Transactions are kept per sender by nonce; a transaction is *ready* when its
nonce follows the sender's on-chain nonce without gaps, *future* otherwise. Blocks take ready
transactions by tip (priority), then by arrival. A transaction with the same (sender, nonce)
replaces the old one only with a higher tip. Invalid transactions' hashes are banned for a while,
so resubmitting the same invalid bytes is refused cheaply. Limits: total count, bytes, per sender.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from chain.hashing import blake2_256
from node.errors import NodeError
from pallets.executive import Executive, InvalidTransaction

log = logging.getLogger(__name__)

Watcher = Callable[[Any], None]  # receives statuses: "ready", "future", {"inBlock": h}, ...


class PoolError(NodeError):
    """A submission refused by the pool; `code`/`message`/`data` are Substrate's RPC error."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(f"{message}: {data}" if data else message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def invalid(cls, exc: InvalidTransaction) -> PoolError:
        if exc.kind == "BadFormat":
            return cls(1001, "Extrinsic has invalid format", exc.detail or exc.message)
        if exc.kind == "CannotLookup":
            return cls(1011, "Unknown Transaction Validity", exc.message)
        data = exc.message + (
            f" ({exc.detail})" if exc.detail and exc.kind not in ("BadProof",) else ""
        )
        return cls(1010, "Invalid Transaction", data)


@dataclasses.dataclass(slots=True)
class PoolTx:
    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    tip: int
    seq: int
    inserted_at: float
    watchers: list[Watcher] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class PoolLimits:
    max_count: int = 8192
    max_bytes: int = 20 * 1024 * 1024
    max_per_sender: int = 64
    ban_seconds: float = 1800.0
    max_banned: int = 100_000


class TxPool:
    def __init__(
        self,
        executive: Executive,
        best: Callable[[], tuple[Any, bytes, int]],
        limits: PoolLimits = PoolLimits(),
    ) -> None:
        """`best()` returns (state, hash, number) of the current best block."""
        self.executive = executive
        self.best = best
        self.limits = limits
        self.by_hash: dict[bytes, PoolTx] = {}
        self.by_sender: dict[bytes, dict[int, PoolTx]] = {}
        self.banned: dict[bytes, float] = {}
        self.bytes = 0
        self._seq = itertools.count()

    # ---- submission ---------------------------------------------------------------------------

    def submit(self, raw: bytes, watcher: Watcher | None = None) -> tuple[bytes, str]:
        """Validate and add. Returns (hash, "ready" | "future"). Raises PoolError."""
        tx_hash = blake2_256(raw)
        if tx_hash in self.by_hash:
            raise PoolError(1013, "Transaction Already Imported")
        banned_until = self.banned.get(tx_hash)
        if banned_until is not None:
            if banned_until > time.monotonic():
                raise PoolError(1012, "Transaction is temporarily banned")
            del self.banned[tx_hash]
        state, best_hash, best_number = self.best()
        try:
            valid, checked = self.executive.validate_transaction(state, best_hash, best_number, raw)
        except InvalidTransaction as exc:
            if exc.kind in ("BadProof", "BadFormat", "Call", "BadSigner"):
                self._ban(tx_hash)
            raise PoolError.invalid(exc) from exc
        sender = valid.sender
        slots = self.by_sender.setdefault(sender, {})
        old = slots.get(valid.nonce)
        if old is not None:
            if checked.xt.tip <= old.tip:
                raise PoolError(1014, "Priority is too low", f"({old.tip} vs {checked.xt.tip})")
            self._remove(old, status="usurped", by=tx_hash)
        elif len(slots) >= self.limits.max_per_sender:
            raise PoolError(1016, "Immediately Dropped", "too many transactions from this sender")
        if (
            len(self.by_hash) >= self.limits.max_count
            or self.bytes + len(raw) > self.limits.max_bytes
        ):
            raise PoolError(1016, "Immediately Dropped", "the transaction pool is full")
        tx = PoolTx(
            tx_hash, raw, sender, valid.nonce, checked.xt.tip, next(self._seq), time.monotonic()
        )
        if watcher is not None:
            tx.watchers.append(watcher)
        slots[valid.nonce] = tx
        self.by_hash[tx_hash] = tx
        self.bytes += len(raw)
        status = "ready" if self._is_ready(tx, state) else "future"
        return tx_hash, status

    def watch(self, tx_hash: bytes, watcher: Watcher) -> None:
        tx = self.by_hash.get(tx_hash)
        if tx is not None:
            tx.watchers.append(watcher)

    def unwatch(self, tx_hash: bytes, watcher: Watcher) -> None:
        tx = self.by_hash.get(tx_hash)
        if tx is not None and watcher in tx.watchers:
            tx.watchers.remove(watcher)

    def _ban(self, tx_hash: bytes) -> None:
        if len(self.banned) >= self.limits.max_banned:
            now = time.monotonic()
            self.banned = {h: t for h, t in self.banned.items() if t > now}
            if len(self.banned) >= self.limits.max_banned:
                return
        self.banned[tx_hash] = time.monotonic() + self.limits.ban_seconds

    # ---- reading ------------------------------------------------------------------------------

    def _on_chain_nonce(self, state: Any, sender: bytes) -> int:
        return self.executive.account_nonce(state, sender)

    def _is_ready(self, tx: PoolTx, state: Any) -> bool:
        nonce = self._on_chain_nonce(state, tx.sender)
        slots = self.by_sender.get(tx.sender, {})
        return all(n in slots for n in range(nonce, tx.nonce))

    def ready(self, state: Any) -> Iterator[PoolTx]:
        """Ready transactions in block order: per sender by nonce, across senders by tip."""
        heads: list[tuple[int, int, bytes, int]] = []
        for sender, slots in self.by_sender.items():
            nonce = self._on_chain_nonce(state, sender)
            tx = slots.get(nonce)
            if tx is not None:
                heads.append((-tx.tip, tx.seq, sender, nonce))
        heapq.heapify(heads)
        while heads:
            _, _, sender, nonce = heapq.heappop(heads)
            slots = self.by_sender.get(sender, {})
            tx = slots.get(nonce)
            if tx is None:
                continue
            yield tx
            nxt = slots.get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heads, (-nxt.tip, nxt.seq, sender, nonce + 1))

    def ready_count(self, state: Any) -> int:
        return sum(1 for _ in self.ready(state))

    def pending(self) -> list[bytes]:
        return [tx.raw for tx in sorted(self.by_hash.values(), key=lambda t: t.seq)]

    def __len__(self) -> int:
        return len(self.by_hash)

    # ---- maintenance --------------------------------------------------------------------------

    def _remove(self, tx: PoolTx, status: str | None = None, by: bytes | None = None) -> None:
        self.by_hash.pop(tx.hash, None)
        slots = self.by_sender.get(tx.sender)
        if slots is not None and slots.get(tx.nonce) is tx:
            del slots[tx.nonce]
            if not slots:
                del self.by_sender[tx.sender]
        self.bytes -= len(tx.raw)
        if status is not None:
            value: Any = {"usurped": "0x" + by.hex()} if status == "usurped" and by else status
            self._notify(tx, value)

    def _notify(self, tx: PoolTx, status: Any) -> None:
        for w in list(tx.watchers):
            try:
                w(status)
            except Exception:  # a watcher must never break the pool
                log.exception("transaction watcher failed")

    def drop(self, tx_hash: bytes, *, ban: bool = False) -> None:
        tx = self.by_hash.get(tx_hash)
        if tx is not None:
            self._remove(tx, status="dropped")
        if ban:
            self._ban(tx_hash)

    def on_block(
        self, block_hash: bytes, included: list[bytes], *, finalized: bool, state: Any
    ) -> None:
        """Remove included transactions (notifying watchers), then drop the ones the new state
        made stale; statuses: {"inBlock": h} then {"finalized": h} for a final block."""
        hex_hash = "0x" + block_hash.hex()
        for tx_hash in included:
            tx = self.by_hash.get(tx_hash)
            if tx is None:
                continue
            self._remove(tx)
            self._notify(tx, {"inBlock": hex_hash})
            if finalized:
                self._notify(tx, {"finalized": hex_hash})
        for sender in list(self.by_sender):
            nonce = self._on_chain_nonce(state, sender)
            for n, tx in sorted(self.by_sender.get(sender, {}).items()):
                if n < nonce:
                    self._remove(tx, status="dropped")
