"""Built-in real datasets that ship inside installed packages (no downloads), addressed as ``builtin:NAME``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from selfsup.errors import unknown_name

if TYPE_CHECKING:  # importing this package stays light (no torch): the CLI checks builtin:NAME with BUILTIN_NAMES
    from selfsup.data import Preprocessing, Splits

# the names builtin_datasets() returns, known without importing any loader (a test keeps the two equal)
BUILTIN_NAMES = (
    "digits",
    "fashion_mnist",
    "fashion_mnist_full",
    "breast_cancer",
    "wine",
    "iris",
    "gunpoint",
    "italypowerdemand",
    "basicmotions",
    "arrowhead",
    "japanesevowels",
    "rottentomatoes",
    "spoken_words",
    "spoken_word_captions",
)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    modality: str
    description: str
    load: Callable[[Preprocessing | None], Splits]  # takes the preprocessing of an encoder of its modality (or None)


@cache
def builtin_datasets() -> dict[str, BuiltinDataset]:
    """Every built-in dataset by name (their modules are imported on first use)."""
    from selfsup.datasets.digits import load_digits_splits
    from selfsup.datasets.fashion_mnist import DESCRIPTION, FULL_DESCRIPTION, load_fashion_mnist
    from selfsup.datasets.speech import CAPTIONS_DESCRIPTION, SPEECH, load_spoken_word_captions
    from selfsup.datasets.tables import TABLES
    from selfsup.datasets.text import TEXTS
    from selfsup.datasets.ucr import SERIES

    builtin = {
        "digits": BuiltinDataset(
            "digits",
            "image",
            "1,797 handwritten digits, 8x8 grey, 10 classes (scikit-learn's copy of UCI optdigits); "
            "fixed stratified 75/25 train/test split",
            lambda preprocessing: load_digits_splits(),
        ),
        "fashion_mnist": BuiltinDataset(
            "fashion_mnist", "image", DESCRIPTION, lambda preprocessing: load_fashion_mnist()
        ),
        "fashion_mnist_full": BuiltinDataset(
            "fashion_mnist_full", "image", FULL_DESCRIPTION, lambda preprocessing: load_fashion_mnist(full=True)
        ),
    }
    builtin |= {name: BuiltinDataset(name, "tabular", desc, load) for name, (desc, load) in TABLES.items()}
    builtin |= {name: BuiltinDataset(name, "timeseries", desc, load) for name, (desc, load) in SERIES.items()}
    builtin |= {name: BuiltinDataset(name, "text", desc, load) for name, (desc, load) in TEXTS.items()}
    builtin |= {name: BuiltinDataset(name, "audio", desc, load) for name, (desc, load) in SPEECH.items()}
    builtin["spoken_word_captions"] = BuiltinDataset(
        "spoken_word_captions", "text", CAPTIONS_DESCRIPTION, load_spoken_word_captions
    )
    return builtin


def load_builtin(name: str, preprocessing: Preprocessing | None = None) -> Splits:
    """A built-in dataset, read as an encoder's ``preprocessing`` says when the encoder is of the dataset's
    modality (for another one, ``load_data`` refuses the data in one line)."""
    datasets = builtin_datasets()
    if name not in datasets:
        raise unknown_name("built-in dataset", name, datasets, hint="Use builtin:NAME or a path.")
    dataset = datasets[name]
    fits = preprocessing is not None and preprocessing.modality == dataset.modality
    return dataset.load(preprocessing if fits else None)
