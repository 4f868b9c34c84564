"""MoCo v3: Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers"."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.losses import info_nce_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import mlp
from selfsup.views import ViewSpec


class MoCoV3Config(MethodConfig):
    temperature: float = Field(0.2, gt=0)
    hidden_dim: int = Field(1024, ge=1)
    projection_dim: int = Field(256, ge=1)
    momentum: float = Field(0.99, ge=0, le=1, description="EMA momentum at the start; rises to 1")


@register_method
class MoCoV3(Method):
    name = "mocov3"
    summary = "contrastive: query branch with predictor vs EMA key branch, in-batch negatives"
    paper = "Chen, Xie & He 2021, An Empirical Study of Training Self-Supervised Vision Transformers"
    views = ViewSpec(n_global=2, asymmetric=True)
    Config = MoCoV3Config
    config: MoCoV3Config

    def __init__(self, encoder: Encoder, config: MoCoV3Config) -> None:
        super().__init__(encoder, config)
        self.projector = mlp(encoder.embed_dim, config.hidden_dim, config.projection_dim, layers=3, last_bn=True)
        self.predictor = mlp(config.projection_dim, config.hidden_dim, config.projection_dim, last_bn=True)
        self.momentum_encoder = frozen_copy(nn.Sequential(encoder, self.projector))

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x = torch.cat(views[:2])
        h = self.encoder(x)
        q1, q2 = self.predictor(self.projector(h)).chunk(2)
        with torch.no_grad():
            k1, k2 = self.momentum_encoder(x).chunk(2)
        t = self.config.temperature
        loss = info_nce_loss(q1, k2, temperature=t) + info_nce_loss(q2, k1, temperature=t)
        return StepOutput(loss, {}, h[: len(views[0])])

    def on_train_batch_end(self, progress: float) -> None:
        momentum = cosine_momentum(self.config.momentum, progress)
        ema_update(self.momentum_encoder, nn.Sequential(self.encoder, self.projector), momentum)
