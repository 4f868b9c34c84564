"""In-memory datasets shared by every modality: samples, optional labels, sample ids."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from selfsup.errors import SelfsupError

UNLABELED = -1
# file suffixes a sample id may carry that pairing ignores: images, audio, series arrays, text files
MEDIA_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".wav",
    ".flac",
    ".ogg",
    ".mp3",
    ".npy",
    ".txt",
    ".json",
)


@dataclass
class ArrayDataset(Dataset):
    """Decoded samples held in memory.

    ``x`` holds the samples (images: uint8 ``(N, C, H, W)``, multi-band rasters: float32 at their own values),
    ``y`` integer labels or ``UNLABELED``.
    ``__getitem__`` returns ``(sample, label)`` with the sample as float32 in the modality's input range.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: list[str]
    classes: list[str] | None = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.x[index]
        if sample.dtype == torch.uint8:
            sample = sample.float().div_(255.0)
        return sample, int(self.y[index])

    @property
    def labeled(self) -> bool:
        return bool(self.classes) and bool((self.y != UNLABELED).all())

    def subset(self, indices: np.ndarray | list[int]) -> ArrayDataset:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ArrayDataset(self.x[idx], self.y[idx], [self.ids[i] for i in idx.tolist()], self.classes)

    def float_samples(self) -> torch.Tensor:
        """All samples as float32, as ``__getitem__`` returns them."""
        return self.x.float().div(255.0) if self.x.dtype == torch.uint8 else self.x.float()


def warn_skipped(skipped: list[str], noun: str, first_reason: str) -> None:
    """One warning line for files ``--bad-files skip`` left out: how many, and the first with its reason."""
    if skipped:
        reason = first_reason.strip().splitlines()[0] if first_reason.strip() else "unreadable"
        warnings.warn(
            f"skipped {len(skipped)} unreadable {noun}{'s' * (len(skipped) != 1)} "
            f"({'first: ' * (len(skipped) > 1)}{skipped[0]}: {reason})",
            UserWarning,
            stacklevel=3,
        )


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """Per sample of NaN-padded series ``(B, C, T)``, 1 + the last time step where any channel is observed (0 when none is): ``(B,)`` long."""
    observed = ~torch.isnan(x).all(dim=1)  # (B, T)
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return torch.where(observed, steps, 0).amax(dim=1)


PREPROCESSING_FORMAT = "selfsup-preprocessing"
PREPROCESSING_VERSION = 1
SOURCE_COLUMNS = (
    "label",
    "ignore",
    "series_id",
    "time_column",
    "text_field",
)  # DataOptions naming one source's columns
# what encoder configs written before preprocessing.json (until December 2026) carried for reading: "read" held
# the CSV columns of series and text, the rest sat at the top level. A frozen list of legacy keys: only
# from_old_config reads it; the modalities alone interpret settings
OLD_CONFIG_KEYS = ("schema", "image_size", "sample_rate", "segment_seconds", "tokenizer", "max_length", "pad_id")


@dataclass(frozen=True)
class Preprocessing:
    """Preprocessing fitted on an encoder's pre-training data: how raw files become that encoder's input.

    A table's schema (columns, category vocabularies, numeric statistics), the CSV columns series and text were
    read from, the audio rate and clip length, the tokenizer and text length, the image size. Saved as
    ``preprocessing.json`` beside ``encoder.safetensors`` (as Hugging Face keeps ``preprocessor_config.json``
    beside ``config.json``), not in the encoder's config, which describes the network. ``Encoder.preprocessing``
    holds it in memory, as timm's ``model.pretrained_cfg`` does. ``settings`` is the modality's own (the
    ``Reading`` TypedDict of its module); only that modality reads them.
    """

    modality: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": PREPROCESSING_FORMAT,
            "format_version": PREPROCESSING_VERSION,
            "modality": self.modality,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Preprocessing:
        """The preprocessing a ``preprocessing.json`` describes; anything else is refused, naming ``where``."""
        if not isinstance(data, dict) or data.get("format") != PREPROCESSING_FORMAT:
            raise SelfsupError(f"'{where}' is not a selfsup preprocessing description; the export is corrupted.")
        if not isinstance(data.get("settings"), dict) or not isinstance(data.get("modality"), str):
            raise SelfsupError(f"'{where}' is not a selfsup preprocessing description; the export is corrupted.")
        version = data.get("format_version", 0)
        if not isinstance(version, int):
            raise SelfsupError(f"'{where}' has format_version {version!r}, not a number; the export is corrupted.")
        if version > PREPROCESSING_VERSION:
            raise SelfsupError(
                f"'{where}' was written by a newer selfsup (format {data['format_version']}); upgrade selfsup."
            )
        return cls(str(data["modality"]), dict(data["settings"]))

    def without_source(self) -> Preprocessing:
        """The part that belongs to the encoder (schema, rate, tokenizer, size, channels), without how one source
        was read (its label, ignored, id, time and text columns: the ``DataOptions`` a reader takes from a
        source's flags): for reading another source for the same encoder (continued pre-training, replay)."""
        return Preprocessing(self.modality, {k: v for k, v in self.settings.items() if k not in SOURCE_COLUMNS})

    @classmethod
    def from_old_config(cls, config: Mapping[str, Any]) -> Preprocessing:
        """The preprocessing of an export written before ``preprocessing.json`` existed, from its encoder config."""
        settings = {key: config[key] for key in OLD_CONFIG_KEYS if key in config}
        settings |= dict(config.get("read") or {})
        return cls(str(config.get("modality")), settings)


@dataclass
class Splits:
    """A data source: a training split, and a test split when the source defines one."""

    train: ArrayDataset
    test: ArrayDataset | None
    name: str
    modality: str
    view_defaults: dict = field(default_factory=dict)  # augmentation defaults that suit this data
    # how the samples were read: an encoder's preprocessing, or what reading fitted on train (a table's schema)
    preprocessing: Preprocessing | None = None


@dataclass(frozen=True)
class DataOptions:
    """How to read a data source; the recipe, ``evaluate`` and ``embed`` build it from their flags."""

    modality: str = "auto"  # auto | image | tabular | timeseries | audio | text
    image_size: int | None = None  # images: decode size
    bad_files: str = "fail"  # images, audio: unreadable files stop the run ("fail") or are left out ("skip")
    label: str | None = None  # tables / CSV series: the label column (used for probing only)
    ignore: tuple[str, ...] = ()  # tables: columns to leave out (ids)
    series_id: str | None = None  # long-format CSV series: the column naming each series
    time_column: str | None = None  # long-format CSV series: the column to order each series by
    sample_rate: int | None = None  # audio: resample to this rate in Hz (default 16000, or the encoder's)
    segment_seconds: float | None = None  # audio: cut files into clips this long (default 1.0, or the encoder's)
    text_field: str | None = None  # text: the JSON field / table column holding the text (default "text")


@dataclass
class PairedDataset(Dataset):
    """Samples of two sources that belong together (a clip and its caption), side ``a`` first.

    ``__getitem__`` returns ``((a_sample, b_sample), label)``, the label being side a's. Labels, classes and
    ids are side a's, so the online probe and the evaluation splits treat a pair as its side-a sample.
    """

    a: ArrayDataset
    b: ArrayDataset

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        sample, label = self.a[index]
        return (sample, self.b[index][0]), label

    @property
    def x(self) -> torch.Tensor:
        return self.a.x

    @property
    def y(self) -> torch.Tensor:
        return self.a.y

    @property
    def ids(self) -> list[str]:
        return self.a.ids

    @property
    def classes(self) -> list[str] | None:
        return self.a.classes

    @property
    def labeled(self) -> bool:
        return self.a.labeled

    def float_samples(self) -> torch.Tensor:
        return self.a.float_samples()

    def subset(self, indices: np.ndarray | list[int]) -> PairedDataset:
        return PairedDataset(self.a.subset(indices), self.b.subset(indices))


def pair_key(sample_id: str) -> str:
    """What a sample id is matched on: without a segment number (``clip.wav#2``) and a media file's suffix,
    with '/' as the separator, so ``yes/clip-1.flac#0`` (an audio segment) matches ``yes/clip-1`` (a
    caption's id); other dots stay (``take.1``)."""
    key = sample_id.split("#", 1)[0].replace("\\", "/")
    stem, dot, suffix = key.rpartition(".")
    return stem if dot and "/" not in suffix and f".{suffix.lower()}" in MEDIA_SUFFIXES else key


def pair_by_id(
    a: ArrayDataset, b: ArrayDataset, name_a: str, name_b: str, required: bool = True
) -> PairedDataset | None:
    """Pair each sample of ``a`` with the sample of ``b`` whose id matches (:func:`pair_key`); samples of
    ``a`` without a match are left out. Refuses ids that ``b`` repeats, and data with no match at all (or,
    unless ``required``, returns None for it)."""
    position: dict[str, int] = {}
    for i, sample_id in enumerate(b.ids):
        key = pair_key(sample_id)
        if key in position:
            raise SelfsupError(f"'{name_b}' has two samples with id '{key}'; each id must name one sample to pair.")
        position[key] = i
    keep = [i for i, sample_id in enumerate(a.ids) if pair_key(sample_id) in position]
    if not keep and not required:
        return None
    if not keep:
        raise SelfsupError(
            f"no sample of '{name_a}' has a match in '{name_b}' (ids such as '{a.ids[0]}' and "
            f"'{b.ids[0]}'); give the second source the first one's ids (file paths relative to "
            "the folder, without the suffix: an 'id' field of a .jsonl, or an 'id' column)."
        )
    return PairedDataset(a.subset(keep), b.subset([position[pair_key(a.ids[i])] for i in keep]))
