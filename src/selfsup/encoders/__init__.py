"""Encoders: ``forward(x) -> (B, D)`` with an ``embed_dim`` attribute, rebuilt from a JSON config."""

from __future__ import annotations

from typing import Any

from torch import nn

from selfsup.encoders.image import ImageEncoder
from selfsup.errors import SelfsupError

ENCODER_CLASSES: dict[str, type[nn.Module]] = {"image": ImageEncoder}


def build_encoder(config: dict[str, Any]) -> nn.Module:
    """Build a freshly initialised encoder from its config (as saved in ``selfsup.json``)."""
    modality = config.get("modality")
    if modality not in ENCODER_CLASSES:
        raise SelfsupError(f"no encoder for modality '{modality}'; known: {', '.join(ENCODER_CLASSES)}.")
    return ENCODER_CLASSES[modality](config)
