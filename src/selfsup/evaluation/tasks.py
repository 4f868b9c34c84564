"""A class-incremental split of the classes into tasks, probed task-incrementally.

The classes, in label order, are cut into ``N`` consecutive groups (sizes differing by at most one, the first ones
larger), fixed: Split-MNIST's split (Zenke et al. 2017) when N = 5 on ten digits. Each task's probe is trained and
tested on that task's classes only, so it chooses among them alone: the task-incremental scenario (van de Ven &
Tolias 2019, "Three scenarios for continual learning"), not class-incremental (a probe over every class seen so
far). A frozen encoder does not forget, so the per-task accuracies say which groups of classes its embedding
tells apart, and their mean is comparable with the task-incremental numbers of continual-learning papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from selfsup.errors import SelfsupError
from selfsup.evaluation.protocols import run_protocols

SCENARIO = (
    "task-incremental: the classes (in label order) cut into consecutive groups; each task's probe is trained "
    "and tested on its own classes only"
)


def class_tasks(n_classes: int, n_tasks: int) -> list[list[int]]:
    """The labels of each task: ``0 .. n_classes - 1`` cut into ``n_tasks`` consecutive groups of two or more."""
    if n_classes < 4:
        raise SelfsupError(f"--tasks needs at least 4 classes (two tasks of two), but the data has {n_classes}.")
    if n_tasks < 2 or n_tasks > n_classes // 2:
        raise SelfsupError(
            f"--tasks must be between 2 and {n_classes // 2} (two of the {n_classes} classes per task at least), "
            f"got {n_tasks}."
        )
    return [group.tolist() for group in np.array_split(np.arange(n_classes), n_tasks)]


def task_rows(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    train_y: np.ndarray,
    test_y: np.ndarray,
    tasks: list[list[int]],
    protocols: Sequence[str],
    k: int | str = "cv",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (encoder, protocol): ``per_task`` accuracy (each probe on its task's samples only, labels
    renumbered within the task), ``n_test`` per task, and ``accuracy``, the mean over the tasks."""
    scores: dict[tuple[str, str], dict[str, list]] = {}
    for labels in tasks:
        in_train, in_test = np.isin(train_y, labels), np.isin(test_y, labels)
        mine = {name: (train[in_train], test[in_test]) for name, (train, test) in features.items()}
        renumber = np.asarray(labels)
        rows = run_protocols(
            mine,
            np.searchsorted(renumber, train_y[in_train]),
            np.searchsorted(renumber, test_y[in_test]),
            protocols,
            k=k,
            seed=seed,
            n_classes=len(labels),
        )
        for row in rows:
            entry = scores.setdefault((row["encoder"], row["protocol"]), {"per_task": [], "n_test": []})
            entry["per_task"].append(row["accuracy"])
            entry["n_test"].append(row["n_test"])
    return [
        {"encoder": e, "protocol": p, "accuracy": float(np.mean(s["per_task"])), **s} for (e, p), s in scores.items()
    ]


def mean_over_seeds(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each (encoder, protocol)'s per-task accuracies averaged over seeds (each seed's mean kept in ``per_seed``)."""
    if len(per_seed) == 1:
        return per_seed[0]
    rows = []
    for first in per_seed[0]:
        key = (first["encoder"], first["protocol"])
        same = [next(r for r in rows_s if (r["encoder"], r["protocol"]) == key) for rows_s in per_seed]
        per_task = np.mean([r["per_task"] for r in same], axis=0).tolist()
        seeds = [r["accuracy"] for r in same]
        rows.append(first | {"per_task": per_task, "accuracy": float(np.mean(per_task)), "per_seed": seeds})
    return rows
