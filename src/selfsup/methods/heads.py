"""Projection / prediction heads shared by the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders.tokens import TransformerBlock, key_mask


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
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, prototypes, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1.0)  # weight-norm gain fixed to 1
        self.last.parametrizations.weight.original0.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


class TokenPredictor(nn.Module):
    """A narrow transformer that predicts the tokens at target positions from context tokens: MAE's
    decoder (He et al. 2022) and I-JEPA's predictor (Assran et al. 2023).

    Context tokens are projected to ``dim``; each target position gets a shared learned mask token.
    Both get the encoder tokenizer's positional part, projected to ``dim``. After ``depth`` blocks the
    target queries are read out to ``out_dim``. Padding context tokens (``context_valid`` False) are
    never attended to.
    """

    def __init__(self, encoder_dim: int, dim: int, depth: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.position = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(
        self,
        context: torch.Tensor,
        context_index: torch.Tensor,
        target_index: torch.Tensor,
        positions: torch.Tensor,
        context_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``context (B, K, encoder_dim)`` at ``context_index (B, K)``; ``target_index (B, M)``;
        ``positions (N, encoder_dim)`` -> predictions ``(B, M, out_dim)``."""
        position = self.position(positions.to(context.dtype))
        queries = self.mask_token + position[target_index]
        z = torch.cat([self.embed(context) + position[context_index], queries], dim=1)
        allowed = None
        if context_valid is not None and not bool(context_valid.all()):
            keys = torch.cat([context_valid, context_valid.new_ones(target_index.shape)], dim=1)
            allowed = key_mask(keys)
        for block in self.blocks:
            z = block(z, allowed)
        return self.head(self.norm(z[:, context.shape[1] :]))
