"""The runtime: an ordered set of pallets, their RuntimeCall/RuntimeEvent types (`outer`),
dispatch, invariants and metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from chain import ChainError
from chain.codec import decode_exact
from chain.frame.metadata import build_metadata
from chain.frame.outer import DecodedCall, RuntimeCallType, RuntimeEventType
from chain.frame.pallet import Ctx, Origin, PalletSpec, ReadState, State
from chain.frame.types import JSONDict, Lazy
from chain.hashing import blake2_64

C = TypeVar("C")


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


class Runtime(Generic[C]):
    """The assembled runtime: pallets in hook order, their configuration `C`, the dispatcher."""

    def __init__(
        self,
        *,
        name: str,
        version: RuntimeVersion,
        pallets: Sequence[PalletSpec],
        config: C,
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
        call: DecodedCall = decode_exact(data, self.call_type.decode)
        return call

    def call(self, pallet: str, name: str, **args: Any) -> DecodedCall:
        return DecodedCall(self.by_name[pallet].call_by_name(name), args)

    def dispatch(self, ctx: Ctx[C], call: DecodedCall | bytes) -> None:
        """Run a call under `ctx.origin`. Raises DispatchError; the caller owns the checkpoint."""
        if isinstance(call, bytes):
            call = self.decode_call(call)
        if ctx.dispatch is None:
            ctx.dispatch = self.dispatch
        call.call.fn(ctx, **call.args)

    def hooks(self, name: str) -> list[Callable[[Ctx[C]], Any]]:
        return [p.hooks[name] for p in self.pallets if name in p.hooks]

    def try_state(self, state: ReadState) -> None:
        """Every pallet's invariants, in runtime order (FRAME's `try_state`); raises
        AssertionError naming the first that does not hold."""
        for p in self.pallets:
            check = p.hooks.get("try_state")
            if check is not None:
                check(state, self.config)

    def ctx(self, state: State, origin: Origin, block_number: int, events: list[Any]) -> Ctx[C]:
        """A call context in this runtime (its configuration and nested dispatch)."""
        return Ctx(state, origin, block_number, self.config, events, self.dispatch)

    def metadata(self) -> bytes:
        """Metadata V14 bytes (built once)."""
        if self._metadata is None:
            self._metadata = build_metadata(self)
        return self._metadata
