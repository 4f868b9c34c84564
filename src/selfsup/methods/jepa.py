"""JEPA: Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture" (I-JEPA), with the T-JEPA (tables) and ECG-JEPA (series) variants as masking choices.

A context encoder sees the context tokens; an EMA target encoder sees the full input and its
layer-normed output tokens are the targets; a narrow predictor, given the context tokens and the
positions of one target block, predicts that block's target representations. No augmentations.
Masking ``auto`` is the modality's own: one contiguous block per target on images and series, a
feature subset on tables (their columns are unordered). ``loss=l1`` gives ECG-JEPA's latent L1.

Simplifications against I-JEPA: the context is a random ``context_scale`` share of the tokens outside
every target (I-JEPA: one large block minus the targets); target blocks are near-square, with no
aspect-ratio sampling; the momentum rises to 1 along a cosine (I-JEPA: linearly).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenTransformer
from selfsup.losses.masked import masked_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, check_heads, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import TokenPredictor
from selfsup.methods.masking import check_masking, jepa_masks
from selfsup.views import ViewSpec


class JEPAConfig(MethodConfig):
    masking: Literal["auto", "block", "random", "feature_subset"] = "auto"
    n_targets: int = Field(4, ge=1, description="target blocks per sample (I-JEPA: 4)")
    target_scale: tuple[float, float] = Field((0.15, 0.2), description="share of tokens in each target block")
    context_scale: tuple[float, float] = Field((0.85, 1.0), description="share of tokens in the context")
    predictor_dim: int = Field(64, ge=1)
    predictor_depth: int = Field(2, ge=1)
    predictor_heads: int = Field(4, ge=1)
    momentum: float = Field(0.996, ge=0, le=1, description="EMA momentum at the start; rises to 1")
    loss: Literal["l2", "l1"] = "l2"

    @field_validator("target_scale", "context_scale")
    @classmethod
    def _fraction_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError(f"expected 0 < low <= high <= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _heads_divide_width(self):
        return check_heads(self, "predictor_dim", "predictor_heads")


@register_method
class JEPA(Method):
    name = "jepa"
    summary = "joint-embedding prediction: predict an EMA encoder's tokens of target blocks from a context"
    paper = "Assran et al. 2023, I-JEPA; T-JEPA (tables); ECG-JEPA (series)"
    views = ViewSpec(n_global=0, original=True)
    needs_tokens = True
    default_lr = 1e-3
    Config = JEPAConfig
    config: JEPAConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: JEPAConfig) -> None:
        super().__init__(encoder, config)
        self.teacher = frozen_copy(self.encoder)
        dim = encoder.embed_dim
        self.predictor = TokenPredictor(dim, config.predictor_dim, config.predictor_depth, config.predictor_heads, dim)

    def _policy(self) -> str:
        if self.config.masking != "auto":
            return self.config.masking
        return "block" if self.encoder.tokenizer.ordered else "feature_subset"

    def check_data(self, x: torch.Tensor) -> None:
        check_masking(self.encoder, self._policy(), x)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prediction, target_tokens, target_index, valid, embedding)``: the predictor's output
        ``(n_targets * B, M, D)`` for each target block (blocks stacked along the batch), the target
        encoder's tokens ``(n_targets * B, N, D)``, the blocks' indices ``(n_targets * B, M)``, token
        validity ``(n_targets * B, N)`` and the context's pooled embedding ``(B, D)``."""
        tokenizer, config = self.encoder.tokenizer, self.config
        grid = tokenizer.grid(x)
        context, targets = jepa_masks(
            len(x),
            grid,
            self._policy(),
            tokenizer.ordered,
            n_targets=config.n_targets,
            target_scale=config.target_scale,
            context_scale=config.context_scale,
            device=x.device,
        )
        with torch.no_grad():
            self.teacher.eval()  # deterministic targets: no dropout in the teacher (Lightning sets train mode)
            full = self.teacher.run(x)
            tokens = F.layer_norm(full.tokens, (full.tokens.shape[-1],))
        seen = self.encoder.run(x, context)
        n = len(targets)
        target_index = torch.cat(targets)
        prediction = self.predictor(
            seen.tokens.repeat(n, 1, 1),
            context.repeat(n, 1),
            target_index,
            tokenizer.positions(math.prod(grid)),
            seen.valid.repeat(n, 1),
        )
        return prediction, tokens.repeat(n, 1, 1), target_index, full.valid.repeat(n, 1), seen.pooled

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        prediction, target, index, valid, embedding = self.predict(views[0])
        return StepOutput(masked_loss(prediction, target, index, valid, self.config.loss), {}, embedding)

    def on_train_batch_end(self, progress: float) -> None:
        ema_update(self.teacher, self.encoder, cosine_momentum(self.config.momentum, progress))
