"""Sudo: one key that may dispatch any call with the root origin (dev and test networks)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from chain.frame.common import ACCOUNT_ID, DISPATCH_RESULT, MULTI_ADDRESS, Weight, lookup_address
from chain.frame.pallet import Ctx, DispatchError, ModuleError, Origin, PalletSpec, StorageValue
from chain.frame.types import Lazy, Option

SPEC = PalletSpec("Sudo", 4)

RUNTIME_CALL = Lazy("RuntimeCall")  # bound by the runtime assembly

Key: StorageValue[bytes] = StorageValue(
    SPEC, "Key", ACCOUNT_ID, docs="The `AccountId` of the sudo key."
)


@SPEC.event(0, [("sudo_result", DISPATCH_RESULT, "DispatchResult")])
@dataclasses.dataclass(frozen=True, slots=True)
class Sudid:
    """A sudo call just took place."""

    sudo_result: tuple[str, Any]


@SPEC.event(
    1, [("old", Option(ACCOUNT_ID), "Option<T::AccountId>"), ("new", ACCOUNT_ID, "T::AccountId")]
)
@dataclasses.dataclass(frozen=True, slots=True)
class KeyChanged:
    """The sudo key has been updated."""

    old: bytes | None
    new: bytes


@SPEC.event(2)
@dataclasses.dataclass(frozen=True, slots=True)
class KeyRemoved:
    """The key was permanently removed."""


@SPEC.event(3, [("sudo_result", DISPATCH_RESULT, "DispatchResult")])
@dataclasses.dataclass(frozen=True, slots=True)
class SudoAsDone:
    """A call was dispatched as another account."""

    sudo_result: tuple[str, Any]


@SPEC.errors
class Error(enum.IntEnum):
    REQUIRE_SUDO = 0


def _ensure_sudo(ctx: Ctx) -> None:
    who = ctx.ensure_signed()
    key = Key.get(ctx.state)
    if key is None or key != who:
        raise ModuleError(Error.REQUIRE_SUDO)


def _run(ctx: Ctx, origin: Origin, call: Any) -> tuple[str, Any]:
    """Dispatch `call` in its own checkpoint; its failure is reported, not propagated."""
    if ctx.dispatch is None:
        raise DispatchError("Unavailable", detail="nested dispatch is not available here")
    state: Any = ctx.state
    inner_events: list[Any] = []
    inner = Ctx(ctx.state, origin, ctx.block_number, ctx.config, inner_events, ctx.dispatch)
    state.checkpoint()
    try:
        ctx.dispatch(inner, call)
    except DispatchError as err:
        state.revert_checkpoint()  # the inner call's writes and events are both discarded
        return ("Err", err.to_value())
    state.commit_checkpoint()
    ctx.events.extend(inner_events)
    return ("Ok", ())


SUDO_WEIGHT = Weight(20_000_000, 1500)


@SPEC.call(0, weight=SUDO_WEIGHT, args=[("call", RUNTIME_CALL, "Box<<T as Config>::RuntimeCall>")])
def sudo(ctx: Ctx, call: Any) -> None:
    """Dispatch a call with the Root origin. The result is in the Sudid event."""
    _ensure_sudo(ctx)
    ctx.emit(Sudid(_run(ctx, Origin.root(), call)))


@SPEC.call(2, weight=SUDO_WEIGHT, args=[("new", MULTI_ADDRESS, "AccountIdLookupOf<T>")])
def set_key(ctx: Ctx, new: tuple[str, object]) -> None:
    """Authenticates the current sudo key and sets the given AccountId as the new key."""
    _ensure_sudo(ctx)
    new_key = lookup_address(new)
    if new_key is None:
        raise DispatchError.cannot_lookup()
    old = Key.get(ctx.state)
    Key.put(ctx.state, new_key)
    ctx.emit(KeyChanged(old, new_key))


@SPEC.call(
    3,
    weight=SUDO_WEIGHT,
    args=[
        ("who", MULTI_ADDRESS, "AccountIdLookupOf<T>"),
        ("call", RUNTIME_CALL, "Box<<T as Config>::RuntimeCall>"),
    ],
)
def sudo_as(ctx: Ctx, who: tuple[str, object], call: Any) -> None:
    """Dispatch a call with a Signed origin of `who`."""
    _ensure_sudo(ctx)
    target = lookup_address(who)
    if target is None:
        raise DispatchError.cannot_lookup()
    ctx.emit(SudoAsDone(_run(ctx, Origin.signed(target), call)))


@SPEC.call(4, weight=SUDO_WEIGHT)
def remove_key(ctx: Ctx) -> None:
    """Permanently removes the sudo key. This cannot be undone."""
    _ensure_sudo(ctx)
    Key.kill(ctx.state)
    ctx.emit(KeyRemoved())
