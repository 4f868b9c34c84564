"""CLIP: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision".

Two encoders, one per side of a pair (an audio clip and its caption, an image and its text), each get a
bias-free linear projection to a shared ``dim``-dimensional space; the symmetric InfoNCE over the batch's
cosine similarities, times a learned scale ``exp(t)`` (initialised at 1 / ``temperature``, capped at 100
as in the paper), pulls each pair together and pushes it from the batch's other pairs. ``lock`` keeps one
side's encoder fixed and trains its projection only: LiT (Zhai et al. 2022, "LiT: Zero-Shot Transfer with
Locked-image text Tuning"), the usual choice when that side is already a good pre-trained model; by default
(``auto``) ``pretrain`` locks the side that starts pre-trained (MiniLM, or an ``--init``) when the other starts
from scratch: with both trained at CLIP's learning rate the pre-trained text side is wrecked
(benchmarks/pairs.py). Views: one
per side, from each side's own modality. The projections are part of the exported sides, so their
embeddings lie in the shared space and ``evaluate`` can classify zero-shot with label prompts.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.pair import PairEncoder, Projected
from selfsup.errors import SelfsupError
from selfsup.losses import clip_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

MAX_LOGIT_SCALE = 100.0


class CLIPConfig(MethodConfig):
    dim: int = Field(128, ge=1, description="shared embedding size of the two projections")
    temperature: float = Field(0.07, gt=0, description="initial temperature (the logit scale starts at 1/t)")
    learn_temperature: bool = True
    lock: Literal["auto", "none", "a", "b"] = Field(
        "auto",
        description="keep this side's encoder fixed (b: --pair-data's); auto: pre-training locks the side "
        "that starts from pre-trained weights when the other starts from scratch, else none",
    )


@register_method
class CLIP(Method):
    name = "clip"
    summary = "paired: two encoders, symmetric InfoNCE between the sides of each pair (needs --pair-data)"
    paper = "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision"
    views = ViewSpec(n_global=1)  # one view of each side
    paired = True
    default_lr = 5e-4
    Config = CLIPConfig
    config: CLIPConfig
    encoder: PairEncoder

    def __init__(self, encoder: Encoder, config: CLIPConfig) -> None:
        if not isinstance(encoder, PairEncoder):
            raise SelfsupError(
                "method 'clip' trains two encoders on paired data: give the second side with "
                "--pair-data (its sample ids must match --data's)."
            )
        for side in ("a", "b"):  # a side exported by an earlier paired run keeps its projection
            inner = getattr(encoder, side)
            if not isinstance(inner, Projected):
                setattr(encoder, side, Projected(inner, config.dim))
            elif inner.embed_dim != config.dim:
                raise SelfsupError(
                    f"side {side} already projects to {inner.embed_dim} dimensions; pass "
                    f"--method-arg dim={inner.embed_dim}."
                )
        super().__init__(encoder, config)
        scale = torch.tensor(math.log(1 / config.temperature))
        self.log_scale = nn.Parameter(scale, requires_grad=config.learn_temperature)
        if config.lock in ("a", "b"):
            getattr(encoder, config.lock).encoder.requires_grad_(False)

    def backbone(self) -> nn.Module:
        """Both sides' encoders without their projections, which head warm-up trains from the start."""
        sides = (cast(Projected, self.encoder.a), cast(Projected, self.encoder.b))  # projected in __init__
        return nn.ModuleList([side.encoder for side in sides])

    def on_train_batch_end(self, progress: float) -> None:
        """Cap the scale on the parameter itself (as OpenCLIP does): a clamp in the forward pass alone would
        stop its gradient and leave it above the cap for good."""
        with torch.no_grad():
            self.log_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))

    def _embed(self, side: str, x: torch.Tensor) -> torch.Tensor:
        projected = getattr(self.encoder, side)
        if self.config.lock != side:
            return projected(x)
        projected.encoder.eval()  # a locked side keeps its dropout and batch-norm statistics off
        with torch.no_grad():
            h = projected.encoder(x)
        return projected.projection(h)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        a, b = self._embed("a", views[0]), self._embed("b", views[1])
        scale = self.log_scale.exp()
        return StepOutput(clip_loss(a, b, scale), {"logit_scale": scale.detach()}, a)
