"""The executive: transaction validity, applying extrinsics, initializing and finalizing blocks.

Everything here is a pure function of (runtime, state, block data): the node supplies the
parent state (a Trie), the digest and the extrinsics; the executive returns the new state root,
the trie nodes to persist and the header to seal.

Per signed extrinsic (FRAME's order): checks (signature, era, nonce, weight, fee) -> nonce + 1
-> fee withdrawn (Balances.Withdraw) -> call dispatched in an overlay checkpoint that is
discarded on error -> TransactionPayment.TransactionFeePaid -> System.ExtrinsicSuccess/Failed.
A failed call therefore changes state only by its fee and nonce.

Unsigned extrinsics are either inherents (Mandatory calls the author makes, `apply_inherent`) or
calls of a pallet that the runtime's wiring lists as `validate_unsigned` (FRAME's
`ValidateUnsigned`: finality proofs, equivocation reports): valid in the pool and in blocks when
the pallet accepts them, dispatched with `Origin.none()`, free of fees, and re-validated when a
block applies them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from chain import ChainError
from chain.codec import CodecError, encode_u32
from chain.crypto import SignatureScheme, verify_signature
from chain.frame.code import CODE_KEY, RuntimeVersion
from chain.frame.common import DispatchInfo, Weight
from chain.frame.limits import (
    NO_WEIGHT,
    ConsumedWeight,
    check_consumed,
    check_extrinsic_weight,
    check_length,
    total,
)
from chain.frame.outer import DecodedCall
from chain.frame.pallet import DispatchError, Origin
from chain.frame.runtime import Runtime
from chain.frame.validity import InvalidTransaction, UnsignedValidity
from chain.hashing import blake2_256
from chain.primitives import DigestItem, Extrinsic, Header, UnsupportedSigner
from chain.records import fast_init
from chain.storage.overlay import Overlay
from chain.storage.trie import Trie, ordered_root
from pallets.balances import pallet as balances
from pallets.config import Ctx, RuntimeConfig, ValidateUnsigned
from pallets.system import pallet as system
from pallets.transaction_payment import pallet as transaction_payment

__all__ = [
    "ApplyOutcome",
    "BlockBuilder",
    "BuiltBlock",
    "CheckedExtrinsic",
    "Executive",
    "InvalidBlock",
    "InvalidTransaction",
    "SignatureCheck",
    "SignatureJob",
    "UnsignedValidity",
    "ValidTransaction",
    "decode_block_extrinsics",
    "execute_block",
    "execute_decoded",
    "signature_jobs",
]

MAX_FUTURE_NONCE_GAP = 256  # a nonce further ahead than this is refused, not queued

# How a signature is checked: (scheme, signature, signing payload, signer) -> valid. Default
# `verify_signature`; the node may answer from checks it ran elsewhere (other cores), which
# must give exactly what `verify_signature` gives.
SignatureCheck = Callable[[SignatureScheme, bytes, bytes, bytes], bool]
SignatureJob = tuple[SignatureScheme, bytes, bytes, bytes]  # SignatureCheck's arguments


def unsigned_validator(config: RuntimeConfig, call: DecodedCall) -> ValidateUnsigned | None:
    """The `ValidateUnsigned` of the call's pallet, if the runtime's wiring lists one."""
    return config.wiring.unsigned_validator(call.call.pallet)


@dataclasses.dataclass(frozen=True, slots=True)
class ValidTransaction:
    """What the pool needs: priority, the (sender, nonce) tags, and until when it is valid.
    Unsigned transactions have no sender (None) and nonce 0; their tags come from the hook."""

    sender: bytes | None
    nonce: int
    priority: int
    requires: tuple[bytes, ...]
    provides: tuple[bytes, ...]
    longevity: int
    is_ready: bool  # False: the nonce is ahead of the account's (future queue)


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class CheckedExtrinsic:
    """An extrinsic decoded and checked once: the pool keeps it, and block building and import
    reuse it (`BlockBuilder.apply_checked`) rather than decode and verify the bytes again."""

    xt: Extrinsic
    call: DecodedCall
    fee: int  # inclusion fee, without the tip
    weight: Weight
    # the signing payload the signature was verified over (None: unsigned, or not verified);
    # a later check of the same extrinsic skips the verification when its payload is this one
    payload: bytes | None = None


ZERO_ACCOUNT = bytes(32)
SUCCESS_EVENTS_CACHED = 1024
"""Distinct `ExtrinsicSuccess` encodings an executive keeps (`Executive.success_event`)."""


def account_tag(who: bytes, nonce: int) -> bytes:
    return who + encode_u32(nonce)


class Executive:
    def __init__(self, runtime: Runtime[RuntimeConfig]) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.version = runtime.version  # the built-in version (`version_at` reads `:code`)
        self.block_weights = system.block_weights(runtime.config)
        self.block_length = system.block_length(runtime.config)
        self._success_events: dict[tuple[int, int, str, bool], bytes] = {}

    # ---- the runtime's identity ---------------------------------------------------------------

    def version_at(self, state: Any) -> RuntimeVersion:
        """The runtime version a state's `:code` states (what a block on it is executed as)."""
        return self.runtime.version_of(state.get(CODE_KEY))

    def metadata_at(self, state: Any, *, at: int = 14) -> bytes:
        """The metadata (V14, or V15 with `at=15`) served for a state: its `System.Version`
        follows the state's `:code`."""
        return self.runtime.metadata(self.version_at(state), at=at)

    # ---- fees ---------------------------------------------------------------------------------

    def fee_details(
        self, state: Any, length: int, call: DecodedCall
    ) -> transaction_payment.FeeDetails:
        multiplier = transaction_payment.NextFeeMultiplier.get(state)
        weight = call.weight
        if not call.call.pays_fee:
            return transaction_payment.FeeDetails(0, 0, 0)
        return transaction_payment.compute_fee_details(
            self.config.transaction_payment, length, weight, multiplier
        )

    def inclusion_fee(self, state: Any, length: int, call: DecodedCall) -> int:
        """`fee_details(...).inclusion_fee`."""
        if not call.call.pays_fee:
            return 0
        return transaction_payment.inclusion_fee(
            self.config.transaction_payment,
            length,
            call.weight,
            transaction_payment.NextFeeMultiplier.get(state),
        )

    def dispatch_info(self, call: DecodedCall) -> DispatchInfo:
        return DispatchInfo(
            call.weight, call.call.dispatch_class, "Yes" if call.call.pays_fee else "No"
        )

    def success_event(self, call: DecodedCall) -> bytes:
        """`RUNTIME_EVENT.encode(ExtrinsicSuccess(dispatch_info(call)))`, encoded once per
        distinct dispatch info (most blocks have a handful)."""
        weight = call.weight
        key = (weight.ref_time, weight.proof_size, call.call.dispatch_class, call.call.pays_fee)
        cache = self._success_events
        encoded = cache.get(key)
        if encoded is None:
            if len(cache) >= SUCCESS_EVENTS_CACHED:
                cache.clear()
            encoded = cache[key] = system.RUNTIME_EVENT.encode(
                system.ExtrinsicSuccess(self.dispatch_info(call))
            )
        return encoded

    # ---- validity -----------------------------------------------------------------------------

    @staticmethod
    def decode_extrinsic(raw: bytes) -> Extrinsic:
        """The extrinsic in `raw`, or InvalidTransaction: "CannotLookup" for a signer other than
        `MultiAddress::Id` (FRAME's `AccountIdLookup` fails on it), else "BadFormat"."""
        try:
            return Extrinsic.decode(raw)
        except UnsupportedSigner as exc:
            raise InvalidTransaction("CannotLookup", str(exc)) from exc
        except CodecError as exc:
            raise InvalidTransaction("BadFormat", str(exc)) from exc

    def decode_call(self, xt: Extrinsic) -> DecodedCall:
        """The extrinsic's call. Call bytes that do not decode (an unknown call, arguments that
        do not parse, calls nested deeper than `MAX_CALL_DEPTH`) make the whole extrinsic
        undecodable, as in Substrate, where the call is part of the extrinsic's type: raises
        InvalidTransaction("BadFormat")."""
        try:
            return self.runtime.decode_call(xt.call)
        except CodecError as exc:
            raise InvalidTransaction("BadFormat", f"call: {exc}") from exc

    def check(
        self,
        state: Any,
        xt: Extrinsic,
        *,
        block_number: int,
        verify: bool = True,
        version: RuntimeVersion | None = None,
        call: DecodedCall | None = None,
        verified_payload: bytes | None = None,
        signature_check: SignatureCheck = verify_signature,
    ) -> CheckedExtrinsic:
        """The signed-extension checks, in FRAME's order, against `state` for `block_number`,
        for a runtime at `version` (default: the one `state` states).

        `state` must have `System.BlockHash` for the mortal birth block (block_number - 1 and
        older). `call`: the extrinsic's call, already decoded. The signature is not verified
        again when its signing payload is `verified_payload` (verified before, by this node),
        else it goes to `signature_check`. Raises InvalidTransaction. Does not write.
        """
        if not xt.signed or xt.signer is None or xt.signature is None or xt.scheme is None:
            return self.check_unsigned(state, xt, block_number=block_number)[0]
        return self.check_signed(
            state,
            xt,
            block_number=block_number,
            verify=verify,
            version=version,
            call=call,
            verified_payload=verified_payload,
            signature_check=signature_check,
        )[0]

    def check_signed(
        self,
        state: Any,
        xt: Extrinsic,
        *,
        block_number: int,
        verify: bool = True,
        version: RuntimeVersion | None = None,
        call: DecodedCall | None = None,
        verified_payload: bytes | None = None,
        signature_check: SignatureCheck = verify_signature,
    ) -> tuple[CheckedExtrinsic, system.AccountInfo]:
        """`check` of a signed extrinsic, and the signer's account as `state` holds it (read
        once, for the nonce and the fee)."""
        if xt.signer is None or xt.signature is None or xt.scheme is None:
            raise InvalidTransaction("BadProof", "the extrinsic is not signed")
        if call is None:
            call = self.decode_call(xt)
        if call.call.dispatch_class == "Mandatory":
            raise InvalidTransaction("Call", f"{call.name} is an inherent")
        who = xt.signer
        # CheckNonZeroSender
        if who == ZERO_ACCOUNT:
            raise InvalidTransaction("BadSigner")
        # CheckWeight (length and weight of a single extrinsic)
        self._check_size(xt, call)
        cfg = self.config
        # CheckMortality / CheckGenesis / CheckSpecVersion / CheckTxVersion -> signature
        payload: bytes | None = None
        if verify:
            genesis_hash = system.BlockHash.get(state, 0)
            birth = xt.era.birth(block_number)
            if birth >= block_number:
                raise InvalidTransaction("AncientBirthBlock", "the birth block is not yet known")
            if not xt.era.is_immortal and block_number - birth > cfg.system.block_hash_count:
                raise InvalidTransaction("AncientBirthBlock")
            birth_hash = genesis_hash if xt.era.is_immortal else system.BlockHash.get(state, birth)
            version = version or self.version_at(state)
            payload = self._signing_payload(xt, version, genesis_hash, birth_hash)
            if payload != verified_payload and not signature_check(
                xt.scheme, xt.signature, payload, who
            ):
                if not xt.era.is_immortal and self._signed_for_older_era(
                    state, xt, block_number, version, genesis_hash
                ):
                    raise InvalidTransaction("Stale", "the mortal era has expired")
                raise InvalidTransaction("BadProof")
        # CheckNonce
        account = system.get_account(state, who)
        if xt.nonce < account.nonce:
            raise InvalidTransaction(
                "Stale", f"nonce {xt.nonce} is below the account's {account.nonce}"
            )
        if xt.nonce > account.nonce + MAX_FUTURE_NONCE_GAP:
            raise InvalidTransaction(
                "Future", f"nonce {xt.nonce} is too far ahead of {account.nonce}"
            )
        # pallet-specific validity (free calls must not fill blocks with failures)
        if call.call.validate is not None:
            reason = call.call.validate(state, cfg, who, block_number, call.args)
            if reason is not None:
                raise InvalidTransaction("Call", reason)
        # ChargeTransactionPayment
        fee = self.inclusion_fee(state, len(xt.raw), call)
        if call.call.pays_fee or xt.tip:
            if account.providers == 0 and account.sufficients == 0:
                raise InvalidTransaction("Payment", "the account does not exist")
            usable = balances.usable_of(
                account.data, cfg.balances.existential_deposit, keep_alive=True
            )
            if usable < fee + xt.tip:
                raise InvalidTransaction("Payment")
        return CheckedExtrinsic(xt, call, fee, call.weight, payload), account

    def _check_size(self, xt: Extrinsic, call: DecodedCall) -> None:
        if len(xt.raw) > self.config.max_extrinsic_length:
            raise InvalidTransaction("ExhaustsResources", "the transaction is too large")
        check_extrinsic_weight(self.block_weights, call.weight, call.call.dispatch_class)

    def check_unsigned(
        self, state: Any, xt: Extrinsic, *, block_number: int
    ) -> tuple[CheckedExtrinsic, UnsignedValidity]:
        """An unsigned, non-inherent extrinsic: valid when its call's `validate_unsigned` hook
        accepts it against `state` for `block_number`. Raises InvalidTransaction."""
        inherent_only = InvalidTransaction(
            "Call", "unsigned transactions are inherents, made by the block author"
        )
        if xt.signed:
            raise InvalidTransaction("BadProof", "a signed transaction is not unsigned")
        call = self.decode_call(xt)
        validator = unsigned_validator(self.config, call)
        if validator is None or call.call.dispatch_class == "Mandatory":
            raise inherent_only
        self._check_size(xt, call)
        verdict = validator.validate_unsigned(state, self.config, block_number, call)
        if isinstance(verdict, str):
            raise InvalidTransaction("Call", verdict)
        if not verdict.provides:
            raise InvalidTransaction("Call", f"{call.name} provides no tag")
        return CheckedExtrinsic(xt, call, 0, call.weight), verdict

    def _signing_payload(
        self, xt: Extrinsic, v: RuntimeVersion, genesis: bytes, birth_hash: bytes
    ) -> bytes:
        return xt.signing_payload_for(v.spec_version, v.transaction_version, genesis, birth_hash)

    def _signed_for_older_era(
        self, state: Any, xt: Extrinsic, block_number: int, v: RuntimeVersion, genesis: bytes
    ) -> bool:
        """Whether a failed signature was valid for the era's previous birth block (expired)."""
        period = xt.era.death(0) - xt.era.birth(0) if not xt.era.is_immortal else 0
        birth = xt.era.birth(block_number) - period
        if period <= 0 or birth < 0:
            return False
        payload = self._signing_payload(xt, v, genesis, system.BlockHash.get(state, birth))
        assert xt.scheme is not None
        assert xt.signature is not None
        assert xt.signer is not None
        return verify_signature(xt.scheme, xt.signature, payload, xt.signer)

    def validate_transaction(
        self, parent_state: Trie | Overlay, parent_hash: bytes, parent_number: int, raw: bytes
    ) -> tuple[ValidTransaction, CheckedExtrinsic]:
        """Pool validation against the best block, as if in the next block (FRAME's
        `validate_transaction` after `initialize_block`)."""
        xt = self.decode_extrinsic(raw)
        state = Overlay(parent_state)
        system.BlockHash.put(state, parent_number, parent_hash)
        number = parent_number + 1
        if not xt.signed:
            checked, verdict = self.check_unsigned(state, xt, block_number=number)
            return (
                ValidTransaction(
                    sender=None,
                    nonce=0,
                    priority=verdict.priority,
                    requires=(),
                    provides=verdict.provides,
                    longevity=max(verdict.longevity, 1),
                    is_ready=True,
                ),
                checked,
            )
        checked = self.check(state, xt, block_number=number)
        assert xt.signer is not None
        nonce = system.get_account(state, xt.signer).nonce
        requires = () if xt.nonce == nonce else (account_tag(xt.signer, xt.nonce - 1),)
        death = xt.era.death(number)
        return (
            ValidTransaction(
                sender=xt.signer,
                nonce=xt.nonce,
                priority=xt.tip,
                requires=requires,
                provides=(account_tag(xt.signer, xt.nonce),),
                longevity=max(death - number, 1),
                is_ready=xt.nonce == nonce,
            ),
            checked,
        )

    # ---- blocks -------------------------------------------------------------------------------

    def begin_block(
        self,
        parent: Trie,
        parent_hash: bytes,
        number: int,
        digest: Sequence[DigestItem],
        *,
        signature_check: SignatureCheck = verify_signature,
    ) -> BlockBuilder:
        return BlockBuilder(
            self, parent, parent_hash, number, digest, signature_check=signature_check
        )

    def dry_run(self, state: Trie, raw: bytes) -> ApplyOutcome:
        """Apply an extrinsic to the post-state of a block, as in that block (its number, its
        consumed weight), and keep nothing (`system_dryRun`, `BlockBuilder_apply_extrinsic`
        through `state_call`). Raises InvalidTransaction."""
        number = self.block_number(state)
        builder = BlockBuilder(self, state, system.ParentHash.get(state), number, (), resume=True)
        return builder.apply(raw)

    def account_nonce(self, state: Any, who: bytes) -> int:
        return system.get_account(state, who).nonce

    def block_number(self, state: Any) -> int:
        """The number of the block whose post-state `state` is."""
        number: int = system.Number.get(state)
        return number


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class ApplyOutcome:
    index: int
    success: bool
    error: DispatchError | None


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltBlock:
    header: Header  # unsealed: the author adds the seal digest
    extrinsics: tuple[bytes, ...]
    nodes: dict[bytes, bytes]  # new trie nodes to persist with the block
    changes: dict[bytes, bytes | None]


class BlockBuilder:
    """Executes one block on top of `parent`. Use: apply/apply_inherent for each extrinsic, then
    finalize(). Throw it away to abandon the block: nothing is written until the node persists
    `BuiltBlock.nodes`.

    The block runs as the runtime version its parent's `:code` states (a `set_code` in it
    takes effect from the next block). `resume=True` continues the block whose post-state
    `parent` is, without initializing one (a dry run)."""

    def __init__(
        self,
        executive: Executive,
        parent: Trie,
        parent_hash: bytes,
        number: int,
        digest: Sequence[DigestItem],
        *,
        resume: bool = False,
        signature_check: SignatureCheck = verify_signature,
    ) -> None:
        self.ex = executive
        self.signature_check = signature_check
        self.runtime = executive.runtime
        self.parent = parent
        self.parent_hash = parent_hash
        self.number = number
        self.digest = tuple(digest)
        self.state = Overlay(parent)
        self.version = executive.version_at(parent)
        self.events: list[bytes] = []  # the block's EventRecords, each encoded once, when deposited
        self.extrinsics: list[bytes] = []
        self.consumed: ConsumedWeight = NO_WEIGHT  # System.BlockWeight
        self.length = 0
        if resume:
            self.consumed = system.BlockWeight.get(parent)
        else:
            self._initialize()

    @property
    def weight(self) -> Weight:
        """The weight the block has consumed so far, all dispatch classes together."""
        return total(self.consumed)

    def _ctx(self, origin: Origin, events: list[Any]) -> Ctx:
        return self.runtime.ctx(self.state, origin, self.number, events)

    def _record(
        self, phase: tuple[str, int | None], events: list[Any], encoded: Sequence[bytes] = ()
    ) -> None:
        self.events.extend(system.encode_event_records(phase, events, encoded))

    def _initialize(self) -> None:
        st = self.state
        cfg = self.runtime.config
        system.Number.put(st, self.number)
        system.ParentHash.put(st, self.parent_hash)
        system.BlockHash.put(st, self.number - 1, self.parent_hash)
        stale = self.number - 1 - cfg.system.block_hash_count
        if stale > 0:
            system.BlockHash.remove(st, stale)
        system.Digest.put(st, {"logs": [_digest_value(d) for d in self.digest]})
        system.Events.kill(st)
        system.EventCount.kill(st)
        system.BlockWeight.kill(st)
        # FRAME registers base_block and the hooks' weights as Mandatory here: both are zero
        # in this runtime (docs/runtime.md), so the block starts with nothing consumed.
        self._run_hooks("on_initialize", ("Initialization", None))

    def _run_hooks(self, name: str, phase: tuple[str, int | None]) -> None:
        """Every pallet's `name` hook, in runtime order; their events are recorded in `phase`."""
        events: list[Any] = []
        ctx = self._ctx(Origin.root(), events)
        for hook in self.runtime.hooks(name):
            try:
                hook(ctx)
            except DispatchError as exc:
                raise InvalidBlock(f"{name} failed: {exc}") from exc
        self._record(phase, events)

    def _room(self, call: DecodedCall, length: int) -> tuple[ConsumedWeight, int]:
        """The block's consumed weight and length with one more extrinsic (FRAME's
        CheckWeight), or InvalidTransaction("ExhaustsResources") if it does not fit."""
        dispatch_class = call.call.dispatch_class
        limits = self.ex.block_weights
        consumed = check_consumed(limits, self.consumed, call.weight, dispatch_class)
        return consumed, check_length(self.ex.block_length, self.length, length, dispatch_class)

    def _dispatch(
        self, origin: Origin, call: DecodedCall
    ) -> tuple[list[Any], DispatchError | None]:
        """Run `call` in its own checkpoint: its events, or the error that discarded its writes
        (and its events)."""
        events: list[Any] = []
        self.state.checkpoint()
        try:
            self.runtime.dispatch(self._ctx(origin, events), call)
        except DispatchError as exc:
            self.state.revert_checkpoint()
            return [], exc
        self.state.commit_checkpoint()
        return events, None

    def _include(
        self,
        raw: bytes,
        call: DecodedCall,
        events: list[Any],
        error: DispatchError | None,
        room: tuple[ConsumedWeight, int],
    ) -> ApplyOutcome:
        """Close an applied extrinsic: its outcome event (ExtrinsicSuccess or ExtrinsicFailed)
        after `events`, recorded under its index; the block's weight and length become `room`
        (from `_room`)."""
        index = len(self.extrinsics)
        if error is None:
            self._record(("ApplyExtrinsic", index), events, (self.ex.success_event(call),))
        else:
            info = self.ex.dispatch_info(call)
            events.append(system.ExtrinsicFailed(error.to_value(), info))
            self._record(("ApplyExtrinsic", index), events)
        self.extrinsics.append(raw)
        self.consumed, self.length = room
        return ApplyOutcome(index, error is None, error)

    def apply_inherent(self, raw: bytes) -> None:
        """An unsigned, mandatory extrinsic made by the author (Timestamp.set)."""
        try:
            xt = Extrinsic.decode(raw)
            call = self.runtime.decode_call(xt.call)
        except CodecError as exc:
            raise InvalidBlock(f"undecodable inherent: {exc}") from exc
        self._apply_inherent(xt, call)

    def _apply_inherent(self, xt: Extrinsic, call: DecodedCall) -> None:
        raw = xt.raw
        if xt.signed or call.call.dispatch_class != "Mandatory":
            raise InvalidBlock(f"{call.name} is not an inherent")
        try:
            room = self._room(call, len(raw))
        except InvalidTransaction as exc:
            raise InvalidBlock(f"inherent {call.name} does not fit: {exc}") from exc
        events, error = self._dispatch(Origin.none(), call)
        if error is not None:
            raise InvalidBlock(f"inherent {call.name} failed: {error}") from error
        self._include(raw, call, events, None, room)

    def apply(self, raw: bytes, *, verified: bool = False) -> ApplyOutcome:
        """Apply a signed extrinsic, or an unsigned one whose pallet validates unsigned calls
        (re-run here). Raises InvalidTransaction (the block may not include it).
        `verified`: skip the checks of era and signature (the caller made them)."""
        return self.apply_extrinsic(self.ex.decode_extrinsic(raw), verify=not verified)

    def apply_checked(self, checked: CheckedExtrinsic) -> ApplyOutcome:
        """Apply an extrinsic checked before (by the pool): its decoded call is reused, and its
        signature is not verified again when its signing payload in this block is the one
        verified. Every state-dependent check runs again. Raises InvalidTransaction."""
        return self.apply_extrinsic(checked.xt, call=checked.call, verified_payload=checked.payload)

    def apply_extrinsic(
        self,
        xt: Extrinsic,
        *,
        verify: bool = True,
        call: DecodedCall | None = None,
        verified_payload: bytes | None = None,
    ) -> ApplyOutcome:
        """`apply` of a decoded extrinsic (`call`: its call, if decoded too)."""
        raw = xt.raw
        if not xt.signed:
            checked, _ = self.ex.check_unsigned(self.state, xt, block_number=self.number)
            room = self._room(checked.call, len(raw))
            call_events, error = self._dispatch(Origin.none(), checked.call)
            return self._include(raw, checked.call, call_events, error, room)
        checked, account = self.ex.check_signed(
            self.state,
            xt,
            block_number=self.number,
            verify=verify,
            version=self.version,
            call=call,
            verified_payload=verified_payload,
            signature_check=self.signature_check,
        )
        room = self._room(checked.call, len(raw))
        who = xt.signer
        assert who is not None
        if xt.nonce != account.nonce:
            raise InvalidTransaction("Future")
        events: list[Any] = []
        # CheckNonce's increment, written with the fee's withdrawal when there is one
        bumped = system.with_nonce(account, account.nonce + 1)
        charged = checked.fee + xt.tip if checked.call.call.pays_fee else xt.tip
        if charged:
            balances.withdraw(
                self._ctx(Origin.signed(who), events),
                who,
                charged,
                keep_alive=True,
                account=(account, bumped),
            )
        else:
            system.Account.put(self.state, system.AccountId(who), bumped)
        call_events, error = self._dispatch(Origin.signed(who), checked.call)
        events.extend(call_events)
        if charged:
            events.append(transaction_payment.TransactionFeePaid(who, charged, xt.tip))
        return self._include(raw, checked.call, events, error, room)

    def finalize(
        self, *, extrinsics_root: Callable[[Sequence[bytes]], bytes] = ordered_root
    ) -> BuiltBlock:
        """Run the on_finalize hooks and seal the state: the header's digest is the block's
        `System.Digest`, the pre-runtime items the block began with and the items the runtime
        deposited (`RuntimeEnvironmentUpdated` after `set_code`). `extrinsics_root`: what
        computes `ordered_root` of the block's extrinsics (an import may have had it computed
        elsewhere meanwhile)."""
        self._run_hooks("on_finalize", ("Finalization", None))
        st = self.state
        system.ExtrinsicCount.put(st, len(self.extrinsics))
        system.BlockWeight.put(st, self.consumed)
        system.put_events(st, self.events)
        digest = tuple(_digest_item(v) for v in system.Digest.get(st)["logs"])
        changes = st.changes()
        root, nodes = self.parent.apply(changes)
        header = Header(
            parent_hash=self.parent_hash,
            number=self.number,
            state_root=root,
            extrinsics_root=extrinsics_root(self.extrinsics),
            digest=digest,
        )
        return BuiltBlock(header, tuple(self.extrinsics), nodes, changes)


class InvalidBlock(ChainError):
    """A block that must not be imported."""


_DIGEST_NAMES = (
    (0, "Other"),
    (4, "Consensus"),
    (5, "Seal"),
    (6, "PreRuntime"),
    (8, "RuntimeEnvironmentUpdated"),
)


def _digest_value(item: DigestItem) -> Any:
    """A digest item as `System.Digest` holds it (a `DIGEST_ITEM` value)."""
    name = next(n for kind, n in _DIGEST_NAMES if kind == item.kind)
    if item.kind == 0:
        return (name, item.data)
    if item.kind == 8:
        return (name, None)
    return (name, (item.engine, item.data))


def _digest_item(value: Any) -> DigestItem:
    """The digest item a `System.Digest` value is (the inverse of `_digest_value`)."""
    name: str = value if isinstance(value, str) else value[0]
    payload: Any = None if isinstance(value, str) else value[1]
    kind = next(k for k, n in _DIGEST_NAMES if n == name)
    if kind == 0:
        return DigestItem.other(bytes(payload))
    if kind == 8:
        return DigestItem.runtime_environment_updated()
    engine, data = payload
    return DigestItem(kind, bytes(engine), bytes(data))


# One extrinsic of a block, decoded once: a pool-checked extrinsic, an inherent with its call,
# or an extrinsic to check and apply.
BlockItem = CheckedExtrinsic | tuple[Extrinsic, DecodedCall] | Extrinsic


def decode_block_extrinsics(
    executive: Executive,
    extrinsics: Sequence[bytes],
    known: Callable[[bytes], CheckedExtrinsic | None] | None = None,
) -> list[BlockItem]:
    """A block's extrinsics, each decoded once; `known(hash)` gives the ones this node checked
    before (its pool's), which are not decoded again. Raises InvalidBlock (undecodable)."""
    items: list[BlockItem] = []
    runtime = executive.runtime
    for raw in extrinsics:
        if known is not None:
            checked = known(blake2_256(raw))
            if checked is not None and checked.xt.raw == raw:
                items.append(checked)
                continue
        try:
            xt = Extrinsic.decode(raw)
        except CodecError as exc:
            raise InvalidBlock(f"undecodable extrinsic: {exc}") from exc
        inherent = None if xt.signed else _inherent_call(runtime, xt)
        items.append(xt if inherent is None else (xt, inherent))
    return items


def signature_jobs(
    executive: Executive, parent: Trie, header: Header, items: Sequence[BlockItem]
) -> list[SignatureJob]:
    """The signature checks executing these items on `parent` will ask for, with the payloads
    they will be asked with (read from the parent state: runtime version, genesis and birth
    block hashes), in block order; not the ones already verified (pool-checked with the same
    payload) nor those whose era is invalid in this block (execution refuses them first). Pure:
    for running the checks ahead of execution, elsewhere."""
    number = header.number

    def block_hash(n: int) -> bytes:  # as `System.BlockHash` reads once the block began
        return header.parent_hash if n == number - 1 else system.BlockHash.get(parent, n)

    version = executive.version_at(parent)
    genesis_hash = block_hash(0)
    jobs: list[SignatureJob] = []
    for item in items:
        if isinstance(item, tuple):  # an inherent
            continue
        xt = item.xt if isinstance(item, CheckedExtrinsic) else item
        if xt.signer is None or xt.signature is None or xt.scheme is None:
            continue
        birth = xt.era.birth(number)
        if xt.era.is_immortal:
            birth_hash = genesis_hash
        elif birth >= number or number - birth > executive.config.system.block_hash_count:
            continue
        else:
            birth_hash = block_hash(birth)
        payload = executive._signing_payload(xt, version, genesis_hash, birth_hash)
        if isinstance(item, CheckedExtrinsic) and item.payload == payload:
            continue
        jobs.append((xt.scheme, xt.signature, payload, xt.signer))
    return jobs


def execute_block(
    executive: Executive,
    parent: Trie,
    header: Header,
    extrinsics: Sequence[bytes],
    *,
    verified: frozenset[bytes] = frozenset(),
    known: Callable[[bytes], CheckedExtrinsic | None] | None = None,
) -> BuiltBlock:
    """Re-execute an imported block and check its roots and digest (`execute_decoded`).

    Extrinsics whose hash is in `verified` skip the checks of era and signature; those that
    `known(hash)` gives (the pool's) are not decoded again, nor their signatures verified again.
    """
    items: list[BlockItem | Unverified] = list(
        decode_block_extrinsics(executive, extrinsics, known)
    )
    if verified:
        items = [
            Unverified(item) if isinstance(item, Extrinsic) and item.hash in verified else item
            for item in items
        ]
    return execute_decoded(executive, parent, header, items)


@dataclasses.dataclass(frozen=True, slots=True)
class Unverified:
    """An extrinsic whose era and signature the caller checked (`execute_block(verified=)`)."""

    xt: Extrinsic


def execute_decoded(
    executive: Executive,
    parent: Trie,
    header: Header,
    items: Sequence[BlockItem | Unverified],
    *,
    signature_check: SignatureCheck = verify_signature,
    extrinsics_root: Callable[[Sequence[bytes]], bytes] = ordered_root,
    settle: Callable[[], bool] | None = None,
) -> BuiltBlock:
    """Re-execute an imported block from its decoded extrinsics (`decode_block_extrinsics`)
    and check its roots and digest. `header` is without its seal. As in FRAME, the block begins
    with its header's pre-runtime digest items, and its header must carry exactly the digest the
    execution gives (those items, then whatever the runtime deposited, such as
    `RuntimeEnvironmentUpdated`). Signatures are checked by `signature_check`, and the
    extrinsics root is `extrinsics_root` of the extrinsics (both: the same results wherever
    they are computed). `settle`: for a `signature_check` that may answer "valid for now"
    (Substrate's batch verification), says at the block's end whether all those were valid;
    when not, the block is executed again with every signature checked inline, so that what
    is refused, and how, is exactly what serial checking gives."""
    try:
        built = _execute_items(executive, parent, header, items, signature_check, extrinsics_root)
    except InvalidBlock:
        if settle is None or settle():
            raise
    else:
        if settle is None or settle():
            return built
    # a signature answered "valid for now" is not: whatever execution made of it, serial
    # checking decides what is refused and how
    return execute_decoded(executive, parent, header, items)


def _execute_items(
    executive: Executive,
    parent: Trie,
    header: Header,
    items: Sequence[BlockItem | Unverified],
    signature_check: SignatureCheck,
    extrinsics_root: Callable[[Sequence[bytes]], bytes],
) -> BuiltBlock:
    pre_runtime = [d for d in header.digest if d.kind == DigestItem.PRE_RUNTIME]
    builder = executive.begin_block(
        parent, header.parent_hash, header.number, pre_runtime, signature_check=signature_check
    )
    for item in items:
        if isinstance(item, tuple):
            builder._apply_inherent(*item)
            continue
        try:
            if isinstance(item, CheckedExtrinsic):
                builder.apply_checked(item)
            elif isinstance(item, Unverified):
                builder.apply_extrinsic(item.xt, verify=False)
            else:
                builder.apply_extrinsic(item)
        except InvalidTransaction as exc:
            xt = item.xt if not isinstance(item, Extrinsic) else item
            raise InvalidBlock(f"extrinsic {xt.hash.hex()} is invalid: {exc}") from exc
    built = builder.finalize(extrinsics_root=extrinsics_root)
    if built.header.digest != header.digest:
        raise InvalidBlock("digest mismatch: the header's digest is not the one execution gives")
    if built.header.extrinsics_root != header.extrinsics_root:
        raise InvalidBlock("extrinsics root mismatch")
    if built.header.state_root != header.state_root:
        raise InvalidBlock(
            f"state root mismatch: header has 0x{header.state_root.hex()}, execution gives "
            f"0x{built.header.state_root.hex()}"
        )
    return built


def _inherent_call(runtime: Runtime[RuntimeConfig], xt: Extrinsic) -> DecodedCall | None:
    """The call of an unsigned extrinsic that is treated as an inherent: one whose pallet does
    not validate unsigned calls (`apply_inherent` rejects it unless its call is Mandatory).
    None for one whose call does not decode (`apply` refuses it as undecodable) or that is a
    `validate_unsigned` transaction."""
    try:
        call = runtime.decode_call(xt.call)
    except CodecError:
        return None
    is_mandatory = call.call.dispatch_class == "Mandatory"
    return call if is_mandatory or unsigned_validator(runtime.config, call) is None else None
