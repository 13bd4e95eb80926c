"""Stand-in (replaced by the RANDAO pallet): the current randomness mix."""

from __future__ import annotations

from chain.frame.prelude import *

SPEC = PalletSpec("Randomness", 16, module="pallet_cuckoo_randomness")

Mix: StorageValue[bytes] = StorageValue(
    SPEC, "Mix", H256, default=bytes(32), docs="The current randomness mix."
)


def current_mix(state: ReadState) -> bytes:
    return Mix.get(state)
