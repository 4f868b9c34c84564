"""Masking policies over a token layout, batched, with the same count of tokens per sample.

A tokenizer tells the layout (``encoders/tokens.py``): ``grid`` is ``(h, w)`` for images, ``(n,)``
for series and tables, and ``ordered`` is False for tables, whose columns have no neighbours.

- ``random``: a uniformly random subset (MAE).
- ``block``: square blocks of ``block`` x ``block`` tokens (images) or runs of ``block`` tokens
  (series), at random offsets (BEiT's blockwise masking, in its simplest form).
- ``span``: runs of random, geometric length with mean ``block`` (series; SpanBERT-style spans).
- ``feature_subset``: a random subset of columns (tables; T-JEPA masks feature subsets).

Every policy ranks the tokens by a random score that is constant over a block or span (plus a tiny
jitter), and masks the lowest ranked ones: the count is exact and whole blocks go first.
"""

from __future__ import annotations

import math

import torch

from selfsup.errors import SelfsupError

POLICIES = ("random", "block", "span", "feature_subset")


def check_policy(policy: str, grid: tuple[int, ...], ordered: bool) -> None:
    """Refuse a policy that does not fit the layout, with the fix in the message."""
    if policy not in POLICIES:
        raise SelfsupError(f"unknown masking policy '{policy}'; choose from {', '.join(POLICIES)}.")
    if policy in ("block", "span") and not ordered:
        raise SelfsupError(
            f"masking '{policy}' needs tokens with neighbours (images, series); "
            "a table's columns have none: use 'random' or 'feature_subset'."
        )
    if policy == "span" and len(grid) != 1:
        raise SelfsupError("masking 'span' is for sequences (series); use 'block' or 'random' for images.")
    if math.prod(grid) < 2:
        raise SelfsupError(
            f"masking needs at least 2 tokens per sample, got a {grid} token grid; "
            "use a smaller patch size, or longer inputs."
        )


def check_masking(encoder, policy: str, x: torch.Tensor) -> None:
    """``check_policy`` for a token encoder's layout on samples ``x`` (a method's ``check_data``)."""
    tokenizer = encoder.tokenizer
    check_policy(policy, tokenizer.grid(x[:2]), tokenizer.ordered)


def _block_ids(batch: int, grid: tuple[int, ...], block: int, generator, device) -> torch.Tensor:
    """``(B, N)`` id of the block each token falls in, with a random offset per sample."""
    per_axis = []
    for size in grid:
        offset = torch.randint(0, block, (batch, 1), generator=generator, device=device)
        per_axis.append((torch.arange(size, device=device) + offset) // block)  # (B, size)
    if len(grid) == 1:
        return per_axis[0]
    rows, cols = per_axis
    return (rows.unsqueeze(-1) * (grid[1] // block + 2) + cols.unsqueeze(1)).flatten(1)


def _span_ids(batch: int, n: int, mean: int, generator, device) -> torch.Tensor:
    starts = torch.rand(batch, n, generator=generator, device=device) < 1.0 / max(1, mean)
    starts[:, 0] = True
    return starts.long().cumsum(1) - 1


def ranking(
    batch: int, grid: tuple[int, ...], policy: str, block: int = 2, generator=None, device=None
) -> torch.Tensor:
    """``(B, N)`` token indices, the ones to mask first in front."""
    n = math.prod(grid)
    jitter = torch.rand(batch, n, generator=generator, device=device)
    if policy in ("random", "feature_subset") or block <= 1:
        score = jitter
    else:
        ids = (
            _span_ids(batch, n, block, generator, device)
            if policy == "span"
            else _block_ids(batch, grid, block, generator, device)
        )
        per_block = torch.rand(batch, int(ids.max()) + 1, generator=generator, device=device)
        score = per_block.gather(1, ids) + 1e-3 * jitter
    return score.argsort(dim=1)


def mask_count(n: int, ratio: float) -> int:
    """Tokens to mask out of ``n``: ``round(ratio * n)``, but at least one masked and one visible."""
    return min(max(1, round(ratio * n)), n - 1)


def split_tokens(
    batch: int,
    grid: tuple[int, ...],
    ratio: float,
    policy: str,
    ordered: bool,
    block: int = 2,
    generator=None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep (B, K), masked (B, M))`` sorted token indices, ``M = mask_count(N, ratio)`` for every sample."""
    check_policy(policy, grid, ordered)
    order = ranking(batch, grid, policy, block, generator, device)
    m = mask_count(math.prod(grid), ratio)
    return order[:, m:].sort(dim=1).values, order[:, :m].sort(dim=1).values


def block_shape(grid: tuple[int, ...], count: int) -> tuple[int, ...]:
    """The shape of a target block of about ``count`` tokens: a run of ``count`` (1-D), or the
    near-square rectangle closest to ``count`` tokens (2-D), never the whole grid."""
    if len(grid) == 1:
        return (min(count, grid[0] - 1),)
    h, w = grid
    bh = min(h, max(1, round(math.sqrt(count))))
    bw = min(w, max(1, math.ceil(count / bh)))
    if bh * bw >= h * w:  # leave at least one token outside the block
        bh, bw = (bh - 1, bw) if bh > 1 else (bh, bw - 1)
    return bh, bw


def _one_block(batch: int, grid: tuple[int, ...], shape: tuple[int, ...], generator, device) -> torch.Tensor:
    """``(B, prod(shape))`` indices of one run (1-D) or rectangle (2-D) of ``shape`` at a random place per sample."""
    if len(grid) == 1:
        start = torch.randint(0, grid[0] - shape[0] + 1, (batch, 1), generator=generator, device=device)
        return start + torch.arange(shape[0], device=device)
    (h, w), (bh, bw) = grid, shape
    top = torch.randint(0, h - bh + 1, (batch, 1, 1), generator=generator, device=device)
    left = torch.randint(0, w - bw + 1, (batch, 1, 1), generator=generator, device=device)
    rows = top + torch.arange(bh, device=device).view(1, -1, 1)
    cols = left + torch.arange(bw, device=device).view(1, 1, -1)
    return (rows * w + cols).flatten(1)


def jepa_masks(
    batch: int,
    grid: tuple[int, ...],
    policy: str,
    ordered: bool,
    *,
    n_targets: int,
    target_scale: tuple[float, float],
    context_scale: tuple[float, float],
    generator=None,
    device=None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """I-JEPA's masks: ``n_targets`` target blocks and a context that overlaps none of them.

    Each target covers a fraction in ``target_scale`` of the tokens (one draw per batch): one contiguous
    block with ``policy='block'``, a random subset with ``'random'``/``'feature_subset'``. The context
    is a random ``context_scale`` fraction of the tokens, taken only from tokens outside every target
    and cut to the same count for the batch (as I-JEPA's collator does). Fewer targets are drawn when
    the grid is too small for ``n_targets`` disjoint ones to leave a context token.
    Returns ``(context (B, K), [target (B, M)] * n)``, sorted indices.
    """
    check_policy(policy, grid, ordered)
    n = math.prod(grid)

    def draw(scale: tuple[float, float]) -> float:
        return scale[0] + (scale[1] - scale[0]) * torch.rand((), generator=generator, device=device).item()

    m = mask_count(n, draw(target_scale))
    shape = block_shape(grid, m) if policy == "block" else (m,)
    size = math.prod(shape)
    n_targets = max(1, min(n_targets, (n - 1) // size))  # the targets can never cover every token
    targets = []
    covered = torch.zeros(batch, n, dtype=torch.bool, device=device)
    for _ in range(n_targets):
        if policy == "block":
            target = _one_block(batch, grid, shape, generator, device)
        else:
            target = ranking(batch, grid, "random", 1, generator, device)[:, :m]
        target = target.sort(dim=1).values
        covered.scatter_(1, target, True)
        targets.append(target)
    free = int((~covered).sum(dim=1).min())  # >= 1: n_targets * size <= n - 1
    k = max(1, min(round(draw(context_scale) * n), free))
    score = torch.rand(batch, n, generator=generator, device=device) + 2.0 * covered
    context = score.argsort(dim=1)[:, :k].sort(dim=1).values
    return context, targets


def ibot_masks(
    batch: int,
    grid: tuple[int, ...],
    ordered: bool,
    ratio: tuple[float, float],
    probability: float,
    generator=None,
    device=None,
) -> torch.Tensor:
    """``(B, N)`` bool masks as DINOv2's collator draws them for iBOT (Zhou et al. 2022; Oquab et al. 2023):
    ``int(probability * B)`` images, chosen at random, are masked, each at its own ratio drawn uniformly from
    ``ratio`` (at least one token masked, one visible), blockwise when the tokens have neighbours (``block`` with
    2-token blocks), at random otherwise (tables); the other images are not masked."""
    n = math.prod(grid)
    order = ranking(batch, grid, "block" if ordered else "random", 2, generator, device)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=order.device).expand(batch, n))
    low, high = ratio
    ratios = low + (high - low) * torch.rand(batch, generator=generator, device=device)
    counts = (ratios * n).round().clamp(1, n - 1)
    chosen = torch.randperm(batch, generator=generator, device=device)[: int(probability * batch)]
    counts = torch.zeros_like(counts).index_copy_(0, chosen, counts[chosen])
    return rank < counts.unsqueeze(1)
