"""Paired encoders (CLIP, Radford et al. 2021): one encoder per side of a pair, each with a linear projection
into the space the two sides share.

A side is saved as an ordinary export of its modality: its config is the inner encoder's plus
``"projection": D`` (``build_encoder`` then wraps it in :class:`Projected`), so every command reads a
side as it reads any encoder of that modality. The pair itself (``modality: "pairs"``) is what a paired
run writes at its root; its config holds both sides'.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from selfsup.data import Preprocessing
from selfsup.encoders import Encoder

PAIR_MODALITY = "pairs"


class Projected(Encoder):
    """An encoder followed by a bias-free linear projection: ``(B, ...) -> (B, projection)``."""

    def __init__(self, encoder: Encoder, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.embed_dim, dim, bias=False)
        self.embed_dim = int(dim)
        self.config = dict(encoder.config) | {"projection": int(dim)}
        self.preprocessing = encoder.preprocessing  # the projection reads what the encoder reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(x))


class PairEncoder(Encoder):
    """The two sides of a pair. ``forward`` takes ``(a, b)`` and returns side a's embedding (what the online
    probe and the monitors watch); a method calls ``self.a`` and ``self.b`` itself. ``embed_dim`` and
    ``config`` are read from the current sides (CLIP replaces them with projected ones), never set."""

    def __init__(self, a: Encoder, b: Encoder) -> None:
        super().__init__()
        self.a, self.b = a, b

    @property
    def embed_dim(self) -> int:
        return int(self.a.embed_dim)

    @embed_dim.setter
    def embed_dim(self, value: int) -> None:
        raise AttributeError("a pair's embed_dim is side a's; set the side instead")

    @property
    def config(self) -> dict[str, Any]:
        return {"name": "pair", "modality": PAIR_MODALITY, "a": self.a.config, "b": self.b.config}

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        raise AttributeError("a pair's config is its sides'; set the sides instead")

    @property  # Encoder's is a plain attribute; a pair's is its sides'
    def preprocessing(self) -> Preprocessing | None:
        """Both sides' preprocessing (``settings``: ``{"a": ..., "b": ...}``), saved at the run's root from its
        start, so an unfinished paired run can be exported or resumed; None until both sides have one."""
        a, b = self.a.preprocessing, self.b.preprocessing
        if a is None or b is None:
            return None
        return Preprocessing(PAIR_MODALITY, {"a": a.as_dict(), "b": b.as_dict()})

    @preprocessing.setter
    def preprocessing(self, value: Preprocessing | None) -> None:
        """Give each side its part (a pair saved before its root held both sides' keeps its sides' own)."""
        if value is None or "a" not in value.settings:
            return
        self.a.preprocessing = Preprocessing.from_dict(value.settings["a"], "the pair's side a preprocessing")
        self.b.preprocessing = Preprocessing.from_dict(value.settings["b"], "the pair's side b preprocessing")

    def forward(self, pair: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        return self.a(pair[0])


def side_names(config: dict[str, Any]) -> tuple[str, str]:
    """The folders a paired run exports its sides to: their modalities (``audio``, ``text``), or
    ``MODALITY_a`` / ``MODALITY_b`` when both sides have the same one."""
    a, b = config["a"]["modality"], config["b"]["modality"]
    return (a, b) if a != b else (f"{a}_a", f"{b}_b")


def build(config: dict[str, Any]) -> Encoder:
    """A pair (``modality: "pairs"``) or a projected side (a config with ``projection``), random weights."""
    from selfsup.encoders import build_encoder

    if config.get("modality") == PAIR_MODALITY:
        return PairEncoder(build_encoder(config["a"]), build_encoder(config["b"]))
    inner = {k: v for k, v in config.items() if k != "projection"}
    return Projected(build_encoder(inner), int(config["projection"]))
