"""Label efficiency: the linear probe trained on 1%, 10% and 100% of the training labels.

Each fraction is a stratified subsample of the training split (at least one sample per class), drawn
with the seed; the probe (C by cross-validation on that subsample only, see ``linear.py``) is scored
on the whole test split, so the points of the curve are comparable.
"""

from __future__ import annotations

import numpy as np

from selfsup.evaluation.linear import linear_probe
from selfsup.evaluation.stats import accuracy_with_ci

FRACTIONS = (0.01, 0.1, 1.0)


def label_subset(train_y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of the labels, at least one per class, sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(train_y):
        idx = np.flatnonzero(train_y == c)
        n = max(1, round(fraction * len(idx)))
        chosen.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    return np.sort(np.concatenate(chosen))


def label_efficiency(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    test_y: np.ndarray,
    fractions: tuple[float, ...] = FRACTIONS,
    seed: int = 0,
    components: int | None = None,
) -> list[dict]:
    """One row per fraction: ``protocol`` ``"linear@1%"``, the accuracy with its Wilson CI, details; ``components``
    as :func:`linear_probe` takes it (the raw input's principal components)."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    rows = []
    for fraction in fractions:
        idx = label_subset(train_y, fraction, seed)
        predicted, details = linear_probe(
            np.asarray(train_emb)[idx], train_y[idx], test_emb, seed=seed, components=components
        )
        result = accuracy_with_ci(test_y, predicted)
        rows.append(
            {
                "protocol": f"linear@{fraction:.0%}",
                **result,
                "n_train": len(idx),
                "details": details | {"label_fraction": fraction, "n_labels": len(idx)},
            }
        )
    return rows
