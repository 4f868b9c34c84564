"""Intervals: Wilson's score interval checked against its closed form by hand, never zero-width, close to 95%
coverage; the t-interval over seeds; the two combined for a fixed split."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, t

from selfsup.evaluation.stats import accuracy_interval, accuracy_with_ci, over_seeds, seed_interval, wilson_interval

Z = 1.959963984540054  # the standard normal's 97.5% quantile


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return centre - half, centre + half


def test_all_correct_is_not_zero_width() -> None:
    # 45/45: the bootstrap said [1, 1]; Wilson's lower end is n / (n + z²) = 45 / 48.84 = 0.9213
    low, high = wilson_interval(45, 45)
    assert low == pytest.approx(45 / (45 + Z**2)) and low == pytest.approx(0.9213, abs=1e-4) and high == 1.0
    assert accuracy_interval(np.ones(45)) == pytest.approx((1.0, 0.9213, 1.0), abs=1e-4)


def test_none_correct_matches_the_closed_form() -> None:
    for n in (1, 10, 143):
        low, high = wilson_interval(0, n)
        assert low == 0.0 and high == pytest.approx(Z**2 / (n + Z**2))  # the closed form at p = 0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)  # 3.8415 / 13.8415


@pytest.mark.parametrize(("k", "n"), [(7, 10), (1, 2), (131, 143), (38, 40), (412, 450)])
def test_wilson_matches_the_closed_form(k: int, n: int) -> None:
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-12)
    acc, low, high = accuracy_interval(np.arange(n) < k)
    assert acc == k / n and (low, high) == pytest.approx(_wilson_by_hand(k, n), abs=1e-12)


def test_never_zero_width_and_always_holds_the_accuracy() -> None:
    for n in range(1, 61):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0 and high - low > 0.05, (k, n)


def test_coverage_is_close_to_95_percent() -> None:
    """Exact coverage, summed over the binomial's outcomes: P(low_K <= p <= high_K) for K ~ Binomial(n, p)."""
    coverages = []
    for n in (20, 45, 150):
        intervals = np.array([wilson_interval(k, n) for k in range(n + 1)])
        for p in np.linspace(0.05, 0.95, 19):
            inside = (intervals[:, 0] <= p) & (p <= intervals[:, 1])
            coverages.append(float(binom.pmf(np.arange(n + 1), n, p)[inside].sum()))
    assert 0.94 < np.mean(coverages) < 0.965 and min(coverages) > 0.91


def test_interval_narrows_with_more_samples_and_widens_with_confidence() -> None:
    lo_small, hi_small = wilson_interval(80, 100)
    lo_big, hi_big = wilson_interval(3200, 4000)
    assert hi_big - lo_big < 0.5 * (hi_small - lo_small)
    lo90, hi90 = wilson_interval(180, 300, confidence=0.90)
    lo99, hi99 = wilson_interval(180, 300, confidence=0.99)
    assert hi99 - lo99 > hi90 - lo90


def test_accuracy_with_ci_keys_values_and_bad_input() -> None:
    out = accuracy_with_ci(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]))
    assert set(out) == {"accuracy", "ci_low", "ci_high", "n_test"}
    assert out["accuracy"] == 0.75 and out["n_test"] == 4
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(_wilson_by_hand(3, 4))
    with pytest.raises(ValueError):
        accuracy_with_ci(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        accuracy_interval(np.array([]))
    with pytest.raises(ValueError):
        accuracy_interval(np.array([0, 2]))
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_seed_interval_hand_computed_and_degenerate_for_one_seed() -> None:
    mean, low, high = seed_interval([0.8, 0.9, 1.0])
    half = t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # sample std of 0.8, 0.9, 1.0 is 0.1
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - half) and high == pytest.approx(0.9 + half)
    assert seed_interval([0.7]) == (0.7, 0.7, 0.7)


def test_seed_intervals_shrink_as_seeds_grow() -> None:
    rng = np.random.default_rng(0)
    widths = {}
    for n in (2, 3, 5, 10, 30):
        runs = [seed_interval(rng.normal(0.8, 0.05, size=n)) for _ in range(200)]
        widths[n] = np.mean([high - low for _, low, high in runs])
    assert all(widths[a] > widths[b] for a, b in zip(list(widths)[:-1], list(widths)[1:]))


def test_over_seeds_on_a_fixed_split_keeps_each_side_of_the_wilson_interval() -> None:
    # two seeds both 45/45 on the same test samples: no spread over seeds, Wilson's interval of one of them
    both = over_seeds([1.0, 1.0], [wilson_interval(45, 45)] * 2)
    assert (both["ci_low"], both["ci_high"]) == pytest.approx((45 / (45 + Z**2), 1.0))
    assert over_seeds([1.0, 1.0])["ci_low"] == 1.0  # t alone (a split that changes with the seed) cannot see it
    # by hand: five seeds 0.80 .. 0.84, each interval 0.06 below (on average) and 0.04 above its accuracy
    accuracies = [0.80, 0.81, 0.82, 0.83, 0.84]
    below_each, above_each = [0.05, 0.06, 0.07, 0.06, 0.06], [0.03, 0.05, 0.04, 0.04, 0.04]
    intervals = [(a - d, a + u) for a, d, u in zip(accuracies, below_each, above_each, strict=True)]
    t_half = t.ppf(0.975, 4) * np.std(accuracies, ddof=1) / np.sqrt(5)  # 2.776 * 0.0158 / 2.236 = 0.0196
    row = over_seeds(accuracies, intervals)
    assert row["accuracy"] == pytest.approx(0.82) and row["per_seed"] == accuracies
    assert row["ci_low"] == pytest.approx(0.82 - np.sqrt(t_half**2 + 0.06**2))
    assert row["ci_high"] == pytest.approx(0.82 + np.sqrt(t_half**2 + 0.04**2))
    with pytest.raises(ValueError):
        over_seeds([0.8, 0.9], [(0.7, 0.85)])
