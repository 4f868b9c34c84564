"""Confidence intervals: percentile bootstrap over test samples (Efron 1979), Student t over seeds."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    correct: np.ndarray,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Return ``(accuracy, low, high)`` for a 0/1 vector of per-sample correctness.

    Resampling n test samples with replacement from a 0/1 vector draws the number of correct
    ones from Binomial(n, accuracy), so the resampled accuracies are drawn from that
    distribution directly: the same percentile bootstrap, in O(n_resamples) memory.
    """
    correct = np.asarray(correct).ravel()
    if correct.size == 0:
        raise ValueError("bootstrap_ci needs at least one test sample")
    if not np.isin(correct, (0, 1)).all():
        raise ValueError("correct must hold only 0/1 (or boolean) values")
    if not 0.0 < confidence < 1.0 or n_resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and n_resamples >= 1, got {confidence}, {n_resamples}")
    n = correct.size
    accuracy = float(correct.astype(np.float64).mean())
    rng = np.random.default_rng(seed)
    resampled = rng.binomial(n, accuracy, size=n_resamples) / n
    alpha = 1.0 - confidence
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return accuracy, float(low), float(high)


def accuracy_with_ci(y_true: np.ndarray, y_pred: np.ndarray, **kw) -> dict:
    """Accuracy of ``y_pred`` against ``y_true`` with its bootstrap interval (``kw`` → ``bootstrap_ci``)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    accuracy, low, high = bootstrap_ci(y_true == y_pred, **kw)
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


def over_seeds(accuracies: list[float], sample_half_widths: list[float] | None = None) -> dict:
    """A result row's accuracy fields from per-seed accuracies: the mean, a 95% interval clipped to [0, 1], the values.

    The interval is Student t over seeds. When every seed scored the same test samples (a fixed split),
    the seeds do not see test-sampling uncertainty, so ``sample_half_widths`` (each seed's interval over
    test samples) are added in quadrature: ``half = sqrt(t_half**2 + mean(sample_half)**2)``.
    """
    mean, low, high = seed_interval(accuracies)
    half = (high - low) / 2
    if sample_half_widths:
        half = float(np.sqrt(half**2 + np.mean(sample_half_widths) ** 2))
    return {
        "accuracy": mean,
        "ci_low": max(0.0, mean - half),
        "ci_high": min(1.0, mean + half),
        "per_seed": list(accuracies),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """``counts[true][predicted]`` over the test samples (labels are class indices)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts.tolist()
