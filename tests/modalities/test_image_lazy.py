"""Image folders read lazily (issue 17): the same samples as in memory, decoded only when asked for."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup import data
from selfsup.data import ArrayDataset, DataOptions, LazyDataset
from selfsup.errors import SelfsupError
from selfsup.modalities import image
from selfsup.sources import load_data


def _folder(root: Path, digits, per_class: int = 6) -> Path:
    """A train/test folder of real digits, three classes, RGB PNGs of 24 px."""
    x, y = digits.train.x.numpy(), digits.train.y.numpy()
    for label in range(3):
        for j, i in enumerate(np.flatnonzero(y == label)[: 2 * per_class]):
            split = "train" if j < per_class else "test"
            path = root / split / str(label) / f"img{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i, 0]).resize((24, 24)).convert("RGB").save(path)
    return root


def test_lazy_reading_gives_the_in_memory_samples_labels_and_ids(tmp_path, digits):
    root = _folder(tmp_path / "data", digits)
    eager = load_data(str(root), DataOptions(image_size=16, in_memory="yes"))
    lazy = load_data(str(root), DataOptions(image_size=16, in_memory="no"))
    assert isinstance(eager.train, ArrayDataset) and isinstance(lazy.train, LazyDataset)
    for a, b in ((eager.train, lazy.train), (eager.test, lazy.test)):
        assert a is not None and b is not None
        assert len(a) == len(b) and a.ids == b.ids and a.classes == b.classes
        assert torch.equal(a.y, b.y)
        assert b.sample_shape == a.sample_shape == (3, 16, 16) and b.stored_dtype == torch.uint8
        for i in range(len(a)):
            assert torch.equal(a[i][0], b[i][0])
    sub = lazy.train.subset([4, 1])
    assert sub.ids == [lazy.train.ids[4], lazy.train.ids[1]] and torch.equal(sub[0][0], eager.train[4][0])
    fitted = image.encoder_config("small_cnn", eager, 16)
    assert image.encoder_config("small_cnn", lazy, 16)["mean"] == pytest.approx(fitted["mean"])  # <= FIT_SAMPLES


def test_a_lazy_split_holds_paths_not_pixels_and_refuses_steps_that_need_them_all(tmp_path, digits):
    lazy = load_data(str(_folder(tmp_path / "data", digits)), DataOptions(image_size=64, in_memory="no")).train
    assert len(pickle.dumps(lazy)) < 400 * len(lazy)  # what each worker process gets: no decoded 64 px images
    with pytest.raises(SelfsupError, match="read lazily .*--in-memory yes"):
        _ = lazy.x
    assert lazy.head(4).x.shape == (4, 3, 64, 64)


def test_auto_reads_in_memory_until_the_decoded_folder_passes_the_limit(tmp_path, digits, monkeypatch):
    root = _folder(tmp_path / "data", digits)
    assert isinstance(load_data(str(root), DataOptions(image_size=16)).train, ArrayDataset)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 36 * 16 * 16 * 3 - 1)  # one byte less than the folder decoded
    assert isinstance(load_data(str(root), DataOptions(image_size=16)).train, LazyDataset)


def test_an_unreadable_file_stops_the_run_when_reached_and_skip_is_refused_up_front(tmp_path, digits):
    root = _folder(tmp_path / "data", digits)
    (root / "train" / "1" / "img2.png").write_bytes(b"not a png")
    lazy = load_data(str(root), DataOptions(image_size=16, in_memory="no")).train  # indexing reads no pixels
    broken = lazy.ids.index(str(Path("1") / "img2.png"))
    lazy[broken - 1]
    with pytest.raises(SelfsupError, match=r"cannot read image '.*img2.png'.*selfsup prepare --bad-files skip"):
        lazy[broken]
    with pytest.raises(SelfsupError, match="read lazily .*--bad-files skip"):
        load_data(str(root), DataOptions(image_size=16, in_memory="no", bad_files="skip"))


def test_pretraining_from_a_lazy_folder_trains_as_from_memory(tmp_path, digits):
    """Same seed, same samples, same order: the lazy path (no workers) ends on the in-memory path's weights."""
    from selfsup.checkpoint import load_encoder
    from selfsup.recipe import Recipe
    from selfsup.workflows.pretrain import pretrain

    root = _folder(tmp_path / "data", digits)
    weights = []
    for mode in ("yes", "no"):
        recipe = Recipe(
            data=str(root), method="simclr", encoder="small_cnn", image_size=16, batch_size=8, max_steps=3,
            online_probe=False, in_memory=mode, num_workers=0, out=str(tmp_path / f"run-{mode}"),
        )  # fmt: skip
        pretrain(recipe, progress=False)
        weights.append(load_encoder(tmp_path / f"run-{mode}").state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_channel_statistics_in_chunks_equal_the_whole_tensor_ones(digits):
    x = digits.train.x[:300]
    mean, std = image.channel_statistics(x, chunk=7)
    floats = x.float() / 255
    assert mean == pytest.approx(floats.mean(dim=(0, 2, 3)).tolist(), rel=1e-6)
    assert std == pytest.approx(floats.std(dim=(0, 2, 3)).tolist(), rel=1e-6)
    rasters = torch.full((5, 2, 3, 3), 7.0)  # one value: no spread, floored at 1e-3
    assert image.channel_statistics(rasters) == ([7.0, 7.0], [pytest.approx(1e-3)] * 2)


def test_a_broken_file_met_by_a_worker_mid_run_is_one_line_exit_2(tmp_path, digits, capsys):
    from selfsup.cli import main

    root = _folder(tmp_path / "data", digits)
    (root / "train" / "2" / "img0.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(root), "--in-memory", "no", "--num-workers", "1", "--max-steps", "4"]
    code = main([*args, "--batch-size", "4", "--image-size", "16", "--no-online-probe", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("selfsup: error: cannot read image '") and "img0.png" in err[-1]
    assert not out.exists()  # no checkpoint was written before the failure: nothing is left behind
