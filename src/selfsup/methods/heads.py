"""Projection / prediction heads shared by the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a final linear (optionally followed by an affine-free BatchNorm).

    The SimCLR/BYOL/SimSiam/Barlow Twins/VICReg projectors and predictors are all of this shape.
    """
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    blocks.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*blocks)


class DINOHead(nn.Module):
    """DINO's head (Caron et al. 2021): MLP -> L2-normalised bottleneck -> weight-normalised prototypes."""

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, prototypes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, prototypes, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1.0)  # weight-norm gain fixed to 1
        self.last.parametrizations.weight.original0.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))
