"""Losses on per-time-step features: TS2Vec's hierarchical contrast and CPC's InfoNCE.

Both contrast within the local batch only (no gather across processes): the crops TS2Vec takes and
the number of tokens of a padded batch differ from rank to rank, so the tensors cannot be gathered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _contrast_pairs(sim: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``(..., 2N, 2N)`` similarities where row ``i`` of the first half is
    positive with row ``i`` of the second half (and back), every other entry but itself negative."""
    n = sim.shape[-1] // 2
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=sim.device)
    log_prob = F.log_softmax(sim.masked_fill(self_mask, float("-inf")), dim=-1)
    index = torch.arange(2 * n, device=sim.device)
    positive = (index + n) % (2 * n)
    return -log_prob[..., index, positive].mean()


def _instance_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Across the batch at each time step (TS2Vec eq. 2); 0 for a batch of one."""
    if z1.shape[0] == 1:
        return z1.new_zeros(())
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # (T, 2B, D)
    return _contrast_pairs(z @ z.transpose(1, 2))


def _temporal_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Across the time steps of each sample (TS2Vec eq. 1); 0 for a single step."""
    if z1.shape[1] == 1:
        return z1.new_zeros(())
    z = torch.cat([z1, z2], dim=1)  # (B, 2T, D)
    return _contrast_pairs(z @ z.transpose(1, 2))


def hierarchical_contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5, temporal_unit: int = 0
) -> torch.Tensor:
    """Hierarchical contrastive loss of TS2Vec (Yue et al. 2022, "TS2Vec: Towards Universal
    Representation of Time Series"), as in the official code.

    ``z1``, ``z2``: ``(B, T, D)`` features of the same ``T`` time steps seen in two crops. At each
    scale: ``alpha`` x the instance-wise contrast (at each step, the other view of the same sample
    against the other ``2B - 2`` samples' features at that step) plus ``1 - alpha`` x the temporal
    contrast (within a sample, the same step in the other view against the other ``2T - 2`` steps;
    only from scale ``temporal_unit`` on). Similarities are raw dot products. Then max-pool over time
    with kernel 2 (an odd last step is dropped) and repeat down to ``T = 1``, where only the instance
    term is added. Returns the mean over scales.
    """
    z1, z2 = z1.float(), z2.float()
    loss = z1.new_zeros(())
    scales = 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * _instance_contrast(z1, z2)
        if scales >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * _temporal_contrast(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if alpha != 0:
        loss = loss + alpha * _instance_contrast(z1, z2)
    scales += 1
    return loss / scales


def cpc_loss(predictions: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE of Contrastive Predictive Coding (van den Oord et al. 2018, "Representation Learning
    with Contrastive Predictive Coding").

    ``predictions``: ``(B, T, K, D)``, where ``predictions[b, t, k - 1] = W_k c_t`` predicts token
    ``z[b, t + k]``; ``z``: ``(B, T, D)`` the encoder's tokens; ``valid``: ``(B, T)`` bool, which
    tokens exist (ragged series), all by default. The score is the log-bilinear ``<W_k c_t, z>``.
    A prediction must pick its true future token among the valid tokens of all samples at the same
    step ``t + k`` (the other samples' tokens are the negatives; drawing them from every step of the
    batch would cost ``(B T)^2`` scores per step ahead). A term counts when its target is valid and
    has at least one valid negative. Returns the mean over ``k`` of the mean over counted terms
    (each horizon weighs the same, as CPC sums its per-step losses); 0 with the graph kept if none.
    """
    batch, steps, horizons, _ = predictions.shape
    if valid is None:
        valid = torch.ones(batch, steps, dtype=torch.bool, device=z.device)
    index = torch.arange(batch, device=z.device)
    per_horizon = []
    for k in range(1, min(horizons, steps - 1) + 1):
        pred = predictions[:, : steps - k, k - 1].float()  # (B, T-k, D)
        target = z[:, k:].float()  # (B, T-k, D)
        present = valid[:, k:].transpose(0, 1)  # (T-k, B): candidate b' exists at step t + k
        scores = torch.einsum("btd,ctd->tbc", pred, target).float()  # (T-k, B, B)
        scores = scores.masked_fill(~present.unsqueeze(1), torch.finfo(scores.dtype).min)
        log_prob = F.log_softmax(scores, dim=-1)[:, index, index]  # (T-k, B)
        counted = present & (present.sum(dim=1, keepdim=True) >= 2)
        if counted.any():
            per_horizon.append(-log_prob[counted].mean())
    if not per_horizon:
        return predictions.sum() * 0.0
    return torch.stack(per_horizon).mean()
