"""KoLeo regulariser: Sablayrolles et al. 2019, "Spreading vectors for similarity search"; used by DINOv2."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy regulariser: ``-(1/n) sum_i log(min_{j != i} ||x_i - x_j|| + eps)`` over the
    L2-normalised rows of ``x`` (``(n, d)``, ``n >= 2``). Minimising it pushes every sample away from its nearest
    neighbour, spreading the batch uniformly over the sphere (DINOv2, Oquab et al. 2023, applies it per global crop
    to the student's features with weight 0.1). Computed on the local batch.
    """
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"koleo_loss needs a (n, d) batch with n >= 2, got shape {tuple(x.shape)}")
    x = F.normalize(x, dim=-1, eps=1e-8)
    distances = torch.cdist(x, x) + torch.diag(torch.full((len(x),), float("inf"), device=x.device, dtype=x.dtype))
    return -torch.log(distances.min(dim=1).values + eps).mean()
