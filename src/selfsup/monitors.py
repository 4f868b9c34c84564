"""Label-free quality monitors of a batch of embeddings: pure functions that training (its callbacks) and
evaluation (``evaluation.monitors.label_free``) both use.

- ``rankme``: effective rank of the embeddings (Garrido et al. 2023, "RankMe: Assessing the Downstream
  Performance of Pretrained Self-Supervised Representations by Their Rank"): ``exp`` of the entropy
  of the normalised singular values; from 1 (collapsed to a line) to ``min(N, D)``.
- ``alignment`` and ``uniformity`` (Wang & Isola 2020, "Understanding Contrastive Representation
  Learning through Alignment and Uniformity on the Hypersphere"), on L2-normalised embeddings:
  the mean ``||f(x) - f(x')||^2`` over positive pairs (lower is better) and
  ``log mean exp(-2 ||f(x) - f(y)||^2)`` over distinct pairs (lower is more uniform).
- ``embedding_spread``: per-dimension std of the normalised embeddings times ``sqrt(D)``; ~1 when
  spread over the sphere, 0 when every input maps to one direction (collapse).

And one labelled monitor, cheap enough to run while training: ``nearest_class_mean_accuracy`` (each test sample
takes the class whose mean normalised training embedding is nearest in cosine; Mensink et al. 2013, "Distance-Based
Image Classification"), which the ``--watch`` curves use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rankme(embedding: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank of ``(N, D)`` embeddings (RankMe). Rows wider than they are many (raw pixels) take their
    singular values from the ``N x N`` Gram matrix's eigenvalues, in float64: the same values at a fraction of an
    SVD's cost."""
    z = embedding.detach().float()
    if z.shape[1] > 2 * z.shape[0]:
        gram = (z.double() @ z.double().T) if z.device.type == "cpu" else (z @ z.T).double()
        singular = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    else:
        singular = torch.linalg.svdvals(z)
    p = singular / singular.sum().clamp_min(eps) + eps
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean squared distance between the normalised embeddings of positive pairs (row i with row i)."""
    a, b = F.normalize(first.detach().float(), dim=1), F.normalize(second.detach().float(), dim=1)
    return float((a - b).square().sum(dim=1).mean())


def uniformity(embedding: torch.Tensor, t: float = 2.0) -> float:
    """``log mean exp(-t ||z_i - z_j||^2)`` over the distinct pairs of normalised embeddings."""
    z = F.normalize(embedding.detach().float(), dim=1)
    # ||a - b||^2 = 2 - 2 a.b for unit rows: one matrix product (pdist is many times slower on wide rows)
    upper = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    distances = (2 - 2 * (z @ z.T)[upper[0], upper[1]]).clamp_min(0)
    return float(torch.logsumexp(-t * distances, dim=0) - math.log(len(distances)))


def embedding_spread(embedding: torch.Tensor) -> float:
    """How spread out a batch's embeddings are (see the module docstring)."""
    z = F.normalize(embedding.detach().float(), dim=1)
    return float(z.std(dim=0).mean() * math.sqrt(z.shape[1]))


def nearest_class_mean_accuracy(
    train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Share of ``test`` rows whose nearest class mean (cosine, over L2-normalised ``train`` rows) is their class."""
    a, b = F.normalize(train.detach().float(), dim=1), F.normalize(test.detach().float(), dim=1)
    classes, index = torch.unique(train_y, return_inverse=True)
    means = torch.zeros(len(classes), a.shape[1], dtype=a.dtype, device=a.device).index_add_(0, index, a)
    predicted = classes[(b @ F.normalize(means, dim=1).T).argmax(dim=1)]
    return float((predicted == test_y).float().mean())
