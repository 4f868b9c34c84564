"""Series in ``.npy`` files read lazily (issue 17): memory-mapped, each series read when training asks for it.

With ``--in-memory no`` (or ``auto``, when the series as float32 would pass ``IN_MEMORY_BYTES``) a source whose
files are all ``.npy`` (one file, or NAME_TRAIN.npy / NAME_TEST.npy) is opened with ``np.load(mmap_mode="r")``:
only its header is read up front. Series ``i`` is read, converted to float32 and NaN-padded at the end to the
length of the longer split as the in-memory reader does; an infinite value or a series with no observed value stops
the run when that series is reached, naming it. Unlike in memory, the length is the arrays' own: trailing time
steps missing in every series are not cut (that needs every series), and a channel missing in every series is not
refused. The encoder's normalisation and length are fitted on a bounded sample (``selfsup.data.fit_sample``).
``.npz``, ``.ts`` and table files are read whole (compressed or text: no series can be read alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from selfsup.data import UNLABELED, LazyDataset, NumberedIds
from selfsup.errors import SelfsupError


def open_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array memory-mapped, refused in one line when it cannot hold series."""
    where = f"'{path}'"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise SelfsupError(
                f"{where} holds an object array, which is not supported; save a numeric array "
                "(N, T) or (N, C, T), NaN-padded for ragged series."
            ) from err
        raise SelfsupError(f"cannot read {where}: {err}") from err
    except (OSError, EOFError) as err:
        raise SelfsupError(f"cannot read {where}: {err}") from err
    if array.dtype.kind not in "biuf":
        raise SelfsupError(f"{where} holds a {array.dtype} array; series must be numbers (NaN for missing values).")
    if array.ndim not in (2, 3):
        raise SelfsupError(f"{where} holds an array of shape {array.shape}; series must be (N, T) or (N, C, T).")
    if array.shape[0] == 0:
        raise SelfsupError(f"{where} holds no series; pass a file with at least one series.")
    if array.ndim == 3 and array.shape[1] == 0:
        raise SelfsupError(f"{where} holds series without channels; pass series with at least one channel.")
    if array.shape[-1] == 0:
        raise SelfsupError(
            f"{where} holds series of length 0 (shape {array.shape}); pass series with at least one step."
        )
    return array


def series_shape(array: np.ndarray) -> tuple[int, int]:
    """``(channels, length)`` of a memory-mapped series array."""
    return (1 if array.ndim == 2 else int(array.shape[1])), int(array.shape[-1])


class NpyRows:
    """Decodes series ``i`` of a ``.npy`` file as float32 ``(C, length)``, NaN-padded at the end. Each process opens
    the memory map once; it is not pickled (a worker gets the path)."""

    def __init__(self, path: str, length: int) -> None:
        self.path, self.length = path, length
        self._array: Any = None

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_array": None}

    def __call__(self, index: int) -> torch.Tensor:
        if self._array is None:
            self._array = open_npy(Path(self.path))
        values = np.asarray(self._array[int(index)], dtype=np.float64)  # as the in-memory reader converts
        with np.errstate(over="ignore"):
            x = values.astype(np.float32).reshape(-1, values.shape[-1])
        name = f"{Path(self.path).stem}/{int(index)}"
        if np.isinf(x).any():
            raise SelfsupError(
                f"series {name} in '{self.path}' holds an infinite value (or one too large for float32); "
                "replace it with a finite number or NaN (missing)."
            )
        if np.isnan(x).all():
            raise SelfsupError(f"series {name} in '{self.path}' is empty (every value missing); remove it.")
        if x.shape[-1] < self.length:
            x = np.pad(x, ((0, 0), (0, self.length - x.shape[-1])), constant_values=np.nan)
        return torch.from_numpy(np.ascontiguousarray(x))


def lazy_npy(path: Path, array: np.ndarray, length: int) -> LazyDataset:
    """A ``.npy`` file's series, unlabeled, read as asked for and padded to ``length``; ids ``FILESTEM/i``."""
    channels, _ = series_shape(array)
    n = int(array.shape[0])
    return LazyDataset(
        NpyRows(str(path), length),
        cast(list, range(n)),  # series numbers: no list of n ints
        torch.full((n,), UNLABELED, dtype=torch.long),
        cast(list, NumberedIds(f"{path.stem}/", n)),
        (channels, length),
        torch.float32,
        str(path),
    )
