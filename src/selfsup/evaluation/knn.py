"""Weighted k-nearest-neighbour classification on frozen embeddings.

Cosine similarity, each of the k neighbours votes for its class with weight exp(sim / T)
(Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination";
the protocol DINO, Caron et al. 2021, reports with k=20, T=0.07).
"""

from __future__ import annotations

import numpy as np

from selfsup.errors import SelfsupError

# similarity entries per block of queries (32 MiB in float32): memory holds one block of the (queries x bank)
# matrix, never the whole of it, so any number of queries fits; the bank's normalised embeddings are held whole
CHUNK_ENTRIES = 1 << 23


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_predict(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    exclude_self: bool = False,
    chunk_entries: int = CHUNK_ENTRIES,
) -> np.ndarray:
    """Predict a label for every row of ``test_emb`` by a similarity-weighted kNN vote.

    ``k`` is clipped to the number of usable training points. With ``exclude_self`` the test
    set must be the training set itself, and each point's own entry is left out
    (leave-one-out). Ties go to the smallest label. Queries are scored in blocks of about ``chunk_entries``
    similarities (at least one query a block), with the same result for any block size.
    """
    train_y = np.asarray(train_y)
    if len(train_emb) != len(train_y):
        raise ValueError(f"train_emb has {len(train_emb)} rows but train_y has {len(train_y)}")
    if exclude_self and len(test_emb) != len(train_emb):
        raise ValueError("exclude_self needs test_emb to be train_emb (same number of rows)")
    if k < 1 or temperature <= 0:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    n_train = len(train_emb)
    k = min(k, n_train - 1 if exclude_self else n_train)
    if k < 1:
        raise SelfsupError(f"kNN needs at least {2 if exclude_self else 1} training embeddings, got {n_train}.")

    classes, y_idx = np.unique(train_y, return_inverse=True)
    train_n = _normalize(train_emb)
    test_n = _normalize(test_emb)
    preds = np.empty(len(test_n), dtype=np.int64)
    chunk = max(1, chunk_entries // n_train)
    for start in range(0, len(test_n), chunk):
        sim = test_n[start : start + chunk] @ train_n.T
        rows = np.arange(len(sim))
        if exclude_self:
            sim[rows, start + rows] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1).astype(np.float64)
        # Subtracting the row maximum leaves the vote ranking unchanged and avoids overflow.
        weights = np.exp((top_sim - top_sim.max(axis=1, keepdims=True)) / temperature)
        votes = np.zeros((len(sim), len(classes)), dtype=np.float64)
        np.add.at(votes, (np.repeat(rows, k), y_idx[top].ravel()), weights.ravel())
        preds[start : start + len(sim)] = votes.argmax(axis=1)
    return classes[preds]


K_CANDIDATES = (1, 3, 5, 10, 20, 50, 100)


def _correct_by_k(
    train_n: np.ndarray,
    train_y: np.ndarray,
    test_n: np.ndarray,
    test_y: np.ndarray,
    ks: list[int],
    temperature: float,
    chunk_entries: int = CHUNK_ENTRIES,
) -> np.ndarray:
    """How many of ``test_n`` the kNN vote of ``knn_predict`` gets right for each of the ascending ``ks``, from one
    similarity matrix and one sort of the ``max(ks)`` nearest (the vote of the k nearest is the first k's)."""
    classes, y_idx = np.unique(train_y, return_inverse=True)
    truth = np.searchsorted(classes, test_y)
    known = np.isin(test_y, classes)
    correct = np.zeros(len(ks))
    largest = ks[-1]
    chunk = max(1, chunk_entries // len(train_n))
    for start in range(0, len(test_n), chunk):
        sim = test_n[start : start + chunk] @ train_n.T
        top = np.argpartition(-sim, largest - 1, axis=1)[:, :largest]
        top_sim = np.take_along_axis(sim, top, axis=1)
        order = np.argsort(-top_sim, axis=1, kind="stable")
        top, top_sim = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sim, order, axis=1)
        weights = np.exp((top_sim.astype(np.float64) - top_sim[:, :1]) / temperature)
        rows = np.arange(len(sim))
        votes = np.zeros((len(sim), len(classes)), dtype=np.float64)
        done = 0
        for i, k in enumerate(ks):
            width = k - done
            np.add.at(votes, (np.repeat(rows, width), y_idx[top[:, done:k]].ravel()), weights[:, done:k].ravel())
            done = k
            part = slice(start, start + len(sim))
            correct[i] += float(((votes.argmax(axis=1) == truth[part]) & known[part]).sum())
    return correct


def choose_k(
    train_emb: np.ndarray,
    train_y: np.ndarray,
    candidates: tuple[int, ...] = K_CANDIDATES,
    folds: int = 5,
    temperature: float = 0.07,
    seed: int = 0,
    chunk_entries: int = CHUNK_ENTRIES,
) -> tuple[int, float | None]:
    """``k`` by stratified K-fold cross-validation on the training split only: ``(best k, its CV accuracy)``.

    Folds are reduced to the size of the smallest class; with fewer than 2 possible folds the
    middle candidate is used (``None`` accuracy). Candidates larger than a fold's training part are
    dropped; ties go to the smaller k.
    """
    from sklearn.model_selection import StratifiedKFold

    train_y = np.asarray(train_y)
    counts = np.unique(train_y, return_counts=True)[1]
    folds = min(folds, int(counts.min()))
    if folds < 2:
        return candidates[len(candidates) // 2], None
    usable = sorted({k for k in candidates if k <= len(train_y) - len(train_y) // folds - 1} or {1})
    scores = np.zeros(len(usable))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    normalized = _normalize(train_emb)
    for fit, held in splitter.split(train_emb, train_y):
        correct = _correct_by_k(
            normalized[fit], train_y[fit], normalized[held], train_y[held], usable, temperature, chunk_entries
        )
        scores += correct / len(held) / folds
    best = int(np.argmax(scores))  # the first maximum: the smallest k among ties
    return usable[best], float(scores[best])
