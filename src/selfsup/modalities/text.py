"""Text: .txt / .jsonl / table readers, token ids from the encoder's tokenizer, dropout views, a bag-of-tokens baseline.

Text is kept as token ids ``(N, max_length)`` int64 (``docs/modalities.md``): each text tokenised by the
encoder's tokenizer (``[CLS] ... [SEP]`` for BERT-like ones), truncated to the encoder's ``max_length``
and right-padded with the tokenizer's pad id, so the attention mask is ``x != pad_id``. An encoder's
preprocessing names its tokenizer (a pre-training run knows it from the encoder's name before it reads the
text: ``planned_preprocessing``); without one, the default encoder's tokenizer reads the text.

Sources (one training split; labels, for probing only, are class names as strings):

* ``.txt``: one text per line, unlabeled.
* ``.jsonl`` (or ``.ndjson``): one JSON object per line, the text in field ``text`` (``--text-column``
  names another), the label in the field ``--label`` names (a record without it is unlabeled; a --label
  field that no record has is refused).
* a table (``.csv``, ``.tsv``, ``.parquet``) read with ``--modality text``: the text column ``text`` (or
  ``--text-column``), the label column ``--label``.

Empty and blank texts are left out. Sample ids: a record's ``id`` field or a table's ``id`` column where
there is one (what ``--pair-data`` matches on), else ``line-{n}`` (1-based line of a .txt/.jsonl file) or
``row-{i}`` (0-based data row of a table). An empty file, or one with no text left, a missing text field
or column, a record that is not a JSON object and a text that is not a string are refused in one line.

A .txt or .jsonl file is read lazily (``--in-memory no``, or ``auto`` when its lines' token ids, ``max_length``
int64 each, would pass ``IN_MEMORY_BYTES``; issue 17; tables are read whole): one pass, a line at a time, finds
each text's place in the file (byte offset), label and id, parsing and checking every record as above but
tokenising none; a text is read and tokenised (the same ids as in memory) when training asks for it. The texts
cut to ``max_length`` are counted on a bounded random sample (``FIT_SAMPLES``), in one warning that says so.
A file changed after it was indexed stops the run when a changed text is reached, in one line.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from selfsup.data import (
    FIT_SAMPLES,
    IN_MEMORY_BYTES,
    ArrayDataset,
    DataOptions,
    LazyDataset,
    Preprocessing,
    Samples,
    Splits,
    bounded_draw,
)
from selfsup.errors import SelfsupError, first_line
from selfsup.modalities import Modality
from selfsup.modalities.labels import encode_labels, label_text
from selfsup.views import ViewSpec

NAME = "text"
DEFAULT_ENCODER = "minilm"
TOKEN_ENCODER = "minilm"  # masked methods over text: use mlm; the generic ones (mae, ...) refuse text encoders
VIEW_ARGS: tuple[str, ...] = ()
TEXT_FIELD = "text"
ID_FIELD = "id"  # a sample's id where the source names it (what --pair-data matches on)
LINE_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
SUFFIXES = LINE_SUFFIXES + JSONL_SUFFIXES + TABLE_SUFFIXES
RAW_BUCKETS = 4096  # columns of the hashed bag-of-tokens baseline


# --------------------------------------------------------------------------- reading

# where a text lies in its file: the byte offset of its line (ended by b"\n"), and which of the lines
# ``str.splitlines`` finds in it (0 but where rarer separators, a lone "\r" or "\x1c", cut it further)
Place = tuple[int, int]


def _decoded(raw: bytes, offset: int) -> str:
    return raw.decode("utf-8-sig" if offset == 0 else "utf-8")  # a byte-order mark only at the file's start


def _lines(path: Path) -> Iterator[tuple[int, str, Place]]:
    """The lines of a UTF-8 file, numbered from 1 as ``str.splitlines`` cuts its whole text, with their places;
    read a line at a time (memory does not grow with the file)."""
    n, offset = 0, 0
    with path.open("rb") as file:
        for raw in file:
            try:
                text = _decoded(raw, offset)
            except UnicodeDecodeError as err:
                raise SelfsupError(
                    f"cannot read '{path}': it is not UTF-8 text (byte {err.object[err.start]:#04x} at "
                    f"position {offset + err.start}); save it as UTF-8."
                ) from None
            for sub, line in enumerate(text.splitlines() or [""]):
                n += 1
                yield n, line, (offset, sub)
            offset += len(raw)


def _line_at(path: str, place: Place) -> str:
    """The line at ``place`` of the file ``path`` (see :data:`Place`)."""
    offset, sub = place
    with open(path, "rb") as file:
        file.seek(offset)
        raw = file.readline()
    return (_decoded(raw, offset).splitlines() or [""])[sub]


def _text(value: Any, where: str) -> str | None:
    """A text cell or field: None when missing or blank; anything but a string is refused."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if not isinstance(value, str):
        raise SelfsupError(
            f"{where} holds a {type(value).__name__} ({str(value)[:40]!r}) where text belongs; "
            "the text field must hold strings."
        )
    return value.strip() or None


def read_txt(path: Path) -> tuple[list[str], list[str | None] | None, list[str]]:
    """Texts, labels (None: unlabeled) and ids of a .txt file: one text per line, blank lines left out."""
    texts, _, ids = _scan_txt(path, keep_text=True)
    return texts, None, ids


def _scan_txt(path: Path, keep_text: bool) -> tuple[list[str], list[Place], list[str]]:
    """The texts of a .txt file (only when ``keep_text``), their places and their ids."""
    texts, places, ids = [], [], []
    for n, line, place in _lines(path):
        if line.strip():
            if keep_text:
                texts.append(line.strip())
            places.append(place)
            ids.append(f"line-{n}")
    return texts, places, ids


def read_jsonl(
    path: Path, field: str, label: str | None, strict: bool = True
) -> tuple[list[str], list[str | None] | None, list[str]]:
    """Texts, labels and ids of a JSON-lines file (see the module docstring). A label field that no record has
    is refused (a misspelt --label), or with ``strict=False`` (the encoder's own label) leaves them unlabeled."""
    texts, _, labels, ids = _scan_jsonl(path, field, label, strict, keep_text=True)
    return texts, labels, ids


def _scan_jsonl(
    path: Path, field: str, label: str | None, strict: bool, keep_text: bool
) -> tuple[list[str], list[Place], list[str | None] | None, list[str]]:
    """:func:`read_jsonl`'s texts (only when ``keep_text``), places, labels and ids: every record is parsed and
    checked, none tokenised."""
    texts, places, labels, ids = [], [], [], []
    fields: dict[str, Any] = {}  # every field name seen, in order
    for n, line, place in _lines(path):
        if not line.strip():
            continue
        where = f"line {n} of '{path}'"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SelfsupError(f"{where} is not valid JSON ({err.msg}); write one JSON object per line.") from None
        if not isinstance(record, dict):
            raise SelfsupError(f"{where} holds a JSON {type(record).__name__}, not an object with a '{field}' field.")
        if field not in record:
            known = ", ".join(f"'{k}'" for k in list(record)[:8])
            raise SelfsupError(
                f"{where} has no text field '{field}' (its fields: {known}); name the text field with --text-column."
            )
        fields |= dict.fromkeys(record)
        text = _text(record[field], f"field '{field}' of {where}")
        if text is None:
            continue
        if keep_text:
            texts.append(text)
        places.append(place)
        labels.append(label_text(record.get(label), where) if label else None)
        ids.append(str(record[ID_FIELD]) if record.get(ID_FIELD) is not None else f"line-{n}")
    if label and label not in fields:
        if not strict:
            return texts, places, None, ids
        known = ", ".join(f"'{k}'" for k in list(fields)[:8])
        raise SelfsupError(
            f"no record of '{path}' has the label field '{label}' (their fields: {known}); name the "
            "label field with --label."
        )
    return texts, places, (labels if label else None), ids


def read_text_table(
    path: Path, field: str, label: str | None, strict: bool = True
) -> tuple[list[str], list[str | None] | None, list[str]]:
    """Texts, labels and ids of a table's text (and label) column; a missing label column is refused, or with
    ``strict=False`` leaves the rows unlabeled."""
    from selfsup.modalities.tabular import read_table

    frame = read_table(path)
    if not strict and label not in frame.columns:
        label = None
    for column, flag in ((field, "--text-column"), (label, "--label")):
        if column is not None and column not in frame.columns:
            known = ", ".join(f"'{c}'" for c in list(frame.columns)[:8])
            raise SelfsupError(f"table '{path}' has no column '{column}' (its columns: {known}); name it with {flag}.")
    texts, labels, ids = [], [], []
    label_values = frame[label].tolist() if label else None
    given_ids = frame[ID_FIELD].tolist() if ID_FIELD in frame.columns else None
    for i, value in enumerate(frame[field].tolist()):
        text = _text(value, f"row {i} of column '{field}' in '{path}'")
        if text is None:
            continue
        texts.append(text)
        labels.append(label_text(label_values[i], f"'{path}'") if label_values is not None else None)
        ids.append(
            str(given_ids[i])
            if given_ids is not None and given_ids[i] == given_ids[i] and given_ids[i] is not None
            else f"row-{i}"
        )
    return texts, (labels if label else None), ids


def read_texts(
    path: str | Path, options: DataOptions, default_label: str | None = None
) -> tuple[list[str], list[str | None] | None, list[str]]:
    """Texts, labels (None when the source has none) and sample ids of a text file, by its suffix; without
    ``options.label``, the ``default_label`` field or column labels the texts where the file has it."""
    texts, _, labels, ids = _scan(Path(path), options, default_label, keep_text=True)
    return texts, labels, ids


def _scan(
    path: Path, options: DataOptions, default_label: str | None, keep_text: bool
) -> tuple[list[str], list[Place], list[str | None] | None, list[str]]:
    """:func:`read_texts`'s texts (only when ``keep_text``; a table's always), places in the file (.txt and
    .jsonl), labels and ids."""
    if path.is_dir():
        raise SelfsupError(
            f"text data '{path}' is a folder; text is read from one file: pass a .txt, .jsonl or .csv file."
        )
    if not path.is_file():
        raise SelfsupError(f"text data '{path}' does not exist; pass a .txt, .jsonl or .csv file.")
    suffix = path.suffix.lower()
    field = options.text_field or TEXT_FIELD
    found: tuple[list[str], list[Place], list[str | None] | None, list[str]]
    if suffix in LINE_SUFFIXES:
        if options.label or options.text_field:
            raise SelfsupError(
                f"'{path}' is plain text (one text per line) with no fields; --label and --text-column "
                "need a .jsonl or .csv file."
            )
        texts, places, ids = _scan_txt(path, keep_text)
        found = texts, places, None, ids
    elif suffix in JSONL_SUFFIXES:
        found = _scan_jsonl(path, field, options.label or default_label, bool(options.label), keep_text)
    elif suffix in TABLE_SUFFIXES or Path(path.stem).suffix.lower() in TABLE_SUFFIXES:  # .csv.gz too
        texts, labels, ids = read_text_table(path, field, options.label or default_label, strict=bool(options.label))
        found = texts, [], labels, ids
    else:
        raise SelfsupError(
            f"cannot read '{path}' as text: unknown file type '{path.suffix}'; use {', '.join(SUFFIXES)}."
        )
    if not found[3]:
        raise SelfsupError(f"'{path}' holds no text (every line or cell is empty).")
    return found


class Reading(TypedDict, total=False):
    """A text encoder's preprocessing settings: its tokenizer (name or folder), text length and pad id, and the
    field / column the text and the label were read from (.jsonl and tables)."""

    tokenizer: str
    max_length: int
    pad_id: int
    text_field: str | None
    label: str | None


def _tokenizing(encoder_config: dict, options: DataOptions | None) -> Preprocessing:
    return Preprocessing(
        NAME,
        Reading(
            tokenizer=encoder_config["tokenizer"],
            max_length=int(encoder_config["max_length"]),
            pad_id=int(encoder_config["pad_id"]),
            text_field=options.text_field if options else None,
            label=options.label if options else None,
        ),
    )


def default_preprocessing() -> Preprocessing:
    """The default encoder's tokenizing: how text is read before an encoder is chosen."""
    from selfsup.encoders.text import text_encoder_config

    return _tokenizing(text_encoder_config(DEFAULT_ENCODER), None)


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """New text is tokenised as the encoder tokenises, from the field (and with the label) the training split was
    read from."""
    read = splits.preprocessing.settings if splits.preprocessing is not None else {}
    fields = {"text_field": read.get("text_field"), "label": read.get("label")}
    return Preprocessing(NAME, dict(_tokenizing(encoder_config, None).settings) | fields)


def planned_preprocessing(name: str, options: DataOptions, encoder_args: dict) -> Preprocessing:
    """A text encoder's tokenizing is known from its name before any text is read."""
    from selfsup.encoders.text import text_encoder_config

    return _tokenizing(text_encoder_config(name, **encoder_args), options)


def dataset(
    texts: list[str],
    labels: list[str | None] | None,
    ids: list[str],
    preprocessing: Preprocessing,
    where: str,
    classes: list[str] | None = None,
) -> ArrayDataset:
    """Token ids of ``texts`` (tokenised as ``preprocessing`` says) with their labels (classes: sorted names
    unless given)."""
    from selfsup.encoders.text import tokenize

    y, classes = encode_labels(labels if labels is not None else [None] * len(texts), classes, where)
    return ArrayDataset(tokenize(texts, dict(preprocessing.settings)), y, ids, classes)


def load(source: str, options: DataOptions | None = None, preprocessing: Preprocessing | None = None) -> Splits:
    """Read a text file (see the module docstring) as the training split, tokenised the encoder's way
    (without its preprocessing: the default encoder's); for .jsonl and tables, options not given default to
    the field and label the encoder's pre-training data was read from, its label where the file has that field."""
    options = options or DataOptions()
    preprocessing = preprocessing or default_preprocessing()
    if Path(source).suffix.lower() not in LINE_SUFFIXES:  # a .txt file has no fields to name
        options = replace(options, text_field=options.text_field or preprocessing.get("text_field"))
    label = options.label or preprocessing.get("label")
    train: Samples
    if _lazily(Path(source), options.in_memory, int(preprocessing.settings["max_length"])):
        train = lazy_dataset(Path(source), options, label, preprocessing)
    else:
        texts, labels, ids = read_texts(source, options, default_label=label)
        train = dataset(texts, labels, ids, preprocessing, f"'{source}'")
    read = Preprocessing(NAME, dict(preprocessing.settings) | {"text_field": options.text_field, "label": label})
    return Splits(train=train, test=None, name=str(source), modality=NAME, preprocessing=read)


def _lazily(path: Path, in_memory: str, max_length: int) -> bool:
    """Whether to read a text file lazily: a .txt or .jsonl file (tables are read whole) as ``--in-memory`` says, or
    (auto) when its lines' token ids (``max_length`` int64 each) would pass ``IN_MEMORY_BYTES``; its lines are
    counted (bytes scanned, nothing decoded) only when it is large enough to matter."""
    if in_memory == "yes" or not path.is_file() or path.suffix.lower() not in LINE_SUFFIXES + JSONL_SUFFIXES:
        return False
    if in_memory == "no":
        return True
    if path.stat().st_size < IN_MEMORY_BYTES // (8 * max_length):  # fewer lines than that, whatever they hold
        return False
    lines = 1
    with path.open("rb") as file:
        while chunk := file.read(1 << 24):
            lines += chunk.count(b"\n")
    return lines * max_length * 8 > IN_MEMORY_BYTES


def _tokenized(text: str, tokenizer: str, max_length: int, pad_id: int) -> torch.Tensor:
    """One text as :func:`~selfsup.encoders.text.tokenize` makes it: ``(max_length,)`` int64, right-padded."""
    from selfsup.encoders.text import load_tokenizer

    ids = load_tokenizer(tokenizer)(text, truncation=True, max_length=max_length)["input_ids"]
    out = torch.full((max_length,), pad_id, dtype=torch.long)
    out[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def _text_at(path: str, field: str | None, place: Place) -> str:
    """The text at ``place`` of a .txt file (``field`` None) or of a .jsonl file's record, as it was indexed; a file
    changed since then stops the run in one line."""
    try:
        line = _line_at(path, place)
        text = _text(json.loads(line)[field], "a record") if field is not None else line.strip()
    except (OSError, UnicodeDecodeError, ValueError, IndexError, KeyError, TypeError, SelfsupError) as err:
        text, reason = None, f" ({first_line(err)})"
    else:
        reason = ""
    if not text:
        raise SelfsupError(
            f"cannot read the text at byte {place[0]} of '{path}'{reason}: the file changed since it was indexed; "
            "read it again."
        )
    return text


def _decode_text(
    place: Place, path: str, field: str | None, tokenizer: str, max_length: int, pad_id: int
) -> torch.Tensor:
    """One text of a lazily read file, read and tokenised as training asks for it."""
    return _tokenized(_text_at(path, field, place), tokenizer, max_length, pad_id)


def lazy_dataset(path: Path, options: DataOptions, label: str | None, preprocessing: Preprocessing) -> LazyDataset:
    """A .txt or .jsonl file read lazily: one pass now finds each text's place, label and id (every record parsed
    and checked, none tokenised); a text is read and tokenised when training asks for it. Texts longer than the
    encoder's length are counted on a bounded random sample (``FIT_SAMPLES``), in one warning."""
    _, places, labels, ids = _scan(path, options, label, keep_text=False)
    y, classes = encode_labels(labels if labels is not None else [None] * len(ids), None, f"'{path}'")
    settings = preprocessing.settings
    length, pad = int(settings["max_length"]), int(settings["pad_id"])
    field = (options.text_field or TEXT_FIELD) if path.suffix.lower() in JSONL_SUFFIXES else None
    decode = partial(
        _decode_text, path=str(path), field=field, tokenizer=str(settings["tokenizer"]), max_length=length, pad_id=pad
    )
    _warn_cut(str(path), field, places, str(settings["tokenizer"]), length)
    return LazyDataset(decode, places, y, ids, (length,), torch.long, str(path), classes)


def _warn_cut(path: str, field: str | None, places: list[Place], tokenizer: str, length: int) -> None:
    """One warning line when texts of a bounded random sample (``FIT_SAMPLES``) are longer than ``length`` tokens:
    how many of those checked (the rest are not tokenised before training)."""
    from selfsup.encoders.text import load_tokenizer

    picked = bounded_draw(len(places), FIT_SAMPLES, 0) if len(places) > FIT_SAMPLES else np.arange(len(places))
    texts = [_text_at(path, field, places[i]) for i in picked.tolist()]
    cut = sum(
        len(ids) > length
        for ids in load_tokenizer(tokenizer)(texts, truncation=True, max_length=length + 1)["input_ids"]
    )
    if cut:
        checked = f"{len(texts)} texts" + (
            f" checked (a random sample of the {len(places)})" * (len(texts) < len(places))
        )
        warnings.warn(
            f"{cut} of {checked} are longer than {Path(tokenizer).name}'s {length} tokens; texts longer than "
            f"{length} tokens are cut to {length}.",
            UserWarning,
            stacklevel=4,
        )


# --------------------------------------------------------------------------- encoder, views, baseline


def encoder_config(
    name: str, splits: Splits, options: DataOptions | None = None, encoder_args: dict | None = None
) -> dict:
    """``text_encoder_config``: the data does not shape a text encoder."""
    from selfsup.encoders.text import text_encoder_config

    return text_encoder_config(name, **(encoder_args or {}))


class TextViews(nn.Module):
    """Every view is the token ids themselves: the encoder's dropout, drawn anew for each sample of each
    view, is the augmentation (SimCSE: Gao et al. 2021). ``spec.original`` adds one more copy."""

    def __init__(self, spec: ViewSpec) -> None:
        super().__init__()
        self.count = int(spec.original) + spec.n_global + spec.n_local

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return [x] * self.count


def make_views(spec: ViewSpec, splits: Splits, encoder_config: dict, view_args: dict | None = None) -> nn.Module:
    """:class:`TextViews`; text takes no view arguments."""
    if view_args:
        raise SelfsupError(
            f"text takes no view arguments (got {', '.join(sorted(view_args))}); its views differ "
            "by the encoder's dropout only."
        )
    return TextViews(spec)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-input baseline: a bag of the tokenizer's subword ids hashed into ``RAW_BUCKETS`` columns
    (``id mod 4096``), ``log(1 + count)``, each row L2-normalised; special tokens and padding left out."""
    ids = x.detach().cpu()
    ids = ids.round().long() if ids.is_floating_point() else ids.long()
    special = torch.tensor(sorted(set(encoder_config["special_ids"]) | {int(encoder_config["pad_id"])}))
    counted = (~torch.isin(ids, special)).float()
    counts = torch.zeros(len(ids), RAW_BUCKETS).scatter_add_(1, ids % RAW_BUCKETS, counted)
    features = torch.log1p(counts)
    return torch.nn.functional.normalize(features, dim=1).numpy()


def own_weights(encoder_config: dict) -> bool:
    """Whether the encoder has a checkpoint of its own (minilm, a local model folder; not small_bert)."""
    from selfsup.encoders.text import weights_folder

    return weights_folder(encoder_config) is not None


def start_weights(encoder: nn.Module) -> None:
    """A new text encoder starts from its checkpoint's own weights (minilm, or a model folder): continued
    pre-training."""
    from selfsup.encoders.text import TextEncoder, load_pretrained

    if not isinstance(encoder, TextEncoder):
        raise TypeError(f"start_weights takes a text encoder, got {type(encoder).__name__}")
    load_pretrained(encoder)


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    f"hashed bag of subword ids ({RAW_BUCKETS:,} columns, log counts, L2-normalised)",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
    planned_preprocessing=planned_preprocessing,
    own_weights=own_weights,
    start_weights=start_weights,
)
