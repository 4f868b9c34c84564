"""Linear probe: multinomial logistic regression on frozen, standardised embeddings.

The regularisation strength is chosen by stratified K-fold cross-validation on the training
split only, so the test split is used exactly once, for the reported accuracy (the protocol
of e.g. SimCLR, Chen et al. 2020, with C tuned by CV instead of on the test set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed
from joblib import cpu_count as joblib_cpu_count
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from selfsup.errors import SelfsupError

MAX_ITER = 5000
WIDE = 1024  # embeddings wider than this, and wider than the training split is long, are fitted in its span
LARGE = 1_000_000  # training rows x columns from which the CV folds run on two threads, warm-started along C


def _model(C: float, seed: int, standardise: bool, warm: bool) -> Any:
    # warm starts along the C path only where the fits are costly (the training span, LARGE inputs): elsewhere they
    # are cheap, and cold ones keep the figures of earlier releases (lbfgs stops at a tolerance, so a warm start
    # ends at a slightly other point)
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=MAX_ITER, random_state=seed, warm_start=warm)
    return make_pipeline(StandardScaler(), model) if standardise else model


def _set_C(model: Any, C: float) -> Any:
    return model.set_params(**{"logisticregression__C" if hasattr(model, "steps") else "C": C})


def in_training_span(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits standardised with the training split's statistics, as coordinates in the span of its rows.

    An L2-regularised logistic regression's weights lie in the span of its training rows (the gradient of its
    loss is a sum of them, and the penalty only shrinks), and a test row's score is its dot product with them:
    so the model fitted on these ``n`` coordinates is the model fitted on all ``d`` standardised columns (up to
    where the solver stops), at ``n x n`` instead of ``n x d`` cost per step (the representer theorem; Schoelkopf
    et al. 2001). The basis is a thin QR factorisation of the rows (backward-stable; no direction is cut, however
    small: a Gram matrix would square the condition number).
    """
    scaler = StandardScaler().fit(train)
    a, b = scaler.transform(train), scaler.transform(test)
    basis, triangle = np.linalg.qr(a.T)  # a.T = basis @ triangle, basis (d, n) with orthonormal columns
    return triangle.T, b @ basis


def principal_axes(a: np.ndarray, components: int) -> tuple[np.ndarray, float]:
    """The first ``components`` principal axes ``(d, k)`` of the centred rows ``a`` and the share of their variance
    those axes hold: exact, from the eigenvectors of the smaller of the ``n x n`` Gram matrix and the ``d x d``
    scatter matrix, in float64 (for ``n`` rows of ``d >> n`` columns a few times cheaper than a randomised SVD, and
    not approximate). Axes of a zero or round-off eigenvalue are dropped, so ``k`` can be below ``components``."""
    a = np.asarray(a, dtype=np.float64)
    wide = a.shape[1] > a.shape[0]
    values, vectors = np.linalg.eigh(a @ a.T if wide else a.T @ a)
    values, vectors = values[::-1], vectors[:, ::-1]  # descending
    total = float(values.clip(min=0).sum())
    k = int(min(components, (values > values[0] * 1e-14).sum())) if total > 0 else 0
    values, vectors = values[:k], vectors[:, :k]
    # the right singular vectors of a from its left ones: a.T u_i / sigma_i
    axes = a.T @ vectors / np.sqrt(values) if wide else vectors
    return axes, float(values.sum() / total) if total > 0 else 0.0


def in_principal_subspace(train: np.ndarray, test: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Both splits standardised with the training split's statistics, as coordinates on the first ``components``
    principal axes of the standardised training rows (:func:`principal_axes`), and the share of the training variance
    they hold. An orthonormal projection: the L2 penalty is the full model's, restricted to those axes. The test split
    plays no part in the fit."""
    scaler = StandardScaler().fit(train)
    a = scaler.transform(train)
    axes, kept = principal_axes(a, components)
    return a @ axes, scaler.transform(test) @ axes, kept


def _cv_scores(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    Cs: tuple[float, ...],
    folds: int,
    seed: int,
    standardise: bool,
    warm: bool,
) -> list[float]:
    """Mean held-out accuracy of every C (ascending); with ``warm`` (costly fits) each fold is fitted along the C
    path from the previous C's solution (a warm start, as ``LogisticRegressionCV``), and the folds run on two
    threads."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)

    def path(fit: np.ndarray, held: np.ndarray) -> list[float]:
        model, scores = _model(Cs[0], seed, standardise, warm), []
        for C in Cs:
            _set_C(model, C).fit(train_emb[fit], train_y[fit])
            scores.append(float(np.mean(model.predict(train_emb[held]) == train_y[held])))
        return scores

    by_fold = Parallel(n_jobs=2 if warm else 1, prefer="threads")(  # small fits gain nothing from threads
        delayed(path)(fit, held) for fit, held in splitter.split(train_emb, train_y)
    )
    return [float(score) for score in np.mean(by_fold, axis=0)]


def _fit_predict(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    seed: int,
    cv: int,
    Cs: tuple[float, ...],
    components: int | None,
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

    details: dict[str, Any] = {}
    width = train_emb.shape[1]
    reduced = components is not None and width > WIDE and len(train_emb) > components
    in_span = not reduced and width > WIDE and width > len(train_emb)
    standardise = not (in_span or reduced)  # there the rows are standardised once, before the CV
    if reduced:
        assert components is not None
        with threadpool_limits(limits=joblib_cpu_count()):
            train_emb, test_emb, kept = in_principal_subspace(train_emb, test_emb, components)
        details["fitted_in"] = (
            f"the first {train_emb.shape[1]:,} principal components of the {width:,} standardised columns, fitted on the "
            f"training split ({100 * kept:.1f}% of its variance; CV folds use the whole training split's components)"
        )
    elif in_span:
        with threadpool_limits(limits=joblib_cpu_count()):  # one large product: every core helps
            train_emb, test_emb = in_training_span(train_emb, test_emb)
        details["fitted_in"] = (
            f"the span of the {len(train_emb):,} standardised training rows ({train_emb.shape[1]:,} coordinates "
            f"for {width:,} columns: the same model; CV folds standardised with the whole training split's statistics)"
        )
    Cs = tuple(sorted(float(c) for c in Cs))
    folds = min(int(cv), int(counts.min()))
    if len(Cs) == 1 or folds < 2:
        C = Cs[(len(Cs) - 1) // 2]
        model = _model(C, seed, standardise, warm=False).fit(train_emb, train_y)
        return model.predict(test_emb), {"C": C, "cv_accuracy": None, "cv_folds": 0} | details

    warm = not standardise or train_emb.size >= LARGE  # costly fits: warm starts, folds on two threads
    scores = _cv_scores(train_emb, train_y, Cs, folds, seed, standardise, warm)
    best = int(np.argmax(scores))  # first maximum: the smallest C among ties
    model = _model(Cs[best], seed, standardise, warm=False).fit(train_emb, train_y)
    return model.predict(test_emb), {"C": Cs[best], "cv_accuracy": scores[best], "cv_folds": folds} | details


def linear_probe(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    seed: int = 0,
    cv: int = 5,
    Cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0),
    components: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Fit the probe on the training split and predict the test split.

    Returns ``(test_predictions, {"C", "cv_accuracy", "cv_folds"})``. The scaler is refitted
    inside every CV fold and then on the whole training split, except for embeddings wider than ``WIDE`` columns
    and than the training split is long: those are fitted in the span of the standardised training rows
    (:func:`in_training_span`, the same model at a cost that does not grow with the width; ``fitted_in`` says so).
    With ``components`` (the raw-input baselines), embeddings wider than ``WIDE`` columns and with more training rows
    than ``components`` are fitted on their first principal components instead (:func:`in_principal_subspace`, a
    stated reduction whose cost does not grow with the rows either; ``fitted_in`` says so). Folds are reduced to the size
    of the smallest class; with a single candidate C, or fewer than 2 possible folds, CV is
    skipped (``cv_accuracy`` None, ``cv_folds`` 0) and the middle candidate is used. Ties in
    CV accuracy go to the smaller C (stronger regularisation). Above ``TORCH_ABOVE`` training samples
    the probe is :func:`torch_linear_probe` instead (weight decay chosen on a validation split).
    """
    if len(train_emb) > TORCH_ABOVE and len(np.unique(train_y)) > 1 and len(Cs) > 1:
        return torch_linear_probe(train_emb, train_y, test_emb, seed=seed)
    # Single-threaded BLAS/OpenMP: these small solves run 3-10x slower when threads share busy cores.
    with threadpool_limits(limits=1):
        return _fit_predict(train_emb, train_y, test_emb, seed, cv, Cs, components)


TORCH_ABOVE = 5000  # training samples above which the probe is a torch linear head (scikit-learn's CV is slow)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2)


def _torch_fit(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    weight_decays: tuple[float, ...],
    seed: int,
    epochs: int = 100,
    batch_size: int = 1024,
) -> list[torch.nn.Linear]:
    """One softmax head per weight decay, trained side by side on the same batches: their losses are independent,
    so one matrix product serves them all and each head ends as if it had been trained alone (up to float
    rounding)."""
    generator = torch.Generator().manual_seed(seed)
    heads = []
    for _ in weight_decays:
        torch.manual_seed(seed)  # every head starts from the same draw
        heads.append(torch.nn.Linear(x.shape[1], classes))
    optimizer = torch.optim.AdamW(
        [{"params": list(head.parameters()), "weight_decay": decay} for head, decay in zip(heads, weight_decays)],
        lr=1e-2,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            weight = torch.cat([head.weight for head in heads])
            bias = torch.cat([head.bias for head in heads])
            logits = (x[idx] @ weight.T + bias).view(len(idx), len(heads), classes)
            # the sum of the heads' mean losses: each head's gradient is its own fit's
            targets = y[idx, None].expand(len(idx), len(heads))
            loss = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), targets) * len(heads)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return heads


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
    heads = _torch_fit(x[fit], y[fit], len(classes), WEIGHT_DECAYS, seed)
    with torch.no_grad():
        scores = [float((head(x[held]).argmax(1) == y[held]).float().mean()) for head in heads]
    best = int(np.argmax(scores))
    (head,) = _torch_fit(x, y, len(classes), (WEIGHT_DECAYS[best],), seed)
    with torch.no_grad():
        predicted = classes[head(x_test).argmax(1).numpy()]
    return predicted, {
        "solver": "torch linear head (AdamW)",
        "weight_decay": WEIGHT_DECAYS[best],
        "val_accuracy": scores[best],
        "C": None,
        "cv_folds": 0,
    }
