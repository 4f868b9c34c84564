"""JEPA: Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture" (I-JEPA), with the options of three variants (turned on together by ``tjepa``, ``ecg_jepa``
and ``sar_jepa``).

A context encoder sees the context tokens; an EMA target encoder sees the full input and its
layer-normed output tokens are the targets; a narrow predictor, given the context tokens and the
positions of one target block, predicts that block's target representations. No augmentations.
Masking ``auto`` is the modality's own: one contiguous block per target on images and series, a
feature subset on tables (their columns are unordered).

Variant options:

- ``masking="tjepa"`` (T-JEPA, tables): context first, a 20-40% feature subset; each target a subset of the
  rest (``methods/jepa_masks.py``). ``registers=k`` adds ``k`` learned tokens that join the context and the
  target encoders' sequences and leave their outputs (T-JEPA's regularisation tokens, ECG-JEPA's register).
- ``masking="ecg_jepa"`` (ECG-JEPA, series): keep 15-25% of the time patches, mask the rest as runs of at
  least ``min_block`` patches across all leads; one target, every masked patch. ``loss=l1`` is its latent L1.
- ``target="gradient"`` (SAR-JEPA, images): the targets are not an EMA encoder's tokens but multi-scale
  ratio-of-averages gradient magnitudes of the input, patchified per token (``losses/gradient_targets.py``
  states the definition); no target encoder is kept.

Simplifications against I-JEPA: the context is a random ``context_scale`` share of the tokens outside
every target (I-JEPA: one large block minus the targets); target blocks are near-square, with no
aspect-ratio sampling; the momentum moves to ``momentum_end`` along a cosine (I-JEPA: linearly). The
variants' own simplifications are in their methods' docstrings.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenTransformer
from selfsup.errors import SelfsupError
from selfsup.losses.gradient_targets import gradient_targets, paper_radii
from selfsup.losses.masked import masked_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, check_heads, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import TokenPredictor
from selfsup.methods.jepa_masks import ecg_masks, tjepa_masks
from selfsup.methods.masking import check_masking, jepa_masks
from selfsup.views import ViewSpec


class JEPAConfig(MethodConfig):
    masking: Literal["auto", "block", "random", "feature_subset", "tjepa", "ecg_jepa"] = "auto"
    n_targets: int = Field(4, ge=1, description="target blocks per sample (I-JEPA: 4)")
    target_scale: tuple[float, float] = Field((0.15, 0.2), description="share of tokens in each target block")
    context_scale: tuple[float, float] = Field((0.85, 1.0), description="share of tokens in the context")
    predictor_dim: int = Field(64, ge=1)
    predictor_depth: int = Field(2, ge=1)
    predictor_heads: int = Field(4, ge=1)
    momentum: float = Field(0.996, ge=0, le=1, description="EMA momentum at the start")
    momentum_end: float = Field(1.0, ge=0, le=1, description="EMA momentum at the end (a cosine between)")
    loss: Literal["l2", "l1"] = "l2"
    registers: int = Field(0, ge=0, description="learned register tokens added to the encoder (ECG-JEPA: 1)")
    min_block: int = Field(10, ge=1, description="masking=ecg_jepa: shortest masked run, in patches")
    target: Literal["ema", "gradient"] = Field(
        "ema", description="ema: an EMA encoder's tokens; gradient: SAR-JEPA's multi-scale gradient features"
    )
    gradient_radii: tuple[int, ...] | None = Field(
        None, description="target=gradient: window radii in pixels (default: SAR-JEPA's, scaled to the patch)"
    )

    @field_validator("target_scale", "context_scale")
    @classmethod
    def _fraction_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError(f"expected 0 < low <= high <= 1, got {value}")
        return value

    @field_validator("gradient_radii")
    @classmethod
    def _radii(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError(f"expected one or more radii of at least 1 pixel, got {value}")
        return value

    @model_validator(mode="after")
    def _heads_divide_width(self):
        return check_heads(self, "predictor_dim", "predictor_heads")


@register_method
class JEPA(Method):
    name = "jepa"
    summary = (
        "joint-embedding prediction: predict an EMA encoder's tokens of target blocks from a context; options: "
        "T-JEPA and ECG-JEPA masking, register tokens, SAR-JEPA gradient targets (presets: tjepa, ecg_jepa, sar_jepa)"
    )
    paper = "Assran et al. 2023, I-JEPA"
    views = ViewSpec(n_global=0, original=True)
    needs_tokens = True
    default_lr = 1e-3
    Config = JEPAConfig
    config: JEPAConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: JEPAConfig) -> None:
        super().__init__(encoder, config)
        if config.registers:
            self.encoder.add_registers(config.registers)  # before the teacher's copy: it has them too
        dim = out = encoder.embed_dim
        self.radii: tuple[int, ...] = ()
        if config.target == "gradient":
            self.radii = self._check_gradient_target()
            out = len(self.radii) * math.prod(self.encoder.tokenizer.patch_shape)
        self.teacher = frozen_copy(self.encoder) if config.target == "ema" else None
        self.predictor = TokenPredictor(dim, config.predictor_dim, config.predictor_depth, config.predictor_heads, out)

    def _check_gradient_target(self) -> tuple[int, ...]:
        tokenizer = self.encoder.tokenizer
        if self.encoder.config.get("modality") != "image" or not hasattr(tokenizer, "image_size"):
            raise SelfsupError(
                "target=gradient (SAR-JEPA) takes gradients of image pixels, so it needs images and the vit encoder."
            )
        self.pixels = (cast(int, tokenizer.image_size), cast(int, tokenizer.patch_size))  # image side, patch side
        radii = self.config.gradient_radii or paper_radii(self.pixels[1])
        if max(radii) >= self.pixels[0]:
            raise SelfsupError(
                f"gradient radius {max(radii)} does not fit {self.pixels[0]}-pixel images; give smaller gradient_radii."
            )
        return radii

    def _policy(self) -> str:
        if self.config.masking != "auto":
            return self.config.masking
        return "block" if self.encoder.tokenizer.ordered else "feature_subset"

    def check_data(self, x: torch.Tensor) -> None:
        policy, tokenizer = self._policy(), self.encoder.tokenizer
        if policy == "ecg_jepa" and not (tokenizer.ordered and len(tokenizer.grid(x[:2])) == 1):
            raise SelfsupError("masking 'ecg_jepa' masks runs along time, so it needs series; use 'tjepa' or 'random'.")
        if policy in ("tjepa", "ecg_jepa"):
            if math.prod(tokenizer.grid(x[:2])) < 2:
                raise SelfsupError(f"masking '{policy}' needs at least 2 tokens per sample; use shorter patches.")
            return
        check_masking(self.encoder, policy, x)

    def _masks(self, x: torch.Tensor, grid: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        config, policy, n = self.config, self._policy(), math.prod(grid)
        scales = {"target_scale": config.target_scale, "context_scale": config.context_scale}
        if policy == "tjepa":
            return tjepa_masks(len(x), n, n_targets=config.n_targets, device=x.device, **scales)
        if policy == "ecg_jepa":
            return ecg_masks(len(x), n, context_scale=config.context_scale, min_block=config.min_block, device=x.device)
        ordered = self.encoder.tokenizer.ordered
        return jepa_masks(len(x), grid, policy, ordered, n_targets=config.n_targets, device=x.device, **scales)

    def targets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens (B, N, P), valid (B, N))``: the EMA encoder's layer-normed tokens, or the gradient features."""
        with torch.no_grad():
            if self.teacher is None:
                side, patch = self.pixels
                if x.shape[-2:] != (side, side):  # as the tokenizer does
                    x = F.interpolate(x.float(), size=(side, side), mode="bilinear", align_corners=False)
                tokens = gradient_targets(x.clamp_min(0), patch, self.radii)
                return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=x.device)
            self.teacher.eval()  # deterministic targets: no dropout in the teacher (Lightning sets train mode)
            full = self.teacher.run(x)
            return F.layer_norm(full.tokens, (full.tokens.shape[-1],)), full.valid

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prediction, target_tokens, target_index, valid, embedding)``: the predictor's output
        ``(n_targets * B, M, D)`` for each target block (blocks stacked along the batch), the target
        encoder's tokens ``(n_targets * B, N, D)``, the blocks' indices ``(n_targets * B, M)``, token
        validity ``(n_targets * B, N)`` and the context's pooled embedding ``(B, D)``."""
        tokenizer = self.encoder.tokenizer
        grid = tokenizer.grid(x)
        context, targets = self._masks(x, grid)
        tokens, valid = self.targets(x)
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
        return prediction, tokens.repeat(n, 1, 1), target_index, valid.repeat(n, 1), seen.pooled

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        prediction, target, index, valid, embedding = self.predict(views[0])
        return StepOutput(masked_loss(prediction, target, index, valid, self.config.loss), {}, embedding)

    def on_train_batch_end(self, progress: float) -> None:
        if self.teacher is not None:
            momentum = cosine_momentum(self.config.momentum, progress, self.config.momentum_end)
            ema_update(self.teacher, self.encoder, momentum)
