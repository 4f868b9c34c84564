"""Redundancy-reduction losses: Barlow Twins and VICReg.

With ``gather=True`` the batch statistics are computed over the global batch, so every rank
computes the same value and ``mean_r L_r == L_full``. Because
:func:`selfsup.distributed.gather_with_grad` sums every rank's gradient into the owner's slice,
each rank's gradient on its local inputs is ``W * dL_full/dz_r`` and DDP's average over the
``W`` ranks is exactly the full-batch gradient, so no extra scaling is needed. (A gather whose
backward only keeps the local rank's copy would give ``1/W`` of it instead.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.distributed import gather_with_grad


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m[~torch.eye(m.shape[0], dtype=torch.bool, device=m.device)]


def _standardize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-dimension (x - mean) / sqrt(biased var + eps), i.e. BatchNorm without affine."""
    return (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + eps)


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 5e-3, gather: bool = True
) -> torch.Tensor:
    """Barlow Twins loss (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via
    Redundancy Reduction").

    Each dimension is standardised over the (gathered) batch like a BatchNorm without affine
    (biased variance, eps 1e-5); ``C = z1n.T @ z2n / N`` and the loss is
    ``sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2``. Distributed: every rank
    returns the same global loss and DDP's averaged gradient equals the full-batch gradient
    (see the module docstring).
    """
    if gather:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    n = z1.shape[0]
    z1n, z2n = _standardize(z1), _standardize(z2)
    c = z1n.T @ z2n / n
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    off_diag = _off_diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag


def _std_and_cov_terms(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape
    x = x - x.mean(dim=0)
    std = torch.sqrt(x.var(dim=0) + 1e-4)  # unbiased, as in the official code
    cov = x.T @ x / (n - 1)
    return F.relu(1 - std).mean(), _off_diagonal(cov).pow(2).sum() / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    gather: bool = True,
) -> torch.Tensor:
    """VICReg loss (Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance
    Regularization for Self-Supervised Learning").

    invariance = MSE(z1, z2) on the local batch (its mean over equal-sized ranks is the global
    MSE); variance = ``mean(relu(1 - std_1))/2 + mean(relu(1 - std_2))/2`` with
    ``std = sqrt(var + 1e-4)``; covariance = sum of squared off-diagonal covariances / D, summed
    over both branches. Variance and covariance use the gathered global batch, as the official
    code does. Total = ``sim_weight*inv + var_weight*var + cov_weight*cov``.
    """
    invariance = F.mse_loss(z1, z2)
    if gather:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    std1, cov1 = _std_and_cov_terms(z1)
    std2, cov2 = _std_and_cov_terms(z2)
    variance = std1 / 2 + std2 / 2
    covariance = cov1 + cov2
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance
