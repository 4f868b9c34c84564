"""In-memory datasets shared by every modality: samples, optional labels, sample ids."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch
from torch.utils.data import Dataset

from selfsup.errors import SelfsupError

UNLABELED = -1
IN_MEMORY_BYTES = 2 * 1024**3  # --in-memory auto: a source decoded larger than this is read lazily
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

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.x.shape[1:])

    @property
    def stored_dtype(self) -> torch.dtype:
        """How samples are held (uint8 pictures, float rasters and series, int64 token ids)."""
        return self.x.dtype

    def head(self, n: int, seed: int = 0) -> ArrayDataset:
        """At most ``n`` samples drawn at random (all when there are fewer): a bounded sample to fit statistics on."""
        return self if len(self) <= n else self.subset(bounded_draw(len(self), n, seed))


# samples decoded to fit preprocessing (normalisation statistics, checks) on a lazily read source (issue 17)
FIT_SAMPLES = 1024


def bounded_draw(total: int, n: int, seed: int) -> np.ndarray:
    """``n`` of ``total`` positions drawn at random without repeats, in order: the bounded sample of ``head``."""
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


class NumberedIds(Sequence[str]):
    """The ids ``f"{prefix}{i}"`` of ``n`` samples, made when asked for: a lazily read source of millions of rows holds
    no id strings. Compares equal to a list of the same ids; a slice is a list."""

    def __init__(self, prefix: str, n: int) -> None:
        self.prefix, self.n = prefix, int(n)

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [f"{self.prefix}{i}" for i in range(self.n)[index]]
        return f"{self.prefix}{range(self.n)[index]}"

    def __iter__(self) -> Iterator[str]:
        return (f"{self.prefix}{i}" for i in range(self.n))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NumberedIds):
            return (self.prefix, self.n) == (other.prefix, other.n)
        if isinstance(other, (list, tuple)):
            return len(other) == self.n and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NumberedIds({self.prefix!r}, {self.n})"


@dataclass
class LazyDataset(Dataset):
    """Samples decoded when they are asked for (in DataLoader workers), not held in memory: a source too large to
    decode whole before the first step (issue 17). Indexing it is cheap; memory does not grow with its size.

    ``decode(items[i])`` gives sample ``i`` as :class:`ArrayDataset` holds it (pictures uint8 ``(C, H, W)``);
    ``decode`` must pickle (a module-level function or a ``functools.partial`` of one) for worker processes.
    Steps that need every sample at once (``x``) refuse in one line; :meth:`head` decodes a bounded sample.
    """

    decode: Callable[[Any], torch.Tensor]
    items: list
    y: torch.Tensor
    ids: list[str]
    sample_shape: tuple[int, ...]
    stored_dtype: torch.dtype
    name: str = ""
    classes: list[str] | None = None
    skipped: list[str] = field(default_factory=list)
    # the block of the file each item is read with (a Parquet row group): training shuffles blocks, then the items
    # within each, so that a block is read about once per epoch instead of once per item
    blocks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.decode(self.items[index])
        if sample.dtype == torch.uint8:
            sample = sample.float().div_(255.0)
        return sample, int(self.y[index])

    @property
    def labeled(self) -> bool:
        return bool(self.classes) and bool((self.y != UNLABELED).all())

    @property
    def x(self) -> torch.Tensor:
        raise SelfsupError(
            f"'{self.name or 'the data'}' is read lazily ({len(self)} samples, decoded as training asks for them) "
            "and this step needs every sample in memory; pass --in-memory yes if they fit."
        )

    def float_samples(self) -> torch.Tensor:
        return self.x

    def subset(self, indices: np.ndarray | list[int]) -> LazyDataset:
        picked = [int(i) for i in np.asarray(indices).tolist()]
        return LazyDataset(
            self.decode,
            [self.items[i] for i in picked],
            self.y[torch.as_tensor(picked, dtype=torch.long)],
            [self.ids[i] for i in picked],
            self.sample_shape,
            self.stored_dtype,
            self.name,
            self.classes,
            blocks=self.blocks[picked] if self.blocks is not None else None,
        )

    def in_memory(self) -> ArrayDataset:
        """Every sample decoded into an :class:`ArrayDataset` (for sets known to be small)."""
        x = torch.stack([self.decode(item) for item in self.items]) if self.items else torch.empty(0)
        return ArrayDataset(x, self.y.clone(), list(self.ids), self.classes, list(self.skipped))

    def head(self, n: int, seed: int = 0) -> ArrayDataset:
        """At most ``n`` samples drawn at random, decoded into memory: a bounded sample to fit statistics on."""
        return (self if len(self) <= n else self.subset(bounded_draw(len(self), n, seed))).in_memory()


Samples = ArrayDataset | LazyDataset  # what a split holds: decoded samples, or samples decoded when asked for


def reads_lazily(in_memory: str, decoded_bytes: int) -> bool:
    """Whether a source is read lazily: as ``--in-memory`` says (``no``), or with ``auto`` when its decoded samples
    would pass ``IN_MEMORY_BYTES``."""
    return in_memory == "no" or (in_memory == "auto" and decoded_bytes > IN_MEMORY_BYTES)


def refuse_skipping_lazily(where: str, count: int, noun: str, unreadable: str, auto: bool) -> SelfsupError:
    """The one line that refuses ``--bad-files skip`` on a source read lazily (``count`` ``noun``): what cannot be
    decoded is met only once training has begun, when it can no longer be left out."""
    return SelfsupError(
        f"{where} is read lazily ({count} {noun}{', too many to decode first' * auto}), so --bad-files skip cannot "
        f"leave unreadable {unreadable} out before training; prepare it with 'selfsup prepare --bad-files skip', "
        "or pass --in-memory yes."
    )


LAZY_WORKERS = 4  # at most this many DataLoader processes decode a lazily read source


def loader_workers(samples: Any) -> int:
    """DataLoader worker processes for reading ``samples``: none for samples in memory; for a lazily read source,
    up to ``LAZY_WORKERS``, leaving one CPU to the model, so that decoding runs beside the steps."""
    return max(1, min(LAZY_WORKERS, (os.cpu_count() or 2) - 1)) if isinstance(samples, LazyDataset) else 0


def fit_sample(samples: Samples) -> ArrayDataset:
    """The samples preprocessing is fitted on (normalisation statistics): all of an in-memory split, a bounded random
    sample (``FIT_SAMPLES``) of a lazily read one."""
    return samples if isinstance(samples, ArrayDataset) else samples.head(FIT_SAMPLES)


def decoded(samples: Samples, what: str) -> ArrayDataset:
    """``samples`` in memory, for a step that needs all of them at once (``what`` names it); a lazily read source is
    refused in one line rather than decoded whole behind the user's back."""
    if isinstance(samples, ArrayDataset):
        return samples
    raise SelfsupError(
        f"{what} needs every sample in memory, but '{samples.name or 'the data'}' is read lazily "
        f"({len(samples)} samples); pass --in-memory yes if it fits."
    )


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

    train: Samples
    test: Samples | None
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
    # decode every sample before training ("yes"), as training asks for them ("no"), or "auto": in memory when the
    # decoded source fits IN_MEMORY_BYTES (sources without a lazy reader are always read whole)
    in_memory: str = "auto"
    column: str | None = None  # Hugging Face datasets / Parquet: the image, audio or text column to read

    def file_flags(self) -> list[str]:
        """The flags given that choose how a source's files are read (its columns, rate, clip length): what data whose
        samples are already read (built-in datasets, prepared shards) refuses."""
        return [
            flag
            for flag, value in (
                ("--label", self.label),
                ("--ignore", self.ignore),
                ("--series-id", self.series_id),
                ("--time-column", self.time_column),
                ("--sample-rate", self.sample_rate),
                ("--segment-seconds", self.segment_seconds),
                ("--text-column", self.text_field),
                ("--column", self.column),
            )
            if value
        ]


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
