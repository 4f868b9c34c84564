"""Modalities: each module supplies a reader, views, the default encoder and the raw-input baseline.

See docs/modalities.md for the contract every modality module keeps.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from selfsup.data import DataOptions, Splits
from selfsup.errors import SelfsupError, unknown_name

BUILTIN_PREFIX = "builtin:"
MODALITIES = ("image", "tabular", "timeseries", "audio", "text")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
SERIES_SUFFIXES = (".ts", ".npy", ".npz")
TEXT_SUFFIXES = (".txt", ".jsonl", ".ndjson")  # a text table (.csv) needs --modality text
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # what soundfile (libsndfile) reads
AUDIO_SEARCH_DEPTH = 3  # a folder, its train/test or class sub-folders, and classes within train/test
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst")


def modality_module(name: str) -> ModuleType:
    """The module implementing a modality (``load``/``encoder_config``/``make_views``/``raw_features``)."""
    if name not in MODALITIES:
        raise unknown_name("modality", name, MODALITIES)
    return importlib.import_module(f"selfsup.modalities.{name}")


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


def detect_modality(source: str) -> str:
    """The modality of a path: tables, series and audio by suffix; a folder of .ts files is series, a folder
    holding audio files (directly, in class sub-folders or in train/test) is audio; else images.

    A CSV is read as a table; pass ``--modality timeseries`` to read it as series.
    """
    path = Path(source)
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
    if path.is_dir() and any(p.suffix.lower() in SERIES_SUFFIXES or (
            p.name.lower().rsplit(".", 1)[0].endswith("_train") and p.suffix.lower() in TABLE_SUFFIXES)
            for p in path.iterdir() if p.is_file()):
        return "timeseries"  # NAME_TRAIN.ts / NAME_TRAIN.csv + NAME_TEST.*
    if path.is_dir() and _holds_audio(path):
        return "audio"
    return "image"


def load_data(source: str, options: DataOptions | None = None, *, encoder_config: dict | None = None) -> Splits:
    """Load ``builtin:NAME`` or a path (image folder, table file, series file or folder, audio file or folder).

    With ``encoder_config``, new data is read the way that encoder was trained (a table's schema,
    an image size) and data that does not fit it is refused.
    """
    options = options or DataOptions()
    if source.startswith(BUILTIN_PREFIX):
        from selfsup.datasets import load_builtin

        given = [flag for flag, value in (("--label", options.label), ("--ignore", options.ignore),
                                          ("--series-id", options.series_id), ("--time-column", options.time_column),
                                          ("--sample-rate", options.sample_rate),
                                          ("--segment-seconds", options.segment_seconds),
                                          ("--text-column", options.text_field))
                 if value]
        if given:
            raise SelfsupError(f"{', '.join(given)} cannot be used with {source}: built-in datasets come with their "
                               "labels and columns; pass a file path to choose them.")

        splits = load_builtin(source[len(BUILTIN_PREFIX):], encoder_config)
    else:
        modality = options.modality
        if modality == "auto":
            modality = encoder_config["modality"] if encoder_config else detect_modality(source)
        if not Path(source).exists():
            raise SelfsupError(f"data '{source}' does not exist; pass a folder of images, a table (.csv/.parquet), "
                               "series (.ts/.npy/.npz or a folder of them), audio (.wav/.flac/.ogg or a folder of "
                               "them), text (.txt/.jsonl) or builtin:NAME.")
        splits = modality_module(modality).load(source, options, encoder_config)
    if encoder_config is not None and encoder_config["modality"] != splits.modality:
        raise SelfsupError(f"the encoder was trained on {encoder_config['modality']} data but '{source}' "
                           f"is {splits.modality}; pass data of the encoder's modality.")
    return splits
