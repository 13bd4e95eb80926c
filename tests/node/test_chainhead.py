"""chainHead_v1 (node/rpc/chainhead.py) over a real RPC server on 127.0.0.1:0, a chain database
in memory with a block tree of tiny real states, and the node's notifications published by hand
as block import does: forks, pruning, best-block reorgs at finality, every operation, the limits
and the spec's error codes. The same methods against a running node: tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from chain.codec import encode_compact
from chain.hashing import blake2_256
from chain.primitives import DigestItem, Header
from chain.storage.kv import MemoryKV
from chain.storage.trie import EMPTY_ROOT, Trie
from node.chaindb import ChainDB
from node.chainview import ChainView
from node.interfaces import ImportedBlock
from node.notifications import ChainEvents
from node.rpc.chainhead import ChainHead, ChainHeadLimits
from node.rpc.server import RpcServer
from pallets.runtime_apis import RuntimeApiError

pytestmark = pytest.mark.timeout(30)

ZERO = b"\x00" * 32
RUNTIME = {"type": "valid", "spec": {"specName": "test", "specVersion": 1, "apis": {}}}
GENESIS_STATE = {b"a:1": b"one", b"a:2": b"two", b"b": b"bee"} | {
    b"many:%03d" % i: b"%d" % i for i in range(10)
}


def h(b: bytes) -> str:
    return "0x" + b.hex()


class Chain:
    """Named blocks in a ChainDB over a MemoryKV, each with a real state, and the chain's
    notifications published the way node.importer does."""

    def __init__(self, state_pruning: int | str | None = None) -> None:
        self.db = ChainDB(MemoryKV(), state_pruning=state_pruning)
        root, nodes = Trie(self.db.nodes, EMPTY_ROOT).apply(GENESIS_STATE)
        genesis = Header(ZERO, 0, root, ZERO, (DigestItem.other(b"genesis"),))
        self.hashes = {
            "g": self.db.commit_block(
                genesis, [], nodes, is_best=True, is_finalized=True, is_genesis=True
            )
        }
        self.view = ChainView(self.db, self.hashes["g"])
        self.events = ChainEvents()

    def __getitem__(self, name: str) -> bytes:
        return self.hashes[name]

    def add(
        self, name: str, parent: str, changes: dict[bytes, bytes | None] | None = None
    ) -> bytes:
        parent_header = self.db.header(self.hashes[parent])
        assert parent_header is not None
        root, nodes = self.db.state_at(self.hashes[parent]).apply(changes or {})
        header = Header(
            self.hashes[parent],
            parent_header.number + 1,
            root,
            ZERO,
            (DigestItem.other(name.encode()),),
        )
        is_best = header.number > self.view.best_header().number
        body = [encode_compact(len(name)) + name.encode()]
        block_hash = self.db.commit_block(header, body, nodes, is_best=is_best, is_finalized=False)
        self.hashes[name] = block_hash
        imported = ImportedBlock(block_hash, header, tuple(body), dict(changes or {}), False)
        if is_best:
            self.events.publish_best(imported)
        self.events.publish_imported(imported)
        return block_hash

    def chain(self, names: str, parent: str) -> None:
        for name in names.split():
            self.add(name, parent)
            parent = name

    def finalize(self, name: str) -> None:
        self.db.finalize(self.hashes[name], None)
        header = self.db.header(self.hashes[name])
        assert header is not None
        self.events.publish_finalized(self.hashes[name], header)


def call_runtime(state: Trie, at: bytes, function: str, data: bytes) -> bytes:
    if function == "Test_echo":
        return data
    if function == "Test_get":
        return state.get(data) or b""
    raise RuntimeApiError(f"Exported method {function} is not found")


class Client:
    """JSON-RPC over one WebSocket; notifications are kept per subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: dict[str, list[Any]] = {}
        self.responses: dict[int, Any] = {}

    async def _read(self) -> None:
        msg = orjson.loads((await self.ws.receive(timeout=5)).data)
        if "id" in msg:
            self.responses[msg["id"]] = msg
        else:
            params = msg["params"]
            self.events.setdefault(params["subscription"], []).append(params["result"])

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        rid = next(self.ids)
        await self.ws.send_str(
            orjson.dumps(
                {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
            ).decode()
        )
        while rid not in self.responses:
            await self._read()
        return self.responses.pop(rid)  # type: ignore[no-any-return]

    async def batch(self, *calls: tuple[Any, ...]) -> list[dict[str, Any]]:
        """One batch request; its responses in the order of `calls`."""
        rids = [next(self.ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
            for rid, (method, *params) in zip(rids, calls, strict=True)
        ]
        await self.ws.send_str(orjson.dumps(body).decode())
        while True:
            msg = orjson.loads((await self.ws.receive(timeout=5)).data)
            if isinstance(msg, list):
                by_id = {r["id"]: r for r in msg}
                return [by_id[rid] for rid in rids]
            params = msg["params"]
            self.events.setdefault(params["subscription"], []).append(params["result"])

    async def result(self, method: str, *params: Any) -> Any:
        out = await self.call(method, *params)
        assert "result" in out, out
        return out["result"]

    async def error(self, method: str, *params: Any) -> int:
        out = await self.call(method, *params)
        assert "error" in out, out
        return out["error"]["code"]  # type: ignore[no-any-return]

    async def next_event(self, sub: str) -> dict[str, Any]:
        while not self.events.get(sub):
            await self._read()
        return self.events[sub].pop(0)  # type: ignore[no-any-return]

    async def events_until(self, sub: str, kind: str, op: str | None = None) -> list[Any]:
        out = []
        while True:
            event = await self.next_event(sub)
            out.append(event)
            if event["event"] == kind and (op is None or event.get("operationId") == op):
                return out

    def pending(self, sub: str) -> list[Any]:
        return self.events.get(sub, [])

    async def follow(self, with_runtime: bool = True) -> tuple[str, dict[str, Any]]:
        sub = await self.result("chainHead_v1_follow", with_runtime)
        return sub, await self.next_event(sub)


@contextlib.asynccontextmanager
async def served(chain: Chain, **limits: Any) -> AsyncIterator[Callable[[], Any]]:
    server = RpcServer()
    ChainHead(
        chain=chain.view,
        events=chain.events,
        call_runtime=call_runtime,
        runtime_spec=lambda block_hash: RUNTIME,
        limits=ChainHeadLimits(**limits),
    ).register(server)
    port = await server.start("127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Client]:
            async with session.ws_connect(f"ws://127.0.0.1:{port}/") as ws:
                yield Client(ws)

        try:
            yield connect
        finally:
            await server.stop()


def run(test: Callable[[Chain], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(Chain()), 20))


# ---- follow events -------------------------------------------------------------------------------


def test_initialized_reports_finalized_then_every_fork_then_best() -> None:
    async def t(chain: Chain) -> None:
        chain.chain("a1 a2 a3", "g")
        chain.finalize("a2")
        chain.chain("b3 b4", "a2")  # fork off the finalized block; b4 becomes best
        chain.add("c4", "a3")
        async with served(chain, initial_finalized_blocks=2) as connect, connect() as c:
            sub, init = await c.follow()
            assert init == {
                "event": "initialized",
                "finalizedBlockHashes": [h(chain["a1"]), h(chain["a2"])],
                "finalizedBlockRuntime": RUNTIME,
            }
            events = await c.events_until(sub, "bestBlockChanged")
            news = [(e["blockHash"], e["parentBlockHash"]) for e in events[:-1]]
            assert sorted(news) == sorted(
                (h(chain[n]), h(chain[p]))
                for n, p in (("a3", "a2"), ("b3", "a2"), ("b4", "b3"), ("c4", "a3"))
            )
            seen = {h(chain["a2"])}
            for block, parent in news:  # each parent is reported before its child
                assert parent in seen
                seen.add(block)
            assert all(e["newRuntime"] is None for e in events[:-1])
            assert events[-1] == {"event": "bestBlockChanged", "bestBlockHash": h(chain["b4"])}
            sub2, init2 = await c.follow(with_runtime=False)
            assert "finalizedBlockRuntime" not in init2
            assert "newRuntime" not in await c.next_event(sub2)

    run(t)


def test_new_blocks_best_changes_and_finality_with_pruned_forks() -> None:
    async def t(chain: Chain) -> None:
        chain.add("a1", "g")
        chain.finalize("a1")
        async with served(chain) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            chain.add("a2", "a1")
            assert await c.next_event(sub) == {
                "event": "newBlock",
                "blockHash": h(chain["a2"]),
                "parentBlockHash": h(chain["a1"]),
                "newRuntime": None,
            }
            assert await c.next_event(sub) == {
                "event": "bestBlockChanged",
                "bestBlockHash": h(chain["a2"]),
            }
            chain.add("b2", "a1")  # a fork, not best: newBlock only
            assert (await c.next_event(sub))["blockHash"] == h(chain["b2"])
            chain.chain("b3 b4", "b2")  # the fork overtakes
            events = [await c.next_event(sub) for _ in range(4)]
            assert [e["event"] for e in events] == ["newBlock", "bestBlockChanged"] * 2
            assert events[-1]["bestBlockHash"] == h(chain["b4"])
            chain.add("a3", "a2")
            assert (await c.next_event(sub))["blockHash"] == h(chain["a3"])
            # finality picks the a-fork: best moves back to it before `finalized` prunes b
            chain.finalize("a3")
            assert await c.next_event(sub) == {
                "event": "bestBlockChanged",
                "bestBlockHash": h(chain["a3"]),
            }
            fin = await c.next_event(sub)
            assert fin["event"] == "finalized"
            assert fin["finalizedBlockHashes"] == [h(chain["a2"]), h(chain["a3"])]
            assert sorted(fin["prunedBlockHashes"]) == sorted(
                h(chain[n]) for n in ("b2", "b3", "b4")
            )
            assert not c.pending(sub)
            # pruned blocks stay pinned until unpinned
            header = await c.result("chainHead_v1_header", sub, h(chain["b3"]))
            assert Header.decode(bytes.fromhex(header[2:])).hash() == chain["b3"]

    run(t)


def test_a_block_whose_parents_were_not_announced_brings_them_first() -> None:
    async def t(chain: Chain) -> None:
        async with served(chain) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            chain.events, quiet = type(chain.events)(), chain.events  # import without notifying
            chain.chain("a1 a2", "g")
            chain.events = quiet
            chain.add("a3", "a2")
            events = await c.events_until(sub, "bestBlockChanged")
            assert [e.get("blockHash") for e in events[:3]] == [
                h(chain[n]) for n in ("a1", "a2", "a3")
            ]
            chain.finalize("a3")
            fin = await c.next_event(sub)
            assert fin["finalizedBlockHashes"] == [h(chain[n]) for n in ("a1", "a2", "a3")]

    run(t)


# ---- operations ----------------------------------------------------------------------------------


def test_header_body_call_and_their_errors() -> None:
    async def t(chain: Chain) -> None:
        chain.add("a1", "g")
        async with served(chain) as connect, connect() as c:
            sub, init = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            a1 = h(chain["a1"])
            header = await c.result("chainHead_v1_header", sub, a1)
            assert Header.decode(bytes.fromhex(header[2:])).number == 1
            started = await c.result("chainHead_v1_body", sub, a1)
            assert started["result"] == "started"
            op = started["operationId"]
            assert await c.next_event(sub) == {
                "event": "operationBodyDone",
                "operationId": op,
                "value": ["0x08" + b"a1".hex()],
            }
            started = await c.result("chainHead_v1_call", sub, a1, "Test_get", h(b"b"))
            done = await c.next_event(sub)
            assert done == {
                "event": "operationCallDone",
                "operationId": started["operationId"],
                "output": h(b"bee"),
            }
            started = await c.result("chainHead_v1_call", sub, a1, "Nope_nothing", "")
            failed = await c.next_event(sub)
            assert failed["event"] == "operationError"
            assert "Nope_nothing" in failed["error"]
            assert failed["operationId"] == started["operationId"]
            # unknown or unpinned blocks, bad params, a follow without runtime
            unknown = h(b"\x01" * 32)
            for method, extra in (
                ("chainHead_v1_header", ()),
                ("chainHead_v1_body", ()),
                ("chainHead_v1_call", ("Test_echo", "0x")),
                ("chainHead_v1_storage", ([{"key": "0x62", "type": "value"}], None)),
            ):
                assert await c.error(method, sub, unknown, *extra) == -32801
            assert await c.error("chainHead_v1_header", sub, "0x1234") == -32602
            assert await c.error("chainHead_v1_call", sub, a1, "Test_echo", "0xzz") == -32602
            assert await c.error("chainHead_v1_follow", "yes") == -32602
            plain, _ = await c.follow(with_runtime=False)
            await c.events_until(plain, "bestBlockChanged")
            assert await c.error("chainHead_v1_call", plain, a1, "Test_echo", "0x") == -32802
            # an invalid follow subscription: null, limitReached
            assert await c.result("chainHead_v1_header", "nope", a1) is None
            assert await c.result("chainHead_v1_body", "nope", a1) == {"result": "limitReached"}
            assert init["finalizedBlockHashes"] == [h(chain["g"])]

    run(t)


def test_operations_on_a_pinned_block_whose_state_was_pruned() -> None:
    """Pins do not hold state back from pruning: a call answers operationInaccessible, a
    storage query 4003 "State already discarded", and the follow goes on."""

    async def t(chain: Chain) -> None:
        chain.add("a1", "g")
        chain.finalize("a1")
        async with served(chain) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            chain.chain("a2 a3", "a1")
            chain.finalize("a3")  # window 1: only a3's state is kept
            await c.events_until(sub, "finalized")
            a1 = h(chain["a1"])
            assert Header.decode(
                bytes.fromhex((await c.result("chainHead_v1_header", sub, a1))[2:])
            )
            started = await c.result("chainHead_v1_call", sub, a1, "Test_get", h(b"b"))
            assert await c.next_event(sub) == {
                "event": "operationInaccessible",
                "operationId": started["operationId"],
            }
            out = await c.call("chainHead_v1_storage", sub, a1, [{"key": "0x62", "type": "value"}])
            assert out["error"]["code"] == 4003
            assert out["error"]["message"] == f"State already discarded for {a1}"
            started = await c.result("chainHead_v1_call", sub, h(chain["a3"]), "Test_get", h(b"b"))
            assert (await c.next_event(sub))["output"] == h(b"bee")
            chain.add("a4", "a3")
            assert (await c.next_event(sub))["event"] == "newBlock"

    asyncio.run(asyncio.wait_for(t(Chain(state_pruning=1)), 20))


def test_storage_items_of_each_type() -> None:
    async def t(chain: Chain) -> None:
        chain.add("a1", "g", {b"b": b"changed", b"a:3": b"three"})
        async with served(chain) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            items = [
                {"key": h(b"b"), "type": "value"},
                {"key": h(b"b"), "type": "hash"},
                {"key": h(b"missing"), "type": "value"},
                {"key": h(b"a:"), "type": "descendantsValues"},
                {"key": h(b"a:"), "type": "descendantsHashes"},
                {"key": h(b"a"), "type": "closestDescendantMerkleValue"},
            ]
            started = await c.result("chainHead_v1_storage", sub, h(chain["a1"]), items, None)
            assert started["result"] == "started"
            assert started["discardedItems"] == 0
            events = await c.events_until(sub, "operationStorageDone")
            got = [i for e in events[:-1] for i in e["items"]]
            state = chain.db.state_at(chain["a1"])
            merkle = state.closest_descendant_hash(b"a")
            assert merkle is not None
            assert got == [
                {"key": h(b"b"), "value": h(b"changed")},
                {"key": h(b"b"), "hash": h(blake2_256(b"changed"))},
                *({"key": h(k), "value": h(v)} for k, v in state.iterate(b"a:")),
                *({"key": h(k), "hash": h(blake2_256(v))} for k, v in state.iterate(b"a:")),
                {"key": h(b"a"), "closestDescendantMerkleValue": h(merkle)},
            ]
            assert len(got) == 9
            # the genesis block, still pinned, keeps its own state
            await c.result("chainHead_v1_storage", sub, h(chain["g"]), items[:1], None)
            events = await c.events_until(sub, "operationStorageDone")
            assert events[0]["items"] == [{"key": h(b"b"), "value": h(b"bee")}]
            # a child trie that does not exist: nothing, then done
            await c.result("chainHead_v1_storage", sub, h(chain["g"]), items[:1], "0xabcd")
            assert [e["event"] for e in await c.events_until(sub, "operationStorageDone")] == [
                "operationStorageDone"
            ]

    run(t)


def test_storage_pages_wait_for_continue_and_stop_operation() -> None:
    async def t(chain: Chain) -> None:
        async with served(chain, storage_items_per_page=4) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            many = [{"key": h(b"many:"), "type": "descendantsValues"}]
            op = (await c.result("chainHead_v1_storage", sub, h(chain["g"]), many, None))[
                "operationId"
            ]
            keys: list[str] = []
            for expected in (4, 4):
                items, waiting = await c.next_event(sub), await c.next_event(sub)
                assert len(items["items"]) == expected
                keys += [i["key"] for i in items["items"]]
                assert waiting == {"event": "operationWaitingForContinue", "operationId": op}
                assert not c.pending(sub)  # nothing more until continue
                assert await c.result("chainHead_v1_continue", sub, op) is None
            last = await c.events_until(sub, "operationStorageDone")
            keys += [i["key"] for i in last[0]["items"]]
            assert keys == [h(b"many:%03d" % i) for i in range(10)]
            assert await c.result("chainHead_v1_continue", sub, op) is None  # finished: no effect
            # stopOperation while waiting: no more events; continue on it then does nothing
            op = (await c.result("chainHead_v1_storage", sub, h(chain["g"]), many, None))[
                "operationId"
            ]
            await c.events_until(sub, "operationWaitingForContinue")
            assert await c.result("chainHead_v1_stopOperation", sub, op) is None
            assert await c.result("chainHead_v1_continue", sub, op) is None
            # two continues in one batch: the second finds the operation running, not waiting
            op = (await c.result("chainHead_v1_storage", sub, h(chain["g"]), many, None))[
                "operationId"
            ]
            await c.events_until(sub, "operationWaitingForContinue", op)
            both = await c.batch(
                ("chainHead_v1_continue", sub, op), ("chainHead_v1_continue", sub, op)
            )
            assert both[0]["result"] is None
            assert both[1]["error"]["code"] == -32803

    run(t)


def test_operation_limit_discards_items_and_answers_limit_reached() -> None:
    async def t(chain: Chain) -> None:
        async with served(chain, storage_items_per_page=1) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            g = h(chain["g"])
            many = [{"key": h(b"many:"), "type": "descendantsValues"}]
            ops = []

            async def paused() -> None:  # a storage operation paused after its first page
                op = await c.result("chainHead_v1_storage", sub, g, many, None)
                ops.append(op["operationId"])
                await c.events_until(sub, "operationWaitingForContinue", ops[-1])

            for _ in range(14):
                await paused()
            missing = [{"key": h(b"missing"), "type": "value"}] * 3
            started = await c.result("chainHead_v1_storage", sub, g, missing, None)
            assert started["discardedItems"] == 1  # 16 slots: 14 + 2
            await c.events_until(sub, "operationStorageDone", started["operationId"])
            await paused()
            await paused()  # 16 in use
            assert await c.result("chainHead_v1_body", sub, g) == {"result": "limitReached"}
            assert await c.result("chainHead_v1_call", sub, g, "Test_echo", "0x") == {
                "result": "limitReached"
            }
            assert await c.result("chainHead_v1_storage", sub, g, missing, None) == {
                "result": "limitReached"
            }
            await c.result("chainHead_v1_stopOperation", sub, ops[0])  # frees one slot
            assert (await c.result("chainHead_v1_body", sub, g))["result"] == "started"

    run(t)


# ---- pinning, unpin, limits ----------------------------------------------------------------------


def test_unpin_one_or_many_and_its_errors() -> None:
    async def t(chain: Chain) -> None:
        chain.chain("a1 a2 a3", "g")
        chain.finalize("a3")
        async with served(chain, initial_finalized_blocks=3) as connect, connect() as c:
            sub, init = await c.follow()
            a1, a2, a3 = (h(chain[n]) for n in ("a1", "a2", "a3"))
            assert init["finalizedBlockHashes"] == [a1, a2, a3]
            assert await c.error("chainHead_v1_unpin", sub, [a1, a1]) == -32804
            unknown = h(b"\x02" * 32)
            assert await c.error("chainHead_v1_unpin", sub, [a1, unknown]) == -32801
            assert await c.result("chainHead_v1_header", sub, a1)  # nothing was unpinned
            assert await c.result("chainHead_v1_unpin", sub, [a1, a2]) is None
            assert await c.result("chainHead_v1_unpin", sub, a3) is None
            for block in (a1, a2, a3):
                assert await c.error("chainHead_v1_header", sub, block) == -32801
            assert await c.error("chainHead_v1_unpin", sub, a3) == -32801
            assert await c.result("chainHead_v1_unpin", "nope", [a1, a1]) is None

    run(t)


def test_too_many_pinned_blocks_stop_the_subscription() -> None:
    async def t(chain: Chain) -> None:
        async with served(chain, pinned_blocks=3) as connect, connect() as c:
            sub, _ = await c.follow()
            await c.events_until(sub, "bestBlockChanged")
            for name, parent in (("a1", "g"), ("a2", "a1")):
                chain.add(name, parent)
                chain.finalize(name)
                await c.events_until(sub, "finalized")
            chain.chain("a3 a4 a5", "a2")  # not finalized: not counted
            await c.events_until(sub, "bestBlockChanged")
            await c.events_until(sub, "bestBlockChanged")
            await c.events_until(sub, "bestBlockChanged")
            chain.finalize("a3")  # 4 finalized blocks pinned
            assert await c.next_event(sub) == {"event": "stop"}
            assert await c.result("chainHead_v1_header", sub, h(chain["a3"])) is None
            assert await c.result("chainHead_v1_unfollow", sub) is None
            chain.add("a6", "a5")
            await asyncio.sleep(0.05)
            assert not c.pending(sub)  # nothing after stop
            sub2, _ = await c.follow()  # a new subscription starts afresh
            assert sub2 != sub

    run(t)


def test_follow_limit_and_unfollow() -> None:
    async def t(chain: Chain) -> None:
        async with served(chain, follows_per_connection=2) as connect, connect() as c:
            first, _ = await c.follow()
            await c.follow(with_runtime=False)
            assert await c.error("chainHead_v1_follow", True) == -32800
            assert await c.result("chainHead_v1_unfollow", first) is None
            assert await c.result("chainHead_v1_unfollow", first) is None  # no effect
            assert await c.result("chainHead_v1_header", first, h(chain["g"])) is None
            third, _ = await c.follow()
            async with connect() as other:  # another connection: its own limit, not our subs
                await other.follow()
                assert await other.result("chainHead_v1_header", third, h(chain["g"])) is None
            chain.add("a1", "g")
            new_block = (await c.events_until(third, "newBlock"))[-1]
            assert new_block["blockHash"] == h(chain["a1"])

    run(t)
