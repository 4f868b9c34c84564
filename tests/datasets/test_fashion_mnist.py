"""builtin:fashion_mnist read from the Debian package's IDX files: shapes, classes and split sizes against the
published figures, pixels and labels against the raw bytes, the fixed subset, and the one-line error without it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from selfsup.cli import main
from selfsup.datasets import fashion_mnist as fm
from selfsup.datasets import load_builtin
from selfsup.errors import SelfsupError

PIXELS = 28 * 28
IMAGES_HEADER, LABELS_HEADER = 16, 8  # IDX: magic + 3 dimensions, magic + 1 dimension (big-endian int32 each)


@pytest.fixture(scope="module")
def installed() -> None:
    if not all(path.is_file() for path in fm.idx_files()):
        pytest.skip(fm.MISSING)


@pytest.fixture(scope="module")
def subset(installed):
    return load_builtin("fashion_mnist")


@pytest.fixture(scope="module")
def full(installed):
    return load_builtin("fashion_mnist_full")


def _raw(name: str) -> bytes:
    with gzip.open(fm.FOLDER / name, "rb") as file:
        return file.read()


def test_full_official_split(full):
    assert full.name == "builtin:fashion_mnist_full" and full.modality == "image"
    assert full.train.x.shape == (60_000, 1, 28, 28) and full.train.x.dtype == torch.uint8
    assert full.test.x.shape == (10_000, 1, 28, 28)
    assert full.train.classes == full.test.classes == fm.CLASSES and len(fm.CLASSES) == 10
    assert torch.bincount(full.train.y).tolist() == [6000] * 10  # the published class balance
    assert torch.bincount(full.test.y).tolist() == [1000] * 10
    assert full.train.y[:5].tolist() == [9, 0, 0, 3, 0]  # ankle boot, T-shirt, T-shirt, dress, T-shirt


def test_pixels_and_labels_are_the_raw_bytes(full, subset):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = _raw(f"{prefix}-images-idx3-ubyte.gz"), _raw(f"{prefix}-labels-idx1-ubyte.gz")
        assert int.from_bytes(images[:4], "big") == 2051 and int.from_bytes(labels[:4], "big") == 2049
        data = getattr(subset, split)
        for j in (0, 1, len(data) // 2, len(data) - 1):
            i = int(data.ids[j].rsplit("-", 1)[1])  # the sample's index in the official split
            pixels = np.frombuffer(images, np.uint8, PIXELS, IMAGES_HEADER + i * PIXELS).reshape(28, 28)
            np.testing.assert_array_equal(data.x[j, 0].numpy(), pixels)
            assert int(data.y[j]) == labels[LABELS_HEADER + i]
        last = getattr(full, split)
        np.testing.assert_array_equal(last.x[-1, 0].numpy().ravel(), np.frombuffer(images[-PIXELS:], np.uint8))
        assert int(last.y[-1]) == labels[-1]
    assert 0 < float(full.train.x.float().mean()) < 255  # neither blank nor saturated


def test_subset_is_fixed_stratified_and_inside_the_official_split(subset, full):
    assert subset.name == "builtin:fashion_mnist" and subset.modality == "image"
    assert subset.train.x.shape == (fm.SUBSET_TRAIN, 1, 28, 28) and subset.test.x.shape == (fm.SUBSET_TEST, 1, 28, 28)
    assert torch.bincount(subset.train.y).tolist() == [fm.SUBSET_TRAIN // 10] * 10
    assert torch.bincount(subset.test.y).tolist() == [fm.SUBSET_TEST // 10] * 10
    assert set(subset.train.ids) <= set(full.train.ids) and set(subset.test.ids) <= set(full.test.ids)
    assert len(set(subset.train.ids)) == fm.SUBSET_TRAIN
    assert fm.load_fashion_mnist().train.ids == subset.train.ids  # the same samples every time
    description = fm.DESCRIPTION.replace(",", "")
    assert f"{fm.SUBSET_TRAIN} train / {fm.SUBSET_TEST} test" in description and "10 classes" in description


def test_missing_package_is_one_line(tmp_path):
    with pytest.raises(SelfsupError) as err:
        fm.load_fashion_mnist(folder=tmp_path / "absent")
    assert str(err.value) == fm.MISSING
    assert str(err.value) == (
        "builtin:fashion_mnist reads the Debian package dataset-fashion-mnist: apt-get install dataset-fashion-mnist"
    )


def test_missing_package_exits_2_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fm, "FOLDER", tmp_path / "absent")  # where the package would be, were it installed
    out = tmp_path / "run"
    assert main(["pretrain", "--data", "builtin:fashion_mnist", "--out", str(out), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == f"selfsup: error: {fm.MISSING}"
    assert not out.exists()
