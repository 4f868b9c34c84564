"""Barlow Twins: Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction"."""

from __future__ import annotations

import torch
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.losses import barlow_twins_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.heads import mlp
from selfsup.views import ViewSpec


class BarlowTwinsConfig(MethodConfig):
    projection_dim: int = Field(1024, ge=1)
    lambda_offdiag: float = Field(5e-3, ge=0)


@register_method
class BarlowTwins(Method):
    name = "barlow_twins"
    summary = "redundancy reduction: cross-correlation of the two views' projections pushed to identity"
    paper = "Zbontar et al. 2021, Barlow Twins: Self-Supervised Learning via Redundancy Reduction"
    views = ViewSpec(n_global=2, asymmetric=True)
    Config = BarlowTwinsConfig
    config: BarlowTwinsConfig

    def __init__(self, encoder: Encoder, config: BarlowTwinsConfig) -> None:
        super().__init__(encoder, config)
        dim = config.projection_dim
        self.projector = mlp(encoder.embed_dim, dim, dim, layers=3)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        h = self.encoder(torch.cat(views[:2]))
        z1, z2 = self.projector(h).chunk(2)
        loss = barlow_twins_loss(z1, z2, lambda_offdiag=self.config.lambda_offdiag)
        return StepOutput(loss, {}, h[: len(views[0])])
