"""Small helpers for data-parallel training: rank/world lookup, differentiable gather, mean.

Gradient rule used by every loss in :mod:`selfsup.losses`: ``gather_with_grad`` wraps
``torch.distributed.nn.functional.all_gather`` whose backward *sums* the gradients that all
ranks computed for a slice and hands the sum to the rank that owns it. If the per-rank losses
``L_r`` satisfy ``mean_r L_r == L_full`` (the single-process loss on the concatenated global
batch), then the gradient rank ``r`` gets on its local slice is ``W * dL_full/dz_r`` and DDP's
averaging of parameter gradients over the ``W`` ranks yields exactly ``dL_full/dtheta``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """Return ``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all processes along dim 0 (rank order), keeping gradients.

    The backward pass sums the gradients of every rank's copy into the local slice. All ranks
    must pass tensors of the same shape. Returns ``x`` unchanged for a single process.
    """
    _, world_size = world()
    if world_size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in recent torch, but its backward sums grads
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
        parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def _all_reduce(x: torch.Tensor, op: Any) -> torch.Tensor:
    """``x`` reduced elementwise by ``op`` over processes (no gradient); ``x`` itself for a single process."""
    if world()[1] == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=op)
    return out


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes (no gradient); ``x`` itself for a single process."""
    _, world_size = world()
    return x if world_size == 1 else _all_reduce(x, dist.ReduceOp.SUM) / world_size


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of ``x`` over processes (no gradient); ``x`` itself for a single process."""
    return _all_reduce(x, dist.ReduceOp.MAX)
