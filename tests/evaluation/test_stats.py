from __future__ import annotations

import numpy as np
import pytest

from selfsup.evaluation.stats import accuracy_with_ci, bootstrap_ci


def _vector(n: int, accuracy: float) -> np.ndarray:
    v = np.zeros(n, dtype=bool)
    v[: round(n * accuracy)] = True
    return v


def test_all_correct_and_all_wrong_are_degenerate():
    assert bootstrap_ci(np.ones(50)) == (1.0, 1.0, 1.0)
    assert bootstrap_ci(np.zeros(50)) == (0.0, 0.0, 0.0)


def test_interval_contains_the_mean_and_matches_the_exact_bootstrap():
    correct = _vector(200, 0.7)
    acc, low, high = bootstrap_ci(correct, n_resamples=4000)
    assert acc == pytest.approx(0.7)
    assert low < acc < high
    # Brute-force percentile bootstrap (resampling indices) gives about the same interval.
    rng = np.random.default_rng(1)
    means = correct[rng.integers(0, 200, size=(4000, 200))].mean(axis=1)
    ref_low, ref_high = np.quantile(means, [0.025, 0.975])
    assert low == pytest.approx(ref_low, abs=0.015)
    assert high == pytest.approx(ref_high, abs=0.015)


def test_interval_narrows_with_more_samples():
    _, lo_small, hi_small = bootstrap_ci(_vector(100, 0.8))
    _, lo_big, hi_big = bootstrap_ci(_vector(4000, 0.8))
    assert hi_big - lo_big < 0.5 * (hi_small - lo_small)


def test_deterministic_given_seed_and_confidence_widens():
    v = _vector(300, 0.6)
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3)
    _, lo90, hi90 = bootstrap_ci(v, confidence=0.90)
    _, lo99, hi99 = bootstrap_ci(v, confidence=0.99)
    assert hi99 - lo99 > hi90 - lo90


def test_accuracy_with_ci_keys_and_values():
    out = accuracy_with_ci(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]))
    assert set(out) == {"accuracy", "ci_low", "ci_high", "n_test"}
    assert out["accuracy"] == 0.75 and out["n_test"] == 4
    assert out["ci_low"] <= 0.75 <= out["ci_high"]
    with pytest.raises(ValueError):
        accuracy_with_ci(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]))


def test_seed_interval_hand_computed_and_degenerate_for_one_seed() -> None:
    from scipy.stats import t

    from selfsup.evaluation.stats import seed_interval

    mean, low, high = seed_interval([0.8, 0.9, 1.0])
    half = t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # sample std of 0.8, 0.9, 1.0 is 0.1
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - half) and high == pytest.approx(0.9 + half)
    assert seed_interval([0.7]) == (0.7, 0.7, 0.7)


def test_seed_intervals_shrink_as_seeds_grow() -> None:
    from selfsup.evaluation.stats import seed_interval

    rng = np.random.default_rng(0)
    widths = {}
    for n in (2, 3, 5, 10, 30):
        runs = [seed_interval(rng.normal(0.8, 0.05, size=n)) for _ in range(200)]
        widths[n] = np.mean([high - low for _, low, high in runs])
    assert all(widths[a] > widths[b] for a, b in zip(list(widths)[:-1], list(widths)[1:]))
