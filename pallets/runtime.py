"""The Cuckoo runtime: the pallets with their consensus-visible indices, in hook order.

Runtime parameters (existential deposit, fees, slot duration, faucet ...) come from the chain
spec and are stored in genesis state under `RUNTIME_CONFIG_KEY`, so the genesis hash commits to
them and a raw chain spec is self-contained (like `:code` in Substrate).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from chain.crypto import ss58_decode, ss58_encode
from chain.frame.common import Weight
from chain.frame.runtime import Runtime, RuntimeVersion
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.faucet import pallet as faucet
from pallets.finality import pallet as finality
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
DEFAULT_SESSION_LENGTH = 10  # blocks, for specs without `parameters.session`

# Runtime APIs served through state_call: (name, version). Versions match @polkadot/api's
# definitions so that Polkadot.js decorates `api.call.*` (COMPAT.md section 5).
RUNTIME_APIS: tuple[tuple[str, int], ...] = (
    ("Core", 4),
    ("Metadata", 2),
    ("BlockBuilder", 6),
    ("TaggedTransactionQueue", 3),
    ("AccountNonceApi", 1),
    ("TransactionPaymentApi", 4),
    ("AuraApi", 1),
)

VERSION = RuntimeVersion(
    spec_name="cuckoo",
    impl_name="cuckoo-node",
    authoring_version=1,
    spec_version=103,
    impl_version=1,
    apis=RUNTIME_APIS,
    transaction_version=1,
    state_version=1,
)

PALLETS = (
    system.SPEC,
    timestamp.SPEC,
    aura.SPEC,
    session.SPEC,  # after Aura: a boundary block is authored by the parent state's authorities
    finality.SPEC,
    balances.SPEC,
    transaction_payment.SPEC,
    sudo.SPEC,
    faucet.SPEC,
    staking.SPEC,
    registry.SPEC,
    voting.SPEC,
    rewards.SPEC,
    slashing.SPEC,
    tasks.SPEC,
)


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeConfig:
    system: system.Config
    timestamp: timestamp.Config
    aura: aura.Config
    balances: balances.Config
    transaction_payment: transaction_payment.Config
    faucet: faucet.Config
    staking: staking.Config
    registry: registry.Config
    rewards: rewards.Config
    slashing: slashing.Config
    session: session.Config
    max_block_weight: Weight = Weight(2_000_000_000_000, 5 * 1024 * 1024)  # 2 s of ref_time
    max_block_length: int = 5 * 1024 * 1024
    max_extrinsic_length: int = 4 * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        tp = self.transaction_payment
        return {
            "system": {
                "blockHashCount": self.system.block_hash_count,
                "ss58Prefix": self.system.ss58_prefix,
            },
            "timestamp": {"minimumPeriodMs": self.timestamp.minimum_period_ms},
            "aura": {"slotDurationMs": self.aura.slot_duration_ms},
            "balances": {"existentialDeposit": str(self.balances.existential_deposit)},
            "transactionPayment": {
                "byteFee": str(tp.byte_fee),
                "weightFeePerRefTime": str(tp.weight_fee_per_ref_time),
                "weightFeeDivisor": str(tp.weight_fee_divisor),
            },
            "faucet": {
                "enabled": self.faucet.enabled,
                "amount": str(self.faucet.amount),
                "periodBlocks": self.faucet.period_blocks,
            },
            "staking": {
                "eraLength": self.staking.era_length,
                "bondingDuration": self.staking.bonding_duration,
            },
            "registry": {
                "minMinerStake": str(self.registry.min_miner_stake),
                "minCoordinatorStake": str(self.registry.min_coordinator_stake),
            },
            "rewards": {
                "emissionPerEra": str(self.rewards.emission_per_era),
                "minerShare": self.rewards.miner_share,
            },
            "slashing": {
                "slashDeferDuration": self.slashing.slash_defer_duration,
                "invalidResultSlash": self.slashing.invalid_result_slash,
                "equivocationSlash": self.slashing.equivocation_slash,
                "finderFee": self.slashing.finder_fee,
                "treasury": ss58_encode(self.slashing.treasury, self.system.ss58_prefix),
            },
            "session": {"length": self.session.length},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RuntimeConfig:
        """Parse the `parameters` section of a chain spec; amounts are decimal strings or ints."""
        try:
            slot = int(obj["aura"]["slotDurationMs"])
            tp = obj["transactionPayment"]
            fc = obj.get("faucet", {})
            return cls(
                system=system.Config(
                    block_hash_count=int(obj.get("system", {}).get("blockHashCount", 2400)),
                    ss58_prefix=int(obj.get("system", {}).get("ss58Prefix", 42)),
                ),
                timestamp=timestamp.Config(
                    minimum_period_ms=int(
                        obj.get("timestamp", {}).get("minimumPeriodMs", slot // 2)
                    )
                ),
                aura=aura.Config(slot_duration_ms=slot),
                balances=balances.Config(
                    existential_deposit=int(obj["balances"]["existentialDeposit"])
                ),
                transaction_payment=transaction_payment.Config(
                    byte_fee=int(tp["byteFee"]),
                    weight_fee_per_ref_time=int(tp["weightFeePerRefTime"]),
                    weight_fee_divisor=int(tp.get("weightFeeDivisor", 1)),
                ),
                faucet=faucet.Config(
                    enabled=bool(fc.get("enabled", False)),
                    amount=int(fc.get("amount", 0)),
                    period_blocks=int(fc.get("periodBlocks", 1)),
                ),
                staking=staking.Config(
                    era_length=_positive(obj["staking"]["eraLength"], "staking.eraLength"),
                    bonding_duration=int(obj["staking"]["bondingDuration"]),
                ),
                registry=registry.Config(
                    min_miner_stake=int(obj["registry"]["minMinerStake"]),
                    min_coordinator_stake=int(obj["registry"]["minCoordinatorStake"]),
                ),
                rewards=rewards.Config(
                    emission_per_era=int(obj["rewards"]["emissionPerEra"]),
                    miner_share=_perbill(obj["rewards"]["minerShare"], "rewards.minerShare"),
                ),
                slashing=slashing.Config(
                    slash_defer_duration=int(obj["slashing"]["slashDeferDuration"]),
                    invalid_result_slash=_perbill(
                        obj["slashing"]["invalidResultSlash"], "invalidResultSlash"
                    ),
                    equivocation_slash=_perbill(
                        obj["slashing"]["equivocationSlash"], "equivocationSlash"
                    ),
                    finder_fee=_perbill(obj["slashing"]["finderFee"], "finderFee"),
                    treasury=ss58_decode(obj["slashing"]["treasury"])[0],
                ),
                session=session.Config(
                    length=_positive(
                        obj.get("session", {}).get("length", DEFAULT_SESSION_LENGTH),
                        "session.length",
                    )
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid runtime parameters in chain spec: {exc!r}") from exc

    def encode(self) -> bytes:
        """Canonical bytes (sorted-key JSON of integers and strings; no floats)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RuntimeConfig:
        return cls.from_json(json.loads(raw))


def _positive(value: Any, what: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"{what} must be positive")
    return n


def _perbill(value: Any, what: str) -> int:
    n = int(value)
    if not 0 <= n <= 1_000_000_000:
        raise ValueError(f"{what} is a Perbill: 0 to 1,000,000,000")
    return n


def build_runtime(config: RuntimeConfig) -> Runtime:
    return Runtime(
        name=RUNTIME_NAME,
        version=VERSION,
        pallets=PALLETS,
        config=config,
        call_refs=(sudo.RUNTIME_CALL,),
        event_refs=(system.RUNTIME_EVENT,),
    )
