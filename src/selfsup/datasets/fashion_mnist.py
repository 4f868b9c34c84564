"""Fashion-MNIST read from the Debian package ``dataset-fashion-mnist`` (MIT licence; no downloads).

Xiao, Rasul and Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms": 70,000 28x28 grey photos of Zalando articles, 10 classes, an official 60,000 / 10,000
train/test split. The package holds the original gzipped IDX files, read here with numpy and gzip.
``builtin:fashion_mnist`` is a fixed stratified subset of each official split (``SUBSET_TRAIN`` /
``SUBSET_TEST`` samples, equal per class, drawn with ``SUBSET_SEED``) so that a CPU run takes minutes;
``builtin:fashion_mnist_full`` is the whole of both splits.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from selfsup.data import ArrayDataset, Splits
from selfsup.errors import SelfsupError

FOLDER = Path("/usr/share/datasets/fashion-mnist")
MISSING = "builtin:fashion_mnist reads the Debian package dataset-fashion-mnist: apt-get install dataset-fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SUBSET_TRAIN, SUBSET_TEST, SUBSET_SEED = 5000, 2000, 0
_FILES = {"train": "train", "test": "t10k"}  # split -> the IDX files' prefix
_IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one these files use


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file (LeCun's MNIST format: 2 zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian int32, then the values) as a uint8 array of its shape."""
    with gzip.open(path, "rb") as file:
        raw = file.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != _IDX_UBYTE or len(raw) < 4 + 4 * raw[3]:
        raise SelfsupError(f"'{path}' is not an IDX file of unsigned bytes; reinstall dataset-fashion-mnist.")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    values = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise SelfsupError(
            f"'{path}' holds {values.size} values, not the {shape} its header says; reinstall dataset-fashion-mnist."
        )
    return values.reshape(shape)


def idx_files(folder: Path | None = None) -> list[Path]:
    """The four files the package installs in ``folder`` (default: ``FOLDER``): each split's images and labels."""
    folder = FOLDER if folder is None else folder
    return [
        folder / f"{prefix}-{kind}-ubyte.gz" for prefix in _FILES.values() for kind in ("images-idx3", "labels-idx1")
    ]


def _split(folder: Path, split: str, size: int | None) -> ArrayDataset:
    """One official split (``size`` samples of it, stratified, or all of it), as 1x28x28 uint8 images."""
    prefix = _FILES[split]
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    keep = np.arange(len(labels))
    if size is not None:
        keep, _ = train_test_split(keep, train_size=size, stratify=labels, random_state=SUBSET_SEED)
        keep = np.sort(keep)
    ids = [f"fashion-mnist-{split}-{i:05d}" for i in keep]  # the index in the official split, the same in both sets
    x = torch.from_numpy(images[keep][:, None])  # (N, 1, 28, 28): indexing copied the read-only buffer
    return ArrayDataset(x, torch.from_numpy(labels[keep]), ids, list(CLASSES))


def load_fashion_mnist(full: bool = False, folder: Path | None = None) -> Splits:
    """Fashion-MNIST's official split: the fixed stratified subset, or with ``full`` all of it; read from
    ``folder`` (default: ``FOLDER``, where the Debian package installs it)."""
    folder = FOLDER if folder is None else folder
    if not all(path.is_file() for path in idx_files(folder)):
        raise SelfsupError(MISSING)
    train, test = (
        _split(folder, "train", None if full else SUBSET_TRAIN),
        _split(folder, "test", None if full else SUBSET_TEST),
    )
    return Splits(train=train, test=test, name="builtin:fashion_mnist" + ("_full" if full else ""), modality="image")


DESCRIPTION = (
    f"Fashion-MNIST (Zalando article photos), 28x28 grey, 10 classes; a fixed stratified subset of the official "
    f"split, {SUBSET_TRAIN:,} train / {SUBSET_TEST:,} test (seed {SUBSET_SEED}); read from the Debian package "
    "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
)
FULL_DESCRIPTION = (
    "all of Fashion-MNIST's official split, 60,000 train / 10,000 test, 28x28 grey, 10 classes; from the Debian "
    "package dataset-fashion-mnist"
)
