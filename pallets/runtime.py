"""The Cuckoo runtime: the pallets with their consensus-visible indices, in hook order, and the
wiring between them (FRAME's `construct_runtime!` and `impl Config for Runtime`).

Everything that decides the order in which pallets run is written here: `PALLETS` (the order of
`on_initialize`/`on_finalize` hooks) and `WIRING` (the order of each cross-pallet hook's
listeners). Runtime parameters (existential deposit, fees, slot duration, faucet ...) come from
the chain spec and are stored in genesis state under `RUNTIME_CONFIG_KEY`, so the genesis hash
commits to them and a raw chain spec is self-contained (like `:code` in Substrate); see
`pallets/config.py`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from chain.frame.runtime import Runtime, RuntimeVersion
from pallets import runtime_apis
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.config import DEFAULT_SESSION_LENGTH, RuntimeConfig, Wiring
from pallets.faucet import pallet as faucet
from pallets.finality import pallet as finality
from pallets.randomness import pallet as randomness
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.session import pallet as session
from pallets.slashing import pallet as slashing
from pallets.staking import pallet as staking
from pallets.sudo import pallet as sudo
from pallets.system import pallet as system
from pallets.tasks import pallet as tasks
from pallets.timestamp import pallet as timestamp
from pallets.transaction_payment import pallet as transaction_payment
from pallets.voting import pallet as voting

RUNTIME_NAME = "cuckoo"
RUNTIME_CONFIG_KEY = b":cuckoo:runtime_config"

# Runtime APIs served through state_call (pallets/runtime_apis.py): (name, version), exactly
# the ones declared there. Versions match @polkadot/api's definitions so that Polkadot.js
# decorates `api.call.*` (COMPAT.md section 5).
RUNTIME_APIS: tuple[tuple[str, int], ...] = tuple(
    (api.name, api.version) for api, _ in runtime_apis.RUNTIME_API_DECLS
)

VERSION = RuntimeVersion(
    spec_name="cuckoo",
    impl_name="cuckoo-node",
    authoring_version=1,
    spec_version=104,
    impl_version=1,
    apis=RUNTIME_APIS,
    transaction_version=1,
    state_version=1,
)

_MODULES = (
    system,
    timestamp,
    aura,
    randomness,  # right after Aura: the slot's author, before Session rotates the set
    session,  # after Aura: a boundary block is authored by the parent state's authorities
    finality,
    balances,
    transaction_payment,
    sudo,
    faucet,
    staking,
    registry,
    voting,
    rewards,
    slashing,
    tasks,
)
PALLETS = tuple(m.SPEC for m in _MODULES)
# each pallet's documentation in metadata V15: its module's docstring, line by line
PALLET_DOCS = MappingProxyType(
    {
        m.SPEC.index: tuple(line.strip() for line in (m.__doc__ or "").strip().splitlines())
        for m in _MODULES
    }
)


WIRING = Wiring(
    # Slashes of the new era apply before the ended era is queued for payout (a slashed target's
    # voters are paid on what remains of their stake).
    on_new_era=(slashing, rewards),
    on_stake_changed=(registry,),  # own stake and Active/Inactive status follow the ledger
    on_dust_bond=(voting,),  # a bond slashed away as dust first drops the votes it backs
    standing_votes=(voting,),  # votes survive a deregistration and count again on return
    key_owners=(session,),  # equivocation reports find the account behind a session key
    validate_unsigned=(finality,),  # finality proofs and equivocation reports come unsigned
)

__all__ = [
    "DEFAULT_SESSION_LENGTH",
    "PALLETS",
    "RUNTIME_APIS",
    "RUNTIME_CONFIG_KEY",
    "RUNTIME_NAME",
    "VERSION",
    "WIRING",
    "RuntimeConfig",
    "build_runtime",
    "decode_runtime_config",
    "runtime_config",
]


def runtime_config(parameters: dict[str, Any]) -> RuntimeConfig:
    """This runtime's configuration from a chain spec's `parameters` (raises ValueError)."""
    return RuntimeConfig.from_json(parameters, WIRING)


def decode_runtime_config(raw: bytes) -> RuntimeConfig:
    """This runtime's configuration from the parameters stored in genesis state."""
    return RuntimeConfig.decode(raw, WIRING)


def build_runtime(config: RuntimeConfig) -> Runtime[RuntimeConfig]:
    return Runtime(
        name=RUNTIME_NAME,
        version=VERSION,
        pallets=PALLETS,
        config=config,
        call_refs=(sudo.RUNTIME_CALL,),
        event_refs=(system.RUNTIME_EVENT,),
        apis=[api for api, _ in runtime_apis.RUNTIME_API_DECLS],
        pallet_docs=PALLET_DOCS,
    )
