"""`Connection`: one substrate-interface connection and the typed reads and writes on it.

substrate-interface is synchronous and not thread-safe: a `Connection` belongs to one thread
at a time (the `Gateway`'s worker thread for asyncio code; a test helper's own thread). It
connects on first use (`ChainUnavailable` when it cannot), with a socket timeout, and never
reconnects by itself: whoever owns it calls `close()` after a failure and the next call connects
again (see `Gateway`).

Reads take an optional block hash (the best block when None). Extrinsics are signed here with
an explicit nonce or the node's next index, submitted to the pool (`submit`, returns once the
pool took it) or submitted and watched until included (`submit_and_wait`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any, Self

from scalecodec.base import ScaleBytes
from scalecodec.types import GenericCall
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException

from chainclient import ClientError
from chainclient.accounts import SS58_PREFIX, ss58
from chainclient.calls import Call
from chainclient.events import TASK_PAID_FIELDS, TASK_SETTLED_FIELDS, EventLayout, find_settlements
from chainclient.registry import COORDINATOR, MINER, OperatorRole, Registration
from chainclient.tasks import (
    Check,
    CheckOpened,
    Settlement,
    Task,
    decode_check,
    decode_task,
    parse_check_opened,
)

QUERY_CHUNK = 512  # storage keys per state_queryStorageAt
PAGE_SIZE = 200  # keys per state_getKeysPaged when listing a map
ALREADY_IMPORTED = 1013  # the pool's "transaction already imported": taken as accepted


class ChainUnavailable(ClientError):
    """The node could not be reached, the connection broke, or no answer came in time."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class RpcError(ClientError):
    """The node answered a JSON-RPC error object."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_library(cls, exc: SubstrateRequestException) -> Self:
        """From substrate-interface's exception (its first argument is the error object)."""
        arg = exc.args[0] if exc.args else exc
        if not isinstance(arg, dict):
            return cls(str(arg))
        message = str(arg.get("message", ""))
        data = arg.get("data")
        code = arg.get("code")
        return cls(
            f"{message}: {data}" if data else message, code if isinstance(code, int) else None
        )


class SubmitRefused(RpcError):
    """The node's pool refused an extrinsic (bad nonce, no funds for fees, invalid call)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Inclusion:
    """Where an extrinsic was included and how its dispatch went."""

    block: int
    error: str | None  # the dispatch error's name ("UnknownTask"); None when it succeeded
    detail: str = ""

    @property
    def is_success(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    nonce: int
    free: int
    reserved: int = 0  # escrowed task prices and deposits (Tasks)
    frozen: int = 0  # free balance that cannot leave (bonded stake)

    def usable(self, existential_deposit: int) -> int:
        """What can be reserved or paid out of `free` with the account kept alive."""
        return max(self.free - max(self.frozen, existential_deposit), 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    module: str
    name: str
    attributes: Any


class Connection:
    def __init__(self, url: str, *, timeout_s: float = 15.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._si: SubstrateInterface | None = None
        self._prefixes: dict[str, str | None] = {}  # Tasks map -> key prefix (None: hashed)
        self._arg_types: dict[tuple[str, str], dict[str, str]] = {}
        self._event_layout: EventLayout | None = None
        self._events_key: str | None = None

    @property
    def si(self) -> SubstrateInterface:
        """The library object, connected (ChainUnavailable if it cannot be)."""
        if self._si is None:
            try:
                si = SubstrateInterface(
                    url=self.url,
                    ss58_format=SS58_PREFIX,
                    ws_options={"timeout": self.timeout_s, "skip_utf8_validation": True},
                    auto_reconnect=False,
                )
            except Exception as exc:  # the library raises OSError, websocket and RPC errors
                raise ChainUnavailable(self.url, f"cannot connect: {exc}") from exc
            try:
                si.init_runtime()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    si.close()
                raise ChainUnavailable(self.url, f"cannot read the runtime: {exc}") from exc
            self._si = si
        return self._si

    def close(self) -> None:
        """Drop the connection (the next call opens a new one)."""
        si, self._si = self._si, None
        self._prefixes.clear()
        self._arg_types.clear()
        self._event_layout = None
        if si is not None:
            with contextlib.suppress(Exception):
                si.close()

    # ---- blocks ---------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(number, hash) of the best block."""
        header = self.si.get_block_header()["header"]
        number = int(header["number"])
        block_hash = header.get("hash") or self.si.get_block_hash(number)
        return number, str(block_hash)

    def block_hash(self, number: int) -> str:
        return str(self.si.get_block_hash(number))

    def events(self, block_hash: str) -> list[Event]:
        out = []
        for record in self.si.get_events(block_hash):
            v = record.value
            out.append(Event(str(v["module_id"]), str(v["event_id"]), v["attributes"]))
        return out

    def checks_opened(self, block_hash: str) -> list[CheckOpened]:
        """The block's Tasks.CheckOpened events."""
        return [
            parse_check_opened(e.attributes)
            for e in self.events(block_hash)
            if e.module == "Tasks" and e.name == "CheckOpened"
        ]

    def raw_events(self, block_hash: str) -> bytes:
        """The SCALE bytes of the block's `System.Events` (b"" when it has none)."""
        if self._events_key is None:
            self._events_key = self.si.create_storage_key("System", "Events").to_hex()
        value = self.si.rpc_request("state_getStorage", [self._events_key, block_hash])["result"]
        return b"" if not value else bytes.fromhex(str(value)[2:])

    def settlements(self, task_ids: Sequence[bytes], block: int) -> dict[bytes, Settlement]:
        """The TaskSettled and TaskPaid events of `task_ids` in block number `block`, by task
        (`chainclient.events`; absent: neither event is in that block)."""
        if not task_ids:
            return {}
        raw = self.raw_events(self.block_hash(block))
        return find_settlements(raw, task_ids, self.task_event_layout(), block)

    def task_event_layout(self) -> EventLayout:
        """The Tasks pallet's settlement events as the runtime's metadata declares them; a
        ClientError when their fields are not the ones `chainclient.events` reads."""
        if self._event_layout is None:
            self._event_layout = self._read_event_layout()
        return self._event_layout

    def _read_event_layout(self) -> EventLayout:
        pallet = self.si.metadata.get_metadata_pallet("Tasks")
        if pallet is None:
            raise ClientError("the runtime has no Tasks pallet")
        events = {ev.value["name"]: ev.value for ev in pallet.events or []}
        variants: dict[str, tuple[str, ...]] = {}

        def check(name: str, fields: tuple[tuple[str, int], ...]) -> int:
            ev = events.get(name)
            if ev is None:
                raise ClientError(f"the runtime has no event Tasks.{name}")
            declared = [(f["name"], f["type"]) for f in ev["fields"]]
            if [n for n, _ in declared] != [n for n, _ in fields]:
                raise ClientError(f"Tasks.{name} has fields {declared}, not the ones read here")
            for (field, type_id), (_, width) in zip(declared, fields, strict=True):
                cls = self.si.runtime_config.get_decoder_class(f"scale_info::{type_id}")
                mapping = getattr(cls, "type_mapping", None)
                if width == 1 and isinstance(mapping, list):  # a unit enum: its variant names
                    variants[field] = tuple(str(v[0]) for v in mapping)
                    continue
                obj = self.si.runtime_config.create_scale_object(
                    f"scale_info::{type_id}", metadata=self.si.metadata
                )
                sample: object = "0x" + "00" * width if width == 32 else 0
                if len(obj.encode(sample).data) != width:
                    raise ClientError(f"Tasks.{name}.{field} is not {width} bytes wide")
            return int(ev["index"])

        paid = check("TaskPaid", TASK_PAID_FIELDS)
        settled = check("TaskSettled", TASK_SETTLED_FIELDS)
        if "status" not in variants or "outcome" not in variants:
            raise ClientError("TaskSettled's status and outcome are not unit enums")
        return EventLayout(
            int(pallet["index"].value), settled, paid, variants["status"], variants["outcome"]
        )

    # ---- accounts -------------------------------------------------------------------------------

    def account(self, who: bytes, block_hash: str | None = None) -> Account:
        value = self.si.query("System", "Account", [ss58(who)], block_hash=block_hash).value
        if not value:
            return Account(0, 0)
        data = value["data"]
        return Account(
            int(value["nonce"]),
            int(data["free"]),
            int(data.get("reserved", 0)),
            int(data.get("frozen", 0)),
        )

    def next_index(self, who: bytes) -> int:
        """The account's next nonce, counting its transactions in the pool."""
        return int(self.si.rpc_request("system_accountNextIndex", [ss58(who)])["result"])

    def existential_deposit(self) -> int:
        value = self.si.get_constant("Balances", "ExistentialDeposit")
        return int(value.value) if value is not None else 0

    def constant(self, module: str, name: str) -> int | None:
        """An integer constant of the runtime's metadata (None when it has no such constant)."""
        value = self.si.get_constant(module, name)
        return None if value is None else int(value.value)

    # ---- registry -------------------------------------------------------------------------------

    def miners(self, block_hash: str | None = None) -> list[Registration]:
        return self._registrations("Miners", block_hash)

    def coordinators(self, block_hash: str | None = None) -> list[Registration]:
        return self._registrations("Coordinators", block_hash)

    def _registrations(self, storage: str, block_hash: str | None) -> list[Registration]:
        pages = self.si.query_map("Registry", storage, block_hash=block_hash, page_size=PAGE_SIZE)
        return [Registration.from_value(key.value, value.value) for key, value in pages]

    def registration_of(
        self, operator: bytes, block_hash: str | None = None
    ) -> tuple[OperatorRole | None, Registration | None]:
        """What `operator` serves (`Registry.OperatorOf`) and that registration (None when the
        role's map has no entry for the staker)."""
        value = self.si.query("Registry", "OperatorOf", [ss58(operator)], block_hash=block_hash)
        if not value.value:
            return None, None
        role = OperatorRole.from_value(value.value)
        storage = {MINER: "Miners", COORDINATOR: "Coordinators"}.get(role.role)
        if storage is None:
            return role, None
        reg = self.si.query("Registry", storage, [ss58(role.staker)], block_hash=block_hash)
        return role, None if not reg.value else Registration.from_value(role.staker, reg.value)

    # ---- tasks ----------------------------------------------------------------------------------

    def tasks(
        self, task_ids: Sequence[bytes], block_hash: str | None = None
    ) -> dict[bytes, Task | None]:
        """Tasks.Tasks of each id (None where there is none), decoded by `decode_task`."""
        raw = self._tasks_map("Tasks", task_ids, block_hash)
        return {t: None if v is None else decode_task(v) for t, v in raw.items()}

    def checks(
        self, task_ids: Sequence[bytes], block_hash: str | None = None
    ) -> dict[bytes, Check | None]:
        """Tasks.Checks of each id (None where no check is open), decoded by `decode_check`."""
        raw = self._tasks_map("Checks", task_ids, block_hash)
        return {t: None if v is None else decode_check(v) for t, v in raw.items()}

    def specs(
        self, task_ids: Sequence[bytes], block_hash: str | None = None
    ) -> dict[bytes, bytes | None]:
        """Tasks.Specs of each id: the revealed spec JSON (None where none was revealed)."""
        raw = self._tasks_map("Specs", task_ids, block_hash)
        return {t: None if v is None else _scale_bytes(v) for t, v in raw.items()}

    def _tasks_map(
        self, storage: str, task_ids: Sequence[bytes], block_hash: str | None
    ) -> dict[bytes, bytes | None]:
        """Raw values of a Tasks map keyed by task id: one state_queryStorageAt per chunk, the
        keys built as prefix ++ id when the map's hasher is Identity (else one by one)."""
        out: dict[bytes, bytes | None] = dict.fromkeys(task_ids)
        keys = {self._task_key(storage, t): t for t in out}
        key_list = list(keys)
        for i in range(0, len(key_list), QUERY_CHUNK):
            params: list[Any] = [key_list[i : i + QUERY_CHUNK]]
            if block_hash is not None:
                params.append(block_hash)
            resp = self.si.rpc_request("state_queryStorageAt", params)
            for change_set in resp["result"]:
                for key, value in change_set["changes"]:
                    if value is not None:
                        out[keys[key.lower()]] = bytes.fromhex(value[2:])
        return out

    def _task_key(self, storage: str, task_id: bytes) -> str:
        if storage not in self._prefixes:
            template = self.si.create_storage_key("Tasks", storage, ["0x" + "00" * 32])
            data = bytes(template.data)
            self._prefixes[storage] = "0x" + data[:32].hex() if len(data) == 64 else None
        prefix = self._prefixes[storage]
        if prefix is not None:
            return prefix + task_id.hex()
        key = self.si.create_storage_key("Tasks", storage, ["0x" + task_id.hex()])
        return "0x" + bytes(key.data).hex()

    # ---- extrinsics -----------------------------------------------------------------------------

    def compose(self, call: Call) -> GenericCall:
        """The library's call object; pre-encoded arguments are taken as they are."""
        if not call.encoded:
            return self.si.compose_call(call.module, call.function, dict(call.params))
        types = self._call_arg_types(call.module, call.function)
        args: dict[str, Any] = {}
        for name, data in call.encoded:
            arg = self.si.runtime_config.create_scale_object(
                types[name], data=ScaleBytes(data), metadata=self.si.metadata
            )
            arg.value_serialized = arg.value_object = ["<pre-encoded>"]  # truthy: taken as is
            args[name] = arg
        composed = self.si.compose_call(call.module, call.function, args)
        if bytes(composed.data.data)[2:] != call.args_bytes:
            raise ClientError(f"{call.module}.{call.function}: pre-encoded arguments not taken")
        return composed

    def _call_arg_types(self, module: str, function: str) -> dict[str, str]:
        types = self._arg_types.get((module, function))
        if types is None:
            fn = self.si.get_metadata_call_function(module, function)
            if fn is None:
                raise ClientError(f"the runtime has no call {module}.{function}")
            types = {f.value["name"]: f.get_type_string() for f in fn["fields"]}
            self._arg_types[(module, function)] = types
        return types

    def sign(self, keypair: Keypair, call: Call, nonce: int | None = None) -> str:
        """The signed extrinsic, 0x-hex (immortal; nonce: the node's next index when None)."""
        xt = self.si.create_signed_extrinsic(call=self.compose(call), keypair=keypair, nonce=nonce)
        return str(xt.data)

    def submit(self, extrinsic: str) -> None:
        """author_submitExtrinsic; SubmitRefused when the pool refuses it (an extrinsic it
        already holds counts as accepted: re-submitting the same bytes is harmless)."""
        try:
            self.si.rpc_request("author_submitExtrinsic", [extrinsic])
        except SubstrateRequestException as exc:
            refused = SubmitRefused.from_library(exc)
            if refused.code != ALREADY_IMPORTED:
                raise refused from exc

    def submit_and_wait(self, keypair: Keypair, call: Call, nonce: int | None = None) -> Inclusion:
        """Sign (with `nonce`, or the node's next one), submit, and wait until a block includes
        it."""
        xt = self.si.create_signed_extrinsic(call=self.compose(call), keypair=keypair, nonce=nonce)
        try:
            receipt = self.si.submit_extrinsic(xt, wait_for_inclusion=True)
        except SubstrateRequestException as exc:
            raise SubmitRefused.from_library(exc) from exc
        block = int(self.si.get_block_number(receipt.block_hash))
        if receipt.is_success:
            return Inclusion(block, None)
        err = receipt.error_message
        if isinstance(err, dict):
            docs = err.get("docs") or []
            detail = " ".join(docs) if isinstance(docs, list) else str(docs)
            return Inclusion(block, str(err.get("name", err)), detail)
        return Inclusion(block, str(err))


def _scale_bytes(raw: bytes) -> bytes:
    """The payload of a SCALE Vec<u8>."""
    first = raw[0]
    mode = first & 3
    if mode == 0:
        n, pos = first >> 2, 1
    elif mode == 1:
        n, pos = int.from_bytes(raw[:2], "little") >> 2, 2
    elif mode == 2:
        n, pos = int.from_bytes(raw[:4], "little") >> 2, 4
    else:
        size = (first >> 2) + 4
        n, pos = int.from_bytes(raw[1 : 1 + size], "little"), 1 + size
    if pos + n != len(raw):
        raise ClientError("malformed Vec<u8> in storage")
    return raw[pos:]
