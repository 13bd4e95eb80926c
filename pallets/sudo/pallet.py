"""Sudo: one key that may dispatch any call with the root origin (dev and test networks)."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from chain.frame.prelude import *
from pallets import weights
from pallets.config import Ctx

SPEC = PalletSpec("Sudo", 4)

RUNTIME_CALL = Lazy("RuntimeCall")  # bound by the runtime assembly

Key: StorageValue[bytes] = StorageValue(
    SPEC, "Key", ACCOUNT_ID, docs="The `AccountId` of the sudo key."
)


DispatchResult: TypeAlias = Annotated[tuple[str, Any], DISPATCH_RESULT, "DispatchResult"]
RuntimeCall: TypeAlias = Annotated[DecodedCall, RUNTIME_CALL, "Box<<T as Config>::RuntimeCall>"]


@event(SPEC, 0)
class Sudid:
    """A sudo call just took place."""

    sudo_result: DispatchResult


@event(SPEC, 1)
class KeyChanged:
    """The sudo key has been updated."""

    old: Annotated[bytes | None, Option(ACCOUNT_ID), "Option<T::AccountId>"]
    new: T.AccountId


@event(SPEC, 2)
class KeyRemoved:
    """The key was permanently removed."""


@event(SPEC, 3)
class SudoAsDone:
    """A call was dispatched as another account."""

    sudo_result: DispatchResult


@errors(SPEC)
class Error(PalletError):
    REQUIRE_SUDO = 0


def _ensure_sudo(ctx: Ctx) -> None:
    who = ctx.ensure_signed()
    key = Key.get(ctx.state)
    if key is None or key != who:
        raise ModuleError(Error.REQUIRE_SUDO)


def _run(ctx: Ctx, origin: Origin, inner_call: DecodedCall) -> tuple[str, Any]:
    """Dispatch `inner_call` in its own checkpoint; its failure is reported, not propagated."""
    if ctx.dispatch is None:
        raise DispatchError("Unavailable", detail="nested dispatch is not available here")
    inner_events: list[Any] = []
    inner = ctx.with_origin(origin, inner_events)
    ctx.state.checkpoint()
    try:
        ctx.dispatch(inner, inner_call)
    except DispatchError as err:
        ctx.state.revert_checkpoint()  # the inner call's writes and events are both discarded
        return ("Err", err.to_value())
    ctx.state.commit_checkpoint()
    ctx.events.extend(inner_events)
    return ("Ok", ())


@call(SPEC, 0, weight=weights.sudo_sudo())
def sudo(ctx: Ctx, call: RuntimeCall) -> None:
    """Dispatch a call with the Root origin. The result is in the Sudid event."""
    _ensure_sudo(ctx)
    ctx.emit(Sudid(_run(ctx, Origin.root(), call)))


@call(SPEC, 2, weight=weights.sudo_set_key())
def set_key(ctx: Ctx, new: AccountIdLookupOf) -> None:
    """Authenticates the current sudo key and sets the given AccountId as the new key."""
    _ensure_sudo(ctx)
    new_key = lookup_address(new)
    if new_key is None:
        raise DispatchError.cannot_lookup()
    old = Key.get(ctx.state)
    Key.put(ctx.state, new_key)
    ctx.emit(KeyChanged(old, new_key))


@call(SPEC, 3, weight=weights.sudo_sudo_as())
def sudo_as(ctx: Ctx, who: AccountIdLookupOf, call: RuntimeCall) -> None:
    """Dispatch a call with a Signed origin of `who`."""
    _ensure_sudo(ctx)
    target = lookup_address(who)
    if target is None:
        raise DispatchError.cannot_lookup()
    ctx.emit(SudoAsDone(_run(ctx, Origin.signed(target), call)))


@call(SPEC, 4, weight=weights.sudo_remove_key())
def remove_key(ctx: Ctx) -> None:
    """Permanently removes the sudo key. This cannot be undone."""
    _ensure_sudo(ctx)
    Key.kill(ctx.state)
    ctx.emit(KeyRemoved())
