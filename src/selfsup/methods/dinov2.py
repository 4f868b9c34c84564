"""DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"): DINO's image-level
self-distillation with the DINOv2 recipe's additions turned on.

Included: the teacher temperature warms up linearly from 0.04 to 0.07 over the first 30% of training, Sinkhorn-Knopp
centring of the teacher (3 iterations) instead of DINO's running centre, the KoLeo regulariser (weight 0.1) on
the student's features of each global crop, and, for token encoders (vit, patch_transformer, ft_transformer,
spec_transformer), iBOT's masked-patch loss (Zhou et al. 2022; weight ``ibot_weight`` 1.0): half the student's
global crops have 10-50% of their tokens (blockwise; at random for tables) replaced by a learned [MASK] token, and a
patch head of its own, with its own EMA teacher, matches the unmasked teacher's Sinkhorn-centred, sharpened patch
distribution at the masked tokens (the [CLS] loss then also sees the masked crops, as in DINOv2). Other encoders
(small_cnn, mlp, ...) have no tokens to mask: iBOT is silently off for them, and an explicit ``ibot_weight`` > 0
is refused. Not included: LayerScale/stochastic depth, high-resolution adaptation, the large-scale data curation,
and a [CLS] token for the ``vit`` (its embedding, and the [CLS] loss's input, is the mean of its patch tokens); the
heads are DINO's small ones (1024 prototypes by default, DINOv2 uses 65536 or more). Sinkhorn centring of the masked
tokens across processes assumes each process masks the same count. DINOv3's Gram anchoring is off, and available to
token encoders with ``gram_weight`` (and ``gram_start``), as in ``dino``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selfsup.methods.base import register_method
from selfsup.methods.dino import DINO, DINOConfig


class DINOv2Config(DINOConfig):
    teacher_temperature: float = Field(0.07, gt=0, description="teacher temperature after warm-up")
    teacher_temperature_warmup: float = Field(
        0.3, ge=0, le=1, description="fraction of training over which the teacher temperature rises from 0.04"
    )
    koleo_weight: float = Field(0.1, ge=0, description="weight of the KoLeo regulariser")
    centering: Literal["center", "sinkhorn"] = Field("sinkhorn", description="teacher centring")
    ibot_weight: float = Field(
        1.0,
        ge=0,
        description="weight of iBOT's masked-patch loss; token encoders only (silently off for others, where an "
        "explicit value > 0 is refused); 0: off",
    )


@register_method
class DINOv2(DINO):
    name = "dinov2"
    summary = (
        "self-distillation: DINO with DINOv2's teacher-temperature warm-up, Sinkhorn-Knopp centring, KoLeo "
        "regulariser and, for token encoders only, the iBOT masked-patch loss (not applicable to other encoders); "
        "Gram anchoring off, gram_weight turns it on for token encoders"
    )
    paper = "Oquab et al. 2023, DINOv2: Learning Robust Visual Features without Supervision"
    Config = DINOv2Config
    config: DINOv2Config
