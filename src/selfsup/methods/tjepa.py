"""T-JEPA (tables): "T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data" (Thimonier et al.
2025): ``jepa`` with T-JEPA's masking and regularisation tokens turned on.

From the authors' repository (``jose-melo/t-jepa``: ``src/mask.py``, ``src/encoder.py``, ``src/configs.py``):
the context is a random 20-40% of the features, each of 4 targets a random 20-40% of the features outside the
context (targets may overlap each other); the target encoder is an EMA (0.996 to 1); the predictor a 2-layer
transformer of width 64 with 4 heads; the loss the mean squared error. The regularisation tokens are learned
[CLS]-like tokens (``n_cls_tokens``) in the encoder's sequence: here ``registers`` learned tokens join both
encoders' sequences next to ft_transformer's own [CLS], are never masked, and leave the outputs.

Simplifications and unverified readings: the repository's default is ``n_cls_tokens=1`` counting its only
[CLS]-like token, which ft_transformer already has, so ``registers=1`` (2 such tokens in all) is this preset's
choice, not a verified paper setting; whether the repository's feature masks can also drop a regularisation
token was not verified (here they never are). Its encoder (post-norm, ReLU, feature-type embeddings) is not
copied: the encoder is ours (ft_transformer), and so are the optimiser and schedules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfsup.methods.base import register_method
from selfsup.methods.jepa import JEPA, JEPAConfig


class TJEPAConfig(JEPAConfig):
    masking: Literal["auto", "block", "random", "feature_subset", "tjepa", "ecg_jepa"] = "tjepa"
    target_scale: tuple[float, float] = Field((0.2, 0.4), description="share of the features in each target")
    context_scale: tuple[float, float] = Field((0.2, 0.4), description="share of the features in the context")
    registers: int = Field(1, ge=0, description="regularisation tokens added next to the encoder's [CLS]")


@register_method
class TJEPA(JEPA):
    name = "tjepa"
    summary = (
        "JEPA for tables: predict the EMA encoder's tokens of 4 feature subsets from a 20-40% context subset, "
        "with a learned regularisation token in the sequence (the count, 1 besides [CLS], is unverified; "
        "our ft_transformer, not T-JEPA's encoder)"
    )
    paper = "Thimonier et al. 2025, T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data"
    modalities = ("tabular",)
    Config = TJEPAConfig
    config: TJEPAConfig
