"""DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"): DINO's image-level
self-distillation with the DINOv2 recipe's additions turned on.

Included: the teacher temperature warms up linearly from 0.04 to 0.07 over the first 30% of training, Sinkhorn-Knopp
centring of the teacher (3 iterations) instead of DINO's running centre, and the KoLeo regulariser (weight 0.1) on
the student's features of each global crop. Not included: the iBOT masked-patch loss (and its separate patch head),
LayerScale/stochastic depth, high-resolution adaptation and the large-scale data curation; the head is DINO's small
one (1024 prototypes by default, DINOv2 uses 65536). DINOv3's Gram anchoring is off, and available to token encoders
with ``gram_weight`` (and ``gram_start``), as in ``dino``.
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


@register_method
class DINOv2(DINO):
    name = "dinov2"
    summary = (
        "self-distillation: DINO with DINOv2's teacher-temperature warm-up, Sinkhorn-Knopp centring and KoLeo "
        "regulariser (no iBOT patch loss; Gram anchoring off, gram_weight turns it on for token encoders)"
    )
    paper = "Oquab et al. 2023, DINOv2: Learning Robust Visual Features without Supervision"
    Config = DINOv2Config
    config: DINOv2Config
