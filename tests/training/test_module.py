"""The training module reports representation collapse as a warning, and logs the embedding spread."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.methods.base import build_method
from selfsup.modalities import modality_module
from selfsup.training.module import CollapseWarning, PretrainModule


def _fit(method, x: torch.Tensor, steps: int) -> PretrainModule:
    splits = load_builtin("breast_cancer")
    views = modality_module("tabular").make_views(method.views, splits, method.encoder.config, {})  # [x] itself
    module = PretrainModule(method, views, lr=1e-3, weight_decay=0.0, warmup_fraction=0.0)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=32)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return module


def _encoder():
    splits = load_builtin("breast_cancer")
    module = modality_module("tabular")
    config = module.encoder_config("ft_transformer", splits, DataOptions(), {"d_token": 16, "n_layers": 1, "n_heads": 2})
    return build_encoder(config), splits.train.float_samples()[:64]


def test_collapsed_embeddings_warn_once() -> None:
    torch.manual_seed(0)
    encoder, x = _encoder()
    with torch.no_grad():  # every row maps to the same point: the final norm's output is its bias
        encoder.norm.weight.zero_()
        encoder.norm.bias.fill_(1.0)
    method = build_method("mae", encoder, {"decoder_dim": 16, "decoder_depth": 1})
    with pytest.warns(CollapseWarning, match="representation collapse") as record:
        _fit(method, x, steps=2)
    assert sum(issubclass(w.category, CollapseWarning) for w in record) == 1


def test_healthy_embeddings_do_not_warn(recwarn) -> None:
    torch.manual_seed(0)
    encoder, x = _encoder()
    _fit(build_method("mae", encoder, {"decoder_dim": 16, "decoder_depth": 1}), x, steps=2)
    assert not [w for w in recwarn if issubclass(w.category, CollapseWarning)]
