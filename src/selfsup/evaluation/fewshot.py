"""Few-shot evaluation on frozen embeddings: k-shot episodes repeated over random draws.

Each episode draws ``k`` training samples per class, classifies every test sample by its nearest
class centroid (cosine, on L2-normalised embeddings: SimpleShot, Wang et al. 2019) and scores the
whole test split. The result is the mean over episodes with a 95% interval of that mean: Student t
over the episodes (about ``1.96 * std / sqrt(episodes)``, as few-shot papers report it), combined in
quadrature with the episodes' Wilson intervals over the test samples, which every episode shares
(``stats.over_seeds``), so an interval is never zero-width when every episode scores 100%.
"""

from __future__ import annotations

import numpy as np

from selfsup.errors import SelfsupError
from selfsup.evaluation.stats import over_seeds, wilson_interval

SHOTS = (1, 5, 10)
EPISODES = 100


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def few_shot(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    test_y: np.ndarray,
    shots: tuple[int, ...] = SHOTS,
    episodes: int = EPISODES,
    seed: int = 0,
) -> list[dict]:
    """One row per ``k`` in ``shots``: ``protocol`` ``"{k}-shot"``, mean accuracy, 95% interval, details."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    classes = np.unique(train_y)
    smallest = min(int((train_y == c).sum()) for c in classes)
    if max(shots) > smallest:
        raise SelfsupError(
            f"{max(shots)}-shot episodes need {max(shots)} training samples per class, but a class "
            f"has {smallest}; choose fewer shots."
        )
    train_n, test_n = normalise(train_emb), normalise(test_emb)
    by_class = [np.flatnonzero(train_y == c) for c in classes]
    rng = np.random.default_rng(seed)
    rows = []
    for k in shots:
        correct = np.empty(episodes, dtype=np.int64)
        for e in range(episodes):
            centroids = np.stack([train_n[rng.choice(idx, size=k, replace=False)].mean(axis=0) for idx in by_class])
            predicted = classes[np.argmax(test_n @ normalise(centroids).T, axis=1)]
            correct[e] = int((predicted == test_y).sum())
        wilson = {c: wilson_interval(c, len(test_y)) for c in np.unique(correct).tolist()}
        summary = over_seeds((correct / len(test_y)).tolist(), [wilson[c] for c in correct.tolist()])
        rows.append(
            {
                "protocol": f"{k}-shot",
                "accuracy": summary["accuracy"],
                "ci_low": summary["ci_low"],
                "ci_high": summary["ci_high"],
                "n_test": len(test_y),
                "details": {"shots": k, "episodes": episodes, "classifier": "nearest centroid (cosine)"},
            }
        )
    return rows
