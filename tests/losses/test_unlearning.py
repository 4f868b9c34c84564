"""Unlearning losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.losses.unlearning import distillation_loss, forget_similarity_loss, gradient_ascent_loss, npo_loss


def test_npo_loss_hand_computed() -> None:
    # two forget samples: p/p_ref = 1/2 and 2; beta = 0.5 -> (2/0.5) * mean(log(1 + 0.5**0.5), log(1 + 2**0.5))
    log_p = torch.log(torch.tensor([0.2, 0.6], requires_grad=True))
    log_p_ref = torch.log(torch.tensor([0.4, 0.3]))
    expected = 4 * (math.log(1 + math.sqrt(0.5)) + math.log(1 + math.sqrt(2))) / 2
    assert math.isclose(npo_loss(log_p, log_p_ref, beta=0.5).item(), expected, rel_tol=1e-6)
    # at p = p_ref: (2 / beta) log 2
    assert math.isclose(npo_loss(log_p_ref, log_p_ref, beta=0.1).item(), 20 * math.log(2), rel_tol=1e-6)


def test_npo_gradient_is_gradient_ascent_weighted_and_tends_to_it_as_beta_shrinks() -> None:
    log_p = torch.tensor([math.log(0.2)], requires_grad=True)
    log_p_ref = torch.tensor([math.log(0.4)])
    npo_loss(log_p, log_p_ref, beta=1.0).backward()
    # d/dlog_p of 2 log(1 + r) with r = p/p_ref = 1/2: 2 r / (1 + r) = 2/3
    assert log_p.grad is not None and math.isclose(log_p.grad.item(), 2 / 3, rel_tol=1e-6)
    small = torch.tensor([math.log(0.2)], requires_grad=True)
    npo_loss(small, log_p_ref, beta=1e-4).backward()
    assert small.grad is not None and math.isclose(small.grad.item(), 1.0, rel_tol=1e-3)  # GA: d(log p) = 1
    with pytest.raises(ValueError):
        npo_loss(log_p, log_p_ref, beta=0.0)


def test_gradient_ascent_is_negated_cross_entropy() -> None:
    logits = torch.tensor([[math.log(3.0), 0.0]])  # softmax [3/4, 1/4]
    assert math.isclose(gradient_ascent_loss(logits, torch.tensor([0])).item(), math.log(3 / 4), rel_tol=1e-6)
    assert math.isclose(gradient_ascent_loss(logits, torch.tensor([1])).item(), math.log(1 / 4), rel_tol=1e-6)


def test_representation_losses_hand_computed() -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    z_ref = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    # cosines 1, 1/sqrt(2), -1
    c = 1 / math.sqrt(2)
    assert math.isclose(forget_similarity_loss(z, z_ref).item(), (1 + c + 0) / 3, rel_tol=1e-6)  # -1 clipped to 0
    assert math.isclose(distillation_loss(z, z_ref).item(), (0 + (1 - c) + 2) / 3, rel_tol=1e-6)
