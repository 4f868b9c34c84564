"""Built-in real datasets that ship inside installed packages (no downloads), addressed as ``builtin:NAME``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from selfsup.data import Splits
from selfsup.datasets.digits import load_digits_splits
from selfsup.errors import unknown_name


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    modality: str
    description: str
    load: Callable[[], Splits]


BUILTIN: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset(
        "digits", "image",
        "1,797 handwritten digits, 8x8 grey, 10 classes (scikit-learn's copy of UCI optdigits); "
        "fixed stratified 75/25 train/test split",
        load_digits_splits,
    ),
}


def load_builtin(name: str) -> Splits:
    if name not in BUILTIN:
        raise unknown_name("built-in dataset", name, BUILTIN, hint="Use builtin:NAME or a folder path.")
    return BUILTIN[name].load()
