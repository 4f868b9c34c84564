"""Exponential-moving-average teachers (BYOL, MoCo v3, DINO)."""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def frozen_copy(module: ModuleT) -> ModuleT:
    """A deep copy that receives no gradients, to serve as an EMA or frozen teacher."""
    teacher = copy.deepcopy(module)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def cosine_momentum(base: float, progress: float, end: float = 1.0) -> float:
    """BYOL's schedule: momentum rises from ``base`` to ``end`` (1 in BYOL) along a cosine over training (progress in
    [0, 1])."""
    progress = min(max(progress, 0.0), 1.0)
    return end - (end - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, for parameters and float buffers."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
    for t_buffer, s_buffer in zip(teacher.buffers(), student.buffers()):
        if t_buffer.dtype.is_floating_point:
            t_buffer.mul_(momentum).add_(s_buffer.detach(), alpha=1.0 - momentum)
        else:
            t_buffer.copy_(s_buffer)
