"""Masked-modelling loss and targets against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.errors import SelfsupError
from selfsup.losses.masked import masked_loss, token_targets


def test_masked_loss_hand_computed() -> None:
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [5.0, 5.0]]])  # (B=1, N=3, P=2)
    prediction = torch.tensor([[[0.0, 1.0], [5.0, 3.0]]])  # for tokens 0 and 2
    masked = torch.tensor([[0, 2]])
    # token 0: ((0-1)^2 + 0) / 2 = 0.5; token 2: (0 + 4) / 2 = 2; mean 1.25
    assert math.isclose(masked_loss(prediction, target, masked).item(), 1.25)
    # l1: token 0: 0.5; token 2: (0 + 2) / 2 = 1; mean 0.75
    assert math.isclose(masked_loss(prediction, target, masked, kind="l1").item(), 0.75)
    # a table column's error is the sum over its slots: token 0: 1, token 2: 4; mean 2.5
    assert math.isclose(masked_loss(prediction, target, masked, per_token="sum").item(), 2.5)
    # an invalid (padding) token is left out
    valid = torch.tensor([[True, True, False]])
    assert math.isclose(masked_loss(prediction, target, masked, valid).item(), 0.5)


def test_visible_targets_do_not_change_the_loss() -> None:
    torch.manual_seed(0)
    target, prediction = torch.randn(4, 10, 3), torch.randn(4, 6, 3)
    masked = torch.rand(4, 10).argsort(1)[:, :6].sort(1).values
    visible = torch.ones(4, 10, dtype=torch.bool).scatter(1, masked, False)
    changed = target.clone()
    changed[visible] = 100.0
    assert torch.equal(masked_loss(prediction, target, masked), masked_loss(prediction, changed, masked))
    changed_masked = target.clone()
    changed_masked[~visible] += 1.0
    assert not torch.equal(masked_loss(prediction, target, masked), masked_loss(prediction, changed_masked, masked))


def test_pixel_and_frequency_targets() -> None:
    impulse = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4)  # (B, N, C, p): one series patch
    assert torch.equal(token_targets(impulse, 1, "pixels"), impulse.view(1, 1, 4))
    # |FFT| of an impulse is 1 at every frequency (rfft: 3 of them) -> log(2)
    assert torch.allclose(token_targets(impulse, 1, "frequency"), torch.full((1, 1, 3), math.log(2.0)))
    constant = torch.full((1, 1, 1, 2, 2), 3.0)  # an image patch: all energy at DC = 12
    spectrum = token_targets(constant, 2, "frequency").view(-1)
    assert torch.allclose(spectrum, torch.tensor([math.log(13.0), 0.0, 0.0, 0.0]), atol=1e-6)
    # a table value: its magnitude
    assert torch.allclose(token_targets(torch.tensor([[[-2.0]]]), 0, "frequency"), torch.tensor([[[math.log(3.0)]]]))


def test_hog_target() -> None:
    ramp = torch.arange(8.0).view(1, 1, 1, 8)  # slope 1 everywhere (last step padded with 0)
    hog = token_targets(ramp, 1, "hog").view(-1)
    # atan(1) + pi/2 = 3pi/4 -> bin int(0.75 * 9) = 6 holds all the magnitude
    assert hog.argmax() == 6 and math.isclose(hog.norm().item(), 1.0, rel_tol=1e-6)
    stripes = torch.tensor([[0.0, 1.0, 0.0, 1.0]] * 4).view(1, 1, 1, 4, 4)  # vertical edges: horizontal gradient
    hog2 = token_targets(stripes, 2, "hog").view(-1)
    assert hog2.argmax() == 0  # orientation 0 (gx != 0, gy == 0) or pi: bin 0 either way
    with pytest.raises(SelfsupError, match="spatial extent"):
        token_targets(torch.zeros(1, 1, 3), 0, "hog")


def test_per_token_normalisation_only_for_patches() -> None:
    patch = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    normed = token_targets(patch, 1, "pixels", normalize=True).view(-1)
    assert math.isclose(normed.mean().item(), 0.0, abs_tol=1e-6) and math.isclose(
        normed.std(unbiased=False).item(), 1.0, rel_tol=1e-4
    )
    value = torch.tensor([[[2.5, 0.0]]])  # a table column: left as it is
    assert torch.equal(token_targets(value, 0, "pixels", normalize=True), value)
