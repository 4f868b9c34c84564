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
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from selfsup.data import ArrayDataset, DataOptions, Preprocessing, Splits
from selfsup.errors import SelfsupError
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


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise SelfsupError(
            f"cannot read '{path}': it is not UTF-8 text (byte {err.object[err.start]:#04x} at "
            f"position {err.start}); save it as UTF-8."
        ) from None


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
    rows = [(f"line-{n}", line.strip()) for n, line in enumerate(_read_lines(path), 1) if line.strip()]
    return [text for _, text in rows], None, [sample_id for sample_id, _ in rows]


def read_jsonl(
    path: Path, field: str, label: str | None, strict: bool = True
) -> tuple[list[str], list[str | None] | None, list[str]]:
    """Texts, labels and ids of a JSON-lines file (see the module docstring). A label field that no record has
    is refused (a misspelt --label), or with ``strict=False`` (the encoder's own label) leaves them unlabeled."""
    texts, labels, ids = [], [], []
    fields: dict[str, Any] = {}  # every field name seen, in order
    for n, line in enumerate(_read_lines(path), 1):
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
        texts.append(text)
        labels.append(label_text(record.get(label), where) if label else None)
        ids.append(str(record[ID_FIELD]) if record.get(ID_FIELD) is not None else f"line-{n}")
    if label and label not in fields:
        if not strict:
            return texts, None, ids
        known = ", ".join(f"'{k}'" for k in list(fields)[:8])
        raise SelfsupError(
            f"no record of '{path}' has the label field '{label}' (their fields: {known}); name the "
            "label field with --label."
        )
    return texts, (labels if label else None), ids


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
    path = Path(path)
    if path.is_dir():
        raise SelfsupError(
            f"text data '{path}' is a folder; text is read from one file: pass a .txt, .jsonl or .csv file."
        )
    if not path.is_file():
        raise SelfsupError(f"text data '{path}' does not exist; pass a .txt, .jsonl or .csv file.")
    suffix = path.suffix.lower()
    field = options.text_field or TEXT_FIELD
    if suffix in LINE_SUFFIXES:
        if options.label or options.text_field:
            raise SelfsupError(
                f"'{path}' is plain text (one text per line) with no fields; --label and --text-column "
                "need a .jsonl or .csv file."
            )
        found = read_txt(path)
    elif suffix in JSONL_SUFFIXES:
        found = read_jsonl(path, field, options.label or default_label, strict=bool(options.label))
    elif suffix in TABLE_SUFFIXES or Path(path.stem).suffix.lower() in TABLE_SUFFIXES:  # .csv.gz too
        found = read_text_table(path, field, options.label or default_label, strict=bool(options.label))
    else:
        raise SelfsupError(
            f"cannot read '{path}' as text: unknown file type '{path.suffix}'; use {', '.join(SUFFIXES)}."
        )
    if not found[0]:
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
    texts, labels, ids = read_texts(source, options, default_label=label)
    train = dataset(texts, labels, ids, preprocessing, f"'{source}'")
    read = Preprocessing(NAME, dict(preprocessing.settings) | {"text_field": options.text_field, "label": label})
    return Splits(train=train, test=None, name=str(source), modality=NAME, preprocessing=read)


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
