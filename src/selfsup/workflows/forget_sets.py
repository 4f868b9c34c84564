"""What ``selfsup unlearn`` is asked to do, checked before any work and without torch: the method, its options, and
the forget and retain sets (CSV files with an ``id`` column) as indices of the training split."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from selfsup.errors import SelfsupError, unknown_name

if TYPE_CHECKING:
    from selfsup.data import ArrayDataset

METHODS = ("gradient-ascent", "npo", "label-agnostic")
LABELLED = ("gradient-ascent", "npo")


@dataclass(frozen=True)
class UnlearnOptions:
    """How to unlearn (at most ``steps`` Adam steps at ``lr``, stopping by ``stop``: ``unlearn_stopping.py``) and
    how to (re)train a classifier for the audit."""

    steps: int = 50
    stop: str = "at-heldout-loss"  # or "steps": exactly ``steps`` steps
    lr: float = 1e-4
    batch_size: int = 64
    beta: float = 0.1  # npo
    retain_weight: float = 1.0
    finetune_lr: float = 1e-3  # fine-tuning the original (given an encoder) and the retrained model; head 10x
    finetune_epochs: int = 30

    def __post_init__(self) -> None:
        if self.stop not in ("at-heldout-loss", "steps"):
            raise unknown_name("stopping rule", self.stop, ("at-heldout-loss", "steps"))
        if self.steps < 1 or self.batch_size < 2 or self.finetune_epochs < 1:
            raise SelfsupError("--steps and --finetune-epochs must be at least 1, --batch-size at least 2.")
        if not (self.lr > 0 and self.beta > 0 and self.finetune_lr > 0 and self.retain_weight >= 0):
            raise SelfsupError("--lr, --beta and --finetune-lr must be positive, --retain-weight 0 or more.")


# --------------------------------------------------------------------------- the forget and retain sets


def read_ids(path: str | Path, flag: str) -> list[str]:
    """The ``id`` column of a CSV file, in order, without repeats; refuses a missing file, no ``id`` column, none."""
    path = Path(path)
    if not path.is_file():
        raise SelfsupError(f"{flag} '{path}' does not exist; pass a CSV file with an 'id' column.")
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if "id" not in (reader.fieldnames or []):
                raise SelfsupError(
                    f"{flag} '{path}' has no 'id' column (columns: {', '.join(reader.fieldnames or []) or 'none'}); "
                    "name the samples' ids in a column called id."
                )
            ids = [row["id"].strip() for row in reader if (row.get("id") or "").strip()]
    except (UnicodeDecodeError, csv.Error) as err:
        raise SelfsupError(f"{flag} '{path}' is not a readable CSV file ({err}).") from None
    if not ids:
        raise SelfsupError(f"{flag} '{path}' names no samples; the {flag.lstrip('-')} set cannot be empty.")
    return list(dict.fromkeys(ids))


def _indices(ids: list[str], train: ArrayDataset, test: ArrayDataset | None, flag: str, source: str) -> np.ndarray:
    """Where ``ids`` are in the training split; ids in the test split, or in neither, are refused."""
    where = {sample: i for i, sample in enumerate(train.ids)}
    missing = [sample for sample in ids if sample not in where]
    if missing:
        in_test = set(test.ids) & set(missing) if test is not None else set()
        if in_test:
            raise SelfsupError(
                f"{len(in_test)} of the {len(ids)} ids of {flag} (first: '{sorted(in_test)[0]}') are in the test "
                f"split of '{source}', not its training data; the model never trained on them."
            )
        example = ", ".join(f"'{s}'" for s in train.ids[:2])
        raise SelfsupError(
            f"{len(missing)} of the {len(ids)} ids of {flag} (first: '{missing[0]}') match no sample of the "
            f"training data of '{source}' (its ids look like {example})."
        )
    return np.array([where[sample] for sample in ids], dtype=np.int64)


def split_forget_retain(
    train: ArrayDataset, test: ArrayDataset | None, forget: list[str], retain: list[str] | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the forget and retain sets in the training split (retain: the rest of it, or ``retain``)."""
    forget_idx = _indices(forget, train, test, "--forget", source)
    if retain is None:
        retain_idx = np.setdiff1d(np.arange(len(train)), forget_idx)
    else:
        retain_idx = _indices(retain, train, test, "--retain", source)
        both = np.intersect1d(forget_idx, retain_idx)
        if len(both):
            raise SelfsupError(
                f"{len(both)} samples are in both --forget and --retain (first: '{train.ids[both[0]]}'); "
                "a sample is either forgotten or retained."
            )
    if len(retain_idx) == 0:
        raise SelfsupError(f"--forget names every training sample of '{source}'; nothing is left to retain.")
    return forget_idx, retain_idx


def check_request(
    method: str, forget: str | Path, retain: str | Path | None, heldout: str | Path | None = None
) -> None:
    """Refuse, before any work, an unknown method and forget/retain/heldout files that are missing or name nothing."""
    if method not in METHODS:
        raise unknown_name("unlearning method", method, METHODS)
    read_ids(forget, "--forget")
    if retain is not None:
        read_ids(retain, "--retain")
    if heldout is not None:
        read_ids(heldout, "--heldout")
