"""A teacher that learns from the future: FST (Du et al. 2022, "Learning from Future: A Novel Self-Training
Framework for Semantic Segmentation"), for self-training's pseudo-labels.

FST pseudo-labels a batch with a teacher that has peeked at the future: a copy of the model is first optimised
virtually on that batch (the update is computed, not kept), and the pseudo-labels come from the updated copy, so the
teacher's errors on the batch are partly corrected before they become targets. FST-D ("deeply") chains ``K``
virtual steps. Here, for each batch of the unlabeled pool, a copy of the fine-tuned teacher takes ``steps`` plain
gradient steps ``theta <- theta - lr * grad L`` on

    L = CE(labeled batch, gold labels) + (1/B) sum_{pool batch} 1[p_max >= threshold] CE(x, its own top class),

(the self-training loss: gold labels plus the copy's own confident hard pseudo-labels, recomputed before each step),
then gives the pool batch's logits; the copy is discarded, so the teacher itself never changes and every batch starts
from it. Simplifications: FST runs this inside the student's online training and moves an EMA teacher towards the
virtual *student* (``theta_t <- m theta_t + (1 - m) theta_s'``); self-training here is offline (the teacher labels
the pool once, then the student trains), so the look-ahead copy is the teacher's own (``m = 0``), and FST-W (several
virtual students averaged) is not offered.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.errors import SelfsupError
from selfsup.evaluation.finetune import logits_of


def look_ahead(
    teacher: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: torch.Tensor,
    *,
    steps: int,
    lr: float,
    threshold: float,
    batch_size: int,
    generator: torch.Generator,
) -> nn.Module:
    """A copy of ``teacher`` after ``steps`` virtual gradient steps on ``batch`` (pool samples) and a random labeled
    batch (``x``, ``y``: class indices) each; ``teacher`` is left as it was."""
    future = copy.deepcopy(teacher)
    parameters = [p for p in future.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=lr)
    for _ in range(steps):
        probabilities = F.softmax(logits_of(future, batch), dim=1)  # its own pseudo-labels, before this step
        confidence, pseudo = (t.clone() for t in probabilities.max(dim=1))  # normal tensors, for autograd
        labeled = torch.randperm(len(x), generator=generator)[:batch_size]
        future.train()
        logits = future(torch.cat([x[labeled], batch]).float())
        gold, pool = logits[: len(labeled)], logits[len(labeled) :]
        mask = (confidence >= threshold).float()
        loss = F.cross_entropy(gold, y[labeled]) + (mask * F.cross_entropy(pool, pseudo, reduction="none")).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return future.eval()


def future_logits(
    teacher: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pool: torch.Tensor,
    *,
    steps: int,
    lr: float,
    threshold: float,
    batch_size: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """The pool's logits, each batch of ``batch_size`` from its own look-ahead copy of ``teacher`` (see the module
    docstring); ``steps=0`` gives the teacher's own logits."""
    if steps < 0 or lr <= 0 or batch_size < 1:
        raise SelfsupError(
            f"--future-steps must be 0 or more and --future-lr positive, got {steps} and {lr}; "
            f"the batch size must be at least 1, got {batch_size}."
        )
    generator = torch.Generator().manual_seed(seed)
    y = y.long()
    logits = []
    for i in range(0, len(pool), batch_size):
        batch = pool[i : i + batch_size].float()
        future = look_ahead(
            teacher, x, y, batch, steps=steps, lr=lr, threshold=threshold, batch_size=batch_size, generator=generator
        )
        logits.append(logits_of(future, batch))
    return torch.cat(logits)
