"""Masked Frequency Modeling: Xie et al. 2023, "Masked Frequency Modeling for Self-Supervised Visual
Pre-Training", in the masked-token form: MAE's pipeline with the hidden tokens' amplitude spectrum as
the target (``log(1 + |FFT|)`` over each patch, per channel; see ``losses/masked.py``).

The paper masks frequency bands of the whole image instead of tokens; predicting a token's spectrum
keeps one masking mechanism for every modality. On tables a token is one value, so the target is
``log(1 + |value|)``: the method runs there but is meant for images and series. Views are MAE's (images:
a random resized crop and flip; other data as it is).
"""

from __future__ import annotations

from typing import Literal

from selfsup.methods.base import register_method
from selfsup.methods.mae import MAE, MAEConfig


class MFMConfig(MAEConfig):
    target: Literal["pixels", "frequency", "hog"] = "frequency"


@register_method
class MFM(MAE):
    name = "mfm"
    summary = "masked frequency modelling: predict the Fourier amplitude of hidden tokens (any token encoder)"
    paper = "Xie et al. 2023, Masked Frequency Modeling for Self-Supervised Visual Pre-Training"
    Config = MFMConfig
    config: MFMConfig
