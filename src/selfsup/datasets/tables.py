"""Real tables bundled with scikit-learn (no downloads): breast cancer, wine and iris.

Each is read as a DataFrame (feature names as columns, the class names in a ``target`` column), given
the same fixed stratified 75/25 split as digits, and turned into splits with the table schema fitted
on the training rows (or the given encoder's schema). Sample ids are ``row-{i}``, ``i`` the row of
the full table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.model_selection import train_test_split

from selfsup.data import DataOptions, Preprocessing, Splits

SPLIT_SEED = 0
TEST_FRACTION = 0.25
LABEL = "target"


def table_frame(loader: Callable) -> pd.DataFrame:
    """A scikit-learn bunch as one DataFrame: its features and a ``target`` column of class names."""
    bunch = loader()
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=[str(c) for c in bunch.feature_names])
    frame[LABEL] = np.asarray(bunch.target_names)[bunch.target].astype(str)
    return frame


def _splits(loader: Callable, name: str, preprocessing: Preprocessing | None) -> Splits:
    from selfsup.modalities.tabular import from_frames

    frame = table_frame(loader)
    train_idx, test_idx = train_test_split(
        np.arange(len(frame)), test_size=TEST_FRACTION, stratify=frame[LABEL], random_state=SPLIT_SEED
    )
    return from_frames(
        frame.iloc[train_idx], frame.iloc[test_idx], f"builtin:{name}", DataOptions(label=LABEL), preprocessing
    )


def load_breast_cancer_splits(preprocessing: Preprocessing | None = None) -> Splits:
    """Breast cancer (UCI Wisconsin diagnostic): 569 rows, 30 numeric features, benign / malignant."""
    return _splits(load_breast_cancer, "breast_cancer", preprocessing)


def load_wine_splits(preprocessing: Preprocessing | None = None) -> Splits:
    """Wine (UCI): 178 rows, 13 numeric features, 3 cultivars."""
    return _splits(load_wine, "wine", preprocessing)


def load_iris_splits(preprocessing: Preprocessing | None = None) -> Splits:
    """Iris (Fisher 1936): 150 rows, 4 numeric features, 3 species."""
    return _splits(load_iris, "iris", preprocessing)


TABLES: dict[str, tuple[str, Callable[[Preprocessing | None], Splits]]] = {
    "breast_cancer": (
        "569 breast-mass biopsies, 30 numeric features, 2 classes (benign/malignant; scikit-learn's copy of UCI "
        "Wisconsin diagnostic); fixed stratified 75/25 train/test split",
        load_breast_cancer_splits,
    ),
    "wine": (
        "178 wines, 13 numeric chemical features, 3 cultivars (scikit-learn's copy of UCI wine); "
        "fixed stratified 75/25 train/test split",
        load_wine_splits,
    ),
    "iris": (
        "150 iris flowers, 4 numeric measurements, 3 species (scikit-learn's copy of Fisher's iris); "
        "fixed stratified 75/25 train/test split",
        load_iris_splits,
    ),
}
