"""SAR-JEPA's targets: multi-scale ratio-of-averages gradient magnitudes, patchified per token.

Li et al. 2024, "Predicting Gradient is Better: Exploring Self-Supervised Learning for SAR ATR with a
Joint-Embedding Predictive Architecture"; definition read from the authors' repository
(``waterdisappear/SAR-JEPA``, ``Pretraining/models_lomar.py``, class ``GF``). For a radius ``r``, on each
channel of the image reflect-padded by ``r`` plus ``offset`` (1e-2: the ratios need positive values):

- ``L``, ``R``: sums over the ``(2r+1) x (2r+1)`` window's left ``r+1`` columns and right ``r+1`` columns
  (both hold the centre column); ``T``, ``B``: its top and bottom ``r+1`` rows;
- ``g_x = log(L / R)``, ``g_y = log(T / B)`` (a ratio, not a difference: robust to multiplicative speckle);
- the feature is the magnitude ``sqrt(g_x^2 + g_y^2)``, one value per pixel.

The maps of every radius are cut into the encoder's ``p x p`` patches and concatenated per token:
``(B, N, S * C * p * p)`` for ``S`` radii (channel-major within a radius, row-major pixels). The repository
uses radii 5, 9, 13, 17 on 224-pixel images with 16-pixel patches; ``paper_radii`` scales them to a patch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.errors import SelfsupError

PAPER_RADII = (5, 9, 13, 17)  # at patch size 16
PAPER_PATCH = 16


def paper_radii(patch_size: int) -> tuple[int, ...]:
    """SAR-JEPA's radii scaled to ``patch_size`` (``floor(r * p / 16 + 0.5)``, at least 1, repeats dropped)."""
    scaled = (max(1, int(r * patch_size / PAPER_PATCH + 0.5)) for r in PAPER_RADII)
    return tuple(dict.fromkeys(scaled))


def ratio_gradient(x: torch.Tensor, radius: int, offset: float = 1e-2) -> torch.Tensor:
    """The gradient magnitude map ``(B, C, H, W)`` of ``x (B, C, H, W)`` at one radius (module docstring)."""
    if radius >= min(x.shape[-2:]):
        raise SelfsupError(
            f"gradient radius {radius} needs images larger than {radius} pixels a side, got {tuple(x.shape[-2:])}; "
            "give smaller gradient_radii."
        )
    chans, size = x.shape[1], 2 * radius + 1
    padded = F.pad(x.float(), (radius,) * 4, mode="reflect") + offset
    half = torch.zeros(size, size, device=x.device)
    half[:, : radius + 1] = 1.0  # left columns; flips give right, transposes top and bottom
    kernels = torch.stack([half, half.flip(1), half.t(), half.t().flip(0)]).unsqueeze(1)  # (4, 1, k, k)
    sums = F.conv2d(padded.flatten(0, 1).unsqueeze(1), kernels)  # (B*C, 4, H, W)
    gx = torch.log(sums[:, 0] / sums[:, 1])
    gy = torch.log(sums[:, 2] / sums[:, 3])
    return torch.sqrt(gx.square() + gy.square()).view(x.shape[0], chans, *x.shape[-2:])


def gradient_targets(x: torch.Tensor, patch_size: int, radii: tuple[int, ...], offset: float = 1e-2) -> torch.Tensor:
    """``(B, N, S * C * p * p)`` per-token multi-scale gradient features of images ``x (B, C, H, W)``."""
    b, c, h, w = x.shape
    p = patch_size
    if h % p or w % p:
        raise SelfsupError(f"images of {h}x{w} pixels do not split into {p}-pixel patches.")
    parts = []
    for radius in radii:
        g = ratio_gradient(x, radius, offset)
        parts.append(g.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), -1))
    return torch.cat(parts, dim=-1)
