"""The training loop the method tests share: a fixed objective that gradient descent must lower."""

from __future__ import annotations

import pytest
import torch


def _train(method, x: torch.Tensor, steps: int) -> list[float]:
    """``steps`` AdamW steps on the batch ``x``; the RNG is reseeded every step, so crops, masks and dropout
    repeat and the objective is fixed. Checks the embedding each step returns; returns the losses."""
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(steps):
        torch.manual_seed(0)
        out = method.training_loss([x])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end(step / steps)
        losses.append(out.loss.item())
    assert out.embedding.shape == (len(x), method.encoder.embed_dim)
    assert torch.isfinite(out.embedding).all()
    return losses


@pytest.fixture
def train_fixed():
    return _train
