"""Bootstrap (teacher/target) losses: BYOL/SimSiam negative cosine similarity and DINO."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.distributed import all_reduce_mean


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-cos(p_i, z_i)``, as in BYOL (Grill et al. 2020, "Bootstrap
    Your Own Latent") and SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation
    Learning"). Nothing is detached here: callers detach the target ``z``.
    """
    return -F.cosine_similarity(p, z, dim=-1).mean()


def dino_loss(
    student_out: list[torch.Tensor],
    teacher_out: list[torch.Tensor],
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO self-distillation loss (Caron et al. 2021, "Emerging Properties in Self-Supervised
    Vision Transformers").

    ``student_out``: ``(B, K)`` logits for every view, global views first then local crops.
    ``teacher_out``: ``(B, K)`` logits for the global views only, computed without grad.
    Teacher probabilities are ``softmax((t - center) / teacher_temp)``. The loss is the mean,
    over all (teacher view i, student view j) pairs with ``i != j``, of the batch-mean
    cross-entropy ``sum_k -p_t log p_s``.
    """
    teacher_probs = [F.softmax((t - center) / teacher_temp, dim=-1) for t in teacher_out]
    student_logp = [F.log_softmax(s / student_temp, dim=-1) for s in student_out]
    terms = [
        (-p_t * logp_s).sum(dim=-1).mean()
        for i, p_t in enumerate(teacher_probs)
        for j, logp_s in enumerate(student_logp)
        if i != j
    ]  # i == j: one global view seen by both
    if not terms:
        raise ValueError("dino_loss needs at least one (teacher, student) pair of different views")
    return sum(terms[1:], terms[0]) / len(terms)


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_out: list[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """DINO centre update (Caron et al. 2021): ``momentum * center + (1 - momentum) * mean``,
    where ``mean`` is the mean teacher logit over all views and the *global* batch (averaged
    over processes with :func:`all_reduce_mean`; assumes equal per-rank batch sizes).
    """
    batch_center = torch.cat([t.detach() for t in teacher_out], dim=0).mean(dim=0)
    batch_center = all_reduce_mean(batch_center).reshape(center.shape)
    return center * momentum + batch_center * (1 - momentum)
