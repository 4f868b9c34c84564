"""The table reader and schema: column kinds, missing values, fitted statistics, clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selfsup.data import UNLABELED, DataOptions, Preprocessing
from selfsup.errors import SelfsupError
from selfsup.modalities import get_modality, tabular
from selfsup.modalities.tabular import apply_schema, fit_schema, from_frames, load, raw_features, read_table

N = 40
CITIES = ("Lyon", "Nice", "Paris")


def _frame(seed: int = 0) -> pd.DataFrame:
    """A small table with every column kind: numbers with gaps, text, booleans, codes, junk columns."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, N).round(1)
    age[[3, 7, 11]] = np.nan
    city = np.array([CITIES[i % 3] for i in range(N)], dtype=object)
    city[[5, 20]] = None
    return pd.DataFrame(
        {
            "user": [f"u-{i:03d}" for i in range(N)],
            "age": age,
            "income": rng.integers(20_000, 90_000, N),
            "city": city,
            "member": [bool(i % 2) for i in range(N)],
            "rating": [1 + i % 4 for i in range(N)],
            "empty": [np.nan] * N,
            "const": [7] * N,
            "target": ["yes" if i % 3 else "no" for i in range(N)],
        }
    )


def _csv(tmp_path: Path, frame: pd.DataFrame | None = None, name: str = "table.csv") -> Path:
    path = tmp_path / name
    (frame if frame is not None else _frame()).to_csv(path, index=False)
    return path


def _load(path: Path, **options) -> tabular.Splits:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(str(path), DataOptions(**options))


def test_schema_kinds_and_dropped_columns(tmp_path):
    path = _csv(tmp_path)
    with pytest.warns(UserWarning, match="left out 3 column") as record:
        splits = load(str(path), DataOptions(label="target"))
    message = str(record[-1].message)
    assert "'empty' (all values missing)" in message and "'const' (constant)" in message and "'user'" in message
    schema = splits.preprocessing.settings["schema"]
    assert [e["name"] for e in schema["numeric"]] == ["age", "income"]
    assert schema["indicators"] == ["age"]
    assert schema["categorical"] == [
        {"name": "city", "categories": list(CITIES)},
        {"name": "member", "categories": ["False", "True"]},
        {"name": "rating", "categories": ["1", "2", "3", "4"]},
    ]
    assert {d["name"]: d["reason"] for d in schema["dropped"]} == {
        "user": tabular.ID_REASON,
        "empty": "all values missing",
        "const": "constant",
    }
    assert schema["label"] == "target" and schema["classes"] == ["no", "yes"] and schema["ignored"] == []
    train = splits.train
    assert splits.modality == "tabular" and splits.test is None
    assert train.x.dtype == torch.float32 and train.x.shape == (N, 2 + 1 + 3) == (N, tabular.schema_width(schema))
    assert train.y.tolist() == [0 if i % 3 == 0 else 1 for i in range(N)] and train.labeled
    assert train.ids == [f"row-{i}" for i in range(N)]
    # categorical codes: 1..K for categories, 0 for missing
    assert train.x[:3, 3].tolist() == [1.0, 2.0, 3.0] and train.x[5, 3] == 0 and train.x[20, 3] == 0
    assert train.x[:2, 4].tolist() == [1.0, 2.0]  # False, True
    assert train.x[:5, 5].tolist() == [1.0, 2.0, 3.0, 4.0, 1.0]


def test_missing_numbers_are_imputed_with_an_indicator(tmp_path):
    frame = _frame()
    splits = _load(_csv(tmp_path, frame), label="target")
    schema, x = splits.preprocessing.settings["schema"], splits.train.x.double().numpy()
    age = frame["age"].to_numpy()
    missing = np.isnan(age)
    entry = schema["numeric"][0]
    assert entry["mean"] == pytest.approx(np.nanmean(age)) and entry["std"] == pytest.approx(np.nanstd(age))
    assert np.all(x[missing, 0] == 0.0) and np.all(x[missing, 2] == 1.0) and np.all(x[~missing, 2] == 0.0)
    np.testing.assert_allclose(x[~missing, 0], (age[~missing] - entry["mean"]) / entry["std"], rtol=1e-5)
    assert x[~missing, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert x[~missing, 0].std() == pytest.approx(1.0, abs=1e-5)
    assert x[:, 1].mean() == pytest.approx(0.0, abs=1e-6)  # income: no gaps, no indicator


def test_statistics_come_from_the_training_rows_only(tmp_path):
    frame = _frame()
    schema = _load(_csv(tmp_path, frame), label="target").preprocessing.settings["schema"]
    shifted = frame.assign(age=frame["age"] + 10.0, income=frame["income"] * 2)
    x, _ = apply_schema(shifted, schema)
    age, income = schema["numeric"]
    ok = ~np.isnan(frame["age"].to_numpy())
    np.testing.assert_allclose(x[ok, 0].numpy(), (frame["age"][ok] + 10.0 - age["mean"]) / age["std"], rtol=1e-5)
    np.testing.assert_allclose(x[:, 1].numpy(), (frame["income"] * 2 - income["mean"]) / income["std"], rtol=1e-5)
    assert x[ok, 0].mean() == pytest.approx(10.0 / age["std"], rel=1e-4)  # not re-centred on the new rows


def test_unknown_and_missing_categories_get_code_zero(tmp_path):
    schema = _load(_csv(tmp_path), label="target").preprocessing.settings["schema"]
    new = (
        _frame(1)
        .head(4)
        .assign(city=["Berlin", None, "Paris", "Lyon"], member=[True, None, False, True], rating=[9, 4, 1, 2])
    )
    x, _ = apply_schema(new, schema)
    assert x[:, 3].tolist() == [0.0, 0.0, 3.0, 1.0]
    assert x[:, 4].tolist() == [2.0, 0.0, 1.0, 2.0]
    assert x[:, 5].tolist() == [0.0, 4.0, 1.0, 2.0]


def test_new_table_missing_a_column_is_refused_by_name(tmp_path):
    splits = _load(_csv(tmp_path), label="target")
    reading = Preprocessing("tabular", {"schema": splits.preprocessing.settings["schema"]})
    new = _csv(tmp_path, _frame(1).drop(columns=["city"]).rename(columns={"age": "Age"}), "new.csv")
    with pytest.raises(SelfsupError, match=r"lacks column\(s\) 'age', 'city' .* \(is 'Age' the column 'age'\?\)"):
        load(str(new), DataOptions(), reading)


def test_new_table_with_the_encoder_schema(tmp_path):
    """Extra columns are ignored, the schema's label and classes are used, missing labels are unlabeled."""
    splits = _load(_csv(tmp_path), label="target")
    config = Preprocessing("tabular", {"schema": splits.preprocessing.settings["schema"]})
    frame = _frame(1).assign(extra=np.arange(N) * 3.5)
    frame.loc[[0, 1], "target"] = None
    new = load(str(_csv(tmp_path, frame, "new.csv")), DataOptions(), config)
    assert new.train.x.shape == splits.train.x.shape and new.preprocessing.settings["schema"] is config.get("schema")
    assert new.train.classes == ["no", "yes"] and new.train.y[:3].tolist() == [UNLABELED, UNLABELED, 1]
    unlabeled = load(str(_csv(tmp_path, _frame(1).drop(columns=["target"]), "nolabel.csv")), DataOptions(), config)
    assert unlabeled.train.classes is None and unlabeled.train.y.tolist() == [UNLABELED] * len(unlabeled.train)
    assert len(unlabeled.train) > 0
    bad = _frame(1).assign(target=["maybe"] * 2 + ["yes"] * (N - 2))
    with pytest.raises(SelfsupError, match="not among the classes 'no', 'yes': 'maybe'"):
        load(str(_csv(tmp_path, bad, "bad.csv")), DataOptions(), config)


def test_unknown_label_or_ignore_column(tmp_path):
    path = _csv(tmp_path)
    with pytest.raises(SelfsupError, match="unknown label column 'taget'. Did you mean 'target'"):
        load(str(path), DataOptions(label="taget"))
    with pytest.raises(SelfsupError, match="unknown --ignore column 'usr'. Did you mean 'user'"):
        load(str(path), DataOptions(ignore=("usr",)))
    with pytest.raises(SelfsupError, match="both the --label and an --ignore"):
        load(str(path), DataOptions(label="target", ignore=("target",)))


def test_no_usable_columns(tmp_path):
    frame = _frame()[["user", "empty", "const", "target"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SelfsupError, match=r"no usable input columns \('user'.*'empty' \(all values missing\)"):
            load(str(_csv(tmp_path, frame)), DataOptions(label="target"))
        with pytest.raises(SelfsupError, match="no usable input columns"):
            fit_schema(_frame()[["age", "target"]], label="target", ignore=["age"])


def test_labels_missing_all_missing_and_continuous(tmp_path):
    frame = _frame()
    frame.loc[[2, 4], "target"] = None
    splits = _load(_csv(tmp_path, frame), label="target")
    assert splits.train.y[[2, 4]].tolist() == [UNLABELED, UNLABELED] and not splits.train.labeled
    with pytest.raises(SelfsupError, match="label column 'empty' has no values"):
        _load(_csv(tmp_path), label="empty")
    with pytest.raises(SelfsupError, match="label column 'age' looks continuous.*probing needs class labels"):
        _load(_csv(tmp_path), label="age")
    numeric = _load(_csv(tmp_path), label="rating")
    assert numeric.train.classes == ["1", "2", "3", "4"]


def test_parquet_equals_csv(tmp_path):
    frame = _frame()
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    from_csv = _load(_csv(tmp_path, frame), label="target")
    from_parquet = _load(tmp_path / "table.parquet", label="target")
    assert from_parquet.preprocessing.settings["schema"] == from_csv.preprocessing.settings["schema"]
    assert torch.equal(from_parquet.train.x, from_csv.train.x) and torch.equal(from_parquet.train.y, from_csv.train.y)


def test_tsv_and_int_column_with_gaps(tmp_path):
    """An int column with blanks reads as floats; its codes still match the same column without blanks."""
    frame = _frame()
    gappy = frame.assign(rating=frame["rating"].astype(object).where(np.arange(N) % 10 != 0, None))
    gappy.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    splits = _load(tmp_path / "t.tsv", label="target")
    schema = splits.preprocessing.settings["schema"]
    assert schema["categorical"][2] == {"name": "rating", "categories": ["1", "2", "3", "4"]}
    x, _ = apply_schema(frame, schema)
    rows = np.arange(N) % 10 != 0
    assert torch.equal(x[rows], splits.train.x[rows]) and (splits.train.x[~rows, 5] == 0).all()


def test_schema_is_json_and_round_trips(tmp_path):
    frame = _frame()
    schema = _load(_csv(tmp_path, frame), label="target").preprocessing.settings["schema"]
    again = json.loads(json.dumps(schema))
    assert again == schema
    x1, y1 = apply_schema(frame, schema)
    x2, y2 = apply_schema(frame, again)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_infinite_and_text_values_in_numeric_columns(tmp_path):
    frame = _frame().assign(score=[str(v) for v in np.linspace(0.5, 9.5, N)])
    frame.loc[0, "score"] = "?"
    frame.loc[1, "age"] = np.inf
    with pytest.warns(UserWarning) as record:
        splits = load(str(_csv(tmp_path, frame)), DataOptions(label="target"))
    messages = " ".join(str(r.message) for r in record)
    assert "column 'score': non-numeric values '?' (1 rows) treated as missing" in messages
    assert "column 'age': 1 infinite values treated as missing" in messages
    schema = splits.preprocessing.settings["schema"]
    assert [e["name"] for e in schema["numeric"]] == ["age", "income", "score"]
    assert schema["indicators"] == ["age", "score"]
    assert splits.train.x[1, 0] == 0 and splits.train.x[0, 2] == 0 and splits.train.x[0, 4] == 1
    with pytest.raises(SelfsupError, match="column 'age' should hold numbers"):
        apply_schema(frame.assign(age=["old"] * N), schema)


def test_ids_from_an_ignored_id_column(tmp_path):
    frame = _frame().rename(columns={"user": "user_id"})
    splits = _load(_csv(tmp_path, frame), label="target", ignore=("user_id",))
    assert splits.train.ids[:2] == ["u-000", "u-001"]
    assert splits.preprocessing.settings["schema"]["ignored"] == ["user_id"]
    assert all(d["name"] != "user_id" for d in splits.preprocessing.settings["schema"]["dropped"])


def test_row_index_column_is_left_out(tmp_path):
    path = tmp_path / "indexed.csv"
    _frame().to_csv(path)  # pandas' index becomes the column 'Unnamed: 0'
    schema = _load(path, label="target").preprocessing.settings["schema"]
    assert {"name": "Unnamed: 0", "reason": tabular.ID_REASON} in schema["dropped"]


def test_unreadable_tables(tmp_path):
    with pytest.raises(SelfsupError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(SelfsupError, match="unknown file type '.xlsx'"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SelfsupError, match="is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(SelfsupError, match="no data rows"):
        read_table(tmp_path / "header.csv")
    garbage = bytes(np.random.default_rng(0).integers(128, 256, 4000, dtype=np.uint8))
    (tmp_path / "garbage.csv").write_bytes(garbage)
    with pytest.raises(SelfsupError, match="not UTF-8"):
        read_table(tmp_path / "garbage.csv")
    (tmp_path / "garbage.parquet").write_bytes(garbage)
    with pytest.raises(SelfsupError, match="valid Parquet"):
        read_table(tmp_path / "garbage.parquet")
    (tmp_path / "semi.csv").write_text("a;b\n1;2\n3;4\n")
    with pytest.raises(SelfsupError, match="separated by ';'"):
        read_table(tmp_path / "semi.csv")


def test_duplicate_column_names_in_a_csv_header_are_refused(tmp_path):
    """pandas renames a repeated header name ('age', 'age.1'); the header as written is checked."""
    frame = _frame()[["age", "income", "city", "rating", "target"]]
    path = tmp_path / "dup.csv"
    frame.set_axis(["age", "income", "age", "rating", "income"], axis=1).to_csv(path, index=False)
    assert list(pd.read_csv(path).columns) == ["age", "income", "age.1", "rating", "income.1"]
    with pytest.raises(SelfsupError) as raised:
        read_table(path)
    assert str(raised.value) == f"table '{path}' has duplicate columns 'age', 'income'; rename them."
    frame.set_axis(["age", "income", "age.1", "rating", "target"], axis=1).to_csv(path, index=False)
    assert list(read_table(path).columns) == ["age", "income", "age.1", "rating", "target"]  # a real 'age.1'
    tsv = tmp_path / "dup.tsv.gz"
    frame.set_axis(["a", "b", "c", "b", "e"], axis=1).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(SelfsupError, match="duplicate columns 'b'; rename them"):
        _load(tsv)


def test_from_frames_with_a_test_split():
    frame = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = from_frames(frame.iloc[:30], frame.iloc[30:], "frames", DataOptions(label="target"))
    schema = splits.preprocessing.settings["schema"]
    assert schema["numeric"][1]["mean"] == pytest.approx(frame["income"][:30].mean())
    assert splits.test.x.shape == (10, splits.train.x.shape[1]) and splits.test.ids[0] == "row-30"
    assert splits.test.classes == splits.train.classes == ["no", "yes"]


def test_raw_features_one_hot_codes(tmp_path):
    splits = _load(_csv(tmp_path), label="target")
    schema = splits.preprocessing.settings["schema"]
    config = tabular.encoder_config("mlp", splits, None, None)  # raw features follow the encoder's columns
    raw = raw_features(splits.train.x, config)
    assert raw.dtype == np.float32 and raw.shape == (N, 3 + 4 + 3 + 5)
    np.testing.assert_array_equal(raw[:, :3], splits.train.x[:, :3].numpy())
    city = raw[:, 3:7]
    assert np.all(city.sum(1) == 1) and city[5, 0] == 1 and city[0, 1] == 1
    with pytest.raises(SelfsupError, match="columns make 6"):
        raw_features(splits.train.x[:, :4], config)
    # a config written before preprocessing.json (the schema in place of its columns) gives the same features
    np.testing.assert_array_equal(raw_features(splits.train.x, {"schema": schema}), raw)
    # the gradient-boosted trees baseline is told which raw columns are category codes
    assert get_modality("tabular").tree_columns(config).tolist() == [False] * 3 + [True] * 3


def test_encoder_config_uses_the_fitted_schema(tmp_path):
    table = pytest.importorskip("selfsup.encoders.table")
    splits = _load(_csv(tmp_path), label="target")
    options = DataOptions(label="target")
    config = tabular.encoder_config(tabular.DEFAULT_ENCODER, splits, options, {})
    schema = splits.preprocessing.settings["schema"]
    # the config holds the column layout; the schema itself is the encoder's preprocessing
    assert "schema" not in config and config["columns"] == table.schema_columns(schema)
    assert config["columns"] == {"numeric": 2, "indicators": 1, "cardinalities": [4, 3, 5]}
    assert config["n_features"] == splits.train.x.shape[1]
    assert tabular.preprocessing(splits, options, config) == Preprocessing("tabular", {"schema": schema})
    assert tabular.DEFAULT_ENCODER in table.ENCODERS


def test_a_table_without_its_fitted_schema_is_refused():
    """Fitting an encoder needs the schema its rows were read with (an image-style Splits has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = from_frames(_frame(), None, "frames", DataOptions(label="target"))
    unread = tabular.Splits(train=splits.train, test=None, name="frames", modality="tabular")
    with pytest.raises(SelfsupError, match="holds no valid table schema"):
        tabular.encoder_config("mlp", unread, None, None)
    with pytest.raises(SelfsupError, match="holds no valid table schema"):
        from_frames(_frame(), None, "frames", DataOptions(), Preprocessing("tabular", {}))
