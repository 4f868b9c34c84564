"""Parquet tables read lazily (issue 17): rows encoded with the table schema as training asks for them.

A table too large to hold (``--in-memory no``, or ``auto`` when its encoded rows would pass ``IN_MEMORY_BYTES``)
is indexed from the Parquet footer: its row count and row groups. Read up front: the schema sample and the label
(and id) column alone, by column projection. The schema (``tabular.fit_schema``) is fitted on at most ``FIT_ROWS``
rows: whole row groups picked at random (seed 0) until the next would pass ``FIT_ROWS``, read in file order (when a
single row group holds more, its first ``FIT_ROWS`` rows). A table of at most ``FIT_ROWS`` rows is fitted on every
row, so its schema equals the in-memory one. Categories the sample lacks get code 0, the code of missing and unseen
values; numeric statistics are the sample's; a column of distinct whole numbers spanning no more than the table's
rows is left out as a row index. The label's classes are fitted on every row. Row ``i`` is decoded by reading its row
group (only the schema's columns) and encoding it as the in-memory path does (``tabular.apply_schema``); each
process keeps the last group it read, so rows read in order cost one group read per group, and rows drawn at random
one group read each: benchmarks/table_lazy.py measures both. Warnings about a group's values (non-numeric text,
infinite numbers) are not repeated per group: fitting warned about those the sample holds.

CSV / TSV files have no row index to seek by: they are always read whole (``--in-memory no`` says so, once).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from selfsup.data import DataOptions, LazyDataset, NumberedIds, Preprocessing, Splits
from selfsup.errors import SelfsupError, first_line

FIT_ROWS = 100_000  # rows of a lazily read table its schema is fitted on


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (ValueError, OSError, pa.ArrowException) as err:
        raise SelfsupError(f"cannot read table '{path}': {first_line(err)}; is it a valid Parquet file?") from err


def _read(path: Path, read: Any) -> Any:
    """``read()`` (a pyarrow read of ``path``), an unreadable file refused in one line."""
    import pyarrow as pa

    try:
        return read()
    except (ValueError, OSError, pa.ArrowException) as err:
        raise SelfsupError(f"cannot read table '{path}': {first_line(err)}; is it a valid Parquet file?") from err


def group_starts(parquet: Any) -> np.ndarray:
    """The first row of each row group, then the row count: ``(groups + 1,)`` int64."""
    sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


def fit_groups(starts: np.ndarray, seed: int = 0) -> list[int]:
    """The row groups the schema is fitted on (module docstring), in file order."""
    sizes = np.diff(starts)
    picked: list[int] = []
    total = 0
    for group in np.random.default_rng(seed).permutation(len(sizes)).tolist():
        if not picked or total + sizes[group] <= FIT_ROWS:
            picked.append(group)
            total += int(sizes[group])
    return sorted(picked)


def _sample(path: Path, parquet: Any, groups: list[int]) -> pd.DataFrame:
    """The rows of ``groups`` (all columns, as ``pandas.read_parquet`` gives them); at most ``FIT_ROWS``."""
    if len(groups) == 1 and parquet.metadata.row_group(groups[0]).num_rows > FIT_ROWS:
        batch = _read(path, lambda: next(parquet.iter_batches(batch_size=FIT_ROWS, row_groups=groups)))
        import pyarrow as pa

        return pa.Table.from_batches([batch]).to_pandas()
    return _read(path, lambda: parquet.read_row_groups(groups, use_pandas_metadata=True).to_pandas())


class ParquetRows:
    """Decodes row ``i`` of a Parquet table: its row group's schema columns, encoded with ``schema`` as
    ``tabular.apply_schema`` encodes a whole table. Each process (DataLoader worker) keeps the last group it read; the
    open file and that group are not pickled."""

    def __init__(self, path: str, schema: dict, starts: np.ndarray, fitted_on: list[int]) -> None:
        self.path, self.schema, self.starts, self.fitted_on = path, schema, starts, fitted_on
        self.columns = [e["name"] for e in schema["numeric"]] + [e["name"] for e in schema["categorical"]]
        self._file: Any = None
        self._group, self._rows = -1, torch.empty(0)

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_file": None, "_group": -1, "_rows": torch.empty(0)}

    def group(self, group: int) -> torch.Tensor:
        """Every row of a row group, encoded: float32 ``(rows, F)``."""
        from selfsup.modalities.tabular import apply_schema

        path = Path(self.path)
        if self._file is None:
            self._file = _parquet_file(path)
        frame = _read(path, lambda: self._file.read_row_group(group, columns=self.columns).to_pandas())
        with warnings.catch_warnings():  # fitting warned about the sample's values; not again per group
            warnings.simplefilter("ignore")
            x, _ = apply_schema(frame, self.schema)
        return x

    def __call__(self, row: int) -> torch.Tensor:
        group = int(np.searchsorted(self.starts, row, side="right")) - 1
        if group != self._group:
            self._rows, self._group = self.group(group), group
        return self._rows[int(row) - int(self.starts[group])].clone()

    def fitted_rows(self, n: int, seed: int = 0) -> torch.Tensor:
        """At most ``n`` encoded rows of the row groups the schema was fitted on (few group reads, unlike ``n`` rows
        drawn from the whole table): a bounded sample for the views' replacement values."""
        rows = torch.cat([self.group(g) for g in self.fitted_on])
        if len(rows) > n:
            pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n]
            rows = rows[pick.sort().values]
        return rows


def _ids(known: pd.DataFrame, ignore: Sequence[str], n: int) -> Sequence[str]:
    """The ids ``tabular._ids`` gives the whole table, from its label / id columns and index alone."""
    from selfsup.modalities.tabular import _ids as table_ids
    from selfsup.modalities.tabular import _looks_like_id

    index = known.index
    plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and len(index) == n
    if plain and not any(_looks_like_id(c) and c in known.columns for c in ignore):
        return NumberedIds("row-", n)
    return table_ids(known, ignore)


def lazy_table(path: Path, options: DataOptions, preprocessing: Preprocessing | None, parquet: Any) -> Splits:
    """A Parquet table as a training split read lazily (module docstring); no test split, as in memory."""
    from selfsup.modalities.tabular import (
        NAME,
        Reading,
        _labels,
        _looks_like_id,
        _schemas,
        _string_columns,
        apply_schema,
        schema_width,
    )

    starts = group_starts(parquet)
    n = int(starts[-1])
    if n == 0:
        raise SelfsupError(f"table '{path}' has no data rows (only a header).")
    fitted_on = fit_groups(starts)
    rows = _string_columns(_sample(path, parquet, fitted_on), str(path))
    if rows.shape[1] == 0:
        raise SelfsupError(f"table '{path}' has no columns; it needs a header row.")
    ignore = [str(c) for c in options.ignore]
    trained = preprocessing.get("schema") if preprocessing is not None else None
    schema_label = trained.get("label") if isinstance(trained, dict) else None
    wanted = [options.label, schema_label, *(c for c in ignore if _looks_like_id(c))]
    projected = list(dict.fromkeys(c for c in wanted if c is not None and c in rows.columns))
    known = _read(path, lambda: pd.read_parquet(path, columns=projected))
    schema, applied = _schemas(rows, known, options, preprocessing, total_rows=n)
    decode = ParquetRows(str(path), {**applied, "label": None, "classes": None}, starts, fitted_on)
    apply_schema(rows, decode.schema)  # an encoder's columns the table lacks, or text in a numeric one: refused now
    train = LazyDataset(
        decode,
        cast(list, range(n)),  # row numbers: no list of n ints
        _labels(known, applied["label"], applied["classes"]),
        cast(list, _ids(known, ignore, n)),
        (schema_width(schema),),
        torch.float32,
        str(path),
        applied["classes"],
        blocks=(np.searchsorted(starts, np.arange(n), side="right") - 1).astype(np.int32),
    )
    return Splits(
        train=train, test=None, name=str(path), modality=NAME, preprocessing=Preprocessing(NAME, Reading(schema=schema))
    )
