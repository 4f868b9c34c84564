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

Options (benchmarks/pairs_variants.py compares them):

- ``loss: sigmoid``: SigLIP (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"): each
  (a_i, b_j) of the batch is its own binary problem, ``-1/N sum_ij log sigmoid(z_ij (t a_i.b_j + b))``,
  ``z`` +1 for true pairs and -1 otherwise, with a learned scale ``t = exp(t')`` (``t'`` starts at log 10:
  ``temperature`` 0.1) and bias ``b`` (starts at ``bias`` = -10). The scale is not capped (the paper caps
  nothing); CLIP's cap at 100 applies to ``infonce``.
- ``interaction: token``: FILIP (Yao et al. 2022, "FILIP: Fine-grained Interactive Language-Image
  Pre-Training"): both sides' token features (text: its tokens, padding excluded; audio_cnn: its time steps;
  transformers: their patches) go through their side's projection, and a pair's similarity is, per
  direction, the mean over one side's tokens of each token's best cosine similarity to the other's tokens;
  each direction replaces the global cosine in its half of the InfoNCE. Simplifications: with ``sigmoid``
  the pair's logit uses the mean of the two directions; with several processes the token-wise similarity
  is taken within each process's batch (no gather); the exported sides embed globally (their pooled
  features, projected), so ``evaluate``'s rows, zero-shot included, use global cosine similarity, not the
  token-wise one (benchmarks/pairs_variants.py also scores zero-shot token-wise); FILIP's
  image augmentation, embedding-size reduction and prompt templates in training are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.pair import PairEncoder, Projected
from selfsup.errors import SelfsupError
from selfsup.losses import clip_loss, filip_loss, sigmoid_pair_loss, token_similarity
from selfsup.losses.cross_modal import sigmoid_loss_from_logits
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

MAX_LOGIT_SCALE = 100.0


class CLIPConfig(MethodConfig):
    dim: int = Field(128, ge=1, description="shared embedding size of the two projections")
    temperature: float | None = Field(
        None, gt=0, description="initial temperature (the logit scale starts at 1/t); 0.07 (CLIP), sigmoid 0.1"
    )
    learn_temperature: bool = True
    loss: Literal["infonce", "sigmoid"] = Field(
        "infonce", description="infonce: CLIP's softmax over the batch; sigmoid: SigLIP's per-pair binary loss"
    )
    bias: float = Field(-10.0, description="sigmoid loss: initial learned logit bias (SigLIP: -10)")
    interaction: Literal["global", "token"] = Field(
        "global", description="global: cosine of pooled embeddings; token: FILIP's token-wise late interaction"
    )
    lock: Literal["auto", "none", "a", "b"] = Field(
        "auto",
        description="keep this side's encoder fixed (b: --pair-data's); auto: pre-training locks the side "
        "that starts from pre-trained weights when the other starts from scratch, else none",
    )


@register_method
class CLIP(Method):
    name = "clip"
    summary = (
        "paired: two encoders, symmetric InfoNCE between the sides of each pair (needs --pair-data); "
        "loss=sigmoid: SigLIP; interaction=token: FILIP's token-wise late interaction"
    )
    paper = (
        "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision; "
        "options: Zhai et al. 2023 (SigLIP), Yao et al. 2022 (FILIP)"
    )
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
        if config.interaction == "token":
            for side in ("a", "b"):
                inner = getattr(encoder, side).encoder
                if not hasattr(inner, "forward_tokens"):
                    raise SelfsupError(
                        f"interaction=token (FILIP) needs token features from both sides, but side {side}'s "
                        f"encoder '{inner.config.get('name')}' yields none; use interaction=global."
                    )
        super().__init__(encoder, config)
        temperature = config.temperature or (0.1 if config.loss == "sigmoid" else 0.07)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=config.learn_temperature)
        # SigLIP's learned bias; none for InfoNCE (a bias cancels in a softmax), so CLIP's state is as before
        self.bias = nn.Parameter(torch.tensor(float(config.bias))) if config.loss == "sigmoid" else None
        if config.lock in ("a", "b"):
            getattr(encoder, config.lock).encoder.requires_grad_(False)

    def backbone(self) -> nn.Module:
        """Both sides' encoders without their projections, which head warm-up trains from the start."""
        sides = (cast(Projected, self.encoder.a), cast(Projected, self.encoder.b))  # projected in __init__
        return nn.ModuleList([side.encoder for side in sides])

    def on_train_batch_end(self, progress: float) -> None:
        """Cap the scale on the parameter itself (as OpenCLIP does): a clamp in the forward pass alone would
        stop its gradient and leave it above the cap for good."""
        if self.config.loss == "infonce":
            with torch.no_grad():
                self.log_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))

    def _through(self, side: str, encode: Callable[[Any], Any]) -> tuple[Projected, Any]:
        """Side's projected encoder and ``encode(its encoder)``: a locked side (LiT) runs frozen, its dropout and
        batch-norm statistics off."""
        projected = getattr(self.encoder, side)
        if self.config.lock != side:
            return projected, encode(projected.encoder)
        projected.encoder.eval()
        with torch.no_grad():
            return projected, encode(projected.encoder)

    def _embed(self, side: str, x: torch.Tensor) -> torch.Tensor:
        projected, h = self._through(side, lambda encoder: encoder(x))
        return projected.projection(h)

    def tokens(self, side: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Side's token features through its projection, ``(B, N, dim)``, and their validity ``(B, N)``."""
        projected, (h, valid) = self._through(side, lambda encoder: encoder.forward_tokens(x))
        return projected.projection(h), valid

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        scale = self.log_scale.exp()
        logs: dict[str, float | torch.Tensor] = {"logit_scale": scale.detach()}
        if self.bias is not None:
            logs["logit_bias"] = self.bias.detach()
        if self.config.interaction == "token":
            (a_tok, a_valid), (b_tok, b_valid) = self.tokens("a", views[0]), self.tokens("b", views[1])
            s_a, s_b = token_similarity(a_tok, a_valid, b_tok, b_valid)
            if self.bias is not None:
                loss = sigmoid_loss_from_logits(scale * (s_a + s_b) / 2 + self.bias)
            else:
                loss = filip_loss(s_a, s_b, scale)
            weights = a_valid.unsqueeze(-1).to(a_tok.dtype)  # the watched embedding: a's mean projected token
            return StepOutput(loss, logs, (a_tok * weights).sum(1) / weights.sum(1).clamp_min(1.0))
        a, b = self._embed("a", views[0]), self._embed("b", views[1])
        if self.bias is not None:
            return StepOutput(sigmoid_pair_loss(a, b, scale, self.bias), logs, a)
        return StepOutput(clip_loss(a, b, scale), logs, a)
