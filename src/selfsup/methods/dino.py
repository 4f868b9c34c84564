"""DINO: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers".

Options from DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"): a linear
teacher-temperature warm-up, the KoLeo regulariser on the student's features, and Sinkhorn-Knopp centring in place
of the running centre, and iBOT's masked-patch self-distillation for token encoders (Zhou et al. 2022, "iBOT: Image
BERT Pre-Training with Online Tokenizer": ``ibot_weight``); ``dinov2`` turns them on. From DINOv3 (Siméoni et al.
2025): Gram anchoring of a token encoder's patch similarities to a snapshot of the EMA teacher taken late in training
(``gram_weight``).
"""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenTransformer
from selfsup.errors import SelfsupError
from selfsup.losses import (
    dino_cross_entropy,
    dino_loss,
    gram_loss,
    ibot_patch_loss,
    koleo_loss,
    sinkhorn_knopp,
    update_center,
)
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import DINOHead
from selfsup.methods.masking import ibot_masks
from selfsup.views import ViewSpec


class DINOConfig(MethodConfig):
    prototypes: int = Field(1024, ge=2, description="output dimension K of the DINO head")
    hidden_dim: int = Field(512, ge=1)
    bottleneck_dim: int = Field(128, ge=1)
    student_temperature: float = Field(0.1, gt=0)
    teacher_temperature: float = Field(0.04, gt=0)
    center_momentum: float = Field(0.9, ge=0, le=1)
    momentum: float = Field(0.996, ge=0, le=1, description="teacher EMA momentum at the start; rises to 1")
    warmup_teacher_temperature: float = Field(0.04, gt=0, description="teacher temperature at the start of warm-up")
    teacher_temperature_warmup: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of training over which the teacher temperature rises linearly from "
        "warmup_teacher_temperature to teacher_temperature (DINO/DINOv2: 30 of 100 epochs, 0.3); 0: none. Under "
        "the infinite schedule, which has no end, it stays at warmup_teacher_temperature",
    )
    koleo_weight: float = Field(0.0, ge=0, description="weight of the KoLeo regulariser (DINOv2: 0.1); 0: off")
    centering: Literal["center", "sinkhorn"] = Field(
        "center", description="teacher centring: DINO's running centre, or Sinkhorn-Knopp (DINOv2)"
    )
    sinkhorn_iterations: int = Field(3, ge=1, description="Sinkhorn-Knopp iterations (DINOv2: 3)")
    gram_weight: float = Field(
        0.0, ge=0, description="weight of DINOv3's Gram anchoring of patch similarities (token encoders); 0: off"
    )
    gram_start: float = Field(
        0.5,
        ge=0,
        le=1,
        description="fraction of training at which the EMA teacher's encoder is copied as the Gram teacher and "
        "Gram anchoring starts (DINOv3 applies it in a late refinement phase); the copy is not refreshed",
    )
    ibot_weight: float = Field(
        0.0,
        ge=0,
        description="weight of iBOT's masked-patch loss (token encoders only; DINOv2: 1.0); 0: off. The student's "
        "global crops have some patch tokens replaced by a learned [MASK] token; a patch head matches the "
        "unmasked teacher's patch distribution at those tokens",
    )
    ibot_mask_ratio: tuple[float, float] = Field(
        (0.1, 0.5), description="iBOT: share of a masked crop's tokens masked, drawn uniformly per crop (DINOv2)"
    )
    ibot_mask_probability: float = Field(
        0.5, ge=0, le=1, description="iBOT: share of the global crops that are masked at all (DINOv2: 0.5)"
    )
    ibot_separate_head: bool = Field(
        True, description="iBOT: a patch head (and its EMA teacher) of its own, as DINOv2 trains; else the [CLS] head"
    )

    @field_validator("ibot_mask_ratio")
    @classmethod
    def _mask_ratio_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] < 1:
            raise ValueError(f"expected 0 < low <= high < 1, got {value}")
        return value


def teacher_temperature(config: DINOConfig, progress: float) -> float:
    """The teacher temperature at ``progress`` in [0, 1]: linear from ``warmup_teacher_temperature`` to
    ``teacher_temperature`` over the first ``teacher_temperature_warmup`` of training, then constant."""
    warmup = config.teacher_temperature_warmup
    if warmup <= 0 or progress >= warmup:
        return config.teacher_temperature
    fraction = max(progress, 0.0) / warmup
    return config.warmup_teacher_temperature + fraction * (
        config.teacher_temperature - config.warmup_teacher_temperature
    )


@register_method
class DINO(Method):
    name = "dino"
    summary = "self-distillation: student matches a centred, sharpened EMA teacher across multi-crop views"
    paper = "Caron et al. 2021, Emerging Properties in Self-Supervised Vision Transformers"
    views = ViewSpec(n_global=2, n_local=4, asymmetric=True)
    Config = DINOConfig
    config: DINOConfig
    center: torch.Tensor
    gram_teacher: TokenTransformer
    gram_ready: torch.Tensor
    patch_center: torch.Tensor

    def __init__(self, encoder: Encoder, config: DINOConfig) -> None:
        super().__init__(encoder, config)
        self.head = DINOHead(encoder.embed_dim, config.hidden_dim, config.bottleneck_dim, config.prototypes)
        self.teacher = frozen_copy(nn.Sequential(encoder, self.head))
        self.register_buffer("center", torch.zeros(1, config.prototypes))  # unused under Sinkhorn centring
        self.progress = 0.0  # of training, as of the last optimiser step: drives the temperature warm-up
        if config.gram_weight > 0:
            if not isinstance(encoder, TokenTransformer):
                raise SelfsupError(
                    "gram_weight anchors patch similarities, so it needs a token encoder (vit, patch_transformer, "
                    "ft_transformer, spec_transformer); set gram_weight=0 for this encoder."
                )
            self.gram_teacher = frozen_copy(encoder)  # replaced by the EMA teacher's encoder at gram_start
            self.register_buffer("gram_ready", torch.zeros((), dtype=torch.bool))
        # iBOT: on for token encoders; a default weight (dinov2's) is silently off for other encoders
        self.ibot = config.ibot_weight > 0 and isinstance(encoder, TokenTransformer)
        if config.ibot_weight > 0 and not self.ibot and "ibot_weight" in config.model_fields_set:
            raise SelfsupError(
                "ibot_weight masks patch tokens, so it needs a token encoder (vit, patch_transformer, "
                "ft_transformer, spec_transformer); set ibot_weight=0 for this encoder."
            )
        if self.ibot:
            self.mask_token = nn.Parameter(torch.zeros(encoder.embed_dim))  # DINOv2 starts it at zero
            if config.ibot_separate_head:
                self.patch_head = DINOHead(
                    encoder.embed_dim, config.hidden_dim, config.bottleneck_dim, config.prototypes
                )
                self.patch_teacher = frozen_copy(self.patch_head)
            self.register_buffer("patch_center", torch.zeros(1, config.prototypes))  # unused under Sinkhorn

    def patch_heads(self) -> tuple[nn.Module, nn.Module]:
        """iBOT's (student, EMA teacher) patch heads: their own, or the [CLS] ones (``ibot_separate_head``)."""
        if self.config.ibot_separate_head:
            return self.patch_head, self.patch_teacher
        return self.head, self.teacher[1]

    def ibot_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """iBOT's loss at the ``mask (B, N)`` tokens of the student's masked and the teacher's unmasked content
        tokens ``(B, N, D)``, the teacher centred as the [CLS] outputs are (its own running patch centre, or
        Sinkhorn-Knopp over the masked tokens) and sharpened at ``temperature``."""
        cfg = self.config
        student_head, teacher_head = self.patch_heads()
        logits = student_head(student[mask])
        with torch.no_grad():
            target = teacher_head(teacher[mask])
            if cfg.centering == "sinkhorn":
                probs = sinkhorn_knopp(target, temperature, cfg.sinkhorn_iterations)
            else:
                probs = F.softmax((target - self.patch_center) / temperature, dim=-1)
                self.patch_center = update_center(self.patch_center, [target], cfg.center_momentum)
        return ibot_patch_loss(logits, probs, mask, cfg.student_temperature)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        cfg = self.config
        n_global = self.views.n_global
        globals_ = torch.cat(views[:n_global])
        gram = cfg.gram_weight > 0 and bool(self.gram_ready)
        mask = None
        if self.ibot:  # iBOT: the student sees its global crops with some tokens masked, the teacher all of them
            tokenizer = cast(TokenTransformer, self.encoder).tokenizer
            grid = tokenizer.grid(globals_)
            ratio, share = cfg.ibot_mask_ratio, cfg.ibot_mask_probability
            if int(share * len(globals_)):  # else no crop of this batch is masked
                mask = ibot_masks(len(globals_), grid, tokenizer.ordered, ratio, share, device=globals_.device)
        if gram or self.ibot:  # the token encoder's content tokens too, for Gram anchoring and iBOT
            run = cast(TokenTransformer, self.encoder).run(globals_, mask=mask, mask_token=self._mask_token())
            h = run.pooled
        else:
            h = self.encoder(globals_)
        student = list(self.head(h).chunk(n_global))
        if len(views) > n_global:  # local crops share a size, so one forward serves them all
            student += list(self.head(self.encoder(torch.cat(views[n_global:]))).chunk(len(views) - n_global))
        with torch.no_grad():
            if self.ibot:
                teacher_run = cast(TokenTransformer, self.teacher[0]).run(globals_)
                teacher = list(self.teacher[1](teacher_run.pooled).chunk(n_global))
            else:
                teacher = list(self.teacher(globals_).chunk(n_global))
        temperature = teacher_temperature(cfg, self.progress)
        logs: dict[str, float | torch.Tensor] = {}
        if cfg.centering == "sinkhorn":
            probs = sinkhorn_knopp(torch.cat(teacher), temperature, cfg.sinkhorn_iterations).chunk(n_global)
            loss = dino_cross_entropy(student, list(probs), cfg.student_temperature)
        else:
            loss = dino_loss(student, teacher, self.center, cfg.student_temperature, temperature)
            self.center = update_center(self.center, teacher, cfg.center_momentum)
        if cfg.koleo_weight > 0:  # DINOv2: on the student's features of each global crop
            koleo = torch.stack([koleo_loss(crop) for crop in h.chunk(n_global)]).sum()
            logs["koleo"] = koleo.detach()
            loss = loss + cfg.koleo_weight * koleo
        if gram:
            with torch.no_grad():
                target = self.gram_teacher.run(globals_).tokens
            anchoring = gram_loss(run.tokens, target, run.valid)
            logs["gram"] = anchoring.detach()
            loss = loss + cfg.gram_weight * anchoring
        if mask is not None:
            patch = self.ibot_loss(run.tokens, teacher_run.tokens, mask & run.valid, temperature)
            logs["ibot"] = patch.detach()
            loss = loss + cfg.ibot_weight * patch
        elif self.ibot:  # no crop masked this step: the mask token and patch head join at zero (DDP wants every
            # parameter to get a gradient each step)
            unused = [self.mask_token, *self.patch_heads()[0].parameters()]
            loss = loss + 0.0 * sum(p.sum() for p in unused)
        if cfg.teacher_temperature_warmup > 0:
            logs["teacher_temperature"] = temperature
        return StepOutput(loss, logs, h[: len(views[0])])

    def _mask_token(self) -> torch.Tensor | None:
        return self.mask_token if self.ibot else None

    def on_train_batch_end(self, progress: float) -> None:
        self.progress = progress
        if self.config.gram_weight > 0 and progress >= self.config.gram_start and not self.gram_ready:
            self.gram_teacher.load_state_dict(self.teacher[0].state_dict())  # DINOv3's Gram teacher: the EMA one
            self.gram_ready.fill_(True)
        momentum = cosine_momentum(self.config.momentum, progress)
        ema_update(self.teacher, nn.Sequential(self.encoder, self.head), momentum)
        if self.ibot and self.config.ibot_separate_head:
            ema_update(self.patch_teacher, self.patch_head, momentum)
