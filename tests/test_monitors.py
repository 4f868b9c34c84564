"""Label-free monitors of a batch of embeddings against values known by construction."""

from __future__ import annotations

import math

import torch

from selfsup.monitors import alignment, embedding_spread, rankme, uniformity
from selfsup.training.callbacks import COLLAPSE_SPREAD


def test_rankme() -> None:
    assert math.isclose(rankme(torch.eye(8)), 8.0, rel_tol=1e-4)  # 8 equal singular values
    line = torch.randn(100, 1) * torch.randn(1, 16)  # rank 1: every embedding on one line
    assert math.isclose(rankme(line), 1.0, rel_tol=1e-3)
    two = torch.cat([torch.eye(2) * 3, torch.zeros(2, 6)], dim=1)  # two equal directions
    assert math.isclose(rankme(two), 2.0, rel_tol=1e-4)


def test_alignment_and_uniformity() -> None:
    z = torch.randn(50, 8)
    assert alignment(z, 2 * z) == 0.0  # same directions
    assert math.isclose(alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])), 4.0)
    # two antipodal points: one pair at squared distance 4 -> log exp(-8) = -8
    assert math.isclose(uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), -8.0, rel_tol=1e-6)
    assert math.isclose(uniformity(torch.ones(5, 3)), 0.0, abs_tol=1e-6)  # all one point: the worst, 0


def test_embedding_spread() -> None:
    assert embedding_spread(torch.ones(16, 8)) == 0.0  # every row the same direction
    assert embedding_spread(torch.randn(10, 4) * 1e-3 + torch.tensor([1.0, 0, 0, 0])) < COLLAPSE_SPREAD
    torch.manual_seed(0)
    assert math.isclose(embedding_spread(torch.randn(4096, 32)), 1.0, rel_tol=0.05)
