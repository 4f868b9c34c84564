"""In-memory datasets shared by every modality: samples, optional labels, sample ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

UNLABELED = -1


@dataclass
class ArrayDataset(Dataset):
    """Decoded samples held in memory.

    ``x`` holds the samples (images: uint8 ``(N, C, H, W)``), ``y`` integer labels or ``UNLABELED``.
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

    def subset(self, indices: np.ndarray | list[int]) -> "ArrayDataset":
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ArrayDataset(self.x[idx], self.y[idx], [self.ids[i] for i in idx.tolist()], self.classes)

    def float_samples(self) -> torch.Tensor:
        """All samples as float32, as ``__getitem__`` returns them."""
        return self.x.float().div(255.0) if self.x.dtype == torch.uint8 else self.x.float()


@dataclass
class Splits:
    """A data source: a training split, and a test split when the source defines one."""

    train: ArrayDataset
    test: ArrayDataset | None
    name: str
    modality: str
    view_defaults: dict = field(default_factory=dict)  # augmentation defaults that suit this data
    fitted: dict = field(default_factory=dict)  # preprocessing fitted on train that the encoder config carries


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
