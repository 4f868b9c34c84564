"""The text readers (.txt, .jsonl, CSV), tokenisation into padded ids, the views and the bag-of-tokens baseline,
on small hand-written files read with the shipped MiniLM tokenizer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selfsup.data import UNLABELED, DataOptions, Preprocessing
from selfsup.encoders.text import load_tokenizer, text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.modalities import detect_modality, text
from selfsup.sources import load_data
from selfsup.views import ViewSpec

TEXT = DataOptions(modality="text")


@pytest.fixture(scope="module")
def short() -> dict:
    return text_encoder_config("minilm", max_length=16)


@pytest.fixture(scope="module")
def short_read(short) -> Preprocessing:
    """How an encoder of config ``short`` reads text: its tokenizer and length."""
    return Preprocessing("text", {"tokenizer": short["tokenizer"], "max_length": 16, "pad_id": short["pad_id"]})


def _write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def _jsonl(path: Path, records: list) -> Path:
    return _write(path, "\n".join(json.dumps(r) for r in records) + "\n")


def _error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(SelfsupError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def _decoded(x: torch.Tensor, row: int) -> str:
    return load_tokenizer("minilm").decode([i for i in x[row].tolist() if i != 0], skip_special_tokens=True)


def test_txt_one_text_per_line_blank_lines_dropped(tmp_path, short, short_read):
    path = _write(tmp_path / "notes.txt", "A first line.\n\n   \nsecond line here\n")
    splits = load_data(str(path), preprocessing=short_read)
    data = splits.train
    assert splits.modality == "text" and splits.test is None
    assert data.ids == ["line-1", "line-4"]
    assert data.classes is None and data.y.tolist() == [UNLABELED, UNLABELED]  # one per sample
    assert data.x.shape == (2, 16) and data.x.dtype == torch.int64
    assert _decoded(data.x, 0) == "a first line." and _decoded(data.x, 1) == "second line here"
    # [CLS] text [SEP], then padding with the pad id to max_length: the attention mask is x != pad_id
    assert data.x[0, 0].item() == 101 and (data.x[0] == 102).sum() == 1
    length = int((data.x[0] != short["pad_id"]).sum())
    assert (data.x[0, length:] == short["pad_id"]).all() and data.x[0, length - 1].item() == 102
    assert splits.preprocessing.settings == {
        "tokenizer": "minilm",
        "max_length": 16,
        "pad_id": short["pad_id"],
        "text_field": None,
        "label": None,
    }


def test_long_texts_are_truncated_to_max_length(tmp_path, short, short_read):
    path = _write(tmp_path / "long.txt", " ".join(["word"] * 100) + "\n")
    with pytest.warns(UserWarning, match=r"^1 of 1 texts are longer than minilm's 16 tokens and were cut to 16\.$"):
        x = load_data(str(path), preprocessing=short_read).train.x
    assert x.shape == (1, 16) and (x != short["pad_id"]).all() and x[0, -1].item() == 102


def test_truncation_is_counted_in_one_warning(tmp_path, short, recwarn, short_read):
    exact = " ".join(["word"] * 14)  # 14 words + [CLS] + [SEP]: exactly 16 tokens, nothing cut
    lines = [exact, "short text", " ".join(["word"] * 15), exact + " more words here", "another one"]
    with pytest.warns(
        UserWarning, match=r"^2 of 5 texts are longer than minilm's 16 tokens and were cut to 16\.$"
    ) as record:
        data = load_data(str(_write(tmp_path / "mixed.txt", "\n".join(lines) + "\n")), preprocessing=short_read).train
    assert len(record) == 1 and (data.x[0] != short["pad_id"]).all()
    load_data(str(_write(tmp_path / "fits.txt", exact + "\nshort\n")), preprocessing=short_read)
    assert len(recwarn) == 0  # nothing cut: no warning


def test_truncation_count_without_a_fast_tokenizer(short):
    """Tokenizers without Rust encodings are counted by reading the full rows again, one token longer."""
    from transformers import BatchEncoding

    from selfsup.encoders.text import _cut

    tokenizer = load_tokenizer("minilm")
    texts = [" ".join(["word"] * 14), " ".join(["word"] * 15), "short"]
    encoded = tokenizer(texts, truncation=True, max_length=16)
    plain = BatchEncoding({"input_ids": encoded["input_ids"]})
    assert plain.encodings is None and _cut(tokenizer, plain, texts, 16) == _cut(tokenizer, encoded, texts, 16) == 1


def test_special_token_text_in_the_data_is_not_a_special_token(tmp_path, short, short_read):
    path = _write(tmp_path / "tricky.txt", "hello [PAD] world [MASK]\n")
    x = load_data(str(path), preprocessing=short_read).train.x[0]
    inner = x[1 : int((x != short["pad_id"]).sum()) - 1]
    assert not torch.isin(inner, torch.tensor(short["special_ids"])).any()


def test_jsonl_with_labels_and_another_text_field(tmp_path, short_read):
    path = _jsonl(
        tmp_path / "reviews.jsonl",
        [
            {"body": "great film", "stars": 5},
            {"body": "awful", "stars": 1},
            {"body": "   ", "stars": 3},
            {"body": "fine I guess"},
            {"body": "loved it", "stars": 5.0},
        ],
    )
    data = load_data(str(path), DataOptions(label="stars", text_field="body"), preprocessing=short_read).train
    assert data.ids == ["line-1", "line-2", "line-4", "line-5"]  # the blank text is left out
    assert data.classes == ["1", "5"]
    assert data.y.tolist() == [1, 0, UNLABELED, 1]


def test_an_id_field_or_column_names_the_samples(tmp_path, short_read):
    path = _jsonl(
        tmp_path / "captions.jsonl", [{"id": "yes/clip-1", "text": "a"}, {"text": "b"}, {"id": 7, "text": "c"}]
    )
    assert load_data(str(path), preprocessing=short_read).train.ids == ["yes/clip-1", "line-2", "7"]
    table = tmp_path / "captions.csv"
    pd.DataFrame({"id": ["a/1", None, "a/3"], "text": ["x", "y", "z"]}).to_csv(table, index=False)
    assert load_data(str(table), TEXT, preprocessing=short_read).train.ids == ["a/1", "row-1", "a/3"]


def test_jsonl_is_detected_and_read_without_an_encoder(tmp_path):
    path = _jsonl(tmp_path / "plain.jsonl", [{"text": "one"}, {"text": "two"}])
    assert detect_modality(str(path)) == "text" and detect_modality(str(tmp_path / "a.txt")) == "text"
    splits = load_data(str(path))  # the default encoder's tokenizer and length
    assert splits.train.x.shape == (2, 128) and splits.preprocessing == text.default_preprocessing()
    assert (splits.preprocessing.get("tokenizer"), splits.preprocessing.get("max_length")) == ("minilm", 128)


def test_csv_text_column_with_labels(tmp_path, short_read):
    path = tmp_path / "news.csv"
    pd.DataFrame(
        {
            "headline": ["Markets rally", "Team wins final", None, "Rates on hold"],
            "topic": ["business", "sport", "sport", None],
        }
    ).to_csv(path, index=False)
    data = load_data(
        str(path), DataOptions(modality="text", text_field="headline", label="topic"), preprocessing=short_read
    ).train
    assert data.ids == ["row-0", "row-1", "row-3"]
    assert data.classes == ["business", "sport"] and data.y.tolist() == [0, 1, UNLABELED]
    assert detect_modality(str(path)) == "tabular"  # a CSV is a table unless --modality text says otherwise


def test_a_text_table_with_a_repeated_column_name_is_refused(tmp_path, short_read):
    path = _write(tmp_path / "notes.csv", "text,label,text\nfirst note,a,second note\nthird,b,fourth\n")
    _error(
        "^" + re.escape(f"table '{path}' has duplicate columns 'text'; rename them.") + "$",
        load_data,
        str(path),
        TEXT,
        preprocessing=short_read,
    )


def test_options_default_to_how_the_encoder_read_its_data(tmp_path, short_read):
    path = _jsonl(tmp_path / "d.jsonl", [{"body": "good", "y": "pos"}, {"body": "bad", "y": "neg"}])
    options = DataOptions(text_field="body", label="y")
    trained = load_data(str(path), options, preprocessing=short_read)
    config = text.encoder_config("minilm", trained, options, {"max_length": 16})
    assert "read" not in config  # how the files were read is the encoder's preprocessing, not its config
    reading = text.preprocessing(trained, options, config)
    assert (reading.get("text_field"), reading.get("label")) == ("body", "y") and reading.get("max_length") == 16
    assert text.planned_preprocessing("minilm", options, {"max_length": 16}) == reading  # known before reading
    data = load_data(str(path), preprocessing=reading).train
    assert data.classes == ["neg", "pos"] and data.y.tolist() == [1, 0]
    plain = load_data(str(_write(tmp_path / "p.txt", "good\n")), preprocessing=reading).train  # no fields to name
    assert plain.ids == ["line-1"] and plain.classes is None


def test_a_label_field_no_record_has_is_refused_unless_it_is_the_encoders_own(tmp_path, short_read):
    path = _jsonl(tmp_path / "r.jsonl", [{"text": "good", "stars": 5}, {"text": "bad", "stars": 1, "user": "x"}])
    message = _error(
        "no record of .* has the label field 'star'",
        load_data,
        str(path),
        DataOptions(label="star"),
        preprocessing=short_read,
    )
    assert "'text', 'stars', 'user'" in message and "--label" in message
    # new data without the field the encoder's pre-training data was labeled by (embed): unlabeled
    reading = text.planned_preprocessing("minilm", DataOptions(label="sentiment"), {"max_length": 16})
    data = load_data(str(path), preprocessing=reading).train
    assert data.classes is None and data.y.tolist() == [UNLABELED] * len(data) and len(data) > 0
    table = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a", "b"]}).to_csv(table, index=False)
    assert load_data(str(table), TEXT, preprocessing=reading).train.classes is None


def test_a_folder_is_not_text(tmp_path):
    message = _error("is a folder", load_data, str(tmp_path), TEXT)
    assert ".txt, .jsonl or .csv file" in message and "does not exist" not in message


def test_reader_errors_are_one_clear_line(tmp_path, short_read):
    empty = _write(tmp_path / "empty.txt", "")
    _error("holds no text", load_data, str(empty), preprocessing=short_read)
    _error("holds no text", load_data, str(_write(tmp_path / "blank.txt", "\n  \n")), preprocessing=short_read)
    _error("holds no text", load_data, str(_write(tmp_path / "e.jsonl", "")), preprocessing=short_read)
    missing = _jsonl(tmp_path / "m.jsonl", [{"text": "ok"}, {"body": "no text field"}])
    message = _error("line 2 .* no text field 'text'", load_data, str(missing), preprocessing=short_read)
    assert "'body'" in message and "--text-column" in message
    _error(
        "line 1 .* not valid JSON", load_data, str(_write(tmp_path / "bad.jsonl", "{oops\n")), preprocessing=short_read
    )
    _error(
        "JSON list, not an object", load_data, str(_write(tmp_path / "l.jsonl", "[1, 2]\n")), preprocessing=short_read
    )
    _error(
        "holds a int .* where text belongs",
        load_data,
        str(_jsonl(tmp_path / "n.jsonl", [{"text": 3}])),
        preprocessing=short_read,
    )
    table = tmp_path / "t.csv"
    pd.DataFrame({"body": ["a", "b"]}).to_csv(table, index=False)
    _error("no column 'text'.*--text-column", load_data, str(table), TEXT, preprocessing=short_read)
    _error(
        "no column 'y'.*--label",
        load_data,
        str(table),
        DataOptions(modality="text", text_field="body", label="y"),
        preprocessing=short_read,
    )
    txt = _write(tmp_path / "x.txt", "some text\n")
    _error(
        "--label and --text-column need a .jsonl or .csv",
        load_data,
        str(txt),
        DataOptions(label="y"),
        preprocessing=short_read,
    )
    _error("unknown file type '.md'", text.load, str(_write(tmp_path / "x.md", "hi\n")), TEXT, short_read)
    _error("does not exist", load_data, str(tmp_path / "none.txt"), TEXT)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9\n".encode("latin-1"))
    _error("not UTF-8", load_data, str(latin), preprocessing=short_read)


def test_views_are_the_ids_themselves(tmp_path, short, short_read):
    splits = load_data(str(_write(tmp_path / "v.txt", "a\nb\n")), preprocessing=short_read)
    views = text.make_views(ViewSpec(n_global=2, original=True), splits, short)
    out = views(splits.train.x)
    assert len(out) == 3 and all(torch.equal(v, splits.train.x) for v in out)
    _error("takes no view arguments", text.make_views, ViewSpec(), splits, short, {"crop": 0.5})


def test_raw_features_bag_of_tokens(tmp_path, short, short_read):
    path = _write(tmp_path / "b.txt", "the cat sat on the mat\nthe cat sat on the mat the mat\ndogs bark loudly\n")
    x = load_data(str(path), preprocessing=short_read).train.x
    features = text.raw_features(x, short)
    assert features.shape == (3, text.RAW_BUCKETS) and features.dtype == np.float32
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0)
    assert np.array_equal(text.raw_features(x.float(), short), features)  # evaluate passes float ids
    tokens = load_tokenizer("minilm")("the cat sat on the mat", add_special_tokens=False)["input_ids"]
    assert np.count_nonzero(features[0]) == len(set(tokens))  # special tokens and padding are not counted
    the = tokens[0] % text.RAW_BUCKETS
    assert np.isclose(features[0, the] / features[0, tokens[1] % text.RAW_BUCKETS], np.log(3) / np.log(2))
    similar, different = features[0] @ features[1], features[0] @ features[2]
    assert similar > 0.8 and different == 0.0
