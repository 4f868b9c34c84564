"""Tables: CSV / TSV / Parquet reader, a JSON schema fitted on the training rows, SCARF/VIME views.

A table becomes float32 ``x`` of shape ``(N, F)`` through a schema (docs/modalities.md) fitted on the
pre-training split only and applied unchanged to any later table (``embed``, ``evaluate``):
standardised numeric columns, then missing-value indicators, then categorical codes.

Column kinds (``fit_schema``), in the table's column order:

* **boolean** (bool dtype, or only ``True``/``False`` values): categorical with ``["False", "True"]``.
* **numeric**: int / float columns, and text columns whose values are at least 95% numbers (the other
  values, e.g. ``'?'``, are treated as missing, with a warning). Standardised with the mean and the
  population standard deviation of the fitted rows; missing values become 0 (the mean) and get an
  indicator column when the fitted rows had any. Infinite values are treated as missing, with a warning.
* **categorical**: text / object / category columns, and *integer-coded* columns: whole numbers with
  at most 10 distinct values each seen twice on average (0/1 flags, ratings, codes). Categories are
  the sorted distinct values as strings (numbers sorted numerically; ``2.0`` is ``"2"``, so an int
  column with blanks, which reads as float, keeps its categories). Code 0 = missing or unseen.
* **left out** (``schema["dropped"]``, with a warning): all values missing; constant (one value, none
  missing; a single value with some missing is kept, the missingness being the information); dates
  and times; text with more distinct values than half its rows (and more than 10), or whole numbers
  that are distinct and consecutive over at least 20 rows (a saved row index): both look like ids.

The label column (``--label``, probing only) is never an input. Its classes are the sorted distinct
values as strings (numbers sorted numerically); rows without a label get ``UNLABELED``. A label that
looks continuous (more than 20 distinct numbers, not whole or unique on over half the rows) is refused.

Sample ids: when an ``--ignore``d column is named like an id (``id``, ``*_id``, ``*-id``, ``* id``)
and its values are present and unique, its values; otherwise ``"row-{i}"`` with ``i`` the row's index
label in the frame (for a file, the 0-based data row; for the built-in tables, the row of the full table).

A Parquet file too large to hold (``--in-memory no``, or ``auto``) is read lazily, its schema fitted on a bounded
sample of row groups: ``table_lazy``. CSV / TSV files are always read whole.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch

from selfsup.data import IN_MEMORY_BYTES, UNLABELED, ArrayDataset, DataOptions, Preprocessing, Samples, Splits
from selfsup.errors import SelfsupError, first_line, unknown_name
from selfsup.modalities import Modality
from selfsup.views import ViewSpec

NAME = "tabular"
DEFAULT_ENCODER = "mlp"
TOKEN_ENCODER = "ft_transformer"  # the default for masked methods, which need tokens
VIEW_ARGS = ("corrupt_rate", "mask_rate", "noise_std")

# suffix -> separator (None: Parquet); CSV/TSV may also be compressed (.gz, .bz2, .zip, .xz, .zst)
TABLE_FORMATS: dict[str, str | None] = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}
COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
MAX_CODES = 10  # integer columns with at most this many distinct values are categorical codes
NUMERIC_TEXT_SHARE = 0.95  # a text column with at least this share of numbers is numeric
HIGH_CARDINALITY_SHARE = 0.5  # categorical columns with more distinct values than this share of rows look like ids
MIN_ID_ROWS = 20  # consecutive distinct whole numbers over at least this many rows look like a row index
MAX_LABEL_NUMBERS = 20  # a numeric label with more distinct values (see module docstring) looks continuous
MAX_MARGINAL_ROWS = 20_000  # training rows the views draw replacement values from
ID_REASON = "high cardinality (looks like an id; pass --ignore)"


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _quoted(names: Iterable[Any], limit: int = 5) -> str:
    names = list(names)
    text = ", ".join(f"'{n}'" for n in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------- reading


def _table_format(path: Path) -> str | None:
    name = path.name.lower()
    for compression in COMPRESSIONS:
        if name.endswith(compression):
            name = name[: -len(compression)]
            break
    suffix = Path(name).suffix
    if suffix not in TABLE_FORMATS or (TABLE_FORMATS[suffix] is None and name != path.name.lower()):
        raise SelfsupError(
            f"cannot read '{path}' as a table: unknown file type '{path.suffix}'; save it as .csv, .tsv or .parquet."
        )
    return TABLE_FORMATS[suffix]


def _string_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The frame with string column names; duplicate names are refused."""
    columns = [str(c) for c in frame.columns]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise SelfsupError(f"table '{name}' has duplicate columns {_quoted(duplicates)}; rename them.")
    return frame if list(frame.columns) == columns else frame.set_axis(columns, axis=1)


def check_csv_header(path: Path, sep: str, columns: Sequence[Any]) -> None:
    """Refuse a CSV/TSV whose header row repeats a name: pandas reads ``a, a`` as ``a, a.1``, so when a
    column looks renamed that way the header is read again as written."""
    names = {str(c) for c in columns}
    if not any(base and base in names and number.isdigit() for base, _, number in (c.rpartition(".") for c in names)):
        return
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    duplicates = sorted({c for c in header if c and header.count(c) > 1})
    if duplicates:
        raise SelfsupError(f"table '{path}' has duplicate columns {_quoted(duplicates)}; rename them.")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a .csv / .tsv (optionally compressed) or .parquet file into a DataFrame with string column names.

    CSV/TSV must be UTF-8 with a header row; pandas' usual markers (empty, ``NA``, ``NaN``, ``null``,
    ``None``, ...) are missing values. Unreadable files, tables without rows and headers that repeat a column
    name raise ``SelfsupError``.
    """
    path = Path(path)
    if not path.exists():
        raise SelfsupError(f"table '{path}' does not exist; pass a .csv, .tsv or .parquet file.")
    if path.is_dir():
        raise SelfsupError(f"'{path}' is a folder; pass a table file (.csv, .tsv or .parquet).")
    sep = _table_format(path)
    try:
        if sep is None:
            import pyarrow as pa

            try:
                frame = pd.read_parquet(path)
            except (ValueError, OSError, pa.ArrowException) as err:
                first = first_line(err)
                raise SelfsupError(f"cannot read table '{path}': {first}; is it a valid Parquet file?") from err
        else:
            frame = pd.read_csv(path, sep=sep, low_memory=False)
            check_csv_header(path, sep, frame.columns)
    except pd.errors.EmptyDataError as err:
        raise SelfsupError(f"table '{path}' is empty; it needs a header row and at least one data row.") from err
    except UnicodeDecodeError as err:
        raise SelfsupError(
            f"cannot read table '{path}': it is not UTF-8 text (byte {err.object[err.start]:#04x} "
            f"at position {err.start}); save it as UTF-8 {path.suffix} or as Parquet."
        ) from err
    except (pd.errors.ParserError, ValueError, OSError) as err:
        first = first_line(err)
        raise SelfsupError(
            f"cannot read table '{path}': {first}; check that it is a valid "
            f"{'tab' if sep == chr(9) else 'comma'}-separated file with a header row."
        ) from err
    frame = _string_columns(frame, str(path))
    if frame.shape[1] == 0:
        raise SelfsupError(f"table '{path}' has no columns; it needs a header row.")
    if frame.shape[1] == 1 and sep is not None:
        header = str(frame.columns[0])
        for other in (";", "\t", ",", "|"):
            if other != sep and other in header:
                raise SelfsupError(
                    f"table '{path}' reads as one column named '{header[:40]}'; its values seem "
                    f"separated by {other!r}. Save it comma-separated (.csv) or tab-separated (.tsv)."
                )
    if len(frame) == 0:
        raise SelfsupError(f"table '{path}' has no data rows (only a header).")
    return frame


# ---------------------------------------------------------------- column values


def _category_key(value: Any) -> str:
    """A value as a category string: ``True`` -> ``"True"``, ``2.0`` -> ``"2"``, ``1.5`` -> ``"1.5"``."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    return str(value)


def _category_strings(column: pd.Series) -> np.ndarray:
    """Object array of category strings, ``None`` where the value is missing."""
    missing = column.isna().to_numpy()
    out = np.full(len(column), None, dtype=object)
    present = column[~missing]
    if isinstance(column.dtype, pd.StringDtype):
        out[~missing] = present.to_numpy(dtype=object)
    else:
        out[~missing] = [_category_key(v) for v in present.astype(object).to_numpy()]
    return out


def _is_boolean(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column.dtype):
        return True
    if column.dtype != object:
        return False
    present = column.dropna()
    return len(present) > 0 and all(isinstance(v, (bool, np.bool_)) for v in present.to_numpy())


def _numbers(column: pd.Series) -> tuple[np.ndarray, list[str], int]:
    """Float64 values with NaN for missing, non-numeric text and +-inf; the text values; the inf count."""
    text: list[str] = []
    if pd.api.types.is_numeric_dtype(column.dtype):  # bool included
        values = np.array(column.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    else:
        source = column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype) else column
        numbers = pd.to_numeric(source, errors="coerce")
        values = np.array(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        text_rows = ~column.isna().to_numpy() & np.isnan(values)
        text = [str(v) for v in column[text_rows].astype(object).to_numpy()]
    infinite = np.isinf(values)
    values[infinite] = np.nan
    return values, text, int(infinite.sum())


def _is_whole(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)))


def _numeric_label(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def _sorted_categories(keys: Iterable[str], numeric: bool) -> list[str]:
    distinct = set(keys)
    if numeric:
        return sorted(distinct, key=float)
    return sorted(distinct)


def _value_note(name: str, text: list[str], infinite: int) -> str | None:
    parts = []
    if text:
        parts.append(f"non-numeric values {_quoted(sorted(set(text)), 3)} ({len(text)} rows)")
    if infinite:
        parts.append(f"{infinite} infinite values")
    return f"column '{name}': {' and '.join(parts)} treated as missing." if parts else None


# ---------------------------------------------------------------- schema


def _closest(name: str, columns: Sequence[str]) -> str | None:
    """The column most like ``name``: the same name up to case and spacing, else a close spelling."""

    def squash(text: str) -> str:
        return "".join(text.lower().split()).replace("_", "").replace("-", "")

    same = [c for c in columns if squash(c) == squash(name)]
    if same:
        return same[0]
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in columns], n=1, cutoff=0.6)
    return next(c for c in columns if c.lower() == close[0]) if close else None


def _check_columns(frame: pd.DataFrame, label: str | None, ignore: Sequence[str]) -> None:
    columns = list(frame.columns)
    if label is not None and label not in columns:
        raise unknown_name("label column", label, columns, hint="Pass --label with one of the table's columns.")
    for name in ignore:
        if name not in columns:
            raise unknown_name("--ignore column", name, columns, hint="Pass --ignore with the table's column names.")
    if label is not None and label in ignore:
        raise SelfsupError(f"column '{label}' is both the --label and an --ignore column; pass it as one of them.")


def _fit_column(column: pd.Series, name: str, total_rows: int | None = None) -> tuple[str, dict | None, str | None]:
    """(kind, schema entry, reason); kind: 'numeric', 'numeric_missing' (gets an indicator), 'categorical', 'dropped'.

    ``total_rows``: the rows of the whole table when ``column`` is a sample of them (a lazily read table): distinct
    whole numbers spanning no more than the table's rows look like a row index (on all rows: consecutive ones)."""
    missing = column.isna().to_numpy()
    n_present = int((~missing).sum())
    if n_present == 0:
        return "dropped", None, "all values missing"
    if _is_boolean(column):
        keys = _category_strings(column)[~missing]
        if len(set(keys)) == 1 and n_present == len(column):
            return "dropped", None, "constant"
        return "categorical", {"name": name, "categories": ["False", "True"]}, None
    if pd.api.types.is_datetime64_any_dtype(column.dtype) or pd.api.types.is_timedelta64_dtype(column.dtype):
        return "dropped", None, "dates and times are not supported; derive numeric columns from them or pass --ignore"
    numeric = pd.api.types.is_numeric_dtype(column.dtype)
    if not numeric and not isinstance(column.dtype, pd.CategoricalDtype):
        # text: numeric when nearly every value is a number (e.g. '?' marking missing values); a sample first
        for sample in (column.dropna().head(1000), column):
            _, text, _ = _numbers(sample)
            present = int(sample.notna().sum())
            numeric = len(text) < present and present - len(text) >= NUMERIC_TEXT_SHARE * present
            if not numeric:
                break
    if numeric:
        values, text, infinite = _numbers(column)
        note = _value_note(name, text, infinite)
        if note:
            _warn(note)
        finite = values[~np.isnan(values)]
        if len(finite) == 0:
            return "dropped", None, "no finite numbers"
        distinct = np.unique(finite)
        has_missing = len(finite) < len(values)
        if len(distinct) == 1 and not has_missing:
            return "dropped", None, "constant"
        if _is_whole(finite):
            if len(distinct) <= MAX_CODES and len(finite) >= 2 * len(distinct):
                return "categorical", {"name": name, "categories": [_category_key(v) for v in distinct]}, None
            span = distinct[-1] - distinct[0] + 1
            if len(distinct) == len(finite) == len(values) >= MIN_ID_ROWS and span <= (total_rows or len(distinct)):
                return "dropped", None, ID_REASON
        mean = float(finite.mean())
        std = float(finite.std())
        if not std > 1e-12 * max(1.0, abs(mean)):
            std = 1.0
        entry = {"name": name, "mean": mean, "std": std}
        return ("numeric_missing" if has_missing else "numeric"), entry, None
    keys = _category_strings(column)[~missing]
    distinct_keys = set(keys)
    if len(distinct_keys) == 1 and n_present == len(column):
        return "dropped", None, "constant"
    if len(distinct_keys) > max(HIGH_CARDINALITY_SHARE * n_present, MAX_CODES):
        return "dropped", None, ID_REASON
    return "categorical", {"name": name, "categories": sorted(distinct_keys)}, None


def _fit_classes(column: pd.Series, name: str) -> list[str]:
    """Sorted distinct label values as strings; refuses labels that are all missing or look continuous."""
    present = column.dropna()
    if len(present) == 0:
        raise SelfsupError(
            f"label column '{name}' has no values; pass a column holding class labels as --label, or leave --label out."
        )
    numeric = _numeric_label(column)
    keys = _category_strings(present)
    if numeric:
        values = present.to_numpy(dtype=np.float64)
        distinct = np.unique(values[np.isfinite(values)])
        if len(distinct) > MAX_LABEL_NUMBERS and (not _is_whole(distinct) or len(distinct) > 0.5 * len(present)):
            raise SelfsupError(
                f"label column '{name}' looks continuous ({len(distinct)} distinct numbers); probing "
                "needs class labels: pass a column of classes as --label, or leave --label out."
            )
        if len(distinct) < len(set(keys)):
            raise SelfsupError(f"label column '{name}' holds infinite values; fix those rows or leave --label out.")
    return _sorted_categories(keys, numeric)


def fit_schema(
    frame: pd.DataFrame,
    label: str | None = None,
    ignore: Sequence[str] = (),
    total_rows: int | None = None,
    label_values: pd.Series | None = None,
) -> dict:
    """Fit the table schema (docs/modalities.md; kinds and rules in the module docstring) on ``frame``.

    ``label`` is the class column (left out of the inputs), ``ignore`` columns to leave out (ids).
    Left-out columns are reported in ``schema["dropped"]`` and in one warning. When ``frame`` is a sample of the
    table's rows (a lazily read table), ``total_rows`` is the table's row count and ``label_values`` its whole
    label column (the classes are fitted on every row).
    """
    frame = _string_columns(frame, "table")
    ignore = [str(c) for c in ignore]
    _check_columns(frame, label, ignore)
    if len(frame) == 0:
        raise SelfsupError("the table has no rows; pre-training needs at least one.")
    numeric: list[dict] = []
    indicators: list[str] = []
    categorical: list[dict] = []
    dropped: list[dict] = []
    for name in frame.columns:
        if name == label or name in ignore:
            continue
        kind, entry, reason = _fit_column(frame[name], name, total_rows)
        if entry is None:  # kind "dropped"
            dropped.append({"name": name, "reason": reason})
        elif kind == "categorical":
            categorical.append(entry)
        else:
            numeric.append(entry)
            if kind == "numeric_missing":
                indicators.append(name)
    left_out = "; ".join(f"'{d['name']}' ({d['reason']})" for d in dropped)
    if not numeric and not categorical:
        why = left_out or "every column is the label or ignored"
        raise SelfsupError(
            f"the table has no usable input columns ({why}); it needs at least one numeric, "
            "categorical or boolean column besides --label and --ignore."
        )
    if dropped:
        _warn(f"left out {len(dropped)} column(s): {left_out}.")
    return {
        "numeric": numeric,
        "indicators": indicators,
        "categorical": categorical,
        "label": label,
        "classes": _fit_classes(frame[label] if label_values is None else label_values, label)
        if label is not None
        else None,
        "ignored": ignore,
        "dropped": dropped,
    }


def schema_width(schema: dict) -> int:
    """``F``: the number of ``x`` columns the schema produces."""
    return len(schema["numeric"]) + len(schema["indicators"]) + len(schema["categorical"])


class Reading(TypedDict):
    """A table encoder's preprocessing settings: the schema fitted on its pre-training rows."""

    schema: dict[str, Any]


def _check_schema(schema: Any) -> dict:
    keys = ("numeric", "indicators", "categorical", "label", "classes")
    if not isinstance(schema, dict) or any(k not in schema for k in keys):
        raise SelfsupError(
            "the encoder's preprocessing holds no valid table schema; was the encoder pre-trained on a table?"
        )
    return schema


def _labels(frame: pd.DataFrame, label: str | None, classes: list[str] | None) -> torch.Tensor:
    if label is None or label not in frame.columns or classes is None:
        return torch.full((len(frame),), UNLABELED, dtype=torch.long)
    keys = _category_strings(frame[label])
    codes = pd.Index(classes).get_indexer(keys)
    unseen = sorted({k for k, c in zip(keys, codes) if c < 0 and k is not None})
    if unseen:
        raise SelfsupError(
            f"label column '{label}' has values not among the classes {_quoted(classes)}: "
            f"{_quoted(unseen)}; leave out those rows or pass another --label."
        )
    codes[np.asarray([k is None for k in keys], dtype=bool)] = UNLABELED
    return torch.from_numpy(codes.astype(np.int64))


def apply_schema(frame: pd.DataFrame, schema: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` float32 ``(N, F)`` and labels ``y`` (long, ``UNLABELED`` where missing) from a table.

    Every column the schema uses must be present (else ``SelfsupError`` naming it); other columns are
    ignored. Missing, infinite and (with a warning) non-numeric values of numeric columns become 0 (the
    fitted mean), with indicator 1 where the schema has an indicator for the column; missing and unseen
    categories get code 0. Labels: ``schema["label"]`` mapped to ``schema["classes"]`` when the column
    is present (unseen values raise), else every row ``UNLABELED``.
    """
    schema = _check_schema(schema)
    frame = _string_columns(frame, "table")
    needed = [e["name"] for e in schema["numeric"]] + [e["name"] for e in schema["categorical"]]
    absent = [n for n in needed if n not in frame.columns]
    if absent:
        close = _closest(absent[0], [c for c in frame.columns if c not in needed])
        hint = f" (is '{close}' the column '{absent[0]}'?)" if close else ""
        raise SelfsupError(
            f"the table lacks column(s) {_quoted(absent)} that the encoder's table schema needs{hint}; "
            "pass a table with the columns the encoder was pre-trained on."
        )
    n = len(frame)
    numeric = np.zeros((n, len(schema["numeric"])), dtype=np.float64)
    missing_of: dict[str, np.ndarray] = {}
    for j, entry in enumerate(schema["numeric"]):
        name = entry["name"]
        values, text, infinite = _numbers(frame[name])
        if text and len(text) * 2 > n - int(frame[name].isna().sum()):
            raise SelfsupError(
                f"column '{name}' should hold numbers but holds text such as "
                f"{_quoted(sorted(set(text)), 3)}; pass a table whose '{name}' column is numeric."
            )
        note = _value_note(name, text, infinite)
        if note:
            _warn(note)
        missing = np.isnan(values)
        missing_of[name] = missing
        numeric[:, j] = np.where(missing, 0.0, (values - entry["mean"]) / entry["std"])
    indicators = (
        np.stack([missing_of[name] for name in schema["indicators"]], axis=1).astype(np.float64)
        if schema["indicators"]
        else np.zeros((n, 0))
    )
    codes = np.zeros((n, len(schema["categorical"])), dtype=np.float64)
    for j, entry in enumerate(schema["categorical"]):
        keys = _category_strings(frame[entry["name"]])
        codes[:, j] = pd.Index(entry["categories"]).get_indexer(keys) + 1  # -1 (missing / unseen) -> 0
    x = torch.from_numpy(np.concatenate([numeric, indicators, codes], axis=1).astype(np.float32))
    return x, _labels(frame, schema["label"], schema["classes"])


# ---------------------------------------------------------------- splits


def _looks_like_id(name: str) -> bool:
    low = name.strip().lower()
    return low == "id" or low.endswith(("_id", "-id", " id"))


def _ids(frame: pd.DataFrame, ignore: Sequence[str]) -> list[str]:
    for name in ignore:
        if _looks_like_id(name) and name in frame.columns:
            column = frame[name]
            if not column.isna().any() and column.is_unique:
                return list(_category_strings(column))
    return [f"row-{i}" for i in frame.index]


def _schemas(
    rows: pd.DataFrame,
    labels: pd.DataFrame,
    options: DataOptions,
    preprocessing: Preprocessing | None,
    total_rows: int | None = None,
) -> tuple[dict, dict]:
    """The schema fitted on ``rows`` (or an encoder's ``preprocessing``), and the one the split is read with: that
    schema with the split's label and classes. ``labels`` holds the label column of every row (``rows`` itself, or
    for a lazily read table, whose ``rows`` are a sample of ``total_rows``, that column read alone)."""
    ignore = tuple(str(c) for c in options.ignore)
    sampled = total_rows is not None and options.label is not None
    if preprocessing is None:
        label_values = labels[options.label] if sampled and options.label in labels.columns else None
        schema = fit_schema(rows, options.label, ignore, total_rows, label_values)
        label, classes = schema["label"], schema["classes"]
    else:
        schema = _check_schema(preprocessing.get("schema"))
        _check_columns(rows, options.label, ignore)
        inputs = {e["name"] for e in schema["numeric"]} | {e["name"] for e in schema["categorical"]}
        clash = [c for c in ignore if c in inputs]
        if clash:
            raise SelfsupError(
                f"--ignore {_quoted(clash)}: the encoder was pre-trained with this column as an input; "
                "do not ignore it."
            )
        if options.label is None or options.label == schema["label"]:
            label = schema["label"] if schema["label"] in rows.columns else None
            classes = schema["classes"] if label is not None else None
        else:
            label = options.label
            if label in inputs:
                _warn(f"label column '{label}' is also an input of the encoder; probing accuracy will be inflated.")
            classes = _fit_classes(labels[label], label)
    return schema, {**schema, "label": label, "classes": classes}


def from_frames(
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    name: str,
    options: DataOptions,
    preprocessing: Preprocessing | None = None,
) -> Splits:
    """Splits from DataFrames: the schema is fitted on ``train`` (or is an encoder's ``preprocessing``).

    With ``preprocessing``, its schema is applied unchanged; the label is ``options.label`` when
    given (classes fitted on ``train`` unless it is the schema's own label), else the schema's label
    when the table has that column (else the rows are unlabeled).
    """
    options = options or DataOptions()
    ignore = tuple(str(c) for c in options.ignore)
    train = _string_columns(train, name)
    if len(train) == 0:
        raise SelfsupError(f"table '{name}' has no rows.")
    schema, applied = _schemas(train, train, options, preprocessing)
    classes = applied["classes"]

    def split(frame: pd.DataFrame) -> ArrayDataset:
        x, y = apply_schema(frame, applied)
        return ArrayDataset(x, y, _ids(frame, ignore), classes)

    test_set = None
    if test is not None:
        test = _string_columns(test, name)
        if len(test) == 0:
            raise SelfsupError(f"the test table of '{name}' has no rows.")
        test_set = split(test)
    fitted = Preprocessing(NAME, Reading(schema=schema))
    return Splits(train=split(train), test=test_set, name=name, modality=NAME, preprocessing=fitted)


def load(source: str, options: DataOptions | None = None, preprocessing: Preprocessing | None = None) -> Splits:
    """Read a .csv / .tsv / .parquet file as the training split (no test split); see ``from_frames``. A Parquet file
    is read lazily (``table_lazy``) with ``--in-memory no``, or ``auto`` when its encoded rows would pass
    ``IN_MEMORY_BYTES``; a CSV / TSV file is always read whole."""
    options = options or DataOptions()
    path = Path(source)
    if options.in_memory != "yes" and path.is_file() and _table_format(path) is None:
        from selfsup.modalities.table_lazy import _parquet_file, lazy_table

        parquet = _parquet_file(path)
        # each column makes at most two features (a number and its missing indicator): surely small enough
        if (
            options.in_memory == "no"
            or parquet.metadata.num_rows * 2 * parquet.metadata.num_columns * 4 > IN_MEMORY_BYTES
        ):
            splits = lazy_table(path, options, preprocessing, parquet)
            if options.in_memory == "no" or len(splits.train) * splits.train.sample_shape[0] * 4 > IN_MEMORY_BYTES:
                return splits
    elif options.in_memory == "no" and path.is_file():
        _warn(
            f"'{path}' is read whole: a CSV/TSV file has no row index to read rows from lazily; save it as Parquet "
            "(pandas: read_csv(...).to_parquet(...)) to read it lazily."
        )
    return from_frames(read_table(source), None, str(source), options, preprocessing)


# ---------------------------------------------------------------- encoder, views, baseline


def encoder_config(name: str, splits: Splits, options: DataOptions | None, encoder_args: dict | None) -> dict:
    """The encoder config: ``table_encoder_config`` with the column layout of the schema fitted on the training
    split."""
    from selfsup.encoders.table import table_encoder_config

    return table_encoder_config(name, _fitted_schema(splits), **(encoder_args or {}))


def _fitted_schema(splits: Splits) -> dict:
    return _check_schema(splits.preprocessing.get("schema") if splits.preprocessing else None)


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """The schema the training split was read with: new tables are read with it unchanged."""
    return Preprocessing(NAME, Reading(schema=_fitted_schema(splits)))


def _rate(key: str, value: Any, high: float | None = 1.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (high is not None and number > high):
        bound = f"in [0, {high:g}]" if high is not None else "a number >= 0"
        raise SelfsupError(f"view argument {key} must be {bound}, got {value!r}.")
    return number


def make_views(
    spec: ViewSpec, splits: Splits, encoder_config: dict | None = None, view_args: dict | None = None
) -> torch.nn.Module:
    """``TableViews`` for a method's view spec (``view_args``: corrupt_rate, mask_rate, noise_std).

    Replacement values are drawn from up to 20,000 training rows (a fixed random choice; for a lazily read table,
    from the row groups its schema was fitted on).
    """
    from selfsup.modalities.table_views import TableViews
    from selfsup.modalities.view_args import check_known

    view_args = check_known(view_args, VIEW_ARGS, "table")
    args = {key: _rate(key, value, None if key == "noise_std" else 1.0) for key, value in view_args.items()}
    n_numeric, width = _layout(encoder_config) if encoder_config else _schema_layout(_fitted_schema(splits))
    rows = _marginal_rows(splits.train)
    if rows.dim() != 2 or rows.shape[1] != width:
        raise SelfsupError(
            f"the table has {tuple(rows.shape)} features but the encoder's columns make "
            f"{width}; read the table with the encoder's schema."
        )
    if len(rows) > MAX_MARGINAL_ROWS:
        pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:MAX_MARGINAL_ROWS]
        rows = rows[pick.sort().values]
    return TableViews(spec, n_numeric, rows, **args)


def _marginal_rows(train: Samples) -> torch.Tensor:
    """The training rows the views may draw replacement values from (all of them in memory; a lazily read table's
    schema sample, or a bounded random sample of other lazy data)."""
    if isinstance(train, ArrayDataset):
        return train.x.float()
    from selfsup.modalities.table_lazy import ParquetRows

    if isinstance(train.decode, ParquetRows):
        return train.decode.fitted_rows(MAX_MARGINAL_ROWS)
    return train.head(MAX_MARGINAL_ROWS).x.float()


def _schema_layout(schema: dict) -> tuple[int, int]:
    return len(schema["numeric"]), schema_width(schema)


def _layout(encoder_config: dict) -> tuple[int, int]:
    """``(numeric columns, x width)`` of a table encoder config."""
    from selfsup.encoders.table import table_layout

    n_continuous, cardinalities = table_layout(encoder_config)
    numeric = encoder_config["columns"]["numeric"] if "columns" in encoder_config else None
    if numeric is None:  # an export before December 2026 carried the schema
        numeric = len(_check_schema(encoder_config.get("schema"))["numeric"])
    return int(numeric), n_continuous + len(cardinalities)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-input baseline: numeric and indicator columns as they are, categorical codes one-hot.

    Categorical column ``j`` becomes ``len(categories) + 1`` columns (slot 0: missing or unseen).
    """
    from selfsup.encoders.table import table_layout

    dense, cardinalities = table_layout(encoder_config)
    values = x.detach().float().cpu().numpy()
    width = dense + len(cardinalities)
    if values.ndim != 2 or values.shape[1] != width:
        raise SelfsupError(
            f"table features have shape {values.shape} but the encoder's columns make {width}; "
            "read the table with the encoder's schema."
        )
    parts = [values[:, :dense]]
    rows = np.arange(len(values))
    for j, size in enumerate(cardinalities):
        codes = np.clip(np.rint(values[:, dense + j]), 0, size - 1).astype(np.int64)
        onehot = np.zeros((len(values), size), dtype=np.float32)
        onehot[rows, codes] = 1.0
        parts.append(onehot)
    return np.concatenate(parts, axis=1).astype(np.float32)


def categorical_columns(encoder_config: dict) -> np.ndarray:
    """Which raw-feature columns (``x``'s layout) are categorical codes: for tree models on the raw features."""
    from selfsup.encoders.table import table_layout

    dense, cardinalities = table_layout(encoder_config)
    return np.arange(dense + len(cardinalities)) >= dense


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    "standardised numeric columns, missing indicators and one-hot categories",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
    tree_columns=categorical_columns,
)
