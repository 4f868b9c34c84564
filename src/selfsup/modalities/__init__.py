"""Modalities: each module supplies a reader, views and the default encoder config."""

from __future__ import annotations

from selfsup.data import Splits
from selfsup.errors import SelfsupError

BUILTIN_PREFIX = "builtin:"


def load_data(source: str, image_size: int | None = None, bad_files: str = "fail") -> Splits:
    """Load a data source: ``builtin:NAME`` or a path (a folder of images)."""
    if source.startswith(BUILTIN_PREFIX):
        from selfsup.datasets import load_builtin

        return load_builtin(source[len(BUILTIN_PREFIX):])
    from selfsup.modalities import image

    return image.load_folder(source, image_size=image_size, bad_files=bad_files)


def modality_module(name: str):
    """The module implementing a modality (``load``/``make_views``/``encoder_config``/``default_view_size``)."""
    if name == "image":
        from selfsup.modalities import image

        return image
    raise SelfsupError(f"modality '{name}' is not supported yet; supported: image.")
