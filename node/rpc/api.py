"""The node's JSON-RPC API: Substrate's method names, parameters and result shapes.

See COMPAT.md section 2 for the table this follows. Every handler validates its params and
raises RpcError (-32602 for bad params, Substrate's codes for pool and state errors).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from chain.codec import CodecError
from chain.consensus import FINALITY_ENGINE_ID
from chain.crypto import CryptoError, ss58_decode
from chain.frame.outer import DecodedCall
from chain.hashing import blake2_256
from chain.primitives import Extrinsic, Header
from chain.storage.trie import Trie
from genesis.builder import ChainSpec
from node.interfaces import (
    ChainNotifications,
    ChainReader,
    ImportedBlock,
    PeerNetwork,
    PendingTransactions,
    SyncState,
)
from node.network import ROLE_AUTHORITY
from node.rpc.cors import CorsPolicy
from node.rpc.server import RpcError, RpcServer, Subscription
from node.rpc.spec_v1 import SpecV1Limits, register_spec_v1
from node.txpool import PoolError
from pallets.executive import Executive
from pallets.runtime_apis import RuntimeApiError, call_runtime_api

log = logging.getLogger(__name__)

VERSION = "0.1.0"
MAX_KEYS_PAGE = 1000
MAX_STORAGE_KEYS = 1000  # per queryStorageAt / subscribeStorage call
UNKNOWN_BLOCK = 4003
FINALIZED_AFTER_IN_BLOCK_S = 1.0
"""A watched transaction's `finalized` goes out at least this long after its `inBlock`.
@polkadot/api fetches the block's events before it reports InBlock and drops that report
(switchMap) when `finalized` arrives meanwhile; on a chain whose blocks are final when authored
(the dev chain) the two statuses came at once, and `signAndSend` callbacks never saw isInBlock.
The fetch took up to 250 ms on a loaded 2-core machine; one second is also the dev chain's
block time, so finality there looks one block behind, as on chains whose finality trails."""


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _param(params: list[Any], i: int, default: Any = None) -> Any:
    return params[i] if len(params) > i and params[i] is not None else default


def _bytes(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError.invalid_params(f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise RpcError.invalid_params(f"{what} is not valid hex") from exc
    if length is not None and len(raw) != length:
        raise RpcError.invalid_params(f"{what} must be {length} bytes")
    return raw


def _account(value: Any) -> bytes:
    if isinstance(value, str) and value.startswith("0x"):
        return _bytes(value, "account id", 32)
    if isinstance(value, str):
        try:
            return ss58_decode(value)[0]
        except CryptoError as exc:
            raise RpcError.invalid_params(f"invalid SS58 address: {exc}") from exc
    raise RpcError.invalid_params("account must be an SS58 address or 0x-hex account id")


STORAGE_MEMO_ENTRIES = 4096
STORAGE_MEMO_VALUE_BYTES = 4096
_MISS: Any = object()


class _StorageMemo:
    """`state_getStorage`'s answers at one state root (the best block's when they were read),
    by the key as the client wrote it: clients poll the same keys (balances, nonces) many times
    per block. A state root fixes every value, so an answer is reused only at that root. At most
    STORAGE_MEMO_ENTRIES answers, each of a value of at most STORAGE_MEMO_VALUE_BYTES."""

    __slots__ = ("answers", "root")

    def __init__(self) -> None:
        self.root = b""
        self.answers: dict[str, str | None] = {}

    def remember(self, root: bytes, key: str, value: bytes | None, answer: str | None) -> None:
        if root != self.root:
            self.root = root
            self.answers = {}
        elif len(self.answers) >= STORAGE_MEMO_ENTRIES:
            self.answers.clear()
        if value is None or len(value) <= STORAGE_MEMO_VALUE_BYTES:
            self.answers[key] = answer


@dataclasses.dataclass(kw_only=True, frozen=True, eq=False, slots=True)
class NodeRpc:
    spec: ChainSpec
    executive: Executive
    chain: ChainReader
    events: ChainNotifications
    transactions: PendingTransactions
    network: PeerNetwork
    sync: SyncState
    is_authority: bool
    local_peer_id: str
    finalized_after_in_block_s: float = FINALIZED_AFTER_IN_BLOCK_S
    _storage_memo: _StorageMemo = dataclasses.field(
        init=False, default_factory=_StorageMemo, repr=False
    )

    # ---- helpers ------------------------------------------------------------------------------

    def _block_hash(self, value: Any) -> bytes:
        """The `at` parameter: a known block hash, or the best block when absent."""
        if value is None:
            return self.chain.best_hash
        h = _bytes(value, "block hash", 32)
        if self.chain.header(h) is None:
            raise RpcError(
                UNKNOWN_BLOCK, f"Client error: UnknownBlock: header not found for 0x{h.hex()}"
            )
        return h

    def _state(self, at: Any) -> tuple[bytes, Trie]:
        h = self._block_hash(at)
        return h, self.chain.state_at(h)

    def _header_json(self, h: bytes) -> dict[str, Any] | None:
        header = self.chain.header(h)
        return header.to_json() if header is not None else None

    # ---- system -------------------------------------------------------------------------------

    def system_chain(self, params: list[Any]) -> str:
        return self.spec.name

    def system_name(self, params: list[Any]) -> str:
        return "cuckoo-node"

    def system_version(self, params: list[Any]) -> str:
        return VERSION

    def system_properties(self, params: list[Any]) -> dict[str, Any]:
        return self.spec.properties

    def system_chain_type(self, params: list[Any]) -> Any:
        t = self.spec.chain_type
        return t if t in ("Development", "Local", "Live") else {"Custom": t}

    def system_health(self, params: list[Any]) -> dict[str, Any]:
        return {
            "peers": self.network.peer_count(),
            "isSyncing": self.sync.is_major_syncing(),
            "shouldHavePeers": self.spec.chain_type != "Development",
        }

    def system_peers(self, params: list[Any]) -> list[Any]:
        return [
            {
                "peerId": p.peer_id,
                "roles": "AUTHORITY" if p.roles & ROLE_AUTHORITY else "FULL",
                "bestHash": _hex(p.best_hash),
                "bestNumber": p.best_number,
            }
            for p in sorted(self.network.peers(), key=lambda p: p.peer_id)
        ]

    def system_node_roles(self, params: list[Any]) -> list[str]:
        return ["Authority"] if self.is_authority else ["Full"]

    def system_local_peer_id(self, params: list[Any]) -> str:
        return self.local_peer_id

    def system_local_listen_addresses(self, params: list[Any]) -> list[str]:
        return self.network.listen_addresses()

    def system_sync_state(self, params: list[Any]) -> dict[str, int]:
        return {
            "startingBlock": self.sync.starting_block,
            "currentBlock": self.chain.best_header().number,
            "highestBlock": self.sync.highest_block(),
        }

    def system_account_next_index(self, params: list[Any]) -> int:
        who = _account(_param(params, 0))
        nonce = self.executive.account_nonce(self.chain.state_at(), who)
        return self.transactions.next_index(who, nonce)

    # ---- chain --------------------------------------------------------------------------------

    def chain_get_block_hash(self, params: list[Any]) -> Any:
        value = _param(params, 0)
        if value is None:
            return _hex(self.chain.best_hash)
        if isinstance(value, list):
            return [self._hash_for(v) for v in value]
        return self._hash_for(value)

    def _hash_for(self, value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = int(value, 16) if value.startswith("0x") else int(value)
            except ValueError as exc:
                raise RpcError.invalid_params(
                    "block number must be an integer or hex string"
                ) from exc
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RpcError.invalid_params("block number must be a non-negative integer")
        h = self.chain.hash_at(value)
        return _hex(h) if h is not None else None

    def chain_get_header(self, params: list[Any]) -> Any:
        value = _param(params, 0)
        if value is None:
            return self.chain.best_header().to_json()
        return self._header_json(_bytes(value, "block hash", 32))

    def chain_get_block(self, params: list[Any]) -> Any:
        value = _param(params, 0)
        h = self.chain.best_hash if value is None else _bytes(value, "block hash", 32)
        block = self.chain.block(h)
        if block is None:
            return None
        justification = self.chain.justification(h)
        return {
            "block": {
                "header": block.header.to_json(),
                "extrinsics": [_hex(x) for x in block.extrinsics],
            },
            # Substrate's JSON: [[engine id bytes, encoded justification bytes]]
            "justifications": (
                [[list(FINALITY_ENGINE_ID), list(justification)]]
                if justification is not None
                else None
            ),
        }

    def chain_get_finalized_head(self, params: list[Any]) -> str:
        return _hex(self.chain.finalized_hash)

    # ---- state --------------------------------------------------------------------------------

    def state_get_runtime_version(self, params: list[Any]) -> dict[str, Any]:
        _, state = self._state(_param(params, 0))
        return self.executive.version_at(state).to_json()

    def state_get_metadata(self, params: list[Any]) -> str:
        _, state = self._state(_param(params, 0))
        return _hex(self.executive.metadata_at(state))

    def state_get_storage(self, params: list[Any]) -> str | None:
        key_param = _param(params, 0)
        at = _param(params, 1)
        memo = self._storage_memo
        if type(key_param) is str:
            answer = memo.answers.get(key_param, _MISS)
            if answer is not _MISS:  # a valid key: checked in the same order as below
                state = self.chain.state_at() if at is None else self._state(at)[1]
                if state.root == memo.root:
                    return cast(str | None, answer)
        key = _bytes(key_param, "storage key")
        _, state = self._state(at)
        value = state.get(key)
        answer = _hex(value) if value is not None else None
        if at is None:
            memo.remember(state.root, key_param, value, answer)
        return answer

    def state_get_storage_hash(self, params: list[Any]) -> str | None:
        key = _bytes(_param(params, 0), "storage key")
        _, state = self._state(_param(params, 1))
        value = state.get(key)
        return _hex(blake2_256(value)) if value is not None else None

    def state_get_storage_size(self, params: list[Any]) -> int | None:
        key = _bytes(_param(params, 0), "storage key")
        _, state = self._state(_param(params, 1))
        value = state.get(key)
        return len(value) if value is not None else None

    def state_query_storage_at(self, params: list[Any]) -> list[dict[str, Any]]:
        keys = _param(params, 0)
        if not isinstance(keys, list) or len(keys) > MAX_STORAGE_KEYS:
            raise RpcError.invalid_params(
                f"keys must be a list of at most {MAX_STORAGE_KEYS} hex keys"
            )
        h, state = self._state(_param(params, 1))
        changes = []
        for k in keys:
            value = state.get(_bytes(k, "storage key"))
            changes.append([k, _hex(value) if value is not None else None])
        return [{"block": _hex(h), "changes": changes}]

    def state_get_keys_paged(self, params: list[Any]) -> list[str]:
        prefix = _bytes(_param(params, 0, "0x"), "prefix")
        count = _param(params, 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_KEYS_PAGE:
            raise RpcError.invalid_params(f"count must be an integer from 0 to {MAX_KEYS_PAGE}")
        start_raw = _param(params, 2)
        start = _bytes(start_raw, "start key") if start_raw is not None else None
        _, state = self._state(_param(params, 3))
        out: list[str] = []
        for key, _ in state.iterate(prefix, start):
            if len(out) >= count:
                break
            out.append(_hex(key))
        return out

    def state_call(self, params: list[Any]) -> str:
        method = _param(params, 0)
        if not isinstance(method, str):
            raise RpcError.invalid_params("method must be a string")
        raw_data = _param(params, 1, "0x")
        # Substrate takes empty call data as "" as well as "0x" (polkadot-api sends "")
        data = b"" if raw_data == "" else _bytes(raw_data, "call data")
        at, state = self._state(_param(params, 2))
        try:
            return _hex(call_runtime_api(self.executive, state, at, method, data))
        except RuntimeApiError as exc:
            raise RpcError(UNKNOWN_BLOCK, f"Client error: Execution failed: {exc}") from exc
        except CodecError as exc:
            raise RpcError(
                UNKNOWN_BLOCK, f"Client error: Execution failed: cannot decode input: {exc}"
            ) from exc

    # ---- payment (deprecated RPCs; used by substrate-interface without state_call) -------------

    def _payment_query(self, params: list[Any]) -> tuple[bytes, Extrinsic, DecodedCall, Trie]:
        """A payment query's extrinsic (params[0]) decoded, its call, and the state at the block
        of params[1]."""
        xt = _bytes(_param(params, 0), "extrinsic")
        _, state = self._state(_param(params, 1))
        try:
            decoded = Extrinsic.decode(xt)
            call = self.executive.runtime.decode_call(decoded.call)
        except CodecError as exc:
            raise RpcError.invalid_params(f"cannot decode the extrinsic: {exc}") from exc
        return xt, decoded, call, state

    def payment_query_info(self, params: list[Any]) -> dict[str, Any]:
        xt, _, call, state = self._payment_query(params)
        ex = self.executive
        info = ex.dispatch_info(call)
        fee = ex.fee_details(state, len(xt), call).inclusion_fee
        return {
            "weight": {"ref_time": info.weight.ref_time, "proof_size": info.weight.proof_size},
            "class": info.class_.lower() if isinstance(info.class_, str) else "normal",
            "partialFee": str(fee),
        }

    def payment_query_fee_details(self, params: list[Any]) -> dict[str, Any]:
        xt, decoded, call, state = self._payment_query(params)
        d = self.executive.fee_details(state, len(xt), call)
        return {
            "inclusionFee": {
                "baseFee": hex(d.base_fee),
                "lenFee": hex(d.len_fee),
                "adjustedWeightFee": hex(d.adjusted_weight_fee),
            },
            "tip": hex(decoded.tip),
        }

    # ---- author -------------------------------------------------------------------------------

    def _submit(
        self, params: list[Any], watcher: Callable[[Any], None] | None = None
    ) -> tuple[bytes, str]:
        raw = _bytes(_param(params, 0), "extrinsic")
        try:
            tx_hash, status = self.transactions.submit_extrinsic(raw, watcher)
        except PoolError as exc:
            raise RpcError(exc.code, exc.message, exc.data) from exc
        log.debug("Accepted transaction 0x%s (%s)", tx_hash.hex(), status)
        return tx_hash, status

    def author_submit_extrinsic(self, params: list[Any]) -> str:
        tx_hash, _ = self._submit(params)
        return _hex(tx_hash)

    def author_pending_extrinsics(self, params: list[Any]) -> list[str]:
        return [_hex(x) for x in self.transactions.pending()]

    def author_submit_and_watch(self, params: list[Any], sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        in_block_at = -float("inf")  # when the last inBlock went out

        def watcher(status: Any) -> None:
            nonlocal in_block_at
            if sub.closed:
                return
            is_dict = isinstance(status, dict)
            if (is_dict and ("finalized" in status or "usurped" in status)) or status in (
                "dropped",
                "invalid",
            ):
                self.transactions.unwatch(tx_hash, watcher)  # the last status
            wait = in_block_at + self.finalized_after_in_block_s - time.monotonic()
            if is_dict and "finalized" in status and wait > 0:
                loop.call_later(wait, sub.notify, status)  # a no-op once the client unsubscribed
                return
            sub.notify(status)
            if is_dict and "inBlock" in status:
                in_block_at = time.monotonic()

        tx_hash, status = self._submit(params, watcher)
        sub.notify(status)
        sub.on_close(lambda: self.transactions.unwatch(tx_hash, watcher))

    # ---- subscriptions ------------------------------------------------------------------------

    def subscribe_new_heads(self, params: list[Any], sub: Subscription) -> None:
        sub.notify(self.chain.best_header().to_json())
        self._listen(sub, lambda b: sub.notify(b.header.to_json()))

    def subscribe_finalized_heads(self, params: list[Any], sub: Subscription) -> None:
        sub.notify(self.chain.finalized_header().to_json())

        def on_final(block_hash: bytes, header: Header) -> None:
            if not sub.closed:
                sub.notify(header.to_json())

        self.events.subscribe_finalized(on_final)
        sub.on_close(lambda: self.events.unsubscribe_finalized(on_final))

    def subscribe_runtime_version(self, params: list[Any], sub: Subscription) -> None:
        """The version at the best block now, then each time a new best block's differs."""
        current = self.executive.version_at(self.chain.state_at(self.chain.best_hash))
        sub.notify(current.to_json())

        def on_block(b: ImportedBlock) -> None:
            nonlocal current
            version = self.executive.version_at(self.chain.state_at(b.hash))
            if version != current and not sub.closed:
                current = version
                sub.notify(version.to_json())

        self._listen(sub, on_block)

    def subscribe_storage(self, params: list[Any], sub: Subscription) -> None:
        raw_keys = _param(params, 0)
        if not isinstance(raw_keys, list) or not raw_keys or len(raw_keys) > MAX_STORAGE_KEYS:
            raise RpcError.invalid_params(
                f"keys must be a non-empty list of at most {MAX_STORAGE_KEYS} hex keys "
                "(subscribing to all storage changes is not supported)"
            )
        keys = {_bytes(k, "storage key"): k for k in raw_keys}
        best = self.chain.best_hash
        state = self.chain.state_at(best)
        first = []
        for k, shown in keys.items():
            v = state.get(k)
            first.append([shown, _hex(v) if v is not None else None])
        sub.notify({"block": _hex(best), "changes": first})

        def on_block(b: ImportedBlock) -> None:
            changed = [
                [shown, _hex(b.changes[k]) if b.changes[k] is not None else None]  # type: ignore[arg-type]
                for k, shown in keys.items()
                if k in b.changes
            ]
            if changed:
                sub.notify({"block": _hex(b.hash), "changes": changed})

        self._listen(sub, on_block)

    def _listen(self, sub: Subscription, fn: Callable[[ImportedBlock], None]) -> None:
        self.events.subscribe_best(fn)
        sub.on_close(lambda: self.events.unsubscribe_best(fn))


def build_rpc(
    api: NodeRpc, *, cors: CorsPolicy | None = None, spec_v1_limits: SpecV1Limits | None = None
) -> RpcServer:
    """An RPC server that serves `api` under Substrate's method names, and the new JSON-RPC
    spec's groups (node/rpc/spec_v1.py) beside them; `cors`: the browser origins it serves
    (default: the chain type's, node/rpc/cors.py)."""
    server = RpcServer(cors=cors or CorsPolicy.for_chain_type(api.spec.chain_type))
    m = server.method
    m("system_chain", api.system_chain)
    m("system_name", api.system_name)
    m("system_version", api.system_version)
    m("system_properties", api.system_properties)
    m("system_chainType", api.system_chain_type)
    m("system_health", api.system_health)
    m("system_peers", api.system_peers)
    m("system_nodeRoles", api.system_node_roles)
    m("system_localPeerId", api.system_local_peer_id)
    m("system_localListenAddresses", api.system_local_listen_addresses)
    m("system_syncState", api.system_sync_state)
    m("system_accountNextIndex", api.system_account_next_index, aliases=["account_nextIndex"])
    m("chain_getBlockHash", api.chain_get_block_hash, aliases=["chain_getHead"])
    m("chain_getHeader", api.chain_get_header)
    m("chain_getBlock", api.chain_get_block)
    m("chain_getFinalizedHead", api.chain_get_finalized_head, aliases=["chain_getFinalisedHead"])
    m("state_getRuntimeVersion", api.state_get_runtime_version, aliases=["chain_getRuntimeVersion"])
    m("state_getMetadata", api.state_get_metadata)
    m("state_getStorage", api.state_get_storage, aliases=["state_getStorageAt"])
    m("state_getStorageHash", api.state_get_storage_hash, aliases=["state_getStorageHashAt"])
    m("state_getStorageSize", api.state_get_storage_size, aliases=["state_getStorageSizeAt"])
    m("state_queryStorageAt", api.state_query_storage_at)
    m("state_getKeysPaged", api.state_get_keys_paged, aliases=["state_getKeysPagedAt"])
    m("state_call", api.state_call, aliases=["state_callAt"])
    m("payment_queryInfo", api.payment_query_info)
    m("payment_queryFeeDetails", api.payment_query_fee_details)
    m("author_submitExtrinsic", api.author_submit_extrinsic)
    m("author_pendingExtrinsics", api.author_pending_extrinsics)
    server.subscription(
        "author_submitAndWatchExtrinsic",
        "author_unwatchExtrinsic",
        "author_extrinsicUpdate",
        api.author_submit_and_watch,
    )
    server.subscription(
        "chain_subscribeNewHeads",
        "chain_unsubscribeNewHeads",
        "chain_newHead",
        api.subscribe_new_heads,
        aliases=[
            ("chain_subscribeNewHead", "chain_unsubscribeNewHead"),
            ("subscribe_newHead", "unsubscribe_newHead"),
        ],
    )
    server.subscription(
        "chain_subscribeFinalizedHeads",
        "chain_unsubscribeFinalizedHeads",
        "chain_finalizedHead",
        api.subscribe_finalized_heads,
        aliases=[("chain_subscribeFinalisedHeads", "chain_unsubscribeFinalisedHeads")],
    )
    server.subscription(
        "chain_subscribeAllHeads",
        "chain_unsubscribeAllHeads",
        "chain_allHead",
        api.subscribe_new_heads,
    )
    server.subscription(
        "state_subscribeRuntimeVersion",
        "state_unsubscribeRuntimeVersion",
        "state_runtimeVersion",
        api.subscribe_runtime_version,
        aliases=[("chain_subscribeRuntimeVersion", "chain_unsubscribeRuntimeVersion")],
    )
    server.subscription(
        "state_subscribeStorage", "state_unsubscribeStorage", "state_storage", api.subscribe_storage
    )
    register_spec_v1(
        server,
        spec=api.spec,
        chain=api.chain,
        events=api.events,
        transactions=api.transactions,
        call_runtime=lambda state, at, method, data: call_runtime_api(
            api.executive, state, at, method, data
        ),
        runtime_version_at=lambda h: api.executive.version_at(api.chain.state_at(h)),
        limits=spec_v1_limits,
    )
    names = [*server.method_names(), "rpc_methods"]
    m("rpc_methods", lambda params: {"methods": sorted(names), "version": 1})
    return server
