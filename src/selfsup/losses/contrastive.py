"""Contrastive losses: SimCLR's NT-Xent, MoCo v3's InfoNCE, SimCSE's and CLIP's.

All are written so that with ``W`` processes holding ``B`` samples each, the mean over ranks
of the per-rank loss equals the single-process loss on the full ``W*B`` batch; together with
:func:`selfsup.distributed.gather_with_grad` this makes DDP's averaged gradient equal the
full-batch gradient (see :mod:`selfsup.distributed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.distributed import gather_with_grad, world


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather: bool = True) -> torch.Tensor:
    """NT-Xent loss of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive
    Learning of Visual Representations").

    ``z1``, ``z2``: ``(B, D)`` projections of two views of the same ``B`` samples. Each of the
    ``2B`` local anchors is contrasted with its other view (positive) and all other
    ``2BW - 2`` (gathered) embeddings (negatives). Returns the mean over the local anchors.
    """
    batch = z1.shape[0]
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    rank, world_size = world() if gather else (0, 1)
    if world_size > 1:
        g1, g2 = gather_with_grad(z1), gather_with_grad(z2)
    else:
        g1, g2 = z1, z2
    total = g1.shape[0]  # W * B
    anchors = torch.cat([z1, z2], dim=0)  # (2B, D)
    candidates = torch.cat([g1, g2], dim=0)  # (2WB, D): all view-1, then all view-2
    logits = anchors @ candidates.T / temperature  # (2B, 2WB)

    local = torch.arange(batch, device=z1.device) + rank * batch  # global index of sample i
    self_idx = torch.cat([local, local + total])
    pos_idx = torch.cat([local + total, local])
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * batch, device=z1.device), self_idx] = True
    logits = logits.masked_fill(is_self, float("-inf"))  # an anchor is not its own negative
    return F.cross_entropy(logits, pos_idx)


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2, gather: bool = True) -> torch.Tensor:
    """InfoNCE loss of MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training
    Self-Supervised Vision Transformers").

    ``q``: ``(B, D)`` queries, ``k``: ``(B, D)`` keys (the caller detaches them). The positive of
    local query ``i`` is global key ``rank * B + i``; every other gathered key is a negative.
    The cross-entropy is multiplied by ``2 * temperature`` as in the official code.
    """
    batch = q.shape[0]
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    rank, world_size = world() if gather else (0, 1)
    keys = gather_with_grad(k) if world_size > 1 else k
    logits = q @ keys.T / temperature  # (B, WB)
    labels = torch.arange(batch, device=q.device) + rank * batch
    return F.cross_entropy(logits, labels) * (2 * temperature)


def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.05, gather: bool = True) -> torch.Tensor:
    """Unsupervised SimCSE loss (Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
    Embeddings").

    ``z1``, ``z2``: ``(B, D)`` embeddings of the same ``B`` texts from two forward passes (different
    dropout). Text ``i`` of the first pass is scored against every (gathered) text of the second by
    cosine similarity over ``temperature``; its own second embedding is the positive: the mean over
    ``i`` of ``-log softmax_j(cos(z1_i, z2_j) / t)[i]``. This is MoCo v3's InfoNCE without its ``2t`` factor.
    """
    return info_nce_loss(z1, z2, temperature=temperature, gather=gather) / (2 * temperature)


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float, gather: bool = True) -> torch.Tensor:
    """Symmetric contrastive loss of CLIP (Radford et al. 2021, "Learning Transferable Visual Models From
    Natural Language Supervision").

    ``a``, ``b``: ``(B, D)`` embeddings of the two sides of ``B`` pairs (an audio clip and its caption).
    Logits are cosine similarities times ``logit_scale`` (CLIP's learned ``exp(t)``); pair ``i``'s ``a`` is
    classified among every (gathered) ``b`` and its ``b`` among every ``a``, and the two cross-entropies are
    averaged: ``(CE(s * A B^T, I) + CE(s * B A^T, I)) / 2``.
    """
    batch = a.shape[0]
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    rank, world_size = world() if gather else (0, 1)
    all_a, all_b = (gather_with_grad(a), gather_with_grad(b)) if world_size > 1 else (a, b)
    labels = torch.arange(batch, device=a.device) + rank * batch
    return (F.cross_entropy(logit_scale * a @ all_b.T, labels) + F.cross_entropy(logit_scale * b @ all_a.T, labels)) / 2
