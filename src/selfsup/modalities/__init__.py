"""Modalities: each is one typed :class:`Modality` (reader, preprocessing fitted on the training split, views,
default encoders, raw-input baseline), the ``MODALITY`` of its module, looked up by :func:`get_modality`. The rest
of the code calls it and never branches on a modality's name. Reading and fitting are separate steps: ``load``
reads a source (as an encoder's :class:`~selfsup.data.Preprocessing` says, when given); ``encoder_config`` and
``preprocessing`` are fitted on the training split it read. Reading a source by name (``builtin:NAME`` or a
path) is ``selfsup.sources.load_data``. docs/modalities.md describes the data each one reads and makes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsup.data import DataOptions, Preprocessing, Splits
from selfsup.errors import SelfsupError, unknown_name

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from selfsup.encoders import Encoder

MODALITIES = ("image", "tabular", "timeseries", "audio", "text")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
SERIES_SUFFIXES = (".ts", ".npy", ".npz")
TEXT_SUFFIXES = (".txt", ".jsonl", ".ndjson")  # a text table (.csv) needs --modality text
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # what soundfile (libsndfile) reads
AUDIO_SEARCH_DEPTH = 3  # a folder, its train/test or class sub-folders, and classes within train/test
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst")
SHARDS_FILE = "selfsup-shards.json"  # marks a folder of prepared shards (selfsup prepare; selfsup.shards)


def _no_preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    return Preprocessing(splits.modality, {})


def _not_before_reading(name: str, options: DataOptions, encoder_args: dict) -> Preprocessing | None:
    return None


def _same_options(options: DataOptions, splits: Splits) -> DataOptions:
    return options


def _same_samples(x: torch.Tensor, sample_shape: tuple[int, ...]) -> torch.Tensor:
    return x


def _no_own_weights(encoder_config: dict) -> bool:
    return False


@dataclass(frozen=True)
class Modality:
    """What a modality supplies. Optional parts default to "nothing special"."""

    name: str
    load: Callable[[str, DataOptions, Preprocessing | None], Splits]  # read a path (as an encoder's preprocessing says)
    encoder_config: Callable[[str, Splits, DataOptions | None, dict | None], dict]  # fitted on the training split
    make_views: Callable[..., nn.Module]  # (ViewSpec, splits, encoder config, view args) -> batched views
    raw_features: Callable[[torch.Tensor, dict], np.ndarray]  # the raw-input baseline's features
    raw_input: str  # what those features are, for reports
    default_encoder: str
    token_encoder: str  # the default of methods that need tokens (masked modelling)
    view_args: tuple[str, ...]
    # how new data is read for an encoder of this config fitted on these splits (read with these options)
    preprocessing: Callable[[Splits, DataOptions, dict], Preprocessing] = _no_preprocessing
    # the preprocessing an encoder of this name and arguments needs, when it is known before any data is read
    # (text: its tokenizer), so that the data is read once, already as that encoder reads it
    planned_preprocessing: Callable[[str, DataOptions, dict], Preprocessing | None] = _not_before_reading
    # options to read another source (replay data) the way this data was read
    read_like: Callable[[DataOptions, Splits], DataOptions] = _same_options
    # another source's samples made to fit this data's sample shape (or left as they are)
    fit_samples: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor] = _same_samples
    # whether a new encoder of a config has weights of its own (text: a model checkpoint), and loading them
    own_weights: Callable[[dict], bool] = _no_own_weights
    start_weights: Callable[[nn.Module], Any] | None = None
    # gradient-boosted trees on the raw features are the usual bar (tables): which raw columns are categorical
    tree_columns: Callable[[dict], np.ndarray] | None = None


def get_modality(name: str) -> Modality:
    """The modality called ``name`` (one of :data:`MODALITIES`)."""
    if name not in MODALITIES:
        raise unknown_name("modality", name, MODALITIES)
    return importlib.import_module(f"selfsup.modalities.{name}").MODALITY


def _holds_audio(folder: Path) -> bool:
    """Whether audio files lie in ``folder`` or in sub-folders up to ``AUDIO_SEARCH_DEPTH`` levels down."""
    level = [str(folder)]
    for _ in range(AUDIO_SEARCH_DEPTH):
        below = []
        for directory in level:
            with os.scandir(directory) as entries:  # no stat per file: fast on large image folders
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        below.append(entry.path)
                    elif entry.name.lower().endswith(AUDIO_SUFFIXES):
                        return True
        level = below
    return False


def _holds_series(folder: Path) -> bool:
    """Whether a folder holds series: a .ts or .npz file, a NAME_TRAIN file of a series or table suffix, or one
    .npy file (several .npy files, none of them NAME_TRAIN, are image rasters)."""
    files = [p for p in folder.iterdir() if p.is_file()]
    npy = [p for p in files if p.suffix.lower() == ".npy"]
    return len(npy) == 1 or any(
        (p.suffix.lower() in SERIES_SUFFIXES and p.suffix.lower() != ".npy")
        or (p.stem.lower().endswith("_train") and p.suffix.lower() in SERIES_SUFFIXES + TABLE_SUFFIXES)
        for p in files
    )


def _shards_modality(description: Path) -> str:
    """The modality a ``selfsup-shards.json`` records (reading the shards checks the rest of it)."""
    import json

    try:
        modality = json.loads(description.read_text()).get("modality")
    except (OSError, ValueError, AttributeError):
        modality = None
    if modality not in MODALITIES:
        raise SelfsupError(f"'{description}' is not a selfsup shard description; prepare the source again.")
    return str(modality)


def detect_modality(source: str) -> str:
    """The modality of a path: tables, series and audio by suffix; a folder of series files is series (a folder
    of several .npy arrays not named NAME_TRAIN/NAME_TEST holds image rasters), a folder holding audio files
    (directly, in class sub-folders or in train/test) is audio; else images.

    A CSV is read as a table; pass ``--modality timeseries`` to read it as series.
    """
    path = Path(source)
    if (path / SHARDS_FILE).is_file():  # prepared shards: the modality they were prepared from
        return _shards_modality(path / SHARDS_FILE)
    suffix = path.suffix.lower()
    if suffix in COMPRESSION_SUFFIXES:  # patients.csv.gz is a table
        suffix = Path(path.stem).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "tabular"
    if suffix in SERIES_SUFFIXES:
        return "timeseries"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if path.is_dir() and _holds_series(path):
        return "timeseries"  # NAME_TRAIN.ts / NAME_TRAIN.csv + NAME_TEST.*
    if path.is_dir() and _holds_audio(path):
        return "audio"
    return "image"


def check_fits(encoder: Encoder, splits: Splits) -> None:
    """Refuse data of another modality, channel count or table width than the encoder was trained on."""
    if encoder.config["modality"] != splits.modality:
        raise SelfsupError(
            f"the encoder was trained on {encoder.config['modality']} data but '{splits.name}' is {splits.modality}."
        )
    expected = encoder.config.get("in_chans", encoder.config.get("n_features"))
    unit = "channel" if "in_chans" in encoder.config else "table feature"
    for part in (splits.train, splits.test):
        if expected is not None and part is not None and part.sample_shape[0] != int(expected):
            got = part.sample_shape[0]
            raise SelfsupError(
                f"the encoder takes {expected} {unit}{'s' * (int(expected) != 1)} but "
                f"'{splits.name}' has {got} {unit}{'s' * (got != 1)}; pass data like the "
                "pre-training data."
            )
