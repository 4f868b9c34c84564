"""Images: folder reader, view factory and default encoder configuration.

A folder with class sub-folders is labeled (labels are used for probing only); a flat folder is
unlabeled; a folder with ``train/`` and ``test/`` sub-folders gives both splits. Images are decoded
once, resized (short side) and centre-cropped to a square, and kept in memory as uint8. A folder too large for
that (``--in-memory auto``: decoded past ``IN_MEMORY_BYTES``; or ``--in-memory no``) is read lazily: only its file
names are listed up front, each image is decoded the same way when training asks for it (in the data-loading
workers), and the normalisation statistics are fitted on a bounded random sample (``FIT_SAMPLES``).

Grey images of more than 8 bits keep their full range, scaled to 0..255: 16-bit ones (PNG, TIFF) as
``value / 257``; 32-bit integer ones as 16-bit when their values fit 0..65535, else from their own minimum
to maximum; float ones as ``value * 255`` when in [0, 1], as they are when in [0, 255], else from their
own minimum to maximum.

Multi-band rasters (multispectral, SAR): a folder (both splits together) holding any ``.npy`` array or any
TIFF that is not a picture (a picture: one band of 8, 16 or 32 bits or float32, or 8-bit RGB with an optional
alpha band) is read as rasters, any number of bands of any numeric dtype. TIFFs are read with ``tifffile``,
``.npy`` with numpy (no pickles). A 2-D array is one band; a 3-D one is ``C x H x W`` when its first axis is
shorter than its last, else ``H x W x C`` (a tie reads as ``H x W x C``). Rasters keep their own values as
float32 (not squeezed into 8 bits; 4 bytes per band and pixel in memory), resized (short side, bilinear,
antialiased: ``torch.nn.functional.interpolate``) and centre-cropped like pictures; the encoder normalises
each band by the mean and std fitted on the training split. Every file of a source needs the same band count
(else one error naming a file and both counts), and pictures (PNG, JPEG, ...) cannot sit among rasters.
A raster with a NaN or infinite pixel is refused, naming the file (it is a bad file: ``--bad-files skip``
leaves it out, with one warning line), as are arrays that are not 2-D or 3-D, non-numeric ones and files
tifffile or numpy cannot read: fill missing pixels (e.g. with the band's mean) before pre-training.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from rich.progress import track

from selfsup.data import (
    UNLABELED,
    ArrayDataset,
    DataOptions,
    LazyDataset,
    Preprocessing,
    Samples,
    Splits,
    fit_sample,
    reads_lazily,
    refuse_skipping_lazily,
    warn_skipped,
)
from selfsup.errors import SelfsupError, first_line
from selfsup.modalities import Modality
from selfsup.views import ViewSpec

NAME = "image"
DEFAULT_ENCODER = "small_cnn"
TOKEN_ENCODER = "vit"  # the default for masked methods, which need tokens
TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".npy", *TIFF_SUFFIXES)  # what a raster folder may hold
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".npy")
# one-band dtypes PIL reads as a grey picture (modes 1, L, I;16, I;16S, I, F)
PICTURE_DTYPES = ("bool", "uint8", "uint16", "int16", "int32", "float32")
FOLDER_DEFAULT_SIZE = 64
MIN_VIEW_SIZE = 16


def _images_in(folder: Path) -> list[Path]:
    # hidden files (e.g. macOS '._name.png' resource forks) are not images, like hidden folders are not classes
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
    )


def _to_8bit(img: Image.Image) -> Image.Image:
    """A grey image of more than 8 bits (modes I;16*, I, F) as mode L at full range (module docstring)."""
    if not img.mode.startswith(("I", "F")):
        return img
    values = np.asarray(img).astype(np.float64)
    values[~np.isfinite(values)] = 0.0
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and low >= 0 and high <= 65535):
        values = values / 257.0
    elif img.mode == "F" and low >= 0 and high <= 1:
        values = values * 255.0
    elif not (img.mode == "F" and low >= 0 and high <= 255):
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _decode(path: Path | BinaryIO, size: int, grey: bool) -> np.ndarray:
    """A picture file (a path, or an open file: a Hugging Face Image cell's bytes) as uint8 ``(C, size, size)``."""
    with Image.open(path) as img:
        img.load()
        img = _to_8bit(img).convert("L" if grey else "RGB")
        scale = size / min(img.size)
        w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
        img = img.resize((w, h), Image.Resampling.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if grey else arr.transpose(2, 0, 1)


def _is_grey(paths: Sequence[Path | BinaryIO]) -> bool:
    for path in paths[:32]:
        try:
            with Image.open(path) as img:
                if img.mode not in ("L", "1", "I", "F", "LA") and not img.mode.startswith("I;16"):
                    return False
        except (OSError, UnidentifiedImageError):
            continue
    return True


def _is_raster(path: Path) -> bool:
    """Whether a file makes its folder a raster folder: a ``.npy``, or a TIFF that is no picture (module docstring).
    A TIFF tifffile cannot parse is left to the reader that will say so."""
    suffix = path.suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        return False
    if suffix not in TIFF_SUFFIXES:
        return True
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page, series = tif.pages[0], tif.series[0]
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
            rgb = page.photometric in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
            alpha = sum(e != tifffile.EXTRASAMPLE.UNSPECIFIED for e in page.extrasamples)
            samples = int(page.samplesperpixel)
    except Exception:  # a probe: reading the file says what is wrong with it
        return False
    if len(shape) == 2:
        return dtype.name not in PICTURE_DTYPES
    return not (len(shape) == 3 and rgb and dtype == np.uint8 and samples - alpha == 3)


def _raster_folder(paths: list[Path]) -> bool:
    """Whether ``paths`` (a whole source) are rasters; refuses pictures among rasters."""
    raster = next((p for p in paths if _is_raster(p)), None)
    if raster is None:
        return False
    picture = next((p for p in paths if p.suffix.lower() not in RASTER_SUFFIXES), None)
    if picture is not None:
        raise SelfsupError(
            f"'{picture}' is a picture among multi-band rasters (e.g. '{raster}'); keep .tif/.npy rasters and "
            "pictures in separate folders."
        )
    return True


def _raster_array(path: Path) -> np.ndarray:
    """A raster file's values as float32 ``(C, H, W)`` (module docstring); ValueError says why it is unusable."""
    import tifffile

    try:
        arr = tifffile.imread(path) if path.suffix.lower() in TIFF_SUFFIXES else np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise
    except Exception as err:  # EOFError (an empty .npy), KeyError, struct.error, ...: one line of why
        raise ValueError(first_line(err)) from err
    if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3):
        shape = f"a {arr.ndim}-D array {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"holds {shape}; a raster is H x W, C x H x W or H x W x C")
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"holds {arr.dtype} values, not numbers")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.shape[0] >= arr.shape[-1]:
        arr = arr.transpose(2, 0, 1)  # H x W x C
    if 0 in arr.shape:
        raise ValueError(f"is empty (shape {arr.shape})")
    values = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        band = int(np.flatnonzero(bad.any(axis=(1, 2)))[0])
        raise ValueError(
            f"{int(bad.sum())} pixels are NaN or infinite (first in band {band + 1}); fill them, e.g. with the "
            "band's mean"
        )
    return values


def _decode_raster(path: Path, size: int) -> torch.Tensor:
    """A raster as float32 ``(C, size, size)``: short side resized to ``size`` (bilinear, antialiased, as PIL's
    resize of pictures), then centre-cropped."""
    x = torch.from_numpy(_raster_array(path))[None]
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[0, :, top : top + size, left : left + size].contiguous()


def _entries(folder: Path) -> tuple[list[tuple[Path, int]], list[str] | None]:
    """The image files of a split with their labels, and its classes (None when unlabeled)."""
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_dirs = [d for d in class_dirs if _images_in(d)]
    flat = _images_in(folder)
    if class_dirs and flat:
        raise SelfsupError(
            f"'{folder}' holds both images and class sub-folders; put every image in a class sub-folder "
            "(labeled) or all of them directly in the folder (unlabeled)."
        )
    if class_dirs:
        return [(p, label) for label, d in enumerate(class_dirs) for p in _images_in(d)], [d.name for d in class_dirs]
    if not flat:
        raise SelfsupError(f"no images found in '{folder}' (looked for {', '.join(EXTENSIONS)} files).")
    return [(p, UNLABELED) for p in flat], None


def _check_bands(path: Path, bands: int, first: tuple[Path, int] | None) -> None:
    if first is not None and bands != first[1]:
        raise SelfsupError(
            f"'{path}' has {bands} band{'s' * (bands != 1)} but '{first[0]}' has {first[1]}; every file of a "
            "source needs the same bands."
        )


UNREADABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def _decode_file(path: str, size: int, grey: bool, raster: bool, bands: int) -> torch.Tensor:
    """One file of a lazily read folder, decoded as :func:`_read_split` decodes it; an unreadable file (or a raster
    of other bands) stops the run naming it, since a sample cannot be left out once training has begun."""
    try:
        sample = (
            _decode_raster(Path(path), size)
            if raster
            else torch.from_numpy(np.array(_decode(Path(path), size, grey), order="C"))
        )
    except UNREADABLE as err:
        raise SelfsupError(
            f"cannot read image '{path}': {first_line(err)}. Fix or remove it; 'selfsup prepare --bad-files skip' "
            "reads every file once and leaves unreadable ones out."
        ) from err
    if raster and int(sample.shape[0]) != bands:
        raise SelfsupError(f"'{path}' has {int(sample.shape[0])} bands but the folder's first file has {bands}.")
    return sample


def _lazy_split(
    folder: Path, split: tuple[list[tuple[Path, int]], list[str] | None], size: int, raster: bool, grey: bool
) -> LazyDataset:
    """A split whose files are decoded as training asks for them: only the first is read now (its shape)."""
    entries, classes = split
    first = str(entries[0][0])
    bands = int(_decode_raster(Path(first), size).shape[0]) if raster else (1 if grey else 3)
    decode = partial(_decode_file, size=size, grey=grey, raster=raster, bands=bands)
    return LazyDataset(
        decode,
        [str(p) for p, _ in entries],
        torch.tensor([label for _, label in entries], dtype=torch.long),
        [str(p.relative_to(folder)) for p, _ in entries],
        (bands, size, size),
        torch.float32 if raster else torch.uint8,
        str(folder),
        classes,
    )


def _lazily(entries: int, size: int, raster: bool, in_memory: str, bad_files: str, folder: Path) -> bool:
    """Whether to read a folder lazily: as ``--in-memory`` says, or (auto) when its decoded samples would pass
    ``IN_MEMORY_BYTES`` (counting 3 bytes a pixel, 4 per band for rasters)."""
    lazy = reads_lazily(in_memory, entries * size * size * (16 if raster else 3))
    if lazy and bad_files == "skip":
        raise refuse_skipping_lazily(f"'{folder}'", entries, "images", "files", in_memory == "auto")
    return lazy


def _read_split(
    folder: Path,
    split: tuple[list[tuple[Path, int]], list[str] | None],
    size: int,
    bad_files: str,
    raster: bool,
    like: tuple[Path, int] | None = None,
) -> ArrayDataset:
    """Decode a split's pictures, or rasters (``raster``) with the band count of ``like`` (a file and its bands),
    else of the first one read."""
    entries, classes = split
    grey = not raster and _is_grey([p for p, _ in entries])
    arrays: list = []
    labels, ids, skipped, first_reason = [], [], [], ""
    for path, label in track(
        entries, description=f"reading {folder.name}", transient=True, disable=len(entries) < 2000
    ):
        try:
            arrays.append(_decode_raster(path, size) if raster else _decode(path, size, grey))
        except UNREADABLE as err:
            if bad_files == "fail":
                raise SelfsupError(
                    f"cannot read image '{path}': {err}. Fix or remove it, or pass --bad-files skip."
                ) from err
            first_reason = first_reason or str(err)
            skipped.append(str(path))
            continue
        if raster:
            _check_bands(path, int(arrays[-1].shape[0]), like)
            like = like or (path, int(arrays[-1].shape[0]))
        labels.append(label)
        ids.append(str(path.relative_to(folder)))
    if not arrays:
        raise SelfsupError(f"none of the {len(entries)} images in '{folder}' could be read.")
    warn_skipped(skipped, "image", first_reason)
    x = torch.stack(arrays) if raster else torch.from_numpy(np.stack(arrays))
    return ArrayDataset(x, torch.tensor(labels, dtype=torch.long), ids, classes, skipped)


def load_folder(path: str, image_size: int | None = None, bad_files: str = "fail", in_memory: str = "yes") -> Splits:
    """Read an image folder (see module docstring): decoded into memory, or lazily (``in_memory``: yes, no, or auto:
    lazily when decoded it would pass ``IN_MEMORY_BYTES``)."""
    folder = Path(path)
    if not folder.exists():
        raise SelfsupError(f"data folder '{folder}' does not exist; pass a folder of images or builtin:NAME.")
    if not folder.is_dir():
        raise SelfsupError(f"'{folder}' is not a folder; pass a folder of images or builtin:NAME.")
    size = image_size or FOLDER_DEFAULT_SIZE
    split_folders = (folder / "train").is_dir() and (folder / "test").is_dir()
    parts = {name: _entries(folder / name) for name in ("train", "test")} if split_folders else {"": _entries(folder)}
    every = [p for entries, _ in parts.values() for p, _ in entries]
    raster = _raster_folder(every)
    read: dict[str, Samples] = {}
    if _lazily(len(every), size, raster, in_memory, bad_files, folder):
        for name, part in parts.items():
            grey = not raster and _is_grey([p for p, _ in part[0]])
            read[name] = _lazy_split(folder / name, part, size, raster, grey)
    else:
        like = None  # rasters: every file has the first one's bands
        for name, part in parts.items():
            read[name] = _read_split(folder / name, part, size, bad_files, raster, like)
            like = like or ((folder / name / read[name].ids[0], read[name].sample_shape[0]) if raster else None)
    train, test = read.get("train", read.get("")), read.get("test")
    assert train is not None  # parts holds a train split, or the folder itself
    if test is not None and train.classes != test.classes:
        raise SelfsupError(f"'{folder}/train' and '{folder}/test' have different class sub-folders.")
    if any(Path(i).suffix.lower() == ".npy" for i in train.ids):  # a folder of arrays could have been series
        warnings.warn(
            f"'{folder}': its .npy arrays are read as {train.sample_shape[0]}-band images; series in .npy files are "
            "read from NAME_TRAIN.npy / NAME_TEST.npy (or one .npy file).",
            stacklevel=2,
        )
    return Splits(train=train, test=test, name=str(folder), modality="image")


class Reading(TypedDict):
    """An image encoder's preprocessing settings: the size images are decoded at (its input size)."""

    image_size: int


def load(source: str, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """Read an image folder; for an encoder, at its input size (``--image-size`` overrides it)."""
    size = options.image_size or (preprocessing.get("image_size") if preprocessing else None)
    return load_folder(source, image_size=size, bad_files=options.bad_files, in_memory=options.in_memory)


def default_view_size(splits: Splits) -> int:
    """Views at the data's own size, but at least 16 pixels so small CNNs keep spatial structure."""
    return max(splits.train.sample_shape[-1], MIN_VIEW_SIZE)


def encoder_config(
    name: str, splits: Splits, options: DataOptions | int | None = None, encoder_args: dict | None = None
) -> dict:
    """Encoder config with channel count and per-channel normalisation fitted on the training split.

    ``options`` gives the view size (``image_size``; default: the data's own, at least 16 pixels);
    an int is taken as the view size itself.
    """
    from selfsup.encoders.image import image_encoder_config

    image_size = options if isinstance(options, int) else (options.image_size if options else None)
    image_size = image_size or default_view_size(splits)
    mean, std = channel_statistics(fit_sample(splits.train).x)
    channels = splits.train.sample_shape[0]
    return image_encoder_config(name, channels, image_size, mean, std, **(encoder_args or {}))


def channel_statistics(x: torch.Tensor, chunk: int = 512) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) standard deviation, at least 1e-3, of stored samples ``(N, C, H, W)`` (uint8
    pictures as [0, 1], rasters as they are): two passes over chunks, summed in float64, so that a large split is
    never copied whole as floats (100,000 RGB images of 128 px would take 20 GB)."""

    def chunks():
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].double()
            yield part / 255.0 if x.dtype == torch.uint8 else part

    count = len(x) * x.shape[2] * x.shape[3]
    mean = sum((part.sum(dim=(0, 2, 3)) for part in chunks()), torch.zeros(x.shape[1], dtype=torch.float64)) / count
    squares = sum(
        (((part - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3)) for part in chunks()),
        torch.zeros(x.shape[1], dtype=torch.float64),
    )
    std = (squares / max(1, count - 1)).sqrt().clamp_min(1e-3)
    return mean.float().tolist(), std.float().tolist()


VIEW_ARGS = ("crop_scale", "local_crop_scale", "local_size", "flip", "jitter_strength")


def make_views(spec: ViewSpec, splits: Splits, encoder_config: dict, view_args: dict | None = None) -> torch.nn.Module:
    """The batched on-device augmentation pipeline for a method's view spec (``view_args``: see VIEW_ARGS).

    Rasters (float samples at their own values, not pictures in [0, 1]) get crops, flips and blur only: colour
    jitter, random greyscale and solarize assume RGB in [0, 1]; one warning line says they are off.
    """
    from selfsup.modalities.image_views import ImageViews
    from selfsup.modalities.view_args import check_known, crop_pair

    image_size, channels = int(encoder_config["image_size"]), int(encoder_config["in_chans"])
    view_args = check_known(view_args, VIEW_ARGS, "image")
    for key in ("crop_scale", "local_crop_scale"):
        if key in view_args:
            view_args[key] = crop_pair(key, view_args[key])
    raster = splits.train.stored_dtype.is_floating_point
    if raster:
        warnings.warn(
            f"'{splits.name}' holds {channels}-band rasters: colour jitter, random greyscale and solarize are off "
            "(they assume RGB in [0, 1]); views are crops, flips and blur.",
            UserWarning,
            stacklevel=2,
        )
    return ImageViews(spec, image_size, channels, raster=raster, **view_args)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-pixel baseline: pictures in [0, 1], rasters standardised per band by the encoder's statistics;
    flattened."""
    if x.dtype == torch.uint8:
        return x.float().div(255.0).flatten(1).numpy()
    mean = torch.tensor(encoder_config["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(encoder_config["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return ((x.float() - mean) / std).flatten(1).numpy()


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """New images are decoded at the encoder's input size."""
    return Preprocessing(NAME, Reading(image_size=int(encoder_config["image_size"])))


def read_like(options: DataOptions, splits: Splits) -> DataOptions:
    """Options that read another image source (replay) at this data's size."""
    return replace(options, image_size=splits.train.sample_shape[-1])


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    "flattened pixels in [0, 1] (rasters: standardised per band)",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
    read_like=read_like,
)
