"""Masking policies: exact counts, disjoint and complete splits, contiguous blocks and spans, clear refusals."""

from __future__ import annotations

import pytest
import torch

from selfsup.errors import SelfsupError
from selfsup.methods.masking import jepa_masks, mask_count, split_tokens


def runs(index: torch.Tensor) -> int:
    """Number of maximal runs of consecutive integers in a sorted 1-D index."""
    return int((index.diff() != 1).sum()) + 1


@pytest.mark.parametrize(
    "policy, grid, ordered",
    [
        ("random", (4, 4), True),
        ("block", (8, 8), True),
        ("block", (40,), True),
        ("span", (40,), True),
        ("feature_subset", (9,), False),
    ],
)
def test_split_is_exact_disjoint_and_complete(policy, grid, ordered) -> None:
    torch.manual_seed(0)
    n = torch.tensor(grid).prod().item()
    keep, masked = split_tokens(16, grid, 0.75, policy, ordered, block=3)
    assert masked.shape == (16, mask_count(n, 0.75)) and keep.shape == (16, n - masked.shape[1])
    everything = torch.cat([keep, masked], 1).sort(1).values
    assert torch.equal(everything, torch.arange(n).expand(16, -1))  # each token exactly once
    assert (keep.diff(dim=1) > 0).all() and (masked.diff(dim=1) > 0).all()  # sorted


def test_mask_count_leaves_one_of_each() -> None:
    assert mask_count(4, 0.75) == 3 and mask_count(4, 0.99) == 3 and mask_count(4, 0.01) == 1
    assert mask_count(196, 0.75) == 147


def test_spans_and_blocks_are_contiguous() -> None:
    torch.manual_seed(0)
    _, random_mask = split_tokens(64, (60,), 0.5, "random", True)
    _, spans = split_tokens(64, (60,), 0.5, "span", True, block=6)
    _, blocks = split_tokens(64, (60,), 0.5, "block", True, block=6)
    mean_runs = {
        name: sum(runs(row) for row in m) / len(m)
        for name, m in [("random", random_mask), ("span", spans), ("block", blocks)]
    }
    # 30 of 60 masked: random masking makes ~15 runs; runs of mean length 6 make ~5-6
    assert mean_runs["random"] > 12
    assert mean_runs["span"] < 8 and mean_runs["block"] < 8


def test_policies_that_need_neighbours_are_refused_on_tables() -> None:
    for policy in ("block", "span"):
        with pytest.raises(SelfsupError, match="a table's columns have none"):
            split_tokens(2, (10,), 0.5, policy, ordered=False)
    with pytest.raises(SelfsupError, match="'span' is for sequences"):
        split_tokens(2, (4, 4), 0.5, "span", ordered=True)
    with pytest.raises(SelfsupError, match="at least 2 tokens"):
        split_tokens(2, (1,), 0.5, "random", ordered=True)
    with pytest.raises(SelfsupError, match="unknown masking policy"):
        split_tokens(2, (8,), 0.5, "blocks", ordered=True)


@pytest.mark.parametrize("grid, n_targets", [((8, 8), 4), ((50,), 4), ((4, 4), 3)])
def test_jepa_targets_are_blocks_and_the_context_avoids_them(grid, n_targets) -> None:
    """(4, 4) is vit's default grid: 2 x 2 targets, so at most 3 fit and leave a context token."""
    torch.manual_seed(0)
    context, targets = jepa_masks(
        256, grid, "block", True, n_targets=4, target_scale=(0.15, 0.2), context_scale=(0.85, 1.0)
    )
    assert len(targets) == n_targets
    for target in targets:
        assert target.shape[0] == 256
        for row in target[:16]:
            if len(grid) == 1:
                assert runs(row) == 1  # one contiguous run
            else:
                rows, cols = row // grid[1], row % grid[1]
                h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
                assert h * w == len(row)  # a full rectangle
    covered = torch.zeros(256, torch.tensor(grid).prod().item(), dtype=torch.bool)
    for target in targets:
        covered.scatter_(1, target, True)
    assert not covered.gather(1, context).any()  # the context never sees a target token
    assert context.shape[1] >= 1


def test_jepa_feature_subsets_on_a_small_table() -> None:
    """Iris has 4 columns: fewer targets are drawn so that a context column is left."""
    torch.manual_seed(0)
    context, targets = jepa_masks(
        5, (4,), "feature_subset", False, n_targets=4, target_scale=(0.2, 0.4), context_scale=(0.2, 0.4)
    )
    covered = torch.zeros(5, 4, dtype=torch.bool)
    for target in targets:
        covered.scatter_(1, target, True)
    assert 1 <= len(targets) <= 3 and context.shape[1] >= 1
    assert not covered.gather(1, context).any()


def test_ibot_masks_mask_half_the_images_at_a_ratio_in_range() -> None:
    """DINOv2's collator: int(0.5 * B) images masked, each at its own ratio in [0.1, 0.5] of the 16 tokens."""
    from selfsup.methods.masking import ibot_masks

    torch.manual_seed(0)
    mask = ibot_masks(64, (4, 4), True, (0.1, 0.5), 0.5)
    counts = mask.sum(dim=1)
    assert mask.shape == (64, 16) and int((counts > 0).sum()) == 32
    masked = counts[counts > 0]
    assert int(masked.min()) >= 2 and int(masked.max()) <= 8  # round(0.1 * 16) .. round(0.5 * 16)
    assert len(set(masked.tolist())) > 2  # ratios differ between images
    everyone = ibot_masks(8, (5,), False, (0.2, 0.2), 1.0)  # a table: 1 of 5 columns, at random, every row
    assert everyone.sum(dim=1).tolist() == [1] * 8
