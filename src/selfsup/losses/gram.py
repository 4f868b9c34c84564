"""Gram anchoring: Siméoni et al. 2025, "DINOv3"."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_loss(student: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """DINOv3's Gram anchoring loss ``||X_S X_S^T - X_G X_G^T||_F^2`` between the patch-similarity (Gram) matrices
    of the student's tokens and a Gram teacher's, each token L2-normalised: ``student`` and ``target`` are
    ``(B, N, D)`` (the target is detached here). Averaged over the entries, as DINOv3's code does (an MSE): the
    squared Frobenius norm over the valid token pairs of each sample (``valid (B, N)``, all when None), divided
    by their count, averaged over the batch.
    """
    if student.shape != target.shape or student.dim() != 3:
        raise ValueError(f"gram_loss needs two (B, N, D) tensors of one shape, got {student.shape} and {target.shape}")
    s = F.normalize(student, dim=-1)
    g = F.normalize(target.detach(), dim=-1)
    diff = (s @ s.transpose(1, 2) - g @ g.transpose(1, 2)).square()  # (B, N, N)
    if valid is None:
        return diff.mean()
    pairs = (valid.unsqueeze(2) & valid.unsqueeze(1)).to(diff.dtype)
    return ((diff * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp_min(1.0)).mean()
