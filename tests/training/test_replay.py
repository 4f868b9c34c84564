"""Replay: a fraction of each batch comes from the source-domain data, unlabeled for the probe."""

from __future__ import annotations

import torch

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import UNLABELED, ArrayDataset
from selfsup.training.pretrain import _with_replay


def test_replay_fraction_of_draws() -> None:
    data = ArrayDataset(torch.zeros(300, 2), torch.zeros(300, dtype=torch.long), [str(i) for i in range(300)])
    replay = ArrayDataset(torch.ones(40, 2), torch.full((40,), UNLABELED), [str(i) for i in range(40)])
    dataset, sampler = _with_replay(data, replay, 0.25, seed=0)
    drawn = list(sampler)
    assert len(drawn) == 400  # 300 / (1 - 0.25): every target sample once, 100 replay draws
    assert sorted(i for i in drawn if i < 300) == list(range(300))
    assert sum(i >= 300 for i in drawn) == 100 and max(drawn) < 340
    first_batch = drawn[:64]
    assert 0 < sum(i >= 300 for i in first_batch) < 64  # mixed into the batches, not appended at the end
    sampler.set_epoch(1)
    assert list(sampler) != drawn  # another order each epoch
    assert dataset[320][1] == UNLABELED and dataset[5][1] == 0


def test_replay_runs_and_refuses_other_shapes(tmp_path, capsys) -> None:
    tiny = ["--epochs", "2", "--max-steps", "3", "--batch-size", "32"]
    assert main(["pretrain", "--data", "builtin:italypowerdemand", "--method", "ts2vec", "--replay",
                 "builtin:gunpoint", "--replay-fraction", "0.3", "--out", str(tmp_path / "ok"), *tiny]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--data", "builtin:italypowerdemand", "--replay", "builtin:basicmotions",
                 "--out", str(tmp_path / "bad"), *tiny]) == EXIT_USER_ERROR
    assert "same channels" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
