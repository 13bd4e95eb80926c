"""The runtime's outer enums: `RuntimeCall` (pallet index, call index, arguments) and
`RuntimeEvent` (pallet index, event index, fields), built from the pallets' declarations.

A call may carry calls (Sudo's `Box<RuntimeCall>`; a batch's `Vec<RuntimeCall>`), so call bytes
may nest without end. Decoding counts the nesting and refuses a call nested deeper than
`MAX_CALL_DEPTH` with `CallTooDeep`, as soon as it reaches that level (Substrate decodes
extrinsics with `MAX_EXTRINSIC_DEPTH` = 256 for the same reason). Each level takes one Python
frame of `RuntimeCallType.decode` (two through a `Vec<RuntimeCall>`), so the deepest call that
decodes fits in Python's default recursion limit with room to spare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chain.codec import CodecError, Decoder
from chain.frame.common import Weight
from chain.frame.pallet import CallDef, EventDef, PalletSpec
from chain.frame.types import Enum, JSONDict, ScaleType, TypeRegistry, VariantDef, _info, field_info
from chain.records import fast_init

MAX_CALL_DEPTH = 256
"""The deepest a call may nest in calls: a call at level 257 (a top-level call is level 1) does
not decode. Consensus-visible: a block holding a deeper call is invalid."""


class CallTooDeep(CodecError):
    """Call bytes that nest calls deeper than `MAX_CALL_DEPTH`."""


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class DecodedCall:
    """A call decoded from its bytes: the declaration and the arguments by name."""

    call: CallDef
    args: dict[str, Any]
    _weight: Weight | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def weight(self) -> Weight:
        """The declared weight for these arguments: the one place the runtime reads it (fees,
        block limits, dispatch info). Computed once (a call's arguments are not changed)."""
        weight = self._weight
        if weight is None:
            weight = self.call.weight_of(self.args)
            inner = self.args.get("call")
            if isinstance(inner, DecodedCall):  # sudo-style wrappers also pay for the inner call
                weight = weight + inner.weight
            object.__setattr__(self, "_weight", weight)
        return weight

    @property
    def name(self) -> str:
        return f"{self.call.pallet.name}.{self.call.name}"


class RuntimeCallType(ScaleType):
    """`<runtime>::RuntimeCall`: pallet index, call index, arguments."""

    def __init__(self, runtime_name: str, pallets: Sequence[PalletSpec]) -> None:
        self.path = [f"{runtime_name}_runtime", "RuntimeCall"]
        self.type_name = "RuntimeCall"
        self.pallets = {p.index: p for p in pallets if p.calls}
        self.shape = tuple(
            (i, p.name, tuple(sorted(p.calls))) for i, p in sorted(self.pallets.items())
        )
        self.call_enums = {  # each pallet's `Call` enum, by pallet index (metadata)
            index: Enum(
                f"{p.module}::pallet::Call",
                [VariantDef(c.index, c.name, c.args, c.docs) for c in p.calls.values()],
                params=[("T", None)],
                docs=["Contains a variant per dispatchable extrinsic that this pallet has."],
            )
            for index, p in self.pallets.items()
        }

    def encode(self, value: DecodedCall) -> bytes:
        call, args = value.call, value.args
        parts = [bytes((call.pallet.index, call.index))]
        for name, ty in call.arg_types:  # here, not in CallDef.encode: one frame per level
            parts.append(ty.encode(args[name]))
        return b"".join(parts)

    def decode(self, d: Decoder) -> DecodedCall:
        depth = d.depth + 1
        if depth > MAX_CALL_DEPTH:
            raise CallTooDeep(f"calls nest deeper than {MAX_CALL_DEPTH} levels")
        pallet_index = d.u8()
        call_index = d.u8()
        pallet = self.pallets.get(pallet_index)
        if pallet is None:
            raise CodecError(f"no pallet with calls at index {pallet_index}")
        call = pallet.calls.get(call_index)
        if call is None:
            raise CodecError(f"{pallet.name} has no call with index {call_index}")
        # the arguments are decoded here, not in a helper: one frame per nesting level
        d.depth = depth
        args: dict[str, Any] = {}
        for name, ty in call.arg_types:
            args[name] = ty.decode(d)
        d.depth = depth - 1
        return DecodedCall(call, args)

    def scale_info(self, reg: TypeRegistry) -> JSONDict:
        variants = []
        for index in sorted(self.pallets):
            p = self.pallets[index]
            call_enum = self.call_enums[index]
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
        return _info({"variant": {"variants": variants}}, path=self.path)


class RuntimeEventType(ScaleType):
    """`<runtime>::RuntimeEvent`: pallet index, event index, fields (values: event dataclasses)."""

    def __init__(self, runtime_name: str, pallets: Sequence[PalletSpec]) -> None:
        self.path = [f"{runtime_name}_runtime", "RuntimeEvent"]
        self.type_name = "RuntimeEvent"
        self.pallets = {p.index: p for p in pallets if p.events}
        self.shape = tuple((i, p.name, len(p.events)) for i, p in sorted(self.pallets.items()))
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
