"""The image folder reader: layouts, labels, channels, and clear errors on bad folders and files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.data import UNLABELED, DataOptions
from selfsup.errors import SelfsupError
from selfsup.modalities.image import load_folder
from selfsup.sources import load_data

CLASSES = ("0", "1", "2")


def _digit_images(digits, label: int, n: int) -> list[np.ndarray]:
    """n real 8x8 digit images of one class, as uint8 arrays."""
    x, y = digits.train.x.numpy(), digits.train.y.numpy()
    return [x[i, 0] for i in np.flatnonzero(y == label)[:n]]


def _write(path: Path, arr: np.ndarray, mode: str = "L", size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr).resize((size, size))
    if mode != "L":
        img = img.convert(mode)
    img.save(path)
    return path


def _labeled(root: Path, digits, n: int = 4, mode: str = "L") -> Path:
    for label, name in enumerate(CLASSES):
        for j, arr in enumerate(_digit_images(digits, label, n)):
            _write(root / name / f"img{j}.png", arr, mode)
    return root


def _flat(root: Path, digits, n: int = 5) -> Path:
    for j, arr in enumerate(_digit_images(digits, 7, n)):
        _write(root / f"sample{j}.png", arr)
    return root


def test_labeled_folder(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits)
    splits = load_folder(str(root), image_size=16)
    train = splits.train
    assert splits.test is None
    assert splits.modality == "image"
    assert train.classes == list(CLASSES)
    assert train.labeled
    assert train.x.dtype == torch.uint8
    assert train.x.shape == (12, 1, 16, 16)
    assert train.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert train.ids[0] == str(Path("0") / "img0.png")
    assert len(set(train.ids)) == 12
    assert train.skipped == []


def test_pixels_come_from_the_file(tmp_path, digits):
    arr = _digit_images(digits, 3, 1)[0]
    path = _write(tmp_path / "flat" / "a.png", arr, size=16)
    splits = load_folder(str(tmp_path / "flat"), image_size=16)
    expected = np.asarray(Image.open(path))
    assert np.array_equal(splits.train.x[0, 0].numpy(), expected)


def test_16_bit_images_keep_their_full_range(tmp_path, digits):
    """A 16-bit PNG is scaled by 255/65535 (value / 257), not clipped to white."""
    arrays = [arr.astype(np.uint16) * 257 + np.uint16(100) for arr in _digit_images(digits, 5, 3)]
    for j, arr in enumerate(arrays):
        Image.fromarray(arr).save(tmp_path / f"d{j}.png")
    assert Image.open(tmp_path / "d0.png").mode == "I;16"
    x = load_folder(str(tmp_path), image_size=8).train.x
    assert x.shape == (3, 1, 8, 8)
    for got, arr in zip(x[:, 0].numpy(), arrays):
        assert np.abs(got.astype(int) - arr / 257).max() <= 1
    assert (x == 255).float().mean() < 0.5  # clipping made nearly every pixel white


def test_32_bit_and_float_images_are_scaled_to_8_bits(tmp_path, digits):
    arr = _digit_images(digits, 2, 1)[0].astype(np.float64)
    Image.fromarray((arr * 257).astype(np.int32)).save(tmp_path / "a.tif")  # 16-bit values in a 32-bit image
    Image.fromarray((arr / 255).astype(np.float32)).save(tmp_path / "b.tif")  # floats in [0, 1]
    Image.fromarray((arr * 1e6 - 5e7).astype(np.int32)).save(tmp_path / "c.tif")  # beyond 16 bits: own min to max
    assert [Image.open(tmp_path / n).mode for n in ("a.tif", "b.tif", "c.tif")] == ["I", "F", "I"]
    x = load_folder(str(tmp_path), image_size=8).train.x[:, 0].numpy().astype(int)
    assert np.abs(x[0] - arr).max() <= 1 and np.abs(x[1] - arr).max() <= 1
    assert np.abs(x[2] - (arr - arr.min()) * 255 / (arr.max() - arr.min())).max() <= 1


def test_image_size_resizes(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits, n=2)
    assert load_folder(str(root), image_size=8).train.x.shape == (6, 1, 8, 8)
    assert load_folder(str(root)).train.x.shape[-2:] == (64, 64)  # the folder default


def test_non_square_images_are_centre_cropped(tmp_path):
    img = np.zeros((10, 30), dtype=np.uint8)
    img[:, 10:20] = 255  # bright middle third
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = load_folder(str(tmp_path), image_size=10).train.x
    assert x.shape == (1, 1, 10, 10)
    assert x.float().mean() > 200  # the crop kept the centre, not the dark sides


def test_flat_folder_is_unlabeled(tmp_path, digits):
    root = _flat(tmp_path / "flat", digits)
    train = load_folder(str(root), image_size=16).train
    assert train.classes is None
    assert not train.labeled
    assert len(train) == 5
    assert train.y.tolist() == [UNLABELED] * 5
    assert train.ids == [f"sample{j}.png" for j in range(5)]


def test_train_test_layout(tmp_path, digits):
    root = tmp_path / "data"
    _labeled(root / "train", digits, n=3)
    _labeled(root / "test", digits, n=2)
    splits = load_folder(str(root), image_size=16)
    assert splits.test is not None
    assert len(splits.train) == 9 and len(splits.test) == 6
    assert splits.train.classes == splits.test.classes == list(CLASSES)
    assert splits.test.y.tolist() == [0, 0, 1, 1, 2, 2]


def test_train_test_with_different_classes(tmp_path, digits):
    root = tmp_path / "data"
    _labeled(root / "train", digits, n=2)
    _write(root / "test" / "other" / "a.png", _digit_images(digits, 0, 1)[0])
    with pytest.raises(SelfsupError, match="different class"):
        load_folder(str(root), image_size=16)


def test_rgb_images_give_three_channels(tmp_path, digits):
    root = _labeled(tmp_path / "rgb", digits, n=2, mode="RGB")
    train = load_folder(str(root), image_size=16).train
    assert train.x.shape == (6, 3, 16, 16)


def test_grey_images_give_one_channel(tmp_path, digits):
    root = _labeled(tmp_path / "grey", digits, n=2, mode="L")
    assert load_folder(str(root), image_size=16).train.x.shape[1] == 1


def test_load_data_dispatches_paths_and_builtins(tmp_path, digits):
    root = _flat(tmp_path / "flat", digits, n=2)
    assert len(load_data(str(root), DataOptions(image_size=16)).train) == 2
    assert load_data("builtin:digits").name == "builtin:digits"
    with pytest.raises(SelfsupError, match="digits"):
        load_data("builtin:digit")


def test_missing_folder(tmp_path):
    with pytest.raises(SelfsupError, match="does not exist"):
        load_folder(str(tmp_path / "nowhere"))


def test_a_file_is_not_a_folder(tmp_path, digits):
    path = _write(tmp_path / "one.png", _digit_images(digits, 0, 1)[0])
    with pytest.raises(SelfsupError, match="not a folder"):
        load_folder(str(path))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(SelfsupError, match="no images found") as info:
        load_folder(str(tmp_path / "empty"))
    assert ".png" in str(info.value)


def test_folder_of_empty_class_folders(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir()
    with pytest.raises(SelfsupError, match="no images found"):
        load_folder(str(tmp_path / "data"))


def test_mixing_images_and_class_folders(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits, n=2)
    _write(root / "stray.png", _digit_images(digits, 5, 1)[0])
    with pytest.raises(SelfsupError, match="both images and class sub-folders"):
        load_folder(str(root), image_size=16)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_png_fails_naming_the_file(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits, n=3)
    bad = _truncate(root / "1" / "img1.png")
    with pytest.raises(SelfsupError) as info:
        load_folder(str(root), image_size=16)
    message = str(info.value)
    assert str(bad) in message
    assert "--bad-files" in message


def test_truncated_png_skipped_on_request(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits, n=3)
    bad = _truncate(root / "1" / "img1.png")
    (root / "2" / "garbage.png").write_bytes(b"this is not an image")
    with pytest.warns(UserWarning, match=rf"^skipped 2 unreadable images \(first: {re.escape(str(bad))}: .+\)$"):
        train = load_folder(str(root), image_size=16, bad_files="skip").train
    assert sorted(train.skipped) == sorted([str(bad), str(root / "2" / "garbage.png")])
    assert len(train) == 8
    assert str(Path("1") / "img1.png") not in train.ids
    assert train.y.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert train.classes == list(CLASSES)


def test_all_files_bad(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.png").write_bytes(b"nope either")
    with pytest.raises(SelfsupError, match="could be read"):
        load_folder(str(tmp_path), bad_files="skip")


def test_hidden_files_and_folders_are_ignored(tmp_path, digits):
    root = _labeled(tmp_path / "data", digits, n=2)
    (root / "0" / "._img0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # AppleDouble file
    (root / ".ipynb_checkpoints").mkdir()
    _write(root / ".ipynb_checkpoints" / "x.png", _digit_images(digits, 0, 1)[0])
    train = load_folder(str(root), image_size=16).train
    assert train.classes == list(CLASSES)
    assert len(train) == 6
    assert train.skipped == []
