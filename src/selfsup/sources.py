"""Reading a data source, whatever it is: ``builtin:NAME`` (the datasets that ship with selfsup) or a path, read by
the modality its suffix (or ``--modality``) names. Above both ``datasets`` and ``modalities``."""

from __future__ import annotations

from pathlib import Path

from selfsup.data import DataOptions, Splits
from selfsup.datasets import load_builtin
from selfsup.errors import SelfsupError
from selfsup.modalities import detect_modality, get_modality

BUILTIN_PREFIX = "builtin:"


def load_data(source: str, options: DataOptions | None = None, *, encoder_config: dict | None = None) -> Splits:
    """Load ``builtin:NAME`` or a path (image folder, table file, series file or folder, audio file or folder).

    With ``encoder_config``, new data is read the way that encoder was trained (a table's schema,
    an image size) and data that does not fit it is refused.
    """
    options = options or DataOptions()
    if source.startswith(BUILTIN_PREFIX):
        given = [
            flag
            for flag, value in (
                ("--label", options.label),
                ("--ignore", options.ignore),
                ("--series-id", options.series_id),
                ("--time-column", options.time_column),
                ("--sample-rate", options.sample_rate),
                ("--segment-seconds", options.segment_seconds),
                ("--text-column", options.text_field),
            )
            if value
        ]
        if given:
            raise SelfsupError(
                f"{', '.join(given)} cannot be used with {source}: built-in datasets come with their "
                "labels and columns; pass a file path to choose them."
            )

        splits = load_builtin(source[len(BUILTIN_PREFIX) :], encoder_config)
    else:
        modality = options.modality
        if modality == "auto":
            modality = encoder_config["modality"] if encoder_config else detect_modality(source)
        if not Path(source).exists():
            raise SelfsupError(
                f"data '{source}' does not exist; pass a folder of images, a table (.csv/.parquet), "
                "series (.ts/.npy/.npz or a folder of them), audio (.wav/.flac/.ogg or a folder of "
                "them), text (.txt/.jsonl) or builtin:NAME."
            )
        splits = get_modality(modality).load(source, options, encoder_config)
    if encoder_config is not None and encoder_config["modality"] != splits.modality:
        raise SelfsupError(
            f"the encoder was trained on {encoder_config['modality']} data but '{source}' "
            f"is {splits.modality}; pass data of the encoder's modality."
        )
    return splits
