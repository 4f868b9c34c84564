"""Supervised baselines that a practitioner of a modality would compare pre-training against."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

MAX_NATIVE_CATEGORIES = 254  # HistGradientBoosting's limit for native categorical splits


def gradient_boosting(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    categorical: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """scikit-learn's HistGradientBoostingClassifier on raw table features, default hyperparameters.

    ``categorical`` marks columns holding category codes (split natively, as LightGBM does); the
    defaults are not tuned, so no test data is used for selection. Returns predictions and details.
    """
    if categorical is not None:
        small = train_x[:, categorical].max(axis=0, initial=0) < MAX_NATIVE_CATEGORIES if categorical.any() else []
        categorical = categorical.copy()
        categorical[np.flatnonzero(categorical)[~np.asarray(small, dtype=bool)]] = False
    model = HistGradientBoostingClassifier(
        categorical_features=categorical if categorical is not None and categorical.any() else None, random_state=seed
    )
    model.fit(train_x, train_y)
    details = {
        "model": "HistGradientBoostingClassifier (scikit-learn defaults)",
        "categorical_columns": int(categorical.sum()) if categorical is not None else 0,
        "iterations": int(model.n_iter_),
    }
    return model.predict(test_x), details
