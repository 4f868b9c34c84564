"""SCARF: Bahri et al. 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption".

The tabular views corrupt each row (a random subset of its features replaced by draws from those
features' empirical marginals); this method only contrasts a clean row with its corrupted copy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.losses.contrastive import info_nce_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.heads import mlp
from selfsup.views import ViewSpec


class SCARFConfig(MethodConfig):
    # The paper uses tau = 1 throughout (and finds SCARF robust to it in its ablations).
    temperature: float = Field(1.0, gt=0)
    # The paper's pre-training head g: a 2-layer ReLU network of 256 units.
    hidden_dim: int = Field(256, ge=1)
    projection_dim: int = Field(256, ge=1)


@register_method
class SCARF(Method):
    name = "scarf"
    summary = "contrastive (tables): a row vs its randomly corrupted copy, InfoNCE over the (global) batch"
    paper = "Bahri et al. 2022, SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption"
    views = ViewSpec(n_global=1, original=True)
    view_defaults: ClassVar[dict[str, Any]] = {"corrupt_rate": 0.6}  # the paper's corruption rate
    modalities = ("tabular",)
    default_lr = 1e-3  # the paper's Adam learning rate
    Config = SCARFConfig
    config: SCARFConfig

    def __init__(self, encoder: Encoder, config: SCARFConfig) -> None:
        super().__init__(encoder, config)
        self.head = mlp(encoder.embed_dim, config.hidden_dim, config.projection_dim)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        """``views = [x, corrupted_x]``: anchor ``i`` is clean row ``i``, its positive the corrupted row
        ``i``, its negatives every other corrupted row of the (gathered) batch; one direction, as in the
        paper's Algorithm 1."""
        batch = len(views[0])
        h = self.encoder(torch.cat(views[:2]))
        z, z_corrupted = self.head(h).chunk(2)
        t = self.config.temperature
        # info_nce_loss is exactly this InfoNCE (cosine similarities / t, gathered keys keep their
        # gradient) but scales it by 2t as MoCo v3's code does; undo that to report SCARF's loss.
        loss = info_nce_loss(z, z_corrupted, temperature=t) / (2 * t)
        return StepOutput(loss, {}, h[:batch])
