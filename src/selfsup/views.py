"""The contract between methods and modalities: which views a method asks for (methods and modalities never
import each other; both import this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSpec:
    """Which views a method wants from the modality.

    ``n_global`` full-size views; ``n_local`` small crops (multi-crop, DINO); ``asymmetric`` asks for
    the BYOL recipe where the two global views get different blur/solarize probabilities; ``original``
    puts the unaugmented batch first (SCARF and VIME compare a row with its corrupted copy).
    """

    n_global: int = 2
    n_local: int = 0
    asymmetric: bool = False
    original: bool = False
