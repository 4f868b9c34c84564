"""Run the frozen-feature evaluation protocols for several encoders on the same split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from selfsup.errors import unknown_name
from selfsup.evaluation.fewshot import few_shot
from selfsup.evaluation.knn import choose_k, knn_predict
from selfsup.evaluation.label_efficiency import label_efficiency
from selfsup.evaluation.linear import linear_probe
from selfsup.evaluation.mlp import mlp_probe
from selfsup.evaluation.stats import accuracy_with_ci, confusion

PROTOCOLS = ("knn", "linear")  # the default ones
# 1-, 5- and 10-shot episodes (fewshot.py); the linear probe on 1%, 10%, 100% of the labels (label_efficiency.py)
OPTIONAL_PROTOCOLS = ("mlp", "fewshot", "labels")  # mlp: one-hidden-layer probe (mlp.py)
ALL_PROTOCOLS = PROTOCOLS + OPTIONAL_PROTOCOLS
KNN_TEMPERATURE = 0.07


def predict(
    protocol: str,
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    *,
    k: int | str = "cv",
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """Test-split predictions of one single-row protocol (knn, linear, mlp) and its details."""
    if protocol == "knn":
        chosen, cv_accuracy = (
            choose_k(np.asarray(train_emb), train_y, temperature=KNN_TEMPERATURE, seed=seed)
            if k == "cv"
            else (int(k), None)
        )
        pred = knn_predict(train_emb, train_y, test_emb, k=chosen, temperature=KNN_TEMPERATURE)
        details: dict[str, Any] = {"k": min(chosen, len(train_emb)), "temperature": KNN_TEMPERATURE}
        if k == "cv":
            details |= {"k_by": "5-fold CV on the training split", "cv_accuracy": cv_accuracy}
        return pred, details
    if protocol == "mlp":
        return mlp_probe(train_emb, train_y, test_emb, seed=seed)
    return linear_probe(train_emb, train_y, test_emb, seed=seed)


def run_protocols(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    train_y: np.ndarray,
    test_y: np.ndarray,
    protocols: Sequence[str] = PROTOCOLS,
    k: int | str = "cv",
    seed: int = 0,
    n_classes: int | None = None,
) -> list[dict]:
    """One result row per (encoder, protocol), in the order given.

    ``features`` maps an encoder name (e.g. "pretrained", "random-init", "raw-input") to its
    ``(train_emb, test_emb)``. Rows hold encoder, protocol, accuracy, ci_low, ci_high,
    n_train, n_test, the protocol's details (kNN: k, temperature; linear: C, CV info) and, for the
    single-row protocols, the confusion matrix over ``n_classes`` (default: the labels seen).
    """
    protocols = [protocols] if isinstance(protocols, str) else list(protocols)
    for name in protocols:
        if name not in ALL_PROTOCOLS:
            raise unknown_name("protocol", name, ALL_PROTOCOLS)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n_classes = n_classes or int(max(train_y.max(), test_y.max())) + 1
    rows: list[dict] = []
    for encoder, (train_emb, test_emb) in features.items():
        if len(train_emb) != len(train_y) or len(test_emb) != len(test_y):
            raise ValueError(
                f"{encoder}: {len(train_emb)}/{len(test_emb)} embeddings for "
                f"{len(train_y)}/{len(test_y)} train/test labels"
            )
        for protocol in protocols:
            if protocol in ("fewshot", "labels"):  # several rows each
                if protocol == "fewshot":
                    extra = [
                        r | {"n_train": len(train_emb)}
                        for r in few_shot(train_emb, train_y, test_emb, test_y, seed=seed)
                    ]
                else:
                    extra = label_efficiency(train_emb, train_y, test_emb, test_y, seed=seed)
                rows += [{"encoder": encoder, **r} for r in extra]
                continue
            pred, details = predict(protocol, train_emb, train_y, test_emb, k=k, seed=seed)
            result = accuracy_with_ci(test_y, pred, seed=seed)
            rows.append(
                {
                    "encoder": encoder,
                    "protocol": protocol,
                    "accuracy": result["accuracy"],
                    "ci_low": result["ci_low"],
                    "ci_high": result["ci_high"],
                    "n_train": len(train_emb),
                    "n_test": result["n_test"],
                    "details": details,
                    "confusion": confusion(test_y, pred, n_classes),
                }
            )
    return rows
