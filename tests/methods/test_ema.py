from __future__ import annotations

import math

import torch
from torch import nn

from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.training.schedule import warmup_cosine


def test_cosine_momentum_endpoints() -> None:
    assert cosine_momentum(0.99, 0.0) == 0.99
    assert math.isclose(cosine_momentum(0.99, 0.5), 0.995)
    assert cosine_momentum(0.99, 1.0) == 1.0


def test_ema_update_hand_computed() -> None:
    student = nn.Linear(1, 1, bias=False)
    teacher = frozen_copy(student)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(3.0)
    ema_update(teacher, student, momentum=0.75)
    assert torch.allclose(teacher.weight, torch.tensor([[2.5]]))  # 0.75*3 + 0.25*1
    assert not teacher.weight.requires_grad


def test_warmup_cosine() -> None:
    assert warmup_cosine(0, 10, 110) == 0.1
    assert warmup_cosine(9, 10, 110) == 1.0
    assert math.isclose(warmup_cosine(60, 10, 110), 0.5)
    assert math.isclose(warmup_cosine(110, 10, 110), 0.0, abs_tol=1e-12)
