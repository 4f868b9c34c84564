"""selfsup.losses: pure self-supervised loss functions (contrastive, bootstrap, redundancy)."""

from __future__ import annotations

from selfsup.losses.bootstrap import (
    dino_cross_entropy,
    dino_loss,
    ibot_patch_loss,
    negative_cosine_similarity,
    sinkhorn_knopp,
    update_center,
)
from selfsup.losses.contrastive import clip_loss, info_nce_loss, nt_xent_loss, simcse_loss
from selfsup.losses.cross_modal import filip_loss, sigmoid_pair_loss, token_similarity
from selfsup.losses.gram import gram_loss
from selfsup.losses.koleo import koleo_loss
from selfsup.losses.redundancy import barlow_twins_loss, vicreg_loss

__all__ = [
    "barlow_twins_loss",
    "clip_loss",
    "dino_cross_entropy",
    "dino_loss",
    "filip_loss",
    "gram_loss",
    "ibot_patch_loss",
    "info_nce_loss",
    "koleo_loss",
    "negative_cosine_similarity",
    "nt_xent_loss",
    "sigmoid_pair_loss",
    "simcse_loss",
    "sinkhorn_knopp",
    "token_similarity",
    "update_center",
    "vicreg_loss",
]
