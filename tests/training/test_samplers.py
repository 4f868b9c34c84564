"""The block-wise shuffle of lazily read tables: every row once, a row group's rows together, a new order each epoch."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from selfsup.training.samplers import BlockShuffleSampler


def test_every_item_once_with_each_blocks_items_together_and_a_new_order_each_epoch():
    blocks = np.repeat([0, 1, 2, 3], [5, 3, 7, 1])[np.random.default_rng(0).permutation(16)]  # blocks out of order
    sampler = BlockShuffleSampler(blocks, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(16)) and len(sampler) == 16
    runs = [blocks[i] for i in first]
    assert sum(a != b for a, b in pairwise(runs)) == 3  # four blocks, each visited in one go
    assert list(BlockShuffleSampler(blocks, seed=3)) == first  # the seed fixes the order
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == sorted(first)
