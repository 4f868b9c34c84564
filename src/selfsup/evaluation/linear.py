"""Linear probe: multinomial logistic regression on frozen, standardised embeddings.

The regularisation strength is chosen by stratified K-fold cross-validation on the training
split only, so the test split is used exactly once, for the reported accuracy (the protocol
of e.g. SimCLR, Chen et al. 2020, with C tuned by CV instead of on the test set).
"""

from __future__ import annotations

import numpy as np
import torch
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
    CV accuracy go to the smaller C (stronger regularisation). Above ``TORCH_ABOVE`` training samples
    the probe is :func:`torch_linear_probe` instead (weight decay chosen on a validation split).
    """
    if len(train_emb) > TORCH_ABOVE and len(np.unique(train_y)) > 1 and len(Cs) > 1:
        return torch_linear_probe(train_emb, train_y, test_emb, seed=seed)
    # Single-threaded BLAS/OpenMP: these small solves run 3-10x slower when threads share busy cores.
    with threadpool_limits(limits=1):
        return _fit_predict(train_emb, train_y, test_emb, seed, cv, Cs)


TORCH_ABOVE = 5000  # training samples above which the probe is a torch linear head (scikit-learn's CV is slow)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2)


def _torch_fit(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    weight_decay: float,
    seed: int,
    epochs: int = 100,
    batch_size: int = 1024,
) -> torch.nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return head


def torch_linear_probe(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """A softmax linear head trained with AdamW on standardised embeddings, for large training sets.

    The weight decay is chosen on a stratified 10% validation split of the training split; the head is
    then refitted on the whole training split with it. The test split is used once.
    """
    from sklearn.model_selection import train_test_split

    train_y = np.asarray(train_y)
    classes, y_idx = np.unique(train_y, return_inverse=True)
    scaler = StandardScaler().fit(train_emb)
    x = torch.tensor(scaler.transform(train_emb), dtype=torch.float32)
    x_test = torch.tensor(scaler.transform(test_emb), dtype=torch.float32)
    y = torch.tensor(y_idx)
    fit, held = train_test_split(np.arange(len(y)), test_size=0.1, stratify=y_idx, random_state=seed)
    scores = []
    for decay in WEIGHT_DECAYS:
        head = _torch_fit(x[fit], y[fit], len(classes), decay, seed)
        with torch.no_grad():
            scores.append(float((head(x[held]).argmax(1) == y[held]).float().mean()))
    best = int(np.argmax(scores))
    head = _torch_fit(x, y, len(classes), WEIGHT_DECAYS[best], seed)
    with torch.no_grad():
        predicted = classes[head(x_test).argmax(1).numpy()]
    return predicted, {
        "solver": "torch linear head (AdamW)",
        "weight_decay": WEIGHT_DECAYS[best],
        "val_accuracy": scores[best],
        "C": None,
        "cv_folds": 0,
    }
