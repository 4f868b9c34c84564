"""Unlearning objectives: make a trained model forget a set of samples (``selfsup unlearn``).

* :func:`gradient_ascent_loss`: the negated cross-entropy on the forget set (the usual baseline; unbounded below).
* :func:`npo_loss`: Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From
  Catastrophic Collapse to Effective Unlearning"), bounded, and gradient ascent again as beta -> 0.
* :func:`forget_similarity_loss` and :func:`distillation_loss`: label-free, on representations (after Label-Agnostic
  Forgetting, "LAF: A Supervision-Free Unlearning in Deep Models"): push the forget set's embeddings away from the
  frozen original encoder's, while the retain set's stay matched to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_ascent_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``-CE(logits, y)``, batch mean: minimising it raises the forget set's cross-entropy."""
    return -F.cross_entropy(logits, y)


def npo_loss(log_p: torch.Tensor, log_p_ref: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """NPO (Zhang et al. 2024): the batch mean of ``(2/beta) * log(1 + (p / p_ref) ** beta)``, i.e.
    ``-(2/beta) * log sigmoid(-beta * log(p / p_ref))``, over forget samples whose label has log-probability
    ``log_p`` under the model and ``log_p_ref`` under the frozen reference (the model before unlearning; detach
    it). At ``p = p_ref`` it is ``(2/beta) log 2``; its gradient is gradient ascent's weighted by
    ``2 (p/p_ref)^beta / (1 + (p/p_ref)^beta)``, which fades as ``p`` falls below ``p_ref``."""
    if beta <= 0:
        raise ValueError(f"NPO needs beta > 0, got {beta}")
    return (2.0 / beta) * F.softplus(beta * (log_p - log_p_ref)).mean()


def forget_similarity_loss(z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """The batch mean of ``max(0, cos(z_i, z_ref_i))``: minimising it turns the forget set's embeddings away from
    the original encoder's ``z_ref`` (detach it) until they are orthogonal to them (no further: an embedding
    pointing the opposite way is as telling as the original one)."""
    return F.cosine_similarity(z, z_ref, dim=-1).clamp(min=0).mean()


def distillation_loss(z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """The batch mean of ``1 - cos(z_i, z_ref_i)``: keeps the retain set's embeddings where the original encoder
    (``z_ref``, detached) put them."""
    return (1 - F.cosine_similarity(z, z_ref, dim=-1)).mean()
