"""Pure assignment rules: which miners are live, and who gets a task (stake-weighted).

Nothing here does I/O or reads a clock; randomness comes from an injected `random.Random`.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
from collections.abc import Collection, Iterable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A registered miner as the assignment sees it."""

    staker: bytes
    operator: bytes
    weight: int  # own stake + votes
    is_active: bool  # Registry status == Active
    last_poll: float | None  # monotonic seconds of its last poll, None if never
    is_polling: bool = False  # a long-poll is open right now


def live_candidates(
    miners: Iterable[Candidate], now: float, live_s: float, exclude: Collection[bytes] = ()
) -> list[Candidate]:
    """Active miners with weight that poll now or polled within `live_s` seconds, minus `exclude`
    (staker accounts). Sorted by staker so a seeded draw does not depend on dict order."""
    out = [
        m
        for m in miners
        if m.is_active
        and m.weight > 0
        and m.staker not in exclude
        and (m.is_polling or (m.last_poll is not None and now - m.last_poll <= live_s))
    ]
    out.sort(key=lambda m: m.staker)
    return out


def choose_weighted(candidates: Sequence[Candidate], rng: random.Random) -> Candidate | None:
    """One candidate at random with probability weight / total weight (exact integer draw)."""
    if not candidates:
        return None
    cumulative = list(itertools.accumulate(c.weight for c in candidates))
    total = cumulative[-1]
    if total <= 0:
        return None
    point = rng.randrange(total)
    return candidates[bisect.bisect_right(cumulative, point)]
