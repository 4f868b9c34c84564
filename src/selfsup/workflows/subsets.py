"""A chosen part of a data source written as data that ``selfsup pretrain --data`` reads like any other.

Images: a folder source's chosen files hard-linked (copied across file systems) under their own relative paths,
class sub-folders kept; a built-in image set's samples written as PNGs in class sub-folders. Audio: the chosen clips
as WAV files in class sub-folders. Tables: the chosen rows of the file, every column, in the file's format (Parquet,
else CSV). Series: ``x`` (NaN-padded, as read) and the labels ``y`` in a ``.npz``. Text is refused: its samples are
token ids, and the text they came from is not kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Splits, decoded
from selfsup.errors import SelfsupError
from selfsup.sources import BUILTIN_PREFIX

SUBSET = "subset"  # the name of the prepared subset in an output folder (a folder, or subset.SUFFIX)


def _label_names(part: ArrayDataset, chosen: np.ndarray) -> list[str | None]:
    classes = part.classes or []
    return [classes[int(part.y[i])] if classes and int(part.y[i]) != UNLABELED else None for i in chosen]


def _safe_name(text: str) -> str:
    """A file or folder name made of ``text`` (a sample id or class name)."""
    cleaned = "".join(c if c.isalnum() or c in "-_.#" else "_" for c in text).strip(".")
    return cleaned or "_"


def image_folder_base(source: str) -> Path:
    """The folder an image folder's training ids are relative to (its ``train`` when it has train/ and test/)."""
    root = Path(source)
    return root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def _images(source: str, part: ArrayDataset, chosen: np.ndarray, tmp: Path) -> Path:
    out = tmp / SUBSET
    if not source.startswith(BUILTIN_PREFIX):
        base = image_folder_base(source)
        for i in chosen:
            _link(base / part.ids[i], out / part.ids[i])
        return out
    from PIL import Image

    if str(part.x.dtype) != "torch.uint8" or int(part.x.shape[1]) not in (1, 3):
        raise SelfsupError(
            f"cannot write a subset of {source}: its samples are not 1- or 3-channel pictures; pass it as a folder."
        )
    for i, label in zip(chosen, _label_names(part, chosen), strict=True):
        folder = out / _safe_name(label) if label is not None else out
        folder.mkdir(parents=True, exist_ok=True)
        pixels = part.x[i].numpy()
        image = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0))
        image.save(folder / f"{_safe_name(part.ids[i])}.png")
    return out


def _audio(part: ArrayDataset, chosen: np.ndarray, tmp: Path, sample_rate: int) -> Path:
    from selfsup.modalities.audio import soundfile

    sf = soundfile()
    out = tmp / SUBSET
    for i, label in zip(chosen, _label_names(part, chosen), strict=True):
        folder = out / _safe_name(label) if label is not None else out
        folder.mkdir(parents=True, exist_ok=True)
        name = _safe_name(part.ids[i].replace("/", "_"))
        wave = np.nan_to_num(part.x[i, 0].numpy().astype(np.float32))
        sf.write(str(folder / f"{Path(name).stem}-{i}.wav"), wave, sample_rate)
    return out


def _table(source: str, part: ArrayDataset, chosen: np.ndarray, tmp: Path) -> Path:
    from selfsup.modalities.tabular import read_table

    if source.startswith(BUILTIN_PREFIX):
        raise SelfsupError(
            f"cannot write a subset of {source}: selfsup writes the chosen rows of a table file; save the table "
            "as a .csv or .parquet file and pass its path as --pool."
        )
    frame = read_table(source)
    if len(frame) != len(part):
        raise SelfsupError(
            f"'{source}' has {len(frame)} rows but {len(part)} were read; cannot match the chosen rows to the file."
        )
    rows = frame.iloc[np.sort(chosen)]
    if Path(source).suffix.lower() in (".parquet", ".pq"):
        path = tmp / f"{SUBSET}.parquet"
        rows.to_parquet(path, index=False)
    else:
        path = tmp / f"{SUBSET}.csv"
        rows.to_csv(path, index=False)
    return path


def _series(part: ArrayDataset, chosen: np.ndarray, tmp: Path) -> Path:
    path = tmp / f"{SUBSET}.npz"
    x = part.x[chosen].numpy().astype(np.float32)
    labels = _label_names(part, chosen)
    with path.open("wb") as f:
        if all(label is not None for label in labels) and labels:
            np.savez(f, x=x, y=np.asarray(labels, dtype=str))
        else:
            np.savez(f, x=x)
    return path


def check_subsettable(source: str, modality: str) -> None:
    """Refuse, before any work, a source whose subset selfsup cannot write."""
    if modality == "text":
        raise SelfsupError(
            f"cannot curate {source}: text is read as token ids and selfsup cannot yet write a subset of it; "
            "curate images, audio, tables or series."
        )
    if modality == "tabular" and source.startswith(BUILTIN_PREFIX):
        raise SelfsupError(
            f"cannot curate {source}: selfsup writes the chosen rows of a table file; save the table as a "
            ".csv or .parquet file and pass its path as --pool."
        )


def write_subset(source: str, splits: Splits, chosen: np.ndarray, tmp: Path, options: DataOptions) -> Path:
    """Write the samples ``chosen`` (indices into ``splits.train``) of ``source`` under ``tmp``; returns the
    subset's path (``tmp/subset`` or ``tmp/subset.SUFFIX``)."""
    check_subsettable(source, splits.modality)
    part = decoded(splits.train, "writing a subset")
    if splits.modality == "image":
        return _images(source, part, chosen, tmp)
    if splits.modality == "tabular":
        return _table(source, part, chosen, tmp)
    if splits.modality == "timeseries":
        return _series(part, chosen, tmp)
    if splits.modality == "audio":
        from selfsup.modalities.audio import reading

        return _audio(part, chosen, tmp, reading(options, splits.preprocessing)[0])
    raise SelfsupError(f"cannot write a subset of {splits.modality} data yet.")
