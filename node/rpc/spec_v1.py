"""paritytech's new JSON-RPC spec (json-rpc-interface-spec), served beside the legacy methods:
the groups `chainHead_v1` (node/rpc/chainhead.py), `chainSpec_v1`, `transaction_v1`,
`transactionWatch_v1` and `archive_v1`, each whole.

    chainSpec_v1_chainName, chainSpec_v1_genesisHash, chainSpec_v1_properties
    transaction_v1_broadcast(tx) -> operation id | null      transaction_v1_stop(operationId)
    transactionWatch_v1_submitAndWatch(tx)     subscription, transactionWatch_v1_watchEvent
    transactionWatch_v1_unwatch(subscription)
    archive_v1_finalizedHeight, archive_v1_genesisHash, archive_v1_hashByHeight(height)
    archive_v1_header(hash), archive_v1_body(hash), archive_v1_call(hash, fn, params)
    archive_v1_storage(hash, items, childTrie)          subscription, archive_v1_storageEvent
    archive_v1_stopStorage(id)
    archive_v1_storageDiff(hash, items, previousHash)   subscription, archive_v1_storageDiffEvent
    archive_v1_stopStorageDiff(id)

Runtime calls (`chainHead_v1_call`, `archive_v1_call`) go to the dispatcher `state_call` uses
(`RuntimeCall`), so every runtime API the node serves answers through all three.

A broadcast belongs to its WebSocket (it ends with `transaction_v1_stop` or the connection); the
pool keeps the transaction until it is included or invalid, and gossips it when it is accepted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from chain.codec import CodecError
from chain.frame.runtime import RuntimeVersion
from chain.hashing import blake2_256
from chain.storage.trie import EMPTY_ROOT, Trie, TrieError
from genesis.builder import ChainSpec
from node.interfaces import ChainNotifications, ChainReader, PendingTransactions
from node.rpc.chainhead import ChainHead, ChainHeadLimits, RuntimeCall
from node.rpc.server import Caller, RpcError, RpcServer, Subscription
from node.rpc.storage_query import (
    hash_param,
    hex_bytes,
    parse_child_trie,
    parse_queries,
    run_queries,
)
from node.txpool import PoolError
from pallets.runtime_apis import RuntimeApiError

__all__ = [
    "Archive",
    "SpecV1Limits",
    "TransactionBroadcast",
    "TransactionWatch",
    "register_spec_v1",
    "runtime_spec",
]

log = logging.getLogger(__name__)

STORAGE_EVENT: Final = "archive_v1_storageEvent"
STORAGE_DIFF_EVENT: Final = "archive_v1_storageDiffEvent"
WATCH_EVENT: Final = "transactionWatch_v1_watchEvent"
TOO_MANY: Final = (
    -32000
)  # the server's own limit code (not -32800: clients read that as chainHead's)
_BROADCASTS: Final = "transaction_v1.broadcasts"  # Session.values key
EVENTS_BETWEEN_DRAINS: Final = 256


@dataclasses.dataclass(frozen=True, slots=True)
class SpecV1Limits:
    chain_head: ChainHeadLimits = dataclasses.field(default_factory=ChainHeadLimits)
    broadcasts_per_connection: int = 16  # the spec: at least 4
    archive_storage_per_connection: int = 4  # archive_v1_storage and storageDiff, each


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _param(params: list[Any], i: int) -> Any:
    return params[i] if len(params) > i else None


def _answer_null(found: bool) -> None:
    return None


def runtime_spec(version: RuntimeVersion) -> dict[str, Any]:
    """A runtime as chainHead_v1_follow reports it (`apis`: an object, unlike the legacy list)."""
    return {
        "type": "valid",
        "spec": {
            "specName": version.spec_name,
            "implName": version.impl_name,
            "specVersion": version.spec_version,
            "implVersion": version.impl_version,
            "transactionVersion": version.transaction_version,
            "apis": {_hex(api_id): v for api_id, v in version.api_ids()},
        },
    }


def register_spec_v1(
    server: RpcServer,
    *,
    spec: ChainSpec,
    chain: ChainReader,
    events: ChainNotifications,
    transactions: PendingTransactions,
    call_runtime: RuntimeCall,
    runtime_version_at: Callable[[bytes], RuntimeVersion],
    limits: SpecV1Limits | None = None,
) -> None:
    """Serve every new-spec group on `server`; `runtime_version_at(block_hash)`: the runtime
    version in that block's state (System.set_code can raise it, docs/runtime.md)."""
    limits = limits or SpecV1Limits()
    ChainHead(
        chain=chain,
        events=events,
        call_runtime=call_runtime,
        runtime_spec=lambda block_hash: runtime_spec(runtime_version_at(block_hash)),
        limits=limits.chain_head,
    ).register(server)
    m = server.method
    m("chainSpec_v1_chainName", lambda params: spec.name)
    m("chainSpec_v1_genesisHash", lambda params: _hex(chain.genesis_hash))
    m("chainSpec_v1_properties", lambda params: spec.properties)
    TransactionBroadcast(transactions, limits.broadcasts_per_connection).register(server)
    TransactionWatch(transactions, chain).register(server)
    Archive(chain, call_runtime, limits.archive_storage_per_connection).register(server)


# ---- transaction_v1 ----------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class TransactionBroadcast:
    pool: PendingTransactions
    per_connection: int
    _ids: Iterator[int] = dataclasses.field(init=False, default_factory=itertools.count)

    def register(self, server: RpcServer) -> None:
        server.connection_method("transaction_v1_broadcast", self.broadcast)
        server.connection_method("transaction_v1_stop", self.stop)

    def broadcast(self, params: list[Any], caller: Caller) -> str | None:
        raw = hex_bytes(_param(params, 0), "transaction")
        ops: dict[str, bytes] = caller.session.values.setdefault(_BROADCASTS, {})
        if len(ops) >= self.per_connection:
            return None
        op_id = f"tx-{next(self._ids)}"
        ops[op_id] = blake2_256(raw)
        try:
            self.pool.submit_extrinsic(raw)
        except PoolError as exc:  # the spec: an invalid transaction is silently not broadcast
            log.info("transaction_v1_broadcast: not accepted: %s", exc)
        return op_id

    def stop(self, params: list[Any], caller: Caller) -> None:
        op_id = _param(params, 0)
        ops: dict[str, bytes] = caller.session.values.get(_BROADCASTS, {})
        if not isinstance(op_id, str) or ops.pop(op_id, None) is None:
            raise RpcError.invalid_params("no transaction_v1_broadcast with this operationId")
        return None


@dataclasses.dataclass(eq=False)
class TransactionWatch:
    """transactionWatch_v1: the pool's statuses (node.txpool) as the spec's events."""

    pool: PendingTransactions
    chain: ChainReader

    def register(self, server: RpcServer) -> None:
        server.subscription(
            "transactionWatch_v1_submitAndWatch",
            "transactionWatch_v1_unwatch",
            WATCH_EVENT,
            self.submit_and_watch,
            unsubscribed=_unwatched,
        )

    def submit_and_watch(self, params: list[Any], sub: Subscription) -> None:
        raw = hex_bytes(_param(params, 0), "transaction")

        def watcher(status: Any) -> None:
            event = self._event(status, raw)
            if event is not None:
                sub.notify(event)
                if event["event"] in ("finalized", "invalid", "dropped", "error"):
                    sub.close()

        try:
            tx_hash, _ = self.pool.submit_extrinsic(raw, watcher)
        except PoolError as exc:
            kind = "dropped" if exc.code == 1016 else "invalid"
            sub.notify({"event": kind, "error": str(exc)})
            sub.close()
            return
        sub.notify({"event": "validated"})
        sub.on_close(lambda: self.pool.unwatch(tx_hash, watcher))

    def _event(self, status: Any, raw: bytes) -> dict[str, Any] | None:
        if status in ("ready", "future"):
            return {"event": "validated"}
        if status == "dropped":
            return {"event": "dropped", "error": "dropped from the transaction pool"}
        if status == "invalid":
            return {"event": "invalid", "error": "no longer valid"}
        if not isinstance(status, dict) or len(status) != 1:
            return None
        ((kind, block),) = status.items()
        if kind == "inBlock":
            return {"event": "bestChainBlockIncluded", "block": self._place(block, raw)}
        if kind == "finalized":
            return {"event": "finalized", "block": self._place(block, raw)}
        if kind == "usurped":
            return {"event": "invalid", "error": f"replaced by transaction {block}"}
        if kind in ("retracted", "finalityTimeout"):
            return {"event": "dropped", "error": f"{kind}: its block {block} was not finalized"}
        return None

    def _place(self, block_hex: str, raw: bytes) -> dict[str, Any]:
        """{"hash", "index"}: where the block's body has the transaction."""
        body = self.chain.block(bytes.fromhex(block_hex[2:]))
        index = body.extrinsics.index(raw) if body is not None and raw in body.extrinsics else 0
        return {"hash": block_hex, "index": index}


def _unwatched(found: bool) -> None:
    if not found:
        raise RpcError.invalid_params("no transactionWatch_v1 subscription with this id")
    return None


# ---- archive_v1 --------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Archive:
    """archive_v1 over the chain database, which keeps every block and state."""

    chain: ChainReader
    call_runtime: RuntimeCall
    storage_per_connection: int

    def register(self, server: RpcServer) -> None:
        m = server.method
        m("archive_v1_finalizedHeight", self.finalized_height)
        m("archive_v1_genesisHash", lambda params: _hex(self.chain.genesis_hash))
        m("archive_v1_hashByHeight", self.hash_by_height)
        m("archive_v1_header", self.header)
        m("archive_v1_body", self.body)
        m("archive_v1_call", self.call)
        server.subscription(
            "archive_v1_storage",
            "archive_v1_stopStorage",
            STORAGE_EVENT,
            self.storage,
            unsubscribed=_answer_null,
        )
        server.subscription(
            "archive_v1_storageDiff",
            "archive_v1_stopStorageDiff",
            STORAGE_DIFF_EVENT,
            self.storage_diff,
            unsubscribed=_answer_null,
        )

    def finalized_height(self, params: list[Any]) -> int:
        return self.chain.finalized_header().number

    def hash_by_height(self, params: list[Any]) -> list[str]:
        height = _param(params, 0)
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise RpcError.invalid_params("height must be a non-negative integer")
        canonical = self.chain.hash_at(height)
        found = [canonical] if canonical is not None else []
        if height <= self.chain.finalized_header().number:
            return [_hex(h) for h in found]
        for leaf_number, leaf in self.chain.leaves():  # the blocks of other forks there
            h: bytes | None = leaf
            number = leaf_number
            while h is not None and number > height:
                if self.chain.hash_at(number) == h:
                    h = None  # joins the canonical chain above `height`
                    break
                header = self.chain.header(h)
                h, number = (header.parent_hash, number - 1) if header is not None else (None, 0)
            if h is not None and number == height and h not in found:
                found.append(h)
        return [_hex(h) for h in found]

    def header(self, params: list[Any]) -> str | None:
        header = self.chain.header(hash_param(_param(params, 0)))
        return _hex(header.encode()) if header is not None else None

    def body(self, params: list[Any]) -> list[str] | None:
        block = self.chain.block(hash_param(_param(params, 0)))
        return [_hex(x) for x in block.extrinsics] if block is not None else None

    def call(self, params: list[Any]) -> dict[str, Any] | None:
        h = hash_param(_param(params, 0))
        function = _param(params, 1)
        if not isinstance(function, str) or not function:
            raise RpcError.invalid_params("function must be a runtime API function name")
        data = hex_bytes(_param(params, 2), "callParameters")
        if self.chain.header(h) is None:
            return None
        try:
            output = self.call_runtime(self.chain.state_at(h), h, function, data)
        except (RuntimeApiError, CodecError) as exc:
            return {"success": False, "error": f"{function}: {exc}"}
        return {"success": True, "value": _hex(output)}

    # ---- storage ------------------------------------------------------------------------------

    def _check_room(self, sub: Subscription, notification: str) -> None:
        if len(sub.session.subscriptions(notification)) > self.storage_per_connection:
            raise RpcError(
                TOO_MANY,
                "Too many archive storage queries on this connection",
                f"at most {self.storage_per_connection} at a time",
            )

    def storage(self, params: list[Any], sub: Subscription) -> None:
        h = hash_param(_param(params, 0))
        queries = parse_queries(_param(params, 1), with_pagination=True)
        child_trie = parse_child_trie(_param(params, 2))
        self._check_room(sub, STORAGE_EVENT)
        if self.chain.header(h) is None:
            _finish(sub, {"event": "storageError", "error": "unknown block"})
            return
        items = run_queries(self.chain.state_at(h), queries, child_trie)
        extra = {"childTrieKey": _hex(child_trie)} if child_trie is not None else {}
        events = ({"event": "storage", **item, **extra} for item in items)
        _stream(sub, events, {"event": "storageDone"}, "storageError")

    def storage_diff(self, params: list[Any], sub: Subscription) -> None:
        h = hash_param(_param(params, 0))
        items = _diff_items(_param(params, 1))
        previous = _param(params, 2)
        previous_hash = hash_param(previous, "previousHash") if previous is not None else None
        self._check_room(sub, STORAGE_DIFF_EVENT)
        header = self.chain.header(h)
        if header is None:
            _finish(sub, {"event": "storageDiffError", "error": "unknown block"})
            return
        if previous_hash is None:
            previous_hash = header.parent_hash if header.number > 0 else None
        elif not self.chain.is_descendant(previous_hash, h):
            _finish(sub, {"event": "storageDiffError", "error": "previousHash is not an ancestor"})
            return
        after = self.chain.state_at(h)
        before = self.chain.state_at(previous_hash) if previous_hash is not None else None
        if before is None:
            before = Trie(after.store, EMPTY_ROOT, after.cache)
        events = _diff_events(before, after, items)
        _stream(sub, events, {"event": "storageDiffDone"}, "storageDiffError")


@dataclasses.dataclass(frozen=True, slots=True)
class _DiffItem:
    prefix: bytes
    is_hash: bool
    child_trie: bytes | None


def _diff_items(value: Any) -> list[_DiffItem]:
    if value is None:
        return [_DiffItem(b"", False, None)]
    if not isinstance(value, list) or len(value) > 64:
        raise RpcError.invalid_params("items must be an array of at most 64")
    out = []
    for item in value:
        if not isinstance(item, dict) or item.get("returnType") not in ("value", "hash"):
            raise RpcError.invalid_params('each item needs "returnType": "value" or "hash"')
        key = item.get("key")
        prefix = hex_bytes(key, "key") if key is not None else b""
        out.append(
            _DiffItem(
                prefix, item["returnType"] == "hash", parse_child_trie(item.get("childTrieKey"))
            )
        )
    return out


def _diff_events(before: Trie, after: Trie, items: list[_DiffItem]) -> Iterator[dict[str, Any]]:
    """storageDiff events: both states' keys under each prefix, merged in key order (a deleted
    entry carries its last value)."""
    for item in items:
        if item.child_trie is not None:
            continue  # no child tries in this chain: nothing differs
        old = before.iterate(item.prefix)
        new = after.iterate(item.prefix)
        a, b = next(old, None), next(new, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                assert a is not None
                kind, key, value = "deleted", a[0], a[1]
                a = next(old, None)
            elif a is None or b[0] < a[0]:
                kind, key, value = "added", b[0], b[1]
                b = next(new, None)
            else:
                changed = a[1] != b[1]
                kind, key, value = "modified", b[0], b[1]
                a, b = next(old, None), next(new, None)
                if not changed:
                    continue
            field = {"hash": _hex(blake2_256(value))} if item.is_hash else {"value": _hex(value)}
            yield {"event": "storageDiff", "key": _hex(key), **field, "type": kind}


def _finish(sub: Subscription, event: dict[str, Any]) -> None:
    sub.notify(event)
    sub.close()


def _stream(
    sub: Subscription, events: Iterator[dict[str, Any]], done: dict[str, Any], error_event: str
) -> None:
    """Send `events` once the subscription is answered, pausing while the connection's send queue
    is long, then `done`; the subscription then ends."""

    async def run() -> None:
        try:
            for n, event in enumerate(events, 1):
                sub.notify(event)
                if n % EVENTS_BETWEEN_DRAINS == 0:
                    await sub.drain()
        except TrieError as exc:
            log.error("archive storage query: %s", exc)
            _finish(sub, {"event": error_event, "error": "storage unavailable"})
            return
        except Exception as exc:  # a bug of ours: logged, and the client still hears of it
            log.exception("archive storage query failed")
            _finish(sub, {"event": error_event, "error": f"internal: {exc}"})
            return
        _finish(sub, done)

    def start() -> None:
        task = asyncio.get_running_loop().create_task(run(), name="rpc.archive.storage")

        def stop() -> None:
            if task is not asyncio.current_task():
                task.cancel()

        sub.on_close(stop)

    sub.after_response(start)
