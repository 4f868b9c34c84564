"""Built-in UCR/UEA series read from sktime's bundled files: shapes, classes and split sizes against the
archives' published figures, ragged padding, the channel check, and no import of sktime."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from selfsup.data import DataOptions
from selfsup.datasets import ucr
from selfsup.errors import SelfsupError
from selfsup.modalities import timeseries as ts
from selfsup.sources import load_data

# name: (train size, test size, channels, length, classes), from the UCR / UEA archive pages
FIGURES = {
    "gunpoint": (50, 150, 1, 150, ["1", "2"]),
    "italypowerdemand": (67, 1029, 1, 24, ["1", "2"]),
    "basicmotions": (40, 40, 6, 100, ["Badminton", "Running", "Standing", "Walking"]),
    "arrowhead": (36, 175, 1, 251, ["0", "1", "2"]),
    "japanesevowels": (270, 370, 12, 29, [str(i) for i in range(1, 10)]),
}


@pytest.fixture(scope="module")
def loaded() -> dict:
    return {name: load(None) for name, (_, load) in ucr.SERIES.items()}


def test_registry_names_and_descriptions():
    assert set(ucr.SERIES) >= set(FIGURES)
    for name, (description, _) in ucr.SERIES.items():
        assert name == name.lower() and "\n" not in description
        train, test, _channels, _length, classes = FIGURES[name]
        assert f"{train} train" in description.replace(",", "") and f"{test} test" in description.replace(",", "")
        assert f"{len(classes)} classes" in description and "sktime" in description


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_shapes_classes_and_splits(loaded, name):
    splits = loaded[name]
    n_train, n_test, channels, length, classes = FIGURES[name]
    assert splits.modality == "timeseries" and splits.name == f"builtin:{name}"
    assert splits.train.x.shape == (n_train, channels, length) and splits.train.x.dtype == torch.float32
    assert splits.test.x.shape == (n_test, channels, length)
    assert splits.train.classes == splits.test.classes == classes
    assert splits.train.labeled and splits.test.labeled
    assert set(splits.train.y.tolist()) == set(range(len(classes)))  # every class in the training split
    assert len(set(splits.train.ids) | set(splits.test.ids)) == n_train + n_test
    if name != "japanesevowels":
        assert not torch.isnan(splits.train.x).any() and not torch.isnan(splits.test.x).any()


def test_class_balance_of_the_official_splits(loaded):
    assert torch.bincount(loaded["basicmotions"].train.y).tolist() == [10] * 4
    assert torch.bincount(loaded["japanesevowels"].train.y).tolist() == [30] * 9  # 30 utterances per speaker
    assert torch.bincount(loaded["arrowhead"].train.y).tolist() == [12] * 3


def test_japanese_vowels_is_ragged_and_padded(loaded):
    splits = loaded["japanesevowels"]
    for dataset in (splits.train, splits.test):
        steps = (~torch.isnan(dataset.x)).any(dim=1)  # (N, T)
        lengths = steps.sum(dim=1)
        assert torch.equal(steps, torch.arange(29)[None, :] < lengths[:, None])  # padding only at the end
        assert torch.equal(torch.isnan(dataset.x).any(dim=1), ~steps)  # every channel has the same length
    train_lengths = (~torch.isnan(splits.train.x[:, 0])).sum(dim=1)
    test_lengths = (~torch.isnan(splits.test.x[:, 0])).sum(dim=1)
    assert train_lengths.min() == 7 and train_lengths.max() == 26 and test_lengths.max() == 29
    # the same lengths, counted on the raw file's text
    path = ucr.sktime_data_folder() / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts"
    lines = path.read_text().splitlines()
    raw = [len(line.split(":")[0].split(",")) for line in lines[lines.index("@data") + 1 :] if line.strip()]
    np.testing.assert_array_equal(train_lengths.numpy(), raw)


def test_values_match_the_file(loaded):
    path = ucr.sktime_data_folder() / "ItalyPowerDemand" / "ItalyPowerDemand_TEST.ts"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith(("#", "@"))]
    last = lines[-1].split(":")
    test = loaded["italypowerdemand"].test
    np.testing.assert_array_equal(test.x[-1, 0].numpy(), np.array(last[0].split(","), dtype=np.float32))
    assert test.classes[int(test.y[-1])] == last[1]


def test_through_load_data_and_channel_check(loaded):
    splits = load_data("builtin:basicmotions")
    assert splits.train.x.shape == (40, 6, 100)
    config = ts.encoder_config("dilated_conv", loaded["gunpoint"], DataOptions(), {})
    reading = ts.preprocessing(loaded["gunpoint"], DataOptions(), config)
    with pytest.raises(SelfsupError, match="the encoder takes 1 channel\\(s\\) but .*BasicMotions_TRAIN.ts' has 6"):
        load_data("builtin:basicmotions", preprocessing=reading)
    arrowhead = ts.encoder_config("dilated_conv", loaded["arrowhead"], DataOptions(), {})
    italy = ucr.SERIES["italypowerdemand"][1](ts.preprocessing(loaded["arrowhead"], DataOptions(), arrowhead))
    assert italy.train.x.shape[1] == 1 and italy.preprocessing.get("channels") == 1


def test_missing_sktime_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sktime", None)  # as if it were not installed
    with pytest.raises(SelfsupError) as err:
        ucr.load_ucr("gunpoint")
    assert str(err.value) == ("builtin:gunpoint needs the optional package 'sktime': pip install 'selfsup[timeseries]'")


def test_sktime_is_never_imported():
    if "sktime" in sys.modules:
        pytest.skip("another test imported sktime")
    ucr.SERIES["basicmotions"][1](None)
    assert "sktime" not in sys.modules  # located, never imported (importing it takes seconds)
