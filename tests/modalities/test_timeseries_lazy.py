"""Series in .npy files read lazily (issue 17): memory-mapped, the in-memory series, ids and statistics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from selfsup import data
from selfsup.data import ArrayDataset, DataOptions, LazyDataset, valid_lengths
from selfsup.datasets import load_builtin
from selfsup.errors import SelfsupError
from selfsup.modalities import timeseries
from selfsup.sources import load_data


def _npy_folder(root, name: str = "japanesevowels"):
    """A UCR/UEA set's official splits as NAME_TRAIN.npy / NAME_TEST.npy, each cut to its longest series (the
    in-memory reader cuts steps missing in every series; a lazy reader keeps the arrays' length)."""
    splits = load_builtin(name)
    assert splits.test is not None
    root.mkdir()
    for part, split in ((splits.train, "TRAIN"), (splits.test, "TEST")):
        x = part.x[:, :, : int(valid_lengths(part.x).max())]
        np.save(root / f"{name}_{split}.npy", x.numpy())
    return root


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num()))


def test_lazy_series_ids_and_statistics_are_the_in_memory_ones(tmp_path):
    root = _npy_folder(tmp_path / "jv")  # ragged: NaN-padded 7-29 steps, test longer than train
    eager = load_data(str(root), DataOptions(in_memory="yes"))
    lazy = load_data(str(root), DataOptions(in_memory="no"))
    assert isinstance(eager.train, ArrayDataset) and isinstance(lazy.train, LazyDataset)
    for a, b in ((eager.train, lazy.train), (eager.test, lazy.test)):
        assert a is not None and b is not None
        assert b.sample_shape == a.sample_shape == (12, 29) and b.stored_dtype == torch.float32
        assert b.ids == a.ids and torch.equal(a.y, b.y) and b.classes == a.classes
        assert _same(b.in_memory().x, a.x)
    assert lazy.preprocessing == eager.preprocessing
    config = timeseries.encoder_config("dilated_conv", eager)  # 270 series <= FIT_SAMPLES: every one
    assert timeseries.encoder_config("dilated_conv", lazy) == config


def test_a_lazy_split_is_a_memory_map_that_pickles_small(tmp_path):
    lazy = load_data(str(_npy_folder(tmp_path / "gp", "gunpoint")), DataOptions(in_memory="no")).train
    assert _same(lazy[3][0], load_builtin("gunpoint").train.x[3])
    assert isinstance(lazy.decode._array, np.memmap)  # opened on first use ...
    assert len(pickle.dumps(lazy)) < 5_000  # ... and not pickled: a worker opens its own
    with pytest.raises(SelfsupError, match="read lazily"):
        _ = lazy.x


def test_auto_maps_npy_series_when_they_pass_the_limit_and_other_files_stay_in_memory(tmp_path, monkeypatch):
    root = _npy_folder(tmp_path / "gp", "gunpoint")
    assert isinstance(load_data(str(root), DataOptions()).train, ArrayDataset)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 200 * 150 * 4 - 1)  # one byte less than both splits
    assert isinstance(load_data(str(root), DataOptions()).train, LazyDataset)
    gunpoint = load_builtin("gunpoint")
    npz = tmp_path / "gunpoint.npz"
    np.savez(npz, x=gunpoint.train.x.numpy(), y=gunpoint.train.y.numpy())
    with pytest.warns(UserWarning, match=r"read whole: only \.npy series are read lazily"):
        assert isinstance(load_data(str(npz), DataOptions(in_memory="no")).train, ArrayDataset)


def test_bad_npy_series_are_refused_in_one_line(tmp_path):
    x = load_builtin("gunpoint").train.x.numpy().copy()
    x[7, 0, 20] = np.inf
    x[9] = np.nan
    np.save(tmp_path / "bad.npy", x)
    lazy = load_data(str(tmp_path / "bad.npy"), DataOptions(in_memory="no")).train  # no series read yet
    lazy[6]
    with pytest.raises(SelfsupError, match=r"series bad/7 in .* holds an infinite value"):
        lazy[7]
    with pytest.raises(SelfsupError, match=r"series bad/9 in .* is empty"):
        lazy[9]
    np.save(tmp_path / "cube.npy", x[None])
    with pytest.raises(SelfsupError, match=r"holds an array of shape \(1, 50, 1, 150\)"):
        load_data(str(tmp_path / "cube.npy"), DataOptions(in_memory="no"))
    np.save(tmp_path / "objects.npy", np.array([[1.0], "a"], dtype=object), allow_pickle=True)
    with pytest.raises(SelfsupError, match="object array"):
        load_data(str(tmp_path / "objects.npy"), DataOptions(in_memory="no"))


def test_pretraining_from_lazy_series_trains_as_from_memory(tmp_path):
    """Same seed, same series, same order: TS2Vec on memory-mapped series ends on the in-memory weights."""
    from selfsup.checkpoint import load_encoder
    from selfsup.recipe import Recipe
    from selfsup.workflows.pretrain import pretrain

    root = _npy_folder(tmp_path / "gp", "gunpoint")
    weights = []
    for mode in ("yes", "no"):
        recipe = Recipe(
            data=str(root), method="ts2vec", batch_size=16, max_steps=2, online_probe=False, in_memory=mode,
            num_workers=0, out=str(tmp_path / f"run-{mode}"), encoder_args={"depth": 2},
        )  # fmt: skip
        pretrain(recipe, progress=False)
        weights.append(load_encoder(tmp_path / f"run-{mode}").state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
