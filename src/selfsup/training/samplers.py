"""Samplers of the training loader beyond plain shuffling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class BlockShuffleSampler(torch.utils.data.Sampler[int]):
    """Every item once per epoch: the blocks in random order, the items of each block shuffled among themselves.

    For data read lazily from files of blocks (a Parquet table's row groups), where reading one item reads its whole
    block: in a plain shuffle every item costs a block read; here a block is read about once per epoch and data
    loader worker. Batches then hold items of one or two blocks, as in the shuffle buffers of streaming loaders
    (WebDataset, LitData). The order depends on ``seed`` and the epoch (``set_epoch``, which Lightning calls).
    """

    def __init__(self, blocks: np.ndarray, seed: int) -> None:
        self.order = np.argsort(blocks, kind="stable")  # the items, block by block
        self.bounds = np.flatnonzero(np.diff(blocks[self.order])) + 1
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = np.split(self.order, self.bounds)
        for block in rng.permutation(len(groups)):
            yield from rng.permutation(groups[block]).tolist()
