"""The Registry pallet as the daemons read it.

`Registration` is one entry of `Registry.Miners` or `Registry.Coordinators` (the same shape:
operator key, status, own stake, votes and the `info` texts); `OperatorRole` is
`Registry.OperatorOf(operator)`, the registration an operator (hot) key serves. The `from_value`
constructors take what substrate-interface decodes (SS58 strings, texts as UTF-8 or 0x-hex).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from chainclient.accounts import account_id


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    """A registered miner or coordinator, keyed by its staker account."""

    staker: bytes
    operator: bytes
    status: str  # Active | Inactive | Suspended
    own_stake: int
    votes: int
    name: str = ""
    url: str = ""
    gpu_model: str = ""

    @property
    def weight(self) -> int:
        """What assignment and polling weigh it by: own stake plus votes."""
        return self.own_stake + self.votes

    @property
    def is_active(self) -> bool:
        return self.status == "Active"

    @classmethod
    def from_value(cls, staker: str | bytes, value: dict[str, Any]) -> Registration:
        info = value.get("info") or {}
        return cls(
            staker=account_id(staker),
            operator=account_id(value["operator"]),
            status=str(value["status"]),
            own_stake=int(value["own_stake"]),
            votes=int(value["votes"]),
            name=text(info.get("name")),
            url=text(info.get("url")),
            gpu_model=text(info.get("gpu_model")),
        )


MINER = "Miner"  # the roles of Registry.OperatorOf
COORDINATOR = "Coordinator"


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorRole:
    """The registration an operator key serves."""

    role: str  # Miner | Coordinator
    staker: bytes

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> OperatorRole:
        return cls(role=str(value["role"]), staker=account_id(value["staker"]))


def text(value: object) -> str:
    """A Vec<u8> field as text (substrate-interface answers UTF-8 text, else 0x-hex)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(errors="replace")
    out = "" if value is None else str(value)
    if out.startswith("0x"):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(out[2:]).decode(errors="replace")
    return out
