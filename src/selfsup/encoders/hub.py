"""An encoder as a Hugging Face Hub model folder, by huggingface_hub's convention for PyTorch models that are not
transformers (``PyTorchModelHubMixin``, https://huggingface.co/docs/huggingface_hub/guides/integrations):
``config.json`` (the encoder's selfsup config, what :func:`build_encoder` rebuilds it from) + ``model.safetensors``
(its weights under ``encoder.``), + ``preprocessing.json`` (how raw data becomes its input).

    from selfsup.encoders.hub import HubEncoder
    encoder = HubEncoder.from_pretrained("OUT")  # encoder(x) -> (B, D) embeddings, as selfsup's encoder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from selfsup.data import Preprocessing
from selfsup.encoders import Encoder, build_encoder

CONFIG = "config.json"
WEIGHTS = "model.safetensors"  # huggingface_hub's constants.SAFETENSORS_SINGLE_FILE
PREPROCESSING = "preprocessing.json"
PREFIX = "encoder."  # the selfsup encoder's weights inside HubEncoder's state dict


class HubEncoder(nn.Module, PyTorchModelHubMixin, library_name="selfsup", tags=["selfsup", "self-supervised"]):
    """A selfsup encoder (``.encoder``) that ``from_pretrained`` reads from a Hub folder or repository; its weights
    must fit exactly (strict, unlike the mixin's default)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.encoder: Encoder = build_encoder(config)
        self.embed_dim = int(self.encoder.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs: Any) -> HubEncoder:
        model = super()._from_pretrained(model_id=model_id, strict=strict, **kwargs)
        file: Path | None = Path(model_id) / PREPROCESSING
        if not Path(model_id).is_dir():  # a Hub repository: its preprocessing.json, where it has one
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            hub = ("revision", "cache_dir", "force_download", "token", "local_files_only")
            try:
                file = Path(hf_hub_download(model_id, PREPROCESSING, **{k: kwargs[k] for k in hub if k in kwargs}))
            except EntryNotFoundError:
                file = None
        if file is not None and file.is_file():
            model.encoder.preprocessing = Preprocessing.from_dict(json.loads(file.read_text()), str(file))
        return model


def save_hub(encoder: Encoder, folder: str | Path) -> None:
    """Write what :class:`HubEncoder` reads into ``folder``: config, weights and (where the encoder has one) its
    preprocessing."""
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / CONFIG).write_text(json.dumps(encoder.config, sort_keys=True, indent=2))
    state = {PREFIX + k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})  # "pt": what Hugging Face's loaders expect
    if encoder.preprocessing is not None:
        (folder / PREPROCESSING).write_text(json.dumps(encoder.preprocessing.as_dict(), indent=1))
