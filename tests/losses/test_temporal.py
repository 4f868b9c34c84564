from __future__ import annotations

import math

import pytest
import torch

from selfsup.losses.temporal import cpc_loss, hierarchical_contrastive_loss

E1 = [1.0, 0.0]
E2 = [0.0, 1.0]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def contrast(items: list[list[float]]) -> float:
    """Mean over the 2N anchors of -log softmax(positive) against every other item (loop version)."""
    n = len(items) // 2
    total = 0.0
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        scores = {c: dot(items[a], items[c]) for c in range(2 * n) if c != a}
        total += -scores[positive] + math.log(sum(math.exp(s) for s in scores.values()))
    return total / (2 * n)


def pool(z: list) -> list:
    """Max over pairs of consecutive steps, dropping an odd last step."""
    return [[[max(a, b) for a, b in zip(row[2 * t], row[2 * t + 1])] for t in range(len(row) // 2)] for row in z]


def naive_hierarchical(z1: list, z2: list, alpha: float, temporal_unit: int) -> float:
    """TS2Vec's loss written out with loops over scales, time steps and samples."""
    losses, scale = [], 0
    while True:
        batch, steps = len(z1), len(z1[0])
        value = 0.0
        if batch > 1:
            inst = (
                sum(contrast([z1[b][t] for b in range(batch)] + [z2[b][t] for b in range(batch)]) for t in range(steps))
                / steps
            )
            value += alpha * inst
        if steps > 1 and scale >= temporal_unit:
            temp = sum(contrast(z1[b] + z2[b]) for b in range(batch)) / batch
            value += (1 - alpha) * temp
        losses.append(value)
        scale += 1
        if steps == 1:
            break
        z1, z2 = pool(z1), pool(z2)
    return sum(losses) / len(losses)


def test_hierarchical_single_step_hand_computed() -> None:
    z = torch.tensor([[E1], [E2]])  # B = 2, T = 1: only the instance term at one scale
    # Anchors e1, e2, e1, e2; anchor e1's others: e2 -> 0, e1 (positive) -> 1, e2 -> 0.
    # CE = -log(e / (e + 2)) = log(1 + 2/e), the same for every anchor; times alpha = 0.5.
    expected = 0.5 * math.log(1 + 2 / math.e)
    assert math.isclose(hierarchical_contrastive_loss(z, z.clone()).item(), expected, rel_tol=1e-6)
    assert math.isclose(hierarchical_contrastive_loss(z, z.clone(), alpha=1.0).item(), 2 * expected, rel_tol=1e-6)


def test_hierarchical_two_steps_hand_computed() -> None:
    z = torch.tensor([[E1, E2]])  # B = 1 (no instance term), T = 2 then pooled to T = 1
    # Scale 0, temporal: items e1, e2, e1, e2 as above -> log(1 + 2/e), times 1 - alpha = 0.5.
    # Scale 1 (T = 1, B = 1): nothing to contrast. Mean over 2 scales.
    expected = 0.5 * math.log(1 + 2 / math.e) / 2
    assert math.isclose(hierarchical_contrastive_loss(z, z.clone()).item(), expected, rel_tol=1e-6)


@pytest.mark.parametrize("alpha, temporal_unit", [(0.5, 0), (0.3, 1), (1.0, 0), (0.0, 0)])
def test_hierarchical_matches_naive_loop(alpha: float, temporal_unit: int) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, 2, generator=g), torch.randn(3, 5, 2, generator=g)  # T = 5 -> 2 -> 1
    expected = naive_hierarchical(z1.tolist(), z2.tolist(), alpha, temporal_unit)
    loss = hierarchical_contrastive_loss(z1, z2, alpha=alpha, temporal_unit=temporal_unit)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_hierarchical_prefers_aligned_views_and_has_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 16, 4, generator=g, requires_grad=True)
    noisy = z.detach() + 0.05 * torch.randn(8, 16, 4, generator=g)
    aligned = hierarchical_contrastive_loss(z, noisy)
    assert aligned < hierarchical_contrastive_loss(z, noisy[torch.roll(torch.arange(8), 1)])
    assert aligned < hierarchical_contrastive_loss(z, noisy.flip(1))
    aligned.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def naive_cpc(pred: list, z: list, valid: list) -> float:
    batch, steps, horizons = len(pred), len(pred[0]), len(pred[0][0])
    per_k = []
    for k in range(1, horizons + 1):
        terms = []
        for t in range(steps - k):
            candidates = [c for c in range(batch) if valid[c][t + k]]
            if len(candidates) < 2:
                continue
            for b in candidates:
                scores = {c: dot(pred[b][t][k - 1], z[c][t + k]) for c in candidates}
                terms.append(-scores[b] + math.log(sum(math.exp(s) for s in scores.values())))
        if terms:
            per_k.append(sum(terms) / len(terms))
    return sum(per_k) / len(per_k)


def test_cpc_hand_computed() -> None:
    z = torch.tensor([[E1, E1], [E2, E2]])  # (B=2, T=2, D=2)
    pred = torch.zeros(2, 2, 1, 2)
    pred[0, 0, 0] = torch.tensor([2.0, 0.0])  # predicts z[0, 1] = e1: scores (2, 0)
    pred[1, 0, 0] = torch.tensor([0.0, 3.0])  # predicts z[1, 1] = e2: scores (0, 3)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-3))) / 2
    assert math.isclose(cpc_loss(pred, z).item(), expected, rel_tol=1e-6)
    # wrong predictions: sample 0 points at e2 -> CE log(1 + e^3)
    pred[0, 0, 0] = torch.tensor([0.0, 3.0])
    expected = (math.log(1 + math.exp(3)) + math.log(1 + math.exp(-3))) / 2
    assert math.isclose(cpc_loss(pred, z).item(), expected, rel_tol=1e-6)


def test_cpc_ignores_invalid_future_tokens() -> None:
    z = torch.tensor([[E1, E1], [E2, E2], [E1, [5.0, 5.0]]])  # sample 2's second token is padding
    pred = torch.zeros(3, 2, 1, 2)
    pred[0, 0, 0] = torch.tensor([2.0, 0.0])
    pred[1, 0, 0] = torch.tensor([0.0, 3.0])
    pred[2, 0, 0] = torch.tensor([9.0, 9.0])
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-3))) / 2  # as if sample 2 were absent
    assert math.isclose(cpc_loss(pred, z, valid).item(), expected, rel_tol=1e-6)


def test_cpc_matches_naive_loop_with_ragged_mask() -> None:
    g = torch.Generator().manual_seed(3)
    batch, steps, horizons, dim = 4, 6, 3, 3
    pred = torch.randn(batch, steps, horizons, dim, generator=g, requires_grad=True)
    z = torch.randn(batch, steps, dim, generator=g)
    lengths = torch.tensor([6, 4, 3, 1])
    valid = torch.arange(steps) < lengths.unsqueeze(1)
    valid[0, 2] = False  # a missing token inside a series
    loss = cpc_loss(pred, z, valid)
    assert math.isclose(loss.item(), naive_cpc(pred.tolist(), z.tolist(), valid.tolist()), rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[3].abs().sum() == 0  # a series of one token predicts nothing that exists
    full = cpc_loss(pred, z)
    assert math.isclose(full.item(), naive_cpc(pred.tolist(), z.tolist(), [[True] * steps] * batch), rel_tol=1e-5)


def test_cpc_without_any_term_is_zero_with_graph() -> None:
    pred = torch.randn(1, 3, 2, 2, requires_grad=True)  # a single sample: no negatives
    loss = cpc_loss(pred, torch.randn(1, 3, 2))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None
