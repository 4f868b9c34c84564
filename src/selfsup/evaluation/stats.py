"""Confidence intervals: Wilson score interval over test samples (Wilson 1927), Student t over seeds.

A single run's accuracy is k correct out of n test samples, a binomial proportion. Its 95% interval is
Wilson's score interval rather than a bootstrap over the test samples: the percentile bootstrap of 45/45
correct is [1, 1] (every resample is all correct), while Wilson's is [0.921, 1]. Wilson's interval has
close to nominal coverage even for small n and proportions near 0 or 1, and is never zero-width for
n >= 1; Clopper-Pearson's exact interval is wider than it needs to be, coverage above 95% (Brown, Cai &
DasGupta 2001, "Interval estimation for a binomial proportion").
"""

from __future__ import annotations

import numpy as np


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """``(low, high)``: Wilson's score interval for ``correct`` successes out of ``n`` (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need n >= 1 and 0 <= correct <= n, got {correct} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"need 0 < confidence < 1, got {confidence}")
    interval = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def accuracy_interval(correct: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(accuracy, low, high)`` for a 0/1 vector of per-sample correctness: the Wilson interval."""
    correct = np.asarray(correct).ravel()
    if correct.size == 0:
        raise ValueError("an accuracy interval needs at least one test sample")
    if not np.isin(correct, (0, 1)).all():
        raise ValueError("correct must hold only 0/1 (or boolean) values")
    k, n = int(correct.astype(np.int64).sum()), int(correct.size)
    return k / n, *wilson_interval(k, n, confidence)


def accuracy_with_ci(y_true: np.ndarray, y_pred: np.ndarray, confidence: float = 0.95) -> dict:
    """Accuracy of ``y_pred`` against ``y_true`` with its 95% Wilson interval over the test samples."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    accuracy, low, high = accuracy_interval(y_true == y_pred, confidence)
    return {"accuracy": accuracy, "ci_low": low, "ci_high": high, "n_test": int(y_true.size)}


def seed_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of per-seed results: the Student-t interval of the mean (degenerate for one seed)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("seed_interval needs at least one value")
    mean = float(values.mean())
    if values.size == 1:
        return mean, mean, mean
    half = float(t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


def over_seeds(accuracies: list[float], sample_intervals: list[tuple[float, float]] | None = None) -> dict:
    """A result row's accuracy fields from per-seed accuracies: the mean, a 95% interval clipped to [0, 1], the values.

    The interval is Student t over seeds. When every seed scored the same test samples (a fixed split),
    the seeds do not see test-sampling uncertainty, so each seed's interval over test samples
    (``sample_intervals``, ``(low, high)`` per seed: Wilson's, asymmetric near 0 and 1) is added in
    quadrature, each side on its own: ``below = sqrt(t_half**2 + mean(accuracy_i - low_i)**2)`` and
    ``above = sqrt(t_half**2 + mean(high_i - accuracy_i)**2)``. So seeds that all score 45/45 give
    [0.921, 1], Wilson's interval of one of them, not a zero-width one.
    """
    mean, low, high = seed_interval(accuracies)
    below = above = (high - low) / 2
    if sample_intervals:
        if len(sample_intervals) != len(accuracies):
            raise ValueError(f"{len(accuracies)} accuracies but {len(sample_intervals)} sample intervals")
        a = np.asarray(accuracies, dtype=np.float64)
        lows, highs = np.asarray(sample_intervals, dtype=np.float64).reshape(-1, 2).T
        below = float(np.sqrt(below**2 + np.mean(a - lows) ** 2))
        above = float(np.sqrt(above**2 + np.mean(highs - a) ** 2))
    return {
        "accuracy": mean,
        "ci_low": max(0.0, mean - below),
        "ci_high": min(1.0, mean + above),
        "per_seed": list(accuracies),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """``counts[true][predicted]`` over the test samples (labels are class indices)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts.tolist()
