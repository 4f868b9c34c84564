"""SimCLR: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations"."""

from __future__ import annotations

import torch
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.losses import nt_xent_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.heads import mlp


class SimCLRConfig(MethodConfig):
    temperature: float = Field(0.5, gt=0)
    hidden_dim: int = Field(512, ge=1)
    projection_dim: int = Field(128, ge=1)


@register_method
class SimCLR(Method):
    name = "simclr"
    summary = "contrastive: two views, NT-Xent against every other sample in the (global) batch"
    paper = "Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations"
    Config = SimCLRConfig
    config: SimCLRConfig

    def __init__(self, encoder: Encoder, config: SimCLRConfig) -> None:
        super().__init__(encoder, config)
        self.projector = mlp(encoder.embed_dim, config.hidden_dim, config.projection_dim)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        h = self.encoder(torch.cat(views[:2]))
        z1, z2 = self.projector(h).chunk(2)
        loss = nt_xent_loss(z1, z2, temperature=self.config.temperature)
        return StepOutput(loss, {}, h[: len(views[0])])
