"""Domain upsampling at the end of training (``--target-data T --upsample-at-end FRACTION``).

Blakeney et al. 2024, "Does your data spark joy? Performance gains from domain upsampling at the end of
training": over the last part of a run, the domain the model is for gets a larger share of every batch than it has
in the data. Here, over the last ``fraction`` of the run's steps, ``share`` of each training batch (at least one
sample) is replaced by samples of the target data, unlabelled for the online probe (it knows only the data's
classes); before that the batches are the data's alone.

The batch is changed in the module's ``on_before_batch_transfer``, where the trainer's global step is the step the
batch trains, and which target samples a step takes depends only on the seed, the step and the process's rank:
a resumed run (even one killed mid-epoch, whose loader restarts the epoch) upsamples exactly where and what the
uninterrupted run would have. The target samples come in a seeded order, each once before any repeats.
"""

from __future__ import annotations

from typing import Any

import torch

from selfsup.data import UNLABELED, ArrayDataset


class DomainUpsampling:
    """Replace ``share`` of each batch by target samples over the last ``fraction`` of the steps."""

    def __init__(self, target: ArrayDataset, fraction: float, share: float, seed: int) -> None:
        if not 0 < fraction < 1 or not 0 < share <= 1:
            raise ValueError(f"fraction must be in (0, 1) and share in (0, 1], got {fraction} and {share}")
        if len(target) == 0:
            raise ValueError("no target samples to upsample")
        self.target, self.fraction, self.share, self.seed = target, fraction, share, seed
        self._order: tuple[int, torch.Tensor] | None = None  # the last pass's permutation, by its number

    def start(self, total: int) -> int:
        """The first upsampled step of a run of ``total`` steps (the last ``fraction`` of them, at least one)."""
        return total - min(total, max(1, round(self.fraction * total)))

    def count(self, batch_size: int) -> int:
        """Target samples in an upsampled batch of ``batch_size``: ``share`` of it, at least one."""
        return min(batch_size, max(1, round(self.share * batch_size)))

    def _position(self, p: int) -> int:
        """The ``p``-th target sample drawn: pass ``p // n`` is a seeded permutation of the target."""
        n = len(self.target)
        number = p // n
        if self._order is None or self._order[0] != number:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
            self._order = (number, torch.randperm(n, generator=generator))
        return int(self._order[1][p % n])

    def indices(self, step: int, k: int, rank: int = 0, world: int = 1) -> list[int]:
        """The target samples step ``step`` takes on process ``rank`` of ``world``: a function of these alone."""
        first = (step * world + rank) * k
        return [self._position(p) for p in range(first, first + k)]

    def mix(self, batch: Any, step: int, total: int, rank: int = 0, world: int = 1) -> tuple[Any, int]:
        """The batch ``[x, y]`` step ``step`` of ``total`` trains on, and how many of its samples are the target's."""
        if step < self.start(total):
            return batch, 0
        x, y = batch[0], batch[1]
        k = self.count(len(x))
        samples = [self.target[i][0] for i in self.indices(step, k, rank, world)]  # as the loader gives them
        x = torch.cat([x[: len(x) - k], torch.stack(samples).to(x.dtype)])
        y = torch.cat([y[: len(y) - k], torch.full((k,), UNLABELED, dtype=y.dtype)])
        return [x, y, *batch[2:]], k
