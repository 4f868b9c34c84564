"""Linear probe: multinomial logistic regression on frozen, standardised embeddings.

The regularisation strength is chosen by stratified K-fold cross-validation on the training
split only, so the test split is used exactly once, for the reported accuracy (the protocol
of e.g. SimCLR, Chen et al. 2020, with C tuned by CV instead of on the test set).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from selfsup.errors import SelfsupError

MAX_ITER = 5000


def _model(C: float, seed: int):
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, solver="lbfgs", max_iter=MAX_ITER, random_state=seed),
    )


def _fit_predict(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, seed: int, cv: int, Cs: tuple[float, ...]
) -> tuple[np.ndarray, dict]:
    train_emb = np.asarray(train_emb, dtype=np.float64).reshape(len(train_emb), -1)
    test_emb = np.asarray(test_emb, dtype=np.float64).reshape(len(test_emb), -1)
    train_y = np.asarray(train_y)
    if len(train_emb) != len(train_y):
        raise ValueError(f"train_emb has {len(train_emb)} rows but train_y has {len(train_y)}")
    if not Cs:
        raise ValueError("Cs must hold at least one value")
    if len(train_emb) == 0:
        raise SelfsupError("the linear probe needs at least one labelled training embedding.")
    classes, counts = np.unique(train_y, return_counts=True)
    if len(classes) < 2:
        # A single class: nothing to learn, every prediction is that class.
        return np.full(len(test_emb), classes[0]), {"C": None, "cv_accuracy": None, "cv_folds": 0}

    Cs = tuple(sorted(float(c) for c in Cs))
    folds = min(int(cv), int(counts.min()))
    if len(Cs) == 1 or folds < 2:
        C = Cs[(len(Cs) - 1) // 2]
        model = _model(C, seed).fit(train_emb, train_y)
        return model.predict(test_emb), {"C": C, "cv_accuracy": None, "cv_folds": 0}

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = [
        float(np.mean(cross_val_score(_model(C, seed), train_emb, train_y, cv=splitter, scoring="accuracy")))
        for C in Cs
    ]
    best = int(np.argmax(scores))  # first maximum: the smallest C among ties
    model = _model(Cs[best], seed).fit(train_emb, train_y)
    return model.predict(test_emb), {"C": Cs[best], "cv_accuracy": scores[best], "cv_folds": folds}


def linear_probe(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    seed: int = 0,
    cv: int = 5,
    Cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0),
) -> tuple[np.ndarray, dict]:
    """Fit the probe on the training split and predict the test split.

    Returns ``(test_predictions, {"C", "cv_accuracy", "cv_folds"})``. The scaler is refitted
    inside every CV fold and then on the whole training split. Folds are reduced to the size
    of the smallest class; with a single candidate C, or fewer than 2 possible folds, CV is
    skipped (``cv_accuracy`` None, ``cv_folds`` 0) and the middle candidate is used. Ties in
    CV accuracy go to the smaller C (stronger regularisation).
    """
    # Single-threaded BLAS/OpenMP: these small solves run 3-10x slower when threads share busy cores.
    with threadpool_limits(limits=1):
        return _fit_predict(train_emb, train_y, test_emb, seed, cv, Cs)
