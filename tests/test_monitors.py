"""Label-free monitors of a batch of embeddings against values known by construction."""

from __future__ import annotations

import math

import torch

from selfsup.monitors import alignment, embedding_spread, nearest_class_mean_accuracy, rankme, uniformity
from selfsup.training.callbacks import COLLAPSE_SPREAD


def test_rankme() -> None:
    assert math.isclose(rankme(torch.eye(8)), 8.0, rel_tol=1e-4)  # 8 equal singular values
    line = torch.randn(100, 1) * torch.randn(1, 16)  # rank 1: every embedding on one line
    assert math.isclose(rankme(line), 1.0, rel_tol=1e-3)
    two = torch.cat([torch.eye(2) * 3, torch.zeros(2, 6)], dim=1)  # two equal directions
    assert math.isclose(rankme(two), 2.0, rel_tol=1e-4)


def test_rankme_of_wide_rows_is_the_svds() -> None:
    from sklearn.datasets import load_digits

    pixels = torch.tensor(load_digits().data[:20], dtype=torch.float32)  # 20 x 64: from the Gram matrix
    singular = torch.linalg.svdvals(pixels.double())
    p = singular / singular.sum() + 1e-7
    assert math.isclose(rankme(pixels), float(torch.exp(-(p * p.log()).sum())), rel_tol=1e-6)


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


def test_nearest_class_mean_accuracy() -> None:
    # class 0's normalised rows average to (1, 1)/sqrt(2) direction, class 1's to (-1, 0): hand-placed test rows
    train = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [-5.0, 0.0]])
    train_y = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 1.0], [-1.0, 0.1], [0.1, -1.0], [-0.2, 1.0]])
    # cosines to the means: (1,1) -> 0; (-1, 0.1) -> 1; (0.1,-1): -0.64 vs -0.1 -> 1; (-0.2, 1): 0.55 vs 0.2 -> 0
    test_y = torch.tensor([0, 1, 0, 0])
    assert math.isclose(nearest_class_mean_accuracy(train, train_y, test, test_y), 0.75)
