"""The runtime: an ordered set of pallets, their RuntimeCall/RuntimeEvent types, and dispatch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chain import ChainError
from chain.codec import CodecError, Decoder
from chain.frame.common import Weight
from chain.frame.pallet import CallDef, Ctx, EventDef, PalletSpec, pascal
from chain.frame.types import (
    Enum,
    JSONDict,
    Lazy,
    ScaleType,
    TypeRegistry,
    VariantDef,
    _info,
    field_info,
)
from chain.hashing import blake2_64


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeVersion:
    spec_name: str
    impl_name: str
    authoring_version: int
    spec_version: int
    impl_version: int
    apis: tuple[tuple[str, int], ...]  # (runtime API name, version)
    transaction_version: int
    state_version: int = 1

    def api_ids(self) -> list[tuple[bytes, int]]:
        return [(blake2_64(name.encode()), version) for name, version in self.apis]

    def to_json(self) -> JSONDict:
        return {
            "specName": self.spec_name,
            "implName": self.impl_name,
            "authoringVersion": self.authoring_version,
            "specVersion": self.spec_version,
            "implVersion": self.impl_version,
            "apis": [["0x" + h.hex(), v] for h, v in self.api_ids()],
            "transactionVersion": self.transaction_version,
            "stateVersion": self.state_version,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedCall:
    """A call decoded from its bytes: the declaration and the arguments by name."""

    call: CallDef
    args: dict[str, Any]

    @property
    def weight(self) -> Weight:
        inner = self.args.get("call")
        if isinstance(inner, DecodedCall):  # sudo-style wrappers also pay for the inner call
            return self.call.weight + inner.weight
        return self.call.weight

    @property
    def name(self) -> str:
        return f"{self.call.pallet.name}.{self.call.name}"


class RuntimeCallType(ScaleType):
    """`<runtime>::RuntimeCall`: pallet index, call index, arguments."""

    def __init__(self, runtime_name: str, pallets: Sequence[PalletSpec]) -> None:
        self.path = [f"{runtime_name}_runtime", "RuntimeCall"]
        self.type_name = "RuntimeCall"
        self.pallets = {p.index: p for p in pallets if p.calls}

    def encode(self, value: DecodedCall) -> bytes:
        return value.call.encode(**value.args)

    def decode(self, d: Decoder) -> DecodedCall:
        pallet_index = d.u8()
        call_index = d.u8()
        pallet = self.pallets.get(pallet_index)
        if pallet is None:
            raise CodecError(f"no pallet with calls at index {pallet_index}")
        call = pallet.calls.get(call_index)
        if call is None:
            raise CodecError(f"{pallet.name} has no call with index {call_index}")
        return DecodedCall(call, call.decode_args(d))

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        variants = []
        for index in sorted(self.pallets):
            p = self.pallets[index]
            call_enum = Enum(
                f"{p.module}::pallet::Call",
                [VariantDef(c.index, c.name, c.args, c.docs) for c in p.calls.values()],
                params=[("T", None)],
                docs=["Contains a variant per dispatchable extrinsic that this pallet has."],
            )
            variants.append(
                {
                    "name": p.name,
                    "fields": [
                        field_info(
                            None, reg.id_of(call_enum), f"CallableCallFor<{p.name}, Runtime>"
                        )
                    ],
                    "index": p.index,
                    "docs": [],
                }
            )
            p.call_type = call_enum
        return _info({"variant": {"variants": variants}}, path=self.path)


class RuntimeEventType(ScaleType):
    """`<runtime>::RuntimeEvent`: pallet index, event index, fields (values: event dataclasses)."""

    def __init__(self, runtime_name: str, pallets: Sequence[PalletSpec]) -> None:
        self.path = [f"{runtime_name}_runtime", "RuntimeEvent"]
        self.type_name = "RuntimeEvent"
        self.pallets = {p.index: p for p in pallets if p.events}
        self.by_class: dict[type, EventDef] = {}
        self.by_index: dict[tuple[int, int], EventDef] = {}
        for p in self.pallets.values():
            for cls, ev in p.events.items():
                self.by_class[cls] = ev
                self.by_index[(p.index, ev.index)] = ev

    def encode(self, value: Any) -> bytes:
        ev = self.by_class.get(type(value))
        if ev is None:
            raise CodecError(f"{type(value).__qualname__} is not an event of this runtime")
        return ev.encode(value)

    def decode(self, d: Decoder) -> Any:
        key = (d.u8(), d.u8())
        ev = self.by_index.get(key)
        if ev is None:
            raise CodecError(f"unknown event {key}")
        return ev.cls(*[f.ty.decode(d) for f in ev.fields])

    def event_enum(self, p: PalletSpec) -> Enum:
        return Enum(
            f"{p.module}::pallet::Event",
            [VariantDef(e.index, e.cls.__name__, e.fields, e.docs) for e in p.events.values()],
            params=[("T", None)],
            docs=["The `Event` enum of this pallet"],
        )

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        variants = []
        for index in sorted(self.pallets):
            p = self.pallets[index]
            variants.append(
                {
                    "name": p.name,
                    "fields": [
                        field_info(
                            None, reg.id_of(self.event_enum(p)), f"{p.module}::Event<Runtime>"
                        )
                    ],
                    "index": p.index,
                    "docs": [],
                }
            )
        return _info({"variant": {"variants": variants}}, path=self.path)


def error_enum(p: PalletSpec) -> Enum | None:
    if p.error is None:
        return None
    return Enum(
        f"{p.module}::pallet::Error",
        [
            VariantDef(
                int(m),
                pascal(m.name),
                [],
                (p.error_docs[m.name],) if m.name in p.error_docs else (),
            )
            for m in p.error
        ],
        params=[("T", None)],
        docs=["The `Error` enum of this pallet."],
    )


class Runtime:
    """The assembled runtime: pallets in hook order, their configs, and the dispatcher."""

    def __init__(
        self,
        *,
        name: str,
        version: RuntimeVersion,
        pallets: Sequence[PalletSpec],
        config: Any,
        call_refs: Sequence[Lazy] = (),
        event_refs: Sequence[Lazy] = (),
    ) -> None:
        indices = [p.index for p in pallets]
        if len(set(indices)) != len(indices):
            raise ChainError(f"duplicate pallet index in {indices}")
        self.name = name
        self.version = version
        self.pallets = list(pallets)
        self.by_index = {p.index: p for p in pallets}
        self.by_name = {p.name: p for p in pallets}
        self.config = config
        self.call_type = RuntimeCallType(name, pallets)
        self.event_type = RuntimeEventType(name, pallets)
        for ref in call_refs:
            ref.bind(self.call_type)
        for ref in event_refs:
            ref.bind(self.event_type)
        self._metadata: bytes | None = None

    def decode_call(self, data: bytes) -> DecodedCall:
        d = Decoder(data)
        call = self.call_type.decode(d)
        d.finish()
        return call

    def call(self, pallet: str, name: str, **args: Any) -> DecodedCall:
        return DecodedCall(self.by_name[pallet].call_by_name(name), args)

    def dispatch(self, ctx: Ctx, call: DecodedCall | bytes) -> None:
        """Run a call under `ctx.origin`. Raises DispatchError; the caller owns the checkpoint."""
        if isinstance(call, bytes):
            call = self.decode_call(call)
        if ctx.dispatch is None:
            ctx.dispatch = self.dispatch
        call.call.fn(ctx, **call.args)

    def hooks(self, name: str) -> list[Any]:
        return [p.hooks[name] for p in self.pallets if name in p.hooks]

    def metadata(self) -> bytes:
        if self._metadata is None:
            from chain.frame.metadata import build_metadata

            self._metadata = build_metadata(self)
        return self._metadata
