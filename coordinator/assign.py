"""Pure assignment and verification rules: who gets a task, whether it is audited, how results
are compared, who is in the majority, and which witnesses make on-chain evidence.

Nothing here does I/O or reads a clock; randomness comes from an injected `random.Random`.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import itertools
import random
from collections.abc import Collection, Iterable, Sequence

MAX_WITNESSES = 4  # Tasks.report_invalid_result takes at most 4 witnesses


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


def draw_audit(rng: random.Random, rate: float) -> bool:
    """Whether a new task also gets an audit copy (probability `rate`)."""
    return rate > 0 and rng.random() < rate


# ---- verification ---------------------------------------------------------------------------


class Agreement(enum.Enum):
    EXACT = "exact"
    PERCEPTUAL = "perceptual"
    DIFFERENT = "different"


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One miner's result for a spec, as committed on chain (hashes) and uploaded (phash)."""

    task_id: bytes
    miner: bytes
    result_hash: bytes
    device_hash: bytes
    phash: int | None  # 64-bit dHash of the decoded image; None if it could not be decoded


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def compare(a: Result, b: Result, threshold: int) -> Agreement:
    """Same device class: outputs are deterministic, so only equal hashes agree. Different
    classes: equal bytes agree exactly, otherwise a perceptual distance within `threshold`."""
    if a.result_hash == b.result_hash:
        return Agreement.EXACT
    if a.device_hash == b.device_hash:
        return Agreement.DIFFERENT
    if a.phash is None or b.phash is None:
        return Agreement.DIFFERENT
    return Agreement.PERCEPTUAL if hamming(a.phash, b.phash) <= threshold else Agreement.DIFFERENT


class Outcome(enum.Enum):
    DECIDED = "decided"
    NEED_TIEBREAK = "need_tiebreak"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    verification: str  # exact | perceptual | unaudited | failed ("" while undecided)
    majority: tuple[bytes, ...] = ()  # task ids to accept
    minority: tuple[bytes, ...] = ()  # task ids to reject (and report when evidence allows)
    chosen: bytes | None = None  # the task whose image the app gets


def judge(results: Sequence[Result], threshold: int) -> Verdict:
    """Decide on one spec's results (first = the primary's). One result: unaudited. Two that
    agree: both accepted. Two that differ: a third miner is needed. Three or more: the results
    that agree with at least one other form the majority, the rest the minority; when none
    agree, verification failed (nobody is penalised)."""
    if not results:
        raise ValueError("judge needs at least one result")
    if len(results) == 1:
        only = results[0].task_id
        return Verdict(Outcome.DECIDED, "unaudited", (only,), (), only)
    pairs = {
        (i, j): compare(results[i], results[j], threshold)
        for i, j in itertools.combinations(range(len(results)), 2)
    }
    agreeing = {k: v for k, v in pairs.items() if v is not Agreement.DIFFERENT}
    in_majority = sorted({i for pair in agreeing for i in pair})
    if not in_majority:
        if len(results) == 2:
            return Verdict(Outcome.NEED_TIEBREAK, "")
        ids = tuple(r.task_id for r in results)
        return Verdict(Outcome.FAILED, "failed", ids, (), results[0].task_id)
    minority = [i for i in range(len(results)) if i not in in_majority]
    chosen = in_majority[0]  # the primary's result when it agrees with anyone
    exact = any(v is Agreement.EXACT and chosen in pair for pair, v in agreeing.items())
    return Verdict(
        Outcome.DECIDED,
        "exact" if exact else "perceptual",
        tuple(results[i].task_id for i in in_majority),
        tuple(results[i].task_id for i in minority),
        results[chosen].task_id,
    )


def build_evidence(offender: Result, majority: Sequence[Result]) -> list[bytes] | None:
    """Witnesses for Tasks.report_invalid_result, following the pallet's rules: witnesses agree
    on one result hash from one device class and differ from the offender; one witness is
    enough on the offender's device class, otherwise two are needed; all from distinct miners.
    None when the majority cannot make such evidence (e.g. it agrees only perceptually)."""
    groups: dict[tuple[bytes, bytes], list[Result]] = {}
    for r in majority:
        if r.result_hash != offender.result_hash and r.miner != offender.miner:
            groups.setdefault((r.result_hash, r.device_hash), []).append(r)
    best: list[bytes] | None = None
    for (_, device), members in sorted(groups.items()):
        distinct: dict[bytes, Result] = {}
        for m in members:
            distinct.setdefault(m.miner, m)
        ids = sorted(m.task_id for m in distinct.values())[:MAX_WITNESSES]
        if device == offender.device_hash:
            return ids[:1]
        if len(ids) >= 2 and best is None:
            best = ids
    return best
