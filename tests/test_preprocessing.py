"""``selfsup.data.Preprocessing``: how raw files become an encoder's input, saved as ``preprocessing.json`` beside
``encoder.safetensors``. A pre-training run writes it (a table's schema; text's tokenizer, field and label) and
reads its data once, already as the encoder reads it; exports written before the file existed load with what
their encoder config carried; a broken file is one line naming it. Real data throughout (iris rows with a
categorical column, GunPoint series, hand-written reviews, the shipped spoken words)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_iris

from selfsup.checkpoint import META, PREPROCESSING, WEIGHTS, load_encoder, read_meta, save_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions, Preprocessing
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.table import schema_columns
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.modalities import get_modality, tabular, text
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"epochs": 1, "max_steps": 2, "batch_size": 32, "online_probe": False}
TABLE = {"method": "scarf", "label": "species", "method_args": {"hidden_dim": 32, "projection_dim": 16}, **TINY}
SMALL_BERT = {"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16}
REVIEWS = [
    ("a warm and funny film", "good"),
    ("wonderful acting and a clever script", "good"),
    ("a delight from start to finish", "good"),
    ("charming and heartfelt", "good"),
    ("a dull and tedious mess", "bad"),
    ("the plot makes no sense at all", "bad"),
    ("badly acted and far too long", "bad"),
    ("boring from the first scene", "bad"),
]


# --------------------------------------------------------------------------- the object itself


def test_a_preprocessing_round_trips_through_its_json():
    schema = {"numeric": [{"name": "a", "mean": 1.5, "std": 2.0}], "indicators": [], "categorical": []}
    reading = Preprocessing("tabular", {"schema": schema})
    data = json.loads(json.dumps(reading.as_dict()))
    assert data == {
        "format": "selfsup-preprocessing",
        "format_version": 1,
        "modality": "tabular",
        "settings": {"schema": schema},
    }
    assert Preprocessing.from_dict(data, "p.json") == reading
    assert reading.get("schema") == schema and reading.get("tokenizer") is None and reading.get("x", 3) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.modality = "text"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "is not a selfsup preprocessing description"),
        ({"format": "selfsup-encoder", "settings": {}}, "is not a selfsup preprocessing description"),
        ({"format": "selfsup-preprocessing", "modality": "audio"}, "is not a selfsup preprocessing description"),
        (
            {"format": "selfsup-preprocessing", "format_version": 2, "modality": "audio", "settings": {}},
            "newer selfsup",
        ),
        ({"format": "selfsup-preprocessing", "settings": {}}, "is not a selfsup preprocessing description"),
        (
            {"format": "selfsup-preprocessing", "format_version": "x", "modality": "audio", "settings": {}},
            "not a number",
        ),
    ],
)
def test_from_dict_refuses_anything_else_naming_where(data, message):
    with pytest.raises(SelfsupError, match=message) as info:
        Preprocessing.from_dict(data, "runs/x/preprocessing.json")
    assert "'runs/x/preprocessing.json'" in str(info.value)


def test_an_old_encoder_config_gives_the_reading_settings_it_carried():
    """Before preprocessing.json, reading settings sat in the encoder config: the schema, the audio rate and clip
    length, the tokenizer and length at the top level; the CSV columns of series and text under "read"."""
    schema = {"numeric": [], "indicators": [], "categorical": [{"name": "c", "categories": ["x"]}]}
    table = {"modality": "tabular", "name": "mlp", "schema": schema, "n_features": 1, "width": 16}
    assert Preprocessing.from_old_config(table) == Preprocessing("tabular", {"schema": schema})
    audio = {"modality": "audio", "name": "audio_cnn", "sample_rate": 8000, "segment_seconds": 0.5, "n_mels": 32}
    assert Preprocessing.from_old_config(audio).settings == {"sample_rate": 8000, "segment_seconds": 0.5}
    old_text = text_encoder_config("small_bert", **SMALL_BERT) | {"read": {"text_field": "body", "label": "y"}}
    assert Preprocessing.from_old_config(old_text) == Preprocessing(
        "text",
        {"tokenizer": "minilm", "max_length": 16, "pad_id": old_text["pad_id"], "text_field": "body", "label": "y"},
    )
    read = {"label": "kind", "ignore": ["who"], "series_id": None, "time_column": None}
    series = {"modality": "timeseries", "name": "dilated_conv", "in_chans": 1, "read": read}
    assert Preprocessing.from_old_config(series) == Preprocessing("timeseries", read)
    image = {"modality": "image", "name": "small_cnn", "image_size": 16, "in_chans": 1}
    assert Preprocessing.from_old_config(image) == Preprocessing("image", {"image_size": 16})
    # a current table config describes the network only: nothing to read with
    current = {"modality": "tabular", "name": "mlp", "columns": schema_columns(schema), "n_features": 1}
    assert Preprocessing.from_old_config(current) == Preprocessing("tabular", {})


# --------------------------------------------------------------------------- a table run's export


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory) -> Path:
    """Iris (150 real rows): four measurements, a categorical size band, the species."""
    bunch = load_iris(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    frame["petal size"] = pd.cut(frame["petal length (cm)"], 3, labels=["small", "medium", "large"]).astype(str)
    frame["species"] = bunch.target_names[bunch.target]
    path = tmp_path_factory.mktemp("iris") / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory, iris_csv):
    out = tmp_path_factory.mktemp("table") / "run"
    return pretrain(
        make_recipe(data=str(iris_csv), out=str(out), encoder_args={"width": 16, "depth": 1}, **TABLE), progress=False
    )


ROWS = slice(None, None, 15)  # ten rows, of every species


def _new_rows(iris_csv: Path, path: Path) -> Path:
    """Ten iris rows with the columns in reverse order, the first four in a size band never seen in
    pre-training."""
    new = pd.read_csv(iris_csv).iloc[ROWS, ::-1].copy()
    new.loc[new.index[:4], "petal size"] = "enormous"
    new.to_csv(path, index=False)
    return path


def test_a_run_saves_the_table_schema_beside_the_weights(table_run, iris_csv, tmp_path):
    out, schema = table_run.out, table_run.splits.preprocessing.settings["schema"]
    assert (out / WEIGHTS).is_file() and (out / PREPROCESSING).is_file()
    saved = json.loads((out / PREPROCESSING).read_text())
    assert saved["format"] == "selfsup-preprocessing" and saved["modality"] == "tabular"
    assert saved["settings"] == {"schema": schema}
    assert schema["label"] == "species" and [c["name"] for c in schema["categorical"]] == ["petal size"]
    config = json.loads((out / META).read_text())["encoder"]
    assert "schema" not in config and config["columns"] == schema_columns(schema)  # the network's layout only
    encoder = load_encoder(out)
    assert encoder.preprocessing == Preprocessing("tabular", {"schema": schema}) == table_run.encoder.preprocessing

    # new rows are read with the export's schema: its column order and width, an unseen category -> code 0
    x = load_data(str(_new_rows(iris_csv, tmp_path / "new.csv")), preprocessing=encoder.preprocessing).train.x
    same = load_data(str(iris_csv), preprocessing=encoder.preprocessing).train.x[ROWS]
    band = tabular.schema_width(schema) - 1  # the one categorical column comes last
    assert x.shape == (10, config["n_features"]) == (10, tabular.schema_width(schema))
    assert (x[:4, band] == 0).all() and (same[:4, band] > 0).all()
    assert torch.equal(x[:, :band], same[:, :band]) and torch.equal(x[4:], same[4:])
    with torch.no_grad():
        assert encoder(x).shape == (10, encoder.embed_dim)


def _as_old_export(export: Path, folder: Path, schema: dict) -> Path:
    """``export`` as selfsup wrote it before preprocessing.json: the schema in the encoder config, in place of
    its column layout."""
    folder.mkdir()
    shutil.copy(export / WEIGHTS, folder / WEIGHTS)
    meta = json.loads((export / META).read_text())
    encoder = meta["encoder"]
    meta["encoder"] = {key: value for key, value in encoder.items() if key != "columns"} | {"schema": schema}
    (folder / META).write_text(json.dumps(meta))
    return folder


def test_a_table_export_written_before_preprocessing_json_still_loads(table_run, iris_csv, tmp_path):
    schema = table_run.splits.preprocessing.settings["schema"]
    new = load_encoder(table_run.out)
    old = load_encoder(_as_old_export(table_run.out, tmp_path / "old", schema))
    assert "columns" not in read_meta(tmp_path / "old")["encoder"]
    assert old.config == new.config  # rebuilt from the schema's layout
    assert old.preprocessing.settings["schema"] == schema and old.preprocessing == new.preprocessing
    x = load_data(str(iris_csv), preprocessing=old.preprocessing).train.x
    assert torch.equal(x, load_data(str(iris_csv), preprocessing=new.preprocessing).train.x)
    with torch.no_grad():
        assert torch.equal(old(x), new(x))  # the same weights
    # and through the command line
    target = tmp_path / "e.npy"
    assert main(["embed", "--encoder", str(tmp_path / "old"), "--data", str(iris_csv), "--out", str(target)]) == 0
    with torch.no_grad():
        assert np.allclose(np.load(target), new(x).numpy(), atol=1e-5)


def test_a_text_export_written_before_preprocessing_json_reads_its_fields(tmp_path):
    torch.manual_seed(0)
    config = text_encoder_config("small_bert", **SMALL_BERT)
    encoder = build_encoder(config).eval()
    save_encoder(encoder, tmp_path / "old")
    meta = json.loads((tmp_path / "old" / META).read_text())
    meta["encoder"]["read"] = {"text_field": "body", "label": "y"}  # how text configs carried their fields
    (tmp_path / "old" / META).write_text(json.dumps(meta))
    old = load_encoder(tmp_path / "old")
    assert old.preprocessing.settings == {
        "tokenizer": "minilm",
        "max_length": 16,
        "pad_id": config["pad_id"],
        "text_field": "body",
        "label": "y",
    }
    path = tmp_path / "new.jsonl"
    path.write_text("\n".join(json.dumps({"body": t, "y": y}) for t, y in REVIEWS))
    data = load_data(str(path), preprocessing=old.preprocessing).train  # no --text-column, no --label
    assert data.x.shape == (8, 16) and data.classes == ["bad", "good"] and data.labeled
    with torch.no_grad():
        assert torch.equal(old(data.x), encoder(data.x))


def test_a_series_export_written_before_preprocessing_json_reads_its_columns(tmp_path, series):
    gunpoint = load_builtin("gunpoint")
    config = get_modality("timeseries").encoder_config("dilated_conv", gunpoint, DataOptions(), {"depth": 1})
    torch.manual_seed(0)
    encoder = build_encoder(config).eval()
    save_encoder(encoder, tmp_path / "old")
    meta = json.loads((tmp_path / "old" / META).read_text())
    meta["encoder"]["read"] = {"label": "kind", "ignore": ["who"], "series_id": None, "time_column": None}
    (tmp_path / "old" / META).write_text(json.dumps(meta))
    old = load_encoder(tmp_path / "old")
    assert old.preprocessing.modality == "timeseries"
    assert (old.preprocessing.get("label"), old.preprocessing.get("ignore")) == ("kind", ["who"])
    frame = pd.DataFrame(series[:, 0].numpy(), columns=[f"t{i}" for i in range(150)])
    frame.insert(0, "who", [f"s{i}" for i in range(len(frame))])
    frame["kind"] = [gunpoint.train.classes[int(i)] for i in gunpoint.train.y]
    frame.to_csv(tmp_path / "gunpoint.csv", index=False)
    data = load_data(str(tmp_path / "gunpoint.csv"), preprocessing=old.preprocessing).train  # a CSV, read as series
    assert data.x.shape == (50, 1, 150) and data.classes == gunpoint.train.classes
    assert torch.equal(data.y, gunpoint.train.y)
    with torch.no_grad():
        assert torch.allclose(old(data.x), encoder(series), atol=1e-6)


# --------------------------------------------------------------------------- a broken preprocessing.json


def _copy_export(export: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in (WEIGHTS, META, PREPROCESSING):
        shutil.copy(export / name, folder / name)
    return folder


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "is not valid JSON"),
        (
            json.dumps(Preprocessing("text", {"tokenizer": "minilm", "max_length": 8, "pad_id": 0}).as_dict()),
            "describes text data but the encoder beside it is tabular",
        ),
    ],
    ids=["not-json", "another-modality"],
)
def test_a_broken_preprocessing_json_is_one_line_naming_it(table_run, iris_csv, tmp_path, capsys, content, message):
    broken = _copy_export(table_run.out, tmp_path / "broken")
    (broken / PREPROCESSING).write_text(content)
    with pytest.raises(SelfsupError, match=message) as info:
        load_encoder(broken)
    assert str(broken / PREPROCESSING) in str(info.value)
    capsys.readouterr()
    argv = ["embed", "--encoder", str(broken), "--data", str(iris_csv), "--out", str(tmp_path / "e.npy")]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and "Traceback" not in err, err
    assert str(broken / PREPROCESSING) in err and not (tmp_path / "e.npy").exists()
    # continued pre-training from it is refused before anything is written
    with pytest.raises(SelfsupError, match=message):
        pretrain(make_recipe(data=str(iris_csv), init=str(broken), out=str(tmp_path / "run"), **TABLE), progress=False)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the data is read once


@pytest.fixture
def count_reads(monkeypatch):
    """``count_reads(module)``: the preprocessing of every call of that modality's loader (the real one, called
    through a counting wrapper)."""

    def count(module) -> list:
        calls: list = []
        real = module.MODALITY.load

        def load(source, options, preprocessing=None):
            calls.append(preprocessing)
            return real(source, options, preprocessing)

        monkeypatch.setattr(module, "MODALITY", dataclasses.replace(module.MODALITY, load=load))
        return calls

    return count


def test_continuing_a_table_export_reads_the_data_once_with_its_schema(table_run, iris_csv, tmp_path, count_reads):
    exported = load_encoder(table_run.out).preprocessing
    data = _new_rows(iris_csv, tmp_path / "new.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ten rows: a fresh fit may leave columns out
        fitted = tabular.load(str(data), DataOptions(label="species")).preprocessing
    assert fitted != exported  # read on its own, the data would get another schema
    reads = count_reads(tabular)
    result = pretrain(
        make_recipe(data=str(data), init=str(table_run.out), out=str(tmp_path / "run"), **(TABLE | {"batch_size": 4})),
        progress=False,
    )
    assert len(reads) == 1 and reads[0] == exported
    assert result.splits.preprocessing == result.encoder.preprocessing == exported
    assert load_encoder(tmp_path / "run").preprocessing == exported
    x = result.splits.train.x
    assert x.shape == (10, tabular.schema_width(exported.get("schema"))) and (x[:4, -1] == 0).all()


@pytest.fixture
def reviews(tmp_path) -> Path:
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps({"review": t, "y": y}) for t, y in REVIEWS))
    return path


def test_a_text_run_reads_once_with_the_chosen_encoders_tokenizer(tmp_path, reviews, count_reads):
    """small_bert at 16 tokens: known before the text is read, so it is not read first at the default
    encoder's 128 tokens and then again."""
    reads = count_reads(text)
    base = {"data": str(reviews), "text_field": "review", "label": "y", **TINY, "batch_size": 4}
    export = pretrain(
        make_recipe(method="mlm", encoder="small_bert", encoder_args=SMALL_BERT, out=str(tmp_path / "a"), **base),
        progress=False,
    )
    assert len(reads) == 1 and (reads[0].get("max_length"), reads[0].get("tokenizer")) == (16, "minilm")
    assert export.splits.train.x.shape == (8, 16)
    saved = load_encoder(export.out).preprocessing
    assert saved == export.encoder.preprocessing
    assert (saved.get("max_length"), saved.get("text_field"), saved.get("label")) == (16, "review", "y")
    # continuing the export: read once more, with the export's tokenizer (this source's fields are the recipe's)
    reads.clear()
    continued = pretrain(
        make_recipe(method="mlm", init=str(export.out), out=str(tmp_path / "b"), **base), progress=False
    )
    assert reads == [saved.without_source()] and continued.splits.train.x.shape == (8, 16)
    assert load_encoder(continued.out).preprocessing == saved  # the same fields, given again by the recipe


def test_re_exporting_an_old_table_export_keeps_its_schema(table_run, tmp_path):
    """``selfsup export`` of an export written before preprocessing.json writes the schema its config carried."""
    from selfsup.workflows.export import export_encoder

    schema = table_run.splits.preprocessing.settings["schema"]
    old = _as_old_export(table_run.out, tmp_path / "old", schema)
    again = export_encoder(old, tmp_path / "again")
    assert json.loads((again / PREPROCESSING).read_text())["settings"] == {"schema": schema}
    assert "schema" not in read_meta(again)["encoder"] and load_encoder(again).preprocessing.get("schema") == schema


def test_continuing_a_series_export_reads_the_new_source_with_its_own_columns(tmp_path, series):
    """--init of a series export pre-trained on a labeled CSV: a new, unlabeled CSV is read with the export's
    channel count but the recipe's columns, not the export's --label."""
    gunpoint = load_builtin("gunpoint")
    frame = pd.DataFrame(series[:, 0].numpy(), columns=[f"t{i}" for i in range(150)])
    frame["kind"] = [gunpoint.train.classes[int(i)] for i in gunpoint.train.y]
    frame.to_csv(tmp_path / "labeled.csv", index=False)
    frame.drop(columns="kind").to_csv(tmp_path / "unlabeled.csv", index=False)
    tiny = {"method": "simclr", "epochs": 1, "max_steps": 1, "batch_size": 16, "online_probe": False}
    first = pretrain(
        make_recipe(
            data=str(tmp_path / "labeled.csv"), modality="timeseries", label="kind", out=str(tmp_path / "a"), **tiny
        ),
        progress=False,
    )
    assert load_encoder(first.out).preprocessing.get("label") == "kind"
    further = pretrain(
        make_recipe(
            data=str(tmp_path / "unlabeled.csv"),
            modality="timeseries",
            init=str(first.out),
            out=str(tmp_path / "b"),
            **tiny,
        ),
        progress=False,
    )
    assert further.splits.train.x.shape == (50, 1, 150) and not further.splits.train.labeled
    assert load_encoder(further.out).preprocessing.get("label") is None  # this source's columns, saved with it


def test_a_method_for_another_modality_is_named_before_any_tokenizer(tmp_path, reviews):
    """CPC on text: the method's modality is the message, not its encoder defaults on a text encoder."""
    with pytest.raises(SelfsupError, match="method 'cpc' is made for timeseries data"):
        pretrain(
            make_recipe(data=str(reviews), text_field="review", method="cpc", max_steps=1, out=str(tmp_path / "r")),
            progress=False,
        )
