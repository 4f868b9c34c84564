"""Built-in tables from scikit-learn: shapes, classes, the fixed split, determinism, the encoder's schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_iris, load_wine

from selfsup.data import Preprocessing
from selfsup.datasets.tables import TABLES, table_frame
from selfsup.errors import SelfsupError

EXPECTED = {  # name: (rows, features, classes, class counts in the full table)
    "breast_cancer": (569, 30, ["benign", "malignant"], [357, 212]),
    "wine": (178, 13, ["class_0", "class_1", "class_2"], [59, 71, 48]),
    "iris": (150, 4, ["setosa", "versicolor", "virginica"], [50, 50, 50]),
}
LOADERS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "iris": load_iris}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_table(name):
    rows, features, classes, counts = EXPECTED[name]
    description, loader = TABLES[name]
    assert f"{rows} " in description and "75/25" in description
    splits = loader(None)
    train, test = splits.train, splits.test
    assert splits.name == f"builtin:{name}" and splits.modality == "tabular"
    assert len(train) + len(test) == rows and len(test) == int(np.ceil(rows * 0.25))
    assert train.x.shape == (len(train), features) and test.x.shape == (len(test), features)
    assert train.x.dtype == torch.float32 and torch.isfinite(train.x).all() and torch.isfinite(test.x).all()
    assert train.classes == test.classes == classes and train.labeled and test.labeled
    total = torch.bincount(train.y, minlength=len(classes)) + torch.bincount(test.y, minlength=len(classes))
    assert total.tolist() == counts
    # stratified: each class's share of the test split is within one row of its share of the table
    assert (torch.bincount(test.y, minlength=len(classes)).numpy() - np.array(counts) * 0.25 <= 1.0).all()
    schema = splits.preprocessing.settings["schema"]
    assert len(schema["numeric"]) == features and not schema["categorical"] and not schema["dropped"]
    assert [e["name"] for e in schema["numeric"]] == list(LOADERS[name]().feature_names)
    assert schema["label"] == "target" and schema["classes"] == classes
    json.dumps(schema)
    # standardised on the training rows
    assert train.x.mean(0).abs().max() < 1e-4 and (train.x.std(0, unbiased=False) - 1).abs().max() < 1e-3
    # ids name rows of the full table, each once
    assert len(set(train.ids) | set(test.ids)) == rows and all(i.startswith("row-") for i in train.ids)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_labels_match_the_source(name):
    bunch = LOADERS[name]()
    splits = TABLES[name][1](None)
    for split in (splits.train, splits.test):
        rows = [int(i.removeprefix("row-")) for i in split.ids]
        names = [split.classes[k] for k in split.y.tolist()]
        assert names == [str(bunch.target_names[bunch.target[r]]) for r in rows]
        mean = np.array([e["mean"] for e in splits.preprocessing.settings["schema"]["numeric"]])
        std = np.array([e["std"] for e in splits.preprocessing.settings["schema"]["numeric"]])
        np.testing.assert_allclose(split.x.numpy(), (bunch.data[rows] - mean) / std, rtol=1e-4, atol=1e-5)


def test_deterministic_and_reused_with_an_encoder_schema():
    loader = TABLES["wine"][1]
    first, second = loader(None), loader(None)
    assert first.train.ids == second.train.ids and torch.equal(first.train.x, second.train.x)
    assert first.preprocessing == second.preprocessing
    again = loader(Preprocessing("tabular", {"schema": first.preprocessing.settings["schema"]}))
    assert torch.equal(again.test.x, first.test.x) and torch.equal(again.test.y, first.test.y)
    assert again.preprocessing == first.preprocessing
    # wine rows cannot be read with an encoder pre-trained on iris
    with pytest.raises(SelfsupError, match="lacks column"):
        loader(TABLES["iris"][1](None).preprocessing)


def test_table_frame_has_a_target_column():
    frame = table_frame(load_iris)
    assert frame.shape == (150, 5) and frame.columns[-1] == "target"
    assert sorted(frame["target"].unique()) == EXPECTED["iris"][2]
