"""Encoders: ``forward(x) -> (B, D)`` with an ``embed_dim`` attribute, rebuilt from a JSON config."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from selfsup.data import Preprocessing
from selfsup.errors import SelfsupError

# modality -> module with ``build(config)``; imported on first use (each pulls in its own libraries)
ENCODER_MODULES = {
    "image": "selfsup.encoders.image",
    "tabular": "selfsup.encoders.table",
    "timeseries": "selfsup.encoders.series",
    "audio": "selfsup.encoders.audio",
    "text": "selfsup.encoders.text",
}


class Encoder(nn.Module):
    """The base of every encoder: ``forward(x) -> (B, embed_dim)``, and ``config``, the JSON-safe description
    that :func:`build_encoder` rebuilds it from (saved in ``selfsup.json``)."""

    embed_dim: int
    config: dict[str, Any]
    # how raw files become its input (selfsup.data.Preprocessing), fitted on its pre-training data; not in config
    preprocessing: Preprocessing | None = None


def preprocessing_of(encoder: Encoder) -> Preprocessing:
    """How to read data for ``encoder``: its preprocessing, or, for one built from a config by hand, what its
    config implies (image size, audio rate and clip length, tokenizer; a table is read with a schema fitted anew,
    and one that does not fit the encoder is refused by ``check_fits``)."""
    return encoder.preprocessing or Preprocessing.from_old_config(encoder.config)


def build_encoder(config: dict[str, Any]) -> Encoder:
    """Build a freshly initialised encoder from its config (as saved in ``selfsup.json``); a pair, or a side of
    one (a config with ``projection``), is built by :mod:`selfsup.encoders.pair`."""
    modality = config.get("modality")
    if modality == "pairs" or "projection" in config:
        from selfsup.encoders.pair import build

        return build(config)
    if modality not in ENCODER_MODULES:
        raise SelfsupError(f"no encoder for modality '{modality}'; known: {', '.join(ENCODER_MODULES)}.")
    encoder = importlib.import_module(ENCODER_MODULES[modality]).build(config)
    registers = config.get("registers", 0)  # register tokens a method added (TokenTransformer.add_registers)
    if registers:
        if not hasattr(encoder, "add_registers"):
            raise SelfsupError(f"the '{config.get('name')}' encoder takes no register tokens (a token encoder does).")
        encoder.add_registers(int(registers))
    return encoder
