"""Accuracy with a percentile-bootstrap confidence interval over test samples (Efron 1979)."""

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
