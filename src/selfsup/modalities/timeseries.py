"""Time series: readers, view factory, encoder configuration and the raw-input baseline.

Series are kept raw as float32 ``(N, C, T)`` (``docs/modalities.md``): NaN marks missing values and
the padding of ragged series, which are padded at the end to the longest; the encoder normalises.
Labels are used for probing only; classes are the label names as strings, sorted (numerically when
every label is a number).

Sources:

* a ``.ts`` file, the UCR/UEA archive format (Bagnall et al.; read by our own small reader):
  ``@tags`` then ``@data`` and one series per line, channels separated by ``:``, values by ``,``,
  ``?`` for a missing value, the class label after the last ``:`` when ``@classLabel true``.
  Ragged files (``@equalLength false``) are NaN-padded. A ``@targetLabel`` (regression) file is read
  unlabeled: only class labels are used for probing. Timestamped files are not supported.
* a ``.npy`` array ``(N, T)`` or ``(N, C, T)`` (unlabeled), or a ``.npz`` with ``x`` (or ``X``) and an
  optional label vector ``y`` (or ``Y``); NaN for missing values and padding.
* a table (``.csv``, ``.tsv``, ``.parquet``) read with ``--modality timeseries``: *wide* (one series
  per row, every numeric column a time step, in file order; ``--label`` names the label column,
  ``--ignore`` leaves columns out), or *long* with ``--series-id`` (one row per time step; every
  numeric column other than the id, ``--time-column`` and ``--label`` is a channel; rows are ordered
  by ``--time-column`` when given, else kept in file order; the label must be constant per series).
* a folder holding ``NAME_TRAIN.ext`` and ``NAME_TEST.ext`` of one of these formats: the official
  train and test splits (a folder with only a train file, or a single file, gives a train split).
  Both splits are padded to one length; test labels are indexed by the training split's classes, and
  a test label the training split lacks is refused.

``.npy`` series are memory-mapped and read as training asks for them with ``--in-memory no`` (or ``auto`` when
large): ``series_lazy``; other files are read whole.

Sample ids: ``FILESTEM/i`` (``i`` the 0-based series or row), or the ``--series-id`` value. Every
reader refuses, in one line: a file without series, an empty series (length 0, or every value
missing), a channel missing in every series, infinite or non-numeric values, and channel counts that
differ between series, splits, or from the encoder's.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
import torch

from selfsup.data import (
    ArrayDataset,
    DataOptions,
    Preprocessing,
    Samples,
    Splits,
    fit_sample,
    reads_lazily,
)
from selfsup.errors import SelfsupError
from selfsup.modalities import Modality
from selfsup.modalities.labels import encode_labels, label_text, sorted_classes
from selfsup.modalities.tabular import check_csv_header
from selfsup.modalities.view_args import bounded_number, check_known, crop_pair
from selfsup.views import ViewSpec

NAME = "timeseries"
DEFAULT_ENCODER = "dilated_conv"
TOKEN_ENCODER = "patch_transformer"  # the default for masked methods, which need tokens
TS_SUFFIXES = (".ts",)
ARRAY_SUFFIXES = (".npz", ".npy")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
SUFFIXES = TS_SUFFIXES + ARRAY_SUFFIXES + TABLE_SUFFIXES  # a folder's TRAIN/TEST files: first suffix found wins
VIEW_ARGS = (
    "crop_scale",
    "local_crop_scale",
    "local_length",
    "jitter",
    "scaling",
    "magnitude_warp",
    "time_warp",
    "knots",
    "mask_ratio",
    "mask_span",
    "max_segments",
)
MIN_STD = 1e-6  # relative: a channel whose std is below MIN_STD * |mean| is taken as constant (std 1)


# --------------------------------------------------------------------------- arrays


def _stack(series: list[list[np.ndarray]]) -> np.ndarray:
    """One ``(N, C, T)`` float array from per-series lists of channels, NaN-padded at the end."""
    channels = len(series[0])
    length = max(len(values) for channel_values in series for values in channel_values)
    x = np.full((len(series), channels, length), np.nan, dtype=np.float64)
    for i, channel_values in enumerate(series):
        for c, values in enumerate(channel_values):
            x[i, c, : len(values)] = values
    return x


def _checked(x: np.ndarray, ids: list[str], where: str, channel_names: Sequence[str] | None = None) -> np.ndarray:
    """``x`` as float32 ``(N, C, T)`` cut to the longest series, after the checks every reader shares."""
    if x.shape[0] == 0:
        raise SelfsupError(f"{where} holds no series; pass a file with at least one series.")
    if x.shape[1] == 0:
        raise SelfsupError(f"{where} holds series without channels; pass series with at least one channel.")
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.float32)
    if np.isinf(x).any():
        i = int(np.flatnonzero(np.isinf(x).any(axis=(1, 2)))[0])
        raise SelfsupError(
            f"series {ids[i]} in {where} holds an infinite value (or one too large for float32); "
            "replace it with a finite number or NaN (missing)."
        )
    observed = ~np.isnan(x)
    steps = observed.any(axis=1)  # (N, T): any channel observed
    empty = np.flatnonzero(~steps.any(axis=1))
    if len(empty):
        raise SelfsupError(
            f"series {ids[int(empty[0])]} in {where} is empty (length 0 or every value missing); "
            f"remove it ({len(empty)} such series)."
        )
    dead = np.flatnonzero(~observed.any(axis=(0, 2)))
    if len(dead):
        k = int(dead[0])
        name = f"channel {k}" + (f" ('{channel_names[k]}')" if channel_names else "")
        raise SelfsupError(f"{name} is missing (NaN) in every series of {where}; drop it.")
    length = int(np.flatnonzero(steps.any(axis=0))[-1]) + 1
    return np.ascontiguousarray(x[:, :, :length])


def _dataset(
    x: np.ndarray,
    labels: Sequence[str | None] | None,
    ids: list[str],
    classes: list[str] | None,
    where: str,
    channel_names: Sequence[str] | None = None,
) -> ArrayDataset:
    x = _checked(x, ids, where, channel_names)
    y, classes = encode_labels(labels if labels is not None else [None] * len(x), classes, where)
    return ArrayDataset(torch.from_numpy(x), y, ids, classes)


def pad_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Series NaN-padded (or cut) at the end to ``length`` steps."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[-1]), value=float("nan"))


# --------------------------------------------------------------------------- .ts


def _ts_values(text: str, where: str) -> np.ndarray:
    text = text.strip()
    if not text:
        raise SelfsupError(f"{where} is empty (length 0); every series needs at least one value per channel.")
    try:
        return np.array(text.replace("?", "nan").split(","), dtype=np.float64)
    except ValueError:
        for token in text.split(","):
            token = token.strip()
            if token == "?":
                continue
            try:
                float(token)
            except ValueError:
                what = "an empty value (two commas in a row or a trailing comma)" if not token else f"'{token}'"
                raise SelfsupError(
                    f"{where} holds {what}, not a number; values must be numbers, with ? for a missing one."
                ) from None
        raise


def _flag(words: list[str], where: str) -> bool:
    if not words or words[0].lower() not in ("true", "false"):
        raise SelfsupError(f"{where} must be followed by true or false.")
    return words[0].lower() == "true"


def read_ts(path: str | Path, classes: list[str] | None = None) -> ArrayDataset:
    """Read a UCR/UEA ``.ts`` file (see the module docstring).

    ``classes`` (a training split's) gives the label indices; otherwise they are the sorted
    ``@classLabel`` values (or the labels found when the header lists none).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise SelfsupError(f"cannot read '{path}': {err}") from err
    labeled = target = False
    declared: list[str] | None = None
    dimensions: int | None = None
    univariate: bool | None = None
    start: int | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"'{path}' line {number}"
        if not line.startswith("@"):
            raise SelfsupError(
                f"{where}: series before the @data line; a .ts file has @tags, then @data, then one series per line."
            )
        tag, *words = line[1:].split()
        tag = tag.lower()
        if tag == "data":
            start = number
            break
        if tag == "timestamps" and _flag(words, f"{where}: @timeStamps"):
            raise SelfsupError(
                f"'{path}' has timestamps (@timeStamps true), which are not supported; "
                "write the values without timestamps, NaN-padded or ragged."
            )
        if tag == "classlabel":
            labeled = _flag(words, f"{where}: @classLabel")
            declared = (words[1:] or None) if labeled else None
        elif tag == "targetlabel":
            target = _flag(words, f"{where}: @targetLabel")
        elif tag == "univariate":
            univariate = _flag(words, f"{where}: @univariate")
        elif tag == "dimensions":
            if not words or not words[0].isdigit() or int(words[0]) < 1:
                raise SelfsupError(f"{where}: @dimensions must be followed by the number of channels.")
            dimensions = int(words[0])
    if start is None:
        raise SelfsupError(f"'{path}' has no @data line; is it a UCR/UEA .ts file?")

    series: list[list[np.ndarray]] = []
    labels: list[str | None] = []
    numbers: list[int] = []
    channels: int | None = None
    for number, raw in enumerate(lines[start:], start + 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"'{path}' line {number}"
        if "(" in line:
            raise SelfsupError(
                f"{where} holds timestamped values '(t, v)', which are not supported; write the "
                "values without timestamps."
            )
        fields = line.split(":")
        if labeled or target:
            if len(fields) < 2:
                raise SelfsupError(
                    f"{where} has no label after a ':'; the header says every series is labeled "
                    "(@classLabel true or @targetLabel true)."
                )
            label = fields.pop().strip()
            if labeled:
                if not label:
                    raise SelfsupError(f"{where} has an empty label after the last ':'.")
                if declared is not None and label not in declared:
                    raise SelfsupError(
                        f"{where}: label '{label}' is not one of the @classLabel values "
                        f"({' '.join(declared)}); add it to the header or fix the label."
                    )
            labels.append(label if labeled else None)
        else:
            labels.append(None)
        if channels is None:
            channels = len(fields)
            if dimensions is not None and channels != dimensions:
                raise SelfsupError(
                    f"{where} has {channels} channel(s) but the header says @dimensions "
                    f"{dimensions}; every series needs the same channels, separated by ':'."
                )
            if univariate and channels != 1:
                raise SelfsupError(
                    f"{where} has {channels} channels but the header says @univariate true; "
                    "fix the header or the ':' separators."
                )
        elif len(fields) != channels:
            raise SelfsupError(
                f"{where} has {len(fields)} channel(s) but the first series has {channels}; "
                "every series in a file needs the same channels, separated by ':'."
            )
        series.append([_ts_values(text, f"{where} channel {k}") for k, text in enumerate(fields)])
        numbers.append(number)
    if not series:
        raise SelfsupError(f"'{path}' holds no series after its @data line; pass a file with at least one series.")
    ids = [f"{path.stem}/{i}" for i in range(len(series))]
    if classes is None and declared is not None:
        classes = sorted_classes(declared)
    return _dataset(_stack(series), labels, ids, classes, f"'{path}'")


# --------------------------------------------------------------------------- .npy / .npz


def _array_labels(y: np.ndarray, n: int, where: str) -> list[str | None]:
    if y.ndim != 1 or len(y) != n:
        raise SelfsupError(
            f"the labels 'y' of {where} have shape {y.shape}; they must be a vector with one label per series ({n})."
        )
    if y.dtype.kind not in "biufUS":
        raise SelfsupError(f"the labels 'y' of {where} have dtype {y.dtype}; use integers or strings.")
    if y.dtype.kind == "S":
        y = y.astype(str)
    return [label_text(value, where) for value in y.tolist()]


def read_array(path: str | Path, classes: list[str] | None = None) -> ArrayDataset:
    """Read a ``.npy`` array ``(N, T)`` / ``(N, C, T)`` (unlabeled), or a ``.npz`` with ``x`` and optional ``y``."""
    path = Path(path)
    where = f"'{path}'"
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                x_key = next((k for k in ("x", "X") if k in loaded.files), None)
                if x_key is None:
                    raise SelfsupError(
                        f"{where} has no array named 'x' (it has: {', '.join(loaded.files) or 'none'}); "
                        "save the series as x (and labels as y), e.g. np.savez(path, x=x, y=y)."
                    )
                y_key = next((k for k in ("y", "Y") if k in loaded.files), None)
                x, y = loaded[x_key], (loaded[y_key] if y_key else None)
        else:
            x, y = loaded, None
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise SelfsupError(
                f"{where} holds an object array, which is not supported; save a numeric array "
                "(N, T) or (N, C, T), NaN-padded for ragged series."
            ) from err
        raise SelfsupError(f"cannot read {where}: {err}") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise SelfsupError(f"cannot read {where}: {err}") from err
    if x.dtype.kind not in "biuf":
        raise SelfsupError(f"{where} holds a {x.dtype} array; series must be numbers (NaN for missing values).")
    if x.ndim == 2:
        x = x[:, None, :]
    elif x.ndim != 3:
        raise SelfsupError(f"{where} holds an array of shape {x.shape}; series must be (N, T) or (N, C, T).")
    if x.shape[2] == 0:
        raise SelfsupError(f"{where} holds series of length 0 (shape {x.shape}); pass series with at least one step.")
    labels = _array_labels(y, x.shape[0], where) if y is not None else None
    ids = [f"{path.stem}/{i}" for i in range(x.shape[0])]
    return _dataset(x.astype(np.float64, copy=False), labels, ids, classes, where)


# --------------------------------------------------------------------------- tables


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep)
            check_csv_header(path, sep, frame.columns)
    except pd.errors.EmptyDataError as err:
        raise SelfsupError(
            f"'{path}' is empty; pass a table with a header row and one row per series "
            "(or per time step with --series-id)."
        ) from err
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SelfsupError(f"cannot read '{path}' as a table: {err}") from err
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _numeric_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values):
            bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
            example = f" (e.g. '{values[bad].iloc[0]}')" if bad.any() else ""
            raise SelfsupError(
                f"column '{column}' of {where} is not numeric{example}; name the label with --label, "
                "leave other columns out with --ignore, or fix the values."
            )
    return frame.astype(np.float64)


def _time_order(values: pd.Series, column: str, where: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    try:
        return pd.to_datetime(values, format="mixed")
    except (ValueError, TypeError) as err:
        raise SelfsupError(
            f"time column '{column}' of {where} holds values that are neither numbers nor dates; "
            "pass a column that orders the rows of each series."
        ) from err


def read_table(path: str | Path, options: DataOptions | None = None, classes: list[str] | None = None) -> ArrayDataset:
    """Read series from a table: wide (one per row), or long with ``options.series_id`` (see the module docstring)."""
    path = Path(path)
    options = options or DataOptions()
    where = f"'{path}'"
    frame = _read_frame(path)
    named = {"--label": options.label, "--series-id": options.series_id, "--time-column": options.time_column}
    for flag, column in [*named.items(), *(("--ignore", c) for c in options.ignore)]:
        if column is not None and column not in frame.columns:
            raise SelfsupError(
                f"{flag} column '{column}' is not in {where} (its columns: "
                f"{', '.join(frame.columns[:20])}{', ...' if len(frame.columns) > 20 else ''})."
            )
    if options.time_column and not options.series_id:
        raise SelfsupError("--time-column orders the rows of long-format series; pass --series-id too.")
    if len(frame) == 0:
        raise SelfsupError(f"{where} holds no series (no rows); pass a table with at least one row.")
    if options.series_id is None:
        row_labels = [label_text(v, where) for v in frame[options.label].tolist()] if options.label else None
        data = _numeric_columns(frame.drop(columns=[c for c in (options.label, *options.ignore) if c]), where)
        if data.shape[1] == 0:
            raise SelfsupError(f"{where} has no numeric columns left for the time steps.")
        ids = [f"{path.stem}/{i}" for i in range(len(frame))]
        return _dataset(data.to_numpy()[:, None, :], row_labels, ids, classes, where)

    key, time, label = options.series_id, options.time_column, options.label
    if frame[key].isna().any():
        raise SelfsupError(f"the --series-id column '{key}' of {where} has empty cells; every row needs a series id.")
    drop = [c for c in (key, time, label, *options.ignore) if c]
    data = _numeric_columns(frame.drop(columns=drop), where)
    if data.shape[1] == 0:
        raise SelfsupError(
            f"{where} has no numeric channel columns besides '{key}'"
            f"{', the time column' if time else ''}{' and the label' if label else ''}."
        )
    codes, names = pd.factorize(frame[key])  # series numbered in order of first appearance
    order = pd.DataFrame({"key": frame[key], "series": codes, "row": np.arange(len(frame))})
    if time:
        order["time"] = _time_order(frame[time], time, where)
        if order["time"].isna().any():
            raise SelfsupError(f"the --time-column '{time}' of {where} has empty cells; every row needs a time.")
        repeated = order.duplicated(["key", "time"])
        if repeated.any():
            row = order[repeated].iloc[0]
            raise SelfsupError(
                f"series '{row['key']}' of {where} has two rows at time {row['time']}; "
                "each series needs one row per time step."
            )
    order = order.sort_values(["series", "time", "row"] if time else ["series", "row"], kind="stable")
    values = data.to_numpy()
    label_values = frame[label].to_numpy() if label else None
    series: list[list[np.ndarray]] = []
    labels: list[str | None] | None = [] if label else None
    for code, group in order.groupby("series", sort=True):
        rows = group["row"].to_numpy()
        series.append(list(values[rows].T))
        if labels is not None and label_values is not None:
            found = {text for text in (label_text(v, where) for v in label_values[rows]) if text is not None}
            if len(found) > 1:
                raise SelfsupError(
                    f"the label of series '{names[code]}' in {where} changes over time "
                    f"({', '.join(sorted_classes(found))}); each series has one label."
                )
            labels.append(found.pop() if found else None)
    ids = [str(name) for name in names]
    return _dataset(_stack(series), labels, ids, classes, where, list(data.columns))


# --------------------------------------------------------------------------- sources


def read_file(path: str | Path, options: DataOptions | None = None, classes: list[str] | None = None) -> ArrayDataset:
    """Read one series file by its suffix (``.ts``, ``.npy``/``.npz``, ``.csv``/``.tsv``/``.parquet``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SelfsupError(f"series file '{path}' does not exist.")
    if suffix in TS_SUFFIXES:
        return read_ts(path, classes)
    if suffix in ARRAY_SUFFIXES:
        return read_array(path, classes)
    if suffix in TABLE_SUFFIXES:
        return read_table(path, options, classes)
    raise SelfsupError(
        f"cannot read '{path}' as time series; use a {', '.join(SUFFIXES)} file or a folder with "
        "NAME_TRAIN and NAME_TEST files."
    )


def split_files(folder: str | Path) -> tuple[Path, Path | None]:
    """The train (and test, if any) file of a folder: ``*_TRAIN.ext`` / ``*_TEST.ext``, or its only series file."""
    folder = Path(folder)
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES
    ]
    for suffix in SUFFIXES:
        of_kind = [p for p in files if p.suffix.lower() == suffix]
        train = [p for p in of_kind if p.stem.upper().endswith("_TRAIN")]
        test = [p for p in of_kind if p.stem.upper().endswith("_TEST")]
        if len(train) > 1 or len(test) > 1:
            raise SelfsupError(
                f"'{folder}' holds several {suffix} train or test files "
                f"({', '.join(p.name for p in train + test)}); keep one NAME_TRAIN and one NAME_TEST."
            )
        if train:
            return train[0], (test[0] if test else None)
        if test:
            raise SelfsupError(f"'{folder}' holds {test[0].name} but no matching *_TRAIN{suffix} file.")
    if len(files) == 1:
        return files[0], None
    found = f"{len(files)} series files" if files else "no series files"
    raise SelfsupError(
        f"'{folder}' holds {found}; pass one file, or a folder with NAME_TRAIN and NAME_TEST files "
        f"({', '.join(SUFFIXES)})."
    )


class Reading(TypedDict):
    """A series encoder's preprocessing settings: its channel count, and the CSV columns its data was read by."""

    channels: int
    label: str | None
    ignore: list[str]
    series_id: str | None
    time_column: str | None


def check_channels(dataset: Samples, preprocessing: Preprocessing | None, source: str) -> None:
    """Refuse series whose channel count differs from the encoder's."""
    if preprocessing is None or preprocessing.get("channels") is None:
        return
    expected, found = int(preprocessing.get("channels")), int(dataset.sample_shape[0])
    if expected != found:
        raise SelfsupError(
            f"the encoder takes {expected} channel(s) but {source} has {found}; pass series with "
            "the channels the encoder was trained on, in the same order."
        )


def load_files(
    train_path: str | Path,
    test_path: str | Path | None = None,
    options: DataOptions | None = None,
    preprocessing: Preprocessing | None = None,
    name: str | None = None,
) -> Splits:
    """Read a train file and an optional test file into splits of one length (test labels use train's classes);
    ``.npy`` files lazily with ``--in-memory no`` (or ``auto``, when large: ``series_lazy``)."""
    read = options or DataOptions()
    lazy = _lazy_npy(train_path, test_path, read.in_memory)
    train: Samples
    test: Samples | None = None
    if lazy is not None:
        train, test = lazy
        check_channels(train, preprocessing, f"'{train_path}'")
    else:
        train, test = _read_files(train_path, test_path, options, preprocessing)
    columns = Reading(
        channels=int(train.sample_shape[0]),
        label=read.label,
        ignore=list(read.ignore),
        series_id=read.series_id,
        time_column=read.time_column,
    )
    return Splits(
        train=train, test=test, name=name or str(train_path), modality=NAME, preprocessing=Preprocessing(NAME, columns)
    )


def _lazy_npy(
    train_path: str | Path, test_path: str | Path | None, in_memory: str
) -> tuple[Samples, Samples | None] | None:
    """Lazily read splits of ``.npy`` files (``series_lazy``), or None to read them whole: as ``in_memory`` says,
    or (auto) when as float32 they would pass ``IN_MEMORY_BYTES``. Other files are always read whole (``no`` says
    so, once)."""
    paths = [Path(p) for p in (train_path, test_path) if p is not None]
    if in_memory == "yes":
        return None
    if any(p.suffix.lower() != ".npy" or not p.is_file() for p in paths):
        if in_memory == "no":
            warnings.warn(
                f"'{paths[0]}' is read whole: only .npy series are read lazily (.npz, .ts and tables cannot be "
                "read one series at a time); save the series as NAME_TRAIN.npy / NAME_TEST.npy to read them lazily.",
                UserWarning,
                stacklevel=4,
            )
        return None
    from selfsup.modalities.series_lazy import lazy_npy, open_npy, series_shape

    arrays = [open_npy(p) for p in paths]
    shapes = [series_shape(a) for a in arrays]
    if not reads_lazily(in_memory, sum(a.shape[0] * c * t * 4 for a, (c, t) in zip(arrays, shapes))):
        return None
    if len(shapes) == 2 and shapes[0][0] != shapes[1][0]:
        raise SelfsupError(
            f"'{paths[0]}' has {shapes[0][0]} channel(s) but '{paths[1]}' has {shapes[1][0]}; train and test series "
            "need the same channels."
        )
    length = max(t for _, t in shapes)
    parts = [lazy_npy(p, a, length) for p, a in zip(paths, arrays)]
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _read_files(
    train_path: str | Path,
    test_path: str | Path | None,
    options: DataOptions | None,
    preprocessing: Preprocessing | None,
) -> tuple[ArrayDataset, ArrayDataset | None]:
    """The splits of a train file and an optional test file read into memory, padded to one length."""
    train = read_file(train_path, options)
    check_channels(train, preprocessing, f"'{train_path}'")
    test = None
    if test_path is not None:
        test = read_file(test_path, options, classes=train.classes)
        if test.x.shape[1] != train.x.shape[1]:
            raise SelfsupError(
                f"'{train_path}' has {train.x.shape[1]} channel(s) but '{test_path}' has "
                f"{test.x.shape[1]}; train and test series need the same channels."
            )
        length = max(train.x.shape[-1], test.x.shape[-1])
        train.x, test.x = pad_length(train.x, length), pad_length(test.x, length)
    return train, test


def load(source: str, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """Read a series file or a folder of train/test files (see the module docstring); for an encoder (its
    ``preprocessing``), CSV columns as its data was read and series with another channel count refused."""
    path = Path(source)
    if not path.exists():
        raise SelfsupError(
            f"series data '{source}' does not exist; pass a .ts/.npy/.npz/.csv file or a folder of "
            "NAME_TRAIN/NAME_TEST files."
        )
    options = _as_trained(options or DataOptions(), preprocessing)
    train_path, test_path = split_files(path) if path.is_dir() else (path, None)
    return load_files(train_path, test_path, options, preprocessing, name=str(source))


def _as_trained(options: DataOptions, preprocessing: Preprocessing | None) -> DataOptions:
    """Options not given now default to how the encoder's pre-training data was read (CSV columns)."""
    read = preprocessing.settings if preprocessing is not None else {}
    return replace(
        options,
        label=options.label or read.get("label"),
        ignore=options.ignore or tuple(read.get("ignore", ())),
        series_id=options.series_id or read.get("series_id"),
        time_column=options.time_column or read.get("time_column"),
    )


# --------------------------------------------------------------------------- encoder, views, baseline


def channel_statistics(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over every observed (non-NaN) value of ``x`` ``(N, C, T)``.

    A (near-)constant channel, std below ``MIN_STD * |mean|`` (or 0), gets std 1 so that it normalises to 0
    rather than blowing up small differences in later data.
    """
    values = x.double().transpose(0, 1).reshape(x.shape[1], -1).numpy()
    observed = ~np.isnan(values)
    count = np.maximum(observed.sum(axis=1), 1)
    mean = np.where(observed, values, 0.0).sum(axis=1) / count
    std = np.sqrt(np.where(observed, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / count)
    std = np.where((std > 0) & (std > MIN_STD * np.abs(mean)), std, 1.0)
    return [float(m) for m in mean], [float(s) for s in std]


def encoder_config(
    name: str, splits: Splits, options: DataOptions | None = None, encoder_args: dict | None = None
) -> dict:
    """Encoder config with the channel count, the training length and per-channel statistics of the training split."""
    from selfsup.data import valid_lengths
    from selfsup.encoders.series import series_encoder_config

    x = fit_sample(splits.train).x  # every series in memory; a bounded sample of lazily read ones
    mean, std = channel_statistics(x)
    length = int(valid_lengths(x).max()) or int(x.shape[-1])  # the training split's, not a padded test's
    return series_encoder_config(name, int(x.shape[1]), length, mean, std, **(encoder_args or {}))


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """How the training split's CSV columns were read (so embed/evaluate read new files the same way), and the
    encoder's channel count."""
    read = dict(splits.preprocessing.settings) if splits.preprocessing is not None else {}
    return Preprocessing(NAME, read | {"channels": int(encoder_config["in_chans"])})


def make_views(spec: ViewSpec, splits: Splits, encoder_config: dict, view_args: dict | None = None) -> torch.nn.Module:
    """The batched on-device augmentation pipeline for a method's view spec (``view_args``: see VIEW_ARGS and
    ``series_views``); scaling and magnitude warping stretch around the training mean of each channel."""
    from selfsup.modalities.series_views import SeriesViews

    view_args = check_known(view_args, VIEW_ARGS, "time-series")
    for key in ("crop_scale", "local_crop_scale"):
        if key in view_args:
            view_args[key] = crop_pair(key, view_args[key])
    for key in ("jitter", "scaling", "magnitude_warp", "time_warp"):
        if key in view_args:
            view_args[key] = bounded_number(key, view_args[key])
    if "mask_ratio" in view_args:
        view_args["mask_ratio"] = bounded_number("mask_ratio", view_args["mask_ratio"], below=1.0)
    for key in ("knots", "max_segments", "local_length", "mask_span"):
        if view_args.get(key) is not None:
            view_args[key] = bounded_number(key, view_args[key], low=1, integer=True)
    return SeriesViews(spec, int(encoder_config["in_chans"]), center=encoder_config.get("mean"), **view_args)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-input baseline: series normalised per channel as the encoder does, NaN set to 0, padded (or cut)
    to the encoder's training length, flattened to ``(N, C * length)``."""
    x = pad_length(x.detach().float().cpu(), int(encoder_config["length"]))
    mean = torch.tensor(encoder_config["mean"], dtype=torch.float32).view(1, -1, 1)
    std = torch.tensor(encoder_config["std"], dtype=torch.float32).view(1, -1, 1)
    return torch.nan_to_num((x - mean) / std, nan=0.0).flatten(1).numpy()


def fit_samples(x: torch.Tensor, sample_shape: tuple[int, ...]) -> torch.Tensor:
    """Series of another source (replay) with this data's channels cut or NaN-padded to its length."""
    return pad_length(x, sample_shape[-1]) if x.shape[1] == sample_shape[0] else x


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    "per-channel normalised values, flattened (missing and padding as 0)",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
    fit_samples=fit_samples,
)
