"""Domain upsampling's batches, on real digits: the data is classes 0-4, the target classes 5-9. Before the last
``fraction`` of the steps no batch holds a target sample; after it, ``share`` of each does, each one a real target
image (found by its pixels), unlabelled, in an order that depends on the step alone (so a resumed run repeats it)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from selfsup.data import UNLABELED, ArrayDataset, Splits
from selfsup.training.upsample import DomainUpsampling

STEPS, BATCH = 20, 32


def _part(digits: Splits, classes: range) -> ArrayDataset:
    keep = torch.isin(digits.train.y, torch.tensor(list(classes))).nonzero().flatten()
    return digits.train.subset(keep.numpy())


def _batches(digits: Splits, upsample: DomainUpsampling) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    data, batches, step = _part(digits, range(5)), [], 0
    generator = torch.Generator().manual_seed(0)
    while step < STEPS:  # epochs of the data, as the training loader gives them
        for batch in DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True, generator=generator):
            if step == STEPS:
                break
            (x, y), k = upsample.mix(batch, step, STEPS)
            batches.append((x, y, k))
            step += 1
    return batches


def test_the_last_part_of_the_steps_takes_the_target_share_of_each_batch(digits) -> None:
    target = _part(digits, range(5, 10))
    upsample = DomainUpsampling(target, fraction=0.25, share=0.5, seed=0)
    assert upsample.start(STEPS) == 15
    target_pixels = {target[i][0].numpy().tobytes(): int(target.y[i]) for i in range(len(target))}
    shares = []
    for x, y, k in _batches(digits, upsample):
        from_target = [row.numpy().tobytes() in target_pixels for row in x]
        assert sum(from_target) == k == int((y == UNLABELED).sum())  # the unlabelled rows are the target's
        assert all(target_pixels[row.numpy().tobytes()] >= 5 for row, t in zip(x, from_target, strict=True) if t)
        assert x.shape == (BATCH, 1, 8, 8) and x.dtype == torch.float32 and float(x.max()) <= 1.0
        shares.append(sum(from_target) / len(x))
    assert shares[:15] == [0.0] * 15  # the first part: the data alone
    assert shares[15:] == [0.5] * 5  # the last quarter: half of each batch from the target


def test_which_target_samples_a_step_takes_depends_on_the_step_alone(digits) -> None:
    target = _part(digits, range(5, 10))
    run = DomainUpsampling(target, 0.25, 0.5, seed=3)
    taken = [run.indices(step, 16) for step in range(15, 20)]
    resumed = DomainUpsampling(target, 0.25, 0.5, seed=3)  # a new process, asked for step 18 first
    assert resumed.indices(18, 16) == taken[3]
    flat = [i for step in taken for i in step]
    assert len(set(flat)) == len(flat)  # 80 draws of ~670: none repeated within a pass
    assert DomainUpsampling(target, 0.25, 0.5, seed=4).indices(15, 16) != taken[0]
    assert run.indices(15, 16, rank=1, world=2) != run.indices(15, 16, rank=0, world=2)  # each device its own


def test_counts_and_bad_values(digits) -> None:
    target = _part(digits, range(5, 10))
    upsample = DomainUpsampling(target, 0.01, 0.1, seed=0)
    assert upsample.start(50) == 49 and upsample.count(4) == 1  # at least one step, at least one sample
    assert DomainUpsampling(target, 0.5, 1.0, seed=0).count(32) == 32
    for fraction, share in ((0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.5)):
        with pytest.raises(ValueError):
            DomainUpsampling(target, fraction, share, seed=0)
