from __future__ import annotations

import math

import pytest
import torch

from selfsup.losses import koleo_loss

# Three unit vectors: d(x1, x2) = sqrt(0.8), d(x1, x3) = 2, d(x2, x3) = sqrt(3.2). Nearest neighbours:
# x1 -> x2 (sqrt 0.8), x2 -> x1 (sqrt 0.8), x3 -> x2 (sqrt 3.2).
X = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
EXPECTED = -(math.log(math.sqrt(0.8)) * 2 + math.log(math.sqrt(3.2))) / 3


def test_koleo_hand_computed() -> None:
    assert math.isclose(koleo_loss(X).item(), EXPECTED, rel_tol=1e-5)


def test_koleo_normalises_rows_first() -> None:
    scaled = X * torch.tensor([[3.0], [0.5], [7.0]])
    assert math.isclose(koleo_loss(scaled).item(), EXPECTED, rel_tol=1e-5)


def test_koleo_gradient_spreads_the_closest_pair() -> None:
    x = X.clone().requires_grad_()
    koleo_loss(x).backward()
    step = X - 0.1 * x.grad
    assert koleo_loss(step).item() < EXPECTED  # a gradient step moves x1 and x2 apart


def test_koleo_refuses_a_single_sample() -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        koleo_loss(torch.ones(1, 3))
