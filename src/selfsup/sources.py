"""Reading a data source, whatever it is: ``builtin:NAME`` (the datasets that ship with selfsup) or a path, read by
the modality its suffix (or ``--modality``) names. Above both ``datasets`` and ``modalities``."""

from __future__ import annotations

from pathlib import Path

from selfsup import hf_sources, shards
from selfsup.data import DataOptions, Preprocessing, Splits
from selfsup.datasets import builtin_datasets, load_builtin
from selfsup.errors import SelfsupError
from selfsup.modalities import SHARDS_FILE, detect_modality, get_modality

BUILTIN_PREFIX = "builtin:"


def source_modality(source: str, options: DataOptions | None = None) -> str | None:
    """The modality ``source`` will be read as, known without reading it (None for an unknown built-in name or a
    missing path: reading it says what is wrong)."""
    options = options or DataOptions()
    if source.startswith(BUILTIN_PREFIX):
        dataset = builtin_datasets().get(source[len(BUILTIN_PREFIX) :])
        return dataset.modality if dataset is not None else None
    if options.modality != "auto":
        return options.modality
    if shards.is_url(source):  # prepared shards in object storage: the modality they record
        return str(shards.describe(source)["modality"])
    if Path(source).exists() and hf_sources.is_hf_source(source, options):
        return hf_sources.source_modality(source, options)
    return detect_modality(source) if Path(source).exists() else None


def load_data(source: str, options: DataOptions | None = None, *, preprocessing: Preprocessing | None = None) -> Splits:
    """Load ``builtin:NAME`` or a path (image folder, table file, series file or folder, audio file or folder).

    With an encoder's ``preprocessing``, new data is read the way that encoder's data was (a table's schema,
    an image size, a tokenizer) and data of another modality is refused.
    """
    options = options or DataOptions()
    if source.startswith(BUILTIN_PREFIX):
        given = options.file_flags()
        if given:
            raise SelfsupError(
                f"{', '.join(given)} cannot be used with {source}: built-in datasets come with their "
                "labels and columns; pass a file path to choose them."
            )

        splits = load_builtin(source[len(BUILTIN_PREFIX) :], preprocessing)
    elif shards.is_shards(source):  # prepared by 'selfsup prepare': a local folder or object storage (s3://...)
        splits = shards.load_shards(source, options, preprocessing)
    elif shards.is_foreign_litdata(source):
        raise SelfsupError(
            f"'{source}' is a LitData folder without {SHARDS_FILE}, not one 'selfsup prepare' wrote; selfsup reads "
            "only shards it prepared (their labels, ids and preprocessing): run 'selfsup prepare SOURCE OUT' on "
            "the original data."
        )
    else:
        modality = options.modality
        if modality == "auto":
            modality = preprocessing.modality if preprocessing else detect_modality(source)
        if not Path(source).exists():
            raise SelfsupError(
                f"data '{source}' does not exist; pass a folder of images, a table (.csv/.parquet), "
                "series (.ts/.npy/.npz or a folder of them), audio (.wav/.flac/.ogg or a folder of "
                "them), text (.txt/.jsonl) or builtin:NAME."
            )
        if hf_sources.is_hf_source(source, options):  # a Hugging Face dataset: its column says the modality
            splits = hf_sources.load(source, options, preprocessing)
        elif options.column is not None:
            raise SelfsupError(
                f"--column names the image, audio or text column of a Hugging Face dataset folder (save_to_disk) "
                f"or of Parquet files; '{source}' is neither."
            )
        else:
            fits = preprocessing is not None and preprocessing.modality == modality
            splits = get_modality(modality).load(source, options, preprocessing if fits else None)
    if preprocessing is not None and preprocessing.modality != splits.modality:
        raise SelfsupError(
            f"the encoder was trained on {preprocessing.modality} data but '{source}' "
            f"is {splits.modality}; pass data of the encoder's modality."
        )
    return splits
