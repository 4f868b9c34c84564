"""BYOL: Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning"."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.losses import negative_cosine_similarity
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import mlp
from selfsup.views import ViewSpec


class BYOLConfig(MethodConfig):
    hidden_dim: int = Field(1024, ge=1)
    projection_dim: int = Field(256, ge=1)
    momentum: float = Field(0.99, ge=0, le=1, description="EMA momentum at the start; rises to 1")


@register_method
class BYOL(Method):
    name = "byol"
    summary = "bootstrap: online network predicts an EMA target network's projection of the other view"
    paper = "Grill et al. 2020, Bootstrap Your Own Latent"
    views = ViewSpec(n_global=2, asymmetric=True)
    Config = BYOLConfig
    config: BYOLConfig

    def __init__(self, encoder: Encoder, config: BYOLConfig) -> None:
        super().__init__(encoder, config)
        self.projector = mlp(encoder.embed_dim, config.hidden_dim, config.projection_dim)
        self.predictor = mlp(config.projection_dim, config.hidden_dim, config.projection_dim)
        self.target = frozen_copy(nn.Sequential(encoder, self.projector))

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x = torch.cat(views[:2])
        h = self.encoder(x)
        p1, p2 = self.predictor(self.projector(h)).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target(x).chunk(2)
        # 2 - 2cos, symmetrised and averaged over the two directions.
        loss = 2 + (negative_cosine_similarity(p1, t2) + negative_cosine_similarity(p2, t1))
        return StepOutput(loss, {}, h[: len(views[0])])

    def on_train_batch_end(self, progress: float) -> None:
        momentum = cosine_momentum(self.config.momentum, progress)
        ema_update(self.target, nn.Sequential(self.encoder, self.projector), momentum)
