"""VICReg: Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization"."""

from __future__ import annotations

import torch
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.losses import vicreg_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.heads import mlp
from selfsup.views import ViewSpec


class VICRegConfig(MethodConfig):
    projection_dim: int = Field(1024, ge=1)
    sim_weight: float = Field(25.0, ge=0)
    var_weight: float = Field(25.0, ge=0)
    cov_weight: float = Field(1.0, ge=0)


@register_method
class VICReg(Method):
    name = "vicreg"
    summary = "redundancy reduction: invariance + per-dimension variance floor + decorrelated dimensions"
    paper = "Bardes, Ponce & LeCun 2022, VICReg: Variance-Invariance-Covariance Regularization"
    views = ViewSpec(n_global=2, asymmetric=True)
    Config = VICRegConfig
    config: VICRegConfig

    def __init__(self, encoder: Encoder, config: VICRegConfig) -> None:
        super().__init__(encoder, config)
        dim = config.projection_dim
        self.projector = mlp(encoder.embed_dim, dim, dim, layers=3)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        h = self.encoder(torch.cat(views[:2]))
        z1, z2 = self.projector(h).chunk(2)
        cfg = self.config
        loss = vicreg_loss(z1, z2, cfg.sim_weight, cfg.var_weight, cfg.cov_weight)
        return StepOutput(loss, {}, h[: len(views[0])])
