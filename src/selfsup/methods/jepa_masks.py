"""The masking policies of two JEPA variants, next to I-JEPA's multi-block one (``masking.jepa_masks``).

- ``tjepa_masks``: T-JEPA (tables; repository ``jose-melo/t-jepa``, ``src/mask.py``): the context is drawn
  first, a random ``context_scale`` share of the features; each of ``n_targets`` targets is a random
  ``target_scale`` share drawn from the features outside the context, independently of the other targets
  (targets may overlap one another, never the context). Counts are drawn once per batch.
- ``ecg_masks``: ECG-JEPA (series; repository ``kweimann/ECG-JEPA``, ``data/masks.py``): keep a random
  ``context_scale`` share of the patches (``ceil``), and mask the rest as contiguous runs along time of at
  least ``min_block`` patches, each placed in a free interval chosen in proportion to its length; a remainder
  shorter than ``min_block`` is attached to an existing run. Every token spans all channels (leads), so the
  same time steps are masked in every lead. One target: every masked patch.

Both return ``(context (B, K), [target (B, M)] * n)`` sorted indices, the same counts for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from selfsup.errors import SelfsupError


def _share(scale: tuple[float, float], generator, device) -> float:
    return scale[0] + (scale[1] - scale[0]) * torch.rand((), generator=generator, device=device).item()


def _subset(rows: torch.Tensor, count: int, generator, device) -> torch.Tensor:
    """A uniformly random ``count`` of each row's entries, sorted: ``(B, L) -> (B, count)``."""
    order = torch.rand(rows.shape, generator=generator, device=device).argsort(dim=1)[:, :count]
    return rows.gather(1, order).sort(dim=1).values


def tjepa_masks(
    batch: int,
    n: int,
    *,
    n_targets: int,
    target_scale: tuple[float, float],
    context_scale: tuple[float, float],
    generator=None,
    device=None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """T-JEPA's masks over ``n`` features (see the module docstring).

    The context count is ``round(n * low) + round((round(n * high) - round(n * low)) * u)`` as in the
    repository, at least 1; the target count likewise, at most the ``n - context`` features left."""
    if n < 2:
        raise SelfsupError(f"T-JEPA masking needs at least 2 features, got {n}.")

    def count(scale: tuple[float, float]) -> int:
        low, high = round(n * scale[0]), round(n * scale[1])
        u = torch.rand((), generator=generator, device=device).item()
        return max(1, low + round((high - low) * u))

    k = min(count(context_scale), n - 1)
    m = min(count(target_scale), n - k)
    order = torch.rand(batch, n, generator=generator, device=device).argsort(dim=1)
    context, rest = order[:, :k].sort(dim=1).values, order[:, k:]
    return context, [_subset(rest, m, generator, device) for _ in range(n_targets)]


def keep_block_mask(n: int, n_keep: int, min_block: int, randint: Callable[[int, int], int]) -> list[bool]:
    """ECG-JEPA's mask of one sample: ``True`` for the ``n_keep`` kept patches, ``False`` for the masked runs.

    ``randint(low, high)`` draws an integer in ``[low, high]``, inclusive. Each step draws a free patch
    (choosing its free interval in proportion to length), a run length in ``[min_block, left]`` (or what is
    left, when less), and the run's start in the interval; a run as long as its interval masks all of it, and a
    short remainder is attached to a masked neighbour (either end of the interval that touches one)."""
    free = [(0, n)]  # intervals of unmasked patches
    left = n - n_keep
    while left > 0:
        position = randint(0, sum(end - start for start, end in free) - 1)
        i = 0
        while position >= free[i][1] - free[i][0]:  # the free interval holding the drawn patch
            position -= free[i][1] - free[i][0]
            i += 1
        start, end = free.pop(i)
        size = randint(min_block, left) if left >= min_block else left
        if end - start <= size:
            left -= end - start
            continue
        if left >= min_block:
            split = randint(start, end - size)
        else:
            choices = ([start] if start > 0 else []) + ([end - size] if end < n else [])
            split = choices[randint(0, len(choices) - 1)] if choices else randint(start, end - size)
        free += [(start, split), (split + size, end)]
        left -= size
    kept = [False] * n
    for start, end in free:
        kept[start:end] = [True] * (end - start)
    return kept


def ecg_masks(
    batch: int,
    n: int,
    *,
    context_scale: tuple[float, float],
    min_block: int,
    generator=None,
    device=None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """ECG-JEPA's masks over ``n`` time patches (see the module docstring): ``(kept, [masked])``."""
    if n < 2:
        raise SelfsupError(f"ECG-JEPA masking needs at least 2 time patches, got {n}.")
    n_keep = min(max(1, math.ceil(_share(context_scale, generator, None) * n)), n - 1)

    def randint(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=generator).item())

    kept = torch.tensor([keep_block_mask(n, n_keep, min_block, randint) for _ in range(batch)], device=device)
    index = torch.arange(n, device=device).expand(batch, n)
    context = index[kept].view(batch, n_keep)
    return context, [index[~kept].view(batch, n - n_keep)]
