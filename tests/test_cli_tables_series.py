"""The command line on tables and time series, end to end on real data (breast cancer rows, GunPoint series).

Runs are tiny (1 epoch, 2 steps, small heads); what is checked is the plumbing: the table's schema
travels in the encoder and is re-applied to new rows, the evaluation has its baselines, and bad input
gets one line and exit code 2.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.sources import load_data

TINY = [
    "--epochs",
    "1",
    "--max-steps",
    "2",
    "--batch-size",
    "32",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
]


def _fails(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pd.DataFrame:
    """200 real breast-cancer rows, plus an id column, a categorical column and some missing values."""
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.iloc[:200, :8].copy()
    frame.insert(0, "patient", [f"p{i:04d}" for i in range(len(frame))])
    frame["size_band"] = pd.cut(frame["mean radius"], 3, labels=["small", "medium", "large"]).astype(str)
    frame.loc[frame.index[::7], "mean texture"] = np.nan
    frame["diagnosis"] = np.where(bunch.target.iloc[:200] == 0, "malignant", "benign")
    return frame


@pytest.fixture(scope="module")
def table_run(tmp_path_factory, table) -> tuple:
    root = tmp_path_factory.mktemp("table")
    path = root / "cells.csv"
    table.to_csv(path, index=False)
    out = root / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(path),
                "--label",
                "diagnosis",
                "--ignore",
                "patient",
                "--method",
                "scarf",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    return path, out


def test_table_run_saves_the_schema_and_evaluates_with_trees(table_run, tmp_path, capsys):
    path, out = table_run
    meta = json.loads((out / "selfsup.json").read_text())
    assert "schema" not in meta["encoder"]  # the encoder config describes the network; the schema is the reader's
    saved = json.loads((out / "preprocessing.json").read_text())
    assert saved["modality"] == "tabular"
    schema = saved["settings"]["schema"]
    assert meta["modality"] == "tabular" and schema["label"] == "diagnosis" and "patient" in schema["ignored"]
    assert meta["encoder"]["columns"]["cardinalities"] == [len(c["categories"]) + 1 for c in schema["categorical"]]
    assert "mean texture" in schema["indicators"]
    assert main(["evaluate", "--encoder", str(out), "--data", str(path), "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    found = {(r["encoder"], r["protocol"]) for r in rows}
    assert {("pretrained", "knn"), ("random-init", "linear"), ("raw-input", "linear"), ("raw-input", "gbdt")} <= found
    gbdt = next(r for r in rows if r["protocol"] == "gbdt")
    assert gbdt["accuracy"] > 0.85  # trees on real breast-cancer features: the known strong baseline


def test_embed_new_rows_applies_the_saved_preprocessing(table_run, table, tmp_path):
    _, out = table_run
    new = table.iloc[:20].copy()
    new["size_band"] = "enormous"  # a category never seen in pre-training
    new["mean radius"] = new["mean radius"] + 100.0  # far outside the fitted range: must not be re-standardised
    new_path = tmp_path / "new.csv"
    new.drop(columns=["diagnosis"]).to_csv(new_path, index=False)
    target = tmp_path / "emb.npy"
    assert main(["embed", "--encoder", str(out), "--data", str(new_path), "--out", str(target)]) == 0
    emb = np.load(target)
    encoder = load_encoder(out)
    schema = encoder.preprocessing.settings["schema"]
    x = load_data(str(new_path), DataOptions(), preprocessing=encoder.preprocessing).train.x
    radius = next(i for i, c in enumerate(schema["numeric"]) if c["name"] == "mean radius")
    expected = (new["mean radius"].to_numpy() - schema["numeric"][radius]["mean"]) / schema["numeric"][radius]["std"]
    assert np.allclose(x[:, radius].numpy(), expected, atol=1e-4)
    assert (x[:, -1] == 0).all()  # the unseen category got the unknown code
    with torch.no_grad():
        assert np.allclose(emb, encoder(x).numpy(), atol=1e-5)


def test_table_bad_input(table_run, table, tmp_path, capsys):
    path, out = table_run
    err = _fails(capsys, ["pretrain", "--data", str(path), "--label", "diagnosys", "--out", str(tmp_path / "a"), *TINY])
    assert "diagnosis" in err  # the closest column is suggested
    only_id = tmp_path / "ids.csv"
    table[["patient"]].assign(constant=1).to_csv(only_id, index=False)
    err = _fails(capsys, ["pretrain", "--data", str(only_id), "--out", str(tmp_path / "b"), *TINY])
    assert "column" in err
    missing = tmp_path / "missing.csv"
    table.drop(columns=["mean area"]).to_csv(missing, index=False)
    err = _fails(capsys, ["embed", "--encoder", str(out), "--data", str(missing), "--out", str(tmp_path / "e.npy")])
    assert "mean area" in err
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "a").exists()


def test_a_method_for_tables_refuses_series(tmp_path, capsys):
    err = _fails(
        capsys, ["pretrain", "--data", "builtin:gunpoint", "--method", "scarf", "--out", str(tmp_path / "r"), *TINY]
    )
    assert "tabular" in err and "timeseries" in err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> tuple:
    gunpoint = load_builtin("gunpoint")
    root = tmp_path_factory.mktemp("series")
    data = root / "gunpoint.npz"
    np.savez(data, x=gunpoint.train.x.numpy(), y=gunpoint.train.y.numpy())
    out = root / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(data),
                "--method",
                "ts2vec",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "16",
                "--encoder-arg",
                "depth=2",
            ]
        )
        == 0
    )
    return data, out


def test_series_run_embeds_and_evaluates(series_run, tmp_path):
    _, out = series_run
    meta = json.loads((out / "selfsup.json").read_text())
    assert meta["modality"] == "timeseries" and meta["encoder"]["in_chans"] == 1
    assert main(["evaluate", "--encoder", str(out), "--data", "builtin:gunpoint", "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert "train/test split (50/150)" in result["meta"]["split"]
    target = tmp_path / "emb.parquet"
    assert main(["embed", "--encoder", str(out), "--data", "builtin:gunpoint", "--out", str(target)]) == 0
    frame = pd.read_parquet(target)
    assert len(frame) == 200 and set(frame["split"]) == {"train", "test"}


def test_series_embed_uses_the_pretraining_statistics(series_run, tmp_path):
    data, out = series_run
    x = np.load(data)["x"]
    config = load_encoder(out).config
    assert np.allclose(config["mean"], [np.nanmean(x)], atol=1e-5) and np.allclose(
        config["std"], [np.nanstd(x)], rtol=1e-3
    )
    # five series, far from the pre-training scale: re-fitting statistics on them would change their embeddings
    few = tmp_path / "few.npy"
    np.save(few, x[:5] * 10.0 + 3.0)
    assert main(["embed", "--encoder", str(out), "--data", str(few), "--out", str(tmp_path / "few-emb.npy")]) == 0
    with torch.no_grad():
        expected = load_encoder(out)(torch.from_numpy(x[:5] * 10.0 + 3.0)).numpy()
    assert np.allclose(np.load(tmp_path / "few-emb.npy"), expected, atol=1e-5)


def test_series_bad_input(series_run, tmp_path, capsys):
    _, out = series_run
    err = _fails(
        capsys, ["embed", "--encoder", str(out), "--data", "builtin:basicmotions", "--out", str(tmp_path / "e.npy")]
    )
    assert "channel" in err
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((4, 0), dtype=np.float32))
    assert "length" in _fails(capsys, ["pretrain", "--data", str(empty), "--out", str(tmp_path / "a"), *TINY])
    nan_channel = tmp_path / "nan.npy"
    x = np.random.default_rng(0).normal(size=(8, 2, 30)).astype(np.float32)
    x[:, 1] = np.nan
    np.save(nan_channel, x)
    err = _fails(capsys, ["pretrain", "--data", str(nan_channel), "--out", str(tmp_path / "b"), *TINY])
    assert "channel" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_datasets_lists_every_modality(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "breast_cancer", "wine", "iris", "gunpoint", "basicmotions", "japanesevowels"):
        assert name in out


def test_series_too_short_for_the_method_fail_before_anything_is_written(tmp_path, capsys):
    # Japanese Vowels has a 7-step training series: one 8-step patch cannot give TS2Vec two overlapping crops
    err = _fails(
        capsys,
        [
            "pretrain",
            "--data",
            "builtin:japanesevowels",
            "--method",
            "ts2vec",
            "--encoder",
            "patch_transformer",
            "--no-probe",
            "--out",
            str(tmp_path / "r"),
            *TINY[:4],
        ],
    )
    assert "shortest" in err and "7 steps" in err
    assert not (tmp_path / "r").exists()


def test_csv_series_are_read_at_embed_time_as_at_pretraining(series_run, tmp_path):
    """A wide CSV with a label column: embed without --label must not read the label as a time step."""
    gunpoint = load_builtin("gunpoint").train
    frame = pd.DataFrame(gunpoint.x[:, 0].numpy(), columns=[f"t{i}" for i in range(150)])
    frame.insert(0, "kind", [gunpoint.classes[int(i)] for i in gunpoint.y])
    path = tmp_path / "gunpoint.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(path),
                "--modality",
                "timeseries",
                "--label",
                "kind",
                "--method",
                "simclr",
                "--out",
                str(out),
                *TINY,
                "--encoder-arg",
                "depth=1",
            ]
        )
        == 0
    )
    assert "read" not in load_encoder(out).config
    assert load_encoder(out).preprocessing.settings["label"] == "kind"
    assert main(["embed", "--encoder", str(out), "--data", str(path), "--out", str(tmp_path / "e.parquet")]) == 0
    embedded = pd.read_parquet(tmp_path / "e.parquet")
    assert list(embedded["label"]) == list(frame["kind"])
    with torch.no_grad():
        expected = load_encoder(out)(gunpoint.x).numpy()
    assert np.allclose(embedded.filter(regex=r"^e\d+$").to_numpy(), expected, atol=1e-5)
