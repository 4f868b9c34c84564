"""Class labels shared by the readers: a cell or field as its class name, and names as indices into classes.

Labels are used for probing only; classes are the label names as strings, sorted (numerically when every
label is a number).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from selfsup.data import UNLABELED
from selfsup.errors import SelfsupError


def sorted_classes(labels: Iterable[str]) -> list[str]:
    """Distinct label names, in numeric order when every one is a number, else in string order."""
    unique = set(labels)
    try:
        return sorted(unique, key=lambda label: (float(label), label))
    except ValueError:
        return sorted(unique)


def label_text(value: Any, where: str) -> str | None:
    """A label as its class name; None when missing. Integral numbers lose their ``.0``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if not float(value).is_integer():
            raise SelfsupError(
                f"the labels of {where} hold non-integer numbers (e.g. {value}); only class labels are "
                "supported for probing: use class names or integers."
            )
        return str(int(value))
    text = str(value).strip()
    return text or None


def encode_labels(
    labels: Sequence[str | None], classes: list[str] | None, where: str
) -> tuple[torch.Tensor, list[str] | None]:
    """Label indices into ``classes`` (the training split's, or the sorted names when None), one per sample;
    UNLABELED for a missing label (an unlabeled source passes ``[None] * n``)."""
    if all(label is None for label in labels):
        return torch.full((len(labels),), UNLABELED, dtype=torch.long), classes
    if classes is None:
        classes = sorted_classes(label for label in labels if label is not None)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted_classes(label for label in labels if label is not None and label not in index)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise SelfsupError(
            f"{where} has label(s) {shown} that the training split does not have (classes: "
            f"{', '.join(classes)}); every test label must occur in the training split."
        )
    y = [UNLABELED if label is None else index[label] for label in labels]
    return torch.tensor(y, dtype=torch.long), classes
