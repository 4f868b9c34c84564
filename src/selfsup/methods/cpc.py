"""CPC: van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding".

The encoder's tokens ``z_t`` feed a GRU whose state ``c_t`` summarises the past; a linear map
``W_k`` per step ahead predicts ``z_{t+k}`` for ``k = 1..steps_ahead``, and InfoNCE asks each
prediction to pick its true future token among the other series' tokens at the same step
(:func:`selfsup.losses.temporal.cpc_loss`). With ragged series only valid future tokens count.

CPC gets the unaugmented batch (``ViewSpec(original=True)``, no augmented view): the objective
needs none. It needs a causal encoder, so ``selfsup pretrain --method cpc`` builds one
(``encoder_defaults``): TS2Vec's convolutions and the patch transformer otherwise let every token
see the future, so ``c_t`` would already hold ``z_{t+k}`` and predicting it would teach nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import pool_tokens
from selfsup.errors import SelfsupError
from selfsup.losses.temporal import cpc_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

if TYPE_CHECKING:
    from selfsup.encoders.series import SeriesEncoder


class CPCConfig(MethodConfig):
    steps_ahead: int = Field(4, ge=1)  # K: tokens predicted ahead (patch tokens span patch_size steps)
    context_dim: int = Field(128, ge=1)  # GRU width


@register_method
class CPC(Method):
    name = "cpc"
    summary = "predictive: a GRU over past tokens predicts the next ones, InfoNCE against other series"
    paper = "van den Oord et al. 2018, Representation Learning with Contrastive Predictive Coding"
    views = ViewSpec(n_global=0, original=True)
    modalities = ("timeseries",)
    encoder_defaults: ClassVar[dict[str, Any]] = {"causal": True}
    default_lr = 1e-3  # small GRU + encoder under AdamW; CPC used 2e-4 with Adam for a 256-wide model
    Config = CPCConfig
    config: CPCConfig
    encoder: SeriesEncoder

    def __init__(self, encoder: Encoder, config: CPCConfig) -> None:
        super().__init__(encoder, config)
        if not hasattr(encoder, "forward_tokens"):
            raise SelfsupError(
                "cpc needs a time-series encoder with per-time-step features (dilated_conv, patch_transformer)."
            )
        if not getattr(encoder, "causal", False):
            raise SelfsupError(
                "cpc needs a causal encoder, or its tokens see the future they must predict: "
                "build the encoder with causal=true (--encoder-arg causal=true)."
            )
        self.context = nn.GRU(encoder.embed_dim, config.context_dim, batch_first=True)
        self.predictors = nn.Linear(config.context_dim, config.steps_ahead * encoder.embed_dim, bias=False)

    def check_data(self, x: torch.Tensor) -> None:
        stride = int(self.encoder.token_stride)
        self._check_tokens(-(-x.shape[-1] // stride), x.shape[-1])

    def _check_tokens(self, n_tokens: int, steps: int) -> None:
        ahead = self.config.steps_ahead
        if n_tokens <= ahead:
            raise SelfsupError(
                f"cpc predicts {ahead} tokens ahead but these series give only {n_tokens} tokens "
                f"({steps} time steps, {self.encoder.token_stride} per token); set steps_ahead below {n_tokens} "
                "or use a smaller patch_size."
            )

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x = views[0]
        z, valid = self.encoder.forward_tokens(x)
        batch, n_tokens, dim = z.shape
        ahead = self.config.steps_ahead
        self._check_tokens(n_tokens, x.shape[-1])
        context, _ = self.context(z)
        predictions = self.predictors(context).view(batch, n_tokens, ahead, dim)
        loss = cpc_loss(predictions, z, valid)
        return StepOutput(loss, {}, pool_tokens(z, valid))
