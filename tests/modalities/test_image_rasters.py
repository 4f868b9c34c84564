"""Multi-band rasters (.tif through tifffile, .npy stacks): values kept as float32, per-band statistics, views
without colour ops, and one clear error per bad file."""

from __future__ import annotations

import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from PIL import Image

from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.modalities import detect_modality
from selfsup.modalities.image import encoder_config, load_folder, make_views, raw_features
from selfsup.modalities.image_views import ImageViews
from selfsup.sources import load_data
from selfsup.views import ViewSpec


def _bands(seed: int, bands: int = 6, h: int = 16, w: int = 16) -> np.ndarray:
    """A ``(bands, h, w)`` uint16 raster of reflectance-like values (0..10000)."""
    return np.random.default_rng(seed).integers(0, 10_000, (bands, h, w), dtype=np.uint16)


def _tif(path: Path, chw: np.ndarray, layout: str = "planar") -> Path:
    """Write ``chw`` as a GeoTIFF-like file: one page of band-interleaved (planar) or pixel-interleaved samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "planar":
        tifffile.imwrite(path, chw, photometric="minisblack", planarconfig="separate")
    else:
        tifffile.imwrite(path, chw.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig")
    return path


@pytest.mark.parametrize("layout", ["planar", "contig", "pages"])
def test_multiband_tifs_keep_their_values_as_float32(tmp_path, layout) -> None:
    arrays = [_bands(i) for i in range(3)]
    for i, arr in enumerate(arrays):
        if layout == "pages":  # one band per page
            tifffile.imwrite(tmp_path / f"{i}.tif", arr)
        else:
            _tif(tmp_path / f"{i}.tif", arr, layout)
    x = load_folder(str(tmp_path), image_size=16).train.x
    assert x.dtype == torch.float32 and x.shape == (3, 6, 16, 16)
    assert np.array_equal(x.numpy(), np.stack(arrays).astype(np.float32))  # not squeezed into 8 bits


def test_npy_stacks_in_either_layout(tmp_path) -> None:
    """A 3-D array's bands are its shorter end axis (C x H x W or H x W x C); a 2-D array is one band."""
    chw = np.random.default_rng(0).normal(size=(4, 12, 12)) * 1e3
    np.save(tmp_path / "a.npy", chw)
    np.save(tmp_path / "b.npy", chw.transpose(1, 2, 0).astype(np.float32))
    x = load_folder(str(tmp_path), image_size=12).train.x
    assert x.shape == (2, 4, 12, 12)
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], torch.from_numpy(chw).float())
    for i in range(2):
        (tmp_path / "grey").mkdir(exist_ok=True)
        np.save(tmp_path / "grey" / f"{i}.npy", chw[i])
    assert load_folder(str(tmp_path / "grey"), image_size=12).train.x.shape == (2, 1, 12, 12)


def test_a_folder_of_npy_stacks_is_images_and_a_single_npy_is_series(tmp_path) -> None:
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", _bands(i, 5))
    assert detect_modality(str(tmp_path)) == "image"
    with pytest.warns(UserWarning, match="its .npy arrays are read as 5-band images; series in .npy files are read"):
        assert load_data(str(tmp_path), DataOptions(image_size=8)).train.x.shape == (3, 5, 8, 8)
    one = tmp_path / "one"
    one.mkdir()
    np.save(one / "x.npy", np.zeros((4, 30), dtype=np.float32))
    assert detect_modality(str(one)) == "timeseries"
    named = tmp_path / "named"
    named.mkdir()
    for split in ("TRAIN", "TEST"):
        np.save(named / f"gun_{split}.npy", np.zeros((4, 30), dtype=np.float32))
    assert detect_modality(str(named)) == "timeseries"


def test_rasters_are_resized_antialiased_and_centre_cropped(tmp_path) -> None:
    arr = np.zeros((2, 20, 60), dtype=np.float32)
    arr[0, :, 20:40] = 5000.0  # a bright middle third in band 1
    arr[1] = -3.5  # a constant (negative, SAR-like) band 2
    np.save(tmp_path / "a.npy", arr)
    np.save(tmp_path / "b.npy", arr)
    x = load_folder(str(tmp_path), image_size=10).train.x[0]
    expected = F.interpolate(torch.from_numpy(arr)[None], size=(10, 30), mode="bilinear", antialias=True)[0]
    assert torch.allclose(x, expected[:, :, 10:20])
    assert x[0].mean() > 4000  # the crop kept the bright centre
    assert torch.allclose(x[1], torch.full((10, 10), -3.5))  # values keep their own range and sign


def test_per_band_statistics_are_fitted_on_the_training_split(tmp_path) -> None:
    """Band b holds b * 1000 -/+ 10 (half the pixels each) in train; test holds other values, which do not count."""
    pattern = np.where(np.indices((8, 8)).sum(0) % 2 == 0, -10.0, 10.0)
    for split, offset in (("train", 0.0), ("test", 777.0)):
        for label in ("a", "b"):
            for i in range(2):
                chw = np.stack([b * 1000.0 + offset + pattern for b in range(6)]).astype(np.float32)
                _tif(tmp_path / split / label / f"{i}.tif", chw)
    splits = load_folder(str(tmp_path), image_size=8)
    assert splits.test is not None and splits.test.x.shape == (4, 6, 8, 8)
    config = encoder_config("small_cnn", splits, 8)
    assert config["in_chans"] == 6
    n = 4 * 8 * 8
    assert np.allclose(config["mean"], [b * 1000.0 for b in range(6)], atol=1e-3)
    assert np.allclose(config["std"], [10.0 * np.sqrt(n / (n - 1))] * 6, atol=1e-3)  # torch's unbiased std
    raw = raw_features(splits.train.x, config)  # the raw-input baseline: standardised per band
    assert raw.shape == (4, 6 * 8 * 8) and abs(raw.mean()) < 1e-4 and abs(raw.std() - 1) < 0.01


def test_pictures_are_read_as_before_and_other_tifs_as_rasters(tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    (tmp_path / "rgb").mkdir()
    for i in range(2):
        tifffile.imwrite(tmp_path / "rgb" / f"{i}.tif", rgb, photometric="rgb")
        Image.fromarray(rgb).save(tmp_path / "rgb" / f"{i}.png")
    x = load_folder(str(tmp_path / "rgb"), image_size=8).train.x
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 8, 8)  # 8-bit RGB TIFFs are pictures, as PNGs
    assert torch.equal(x[0], x[1]) and np.array_equal(x[0].numpy(), rgb.transpose(2, 0, 1))
    for i in range(2):  # 16-bit colour: no picture, a 3-band raster
        _tif(tmp_path / "deep" / f"{i}.tif", _bands(i, 3, 8, 8))
    x = load_folder(str(tmp_path / "deep"), image_size=8).train.x
    assert x.dtype == torch.float32 and x.shape == (2, 3, 8, 8) and x.max() > 255


def _fails(folder: Path, match: str, **kwargs) -> str:
    with pytest.raises(SelfsupError, match=match) as info:
        load_folder(str(folder), image_size=8, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_mixed_band_counts_are_refused_naming_a_file_and_both_counts(tmp_path) -> None:
    _tif(tmp_path / "flat" / "a.tif", _bands(0, 6))
    _tif(tmp_path / "flat" / "b.tif", _bands(1, 4))
    err = _fails(tmp_path / "flat", "has 4 bands but")
    assert "b.tif" in err and "a.tif' has 6" in err
    for split, bands in (("train", 6), ("test", 5)):  # across the splits as well
        _tif(tmp_path / "split" / split / "x" / "a.tif", _bands(0, bands))
    assert "test" in _fails(tmp_path / "split", "has 5 bands but .* has 6")


def test_pictures_among_rasters_are_refused(tmp_path) -> None:
    np.save(tmp_path / "a.npy", _bands(0))
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "b.png")
    _fails(tmp_path, "'.*b.png' is a picture among multi-band rasters")


def _lzw_tif(path: Path) -> None:
    """A TIFF marked LZW-compressed (tifffile decodes LZW only with imagecodecs, which selfsup does not require)."""
    _tif(path.with_suffix(".tif"), _bands(5))
    with tifffile.TiffFile(path.with_suffix(".tif"), mode="r+b") as tif:
        tif.pages[0].tags["Compression"].overwrite(5)


@pytest.mark.parametrize(
    "write, reason",
    [
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 3, 8, 8), dtype=np.float32)), "4-D array"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros(8, dtype=np.float32)), "1-D array"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((6, 8, 8), dtype=np.complex64)), "not numbers"),
        (lambda p: np.save(p.with_suffix(".npy"), np.array([{"a": 1}]), allow_pickle=True), "pickle"),
        (lambda p: p.with_suffix(".tif").write_bytes(b"II*\x00 truncated"), "cannot read image"),
        (lambda p: p.with_suffix(".npy").write_bytes(b"not an array"), "cannot read image"),
        (lambda p: p.with_suffix(".npy").write_bytes(b""), "No data left"),
        pytest.param(  # LZW/PackBits GeoTIFFs need imagecodecs installed
            _lzw_tif,
            "requires the 'imagecodecs' package",
            marks=pytest.mark.skipif(find_spec("imagecodecs") is not None, reason="imagecodecs decodes LZW"),
        ),
    ],
)
def test_bad_rasters_fail_in_one_line_or_are_skipped(tmp_path, write, reason) -> None:
    for i in range(3):
        np.save(tmp_path / f"good{i}.npy", _bands(i))
    write(tmp_path / "bad")
    bad = next(p for p in tmp_path.iterdir() if p.stem == "bad")
    err = _fails(tmp_path, reason)
    assert str(bad) in err and "--bad-files skip" in err
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        train = load_folder(str(tmp_path), image_size=8, bad_files="skip").train
    assert train.skipped == [str(bad)] and len(train) == 3


def test_nan_pixels_are_refused_naming_the_file_and_band(tmp_path) -> None:
    for i in range(2):
        np.save(tmp_path / f"{i}.npy", _bands(i).astype(np.float32))
    arr = _bands(2).astype(np.float32)
    arr[2, :3, 0] = np.nan
    np.save(tmp_path / "holes.npy", arr)
    err = _fails(tmp_path, "3 pixels are NaN or infinite")
    assert "holes.npy" in err and "band 3" in err


def test_raster_views_keep_values_and_skip_colour_ops() -> None:
    """Crops, flips and blur keep a per-band constant image constant (colour jitter would not) and never clamp."""
    levels = torch.tensor([-20.0, 0.3, 1500.0, 7.0, 10_000.0, -0.5]).view(1, 6, 1, 1)
    x = levels.expand(8, 6, 24, 24).clone()
    views = ImageViews(ViewSpec(2, 2, True), 16, 6, raster=True)
    out = views(x, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in out] == [(8, 6, 16, 16)] * 2 + [(8, 6, 7, 7)] * 2
    for v in out:
        assert torch.allclose(v, levels.expand_as(v), rtol=1e-5, atol=1e-4)
    noisy = torch.randn(8, 6, 24, 24, generator=torch.Generator().manual_seed(1)) * 1000
    assert max(v.abs().max() for v in views(noisy)) > 1.0  # nothing is clamped to [0, 1]


def test_make_views_turns_colour_ops_off_for_rasters_with_one_warning(tmp_path) -> None:
    for i in range(2):
        np.save(tmp_path / f"{i}.npy", _bands(i))
    splits = load_folder(str(tmp_path), image_size=16)
    config = encoder_config("small_cnn", splits, 16)
    with pytest.warns(UserWarning, match="6-band rasters: colour jitter, random greyscale and solarize are off"):
        views = make_views(ViewSpec(), splits, config)
    assert isinstance(views, ImageViews) and views.raster and views.channels == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pictures: no warning, colour ops on
        digits_like = load_folder(str(_png_folder(tmp_path / "png")), image_size=8)
        assert not make_views(ViewSpec(), digits_like, encoder_config("small_cnn", digits_like, 8)).raster


def _png_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(root / f"{i}.png")
    return root
