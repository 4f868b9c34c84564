"""Hugging Face datasets as sources (issue 17): a folder written by ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk`` (``dataset_info.json``, ``state.json``, ``data-*.arrow``; a ``DatasetDict`` has a
sub-folder per split and ``dataset_dict.json``), or Parquet files (one file, or a folder of them as on the Hub:
``train-*.parquet`` / ``test-*.parquet``, ``data/train-*.parquet``, ``train/0000.parquet``), holding an image,
audio or text column. Read with pyarrow; the ``datasets`` package is not needed.

The column is ``--column`` (a saved folder without it: its only image, audio or text column). Its modality comes
from its Hugging Face feature (``Image``, ``Audio``, a string ``Value``), kept in ``dataset_info.json`` or in the
Arrow / Parquet schema's ``huggingface`` metadata; a string column without features is text, and a column of
encoded files without features needs ``--modality image`` or ``--modality audio``. Labels: ``--label``, else the
only ``ClassLabel`` column (its names are the classes). Sample ids: an ``id`` column, else the row number.
Splits: ``train`` and ``test`` (a single split of another name is the training split); a Parquet folder whose
files name no split is one training split.

Cells are decoded exactly as the modality's own reader decodes files (Image and Audio cells hold a file's bytes,
or its path): images by the image reader (resized, centre-cropped), audio by the audio reader (mono, resampled,
cut into segments). Images and audio are read lazily (only their rows' references are held; a cell is decoded
when training asks for it), or in memory as ``--in-memory`` says (``auto``: when decoded they fit
``IN_MEMORY_BYTES``). Arrow files are memory-mapped (random access to any row); Parquet is read a row group at a
time, the last ``ROW_GROUP_CACHE`` kept per process. Text is small: read whole and tokenised by the text reader.
"""

from __future__ import annotations

import bisect
import functools
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from selfsup.data import (
    UNLABELED,
    ArrayDataset,
    DataOptions,
    LazyDataset,
    Preprocessing,
    Splits,
    reads_lazily,
    refuse_skipping_lazily,
    warn_skipped,
)
from selfsup.errors import SelfsupError, first_line

SAVED_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")  # what save_to_disk writes
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_DEPTH = 3  # a folder, data/, and a config's split folders (default/train/0000.parquet)
ID_COLUMN = "id"
KINDS = ("image", "audio", "text")
ROW_GROUP_CACHE = 4  # Parquet row groups kept decoded (compressed pages read) per process
SPLIT_NAME = re.compile(r"^(train|test|validation|valid|val|dev)(?:[-_.]|$)", re.IGNORECASE)
FEATURE_KINDS = {"Image": "image", "Audio": "audio"}
TEXT_DTYPES = ("string", "large_string")


# --------------------------------------------------------------------------- finding the files


def _parquet_files(folder: Path, depth: int = PARQUET_DEPTH) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth > 1:
            found += _parquet_files(entry, depth - 1)
        elif entry.is_file() and entry.suffix.lower() in PARQUET_SUFFIXES:
            found.append(entry)
    return found


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder ``save_to_disk`` wrote (a Dataset or a DatasetDict)."""
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def is_hf_source(source: str, options: DataOptions) -> bool:
    """Whether this module reads ``source``: a saved dataset folder, or (with ``--column``) Parquet files."""
    path = Path(source)
    if is_saved_dataset(path):
        return True
    if options.column is None:
        return False  # a plain .parquet is a table, as it always was
    if path.is_file():
        return path.suffix.lower() in PARQUET_SUFFIXES
    return path.is_dir() and bool(_parquet_files(path))


@dataclass(frozen=True)
class Rows:
    """Where one split's rows lie: Arrow files (memory-mapped) or Parquet files. Small and picklable: this is what
    each DataLoader worker gets, with a row number per sample."""

    files: tuple[str, ...]
    parquet: bool
    starts: tuple[int, ...]  # the split's first row in each file, then its row count
    groups: tuple[tuple[int, ...], ...] = ()  # Parquet: each row group's first row in its file, then the file's rows

    def __len__(self) -> int:
        return self.starts[-1]

    def blocks(self) -> np.ndarray | None:
        """Parquet: each row's row group, numbered across the files (training shuffles group by group, since reading
        a row reads its group: ``LazyDataset.blocks``); None for memory-mapped Arrow files."""
        if not self.parquet or not self.groups:
            return None
        sizes = [np.diff(firsts) for firsts in self.groups]
        return np.repeat(np.arange(sum(len(s) for s in sizes)), np.concatenate(sizes)).astype(np.int32)

    def cell(self, column: str, row: int) -> Any:
        """The value of ``column`` at the split's ``row`` (a dict for Image / Audio cells)."""
        f = bisect.bisect_right(self.starts, row) - 1
        local = row - self.starts[f]
        if not self.parquet:
            return _arrow_table(self.files[f]).column(column)[local].as_py()
        g = bisect.bisect_right(self.groups[f], local) - 1
        return _row_group(self.files[f], g, column).column(0)[local - self.groups[f][g]].as_py()

    def values(self, column: str) -> list:
        """Every value of ``column``, in row order (labels, ids, texts)."""
        import pyarrow.parquet as pq

        out: list = []
        for path in self.files:
            table = pq.read_table(path, columns=[column]) if self.parquet else _arrow_table(path).select([column])
            out += table.column(0).to_pylist()
        return out


@functools.cache
def _arrow_table(path: str) -> Any:
    """An Arrow file ``save_to_disk`` wrote, memory-mapped (zero copy; opened once per process)."""
    import pyarrow as pa

    try:
        source = pa.memory_map(path)
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            return pa.ipc.open_file(pa.memory_map(path)).read_all()
    except (pa.ArrowException, OSError) as err:
        raise SelfsupError(
            f"cannot read '{path}': {first_line(err)}; the dataset folder is damaged, save it again."
        ) from err


@functools.lru_cache(maxsize=ROW_GROUP_CACHE)
def _row_group(path: str, group: int, column: str) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(group, columns=[column])


def _parquet_rows(files: list[Path]) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    starts, groups = [0], []
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError) as err:
            raise SelfsupError(f"cannot read Parquet file '{path}': {first_line(err)}.") from err
        firsts = [0]
        for g in range(meta.num_row_groups):
            firsts.append(firsts[-1] + meta.row_group(g).num_rows)
        groups.append(tuple(firsts))
        starts.append(starts[-1] + firsts[-1])
    return Rows(tuple(str(p) for p in files), True, tuple(starts), tuple(groups))


def _arrow_rows(folder: Path) -> Rows:
    """The Arrow files of one saved Dataset (``state.json`` names them, in order)."""
    names: list[str] = []
    state = folder / "state.json"
    if state.is_file():
        try:
            names = [item["filename"] for item in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as err:
            raise SelfsupError(f"'{state}' is not a datasets state file ({first_line(err)}); save it again.") from err
    files = [folder / name for name in names] or sorted(folder.glob("data-*.arrow"))
    missing = next((p for p in files if not p.is_file()), None)
    if not files or missing is not None:
        raise SelfsupError(
            f"'{folder}' has no data file{f' {missing.name}' if missing else 's (data-*.arrow)'}; "
            "pass a folder written by Dataset.save_to_disk."
        )
    starts = [0]
    for path in files:
        starts.append(starts[-1] + _arrow_table(str(path)).num_rows)
    return Rows(tuple(str(p) for p in files), False, tuple(starts))


def _split_of(path: Path, root: Path) -> str | None:
    for part in reversed(path.relative_to(root).parts):
        match = SPLIT_NAME.match(part)
        if match:
            return match.group(1).lower()
    return None


def _parts(source: Path) -> dict[str, Rows]:
    """The splits of a source, by name (at least ``train``)."""
    if source.is_file():
        return {"train": _parquet_rows([source])}
    if (source / "dataset_dict.json").is_file():
        try:
            names = [str(n) for n in json.loads((source / "dataset_dict.json").read_text())["splits"]]
        except (ValueError, KeyError, TypeError) as err:
            raise SelfsupError(
                f"'{source}/dataset_dict.json' lists no splits ({first_line(err)}); save it again."
            ) from err
        found = {name: source / name for name in names}
        chosen = {"train": found.get("train") or (found[names[0]] if len(names) == 1 else None)}
        if chosen["train"] is None:
            raise SelfsupError(
                f"'{source}' has splits {', '.join(names)} but none called 'train'; save the training split as 'train'."
            )
        if "test" in found:
            chosen["test"] = found["test"]
        return {split: _arrow_rows(folder) for split, folder in chosen.items() if folder is not None}
    if is_saved_dataset(source):
        return {"train": _arrow_rows(source)}
    files = _parquet_files(source)
    named: dict[str, list[Path]] = {}
    for path in files:
        named.setdefault(_split_of(path, source) or "", []).append(path)
    if set(named) == {""}:
        return {"train": _parquet_rows(files)}
    if "train" not in named:
        shown = ", ".join(sorted(s or "unnamed" for s in named))
        raise SelfsupError(f"the Parquet files of '{source}' are of splits {shown}, none of them 'train'.")
    return {split: _parquet_rows(named[split]) for split in ("train", "test") if split in named}


def _schema(rows: Rows) -> tuple[Any, dict]:
    """A split's Arrow schema and its Hugging Face features (``{}`` when it has none): the schema's ``huggingface``
    metadata, else the split folder's ``dataset_info.json``."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(rows.files[0]) if rows.parquet else _arrow_table(rows.files[0]).schema
    features: Any = None
    meta = schema.metadata or {}
    if b"huggingface" in meta:
        try:
            features = json.loads(meta[b"huggingface"])["info"]["features"]
        except (ValueError, KeyError, TypeError):
            features = None
    info = Path(rows.files[0]).parent / "dataset_info.json"
    if features is None and not rows.parquet and info.is_file():
        try:
            features = json.loads(info.read_text()).get("features")
        except ValueError:
            features = None
    return schema, features if isinstance(features, dict) else {}


# --------------------------------------------------------------------------- columns


def _listing(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names[:12]) + (", ..." if len(names) > 12 else "")


def _kind_of(name: str, schema: Any, features: dict, given: str) -> str | None:
    """The modality a column holds (None: none of them); ``given`` is ``--modality`` (or auto)."""
    import pyarrow as pa

    feature = features.get(name)
    if isinstance(feature, dict) and feature.get("_type") is not None:
        kind = FEATURE_KINDS.get(feature["_type"])
        if feature["_type"] == "Value" and feature.get("dtype") in TEXT_DTYPES:
            kind = "text"
        return kind
    kind_type = schema.field(name).type
    if pa.types.is_string(kind_type) or pa.types.is_large_string(kind_type):
        return "text"
    encoded = pa.types.is_binary(kind_type) or pa.types.is_large_binary(kind_type)
    if pa.types.is_struct(kind_type):
        encoded = any(kind_type.field(i).name == "bytes" for i in range(kind_type.num_fields))
    if encoded:
        return given if given in ("image", "audio") else "encoded"
    return None


def _describe(name: str, schema: Any, features: dict) -> str:
    feature = features.get(name)
    if isinstance(feature, dict) and feature.get("_type"):
        return f"{feature['_type']} values"
    return f"{schema.field(name).type} values"


def _column(
    source: str, schema: Any, features: dict, options: DataOptions, preprocessing: Preprocessing | None
) -> tuple[str, str]:
    """The column to read and its modality: ``--column``, else the only image or audio column, else the only text
    column (the id and ``--label`` columns left out; an encoder's text column when the source has it)."""
    names = list(schema.names)
    given = options.modality
    if options.column is not None:
        if options.column not in names:
            raise SelfsupError(f"'{source}' has no column '{options.column}' (its columns: {_listing(names)}).")
        column = options.column
    else:
        remembered = preprocessing.get("text_field") if preprocessing is not None else None
        kinds = {n: _kind_of(n, schema, features, given) for n in names if n not in (ID_COLUMN, options.label)}
        readable = [n for n, kind in kinds.items() if kind in KINDS and given in ("auto", kind)]
        media = [n for n in readable if kinds[n] != "text"]
        readable = [remembered] if remembered in readable else (media or readable)
        if len(readable) != 1:
            what = "several image, audio or text columns" if readable else "no image, audio or text column"
            raise SelfsupError(
                f"'{source}' has {what} (its columns: {_listing(names)}); name the one to read with --column."
            )
        column = readable[0]
    kind = _kind_of(column, schema, features, given)
    if kind == "encoded":
        raise SelfsupError(
            f"column '{column}' of '{source}' holds encoded files but no Hugging Face features say what they are; "
            "pass --modality image or --modality audio."
        )
    if kind is None:
        raise SelfsupError(
            f"column '{column}' of '{source}' holds {_describe(column, schema, features)}, not images, audio or "
            "text; name an Image, Audio or string column with --column."
        )
    if given != "auto" and given != kind:
        raise SelfsupError(
            f"column '{column}' of '{source}' holds {kind}, not {given}; leave out --modality, or name another column."
        )
    return column, kind


def _label_column(source: str, schema: Any, features: dict, options: DataOptions) -> str | None:
    names = list(schema.names)
    if options.label is not None:
        if options.label not in names:
            raise SelfsupError(
                f"'{source}' has no label column '{options.label}' (its columns: {_listing(names)}); "
                "name it with --label."
            )
        return options.label
    classes = [n for n in names if isinstance(features.get(n), dict) and features[n].get("_type") == "ClassLabel"]
    return classes[0] if len(classes) == 1 else None


def _labels(rows: Rows, column: str | None, features: dict, classes: list[str] | None, where: str):
    """Label indices and classes of a split: a ClassLabel's names, else the values' names (``labels.py``)."""
    from selfsup.modalities.labels import encode_labels, label_text

    if column is None:
        return torch.full((len(rows),), UNLABELED, dtype=torch.long), None
    values = rows.values(column)
    names = features.get(column, {}).get("names") if isinstance(features.get(column), dict) else None
    if isinstance(names, list) and names:
        names = [str(n) for n in names]
        if classes is not None and names != classes:
            raise SelfsupError(f"the '{column}' classes of {where} differ from the training split's.")
        y = [UNLABELED if v is None or not 0 <= int(v) < len(names) else int(v) for v in values]
        return torch.tensor(y, dtype=torch.long), names
    return encode_labels([label_text(v, where) for v in values], classes, where)


def _ids(rows: Rows, schema: Any) -> list[str]:
    if ID_COLUMN in schema.names:
        return [str(i) if i is not None else str(row) for row, i in enumerate(rows.values(ID_COLUMN))]
    return [str(row) for row in range(len(rows))]


def _opened(value: Any, base: Path) -> BinaryIO:
    """An Image / Audio cell's file: its bytes, else its path (absolute, or relative to the dataset)."""
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    if data is not None:
        return io.BytesIO(data)
    if path:
        file = Path(path) if Path(path).is_absolute() else base / path
        if file.is_file():
            return file.open("rb")
        raise FileNotFoundError(f"the cell holds no bytes and its file '{path}' does not exist")
    raise ValueError("the cell is empty")


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Cells:
    """One column of one split, for decoding (picklable)."""

    rows: Rows
    column: str
    base: str  # where relative paths of cells are looked up
    where: str  # for messages: the source and split

    def file(self, row: int) -> BinaryIO:
        return _opened(self.rows.cell(self.column, row), Path(self.base))


def _picture(cells: Cells, size: int, grey: bool, row: int) -> torch.Tensor:
    from selfsup.modalities.image import _decode

    with cells.file(row) as file:
        return torch.from_numpy(_decode(file, size, grey).copy())


def _image_sample(cells: Cells, size: int, grey: bool, row: int) -> torch.Tensor:
    """A row's picture as the image reader decodes a file: uint8 ``(C, size, size)``; an unreadable one stops the
    run naming its row."""
    from selfsup.modalities.image import UNREADABLE

    try:
        return _picture(cells, size, grey, row)
    except UNREADABLE as err:
        raise SelfsupError(f"cannot read the image in row {row} of {cells.where}: {first_line(err)}.") from err


@functools.lru_cache(maxsize=2)
def _clip(cells: Cells, rate: int, row: int) -> np.ndarray:
    from selfsup.modalities.audio import read_clip

    with cells.file(row) as file:
        return read_clip(file, rate)


def _audio_piece(cells: Cells, rate: int, length: int, item: tuple[int, int]) -> torch.Tensor:
    from selfsup.modalities.audio import segments

    row, k = item
    pieces = segments(_clip(cells, rate, row), length)
    return torch.from_numpy(pieces[min(k, len(pieces) - 1)])[None]


def _audio_sample(cells: Cells, rate: int, length: int, item: tuple[int, int]) -> torch.Tensor:
    """Segment ``k`` of a row's clip as the audio reader cuts a file: float32 ``(1, length)``."""
    from selfsup.modalities.audio import soundfile

    try:
        return _audio_piece(cells, rate, length, item)
    except (soundfile().SoundFileError, OSError, ValueError, EOFError, RuntimeError) as err:
        raise SelfsupError(f"cannot read the audio in row {item[0]} of {cells.where}: {first_line(err)}.") from err


def _in_memory(options: DataOptions, count: int, sample_bytes: int, where: str) -> bool:
    """Whether to decode a split now: as ``--in-memory`` says, or (auto) when decoded it fits ``IN_MEMORY_BYTES``."""
    lazy = reads_lazily(options.in_memory, count * sample_bytes)
    if lazy and options.bad_files == "skip":
        raise refuse_skipping_lazily(where, count, "samples", "rows", options.in_memory == "auto")
    return not lazy


def _decode_all(lazy: LazyDataset, raw, errors: tuple, bad_files: str, noun: str, where: str) -> ArrayDataset:
    """Every sample of ``lazy`` decoded by ``raw`` (errors: ``errors``), unreadable rows stopping the run or left out."""
    from rich.progress import track

    samples, keep, skipped, reason, failed = [], [], [], "", set()
    for i, item in enumerate(track(lazy.items, description="decoding", transient=True, disable=len(lazy) < 2000)):
        row = item[0] if isinstance(item, tuple) else item
        if row in failed:
            continue
        try:
            samples.append(raw(item))
        except errors as err:
            if bad_files == "fail":
                raise SelfsupError(
                    f"cannot read the {noun} in row {row} of {where}: {first_line(err)}. Fix it, or pass --bad-files skip."
                ) from err
            reason = reason or first_line(err)
            failed.add(row)
            skipped.append(f"row {row}")
            continue
        keep.append(i)
    if not samples:
        raise SelfsupError(f"none of the rows of {where} could be read.")
    warn_skipped(skipped, f"{noun} row", reason)
    kept = torch.as_tensor(keep, dtype=torch.long)
    return ArrayDataset(torch.stack(samples), lazy.y[kept], [lazy.ids[i] for i in keep], lazy.classes, skipped)


def _image_split(cells: Cells, y: torch.Tensor, ids: list[str], classes, size: int, options: DataOptions, name: str):
    from selfsup.modalities.image import UNREADABLE, _is_grey

    opened = []
    for row in range(min(32, len(cells.rows))):
        try:
            opened.append(cells.file(row))
        except (OSError, ValueError):
            continue
    grey = _is_grey(opened)
    for file in opened:
        file.close()
    lazy = LazyDataset(
        functools.partial(_image_sample, cells, size, grey),
        list(range(len(cells.rows))),
        y,
        ids,
        (1 if grey else 3, size, size),
        torch.uint8,
        name,
        classes,
        blocks=cells.rows.blocks(),
    )
    if not _in_memory(options, len(lazy), (1 if grey else 3) * size * size, cells.where):
        return lazy
    raw = functools.partial(_picture, cells, size, grey)
    return _decode_all(lazy, raw, UNREADABLE, options.bad_files, "image", cells.where)


def _segment_count(frames: int, rate: int, sample_rate: int, length: int) -> int:
    """How many segments the audio reader cuts a clip of ``frames`` at ``rate`` into (after resampling to
    ``sample_rate``: ``scipy.signal.resample_poly`` gives ``ceil(frames * up / down)`` samples)."""
    if rate != sample_rate:
        g = math.gcd(rate, sample_rate)
        frames = -(-frames * (sample_rate // g) // (rate // g))
    shortest = (length + 1) // 2
    count = 0
    for start in range(0, frames, length):
        if start and frames - start < shortest:
            break
        count += 1
    return count


def _audio_split(
    cells: Cells, y: torch.Tensor, ids: list[str], classes, rate: int, length: int, options: DataOptions, name: str
):
    """A split of clips: every row's header read now (its segment count), the samples when asked for."""
    from selfsup.modalities.audio import soundfile

    sf = soundfile()
    errors = (sf.SoundFileError, OSError, ValueError, EOFError, RuntimeError)
    items, labels, sample_ids, skipped, reason, short, shortest = [], [], [], [], "", 0, None
    for row in range(len(cells.rows)):
        try:
            with cells.file(row) as file:
                info = sf.info(file)
            if info.frames <= 0:
                raise ValueError("it holds no samples")
        except errors as err:
            if options.bad_files == "fail":
                raise SelfsupError(
                    f"cannot read the audio in row {row} of {cells.where}: {first_line(err)}. Fix it, or pass "
                    "--bad-files skip."
                ) from err
            reason = reason or first_line(err)
            skipped.append(f"row {row}")
            continue
        count = _segment_count(int(info.frames), int(info.samplerate), rate, length)
        if count == 1 and info.frames * rate < length * info.samplerate:
            short += 1
            seconds = info.frames / info.samplerate
            shortest = seconds if shortest is None else min(shortest, seconds)
        items += [(row, k) for k in range(count)]
        labels += [int(y[row])] * count
        sample_ids += [ids[row]] if count == 1 else [f"{ids[row]}#{k}" for k in range(count)]
    if not items:
        raise SelfsupError(f"none of the {len(cells.rows)} rows of {cells.where} could be read.")
    warn_skipped(skipped, "audio row", reason)
    if short:
        warnings.warn(
            f"{short} of {len(cells.rows) - len(skipped)} audio clips of {cells.where} are shorter than a segment (the "
            f"shortest {shortest:.3g} s) and were padded to {length / rate:g} s (read as silence).",
            UserWarning,
            stacklevel=4,
        )
    lazy = LazyDataset(
        functools.partial(_audio_sample, cells, rate, length),
        items,
        torch.tensor(labels, dtype=torch.long),
        sample_ids,
        (1, length),
        torch.float32,
        name,
        classes,
        skipped,
        blocks=None if (groups := cells.rows.blocks()) is None else groups[[row for row, _ in items]],
    )
    if not _in_memory(options, len(lazy), 4 * length, cells.where):
        return lazy
    raw = functools.partial(_audio_piece, cells, rate, length)
    decoded = _decode_all(lazy, raw, errors, options.bad_files, "audio", cells.where)
    decoded.skipped = skipped + decoded.skipped
    return decoded


def _text_split(cells: Cells, labels: list[str | None] | None, ids: list[str], classes, preprocessing: Preprocessing):
    from selfsup.modalities.text import dataset

    texts, kept_labels, kept_ids = [], [], []
    for row, value in enumerate(cells.rows.values(cells.column)):
        if value is not None and not isinstance(value, str):
            raise SelfsupError(
                f"row {row} of column '{cells.column}' in {cells.where} holds a {type(value).__name__}, not text."
            )
        if value is None or not value.strip():
            continue
        texts.append(value.strip())
        kept_labels.append(labels[row] if labels is not None else None)
        kept_ids.append(ids[row])
    if not texts:
        raise SelfsupError(f"column '{cells.column}' of {cells.where} holds no text (every cell is empty).")
    return dataset(texts, kept_labels if labels is not None else None, kept_ids, preprocessing, cells.where, classes)


# --------------------------------------------------------------------------- the source


def source_modality(source: str, options: DataOptions) -> str | None:
    """The modality of a Hugging Face source's column, known from its schema (None when reading will say what is
    wrong)."""
    try:
        schema, features = _schema(_parts(Path(source))["train"])
        return _column(source, schema, features, options, None)[1]
    except SelfsupError:
        return None


def load(source: str, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """Read a saved dataset folder or Parquet file(s) (module docstring); for an encoder, as its preprocessing
    says (an image size, a sample rate and segment length, a tokenizer)."""
    path = Path(source)
    parts = _parts(path)
    schema, features = _schema(parts["train"])
    column, kind = _column(source, schema, features, options, preprocessing)
    fitted = preprocessing if preprocessing is not None and preprocessing.modality == kind else None
    label = _label_column(source, schema, features, options)
    base = path if path.is_dir() else path.parent
    read: dict[str, Any] = {}
    classes: list[str] | None = None
    if kind == "text":
        from selfsup.modalities.text import default_preprocessing

        tokenizing = fitted or default_preprocessing()
    elif kind == "audio":
        from selfsup.modalities.audio import Reading, reading

        rate, seconds = reading(options, fitted)
        length = max(1, round(seconds * rate))
        read_as = Preprocessing("audio", Reading(sample_rate=rate, segment_seconds=seconds))
    else:
        from selfsup.modalities.image import FOLDER_DEFAULT_SIZE

        size = options.image_size or (fitted.get("image_size") if fitted else None) or FOLDER_DEFAULT_SIZE
    for split, rows in parts.items():
        where = f"'{source}'" + (f" (split {split})" if len(parts) > 1 else "")
        if split != "train":
            schema = _schema(rows)[0]
            missing = [c for c in (column, label) if c is not None and c not in schema.names]
            if missing:
                raise SelfsupError(f"the {split} split of '{source}' has no column '{missing[0]}'.")
        cells = Cells(rows, column, str(base), where)
        ids = _ids(rows, schema)
        if kind == "text":
            labels = _text_labels(rows, label, features, classes, where)
            part = _text_split(cells, labels[0], ids, labels[1] if labels[1] is not None else classes, tokenizing)
        else:
            y, found = _labels(rows, label, features, classes, where)
            if kind == "audio":
                part = _audio_split(cells, y, ids, found, rate, length, options, str(source))
            else:
                part = _image_split(cells, y, ids, found, size, options, str(source))
        classes = classes or part.classes
        read[split] = part
    done = None
    if kind == "text":
        done = Preprocessing("text", dict(tokenizing.settings) | {"text_field": column, "label": label})
    elif kind == "audio":
        done = read_as
    return Splits(read["train"], read.get("test"), str(source), kind, preprocessing=done)


def _text_labels(rows: Rows, column: str | None, features: dict, classes: list[str] | None, where: str):
    """A text split's labels as class names (what the text reader takes), and the ClassLabel's names."""
    from selfsup.modalities.labels import label_text

    if column is None:
        return None, None
    values = rows.values(column)
    names = features.get(column, {}).get("names") if isinstance(features.get(column), dict) else None
    if isinstance(names, list) and names:
        names = [str(n) for n in names]
        if classes is not None and names != classes:
            raise SelfsupError(f"the '{column}' classes of {where} differ from the training split's.")
        return [names[int(v)] if v is not None and 0 <= int(v) < len(names) else None for v in values], names
    return [label_text(v, where) for v in values], None
