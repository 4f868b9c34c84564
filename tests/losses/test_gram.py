from __future__ import annotations

import pytest
import torch

from selfsup.losses import gram_loss

# One sample, two tokens in 2-D. Student tokens (1, 0) and (0, 1): Gram [[1, 0], [0, 1]]. Target tokens (1, 0) and
# (0.6, 0.8): Gram [[1, 0.6], [0.6, 1]]. Difference: 0.6 off the diagonal twice, so ||.||_F^2 = 0.72, over 4 entries.
STUDENT = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
TARGET = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])


def test_gram_loss_hand_computed_and_scale_free() -> None:
    assert gram_loss(STUDENT, TARGET).item() == pytest.approx(0.72 / 4)
    assert gram_loss(STUDENT * 3, TARGET * torch.tensor([[[2.0], [5.0]]])).item() == pytest.approx(0.72 / 4)
    assert gram_loss(TARGET, TARGET).item() == pytest.approx(0.0, abs=1e-7)


def test_gram_loss_counts_only_valid_token_pairs_and_batch_means() -> None:
    # a padded third token that differs wildly is ignored: the loss is the first case's 0.72 / 4
    student = torch.cat([STUDENT, torch.tensor([[[-1.0, 0.0]]])], dim=1)
    target = torch.cat([TARGET, torch.tensor([[[1.0, 0.0]]])], dim=1)
    valid = torch.tensor([[True, True, False]])
    assert gram_loss(student, target, valid).item() == pytest.approx(0.72 / 4)
    # with a second, identical (zero-loss) sample the batch mean halves it
    both = gram_loss(torch.cat([student, target]), torch.cat([target, target]), valid.repeat(2, 1))
    assert both.item() == pytest.approx(0.72 / 8)


def test_gram_loss_gradient_reaches_the_student_only() -> None:
    student, target = STUDENT.clone().requires_grad_(), TARGET.clone().requires_grad_()
    gram_loss(student, target).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert target.grad is None
