"""The result row every evaluation protocol produces: one (encoder, protocol) score, as ``results.json`` holds it."""

from __future__ import annotations

from typing import Any, TypedDict


class _ScoredRow(TypedDict):
    encoder: str  # "pretrained", "random-init", "raw-input" (or an encoder's path in a comparison)
    protocol: str  # "knn", "linear", "mlp", "1-shot", "linear@10%", "finetune", "zeroshot", "gbdt"
    accuracy: float  # on the test split; with several seeds, their mean
    ci_low: float  # the 95% interval: Wilson over test samples, or over seeds (``stats.over_seeds``)
    ci_high: float
    n_train: int  # the labels the protocol trained on (0 for zero-shot)
    n_test: int
    details: dict[str, Any]  # what the protocol chose or used (kNN: k, temperature; linear: C, CV accuracy; ...)


class ResultRow(_ScoredRow, total=False):
    confusion: list[list[int]]  # counts[true][predicted] (single-row protocols); summed over seeds
    per_seed: list[float]  # each seed's accuracy, with several seeds


def result_row(
    encoder: str,
    protocol: str,
    scores: dict[str, Any],
    n_train: int,
    details: dict[str, Any],
    confusion: list[list[int]] | None = None,
) -> ResultRow:
    """A row from ``scores`` (``accuracy``, ``ci_low``, ``ci_high``, ``n_test``: ``stats.accuracy_with_ci``'s)."""
    row = ResultRow(
        encoder=encoder,
        protocol=protocol,
        accuracy=scores["accuracy"],
        ci_low=scores["ci_low"],
        ci_high=scores["ci_high"],
        n_train=n_train,
        n_test=scores["n_test"],
        details=details,
    )
    if confusion is not None:
        row["confusion"] = confusion
    return row
