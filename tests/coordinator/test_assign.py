"""Assignment rules (pure; seeded RNG)."""

from __future__ import annotations

import collections
import random

import pytest

from coordinator.assign import Candidate, choose_weighted, live_candidates

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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_choose_weighted_is_deterministic_for_a_seed(seed: int) -> None:
    miners = [cand(i, 10**18 * (i + 1)) for i in range(5)]
    a = [choose_weighted(miners, random.Random(seed)) for _ in range(3)]
    b = [choose_weighted(miners, random.Random(seed)) for _ in range(3)]
    assert a == b
