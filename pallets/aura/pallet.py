"""Aura: the authority set and the current slot; the author of slot s is authorities[s % n]."""

from __future__ import annotations

from typing import Any

from chain.codec import CodecError, Decoder
from chain.frame.prelude import *
from pallets.config import AuraConfig, Ctx, RuntimeConfig
from pallets.system import pallet as system

SPEC = PalletSpec("Aura", 5)
ENGINE_ID = b"aura"
Config = AuraConfig

SPEC.constant(
    "SlotDuration", U64, lambda c: c.aura.slot_duration_ms, "The slot duration in milliseconds."
)

AUTHORITY_ID = NewType(
    "sp_consensus_aura::sr25519::app_sr25519::Public",
    NewType("sp_core::sr25519::Public", FixedBytes(32), "[u8; 32]"),
    "sr25519::Public",
)
Authorities: StorageValue[list[bytes]] = StorageValue(
    SPEC, "Authorities", Vec(AUTHORITY_ID), default=[], docs="The current authority set."
)
CurrentSlot: StorageValue[int] = StorageValue(
    SPEC, "CurrentSlot", SLOT, default=0, docs="The current slot of this block."
)


def slot_from_digest(logs: list[Any]) -> int | None:
    for item in logs:
        kind: str = item[0]
        payload: Any = item[1]
        if kind == "PreRuntime" and isinstance(payload, tuple) and payload[0] == ENGINE_ID:
            d = Decoder(payload[1])
            slot = d.u64()
            d.finish()
            return slot
    return None


def author_of(authorities: list[bytes], slot: int) -> bytes | None:
    return authorities[slot % len(authorities)] if authorities else None


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    logs = system.Digest.get(ctx.state)["logs"]
    try:
        slot = slot_from_digest(logs)
    except CodecError as exc:
        raise DispatchError("Other", detail=f"malformed Aura pre-runtime digest: {exc}") from exc
    if slot is None:
        raise DispatchError("Other", detail="block has no Aura pre-runtime digest")
    if slot <= CurrentSlot.get(ctx.state):
        raise DispatchError("Other", detail="slot must increase")
    CurrentSlot.put(ctx.state, slot)


def build_genesis(ctx: Ctx, authorities: list[bytes]) -> None:
    if not authorities:
        raise ValueError("genesis needs at least one Aura authority")
    Authorities.put(ctx.state, list(authorities))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: no authority appears twice (each would get every n-th slot twice over)."""
    authorities = Authorities.get(state)
    if len(set(authorities)) != len(authorities):
        raise AssertionError("an Aura authority appears twice")
