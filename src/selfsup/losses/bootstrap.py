"""Bootstrap (teacher/target) losses: BYOL/SimSiam negative cosine similarity, DINO, iBOT, Sinkhorn-Knopp centring."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.distributed import all_reduce_max, all_reduce_mean, world


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
    return dino_cross_entropy(student_out, teacher_probs, student_temp)


def dino_cross_entropy(
    student_out: list[torch.Tensor], teacher_probs: list[torch.Tensor], student_temp: float = 0.1
) -> torch.Tensor:
    """The cross-entropy half of :func:`dino_loss`, given the teacher's probabilities (one ``(B, K)`` tensor per
    global view, e.g. from :func:`sinkhorn_knopp`): the mean over pairs ``i != j`` of the batch-mean
    ``sum_k -p_t log softmax(s / student_temp)``."""
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


def ibot_patch_loss(
    student: torch.Tensor, teacher_probs: torch.Tensor, mask: torch.Tensor, student_temp: float = 0.1
) -> torch.Tensor:
    """iBOT's masked-patch self-distillation loss (Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online
    Tokenizer"), as DINOv2 computes it (Oquab et al. 2023, ``iBOTPatchLoss.forward_masked``).

    ``student``: ``(M, K)`` logits of the student's patch head at the masked tokens; ``teacher_probs``: ``(M, K)``
    the teacher's (centred, sharpened) probabilities at the same tokens; ``mask``: the ``(B, N)`` bool mask they
    were taken at (rows in ``mask[mask]`` order). Each token's cross-entropy ``sum_k -p_t log softmax(s /
    student_temp)`` is averaged over its image's masked tokens, and those per-image means are summed and divided by
    ``B``: an image with no masked token counts as 0.
    """
    per_token = -(teacher_probs * F.log_softmax(student / student_temp, dim=-1)).sum(dim=-1)  # (M,)
    weights = (1.0 / mask.sum(dim=1).clamp_min(1)).unsqueeze(1).expand_as(mask)[mask].to(per_token.dtype)
    return (per_token * weights).sum() / mask.shape[0]


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_out: list[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """DINO centre update (Caron et al. 2021): ``momentum * center + (1 - momentum) * mean``,
    where ``mean`` is the mean teacher logit over all views and the *global* batch (averaged
    over processes with :func:`all_reduce_mean`; assumes equal per-rank batch sizes).
    """
    batch_center = torch.cat([t.detach() for t in teacher_out], dim=0).mean(dim=0)
    batch_center = all_reduce_mean(batch_center).reshape(center.shape)
    return center * momentum + batch_center * (1 - momentum)


@torch.no_grad()
def sinkhorn_knopp(teacher_out: torch.Tensor, teacher_temp: float, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp centring of teacher logits, as in SwAV (Caron et al. 2020, "Unsupervised Learning of Visual
    Features by Contrasting Cluster Assignments") and DINOv2 (Oquab et al. 2023): starting from
    ``exp(teacher_out / teacher_temp)`` (``(B, K)``), alternately rescale so every prototype gets ``1/K`` of the
    mass and every sample ``1/B``, ``iterations`` times; returns ``(B, K)`` probabilities, each row summing to 1,
    whose prototype marginals approach uniform (``B/K`` each). ``B`` is the global batch: sums are taken over all
    processes (equal per-rank batch sizes assumed).
    """
    _, world_size = world()
    logits = teacher_out.detach().to(torch.promote_types(teacher_out.dtype, torch.float32)) / teacher_temp
    logits = logits - all_reduce_max(logits.max())  # a common shift, cancelled by the first normalisation
    q = torch.exp(logits).t()  # (K, B)
    n_prototypes, batch = q.shape[0], q.shape[1] * world_size
    q /= all_reduce_mean(q.sum()) * world_size
    for _ in range(iterations):
        q /= all_reduce_mean(q.sum(dim=1, keepdim=True)) * world_size  # each prototype: total mass 1 ...
        q /= n_prototypes  # ... then 1/K
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1 ...
        q /= batch  # ... then 1/B
    return (q * batch).t().to(teacher_out.dtype)
