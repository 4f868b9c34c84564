from __future__ import annotations

import math

import torch

from selfsup.losses import barlow_twins_loss, vicreg_loss

EPS = 1e-5  # BatchNorm-style eps of the Barlow Twins standardisation

# Columns of a Sylvester Hadamard matrix (minus the all-ones column): mean 0, biased variance 1,
# mutually orthogonal -> perfectly standardised and decorrelated dimensions.
_H2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
HADAMARD = torch.kron(torch.kron(_H2, _H2), _H2)[:, 1:]  # (8, 7)


def test_barlow_twins_perfectly_correlated_dims_hand_computed() -> None:
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    # each column: mean 0, biased var 1 -> standardised = z / sqrt(1 + eps);
    # every C_ij = (1*1 + (-1)(-1)) / 2 / (1 + eps) = 1 / (1 + eps)
    c = 1 / (1 + EPS)
    lam = 5e-3
    expected = 2 * (1 - c) ** 2 + lam * 2 * c**2
    assert math.isclose(barlow_twins_loss(z, z.clone(), lambda_offdiag=lam).item(), expected, rel_tol=1e-5)


def test_barlow_twins_zero_for_decorrelated_identical_views() -> None:
    z = HADAMARD
    # C = I / (1 + eps) -> loss = 7 * (eps / (1 + eps))^2 ~ 7e-10
    loss = barlow_twins_loss(z, z.clone())
    assert loss.item() < 1e-8
    # invariant to a per-dimension affine map (standardisation inside)
    scaled = z * torch.arange(1.0, 8.0) + 3.0
    assert barlow_twins_loss(scaled, z).item() < 1e-8


def test_barlow_twins_anticorrelated_views_hand_computed() -> None:
    z = HADAMARD
    # C = -I / (1 + eps) -> loss = 7 * (1 + 1 / (1 + eps))^2 ~ 28
    expected = 7 * (1 + 1 / (1 + EPS)) ** 2
    assert math.isclose(barlow_twins_loss(z, -z).item(), expected, rel_tol=1e-5)


def test_vicreg_hand_computed() -> None:
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    z2 = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    # invariance: mean((z1 - z2)^2) = (0 + 4 + 0 + 4) / 4 = 2
    # variance: unbiased var = (1 + 1) / (2 - 1) = 2 per dim, std = sqrt(2.0001) > 1 -> 0
    # covariance: cov1 = [[2, 2], [2, 2]], cov2 = [[2, -2], [-2, 2]];
    #   off-diagonal squares sum to 8 per branch, / D = 2 -> 4 + 4 = 8
    # total = 25 * 2 + 25 * 0 + 1 * 8 = 58
    assert math.isclose(vicreg_loss(z1, z2).item(), 58.0, rel_tol=1e-6)
    assert math.isclose(vicreg_loss(z1, z2, sim_weight=1.0, cov_weight=0.5).item(), 6.0, rel_tol=1e-6)


def test_vicreg_collapsed_embeddings_pay_full_variance_penalty() -> None:
    z = torch.ones(4, 3)
    # var = 0 -> std = sqrt(1e-4) = 0.01 -> relu(1 - 0.01) = 0.99 per dim;
    # 0.99 / 2 + 0.99 / 2 = 0.99; invariance 0, covariance 0 -> 25 * 0.99
    assert math.isclose(vicreg_loss(z, z.clone()).item(), 25 * 0.99, rel_tol=1e-6)


def test_vicreg_variance_term_zero_when_std_at_least_one() -> None:
    z = 2 * HADAMARD  # decorrelated, unbiased std = 2 * sqrt(8/7) > 1
    # invariance 0 (identical), covariance 0 (orthogonal columns), variance 0
    assert vicreg_loss(z, z.clone()).item() < 1e-10
    assert vicreg_loss(z, z.clone(), var_weight=100.0).item() < 1e-10
