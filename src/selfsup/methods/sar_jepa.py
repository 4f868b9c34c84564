"""SAR-JEPA (images): "Predicting Gradient is Better: Exploring Self-Supervised Learning for SAR ATR with a
Joint-Embedding Predictive Architecture" (Li et al. 2024): ``jepa`` with SAR-JEPA's targets.

The targets are hand-crafted, not learned: per token, the multi-scale ratio-of-averages gradient magnitudes of
the input (``losses/gradient_targets.py`` gives the exact definition, read from the authors' repository
``waterdisappear/SAR-JEPA``, ``Pretraining/models_lomar.py``), regressed with the mean squared error; no target
encoder is kept.

Simplifications: the masking and predictor are I-JEPA's (4 target blocks, a context outside them, a narrow
predictor); the repository instead masks 80% of the patches inside 4 random 7x7-patch windows and its encoder
sees mask tokens in place of the masked patches (LoMaR-style local masking). The radii are the repository's
(5, 9, 13, 17 pixels at 16-pixel patches) scaled to the encoder's patch size. Pixel values are clamped at 0
(the log-ratios need positive input; SAR amplitudes are).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfsup.methods.base import register_method
from selfsup.methods.jepa import JEPA, JEPAConfig


class SARJEPAConfig(JEPAConfig):
    target: Literal["ema", "gradient"] = Field("gradient", description="gradient: SAR-JEPA's gradient features")


@register_method
class SARJEPA(JEPA):
    name = "sar_jepa"
    summary = (
        "JEPA for images with SAR-JEPA's targets: predict multi-scale ratio gradient magnitudes of target blocks "
        "from a context (no EMA encoder; I-JEPA's masks, not SAR-JEPA's local windows)"
    )
    paper = "Li et al. 2024, Predicting Gradient is Better (SAR-JEPA)"
    modalities = ("image",)
    Config = SARJEPAConfig
    config: SARJEPAConfig
