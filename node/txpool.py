"""The transaction pool: validated transactions waiting for a block.

Each transaction is validated against the best state when it arrives (signature, era, nonce,
fee payability), once: the pool keeps its checked form (`CheckedExtrinsic`: the decoded call and
the signing payload whose signature was verified), which blocks built here apply and the import
of a block holding it reuses, so a transaction is decoded and its signature verified once.
Transactions are kept per sender by nonce; a transaction is *ready* when its nonce follows the
sender's on-chain nonce without gaps, *future* otherwise. Blocks take ready
transactions by tip (priority), then by arrival. A transaction with the same (sender, nonce)
replaces the old one only with a higher tip. Invalid transactions' hashes are banned for a while,
so resubmitting the same invalid bytes is refused cheaply; at most `max_banned` bans are kept,
the oldest making room for a new one. Limits: total count, bytes, per sender.

Unsigned transactions (calls with a `validate_unsigned` hook: finality proofs, equivocation
reports) have no sender or nonce: they are always ready, ordered by the priority their hook
gives, and deduplicated by the tags they provide (a second one providing a tag already in the
pool is refused unless its priority is higher, then it replaces the first). After each block they
are re-validated against the new state and dropped when invalid or past their longevity.

When the best chain reorganizes, the node retracts the blocks that left it (`retract`: their
watched transactions hear {"retracted": h}), applies the blocks that joined it (`on_block`), and
resubmits the retracted transactions the new chain does not hold (`resubmit`: validated against
the new best state; one that is invalid there, an inherent among them, stays out, unbanned).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from chain.hashing import blake2_256
from node.errors import NodeError
from pallets.executive import CheckedExtrinsic, Executive, InvalidTransaction, ValidTransaction

log = logging.getLogger(__name__)

MAX_AWAITING_BLOCKS = 1024  # blocks whose included transactions' watchers await finality
Watcher = Callable[[Any], None]  # receives statuses: "ready", "future", {"inBlock": h}, ...


# Refusals whose reason is in the bytes alone, the same in every state: the pool bans the hash,
# and a peer that gossips such a transaction is at fault (an honest one validates before relaying).
# "Call" is banned but not a peer's fault: a pallet's own validity check may depend on state.
STATELESS_INVALID = frozenset(("BadFormat", "BadProof", "BadSigner", "CannotLookup"))
BANNED_KINDS = STATELESS_INVALID | {"Call"}


class PoolError(NodeError):
    """A submission refused by the pool; `code`/`message`/`data` are Substrate's RPC error, `kind`
    the InvalidTransaction variant when the transaction itself is invalid (else None)."""

    def __init__(
        self, code: int, message: str, data: str | None = None, *, kind: str | None = None
    ) -> None:
        super().__init__(f"{message}: {data}" if data else message)
        self.code = code
        self.message = message
        self.data = data
        self.kind = kind

    @property
    def is_peer_fault(self) -> bool:
        """Whether a peer that gossiped this transaction misbehaved (see STATELESS_INVALID)."""
        return self.kind in STATELESS_INVALID

    @classmethod
    def invalid(cls, exc: InvalidTransaction) -> PoolError:
        kind = exc.kind
        if kind == "BadFormat":
            return cls(1001, "Extrinsic has invalid format", exc.detail or exc.message, kind=kind)
        if kind == "CannotLookup":
            return cls(1011, "Unknown Transaction Validity", exc.message, kind=kind)
        data = exc.message + (
            f" ({exc.detail})" if exc.detail and kind not in ("BadProof",) else ""
        )
        return cls(1010, "Invalid Transaction", data, kind=kind)


@dataclasses.dataclass(slots=True)
class PoolTx:
    hash: bytes
    raw: bytes
    sender: bytes | None  # None: an unsigned transaction
    nonce: int
    tip: int  # the priority of an unsigned transaction
    seq: int
    inserted_at: float
    watchers: list[Watcher] = dataclasses.field(default_factory=list)
    provides: tuple[bytes, ...] = ()  # unsigned transactions' tags
    valid_till: int = 0  # unsigned: the last block it may be included in
    # decoded and checked once, at submission: blocks built here and blocks imported with it
    # reuse the decoded call and the verified signature (`BlockBuilder.apply_checked`)
    checked: CheckedExtrinsic | None = None


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
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`best()` returns (state, hash, number) of the current best block; `clock` gives
        monotonic seconds (bans and arrival times)."""
        self.executive = executive
        self.best = best
        self.limits = limits
        self._clock = clock
        self.by_hash: dict[bytes, PoolTx] = {}
        self.by_sender: dict[bytes, dict[int, PoolTx]] = {}
        self.by_tag: dict[bytes, PoolTx] = {}  # unsigned transactions by the tags they provide
        # included transactions whose watchers wait for finality: block hash -> (number, txs)
        self.awaiting_finality: dict[bytes, tuple[int, list[PoolTx]]] = {}
        # watched transactions of retracted blocks, until included again or resubmitted
        self.retracted: dict[bytes, PoolTx] = {}
        # banned hash -> when its ban ends. Every ban lasts ban_seconds, so insertion order is
        # expiry order: expired bans leave from the front, and a full list drops its oldest.
        # An OrderedDict, not a dict: a dict's first key is found past the slots its earlier
        # deletions left (O(deleted)), an OrderedDict's in O(1).
        self.banned: OrderedDict[bytes, float] = OrderedDict()
        self.bytes = 0
        self._seq = itertools.count()

    # ---- submission ---------------------------------------------------------------------------

    def submit(
        self, raw: bytes, watcher: Watcher | None = None, *, ban: bool = True
    ) -> tuple[bytes, str]:
        """Validate and add. Returns (hash, "ready" | "future"). Raises PoolError. `ban`: ban
        the bytes for a while when they can never be valid (bad proof, format, call, signer)."""
        tx_hash = blake2_256(raw)
        if tx_hash in self.by_hash:
            raise PoolError(1013, "Transaction Already Imported")
        banned_until = self.banned.get(tx_hash)
        if banned_until is not None:
            if banned_until > self._clock():
                raise PoolError(1012, "Transaction is temporarily banned")
            del self.banned[tx_hash]
        state, best_hash, best_number = self.best()
        try:
            valid, checked = self.executive.validate_transaction(state, best_hash, best_number, raw)
        except InvalidTransaction as exc:
            if ban and exc.kind in BANNED_KINDS:
                self._ban(tx_hash)
            raise PoolError.invalid(exc) from exc
        if valid.sender is None:
            self._insert_unsigned(tx_hash, raw, valid, best_number, watcher, checked)
            return tx_hash, "ready"
        sender = valid.sender
        slots = self.by_sender.setdefault(sender, {})
        old = slots.get(valid.nonce)
        if old is not None:
            if checked.xt.tip <= old.tip:
                raise PoolError(1014, "Priority is too low", f"({old.tip} vs {checked.xt.tip})")
            self._remove(old, status="usurped", by=tx_hash)
        elif len(slots) >= self.limits.max_per_sender:
            raise PoolError(1016, "Immediately Dropped", "too many transactions from this sender")
        self._ensure_room(len(raw))
        tx = PoolTx(
            tx_hash,
            raw,
            sender,
            valid.nonce,
            checked.xt.tip,
            next(self._seq),
            self._clock(),
            checked=checked,
        )
        if watcher is not None:
            tx.watchers.append(watcher)
        slots[valid.nonce] = tx
        self.by_hash[tx_hash] = tx
        self.bytes += len(raw)
        status = "ready" if self._is_ready(tx, state) else "future"
        return tx_hash, status

    def _insert_unsigned(
        self,
        tx_hash: bytes,
        raw: bytes,
        valid: ValidTransaction,
        best_number: int,
        watcher: Watcher | None,
        checked: CheckedExtrinsic,
    ) -> None:
        holders = {self.by_tag[t].hash: self.by_tag[t] for t in valid.provides if t in self.by_tag}
        for old in holders.values():
            if valid.priority <= old.tip:
                raise PoolError(
                    1014,
                    "Priority is too low",
                    f"a transaction providing the same tag is in the pool ({old.tip} vs "
                    f"{valid.priority})",
                )
        self._ensure_room(len(raw))
        for old in holders.values():
            self._remove(old, status="usurped", by=tx_hash)
        tx = PoolTx(
            tx_hash,
            raw,
            None,
            0,
            valid.priority,
            next(self._seq),
            self._clock(),
            provides=valid.provides,
            valid_till=best_number + valid.longevity,
            checked=checked,
        )
        if watcher is not None:
            tx.watchers.append(watcher)
        for tag in valid.provides:
            self.by_tag[tag] = tx
        self.by_hash[tx_hash] = tx
        self.bytes += len(raw)

    def _ensure_room(self, size: int) -> None:
        if len(self.by_hash) >= self.limits.max_count or self.bytes + size > self.limits.max_bytes:
            raise PoolError(1016, "Immediately Dropped", "the transaction pool is full")

    def watch(self, tx_hash: bytes, watcher: Watcher) -> None:
        tx = self.by_hash.get(tx_hash)
        if tx is not None:
            tx.watchers.append(watcher)

    def unwatch(self, tx_hash: bytes, watcher: Watcher) -> None:
        tx = self.by_hash.get(tx_hash)
        if tx is not None and watcher in tx.watchers:
            tx.watchers.remove(watcher)

    def _ban(self, tx_hash: bytes) -> None:
        """Ban `tx_hash` for `ban_seconds`, in O(1) whatever the fill: the bans that ended leave
        from the front, and when `max_banned` bans are live the oldest makes room (as Substrate's
        pool rotator does)."""
        banned = self.banned
        now = self._clock()
        while banned:
            oldest = next(iter(banned))
            if banned[oldest] > now:
                break
            del banned[oldest]
        banned.pop(tx_hash, None)  # banned again: it moves to the back with its new end
        if self.limits.max_banned <= 0:
            return
        while len(banned) >= self.limits.max_banned:
            banned.popitem(last=False)
        banned[tx_hash] = now + self.limits.ban_seconds

    # ---- reading ------------------------------------------------------------------------------

    def checked(self, tx_hash: bytes) -> CheckedExtrinsic | None:
        """The pool's checked form of a transaction it holds (for block import), else None."""
        tx = self.by_hash.get(tx_hash)
        return tx.checked if tx is not None else None

    def _on_chain_nonce(self, state: Any, sender: bytes) -> int:
        return self.executive.account_nonce(state, sender)

    def _is_ready(self, tx: PoolTx, state: Any) -> bool:
        if tx.sender is None:
            return True
        nonce = self._on_chain_nonce(state, tx.sender)
        slots = self.by_sender.get(tx.sender, {})
        return all(n in slots for n in range(nonce, tx.nonce))

    def ready(self, state: Any) -> Iterator[PoolTx]:
        """Ready transactions in block order: per sender by nonce, across senders (and unsigned
        transactions) by priority (the tip of a signed one), then by arrival."""
        heads: list[tuple[int, int, bytes | None, int]] = []
        for who, slots in self.by_sender.items():
            first = slots.get(self._on_chain_nonce(state, who))
            if first is not None:
                heads.append((-first.tip, first.seq, who, first.nonce))
        unsigned = {tx.seq: tx for tx in self.by_tag.values()}
        heads.extend((-tx.tip, seq, None, 0) for seq, tx in unsigned.items())
        heapq.heapify(heads)  # (priority, seq) is unique: the sender is never compared
        while heads:
            _, seq, sender, nonce = heapq.heappop(heads)
            if sender is None:
                yield unsigned[seq]
                continue
            slots = self.by_sender.get(sender, {})
            head = slots.get(nonce)
            if head is None:
                continue
            yield head
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
        for tag in tx.provides:
            if self.by_tag.get(tag) is tx:
                del self.by_tag[tag]
        slots = self.by_sender.get(tx.sender) if tx.sender is not None else None
        if slots is not None and tx.sender is not None and slots.get(tx.nonce) is tx:
            del slots[tx.nonce]
            if not slots:
                del self.by_sender[tx.sender]
        self.bytes -= len(tx.raw)
        if status is not None:
            value: Any = {"usurped": "0x" + by.hex()} if status == "usurped" and by else status
            self._notify(tx, value)

    def _notify(self, tx: PoolTx, status: Any) -> None:
        _notify_each(tx.watchers, status)

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
        made stale (unsigned ones: re-validated against it); statuses: {"inBlock": h} then
        {"finalized": h} for a final block."""
        hex_hash = "0x" + block_hash.hex()
        waiting: list[PoolTx] = []
        for tx_hash in included:
            tx = self.by_hash.get(tx_hash)
            if tx is not None:
                self._remove(tx)
            else:  # in a retracted block too: its watchers follow it here
                tx = self.retracted.pop(tx_hash, None)
                if tx is None:
                    continue
            self._notify(tx, {"inBlock": hex_hash})
            if finalized:
                self._notify(tx, {"finalized": hex_hash})
            elif tx.watchers:
                waiting.append(tx)
        if waiting:
            if len(self.awaiting_finality) >= MAX_AWAITING_BLOCKS:
                oldest = min(self.awaiting_finality, key=lambda h: self.awaiting_finality[h][0])
                for tx in self.awaiting_finality.pop(oldest)[1]:
                    self._notify(tx, {"finalityTimeout": "0x" + oldest.hex()})
            self.awaiting_finality[block_hash] = (self.executive.block_number(state), waiting)
        for sender in list(self.by_sender):
            nonce = self._on_chain_nonce(state, sender)
            for n, tx in sorted(self.by_sender.get(sender, {}).items()):
                if n < nonce:
                    self._remove(tx, status="dropped")
        self._revalidate_unsigned(block_hash, state)

    def retract(self, block_hash: bytes) -> None:
        """`block_hash` left the best chain: the watchers of its transactions hear
        {"retracted": h} and follow them when they are included again (`on_block`) or come
        back to the pool (`resubmit`)."""
        entry = self.awaiting_finality.pop(block_hash, None)
        if entry is None:
            return
        for tx in entry[1]:
            self._notify(tx, {"retracted": "0x" + block_hash.hex()})
            self.retracted[tx.hash] = tx

    def resubmit(self, raw: bytes) -> bool:
        """Return a transaction of a retracted block to the pool, validated against the best
        state; never banned. Its watchers (if `retract` kept any) hear its new status, or
        "invalid" when it cannot come back."""
        tx_hash = blake2_256(raw)
        orphan = self.retracted.pop(tx_hash, None)
        watchers = orphan.watchers if orphan is not None else []
        tx = self.by_hash.get(tx_hash)
        if tx is None:
            try:
                _, status = self.submit(raw, ban=False)
            except PoolError as exc:
                log.debug("Retracted transaction 0x%s not resubmitted: %s", tx_hash.hex()[:16], exc)
                if orphan is not None:
                    self._notify(orphan, "invalid")
                return False
            tx = self.by_hash[tx_hash]
        else:
            status = "ready" if self._is_ready(tx, self.best()[0]) else "future"
        tx.watchers.extend(watchers)
        _notify_each(watchers, status)
        return True

    def drop_retracted(self) -> None:
        """After a reorg: watchers of retracted transactions neither included again nor
        resubmitted hear "dropped"."""
        orphans, self.retracted = self.retracted, {}
        for tx in orphans.values():
            self._notify(tx, "dropped")

    def on_finalized(self, db: Any, block_hash: bytes) -> None:
        """`block_hash` became final: watchers of transactions included in it or its ancestors
        get {"finalized": h}; those in blocks of other forks at or below it {"retracted": h}.
        `db.header(hash)` gives headers (the chain database)."""
        header = db.header(block_hash)
        if header is None or not self.awaiting_finality:
            return
        lowest = min(n for n, _ in self.awaiting_finality.values())
        canonical: set[bytes] = set()
        h, n = block_hash, header.number
        while n >= lowest:
            canonical.add(h)
            parent = db.header(h)
            if parent is None or n == 0:
                break
            h, n = parent.parent_hash, n - 1
        for waited, (number, txs) in sorted(
            self.awaiting_finality.items(), key=lambda item: item[1][0]
        ):
            if number > header.number:
                continue
            del self.awaiting_finality[waited]
            key = "finalized" if waited in canonical else "retracted"
            for tx in txs:
                self._notify(tx, {key: "0x" + waited.hex()})

    def _revalidate_unsigned(self, block_hash: bytes, state: Any) -> None:
        unsigned = {tx.hash: tx for tx in self.by_tag.values()}
        if not unsigned:
            return
        number = self.executive.block_number(state)
        for tx in sorted(unsigned.values(), key=lambda t: t.seq):
            if number >= tx.valid_till:
                self._remove(tx, status="dropped")
                continue
            try:
                self.executive.validate_transaction(state, block_hash, number, tx.raw)
            except InvalidTransaction as exc:
                if exc.kind == "Future":  # e.g. a proof of a block on another fork: wait
                    continue
                log.debug("Dropped unsigned transaction 0x%s: %s", tx.hash.hex()[:16], exc)
                self._remove(tx, status="invalid")


def _notify_each(watchers: list[Watcher], status: Any) -> None:
    for w in list(watchers):
        try:
            w(status)
        except Exception:  # a watcher must never break the pool
            log.exception("transaction watcher failed")
