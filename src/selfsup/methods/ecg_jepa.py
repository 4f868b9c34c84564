"""ECG-JEPA (series): "Self-Supervised Pre-Training with Joint-Embedding Predictive Architecture Boosts ECG
Classification Performance" (Weimann and Conrad 2024): ``jepa`` with ECG-JEPA's masking, register token and loss.

From the authors' repository (``kweimann/ECG-JEPA``: ``data/masks.py``, ``models/JEPA.py``,
``models/vision_transformer.py``, ``configs/pretrain/ViTS_all.yaml``): keep a random 15-25% of the time patches
(``ceil``); mask the rest as runs of at least 10 patches along time, the same for every lead (a patch embeds all
leads); the predictor predicts every masked patch from the kept ones; the loss is the mean absolute error to the
target encoder's tokens; one learned register token is prepended in both encoders and dropped from their outputs;
the EMA momentum goes from 0.998 to 0.9995.

Simplifications: the momentum follows a cosine between the two (the repository's schedule iterator was not
read); the target tokens are layer-normed as in I-JEPA (the repository's target encoder already ends in a
LayerNorm, so this only drops its affine part); the predictor is jepa's small one (width 64, depth 2; the
repository's ViT-S setting is width 192, depth 8: set predictor_dim/predictor_depth); the encoder is our
patch_transformer (its max-pooled embedding, its patch size), not the repository's ViT; ``min_block`` is 10
patches as in the repository, so on series of few patches the mask is one or two runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfsup.methods.base import register_method
from selfsup.methods.jepa import JEPA, JEPAConfig


class ECGJEPAConfig(JEPAConfig):
    masking: Literal["auto", "block", "random", "feature_subset", "tjepa", "ecg_jepa"] = "ecg_jepa"
    context_scale: tuple[float, float] = Field((0.15, 0.25), description="share of the patches kept as context")
    loss: Literal["l2", "l1"] = "l1"
    registers: int = Field(1, ge=0, description="learned register tokens added to the encoder")
    momentum: float = Field(0.998, ge=0, le=1, description="EMA momentum at the start")
    momentum_end: float = Field(0.9995, ge=0, le=1, description="EMA momentum at the end")


@register_method
class ECGJEPA(JEPA):
    name = "ecg_jepa"
    summary = (
        "JEPA for series: predict the EMA encoder's tokens of every masked patch (runs of >= 10 patches along "
        "time, 75-85% masked) from the kept ones, L1 loss, one register token (our patch_transformer and "
        "small predictor; momentum 0.998 to 0.9995 along a cosine)"
    )
    paper = "Weimann and Conrad 2024, ECG-JEPA (Joint-Embedding Predictive Architecture for ECG classification)"
    modalities = ("timeseries",)
    Config = ECGJEPAConfig
    config: ECGJEPAConfig
