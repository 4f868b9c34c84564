"""SimSiam: Chen & He 2021, "Exploring Simple Siamese Representation Learning"."""

from __future__ import annotations

import torch
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.losses import negative_cosine_similarity
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.heads import mlp


class SimSiamConfig(MethodConfig):
    projection_dim: int = Field(512, ge=1)
    predictor_hidden_dim: int = Field(128, ge=1)


@register_method
class SimSiam(Method):
    name = "simsiam"
    summary = "bootstrap: predictor + stop-gradient on the other branch, no negatives and no EMA"
    paper = "Chen & He 2021, Exploring Simple Siamese Representation Learning"
    Config = SimSiamConfig
    config: SimSiamConfig

    def __init__(self, encoder: Encoder, config: SimSiamConfig) -> None:
        super().__init__(encoder, config)
        dim = config.projection_dim
        self.projector = mlp(encoder.embed_dim, dim, dim, layers=3, last_bn=True)
        self.predictor = mlp(dim, config.predictor_hidden_dim, dim)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        h = self.encoder(torch.cat(views[:2]))
        z = self.projector(h)
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.detach().chunk(2)
        loss = 0.5 * (negative_cosine_similarity(p1, z2) + negative_cosine_similarity(p2, z1))
        return StepOutput(loss, {}, h[: len(views[0])])
