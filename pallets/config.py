"""The runtime's configuration: FRAME's `impl pallet_x::Config for Runtime`, typed, in one place.

Two halves, both reached through `ctx.config`:

- **Parameters** (existential deposit, fees, era length, stakes, slashes ...): values from the
  chain spec, stored in genesis state under `:cuckoo:runtime_config`, so the genesis hash commits
  to them (`RuntimeConfig.encode`). One frozen dataclass per pallet, named `<Pallet>Config`;
  each pallet module re-exports its own as `Config`.
- **Wiring** (`Wiring`): which pallets react to another pallet's events, in order (FRAME's
  `type OnNewEra = (Slashing, Rewards)`). Each hook is a `Protocol` that a pallet module
  implements with a plain function of the same name; `pallets.runtime.WIRING` lists the
  implementers. It is code, not state: it is never encoded.

A lower pallet calls its listeners through `ctx.config.wiring` and never imports the pallets
that listen, so the dependency graph of pallets stays acyclic and the order is the one written
in `pallets/runtime.py`, whatever order modules are imported in.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol, TypeAlias

from chain.crypto import ss58_decode, ss58_encode
from chain.frame.common import Weight
from chain.frame.outer import DecodedCall
from chain.frame.pallet import Ctx as FrameCtx
from chain.frame.pallet import PalletSpec, ReadState
from chain.frame.validity import UnsignedValidity

DEFAULT_SESSION_LENGTH = 10  # blocks, for specs without `parameters.session`
PERBILL_MAX = 1_000_000_000

# ---- parameters, per pallet --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SystemConfig:
    block_hash_count: int = 2400  # how many recent block hashes are kept (mortal eras)
    ss58_prefix: int = 42


@dataclasses.dataclass(frozen=True, slots=True)
class TimestampConfig:
    minimum_period_ms: int  # half the slot duration, like FRAME


@dataclasses.dataclass(frozen=True, slots=True)
class AuraConfig:
    slot_duration_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class BalancesConfig:
    existential_deposit: int
    max_locks: int = 50
    max_reserves: int = 50


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionPaymentConfig:
    byte_fee: int  # per encoded byte of the extrinsic
    weight_fee_per_ref_time: int  # per picosecond of ref_time (numerator)
    weight_fee_divisor: int = 1
    extrinsic_base_weight: Weight = Weight(125_000_000, 0)
    operational_fee_multiplier: int = 5


@dataclasses.dataclass(frozen=True, slots=True)
class FaucetConfig:
    enabled: bool = False
    amount: int = 0
    period_blocks: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class StakingConfig:
    era_length: int  # blocks per era
    bonding_duration: int  # eras before unbonded funds can be withdrawn


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryConfig:
    min_miner_stake: int
    min_coordinator_stake: int


@dataclasses.dataclass(frozen=True, slots=True)
class RewardsConfig:
    emission_per_era: int  # the most CAI minted per era for work (docs/economics.md)
    miner_share: int  # Perbill of the emission for miners; coordinators get the rest
    burn_rebate: int = 500_000_000  # Perbill: emission per CAI burned by accepted tasks


@dataclasses.dataclass(frozen=True, slots=True)
class SlashingConfig:
    slash_defer_duration: int  # eras
    invalid_result_slash: int  # Perbill
    equivocation_slash: int  # Perbill
    finder_fee: int  # Perbill of what is slashed
    treasury: bytes
    check_fault_slash: int = 50_000_000  # Perbill: a checker that was wrong or absent
    false_dispute_slash: int = 10_000_000  # Perbill: a coordinator whose dispute failed
    withheld_spec_slash: int = 10_000_000  # Perbill: a coordinator that hid a checked spec


@dataclasses.dataclass(frozen=True, slots=True)
class TasksConfig:
    """Paid tasks and bounded task state (docs/economics.md)."""

    min_task_price: int = 10**16  # planck: the least a task may pay its miner (0.01 CAI)
    burn_share: int = 200_000_000  # Perbill of an accepted price: burned, or paid to checkers
    task_deposit: int = 10**16  # planck reserved per task until it leaves state
    retention_blocks: int = 100  # blocks a settled task stays in state before it is pruned


@dataclasses.dataclass(frozen=True, slots=True)
class VerificationConfig:
    """The checked-work protocol (docs/verification.md)."""

    check_rate: int = 100_000_000  # Perbill: the share of results re-executed by checkers
    spec_window: int = 10  # blocks for the coordinator to reveal a checked task's spec
    commit_window: int = 20  # blocks for checkers to re-run and commit
    reveal_window: int = 10  # blocks for the miner and the checkers to reveal
    appeal_window: int = 10  # blocks for a miner found Guilty in round 1 to appeal
    max_sketch_distance: int = 0  # cross-class agreement threshold (0: the calibrated default)
    check_rounds: tuple[int, ...] = (1, 3, 5)  # checkers per round: sampled, escalated, appeal


@dataclasses.dataclass(frozen=True, slots=True)
class SessionConfig:
    length: int  # blocks per session


# ---- wiring: the cross-pallet hooks ----------------------------------------------------------


class OnNewEra(Protocol):
    """Staking started era `era` (in that block's `on_initialize`)."""

    def on_new_era(self, ctx: Ctx, era: int) -> None: ...


class OnStakeChanged(Protocol):
    """`who`'s staking ledger was written (bond, unbond, votes allocated, slash ...)."""

    def on_stake_changed(self, ctx: Ctx, who: bytes) -> None: ...


class OnDustBond(Protocol):
    """`who`'s bond is about to be slashed away as dust: release what it backs first."""

    def on_dust_bond(self, ctx: Ctx, who: bytes) -> None: ...


class StandingVotes(Protocol):
    """The stake voted for `who` by others (also while `who` is not registered)."""

    def standing_votes(self, state: ReadState, who: bytes) -> int: ...


class KeyOwners(Protocol):
    """The account that owns a session key of `key_type`, if any."""

    def key_owner(self, state: ReadState, key_type: bytes, key: bytes) -> bytes | None: ...


class ValidateUnsigned(Protocol):
    """FRAME's `ValidateUnsigned` for the calls of the pallet `SPEC`: whether an unsigned
    transaction carrying `call` may enter the pool and a block, for block `block_number`.
    Returns its validity, or why it is invalid (the pool bans it); may raise
    `InvalidTransaction` "Stale" or "Future" (not banned)."""

    SPEC: PalletSpec

    def validate_unsigned(
        self, state: ReadState, config: RuntimeConfig, block_number: int, call: DecodedCall
    ) -> UnsignedValidity | str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Wiring:
    """Each hook's implementers, called in this order."""

    on_new_era: tuple[OnNewEra, ...]
    on_stake_changed: tuple[OnStakeChanged, ...]
    on_dust_bond: tuple[OnDustBond, ...]
    standing_votes: tuple[StandingVotes, ...]
    key_owners: tuple[KeyOwners, ...]
    validate_unsigned: tuple[ValidateUnsigned, ...]

    def unsigned_validator(self, pallet: PalletSpec) -> ValidateUnsigned | None:
        """The pallet's `ValidateUnsigned`, if its calls may come unsigned."""
        return next((v for v in self.validate_unsigned if v.SPEC is pallet), None)


# ---- the configuration -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeConfig:
    system: SystemConfig
    timestamp: TimestampConfig
    aura: AuraConfig
    balances: BalancesConfig
    transaction_payment: TransactionPaymentConfig
    faucet: FaucetConfig
    staking: StakingConfig
    registry: RegistryConfig
    rewards: RewardsConfig
    slashing: SlashingConfig
    session: SessionConfig
    wiring: Wiring
    verification: VerificationConfig = VerificationConfig()
    tasks: TasksConfig = TasksConfig()
    max_block_weight: Weight = Weight(2_000_000_000_000, 5 * 1024 * 1024)  # 2 s of ref_time
    max_block_length: int = 5 * 1024 * 1024
    max_extrinsic_length: int = 4 * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        """The parameters as they appear in a chain spec (`genesis.runtimeGenesis.parameters`)."""
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
                "burnRebate": self.rewards.burn_rebate,
            },
            "tasks": {
                "minTaskPrice": str(self.tasks.min_task_price),
                "burnShare": self.tasks.burn_share,
                "taskDeposit": str(self.tasks.task_deposit),
                "retentionBlocks": self.tasks.retention_blocks,
            },
            "slashing": {
                "slashDeferDuration": self.slashing.slash_defer_duration,
                "invalidResultSlash": self.slashing.invalid_result_slash,
                "equivocationSlash": self.slashing.equivocation_slash,
                "finderFee": self.slashing.finder_fee,
                "treasury": ss58_encode(self.slashing.treasury, self.system.ss58_prefix),
                "checkFaultSlash": self.slashing.check_fault_slash,
                "falseDisputeSlash": self.slashing.false_dispute_slash,
                "withheldSpecSlash": self.slashing.withheld_spec_slash,
            },
            "verification": {
                "checkRate": self.verification.check_rate,
                "specWindow": self.verification.spec_window,
                "commitWindow": self.verification.commit_window,
                "revealWindow": self.verification.reveal_window,
                "appealWindow": self.verification.appeal_window,
                "maxSketchDistance": self.verification.max_sketch_distance,
                "checkRounds": list(self.verification.check_rounds),
            },
            "session": {"length": self.session.length},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], wiring: Wiring) -> RuntimeConfig:
        """Parse the `parameters` section of a chain spec (amounts are decimal strings or ints)
        and attach the runtime's wiring."""
        try:
            slot = int(obj["aura"]["slotDurationMs"])
            tp = obj["transactionPayment"]
            fc = obj.get("faucet", {})
            sl = obj["slashing"]
            return cls(
                system=SystemConfig(
                    block_hash_count=int(obj.get("system", {}).get("blockHashCount", 2400)),
                    ss58_prefix=int(obj.get("system", {}).get("ss58Prefix", 42)),
                ),
                timestamp=TimestampConfig(
                    minimum_period_ms=int(
                        obj.get("timestamp", {}).get("minimumPeriodMs", slot // 2)
                    )
                ),
                aura=AuraConfig(slot_duration_ms=slot),
                balances=BalancesConfig(
                    existential_deposit=int(obj["balances"]["existentialDeposit"])
                ),
                transaction_payment=TransactionPaymentConfig(
                    byte_fee=int(tp["byteFee"]),
                    weight_fee_per_ref_time=int(tp["weightFeePerRefTime"]),
                    weight_fee_divisor=int(tp.get("weightFeeDivisor", 1)),
                ),
                faucet=FaucetConfig(
                    enabled=bool(fc.get("enabled", False)),
                    amount=int(fc.get("amount", 0)),
                    period_blocks=int(fc.get("periodBlocks", 1)),
                ),
                staking=StakingConfig(
                    era_length=_positive(obj["staking"]["eraLength"], "staking.eraLength"),
                    bonding_duration=int(obj["staking"]["bondingDuration"]),
                ),
                registry=RegistryConfig(
                    min_miner_stake=int(obj["registry"]["minMinerStake"]),
                    min_coordinator_stake=int(obj["registry"]["minCoordinatorStake"]),
                ),
                rewards=RewardsConfig(
                    emission_per_era=int(obj["rewards"]["emissionPerEra"]),
                    miner_share=_perbill(obj["rewards"]["minerShare"], "rewards.minerShare"),
                    burn_rebate=_rebate(obj["rewards"].get("burnRebate", 500_000_000)),
                ),
                tasks=_tasks(obj.get("tasks", {}), obj),
                slashing=SlashingConfig(
                    slash_defer_duration=int(sl["slashDeferDuration"]),
                    invalid_result_slash=_perbill(sl["invalidResultSlash"], "invalidResultSlash"),
                    equivocation_slash=_perbill(sl["equivocationSlash"], "equivocationSlash"),
                    finder_fee=_perbill(sl["finderFee"], "finderFee"),
                    treasury=ss58_decode(sl["treasury"])[0],
                    check_fault_slash=_slash(sl, "checkFaultSlash", 50_000_000),
                    false_dispute_slash=_slash(sl, "falseDisputeSlash", 10_000_000),
                    withheld_spec_slash=_slash(sl, "withheldSpecSlash", 10_000_000),
                ),
                verification=_verification(obj.get("verification", {})),
                session=SessionConfig(
                    length=_positive(
                        obj.get("session", {}).get("length", DEFAULT_SESSION_LENGTH),
                        "session.length",
                    )
                ),
                wiring=wiring,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid runtime parameters in chain spec: {exc!r}") from exc

    def encode(self) -> bytes:
        """Canonical bytes of the parameters (sorted-key JSON of integers and strings; no floats):
        what genesis stores under `:cuckoo:runtime_config`."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, wiring: Wiring) -> RuntimeConfig:
        return cls.from_json(json.loads(raw), wiring)


def _verification(obj: dict[str, Any]) -> VerificationConfig:
    d = VerificationConfig()
    rounds = tuple(int(n) for n in obj.get("checkRounds", d.check_rounds))
    if len(rounds) != 3 or any(n <= 0 or n > 15 for n in rounds):
        raise ValueError("verification.checkRounds: three round sizes, each 1..15")
    return VerificationConfig(
        check_rate=_perbill(obj.get("checkRate", d.check_rate), "verification.checkRate"),
        spec_window=_positive(obj.get("specWindow", d.spec_window), "verification.specWindow"),
        commit_window=_positive(
            obj.get("commitWindow", d.commit_window), "verification.commitWindow"
        ),
        reveal_window=_positive(
            obj.get("revealWindow", d.reveal_window), "verification.revealWindow"
        ),
        appeal_window=_positive(
            obj.get("appealWindow", d.appeal_window), "verification.appealWindow"
        ),
        max_sketch_distance=int(obj.get("maxSketchDistance", d.max_sketch_distance)),
        check_rounds=rounds,
    )


def _rebate(value: Any) -> int:
    n = _perbill(value, "rewards.burnRebate")
    if n >= PERBILL_MAX:  # at 100% or more, work a coordinator sends itself would pay for itself
        raise ValueError("rewards.burnRebate must be below 100% (1,000,000,000)")
    return n


def _tasks(obj: dict[str, Any], parameters: dict[str, Any]) -> TasksConfig:
    d = TasksConfig()
    config = TasksConfig(
        min_task_price=_positive(obj.get("minTaskPrice", d.min_task_price), "tasks.minTaskPrice"),
        burn_share=_perbill(obj.get("burnShare", d.burn_share), "tasks.burnShare"),
        task_deposit=int(obj.get("taskDeposit", d.task_deposit)),
        retention_blocks=_positive(
            obj.get("retentionBlocks", d.retention_blocks), "tasks.retentionBlocks"
        ),
    )
    # A settled task must outlive the slashes reported about it (deferred, cancellable by root
    # with the task as evidence): at least the defer duration plus the era it happened in.
    era = int(parameters["staking"]["eraLength"])
    defer = int(parameters["slashing"]["slashDeferDuration"])
    if config.retention_blocks < (defer + 1) * era:
        raise ValueError(
            f"tasks.retentionBlocks must be at least (slashDeferDuration + 1) * eraLength"
            f" = {(defer + 1) * era}"
        )
    return config


def _slash(section: dict[str, Any], name: str, default: int) -> int:
    return _perbill(section.get(name, default), f"slashing.{name}")


def _positive(value: Any, what: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError(f"{what} must be positive")
    return n


def _perbill(value: Any, what: str) -> int:
    n = int(value)
    if not 0 <= n <= PERBILL_MAX:
        raise ValueError(f"{what} is a Perbill: 0 to 1,000,000,000")
    return n


Ctx: TypeAlias = FrameCtx[RuntimeConfig]
"""What a call, hook or listener of this runtime sees (`ctx.config` is the `RuntimeConfig`)."""
