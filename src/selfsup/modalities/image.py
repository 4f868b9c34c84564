"""Images: folder reader, view factory and default encoder configuration.

A folder with class sub-folders is labeled (labels are used for probing only); a flat folder is
unlabeled; a folder with ``train/`` and ``test/`` sub-folders gives both splits. Images are decoded
once, resized (short side) and centre-cropped to a square, and kept in memory as uint8.

Grey images of more than 8 bits keep their full range, scaled to 0..255: 16-bit ones (PNG, TIFF) as
``value / 257``; 32-bit integer ones as 16-bit when their values fit 0..65535, else from their own minimum
to maximum; float ones as ``value * 255`` when in [0, 1], as they are when in [0, 255], else from their
own minimum to maximum.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from rich.progress import track

from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Preprocessing, Splits, warn_skipped
from selfsup.errors import SelfsupError
from selfsup.modalities import Modality
from selfsup.views import ViewSpec

NAME = "image"
DEFAULT_ENCODER = "small_cnn"
TOKEN_ENCODER = "vit"  # the default for masked methods, which need tokens
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
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


def _decode(path: Path, size: int, grey: bool) -> np.ndarray:
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


def _is_grey(paths: list[Path]) -> bool:
    for path in paths[:32]:
        try:
            with Image.open(path) as img:
                if img.mode not in ("L", "1", "I", "F", "LA") and not img.mode.startswith("I;16"):
                    return False
        except (OSError, UnidentifiedImageError):
            continue
    return True


def _read_split(folder: Path, size: int, bad_files: str) -> ArrayDataset:
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_dirs = [d for d in class_dirs if _images_in(d)]
    flat = _images_in(folder)
    if class_dirs and flat:
        raise SelfsupError(
            f"'{folder}' holds both images and class sub-folders; put every image in a class sub-folder "
            "(labeled) or all of them directly in the folder (unlabeled)."
        )
    if class_dirs:
        entries = [(p, label) for label, d in enumerate(class_dirs) for p in _images_in(d)]
        classes: list[str] | None = [d.name for d in class_dirs]
    else:
        entries = [(p, UNLABELED) for p in flat]
        classes = None
    if not entries:
        raise SelfsupError(f"no images found in '{folder}' (looked for {', '.join(EXTENSIONS)} files).")
    grey = _is_grey([p for p, _ in entries])
    arrays, labels, ids, skipped, first_reason = [], [], [], [], ""
    for path, label in track(
        entries, description=f"reading {folder.name}", transient=True, disable=len(entries) < 2000
    ):
        try:
            arrays.append(_decode(path, size, grey))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            if bad_files == "fail":
                raise SelfsupError(
                    f"cannot read image '{path}': {err}. Fix or remove it, or pass --bad-files skip."
                ) from err
            first_reason = first_reason or str(err)
            skipped.append(str(path))
            continue
        labels.append(label)
        ids.append(str(path.relative_to(folder)))
    if not arrays:
        raise SelfsupError(f"none of the {len(entries)} images in '{folder}' could be read.")
    warn_skipped(skipped, "image", first_reason)
    x = torch.from_numpy(np.stack(arrays))
    return ArrayDataset(x, torch.tensor(labels, dtype=torch.long), ids, classes, skipped)


def load_folder(path: str, image_size: int | None = None, bad_files: str = "fail") -> Splits:
    """Read an image folder (see module docstring) into memory."""
    folder = Path(path)
    if not folder.exists():
        raise SelfsupError(f"data folder '{folder}' does not exist; pass a folder of images or builtin:NAME.")
    if not folder.is_dir():
        raise SelfsupError(f"'{folder}' is not a folder; pass a folder of images or builtin:NAME.")
    size = image_size or FOLDER_DEFAULT_SIZE
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        train = _read_split(folder / "train", size, bad_files)
        test = _read_split(folder / "test", size, bad_files)
        if train.classes != test.classes:
            raise SelfsupError(f"'{folder}/train' and '{folder}/test' have different class sub-folders.")
    else:
        train, test = _read_split(folder, size, bad_files), None
    return Splits(train=train, test=test, name=str(folder), modality="image")


class Reading(TypedDict):
    """An image encoder's preprocessing settings: the size images are decoded at (its input size)."""

    image_size: int


def load(source: str, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """Read an image folder; for an encoder, at its input size (``--image-size`` overrides it)."""
    size = options.image_size or (preprocessing.get("image_size") if preprocessing else None)
    return load_folder(source, image_size=size, bad_files=options.bad_files)


def default_view_size(splits: Splits) -> int:
    """Views at the data's own size, but at least 16 pixels so small CNNs keep spatial structure."""
    return max(int(splits.train.x.shape[-1]), MIN_VIEW_SIZE)


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
    x = splits.train.float_samples()
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    return image_encoder_config(name, int(x.shape[1]), image_size, mean, std, **(encoder_args or {}))


VIEW_ARGS = ("crop_scale", "local_crop_scale", "local_size", "flip", "jitter_strength")


def make_views(spec: ViewSpec, splits: Splits, encoder_config: dict, view_args: dict | None = None) -> torch.nn.Module:
    """The batched on-device augmentation pipeline for a method's view spec (``view_args``: see VIEW_ARGS)."""
    from selfsup.modalities.image_views import ImageViews
    from selfsup.modalities.view_args import check_known, crop_pair

    image_size, channels = int(encoder_config["image_size"]), int(encoder_config["in_chans"])
    view_args = check_known(view_args, VIEW_ARGS, "image")
    for key in ("crop_scale", "local_crop_scale"):
        if key in view_args:
            view_args[key] = crop_pair(key, view_args[key])
    return ImageViews(spec, image_size, channels, **view_args)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-pixel baseline: images in [0, 1], flattened."""
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    return x.flatten(1).numpy()


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """New images are decoded at the encoder's input size."""
    return Preprocessing(NAME, Reading(image_size=int(encoder_config["image_size"])))


def read_like(options: DataOptions, splits: Splits) -> DataOptions:
    """Options that read another image source (replay) at this data's size."""
    return replace(options, image_size=int(splits.train.x.shape[-1]))


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    "flattened pixels in [0, 1]",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
    read_like=read_like,
)
