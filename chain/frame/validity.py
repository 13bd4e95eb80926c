"""Transaction validity (Substrate's `sp_runtime::transaction_validity`): why a transaction is
refused, and what an acceptable unsigned transaction provides to the pool."""

from __future__ import annotations

import dataclasses

from chain import ChainError


class InvalidTransaction(ChainError):
    """A transaction that can never (or not now) be included. `kind` is FRAME's variant name."""

    MESSAGES = {
        "Call": "Transaction call is not expected",
        "Payment": "Inability to pay some fees (e.g. account balance too low)",
        "Future": "Transaction will be valid in the future",
        "Stale": "Transaction is outdated",
        "BadProof": "Transaction has a bad signature",
        "AncientBirthBlock": "Transaction has an ancient birth block",
        "ExhaustsResources": "Transaction would exhaust the block limits",
        "BadMandatory": "A call was labelled as mandatory, but resulted in an Error.",
        "MandatoryValidation": "Transaction dispatch is mandatory; "
        "transactions must not be validated.",
        "BadSigner": "Invalid signing address",
        "Custom": "Custom error",
        "CannotLookup": "Could not lookup information required to validate the transaction",
        "BadFormat": "Could not decode the transaction",
    }

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(self.message + (f": {detail}" if detail else ""))

    @property
    def message(self) -> str:
        return self.MESSAGES.get(self.kind, self.kind)


@dataclasses.dataclass(frozen=True, slots=True)
class UnsignedValidity:
    """What a pallet's `validate_unsigned` returns for an acceptable unsigned transaction."""

    priority: int
    provides: tuple[bytes, ...]  # at least one tag: the pool deduplicates unsigned txs by tag
    longevity: int  # blocks
