"""Run the frozen-feature evaluation protocols for several encoders on the same split.

Each protocol is a registry entry (``PROTOCOL_ROWS``): a function from one encoder's train/test embeddings
(a ``Probe``) to its result rows. ``finetune`` and ``zeroshot`` need the encoders themselves, not their
embeddings: ``evaluate`` runs them, and ``check_protocols`` knows their names too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfsup.errors import unknown_name
from selfsup.evaluation.fewshot import few_shot
from selfsup.evaluation.knn import choose_k, knn_predict
from selfsup.evaluation.label_efficiency import label_efficiency
from selfsup.evaluation.linear import linear_probe
from selfsup.evaluation.mlp import mlp_probe
from selfsup.evaluation.ncm import ncm_predict
from selfsup.evaluation.progress import probe_steps
from selfsup.evaluation.rows import ResultRow, result_row
from selfsup.evaluation.stats import accuracy_with_ci, confusion

PROTOCOLS = ("knn", "linear")  # the default ones
# mlp: one-hidden-layer probe (mlp.py); ncm: nearest class mean (ncm.py); 1-, 5- and 10-shot episodes
# (fewshot.py); the linear probe on 1%, 10%, 100% of the labels (label_efficiency.py)
OPTIONAL_PROTOCOLS = ("mlp", "ncm", "fewshot", "labels")
ALL_PROTOCOLS = PROTOCOLS + OPTIONAL_PROTOCOLS
MODEL_PROTOCOLS = ("finetune", "zeroshot")  # run by evaluate: they need the encoders, not their embeddings
KNN_TEMPERATURE = 0.07
RAW_INPUT = "raw-input"  # the baseline that probes the input itself
# the raw input's linear probe on inputs wider than linear.WIDE: its first principal components (fitted on train)
RAW_COMPONENTS = 256


@dataclass(frozen=True)
class Probe:
    """One encoder's embeddings of a split with its labels, and the settings every protocol shares."""

    encoder: str
    train_emb: np.ndarray
    train_y: np.ndarray
    test_emb: np.ndarray
    test_y: np.ndarray
    k: int | str = "cv"
    seed: int = 0
    n_classes: int = 0  # of the confusion matrix


def check_protocols(names: Iterable[str], known: Sequence[str] = ALL_PROTOCOLS) -> None:
    """Refuse a protocol name not in ``known``, suggesting the closest one."""
    for name in names:
        if name not in known:
            raise unknown_name("protocol", name, known)


def _knn(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, k: int | str, seed: int, raw: bool
) -> tuple[np.ndarray, dict]:
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


def _linear(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, k: int | str, seed: int, raw: bool
) -> tuple[np.ndarray, dict]:
    return linear_probe(train_emb, train_y, test_emb, seed=seed, components=RAW_COMPONENTS if raw else None)


def _mlp(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, k: int | str, seed: int, raw: bool
) -> tuple[np.ndarray, dict]:
    return mlp_probe(train_emb, train_y, test_emb, seed=seed)


def _ncm(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, k: int | str, seed: int, raw: bool
) -> tuple[np.ndarray, dict]:
    return ncm_predict(train_emb, train_y, test_emb)


# (train_emb, train_y, test_emb, k, seed, raw: the embeddings are the raw input) -> (test predictions, details)
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray, int | str, int, bool], tuple[np.ndarray, dict]]
# the protocols that predict each test sample once (a row each; compare.py pairs their predictions)
PREDICTORS: dict[str, Predictor] = {
    "knn": _knn,
    "linear": _linear,
    "mlp": _mlp,
    "ncm": _ncm,
}


def predict(
    protocol: str,
    train_emb: np.ndarray,
    train_y: np.ndarray,
    test_emb: np.ndarray,
    *,
    k: int | str = "cv",
    seed: int = 0,
    raw: bool = False,
) -> tuple[np.ndarray, dict]:
    """Test-split predictions of one single-row protocol (knn, linear, mlp, ncm) and its details; ``raw``: the embeddings
    are the raw input (its linear probe may be fitted on principal components, ``RAW_COMPONENTS``)."""
    check_protocols([protocol], tuple(PREDICTORS))
    return PREDICTORS[protocol](train_emb, train_y, test_emb, k, seed, raw)


def _single_row(protocol: str) -> Callable[[Probe], list[ResultRow]]:
    """The rows function of a ``PREDICTORS`` protocol: its accuracy with the Wilson CI and the confusion matrix."""

    def rows(p: Probe) -> list[ResultRow]:
        pred, details = predict(
            protocol, p.train_emb, p.train_y, p.test_emb, k=p.k, seed=p.seed, raw=p.encoder == RAW_INPUT
        )
        scores = accuracy_with_ci(p.test_y, pred)
        return [
            result_row(p.encoder, protocol, scores, len(p.train_emb), details, confusion(p.test_y, pred, p.n_classes))
        ]

    return rows


def _few_shot_rows(p: Probe) -> list[ResultRow]:
    return [
        result_row(p.encoder, r["protocol"], r, len(p.train_emb), r["details"])
        for r in few_shot(p.train_emb, p.train_y, p.test_emb, p.test_y, seed=p.seed)
    ]


def _label_efficiency_rows(p: Probe) -> list[ResultRow]:
    return [
        result_row(p.encoder, r["protocol"], r, r["n_train"], r["details"])
        for r in label_efficiency(
            p.train_emb,
            p.train_y,
            p.test_emb,
            p.test_y,
            seed=p.seed,
            components=RAW_COMPONENTS if p.encoder == RAW_INPUT else None,
        )
    ]


# every frozen-feature protocol (ALL_PROTOCOLS) -> its rows for one encoder
PROTOCOL_ROWS: dict[str, Callable[[Probe], list[ResultRow]]] = {
    "knn": _single_row("knn"),
    "linear": _single_row("linear"),
    "mlp": _single_row("mlp"),
    "ncm": _single_row("ncm"),
    "fewshot": _few_shot_rows,  # a row per number of shots
    "labels": _label_efficiency_rows,  # a row per label fraction
}


def run_protocols(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    train_y: np.ndarray,
    test_y: np.ndarray,
    protocols: Sequence[str] = PROTOCOLS,
    k: int | str = "cv",
    seed: int = 0,
    n_classes: int | None = None,
    progress: bool = False,
) -> list[ResultRow]:
    """One result row per (encoder, protocol), in the order given; with ``progress``, each probe is named as it
    starts (``progress.probe_steps``).

    ``features`` maps an encoder name (e.g. "pretrained", "random-init", "raw-input") to its
    ``(train_emb, test_emb)``. Rows hold encoder, protocol, accuracy, ci_low, ci_high,
    n_train, n_test, the protocol's details (kNN: k, temperature; linear: C, CV info) and, for the
    single-row protocols, the confusion matrix over ``n_classes`` (default: the labels seen).
    """
    protocols = [protocols] if isinstance(protocols, str) else list(protocols)
    check_protocols(protocols, ALL_PROTOCOLS)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n_classes = n_classes or int(max(train_y.max(), test_y.max())) + 1
    rows: list[ResultRow] = []
    with probe_steps(len(features) * len(protocols), progress) as starting:
        for encoder, (train_emb, test_emb) in features.items():
            if len(train_emb) != len(train_y) or len(test_emb) != len(test_y):
                raise ValueError(
                    f"{encoder}: {len(train_emb)}/{len(test_emb)} embeddings for "
                    f"{len(train_y)}/{len(test_y)} train/test labels"
                )
            probe = Probe(encoder, train_emb, train_y, test_emb, test_y, k=k, seed=seed, n_classes=n_classes)
            for protocol in protocols:
                starting(f"{protocol} probe on {encoder} ({len(train_emb):,} x {np.shape(train_emb)[1]:,})")
                rows += PROTOCOL_ROWS[protocol](probe)
    return rows
