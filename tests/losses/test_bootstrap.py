from __future__ import annotations

import math

import torch

from selfsup.losses import dino_loss, negative_cosine_similarity, update_center


def test_negative_cosine_similarity_hand_computed() -> None:
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[2.0, 0.0], [3.0, 0.0]], requires_grad=True)
    # cos = 1 and 1/sqrt(2) -> loss = -(1 + 1/sqrt(2)) / 2
    loss = negative_cosine_similarity(p, z)
    assert math.isclose(loss.item(), -(1 + 1 / math.sqrt(2)) / 2, rel_tol=1e-6)
    loss.backward()  # no detach inside: the caller decides what is a target
    assert z.grad is not None and z.grad.abs().sum() > 0


def _xent(p: list[float], q: list[float]) -> float:
    return -sum(pi * math.log(qi) for pi, qi in zip(p, q))


# 2-class hand case, B = 1. teacher_temp = 0.04, student_temp = 0.1.
# softmax([a, 0]) = [e^a / (e^a + 1), 1 / (e^a + 1)].
LN3, LN4 = math.log(3), math.log(4)
TEACHER = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.04 * LN3, 0.0]])]  # [1/2,1/2], [3/4,1/4]
STUDENT = [
    torch.tensor([[0.0, 0.0]]),  # global 0 -> [1/2, 1/2]
    torch.tensor([[0.1 * LN3, 0.0]]),  # global 1 -> [3/4, 1/4]
    torch.tensor([[0.0, 0.1 * LN4]]),  # local crop -> [1/5, 4/5]
]
S0, S1, S2 = [1 / 2, 1 / 2], [3 / 4, 1 / 4], [1 / 5, 4 / 5]


def test_dino_loss_two_class_hand_computed() -> None:
    t0, t1 = [1 / 2, 1 / 2], [3 / 4, 1 / 4]
    # pairs (teacher i, student j), i != j: (0,1), (0,2), (1,0), (1,2)
    expected = (_xent(t0, S1) + _xent(t0, S2) + _xent(t1, S0) + _xent(t1, S2)) / 4
    loss = dino_loss(STUDENT, TEACHER, torch.zeros(1, 2))
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_dino_loss_subtracts_center_from_teacher() -> None:
    center = torch.tensor([[0.04 * LN3, 0.0]])
    # t0 - c = [-ln3, 0] * 0.04 -> [1/4, 3/4]; t1 - c = 0 -> [1/2, 1/2]
    t0, t1 = [1 / 4, 3 / 4], [1 / 2, 1 / 2]
    expected = (_xent(t0, S1) + _xent(t0, S2) + _xent(t1, S0) + _xent(t1, S2)) / 4
    loss = dino_loss(STUDENT, TEACHER, center)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_dino_loss_is_batch_mean() -> None:
    t0, t1 = [1 / 2, 1 / 2], [3 / 4, 1 / 4]
    case_a = (_xent(t0, S1) + _xent(t0, S2) + _xent(t1, S0) + _xent(t1, S2)) / 4
    # second sample: all logits zero -> every pair is CE(uniform, uniform) = ln 2
    pad = torch.zeros(1, 2)
    student = [torch.cat([s, pad]) for s in STUDENT]
    teacher = [torch.cat([t, pad]) for t in TEACHER]
    loss = dino_loss(student, teacher, torch.zeros(1, 2))
    assert math.isclose(loss.item(), (case_a + math.log(2)) / 2, rel_tol=1e-5)


def test_dino_loss_gradient_reaches_student() -> None:
    student = [s.clone().requires_grad_() for s in STUDENT]
    dino_loss(student, TEACHER, torch.zeros(1, 2)).backward()
    assert all(s.grad is not None for s in student)


def test_update_center_momentum_rule() -> None:
    center = torch.tensor([[1.0, 2.0]])
    teacher = [torch.tensor([[0.0, 0.0], [2.0, 4.0]]), torch.tensor([[4.0, 8.0], [2.0, 4.0]])]
    # batch mean over the 4 rows = [2, 4]; new = 0.9 * [1, 2] + 0.1 * [2, 4] = [1.1, 2.2]
    new = update_center(center, teacher, momentum=0.9)
    assert new.shape == center.shape
    torch.testing.assert_close(new, torch.tensor([[1.1, 2.2]]))
    assert not new.requires_grad
    # a 1-D centre keeps its shape too
    assert update_center(torch.zeros(2), teacher, momentum=0.5).shape == (2,)


# Sinkhorn-Knopp on exp(logits / T) = [[2, 1], [1, 1]] (B = 2 samples, K = 2 prototypes), by hand:
# Q = M^T / 5 = [[.4, .2], [.2, .2]]; iteration 1: prototype rows -> [[1/3, 1/6], [1/4, 1/4]] (rows / sum / K),
# sample columns -> [[4/7, 2/5], [3/7, 3/5]] / B, so after one iteration the samples get [4/7, 3/7] and [2/5, 3/5].
# Iteration 2: rows [[5/17, 7/34], [5/24, 7/24]], columns -> samples [24/41, 17/41] and [12/29, 17/29].
SK_T = 0.05
SK_LOGITS = torch.tensor([[SK_T * math.log(2), 0.0], [0.0, 0.0]])


def test_sinkhorn_knopp_hand_computed() -> None:
    from selfsup.losses import sinkhorn_knopp

    one = sinkhorn_knopp(SK_LOGITS, SK_T, iterations=1)
    torch.testing.assert_close(one, torch.tensor([[4 / 7, 3 / 7], [2 / 5, 3 / 5]]))
    two = sinkhorn_knopp(SK_LOGITS, SK_T, iterations=2)
    torch.testing.assert_close(two, torch.tensor([[24 / 41, 17 / 41], [12 / 29, 17 / 29]]))
    # prototype marginals after two iterations: 1188/1189 and 1190/1189, closing on the uniform B/K = 1
    torch.testing.assert_close(two.sum(dim=0), torch.tensor([1188 / 1189, 1190 / 1189]))


def test_sinkhorn_knopp_marginals_become_uniform_and_large_logits_stay_finite() -> None:
    from selfsup.losses import sinkhorn_knopp

    logits = 10 + torch.randn(12, 4, generator=torch.Generator().manual_seed(0)) * 0.5  # exp(10 / 0.04) overflows
    q = sinkhorn_knopp(logits, 0.04, iterations=200)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12))  # every sample: a distribution
    torch.testing.assert_close(q.sum(dim=0), torch.full((4,), 3.0), atol=1e-3, rtol=0)  # every prototype: B/K


def test_dino_cross_entropy_matches_dino_loss_given_the_teacher_softmax() -> None:
    from selfsup.losses import dino_cross_entropy

    probs = [torch.softmax(t / 0.04, dim=-1) for t in TEACHER]
    torch.testing.assert_close(dino_cross_entropy(STUDENT, probs), dino_loss(STUDENT, TEACHER, torch.zeros(1, 2)))


def test_ibot_patch_loss_hand_computed() -> None:
    from selfsup.losses import ibot_patch_loss

    # 1 image, 3 patches, patches 0 and 2 masked, 4 prototypes, student_temp 0.1:
    # softmax(0.1 * log([4, 2, 1, 1]) / 0.1) = [1/2, 1/4, 1/8, 1/8]; zero logits -> uniform [1/4] * 4
    mask = torch.tensor([[True, False, True]])
    student = torch.stack([0.1 * torch.log(torch.tensor([4.0, 2.0, 1.0, 1.0])), torch.zeros(4)])  # patches 0, 2
    teacher = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    # patch 0: -log(1/2) = ln 2; patch 2: -(1/2 log(1/4) + 1/2 log(1/4)) = ln 4; the image's mean: 1.5 ln 2
    expected = (math.log(2) + math.log(4)) / 2
    assert math.isclose(ibot_patch_loss(student, teacher, mask).item(), expected, rel_tol=1e-6)
    # a second image with one masked patch at CE ln 4 (uniform teacher and student): the mean of the image means,
    # an image weighted the same whatever its count of masked patches
    two = torch.tensor([[True, False, True], [False, True, False]])
    student2 = torch.cat([student, torch.zeros(1, 4)])
    teacher2 = torch.cat([teacher, torch.full((1, 4), 0.25)])
    expected2 = (expected + math.log(4)) / 2
    assert math.isclose(ibot_patch_loss(student2, teacher2, two).item(), expected2, rel_tol=1e-6)
    # an image with no masked patch counts as 0 in the mean over images (DINOv2's forward_masked)
    three = torch.cat([two, torch.zeros(1, 3, dtype=torch.bool)])
    assert math.isclose(ibot_patch_loss(student2, teacher2, three).item(), 2 * expected2 / 3, rel_tol=1e-6)
