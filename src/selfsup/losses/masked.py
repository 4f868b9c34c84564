"""Masked-modelling targets and the loss over masked tokens only.

Targets are computed from a tokenizer's ``patches (B, N, *shape)``, whose last ``spatial_dims``
dims are space or time (2 for image patches, 1 for series patches, 0 for table columns):

- ``pixels``: the normalised input values of the token (MAE, He et al. 2022);
- ``frequency``: ``log(1 + |FFT|)`` of the token over its spatial dims, per channel, the amplitude
  spectrum that Masked Frequency Modeling (Xie et al. 2023) predicts; a table column has no spatial
  extent, so there it reduces to ``log(1 + |value|)``;
- ``hog``: histograms of gradient orientations (MaskFeat, Wei et al. 2022): 9 unsigned-orientation
  bins weighted by gradient magnitude, per channel, L2-normalised; on 1-D patches the orientation of
  the slope ``atan(dx)``. Tables have no gradients: refused. One histogram per patch and channel
  (MaskFeat: 8 x 8-pixel cells over the whole image).

``normalize`` standardises each token's target over its own values (MAE's ``norm_pix_loss``); it
applies only to tokens with spatial extent (a single table value would normalise to 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfsup.errors import SelfsupError

TARGETS = ("pixels", "frequency", "hog")
HOG_BINS = 9


def _hog(patches: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    if spatial_dims == 2:
        gy = F.pad(patches[..., 1:, :] - patches[..., :-1, :], (0, 0, 0, 1))
        gx = F.pad(patches[..., :, 1:] - patches[..., :, :-1], (0, 1))
        angle = torch.atan2(gy, gx).remainder(math.pi)  # unsigned orientation in [0, pi)
        magnitude = torch.sqrt(gx.square() + gy.square())
    else:
        dx = F.pad(patches[..., 1:] - patches[..., :-1], (0, 1))
        angle = torch.atan(dx) + math.pi / 2  # slope orientation in (0, pi)
        magnitude = dx.abs()
    bins = (angle / math.pi * HOG_BINS).long().clamp(0, HOG_BINS - 1).flatten(-spatial_dims)
    histogram = torch.zeros(*bins.shape[:-1], HOG_BINS, dtype=patches.dtype, device=patches.device)
    histogram.scatter_add_(-1, bins, magnitude.flatten(-spatial_dims))
    return F.normalize(histogram, dim=-1)


def token_targets(
    patches: torch.Tensor, spatial_dims: int, kind: str = "pixels", normalize: bool = False
) -> torch.Tensor:
    """``(B, N, *shape)`` token contents -> ``(B, N, P)`` regression targets (see the module docstring)."""
    if kind not in TARGETS:
        raise SelfsupError(f"unknown masked-modelling target '{kind}'; choose from {', '.join(TARGETS)}.")
    if kind == "pixels":
        target = patches
    elif kind == "frequency":
        dims = tuple(range(patches.ndim - spatial_dims, patches.ndim))
        target = torch.log1p((torch.fft.rfftn(patches, dim=dims) if dims else patches).abs())
    else:
        if spatial_dims == 0:
            raise SelfsupError(
                "the 'hog' target needs tokens with spatial extent (image or series patches); "
                "table columns have none: use target=pixels or frequency."
            )
        target = _hog(patches, spatial_dims)
    target = target.flatten(2).float()
    if normalize and spatial_dims > 0:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True, unbiased=False)
        target = (target - mean) / (var + 1e-6).sqrt()
    return target


def masked_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    masked: torch.Tensor,
    valid: torch.Tensor | None = None,
    kind: str = "l2",
    per_token: str = "mean",
) -> torch.Tensor:
    """Mean error of ``prediction (B, M, P)`` against ``target (B, N, P)`` at the masked tokens ``(B, M)``.

    Only the masked tokens' targets are read, so the visible tokens cannot change the loss; tokens
    that are not ``valid`` (series padding) are left out. ``kind``: ``l2`` (squared error, MAE,
    data2vec 2.0, I-JEPA) or ``l1`` (ECG-JEPA). Each token's error is the ``mean`` over its ``P``
    values, or their ``sum`` (a table column: one value or one one-hot code padded to ``P`` slots,
    so a mean would shrink a numeric column's error by ``P``).
    """
    index = masked.unsqueeze(-1).expand(-1, -1, target.shape[-1])
    chosen = target.gather(1, index)
    error = (prediction - chosen).abs() if kind == "l1" else (prediction - chosen).square()
    token_error = error.sum(-1) if per_token == "sum" else error.mean(-1)
    weight = torch.ones_like(token_error) if valid is None else valid.gather(1, masked).to(token_error.dtype)
    return (token_error * weight).sum() / weight.sum().clamp_min(1.0)
