"""FST's look-ahead teacher: each pool batch's pseudo-labels come from a copy of the teacher after virtual gradient
steps on that batch, computed here by hand for a linear model; the teacher itself never changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.errors import SelfsupError
from selfsup.workflows.future_teacher import future_logits


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _one_step_by_hand(w, b, x, y, u, lr, threshold):
    """theta - lr * grad of mean CE(x, y) + mean over u of 1[p_max >= threshold] CE(u, own top class)."""
    z_l, z_u = x @ w.T + b, u @ w.T + b
    p_u = _softmax(z_u)
    mask = (p_u.max(1) >= threshold).astype(float)
    d_l = (_softmax(z_l) - np.eye(w.shape[0])[y]) / len(x)
    d_u = mask[:, None] * (p_u - np.eye(w.shape[0])[p_u.argmax(1)]) / len(u)
    grad_w = d_l.T @ x + d_u.T @ u
    grad_b = d_l.sum(0) + d_u.sum(0)
    return w - lr * grad_w, b - lr * grad_b


def test_each_pool_batch_is_labelled_by_its_own_look_ahead_copy_and_the_teacher_is_unchanged(one_thread) -> None:
    rng = np.random.default_rng(0)
    x, u = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))  # 3 labeled rows (all in every step), 6 pool rows
    y = np.array([0, 2, 1])
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 3))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    w, b = teacher[0].weight.detach().double().numpy(), teacher[0].bias.detach().double().numpy()
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)
    got = future_logits(
        teacher, as_tensor(x), torch.tensor(y), as_tensor(u), steps=1, lr=0.5, threshold=0.4, batch_size=3
    )
    for rows in (slice(0, 3), slice(3, 6)):  # each batch of 3 from the unchanged teacher, not from the last copy
        w1, b1 = _one_step_by_hand(w, b, x, y, u[rows], 0.5, 0.4)
        assert np.allclose(got[rows].numpy(), u[rows] @ w1.T + b1, atol=1e-5)
    assert not np.allclose(got.numpy(), u @ w.T + b, atol=1e-3)  # the copy moved
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # K = 2 chained steps: the second from the first one's weights, with the pseudo-labels recomputed
    got2 = future_logits(
        teacher, as_tensor(x), torch.tensor(y), as_tensor(u), steps=2, lr=0.5, threshold=0.4, batch_size=3
    )
    w2, b2 = _one_step_by_hand(*_one_step_by_hand(w, b, x, y, u[:3], 0.5, 0.4), x, y, u[:3], 0.5, 0.4)
    assert np.allclose(got2[:3].numpy(), u[:3] @ w2.T + b2, atol=1e-5)
    # no steps: the teacher's own logits
    same = future_logits(teacher, as_tensor(x), torch.tensor(y), as_tensor(u), steps=0, lr=0.5, threshold=0.4)
    assert np.allclose(same.numpy(), u @ w.T + b, atol=1e-5)
    with pytest.raises(SelfsupError, match="--future-steps"):
        future_logits(teacher, as_tensor(x), torch.tensor(y), as_tensor(u), steps=-1, lr=0.5, threshold=0.4)
