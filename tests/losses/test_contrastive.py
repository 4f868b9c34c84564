from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfsup.losses import clip_loss, info_nce_loss, nt_xent_loss, simcse_loss

E1 = [1.0, 0.0]
E2 = [0.0, 1.0]


def test_nt_xent_identical_orthogonal_views_hand_computed() -> None:
    z = torch.tensor([E1, E2])
    # Anchors e1, e2, e1, e2. For anchor e1 (tau = 0.5), excluding itself: positive e1 -> 1/0.5 = 2,
    # negatives e2, e2 -> 0. CE = -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2); same for every anchor.
    expected = math.log(1 + 2 * math.exp(-2))
    loss = nt_xent_loss(z, z.clone(), temperature=0.5)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    # normalisation happens inside: scaling the inputs changes nothing
    assert math.isclose(nt_xent_loss(3 * z, 0.5 * z).item(), expected, rel_tol=1e-6)


def test_nt_xent_shuffled_views_hand_computed() -> None:
    z1 = torch.tensor([E1, E2])
    z2 = torch.tensor([E2, E1])
    # Anchor z1[0] = e1: positive z2[0] = e2 -> 0; negatives z1[1] = e2 -> 0, z2[1] = e1 -> 2.
    # CE = -log(e^0 / (e^0 + e^0 + e^2)) = log(2 + e^2); symmetric for all anchors.
    expected = math.log(2 + math.exp(2))
    loss = nt_xent_loss(z1, z2, temperature=0.5)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert expected > math.log(1 + 2 * math.exp(-2))


def test_nt_xent_identical_views_beat_shuffled_views() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 32, generator=g)
    noisy = z + 0.1 * torch.randn(16, 32, generator=g)
    shuffled = noisy[torch.roll(torch.arange(16), 1)]
    assert nt_xent_loss(z, noisy) < nt_xent_loss(z, shuffled)


def test_nt_xent_matches_naive_loop() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2, tau = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g), 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n = len(z)
    total = 0.0
    for a in range(n):
        pos = (a + 3) % n
        sims = {c: sum(x * y for x, y in zip(z[a], z[c])) / tau for c in range(n) if c != a}
        total += -sims[pos] + math.log(sum(math.exp(s) for s in sims.values()))
    assert math.isclose(nt_xent_loss(z1, z2, temperature=tau).item(), total / n, rel_tol=1e-5)


def test_info_nce_hand_computed() -> None:
    q = torch.tensor([E1, E2])
    # tau = 0.2: query e1 vs keys (e1, e2) -> logits (5, 0), label 0: CE = log(1 + e^-5);
    # multiplied by 2 * tau = 0.4.
    aligned = info_nce_loss(q, q.clone(), temperature=0.2)
    assert math.isclose(aligned.item(), 0.4 * math.log(1 + math.exp(-5)), rel_tol=1e-6)
    # Swapped keys: logits (0, 5), label 0: CE = -log(1 / (1 + e^5)) = log(1 + e^5).
    swapped = info_nce_loss(q, torch.tensor([E2, E1]), temperature=0.2)
    assert math.isclose(swapped.item(), 0.4 * math.log(1 + math.exp(5)), rel_tol=1e-6)


def test_info_nce_gradient_reaches_queries_only_when_keys_detached() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(4, 8, generator=g, requires_grad=True)
    k = torch.randn(4, 8, generator=g)
    info_nce_loss(q, k).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_simcse_hand_computed() -> None:
    # z1 = (e1, e2), z2 = (e1, (e1 + e2)/sqrt 2) after normalisation; t = 0.05.
    # cos: z1[0]-z2[0] = 1, z1[0]-z2[1] = 1/sqrt2, z1[1]-z2[0] = 0, z1[1]-z2[1] = 1/sqrt2.
    # Text 0: -log(e^{20} / (e^{20} + e^{20/sqrt2})); text 1 (positive z2[1]): -log(e^{a} / (e^0 + e^{a})), a = 20/sqrt2.
    z1 = torch.tensor([E1, E2])
    z2 = torch.tensor([[2.0, 0.0], [3.0, 3.0]])  # scale does not matter: cosine similarity
    a = 20 / math.sqrt(2)
    first = -(20 - math.log(math.exp(20) + math.exp(a)))
    second = -(a - math.log(1 + math.exp(a)))
    expected = (first + second) / 2
    assert math.isclose(simcse_loss(z1, z2, temperature=0.05).item(), expected, rel_tol=1e-5)
    # one-directional: z2's texts are only candidates, never anchors
    assert not math.isclose(simcse_loss(z2, z1, temperature=0.05).item(), expected, rel_tol=1e-3)


def test_simcse_matches_naive_loop() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    t = 0.1
    total = 0.0
    for i in range(6):
        scores = [F.cosine_similarity(z1[i], z2[j], dim=0).item() / t for j in range(6)]
        total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    assert math.isclose(simcse_loss(z1, z2, temperature=t).item(), total / 6, rel_tol=1e-5)


def test_clip_loss_hand_computed() -> None:
    """Two pairs: a = (1, 0), (0, 1); b = (1, 0), (1, 1) (cosines 1, 1/sqrt2 / 0, 1/sqrt2), scale 2."""
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [3.0, 3.0]])  # length does not matter: cosines
    r = 2 * (1 / math.sqrt(2))
    a_to_b = (-math.log(math.exp(2) / (math.exp(2) + math.exp(r))) - math.log(math.exp(r) / (1 + math.exp(r)))) / 2
    b_to_a = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    expected = (a_to_b + b_to_a) / 2
    assert math.isclose(clip_loss(a, b, logit_scale=2.0).item(), expected, rel_tol=1e-6)
    assert math.isclose(clip_loss(a, b, logit_scale=torch.tensor(2.0)).item(), expected, rel_tol=1e-6)


def test_clip_loss_is_symmetric_and_prefers_matched_pairs() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    assert math.isclose(clip_loss(a, b, 10.0).item(), clip_loss(b, a, 10.0).item(), rel_tol=1e-6)
    assert clip_loss(a, a + 0.01 * torch.randn(8, 16), 10.0) < clip_loss(a, b, 10.0)
