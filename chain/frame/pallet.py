"""Pallet declarations: storage, calls, events, errors, constants and hooks.

Every pallet declares the same blocks, FRAME-style, and declares each thing once: an event or a
struct is a class whose annotated fields (`Annotated[PyType, descriptor, "RustTypeName"]`) give
both the Python value and its SCALE encoding; a call's arguments are its typed parameters; an
error is an enum member with its doc. The dispatcher decodes and runs calls from these
declarations and the metadata builder turns them into metadata V14, so what a wallet sees is
generated from the code that runs.

    @event(SPEC, 0)
    class Bonded:
        '''An account bonded this amount.'''

        stash: T.AccountId
        amount: BalanceOf

    @call(SPEC, 0, weight=W.staking_bond())
    def bond(ctx: Ctx, value: CompactBalanceOf) -> None: ...

    @call(SPEC, 0, weight=lambda a: W.tasks_commit_tasks(len(a["batch"])))
    def commit_tasks(ctx: Ctx, batch: CommitBatch) -> None: ...

    @errors(SPEC)
    class Error(PalletError):  # the integers are consensus-visible: append only
        NOT_BONDED = 0, "The account has no staking ledger."
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, dataclass_transform

from chain import ChainError
from chain.codec import U64_MAX, Decoder
from chain.frame.common import DISPATCH_ERROR, AccountId, Weight
from chain.frame.types import (
    Field,
    ScaleType,
    annotated_fields,
    compile_field_encoder,
    frozen_record,
    scale_field,
)
from chain.hashing import HASHERS, storage_prefix, twox128
from chain.records import fast_init
from chain.storage.overlay import Overlay

K = TypeVar("K")
K2 = TypeVar("K2")
V = TypeVar("V")
C = TypeVar("C")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound="PalletError")


class ReadState(Protocol):
    """Reading state: a Trie (a block's state) or an Overlay."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]: ...


class State(ReadState, Protocol):
    """What the runtime may do with state: the Overlay implements it."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def checkpoint(self) -> None: ...

    def commit_checkpoint(self) -> None: ...

    def revert_checkpoint(self) -> None: ...


# ---- errors ----------------------------------------------------------------------------------


class DispatchError(ChainError):
    """A call failed. `kind` is a `sp_runtime::DispatchError` variant name."""

    def __init__(self, kind: str, payload: Any = None, *, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.payload = payload

    def encode(self) -> bytes:
        return DISPATCH_ERROR.encode((self.kind, self.payload))

    def to_value(self) -> tuple[str, Any]:
        return (self.kind, self.payload)

    @classmethod
    def bad_origin(cls) -> DispatchError:
        return cls("BadOrigin")

    @classmethod
    def cannot_lookup(cls) -> DispatchError:
        return cls("CannotLookup")

    @classmethod
    def token(cls, reason: str) -> DispatchError:
        return cls("Token", reason)

    @classmethod
    def arithmetic(cls, reason: str = "Overflow") -> DispatchError:
        return cls("Arithmetic", reason)


class PalletError(enum.IntEnum):
    """A pallet's named errors: members `NAME = index` or `NAME = index, "doc"`. The index is
    consensus-visible (append only, never renumber); the doc goes into metadata. `@errors(SPEC)`
    binds the enum to its pallet."""

    doc: str
    pallet: ClassVar[PalletSpec]

    def __new__(cls, index: int, doc: str = "") -> PalletError:
        member = int.__new__(cls, index)
        member._value_ = index
        member.doc = doc
        return member

    @property
    def metadata_name(self) -> str:
        """INSUFFICIENT_BALANCE -> InsufficientBalance (metadata names follow FRAME)."""
        return pascal(self.name)


class ModuleError(DispatchError):
    """A pallet's named error."""

    def __init__(self, error: PalletError) -> None:
        spec = type(error).__dict__.get("pallet")
        if not isinstance(spec, PalletSpec):
            raise ChainError(f"{type(error).__qualname__} is not declared with @errors(SPEC)")
        super().__init__(
            "Module",
            {"index": spec.index, "error": bytes((int(error), 0, 0, 0))},
            detail=f"{spec.name}.{error.metadata_name}",
        )
        self.error = error
        self.pallet = spec.name


def ensure(condition: bool, error: PalletError) -> None:
    """Raise the pallet error unless `condition` holds (FRAME's `ensure!`)."""
    if not condition:
        raise ModuleError(error)


def pascal(upper_snake: str) -> str:
    """INSUFFICIENT_BALANCE -> InsufficientBalance (metadata names follow FRAME)."""
    return "".join(part.capitalize() for part in upper_snake.lower().split("_"))


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ---- origin and context ----------------------------------------------------------------------


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Who dispatches a call (FRAME's `RawOrigin`): an account, root, or nobody (inherents and
    unsigned transactions)."""

    kind: Literal["Signed", "Root", "None"]
    who: AccountId | None = None

    @classmethod
    def signed(cls, who: bytes) -> Origin:
        return cls("Signed", AccountId(who))

    @classmethod
    def root(cls) -> Origin:
        return cls("Root")

    @classmethod
    def none(cls) -> Origin:
        return cls("None")


Dispatch = Callable[["Ctx[C]", Any], None]


@dataclasses.dataclass(slots=True, eq=False)
class Ctx(Generic[C]):
    """What a call sees: state, origin, block number, the runtime's configuration `C`, and an
    event sink. `dispatch` runs a nested call (Sudo)."""

    state: State
    origin: Origin
    block_number: int
    config: C
    events: list[Any]
    dispatch: Dispatch[C] | None = None

    def ensure_signed(self) -> AccountId:
        if self.origin.kind != "Signed" or self.origin.who is None:
            raise DispatchError.bad_origin()
        return self.origin.who

    def ensure_root(self) -> None:
        if self.origin.kind != "Root":
            raise DispatchError.bad_origin()

    def ensure_none(self) -> None:
        if self.origin.kind != "None":
            raise DispatchError.bad_origin()

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def with_origin(self, origin: Origin, events: list[Any] | None = None) -> Ctx[C]:
        """The same block context under another origin (and, if given, another event sink)."""
        sink = self.events if events is None else events
        return Ctx(self.state, origin, self.block_number, self.config, sink, self.dispatch)


# ---- declarations ----------------------------------------------------------------------------

# Pool-time validity of a signed call that does not pay (e.g. the faucet's rate limit):
# (state, runtime config, signer, block number, args) -> None, or why the pool must refuse it.
SignedValidator = Callable[[ReadState, Any, bytes, int, dict[str, Any]], "str | None"]

# A call's weight as a function of its decoded arguments (by name), for calls whose cost grows
# with an input (a batch's length, a spec's bytes). Consensus-visible (fees, block fullness):
# it must be pure and integer-only, so that every node computes the same weight.
WeightFn = Callable[[Mapping[str, Any]], Weight]


@dataclasses.dataclass(frozen=True, slots=True)
class CallDef:
    pallet: PalletSpec
    index: int
    name: str
    fn: Callable[..., None]
    args: list[Field]
    weight: Weight | WeightFn  # pallets/weights.py (generated by bench/weights.py)
    docs: tuple[str, ...]
    dispatch_class: str = "Normal"
    pays_fee: bool = True
    validate: SignedValidator | None = None
    # (argument name, descriptor) in order: what `RuntimeCallType.decode` reads
    arg_types: tuple[tuple[str, ScaleType], ...] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        names = tuple((f.attr or f.name or "", f.ty) for f in self.args)
        object.__setattr__(self, "arg_types", names)

    def weight_of(self, args: Mapping[str, Any]) -> Weight:
        """The declared weight of this call with these arguments (not counting a nested call's:
        `DecodedCall.weight` adds that)."""
        if isinstance(self.weight, Weight):
            return self.weight
        weight = self.weight(args)
        if not isinstance(weight, Weight) or not all(
            type(part) is int and 0 <= part <= U64_MAX
            for part in (weight.ref_time, weight.proof_size)
        ):
            raise ChainError(f"{self.pallet.name}.{self.name}: weight {weight!r} is not integral")
        return weight

    def encode(self, **kwargs: Any) -> bytes:
        """Call bytes: pallet index, call index, then the arguments in order."""
        head = bytes((self.pallet.index, self.index))
        return head + b"".join(ty.encode(kwargs[name]) for name, ty in self.arg_types)


@dataclasses.dataclass(frozen=True, slots=True)
class EventDef:
    pallet: PalletSpec
    index: int
    cls: type
    fields: list[Field]
    docs: tuple[str, ...]
    # what `encode` runs: the pallet and event indices, then each field (made at first use,
    # when forward references are bound)
    _encoder: Callable[[Any], bytes] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )

    def encode(self, event: Any) -> bytes:
        encoder = self._encoder
        if encoder is None:
            encoder = compile_field_encoder(
                [(f.attr or f.name or "", f.ty) for f in self.fields],
                context=self.cls.__qualname__,
                head=bytes((self.pallet.index, self.index)),
            )
            object.__setattr__(self, "_encoder", encoder)
        return encoder(event)


@dataclasses.dataclass(frozen=True, slots=True)
class ConstantDef:
    name: str
    ty: ScaleType
    getter: Callable[[Any], Any]  # of the runtime's configuration (or the runtime: of_runtime)
    docs: tuple[str, ...]
    of_runtime: bool = False


# on_initialize(ctx) and on_finalize(ctx) run in every block; try_state(state, config) checks the
# pallet's invariants (FRAME's `try_state`): after every mock-runtime test and every block of the
# state-machine tests, never on the import path.
HOOK_NAMES = ("on_initialize", "on_finalize", "try_state")


def _docs(obj: Any) -> tuple[str, ...]:
    doc = getattr(obj, "__doc__", None) or ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    return tuple(lines) if any(lines) else ()


class PalletSpec:
    """One runtime module: its index (consensus-visible, never renumbered) and its declarations,
    which the module's own decorators (`call`, `event`, `errors`, `hook`) and storage items add
    while the module is imported. Nothing outside the pallet's module writes to it."""

    def __init__(self, name: str, index: int, *, module: str | None = None, docs: str = "") -> None:
        self.name = name
        self.index = index
        self.module = module or f"pallet_{snake(name)}"
        self.docs = docs
        self.calls: dict[int, CallDef] = {}
        self.events: dict[type, EventDef] = {}
        self.error: type[PalletError] | None = None
        self.storage: list[StorageItem] = []
        self.constants: list[ConstantDef] = []
        self.hooks: dict[str, Callable[..., Any]] = {}
        self.prefix = twox128(name.encode())

    def call_by_name(self, name: str) -> CallDef:
        for c in self.calls.values():
            if c.name == name:
                return c
        raise ChainError(f"{self.name} has no call {name}")

    def constant(
        self,
        name: str,
        ty: ScaleType,
        getter: Callable[[Any], Any],
        docs: str = "",
        *,
        of_runtime: bool = False,
    ) -> None:
        """A constant in metadata: `getter(config)`, or `getter(runtime)` with `of_runtime`
        (for what the runtime itself states, such as its version)."""
        self.constants.append(ConstantDef(name, ty, getter, (docs,) if docs else (), of_runtime))


def call(
    spec: PalletSpec,
    index: int,
    *,
    weight: Weight | WeightFn,
    dispatch_class: str = "Normal",
    pays_fee: bool = True,
    validate: SignedValidator | None = None,
) -> Callable[[F], F]:
    """Declare a dispatchable: `fn(ctx, arg: Annotated[PyType, descriptor, "RustType"], ...)`.
    Its typed parameters after `ctx` are the call's arguments, in order; its docstring is the
    call's documentation in metadata. `weight` is a `Weight`, or a function of the decoded
    arguments (by name) that returns one (`CallDef.weight_of`)."""

    def declare(fn: F) -> F:
        if index in spec.calls:
            raise ChainError(f"{spec.name}: call index {index} used twice")
        hints = typing.get_type_hints(fn, include_extras=True)
        params = list(inspect.signature(fn).parameters)[1:]  # after ctx
        args = [scale_field(p, hints[p], f"{spec.name}.{fn.__name__}") for p in params]
        spec.calls[index] = CallDef(
            spec,
            index,
            fn.__name__,
            fn,
            args,
            weight,
            _docs(fn),
            dispatch_class,
            pays_fee,
            validate,
        )
        return fn

    return declare


@dataclass_transform(frozen_default=True)
def event(spec: PalletSpec, index: int) -> Callable[[type[T]], type[T]]:
    """Declare an event: a class with annotated fields (past-tense name, named fields) that
    becomes a frozen, slotted dataclass; its docstring is the event's documentation."""

    def declare(cls: type[T]) -> type[T]:
        if any(e.index == index for e in spec.events.values()):
            raise ChainError(f"{spec.name}: event index {index} used twice")
        fields = annotated_fields(cls)
        out = frozen_record(cls)
        spec.events[out] = EventDef(spec, index, out, fields, _docs(out))
        return out

    return declare


def errors(spec: PalletSpec) -> Callable[[type[E]], type[E]]:
    """Declare the pallet's `Error` enum (a `PalletError`)."""

    def declare(cls: type[E]) -> type[E]:
        if spec.error is not None:
            raise ChainError(f"{spec.name} declares errors twice")
        spec.error = cls
        cls.pallet = spec
        return cls

    return declare


def hook(spec: PalletSpec, name: str) -> Callable[[F], F]:
    """Declare `on_initialize(ctx)` or `on_finalize(ctx)`, run for every block in the order of
    the runtime's pallets, or `try_state(state, config)`, the pallet's invariants (raises
    AssertionError when one does not hold)."""
    if name not in HOOK_NAMES:
        raise ChainError(f"unknown hook {name}")

    def declare(fn: F) -> F:
        spec.hooks[name] = fn
        return fn

    return declare


# ---- storage ---------------------------------------------------------------------------------


_MUTABLE_VALUES = (list, dict)  # values kept encoded even on an overlay (they may change later)


class StorageItem:
    """A storage item. On an `Overlay` (a block being built or executed) the values of an
    immutable type go through the overlay's value cache: decoded once per block, encoded once
    when the block's changes are taken, whatever the number of reads and writes in between."""

    spec: PalletSpec
    name: str
    value_ty: ScaleType
    default: Any
    docs: tuple[str, ...]
    is_optional_query: bool = False
    _is_cached: bool | None = None  # value_ty.is_immutable(), asked at first use (Lazy types)

    def _is_immutable(self) -> bool:
        cached = self._is_cached
        if cached is None:
            cached = self._is_cached = self.value_ty.is_immutable()
        return cached

    def _read(self, state: ReadState, key: bytes) -> Any:
        if type(state) is Overlay and self._is_immutable():
            return state.get_value(key, self.value_ty, self.default)
        raw = state.get(key)
        if raw is None:
            return self.default
        return self.value_ty.decode_all(raw)

    def _write(self, state: State, key: bytes, value: Any) -> None:
        cached = self._is_cached
        if cached is None:
            cached = self._is_immutable()
        if cached and type(state) is Overlay and not isinstance(value, _MUTABLE_VALUES):
            state.put_value(key, self.value_ty, value)
        else:
            state.put(key, self.value_ty.encode(value))

    @staticmethod
    def _exists(state: ReadState, key: bytes) -> bool:
        if type(state) is Overlay:
            return state.contains(key)
        return state.get(key) is not None

    @property
    def modifier(self) -> str:
        return "Optional" if self.default is None or self.is_optional_query else "Default"

    def default_bytes(self) -> bytes:
        return b"\x00" if self.modifier == "Optional" else self.value_ty.encode(self.default)


class StorageValue(StorageItem, Generic[V]):
    """A single value. With `default`, an absent value reads as `default` and the metadata says
    `Default` (FRAME's ValueQuery); without, it reads as None (`Optional`). `optional_query=True`
    declares an `Optional` item (FRAME's `StorageValue<_, T>`, which clients read as
    `Option<T>`) that the runtime reads with a fallback, FRAME's `get().unwrap_or(default)`:
    keep such an item written from genesis on, so that clients never see it absent."""

    def __init__(
        self,
        spec: PalletSpec,
        name: str,
        ty: ScaleType,
        default: V | None = None,
        docs: str = "",
        *,
        optional_query: bool = False,
    ) -> None:
        self.spec, self.name, self.value_ty, self.default = spec, name, ty, default
        self.is_optional_query = optional_query
        self.docs = (docs,) if docs else ()
        self.key = storage_prefix(spec.name, name)
        spec.storage.append(self)

    def get(self, state: ReadState) -> V:
        value: V = self._read(state, self.key)
        return value

    def put(self, state: State, value: V) -> None:
        self._write(state, self.key, value)

    def kill(self, state: State) -> None:
        state.delete(self.key)

    def exists(self, state: ReadState) -> bool:
        return self._exists(state, self.key)


class _MapBase(StorageItem):
    hashers: tuple[str, ...]
    key_tys: tuple[ScaleType, ...]
    prefix: bytes

    def _decode_key_part(self, raw: bytes, pos: int, i: int) -> tuple[Any, int]:
        hasher = self.hashers[i]
        skip = {"Blake2_128Concat": 16, "Twox64Concat": 8, "Identity": 0}.get(hasher)
        if skip is None:
            raise ChainError(f"{self.name}: keys hashed with {hasher} cannot be decoded")
        d = Decoder(raw, pos + skip)
        value = self.key_tys[i].decode(d)
        return value, d.pos


KEY_CACHE_SIZE = 65_536  # storage keys kept per map (hashing a key costs about a microsecond)


class StorageMap(_MapBase, Generic[K, V]):
    def __init__(
        self,
        spec: PalletSpec,
        name: str,
        key: ScaleType,
        value: ScaleType,
        *,
        hasher: str = "Blake2_128Concat",
        default: V | None = None,
        docs: str = "",
    ) -> None:
        self.spec, self.name, self.value_ty, self.default = spec, name, value, default
        self.key_tys = (key,)
        self.hashers = (hasher,)
        self._hash = HASHERS[hasher]
        self._key_enc = key.encode
        self.docs = (docs,) if docs else ()
        self.prefix = storage_prefix(spec.name, name)
        # storage keys of recently used map keys (a pure function's results; bounded)
        self._keys: dict[Any, bytes] = {}
        spec.storage.append(self)

    def key_for(self, key: K) -> bytes:
        keys = self._keys
        try:
            hit = keys.get(key)
        except TypeError:  # an unhashable key
            return self.prefix + self._hash(self._key_enc(key))
        if hit is None:
            hit = self.prefix + self._hash(self._key_enc(key))
            if len(keys) >= KEY_CACHE_SIZE:
                keys.clear()
            keys[key] = hit
        return hit

    def get(self, state: ReadState, key: K) -> V:
        raw_key = self._keys.get(key) if type(key) is bytes else None
        if raw_key is None:
            raw_key = self.key_for(key)
        if type(state) is Overlay and self._is_cached:  # the per-extrinsic path, inlined
            value: V = state.get_value(raw_key, self.value_ty, self.default)
            return value
        value = self._read(state, raw_key)
        return value

    def get_at(self, state: ReadState, raw_key: bytes) -> V:
        """The value at a storage key of this map (`key_for`), for a caller that needs the key
        too."""
        value: V = self._read(state, raw_key)
        return value

    def put(self, state: State, key: K, value: V) -> None:
        self._write(state, self.key_for(key), value)

    def put_at(self, state: State, raw_key: bytes, value: V) -> None:
        self._write(state, raw_key, value)

    def remove(self, state: State, key: K) -> None:
        state.delete(self.key_for(key))

    def contains(self, state: ReadState, key: K) -> bool:
        return self._exists(state, self.key_for(key))

    def iter(self, state: ReadState) -> Iterator[tuple[K, V]]:
        """All entries in key-byte order (deterministic)."""
        n = len(self.prefix)
        for raw_key, raw_value in state.iterate(self.prefix):
            key, _ = self._decode_key_part(raw_key, n, 0)
            yield key, self.value_ty.decode_all(raw_value)


class StorageDoubleMap(_MapBase, Generic[K, K2, V]):
    def __init__(
        self,
        spec: PalletSpec,
        name: str,
        key1: ScaleType,
        key2: ScaleType,
        value: ScaleType,
        *,
        hashers: tuple[str, str] = ("Blake2_128Concat", "Blake2_128Concat"),
        default: V | None = None,
        docs: str = "",
    ) -> None:
        self.spec, self.name, self.value_ty, self.default = spec, name, value, default
        self.key_tys = (key1, key2)
        self.hashers = hashers
        self.docs = (docs,) if docs else ()
        self.prefix = storage_prefix(spec.name, name)
        spec.storage.append(self)

    def prefix_for(self, k1: K) -> bytes:
        return self.prefix + HASHERS[self.hashers[0]](self.key_tys[0].encode(k1))

    def key_for(self, k1: K, k2: K2) -> bytes:
        return self.prefix_for(k1) + HASHERS[self.hashers[1]](self.key_tys[1].encode(k2))

    def get(self, state: ReadState, k1: K, k2: K2) -> V:
        value: V = self._read(state, self.key_for(k1, k2))
        return value

    def put(self, state: State, k1: K, k2: K2, value: V) -> None:
        self._write(state, self.key_for(k1, k2), value)

    def remove(self, state: State, k1: K, k2: K2) -> None:
        state.delete(self.key_for(k1, k2))

    def contains(self, state: ReadState, k1: K, k2: K2) -> bool:
        return self._exists(state, self.key_for(k1, k2))

    def iter_prefix(self, state: ReadState, k1: K) -> Iterator[tuple[K2, V]]:
        prefix = self.prefix_for(k1)
        for raw_key, raw_value in state.iterate(prefix):
            key2, _ = self._decode_key_part(raw_key, len(prefix), 1)
            yield key2, self.value_ty.decode_all(raw_value)

    def iter(self, state: ReadState) -> Iterator[tuple[K, K2, V]]:
        n = len(self.prefix)
        for raw_key, raw_value in state.iterate(self.prefix):
            k1, pos = self._decode_key_part(raw_key, n, 0)
            k2, _ = self._decode_key_part(raw_key, pos, 1)
            yield k1, k2, self.value_ty.decode_all(raw_value)
