"""Amounts of CAI: people write CAI ("0.1"), the chain counts planck (10^-18 CAI, u128).

Decimal text only, never floats: 0.1 CAI is exactly 100000000000000000 planck.
"""

from __future__ import annotations

import decimal

DECIMALS = 18
PLANCK_PER_CAI = 10**DECIMALS
U128_MAX = 2**128 - 1
_EXACT = decimal.Context(prec=100, traps=[decimal.Inexact, decimal.InvalidOperation])


def parse_cai(text: str | int | decimal.Decimal) -> int:
    """Planck of a CAI amount written in decimal ("0.1", "2", "1e-2"); ValueError when it is not
    a non-negative number with at most 18 decimals that fits a u128."""
    if isinstance(text, bool):
        raise ValueError(f"not an amount of CAI: {text!r}")
    try:
        value = decimal.Decimal(text.strip() if isinstance(text, str) else text)
    except decimal.InvalidOperation as exc:
        raise ValueError(f"not an amount of CAI: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative amount of CAI: {text!r}")
    if value.adjusted() > 60:
        raise ValueError(f"{text!r} CAI does not fit a u128 of planck")
    planck = value.scaleb(DECIMALS, _EXACT)
    if planck != planck.to_integral_value():
        raise ValueError(f"{text!r}: at most {DECIMALS} decimals (1 planck = 10^-18 CAI)")
    out = int(planck)
    if out > U128_MAX:
        raise ValueError(f"{text!r} CAI does not fit a u128 of planck")
    return out


def format_cai(planck: int) -> str:
    """CAI in decimal, without trailing zeros: 100000000000000000 -> "0.1", 2*10^18 -> "2"."""
    whole, frac = divmod(planck, PLANCK_PER_CAI)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{DECIMALS}d}".rstrip("0")
