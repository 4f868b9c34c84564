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

    ``light`` asks for geometric views only: images get a random resized crop and a horizontal flip, no colour
    jitter, greyscale, blur or solarize (MAE's and CropMAE's augmentation); with ``original`` an image batch is
    replaced by such a crop of each image, while modalities without a content-keeping crop (series, audio, tables)
    give the batch itself. ``nested`` makes every global view after the first a full-size crop of the first view
    (CropMAE's global-to-local crops, at ``local_crop_scale`` of its area; images only).
    """

    n_global: int = 2
    n_local: int = 0
    asymmetric: bool = False
    original: bool = False
    light: bool = False
    nested: bool = False
