"""Randomness: RANDAO with hash onions, randomness no block author can steer.

Each Aura authority commits to a hash onion (`chain.onion`): the tip `h_N` of a hash chain whose
seed only it knows. Every block it authors afterwards must reveal the next value down the chain
(`blake2_256(reveal) == tip`), which becomes the new tip and is folded into the mix:

    Mix = blake2_256(Mix ++ reveal)

The author cannot choose its reveal (fixed since the commit); it can only withhold its whole block,
which costs it the block and changes the mix once.

The block carries a pre-runtime digest `PreRuntime(b"rand", payload)`:

- `0x00 ++ tip` (Commit): only from an author with no onion, or whose onion is exhausted
  (`revealed == ONION_LENGTH`); registers a new onion (generation + 1), adds nothing to the mix;
- `0x01 ++ reveal` (Reveal): required from an author whose onion has values left.

An author without a live onion may also carry no rand digest. Anything else makes the block
invalid. The author is the Aura author of the block's slot in the parent's authority set: this
pallet's `on_initialize` runs right after Aura's and before Session can rotate the set.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from chain import onion
from chain.frame.prelude import *
from chain.hashing import blake2_256
from pallets.aura import pallet as aura
from pallets.config import Ctx, RuntimeConfig
from pallets.system import pallet as system

SPEC = PalletSpec("Randomness", 16, module="pallet_cuckoo_randomness")
ENGINE_ID = b"rand"
COMMIT = 0x00
REVEAL = 0x01
ZERO_MIX = bytes(32)

SPEC.constant(
    "OnionLength",
    U32,
    lambda c: onion.ONION_LENGTH,
    "Values an authority reveals from one onion before it must commit a new one.",
)

Count: TypeAlias = Annotated[int, U32, "u32"]


@struct("pallet_cuckoo_randomness::Onion")
class Onion:
    tip: Hash256  # the last value revealed, or the committed h_N
    revealed: Count  # values revealed from this onion
    generation: Count  # onions this authority has committed (the first is 1)


ONION = scale_of(Onion)

Onions: StorageMap[bytes, Onion] = StorageMap(
    SPEC,
    "Onions",
    aura.AUTHORITY_ID,
    ONION,
    docs="Each Aura authority's current hash onion: its tip, values revealed, generation.",
)
Mix: StorageValue[bytes] = StorageValue(
    SPEC,
    "Mix",
    H256,
    default=ZERO_MIX,
    docs="The randomness mix: blake2_256(previous mix ++ reveal) at every reveal.",
)


def current_mix(state: ReadState) -> bytes:
    """The mix as of the current block (after its reveal, when it has one)."""
    return Mix.get(state)


def is_live(o: Onion | None) -> bool:
    """Whether an author with this onion must reveal (it has values left)."""
    return o is not None and o.revealed < onion.ONION_LENGTH


def next_generation(o: Onion | None) -> int:
    """The generation a Commit registers after `o`."""
    return 1 if o is None else o.generation + 1


def encode_commit(tip: bytes) -> bytes:
    return bytes([COMMIT]) + _h256(tip)


def encode_reveal(value: bytes) -> bytes:
    return bytes([REVEAL]) + _h256(value)


def _h256(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError("a rand digest value is 32 bytes")
    return bytes(value)


def decode_payload(payload: bytes) -> tuple[int, bytes]:
    """(COMMIT or REVEAL, the 32-byte value) of a rand digest payload; ValueError if malformed."""
    if len(payload) != 33 or payload[0] not in (COMMIT, REVEAL):
        raise ValueError(f"malformed rand pre-runtime digest ({len(payload)} bytes)")
    return payload[0], bytes(payload[1:])


def payloads_from_digest(logs: list[Any]) -> list[bytes]:
    """The payloads of every `PreRuntime(b"rand", _)` item of a block's digest."""
    found: list[bytes] = []
    for item in logs:
        kind: str = item[0]
        payload: Any = item[1]
        if kind == "PreRuntime" and isinstance(payload, tuple) and payload[0] == ENGINE_ID:
            found.append(bytes(payload[1]))
    return found


def _invalid(detail: str) -> DispatchError:
    return DispatchError("Other", detail=detail)


@hook(SPEC, "on_initialize")
def on_initialize(ctx: Ctx) -> None:
    payloads = payloads_from_digest(system.Digest.get(ctx.state)["logs"])
    if len(payloads) > 1:
        raise _invalid("block has more than one rand pre-runtime digest")
    author = aura.author_of(aura.Authorities.get(ctx.state), aura.CurrentSlot.get(ctx.state))
    if author is None:
        if payloads:
            raise _invalid("rand digest in a block without an Aura author")
        return
    current = Onions.get(ctx.state, author)
    live = is_live(current)
    if not payloads:
        if live:
            raise _invalid("the author's onion has values left: the block must reveal one")
        return
    try:
        kind, value = decode_payload(payloads[0])
    except ValueError as exc:
        raise _invalid(str(exc)) from exc
    if kind == REVEAL:
        if current is None or not live:
            raise _invalid("reveal from an author without a live onion (commit one first)")
        if blake2_256(value) != current.tip:
            raise _invalid("the reveal does not hash to the author's onion tip")
        Onions.put(ctx.state, author, Onion(value, current.revealed + 1, current.generation))
        Mix.put(ctx.state, blake2_256(Mix.get(ctx.state) + value))
        return
    if live:
        raise _invalid("commit while the author's onion has values left (reveal instead)")
    Onions.put(ctx.state, author, Onion(value, 0, next_generation(current)))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: no onion has revealed more than it holds, generations start at 1, and the mix
    is a 32-byte hash."""
    if len(Mix.get(state)) != 32:
        raise AssertionError("Randomness.Mix is not 32 bytes")
    for who, o in Onions.iter(state):
        if o.revealed > onion.ONION_LENGTH:
            raise AssertionError(f"onion of 0x{who.hex()} revealed {o.revealed} values")
        if o.generation < 1:
            raise AssertionError(f"onion of 0x{who.hex()} has generation 0")
