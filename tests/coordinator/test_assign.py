"""Assignment and verification rules (pure; seeded RNG)."""

from __future__ import annotations

import collections
import random

import pytest

from coordinator.assign import (
    Agreement,
    Candidate,
    Outcome,
    Result,
    build_evidence,
    choose_weighted,
    compare,
    draw_audit,
    judge,
    live_candidates,
)

# chi-square critical values at p = 0.01 by degrees of freedom
CHI2_CRIT_001 = {1: 6.635, 2: 9.210, 3: 11.345, 4: 13.277, 5: 15.086, 6: 16.812}


def cand(i: int, weight: int, *, active: bool = True, last_poll: float | None = 100.0) -> Candidate:
    return Candidate(bytes([i]) * 32, bytes([100 + i]) * 32, weight, active, last_poll)


def chi_square(observed: dict[bytes, int], expected: dict[bytes, float]) -> float:
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def test_choose_weighted_frequencies_match_stake_weights() -> None:
    weights = [20_000, 30_000, 50_000, 100_000, 300_000]
    miners = [cand(i, w * 10**18) for i, w in enumerate(weights)]
    rng = random.Random(1234)
    draws = 10_000
    counts: collections.Counter[bytes] = collections.Counter()
    for _ in range(draws):
        chosen = choose_weighted(miners, rng)
        assert chosen is not None
        counts[chosen.staker] += 1
    total = sum(weights)
    expected = {m.staker: draws * w / total for m, w in zip(miners, weights, strict=True)}
    stat = chi_square(counts, expected)
    try:
        from scipy.stats import chi2  # type: ignore[import-not-found]

        crit = float(chi2.ppf(0.99, len(weights) - 1))
    except ImportError:
        crit = CHI2_CRIT_001[len(weights) - 1]
    assert stat < crit, f"chi-square {stat:.2f} >= {crit} for {dict(counts)}"


def test_choose_weighted_detects_a_biased_draw() -> None:
    """The statistic above has power: uniform draws are far from stake weights."""
    weights = [1, 1, 8]
    rng = random.Random(5)
    counts = collections.Counter(rng.randrange(3) for _ in range(10_000))
    expected = {i: 10_000 * w / 10 for i, w in enumerate(weights)}
    stat = sum((counts[i] - e) ** 2 / e for i, e in expected.items())
    assert stat > CHI2_CRIT_001[2]


def test_inactive_and_silent_miners_are_never_chosen() -> None:
    now, live_s = 1000.0, 30.0
    miners = [
        cand(1, 10**22, last_poll=now - 1),
        cand(2, 10**24, active=False, last_poll=now - 1),  # inactive/suspended, heavy
        cand(3, 10**24, last_poll=now - 31),  # silent
        cand(4, 10**24, last_poll=None),  # never polled
        Candidate(bytes([5]) * 32, b"o" * 32, 10**24, True, now - 100, is_polling=True),
        cand(6, 0, last_poll=now),  # no weight
    ]
    live = live_candidates(miners, now, live_s)
    assert [m.staker[0] for m in live] == [1, 5]
    rng = random.Random(3)
    picked = {choose_weighted(live, rng).staker[0] for _ in range(2000)}  # type: ignore[union-attr]
    assert picked == {1, 5}
    assert live_candidates(miners, now, live_s, exclude={bytes([1]) * 32})[0].staker[0] == 5
    assert choose_weighted([], rng) is None


def test_draw_audit_rate() -> None:
    rng = random.Random(99)
    n = 10_000
    hits = sum(draw_audit(rng, 0.1) for _ in range(n))
    # binomial sd = sqrt(n p (1-p)) = 30; allow 4 sd
    assert abs(hits - 1000) < 120
    assert not any(draw_audit(rng, 0.0) for _ in range(1000))
    assert all(draw_audit(rng, 1.0) for _ in range(1000))


def res(i: int, rh: bytes, dh: bytes = b"d1", phash: int | None = 0) -> Result:
    return Result(bytes([i]) * 32, bytes([50 + i]) * 32, rh, dh, phash)


def test_compare_exact_perceptual_different() -> None:
    assert compare(res(1, b"a"), res(2, b"a"), 10) is Agreement.EXACT
    # same device class: only identical hashes agree, even if they look alike
    assert compare(res(1, b"a", phash=0), res(2, b"b", phash=1), 10) is Agreement.DIFFERENT
    # different device classes: perceptual distance
    assert compare(res(1, b"a", b"d1", 0), res(2, b"b", b"d2", 0b111), 10) is Agreement.PERCEPTUAL
    far = (1 << 64) - 1
    assert compare(res(1, b"a", b"d1", 0), res(2, b"b", b"d2", far), 10) is Agreement.DIFFERENT
    assert compare(res(1, b"a", b"d1", None), res(2, b"b", b"d2", 0), 10) is Agreement.DIFFERENT


def test_judge_single_pair_and_tiebreak() -> None:
    one = judge([res(1, b"a")], 10)
    assert (one.outcome, one.verification) == (Outcome.DECIDED, "unaudited")
    agree = judge([res(1, b"a"), res(2, b"a")], 10)
    assert agree.verification == "exact"
    assert set(agree.majority) == {bytes([1]) * 32, bytes([2]) * 32}
    assert judge([res(1, b"a"), res(2, b"b")], 10).outcome is Outcome.NEED_TIEBREAK
    three = judge([res(1, b"a"), res(2, b"b"), res(3, b"b")], 10)
    assert three.outcome is Outcome.DECIDED
    assert three.minority == (bytes([1]) * 32,)
    assert three.chosen == bytes([2]) * 32
    none = judge([res(1, b"a"), res(2, b"b"), res(3, b"c")], 10)
    assert (none.outcome, none.verification) == (Outcome.FAILED, "failed")
    perceptual = judge([res(1, b"a", b"d1", 0), res(2, b"b", b"d2", 1)], 10)
    assert perceptual.verification == "perceptual"


def test_build_evidence_follows_the_pallet_rules() -> None:
    offender = res(1, b"bad", b"d1")
    same_class = res(2, b"good", b"d1")
    other_a, other_b = res(3, b"good2", b"d2"), res(4, b"good2", b"d2")
    # one witness on the offender's device class
    assert build_evidence(offender, [same_class]) == [same_class.task_id]
    # another device class needs two agreeing witnesses
    assert build_evidence(offender, [other_a]) is None
    assert build_evidence(offender, [other_a, other_b]) == sorted(
        [other_a.task_id, other_b.task_id]
    )
    # perceptual agreement only (different hashes) is no evidence
    assert build_evidence(offender, [res(3, b"x", b"d2"), res(4, b"y", b"d3")]) is None
    # the offender's own hash is never a witness
    assert build_evidence(offender, [res(2, b"bad", b"d1")]) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_choose_weighted_is_deterministic_for_a_seed(seed: int) -> None:
    miners = [cand(i, 10**18 * (i + 1)) for i in range(5)]
    a = [choose_weighted(miners, random.Random(seed)) for _ in range(3)]
    b = [choose_weighted(miners, random.Random(seed)) for _ in range(3)]
    assert a == b
