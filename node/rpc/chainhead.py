"""`chainHead_v1_*` of paritytech's new JSON-RPC spec: following the head of the chain, with the
blocks it reports pinned until the client unpins them, and operations on pinned blocks.

    chainHead_v1_follow(withRuntime)          subscription; events on chainHead_v1_followEvent
    chainHead_v1_unfollow(followSubscription)
    chainHead_v1_header(sub, hash)            SCALE header (hex), at once
    chainHead_v1_body(sub, hash)              operation -> operationBodyDone
    chainHead_v1_call(sub, hash, fn, params)  operation -> operationCallDone | operationError
    chainHead_v1_storage(sub, hash, items, childTrie)
                                              operation -> operationStorageItems...,
                                              operationWaitingForContinue, operationStorageDone
    chainHead_v1_continue(sub, operationId)   chainHead_v1_stopOperation(sub, operationId)
    chainHead_v1_unpin(sub, hashOrHashes)

One `Follow` per subscription holds what it reported: the pinned blocks, the "live" blocks
(reported by newBlock, neither finalized nor pruned yet) as a tree, the finalized block and the
best block. It is driven by the node's chain notifications (node.interfaces.ChainNotifications)
and reads the chain through ChainReader; whatever the notifications skipped (the parents of an
imported block, a best block chosen by finality) is reported by walking the chain from there.

Limits (`ChainHeadLimits`): follow subscriptions per connection (-32800 past it), operations per
follow (`limitReached`, or `discardedItems` for storage items), pinned blocks outside the live
tree (a `stop` event past it, as the spec advises: the non-finalized blocks are not counted, so
a stalled finality does not stop every follower), storage items per page before
`operationWaitingForContinue`.

The state of a pinned block stays readable: the chain database keeps every state (archive), so
pinning is bookkeeping, and an operation goes on after its block is unpinned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from chain.codec import CodecError
from chain.primitives import Header
from chain.storage.trie import Trie, TrieError
from node.errors import StateDiscarded
from node.interfaces import ChainNotifications, ChainReader, ImportedBlock
from node.rpc.server import Caller, RpcError, RpcServer, Subscription
from node.rpc.storage_query import (
    hash_param,
    hex_bytes,
    parse_child_trie,
    parse_queries,
    run_queries,
)
from pallets.runtime_apis import RuntimeApiError

__all__ = [
    "FOLLOW_EVENT",
    "ChainHead",
    "ChainHeadLimits",
    "RuntimeCall",
    "RuntimeSpec",
]

log = logging.getLogger(__name__)

FOLLOW_EVENT: Final = "chainHead_v1_followEvent"

# Error codes of the spec.
LIMIT_REACHED: Final = -32800  # too many follow subscriptions on this connection
INVALID_BLOCK: Final = -32801  # the hash is not pinned by this subscription
NO_RUNTIME: Final = -32802  # chainHead_v1_call on a follow with withRuntime false
NOT_WAITING: Final = -32803  # chainHead_v1_continue on an operation that is not waiting
DUPLICATE_HASHES: Final = -32804  # chainHead_v1_unpin with a hash twice

RuntimeCall = Callable[[Trie, bytes, str, bytes], bytes]
"""Runs a runtime API function against a block's state and hash (the dispatcher `state_call`
uses); raises pallets.runtime_apis.RuntimeApiError or chain.codec.CodecError for a call that
fails."""

RuntimeSpec = Callable[[bytes], dict[str, Any]]
"""The runtime of a block, as the spec's `{"type": "valid", "spec": {...}}`."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChainHeadLimits:
    follows_per_connection: int = 4  # the spec: at least 2
    operations_per_follow: int = 16  # the spec: at least 16
    pinned_blocks: int = 512  # pinned blocks outside the live tree (finalized or pruned)
    initial_finalized_blocks: int = 4  # finalizedBlockHashes of `initialized`, the last included
    storage_items_per_page: int = 16  # then operationWaitingForContinue

    def __post_init__(self) -> None:
        if self.follows_per_connection < 2 or self.operations_per_follow < 16:
            raise ValueError("the spec asks for at least 2 follows and 16 operations")
        if min(self.pinned_blocks, self.initial_finalized_blocks, self.storage_items_per_page) < 1:
            raise ValueError("chainHead limits must be positive")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _param(params: list[Any], i: int) -> Any:
    return params[i] if len(params) > i else None


def _subscription_id(value: Any) -> str:
    if not isinstance(value, str):
        raise RpcError.invalid_params("followSubscription must be a string")
    return value


def _unfollowed(found: bool) -> None:
    return None  # chainHead_v1_unfollow answers null, found or not


class _Operation:
    """One body, call or storage operation of a follow subscription."""

    __slots__ = ("_resume", "id", "is_waiting", "slots", "task")

    def __init__(self, op_id: str, slots: int) -> None:
        self.id = op_id
        self.slots = slots
        self.task: asyncio.Task[None] | None = None
        self.is_waiting = False
        self._resume = asyncio.Event()

    async def wait_for_continue(self) -> None:
        self.is_waiting = True
        self._resume.clear()
        await self._resume.wait()

    def resume(self) -> None:
        self.is_waiting = False
        self._resume.set()


class Follow:
    """One `chainHead_v1_follow` subscription: what it reported, pinned, and runs."""

    def __init__(self, head: ChainHead, sub: Subscription, with_runtime: bool) -> None:
        self.head = head
        self.sub = sub
        self.with_runtime = with_runtime
        self.pinned: set[bytes] = set()
        self.live: dict[bytes, tuple[int, bytes]] = {}  # hash -> (number, parent hash)
        self.finalized = b""
        self.finalized_number = -1
        self.best: bytes | None = None
        self.operations: dict[str, _Operation] = {}
        self.slots_used = 0
        self._op_ids = itertools.count()
        self._runtimes: dict[bytes, dict[str, Any]] = {}  # of the live and finalized blocks

    @property
    def chain(self) -> ChainReader:
        return self.head.chain

    def notify(self, event: dict[str, Any]) -> None:
        self.sub.notify(event)

    # ---- the follow events --------------------------------------------------------------------

    def initialize(self) -> None:
        """`initialized` with the last finalized blocks, a `newBlock` for each block above the
        finalized one (every fork, parents first), then `bestBlockChanged`."""
        chain = self.chain
        fin_hash = chain.finalized_hash
        fin = chain.finalized_header()
        recent = [fin_hash]
        header = fin
        while len(recent) < self.head.limits.initial_finalized_blocks and header.number > 0:
            parent = chain.header(header.parent_hash)
            if parent is None:
                break
            recent.append(header.parent_hash)
            header = parent
        recent.reverse()
        self.pinned.update(recent)
        self.finalized, self.finalized_number = fin_hash, fin.number
        event: dict[str, Any] = {
            "event": "initialized",
            "finalizedBlockHashes": [_hex(h) for h in recent],
        }
        if self.with_runtime:
            runtime = self.head.runtime_spec(fin_hash)
            self._runtimes[fin_hash] = runtime
            event["finalizedBlockRuntime"] = runtime
        self.notify(event)
        for block_hash, block_header in self._unfinalized_blocks():
            self._new_block(block_hash, block_header)
        self.update_best()

    def _unfinalized_blocks(self) -> list[tuple[bytes, Header]]:
        """Every stored block above the finalized one that descends from it, parents first."""
        found: dict[bytes, Header] = {}
        for number, leaf in self.chain.leaves():
            if number <= self.finalized_number:
                continue
            branch: list[tuple[bytes, Header]] = []
            h = leaf
            while h not in found and h != self.finalized:
                header = self.chain.header(h)
                if header is None or header.number <= self.finalized_number:
                    branch = []  # on a fork that the finalized block left behind
                    break
                branch.append((h, header))
                h = header.parent_hash
            found.update(branch)
        return sorted(found.items(), key=lambda item: (item[1].number, item[0]))

    def on_block(self, block: ImportedBlock) -> None:
        self.announce(block.hash)
        self.update_best()

    def on_finalized(self, block_hash: bytes, header: Header) -> None:
        if header.number <= self.finalized_number or not self.announce(block_hash):
            return
        route = []
        h = block_hash
        while h != self.finalized:
            route.append(h)
            h = self.live[h][1]
        route.reverse()
        self.update_best()  # the best block may leave a pruned fork: reported before `finalized`
        kept = {block_hash}
        pruned = []
        for h, (number, parent) in sorted(self.live.items(), key=lambda item: item[1][0]):
            if h in kept or h in route:
                continue
            if number > header.number and parent in kept:
                kept.add(h)
            else:
                pruned.append(h)
        kept.discard(block_hash)
        self.live = {h: self.live[h] for h in kept}
        self._runtimes = {h: r for h, r in self._runtimes.items() if h in kept or h == block_hash}
        self.finalized, self.finalized_number = block_hash, header.number
        if len(self.pinned) - sum(1 for h in self.live if h in self.pinned) > (
            self.head.limits.pinned_blocks
        ):
            log.info("chainHead follow %s: too many pinned blocks; stopped", self.sub.id)
            self.stop()
            return
        self.notify(
            {
                "event": "finalized",
                "finalizedBlockHashes": [_hex(h) for h in route],
                "prunedBlockHashes": [_hex(h) for h in pruned],
            }
        )

    def announce(self, block_hash: bytes) -> bool:
        """Report `block_hash` and its unreported ancestors with `newBlock`; False when it does not
        descend from the finalized block this subscription reported."""
        branch: list[tuple[bytes, Header]] = []
        h = block_hash
        while h not in self.live and h != self.finalized:
            header = self.chain.header(h)
            if header is None or header.number <= self.finalized_number:
                return False
            branch.append((h, header))
            h = header.parent_hash
        for h, header in reversed(branch):
            self._new_block(h, header)
        return True

    def _new_block(self, block_hash: bytes, header: Header) -> None:
        self.live[block_hash] = (header.number, header.parent_hash)
        self.pinned.add(block_hash)
        event: dict[str, Any] = {
            "event": "newBlock",
            "blockHash": _hex(block_hash),
            "parentBlockHash": _hex(header.parent_hash),
        }
        if self.with_runtime:
            runtime = self.head.runtime_spec(block_hash)
            parent_runtime = self._runtimes.get(header.parent_hash)
            self._runtimes[block_hash] = runtime
            event["newRuntime"] = None if runtime == parent_runtime else runtime
        self.notify(event)

    def update_best(self) -> None:
        best = self.chain.best_hash
        if best == self.best or (best != self.finalized and not self.announce(best)):
            return
        self.best = best
        self.notify({"event": "bestBlockChanged", "bestBlockHash": _hex(best)})

    def stop(self) -> None:
        """The `stop` event; the subscription ends (its operations are cancelled)."""
        self.notify({"event": "stop"})
        self.sub.close()

    # ---- operations ---------------------------------------------------------------------------

    def free_slots(self) -> int:
        return self.head.limits.operations_per_follow - self.slots_used

    def start_operation(self, slots: int) -> _Operation:
        op = _Operation(str(next(self._op_ids)), slots)
        self.operations[op.id] = op
        self.slots_used += slots
        return op

    def finish_operation(self, op: _Operation) -> None:
        if self.operations.pop(op.id, None) is op:
            self.slots_used -= op.slots

    def run_body(self, op: _Operation, block_hash: bytes) -> None:
        block = self.chain.block(block_hash)
        self.finish_operation(op)
        if block is None:
            self.notify({"event": "operationInaccessible", "operationId": op.id})
        else:
            extrinsics = [_hex(x) for x in block.extrinsics]
            self.notify({"event": "operationBodyDone", "operationId": op.id, "value": extrinsics})

    def run_call(self, op: _Operation, block_hash: bytes, function: str, data: bytes) -> None:
        self.finish_operation(op)
        try:
            output = self.head.call_runtime(
                self.chain.state_at(block_hash), block_hash, function, data
            )
        except StateDiscarded:
            self.notify({"event": "operationInaccessible", "operationId": op.id})
        except CodecError as exc:
            self._operation_error(op, f"cannot decode the call parameters: {exc}")
        except RuntimeApiError as exc:
            self._operation_error(op, f"{function}: {exc}")
        except Exception as exc:  # a bug of ours: logged, and the client still hears of it
            log.exception("chainHead_v1_call %s failed", function)
            self._operation_error(op, f"{function}: internal error: {exc}")
        else:
            done = {"event": "operationCallDone", "operationId": op.id, "output": _hex(output)}
            self.notify(done)

    async def run_storage(self, op: _Operation, items: Iterator[dict[str, str]]) -> None:
        page_size = self.head.limits.storage_items_per_page
        last: dict[str, Any] = {"event": "operationStorageDone", "operationId": op.id}
        try:
            nxt = next(items, None)
            while nxt is not None:
                page: list[dict[str, str]] = []
                while nxt is not None and len(page) < page_size:
                    page.append(nxt)
                    nxt = next(items, None)
                self.notify({"event": "operationStorageItems", "operationId": op.id, "items": page})
                if nxt is not None:
                    self.notify({"event": "operationWaitingForContinue", "operationId": op.id})
                    await op.wait_for_continue()
                    await self.sub.drain()
        except TrieError as exc:
            log.error("chainHead_v1_storage: %s", exc)
            last = {"event": "operationInaccessible", "operationId": op.id}
        except Exception as exc:  # a bug of ours: logged, and the client still hears of it
            log.exception("chainHead_v1_storage failed")
            last = {"event": "operationError", "operationId": op.id, "error": f"internal: {exc}"}
        finally:
            self.finish_operation(op)
        self.notify(last)

    def _operation_error(self, op: _Operation, message: str) -> None:
        self.notify({"event": "operationError", "operationId": op.id, "error": message})

    def close(self) -> None:
        for op in list(self.operations.values()):
            if op.task is not None:
                op.task.cancel()
        self.operations.clear()
        self.pinned.clear()
        self.live.clear()


@dataclasses.dataclass(eq=False)
class ChainHead:
    """The chainHead_v1 methods over the chain (ChainReader) and its notifications."""

    chain: ChainReader
    events: ChainNotifications
    call_runtime: RuntimeCall
    runtime_spec: RuntimeSpec
    limits: ChainHeadLimits = dataclasses.field(default_factory=ChainHeadLimits)
    _follows: dict[str, Follow] = dataclasses.field(init=False, default_factory=dict)

    def register(self, server: RpcServer) -> None:
        server.subscription(
            "chainHead_v1_follow",
            "chainHead_v1_unfollow",
            FOLLOW_EVENT,
            self.follow,
            unsubscribed=_unfollowed,
        )
        m = server.connection_method
        m("chainHead_v1_header", self.header)
        m("chainHead_v1_body", self.body)
        m("chainHead_v1_call", self.call)
        m("chainHead_v1_storage", self.storage)
        m("chainHead_v1_continue", self.continue_)
        m("chainHead_v1_stopOperation", self.stop_operation)
        m("chainHead_v1_unpin", self.unpin)

    # ---- follow -------------------------------------------------------------------------------

    def follow(self, params: list[Any], sub: Subscription) -> None:
        with_runtime = _param(params, 0)
        if not isinstance(with_runtime, bool):
            raise RpcError.invalid_params("withRuntime must be a boolean")
        if len(sub.session.subscriptions(FOLLOW_EVENT)) > self.limits.follows_per_connection:
            raise RpcError(
                LIMIT_REACHED,
                "Maximum number of chainHead_v1_follow has been reached",
                f"at most {self.limits.follows_per_connection} per connection",
            )
        follow = Follow(self, sub, with_runtime)
        self._follows[sub.id] = follow
        sub.on_close(lambda: self._forget(follow))
        follow.initialize()
        self.events.subscribe_best(follow.on_block)
        self.events.subscribe_imported(follow.on_block)
        self.events.subscribe_finalized(follow.on_finalized)

    def _forget(self, follow: Follow) -> None:
        self._follows.pop(follow.sub.id, None)
        self.events.unsubscribe_best(follow.on_block)
        self.events.unsubscribe_imported(follow.on_block)
        self.events.unsubscribe_finalized(follow.on_finalized)
        follow.close()

    def _follow_of(self, caller: Caller, value: Any) -> Follow | None:
        """The caller's live follow subscription named `value`, or None (invalid or stale)."""
        sub = caller.session.subscription(_subscription_id(value), FOLLOW_EVENT)
        return self._follows.get(sub.id) if sub is not None else None

    def _pinned(self, follow: Follow | None, value: Any) -> bytes:
        h = hash_param(value)
        if follow is not None and h not in follow.pinned:
            raise RpcError(INVALID_BLOCK, "Invalid block hash", "not pinned by this subscription")
        return h

    # ---- methods ------------------------------------------------------------------------------

    def header(self, params: list[Any], caller: Caller) -> str | None:
        follow = self._follow_of(caller, _param(params, 0))
        h = self._pinned(follow, _param(params, 1))
        if follow is None:
            return None
        header = self.chain.header(h)
        if header is None:
            raise RpcError.internal_error("the header of a pinned block is missing")
        return _hex(header.encode())

    def body(self, params: list[Any], caller: Caller) -> dict[str, Any]:
        follow = self._follow_of(caller, _param(params, 0))
        h = self._pinned(follow, _param(params, 1))
        if follow is None or follow.free_slots() < 1:
            return {"result": "limitReached"}
        op = follow.start_operation(1)
        caller.after_response(lambda: follow.run_body(op, h))
        return {"result": "started", "operationId": op.id}

    def call(self, params: list[Any], caller: Caller) -> dict[str, Any]:
        follow = self._follow_of(caller, _param(params, 0))
        h = self._pinned(follow, _param(params, 1))
        function = _param(params, 2)
        if not isinstance(function, str) or not function:
            raise RpcError.invalid_params("function must be a runtime API function name")
        data = hex_bytes(_param(params, 3), "callParameters")
        if follow is None or follow.free_slots() < 1:
            return {"result": "limitReached"}
        if not follow.with_runtime:
            raise RpcError(NO_RUNTIME, "Subscription was started with withRuntime false")
        op = follow.start_operation(1)
        caller.after_response(lambda: follow.run_call(op, h, function, data))
        return {"result": "started", "operationId": op.id}

    def storage(self, params: list[Any], caller: Caller) -> dict[str, Any]:
        follow = self._follow_of(caller, _param(params, 0))
        h = self._pinned(follow, _param(params, 1))
        queries = parse_queries(_param(params, 2))
        child_trie = parse_child_trie(_param(params, 3))
        if follow is None:
            return {"result": "limitReached"}
        accepted = min(len(queries), follow.free_slots())
        if accepted == 0 and queries:
            return {"result": "limitReached"}
        op = follow.start_operation(accepted)
        items = run_queries(self.chain.state_at(h), queries[:accepted], child_trie)

        def start() -> None:
            if op.id in follow.operations:
                op.task = asyncio.get_running_loop().create_task(
                    follow.run_storage(op, items), name="rpc.chainHead.storage"
                )

        caller.after_response(start)
        return {
            "result": "started",
            "operationId": op.id,
            "discardedItems": len(queries) - accepted,
        }

    def continue_(self, params: list[Any], caller: Caller) -> None:
        follow = self._follow_of(caller, _param(params, 0))
        op_id = _param(params, 1)
        if not isinstance(op_id, str):
            raise RpcError.invalid_params("operationId must be a string")
        op = follow.operations.get(op_id) if follow is not None else None
        if op is None:
            return None
        if not op.is_waiting:
            raise RpcError(NOT_WAITING, "Invalid continue", "the operation is not waiting")
        op.resume()
        return None

    def stop_operation(self, params: list[Any], caller: Caller) -> None:
        follow = self._follow_of(caller, _param(params, 0))
        op_id = _param(params, 1)
        if not isinstance(op_id, str):
            raise RpcError.invalid_params("operationId must be a string")
        op = follow.operations.get(op_id) if follow is not None else None
        if follow is not None and op is not None:
            follow.finish_operation(op)
            if op.task is not None:
                op.task.cancel()
        return None

    def unpin(self, params: list[Any], caller: Caller) -> None:
        follow = self._follow_of(caller, _param(params, 0))
        value = _param(params, 1)
        hashes = [hash_param(v) for v in value] if isinstance(value, list) else [hash_param(value)]
        if follow is None:
            return None  # an invalid or stale subscription: ignored, errors included
        if len(set(hashes)) != len(hashes):
            raise RpcError(DUPLICATE_HASHES, "Duplicate hashes", "a hash is given twice")
        for h in hashes:
            self._pinned(follow, _hex(h))
        follow.pinned.difference_update(hashes)
        return None
