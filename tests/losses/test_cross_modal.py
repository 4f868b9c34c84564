"""SigLIP's sigmoid loss and FILIP's token-wise similarity and loss against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.losses import filip_loss, sigmoid_pair_loss, token_similarity
from selfsup.losses.cross_modal import sigmoid_loss_from_logits

R = math.sqrt(0.5)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_sigmoid_loss_by_hand() -> None:
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # normalised: (1, 0), (0, 1)
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # cosines [[1, 0.6], [0, 0.8]]; t = 2, b = -1: logits [[1, 0.2], [-1, 0.6]]; z = +1 on the diagonal
    expected = -(_log_sigmoid(1.0) + _log_sigmoid(-0.2) + _log_sigmoid(1.0) + _log_sigmoid(0.6)) / 2
    assert sigmoid_pair_loss(a, b, 2.0, -1.0).item() == pytest.approx(expected, rel=1e-6)
    # the true pairs are the diagonal: swapping b's rows changes the loss
    assert sigmoid_pair_loss(a, b.flip(0), 2.0, -1.0).item() != pytest.approx(expected, rel=1e-3)


def test_sigmoid_loss_offset_marks_the_gathered_positive() -> None:
    logits = torch.tensor([[0.5, 2.0, -1.0]])  # one local anchor, three gathered candidates, its own is the second
    expected = -(_log_sigmoid(-0.5) + _log_sigmoid(2.0) + _log_sigmoid(1.0))
    assert sigmoid_loss_from_logits(logits, offset=1).item() == pytest.approx(expected, rel=1e-6)


def _tokens() -> tuple[torch.Tensor, ...]:
    """Two samples a side; a1's second token and b's third tokens are padding that would win if counted."""
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [0.0, 1.0]]])
    a_valid = torch.tensor([[True, True], [True, False]])
    b = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 5.0]], [[0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]]])
    b_valid = torch.tensor([[True, True, False], [True, True, False]])
    return a, a_valid, b, b_valid


def test_token_similarity_by_hand_with_padding() -> None:
    s_a, s_b = token_similarity(*_tokens())
    # s_a[i, j]: mean over a_i's tokens of the best cosine to b_j's tokens
    #   a0-b0: (1 + r) / 2; a0-b1: (0 + 1) / 2; a1-b0: 1 (one valid token); a1-b1: 0
    assert torch.allclose(s_a, torch.tensor([[(1 + R) / 2, 0.5], [1.0, 0.0]]), atol=1e-6)
    # s_b[i, j]: mean over b_j's tokens of the best cosine to a_i's tokens
    #   b0-a0: (1 + r) / 2; b1-a0: (1 + 0) / 2; b0-a1: (1 + r) / 2; b1-a1: (0 - 1) / 2
    assert torch.allclose(s_b, torch.tensor([[(1 + R) / 2, 0.5], [(1 + R) / 2, -0.5]]), atol=1e-6)


def test_filip_loss_by_hand() -> None:
    s_a, s_b = token_similarity(*_tokens())
    sa, sb = s_a.tolist(), s_b.tolist()
    t = 3.0

    def ce(row: list[float], target: int) -> float:
        return -t * row[target] + math.log(sum(math.exp(t * v) for v in row))

    a_to_b = (ce(sa[0], 0) + ce(sa[1], 1)) / 2  # a_i among the b_j, by s_a
    b_to_a = (ce([sb[0][0], sb[1][0]], 0) + ce([sb[0][1], sb[1][1]], 1)) / 2  # b_j among the a_i, by s_b
    assert filip_loss(s_a, s_b, t).item() == pytest.approx((a_to_b + b_to_a) / 2, rel=1e-6)
