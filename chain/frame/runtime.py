"""The runtime: an ordered set of pallets, their RuntimeCall/RuntimeEvent types (`outer`),
dispatch, invariants and metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from chain import ChainError
from chain.codec import CodecError, decode_exact
from chain.frame.apis import ApiMethod, RuntimeApi
from chain.frame.code import RuntimeCode, RuntimeVersion
from chain.frame.metadata import build_metadata, build_metadata_v15
from chain.frame.outer import DecodedCall, RuntimeCallType, RuntimeEventType
from chain.frame.pallet import Ctx, Origin, PalletSpec, ReadState, State
from chain.frame.types import Lazy
from chain.hashing import blake2_256

C = TypeVar("C")

__all__ = ["ApiMethod", "Runtime", "RuntimeApi", "RuntimeVersion"]


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
        apis: Sequence[RuntimeApi] = (),
        pallet_docs: Mapping[int, Sequence[str]] | None = None,
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
        self.apis = tuple(apis)
        self.pallet_docs = dict(pallet_docs or {})
        self._metadata: dict[tuple[int, RuntimeVersion], bytes] = {}
        self._code: bytes | None = None
        self._decoded_code: tuple[bytes, RuntimeVersion] | None = None

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

    def metadata(self, version: RuntimeVersion | None = None, *, at: int = 14) -> bytes:
        """Metadata bytes (V14, or V15 with `at=15`) as the runtime serves them at `version`
        (default: its built-in one; `System.Version` holds it). Built once per version."""
        version = version or self.version
        key = (at, version)
        found = self._metadata.get(key)
        if found is None:
            if at not in (14, 15):
                raise ChainError(f"no metadata V{at}")
            source = _AtVersion(self, version)
            found = build_metadata(source) if at == 14 else build_metadata_v15(source)
            self._metadata[key] = found
        return found

    def code(self) -> bytes:
        """The `:code` blob that identifies this runtime at its built-in version (chain/frame/
        code.py): written at genesis."""
        if self._code is None:
            code_hash = blake2_256(self.metadata())
            self._code = RuntimeCode.of(self.version, code_hash).encode()
        return self._code

    def version_of(self, raw: bytes | None) -> RuntimeVersion:
        """The version a `:code` blob states (the built-in version when there is none, or it is
        not a descriptor of this runtime's code). The last blob seen is cached."""
        if raw is None:
            return self.version
        cached = self._decoded_code
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            version = RuntimeCode.decode(raw).version([name for name, _ in self.version.apis])
        except CodecError:
            version = self.version
        self._decoded_code = (bytes(raw), version)
        return version


@dataclasses.dataclass(frozen=True)
class _AtVersion:
    """A runtime seen at another version (what metadata is built from)."""

    runtime: Runtime[Any]
    version: RuntimeVersion

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)
