"""Cross-modal pair losses beyond CLIP's InfoNCE (:func:`selfsup.losses.clip_loss`): SigLIP's sigmoid loss and
FILIP's token-wise late interaction.

- Zhai, Mustafa, Kolesnikov & Beyer 2023, "Sigmoid Loss for Language Image Pre-Training" (SigLIP): every
  (a_i, b_j) of the batch is an independent binary problem, ``-1/N sum_i sum_j log sigmoid(z_ij (t a_i.b_j + b))``
  with ``z_ij = +1`` on the diagonal (the true pairs), ``-1`` elsewhere, a learned scale ``t`` and bias ``b``.
- Yao et al. 2022, "FILIP: Fine-grained Interactive Language-Image Pre-Training": the similarity of two samples
  is the mean, over one side's tokens, of each token's highest cosine similarity to the other side's tokens
  (padding excluded on both sides); each direction replaces the global cosine in its half of the InfoNCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.distributed import gather_with_grad, world


def sigmoid_pair_loss(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float, bias: torch.Tensor | float, gather: bool = True
) -> torch.Tensor:
    """SigLIP's loss on ``(B, D)`` embeddings of the two sides of ``B`` pairs (cosine similarities): see
    :func:`sigmoid_loss_from_logits`. With ``W`` processes, local ``a`` meets every gathered ``b``, so each of the
    ``(WB)^2`` terms is counted once over the ranks and the mean of the per-rank losses is the full-batch loss
    (the paper's chunked all-to-all gives the same sum)."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    rank, world_size = world() if gather else (0, 1)
    all_b = gather_with_grad(b) if world_size > 1 else b
    return sigmoid_loss_from_logits(logit_scale * a @ all_b.T + bias, offset=rank * a.shape[0])


def sigmoid_loss_from_logits(logits: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """``-1/B sum_ij log sigmoid(z_ij logits_ij)`` for ``logits (B, M)`` (``t sim + b``), ``z_ij = +1`` where
    ``j = i + offset`` (the pair's own other side), ``-1`` elsewhere: normalised by the ``B`` anchors, not by the
    ``B M`` terms, as in the paper."""
    labels = -torch.ones_like(logits)
    rows = torch.arange(logits.shape[0], device=logits.device)
    labels[rows, rows + offset] = 1.0
    return -F.logsigmoid(labels * logits).sum() / logits.shape[0]


def token_similarity(
    a: torch.Tensor, a_valid: torch.Tensor, b: torch.Tensor, b_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """FILIP's token-wise similarities between every sample of ``a`` and every sample of ``b``.

    ``a (Na, n, D)``, ``b (Nb, m, D)``: token features; ``*_valid`` ``(N, tokens)`` bool, False at padding.
    Returns ``(s_a, s_b)``, both ``(Na, Nb)``: ``s_a[i, j]`` is the mean over a_i's valid tokens of each token's
    highest cosine similarity to b_j's valid tokens; ``s_b[i, j]`` the mean over b_j's valid tokens of each one's
    highest cosine similarity to a_i's valid tokens. A sample without any valid token scores 0.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    sim = torch.einsum("ikd,jrd->ijkr", a, b)  # (Na, Nb, n, m)
    pair_valid = a_valid[:, None, :, None] & b_valid[None, :, None, :]
    sim = sim.masked_fill(~pair_valid, float("-inf"))
    best_for_a = sim.amax(dim=3)  # (Na, Nb, n): each a token's best b token
    best_for_b = sim.amax(dim=2)  # (Na, Nb, m)
    s_a = _masked_mean(best_for_a, a_valid[:, None, :].expand_as(best_for_a))
    s_b = _masked_mean(best_for_b, b_valid[None, :, :].expand_as(best_for_b))
    return s_a, s_b


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over its last axis where ``valid`` (finite there), 0 where nothing is valid."""
    x = x.masked_fill(~valid | ~torch.isfinite(x), 0.0)
    count = valid.sum(-1)
    return x.sum(-1) / count.clamp_min(1).to(x.dtype)


def filip_loss(s_a: torch.Tensor, s_b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """FILIP's symmetric InfoNCE over the batch: sample a_i is classified among the b_j by ``t s_a[i, :]``
    (a-to-b similarity) and b_j among the a_i by ``t s_b[:, j]`` (b-to-a similarity); the two
    cross-entropies are averaged, as in CLIP."""
    labels = torch.arange(s_a.shape[0], device=s_a.device)
    return (F.cross_entropy(logit_scale * s_a, labels) + F.cross_entropy(logit_scale * s_b.T, labels)) / 2
