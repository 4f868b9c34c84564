"""DINO: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.losses import dino_loss, update_center
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import DINOHead
from selfsup.views import ViewSpec


class DINOConfig(MethodConfig):
    prototypes: int = Field(1024, ge=2, description="output dimension K of the DINO head")
    hidden_dim: int = Field(512, ge=1)
    bottleneck_dim: int = Field(128, ge=1)
    student_temperature: float = Field(0.1, gt=0)
    teacher_temperature: float = Field(0.04, gt=0)
    center_momentum: float = Field(0.9, ge=0, le=1)
    momentum: float = Field(0.996, ge=0, le=1, description="teacher EMA momentum at the start; rises to 1")


@register_method
class DINO(Method):
    name = "dino"
    summary = "self-distillation: student matches a centred, sharpened EMA teacher across multi-crop views"
    paper = "Caron et al. 2021, Emerging Properties in Self-Supervised Vision Transformers"
    views = ViewSpec(n_global=2, n_local=4, asymmetric=True)
    Config = DINOConfig
    config: DINOConfig
    center: torch.Tensor

    def __init__(self, encoder: Encoder, config: DINOConfig) -> None:
        super().__init__(encoder, config)
        self.head = DINOHead(encoder.embed_dim, config.hidden_dim, config.bottleneck_dim, config.prototypes)
        self.teacher = frozen_copy(nn.Sequential(encoder, self.head))
        self.register_buffer("center", torch.zeros(1, config.prototypes))

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        cfg = self.config
        n_global = self.views.n_global
        globals_ = torch.cat(views[:n_global])
        h = self.encoder(globals_)
        student = list(self.head(h).chunk(n_global))
        if len(views) > n_global:  # local crops share a size, so one forward serves them all
            student += list(self.head(self.encoder(torch.cat(views[n_global:]))).chunk(len(views) - n_global))
        with torch.no_grad():
            teacher = list(self.teacher(globals_).chunk(n_global))
        loss = dino_loss(student, teacher, self.center, cfg.student_temperature, cfg.teacher_temperature)
        self.center = update_center(self.center, teacher, cfg.center_momentum)
        return StepOutput(loss, {}, h[: len(views[0])])

    def on_train_batch_end(self, progress: float) -> None:
        ema_update(
            self.teacher, nn.Sequential(self.encoder, self.head), cosine_momentum(self.config.momentum, progress)
        )
