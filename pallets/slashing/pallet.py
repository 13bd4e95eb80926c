"""Slashing: offences become deferred slashes that root can cancel inside the window.

Offences: an invalid inference result, a wrong or absent check, a failed dispute and a withheld
spec (all from the Tasks pallet's verdicts, docs/verification.md), and validator equivocation.
An offence reported in era `e` becomes an unapplied slash for era `e + SlashDeferDuration`. When
that era starts, the slash takes its kind's fraction (e.g. `InvalidResultSlash`) from the
offender's own bonded stake (active, then unlocking chunks: they stay slashable until withdrawn)
and from every vote on the offender in proportion; it pays `FinderFee` of the total to the
reporter (if any) and the rest to the treasury, and, for fraud (InvalidResult, Equivocation),
suspends the offender's registration. An offence id (hash of kind and evidence) is slashed at
most once, ever.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, TypeAlias

from chain.frame.prelude import *
from chain.hashing import blake2_256
from pallets import weights
from pallets.balances import pallet as balances
from pallets.config import Ctx, RuntimeConfig, SlashingConfig
from pallets.registry import pallet as registry
from pallets.staking import pallet as staking
from pallets.system import pallet as system
from pallets.voting import pallet as voting

SPEC = PalletSpec("Slashing", 14, module="pallet_cuckoo_slashing")
Config = SlashingConfig

MAX_UNAPPLIED_PER_ERA = 256
MAX_SPILL_ERAS = 64  # a full era's offences go to the next era with room, this far at most


SPEC.constant(
    "SlashDeferDuration",
    U32,
    lambda c: c.slashing.slash_defer_duration,
    "Eras between an offence's report and its slash (root may cancel meanwhile).",
)
SPEC.constant(
    "InvalidResultSlash",
    PERBILL,
    lambda c: c.slashing.invalid_result_slash,
    "Fraction of stake slashed for an invalid inference result.",
)
SPEC.constant(
    "EquivocationSlash",
    PERBILL,
    lambda c: c.slashing.equivocation_slash,
    "Fraction of stake slashed for validator equivocation.",
)
SPEC.constant(
    "FinderFee", PERBILL, lambda c: c.slashing.finder_fee, "Share of a slash paid to the reporter."
)
SPEC.constant(
    "Treasury",
    ACCOUNT_ID,
    lambda c: c.slashing.treasury,
    "Receives slashed funds less the finder's fee.",
)


class OffenceKind(enum.StrEnum):
    INVALID_RESULT = "InvalidResult"  # an inference result proved wrong
    EQUIVOCATION = "Equivocation"  # a validator signed two blocks for a slot, or two votes
    CHECK_FAULT = "CheckFault"  # a checker on the losing side of a verdict, or absent
    FALSE_DISPUTE = "FalseDispute"  # a coordinator disputed a result the checkers upheld
    WITHHELD_SPEC = "WithheldSpec"  # a coordinator did not reveal a checked task's spec


# Offences that end a registration until it registers again: proven fraud. A wrong or absent
# check, a failed dispute and a withheld spec cost stake but leave the registration standing.
SUSPENDING = (OffenceKind.INVALID_RESULT, OffenceKind.EQUIVOCATION)

OFFENCE_KIND = unit_enum("pallet_cuckoo_slashing::OffenceKind", OffenceKind)
OffenceKindField: TypeAlias = Annotated[OffenceKind, OFFENCE_KIND, "OffenceKind"]


@struct("pallet_cuckoo_slashing::UnappliedSlash")
class UnappliedSlash:
    offender: AccountIdField
    reporter: Annotated[bytes | None, Option(ACCOUNT_ID), "Option<AccountId>"]
    kind: OffenceKindField
    offence_id: Hash256
    fraction: Perbill
    exposure: Annotated[  # the votes on the offender when it was reported
        list[tuple[bytes, int]],
        Vec(Tuple(ACCOUNT_ID, BALANCE), voting.MAX_VOTERS_PER_TARGET),
        "BoundedVec<(AccountId, Balance)>",
    ]


UNAPPLIED_SLASH = scale_of(UnappliedSlash)


@struct("pallet_cuckoo_slashing::SlashRecord")
class SlashRecord:
    own: Balance
    voters: Balance
    era: EraIndex


SLASH_RECORD = scale_of(SlashRecord)

UnappliedSlashes: StorageMap[int, list[UnappliedSlash]] = StorageMap(
    SPEC,
    "UnappliedSlashes",
    U32,
    Vec(UNAPPLIED_SLASH),
    hasher="Twox64Concat",
    default=[],
    docs="Slashes to apply when each era starts.",
)
Offences: StorageMap[bytes, int] = StorageMap(
    SPEC,
    "Offences",
    H256,
    U32,
    hasher="Identity",
    docs="Every offence id ever reported, with its report era.",
)
SlashHistory: StorageMap[bytes, list[SlashRecord]] = StorageMap(
    SPEC,
    "SlashHistory",
    ACCOUNT_ID,
    Vec(SLASH_RECORD),
    default=[],
    docs="Applied slashes per offender.",
)
TotalSlashed: StorageValue[int] = StorageValue(
    SPEC, "TotalSlashed", BALANCE, default=0, docs="All stake ever slashed."
)


@event(SPEC, 0)
class OffenceReported:
    """An offence was reported; its slash is deferred until `apply_era` starts."""

    offender: T.AccountId
    kind: OffenceKindField
    offence_id: Hash256
    apply_era: EraIndex


@event(SPEC, 1)
class SlashCancelled:
    """Root cancelled a deferred slash."""

    era: EraIndex
    offender: T.AccountId


@event(SPEC, 2)
class OffenderSlashed:
    """A deferred slash was applied: `own` from the offender, `voters` from its voters."""

    offender: T.AccountId
    own: BalanceOf
    voters: BalanceOf
    reporter_fee: BalanceOf


@errors(SPEC)
class Error(PalletError):  # consensus-visible: append only
    ALREADY_REPORTED = 0, "This offence was reported before; it is slashed at most once."
    NOT_STAKED = 1, "The offender has no bonded stake to slash."
    TOO_MANY_OFFENCES = 2, "The slash queues of the era and of the 64 eras after it are full."
    INVALID_SLASH_INDEX = 3, "No unapplied slash at this index."
    EMPTY_SLASH_INDICES = 4, "Give at least one index to cancel."


def offence_id(kind: OffenceKind, evidence: bytes) -> bytes:
    return blake2_256(kind.encode() + evidence)


def fraction_for(config: Config, kind: OffenceKind) -> int:
    return {
        OffenceKind.INVALID_RESULT: config.invalid_result_slash,
        OffenceKind.EQUIVOCATION: config.equivocation_slash,
        OffenceKind.CHECK_FAULT: config.check_fault_slash,
        OffenceKind.FALSE_DISPUTE: config.false_dispute_slash,
        OffenceKind.WITHHELD_SPEC: config.withheld_spec_slash,
    }[kind]


def _queue_with_room(state: ReadState, era: int) -> int | None:
    """The first era from `era` whose slash queue has room: a full era spills into the next
    ones (at most MAX_SPILL_ERAS later), so that no offence is dropped in a busy era."""
    for candidate in range(era, era + MAX_SPILL_ERAS + 1):
        if len(UnappliedSlashes.get(state, candidate)) < MAX_UNAPPLIED_PER_ERA:
            return candidate
    return None


def try_report(
    ctx: Ctx, offender: bytes, reporter: bytes | None, kind: OffenceKind, evidence: bytes
) -> bytes | None:
    """`report` for the runtime's own verdicts (hooks must not fail): None, and nothing
    written, when the offence was reported before, the offender has nothing bonded, or the
    queues of the next MAX_SPILL_ERAS eras are full."""
    oid = offence_id(kind, evidence)
    era = staking.CurrentEra.get(ctx.state) + ctx.config.slashing.slash_defer_duration
    if (
        Offences.contains(ctx.state, oid)
        or staking.get_ledger(ctx.state, offender) is None
        or _queue_with_room(ctx.state, era) is None
    ):
        return None
    return report(ctx, offender, reporter, kind, evidence)


def report(
    ctx: Ctx, offender: bytes, reporter: bytes | None, kind: OffenceKind, evidence: bytes
) -> bytes:
    """Open an offence (used by the tasks pallet and by root). Returns its id."""
    oid = offence_id(kind, evidence)
    ensure(not Offences.contains(ctx.state, oid), Error.ALREADY_REPORTED)
    ensure(staking.get_ledger(ctx.state, offender) is not None, Error.NOT_STAKED)
    era = staking.CurrentEra.get(ctx.state)
    apply_era = _queue_with_room(ctx.state, era + ctx.config.slashing.slash_defer_duration)
    ensure(apply_era is not None, Error.TOO_MANY_OFFENCES)
    assert apply_era is not None
    queue = UnappliedSlashes.get(ctx.state, apply_era)
    fraction = fraction_for(ctx.config.slashing, kind)
    exposure = sorted(voting.Voters.iter_prefix(ctx.state, offender))
    UnappliedSlashes.put(
        ctx.state,
        apply_era,
        [*queue, UnappliedSlash(offender, reporter, kind, oid, fraction, exposure)],
    )
    Offences.put(ctx.state, oid, era)
    ctx.emit(OffenceReported(offender, kind, oid, apply_era))
    return oid


@dataclasses.dataclass(frozen=True, slots=True)
class SlashPlan:
    own: int  # from the offender's own (unallocated) bonded stake
    voters: list[tuple[bytes, int]]  # from each vote on the offender


def compute_slash(
    state: ReadState,
    offender: bytes,
    fraction: int,
    exposure: list[tuple[bytes, int]] | None = None,
) -> SlashPlan:
    """Pure: what a slash of `fraction` takes from the offender (its own bonded stake now,
    unlocking chunks included) and from each voter (of its vote recorded in `exposure` when the
    offence was reported; the current votes when no exposure is given)."""
    ledger = staking.get_ledger(state, offender)
    own_base = (ledger.total - ledger.allocated) if ledger is not None else 0
    own = own_base * fraction // PERBILL_ONE
    votes = exposure if exposure is not None else sorted(voting.Voters.iter_prefix(state, offender))
    voters = [(v, amount * fraction // PERBILL_ONE) for v, amount in votes]
    return SlashPlan(own, [(v, a) for v, a in voters if a > 0])


def apply_slash(ctx: Ctx, slash: UnappliedSlash) -> None:
    plan = compute_slash(ctx.state, slash.offender, slash.fraction, slash.exposure)
    own = staking.apply_ledger_slash(ctx, slash.offender, plan.own)
    from_voters = 0
    for voter, amount in plan.voters:
        # Out of the vote while it stands; a voter who unvoted (or unbonded) inside the window
        # pays from its remaining bonded stake, unlocking chunks included.
        current = voting.get_vote(ctx.state, voter, slash.offender)
        from_vote = min(amount, current)
        if from_vote:
            voting.set_vote(ctx, voter, slash.offender, current - from_vote)
            from_voters += staking.apply_ledger_slash(
                ctx, voter, from_vote, allocated_share=from_vote
            )
        rest = amount - from_vote
        if rest > 0:  # unallocated stake and unlocking chunks first
            taken = staking.apply_ledger_slash(ctx, voter, rest)
            from_voters += taken
            rest -= taken
        for target, vote in sorted(voting.Votes.iter_prefix(ctx.state, voter)):
            if rest <= 0:
                break  # then stake moved to other targets: it is still the exposed stake
            cut = min(vote, rest)
            voting.set_vote(ctx, voter, target, vote - cut)
            taken = staking.apply_ledger_slash(ctx, voter, cut, allocated_share=cut)
            from_voters += taken
            rest -= taken
    total = own + from_voters
    fee = total * ctx.config.slashing.finder_fee // PERBILL_ONE if slash.reporter is not None else 0
    if fee and slash.reporter is not None:
        fee = _deposit(ctx, slash.reporter, fee)
    _deposit(ctx, ctx.config.slashing.treasury, total - fee)
    if slash.kind in SUSPENDING:
        registry.suspend(ctx, slash.offender)
    era = staking.CurrentEra.get(ctx.state)
    history = SlashHistory.get(ctx.state, slash.offender)
    SlashHistory.put(
        ctx.state, slash.offender, [*history[-15:], SlashRecord(own, from_voters, era)]
    )
    TotalSlashed.put(ctx.state, TotalSlashed.get(ctx.state) + total)
    ctx.emit(OffenderSlashed(slash.offender, own, from_voters, fee))


def _deposit(ctx: Ctx, who: bytes, amount: int) -> int:
    if amount <= 0:
        return 0
    info = system.get_account(ctx.state, who)
    if info.data.free + amount < ctx.config.balances.existential_deposit:
        return 0  # too small to create the account: stays burned
    balances.deposit_creating(ctx, who, amount)
    return amount


def on_new_era(ctx: Ctx, era: int) -> None:
    """Apply the slashes deferred to `era` (wired to Staking)."""
    for slash in UnappliedSlashes.get(ctx.state, era):
        apply_slash(ctx, slash)
    UnappliedSlashes.remove(ctx.state, era)


@call(SPEC, 0, weight=weights.slashing_force_report_offence())
def force_report_offence(
    ctx: Ctx,
    offender: T.AccountId,
    reporter: Annotated[bytes | None, Option(ACCOUNT_ID), "Option<T::AccountId>"],
    kind: OffenceKindField,
    evidence: Annotated[bytes, Bytes(4096), "Vec<u8>"],
) -> None:
    """Root: report an offence directly (governance, tests). The tasks pallet reports invalid
    results itself. Errors: AlreadyReported, NotStaked, TooManyOffences. Emits: OffenceReported."""
    ctx.ensure_root()
    report(ctx, offender, reporter, kind, evidence)


@call(SPEC, 1, weight=weights.slashing_cancel_deferred_slash())
def cancel_deferred_slash(
    ctx: Ctx, era: EraIndex, slash_indices: Annotated[list[int], Vec(U32), "Vec<u32>"]
) -> None:
    """Root: cancel unapplied slashes of `era` by their index in UnappliedSlashes(era).
    Errors: EmptySlashIndices, InvalidSlashIndex. Emits: SlashCancelled for each."""
    ctx.ensure_root()
    ensure(bool(slash_indices), Error.EMPTY_SLASH_INDICES)
    queue = UnappliedSlashes.get(ctx.state, era)
    drop = sorted(set(slash_indices))
    ensure(drop[-1] < len(queue), Error.INVALID_SLASH_INDEX)
    kept = [s for i, s in enumerate(queue) if i not in drop]
    if kept:
        UnappliedSlashes.put(ctx.state, era, kept)
    else:
        UnappliedSlashes.remove(ctx.state, era)
    for i in drop:
        ctx.emit(SlashCancelled(era, queue[i].offender))


@hook(SPEC, "try_state")
def check_invariants(state: ReadState, config: RuntimeConfig) -> None:
    """try_state: deferred slashes wait for an era still to come, in bounded, non-empty queues,
    each for a recorded offence and with a fraction of at most 100%."""
    current = staking.CurrentEra.get(state)
    for era, queue in UnappliedSlashes.iter(state):
        if era <= current and config.slashing.slash_defer_duration > 0:
            raise AssertionError(f"slashes of era {era} were not applied when it started")
        if not queue or len(queue) > MAX_UNAPPLIED_PER_ERA:
            raise AssertionError(f"the slash queue of era {era} is empty or over its bound")
        for slash in queue:
            if not Offences.contains(state, slash.offence_id):
                raise AssertionError(f"a deferred slash of era {era} has no recorded offence")
            if slash.fraction > PERBILL_ONE:
                raise AssertionError(f"a deferred slash of era {era} is over 100%")
