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

from selfsup.errors import SelfsupError


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


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # Lightning's names, as --accelerator takes them


def check_accelerator(accelerator: str) -> None:
    """Refuse, in one line, a GPU or MPS accelerator this machine does not have (before any work)."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise SelfsupError(
            f"--accelerator {accelerator}: no CUDA GPU is visible to PyTorch on this machine; "
            "use --accelerator cpu (or auto)."
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise SelfsupError(
            "--accelerator mps: no Apple MPS device is available to PyTorch on this machine; "
            "use --accelerator cpu (or auto)."
        )


def inference_device(accelerator: str = "auto", devices: int | str = 1) -> torch.device:
    """The one device gradient-free work (embedding) runs on, from Lightning-style ``--accelerator`` and
    ``--devices``: a count of 1 (or ``auto``), or one device index written ``K,`` (Lightning's index list).
    ``auto`` takes a CUDA GPU, else an Apple MPS device, else the CPU. Several devices are refused in one line:
    embedding runs in one process (run one process per part of the data to use more)."""
    if accelerator not in ACCELERATORS:
        raise SelfsupError(f"--accelerator {accelerator}: choose one of {', '.join(ACCELERATORS)}.")
    check_accelerator(accelerator)
    text = str(devices).strip()
    index = 0
    if text.endswith(",") and text[:-1].strip().isdigit():
        index = int(text[:-1])
    elif text not in ("1", "auto"):
        raise SelfsupError(
            f"--devices {devices}: embedding runs on one device; pass --devices 1, or one GPU's index and a comma "
            "('1,' is the second GPU), and run one process per part of the data to use several."
        )
    kind = accelerator
    if accelerator == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    kind = "cuda" if kind == "gpu" else kind
    if kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if kind == "cuda" else 1
    if index >= count:
        raise SelfsupError(f"--devices {devices}: device {index} does not exist; this machine has {count} {kind}.")
    return torch.device(kind, index)
