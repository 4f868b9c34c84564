"""Prepared shards read back as a source (selfsup.shards): map-style reads, subsets, LitData's streaming loader (each
sample once an epoch, resumable mid-epoch), and the one-line refusals (truncated chunk, foreign LitData folder,
another modality, object storage out of reach, litdata missing)."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.modalities import detect_modality
from selfsup.shards import ShardDataset, litdata
from selfsup.sources import load_data, source_modality
from selfsup.workflows.prepare import prepare

pytest.importorskip("litdata")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "digits"
    prepare("builtin:digits", out, progress=False, num_workers=2)
    return out


def _content(x: torch.Tensor) -> bytes:
    return (x * 255).round().to(torch.uint8).numpy().tobytes()


def test_a_shard_folder_is_detected_and_read_as_its_modality(shards: Path) -> None:
    assert detect_modality(str(shards)) == "image"
    assert source_modality(str(shards)) == "image"
    splits = load_data(str(shards))
    assert isinstance(splits.train, ShardDataset) and isinstance(splits.test, ShardDataset)
    assert (len(splits.train), len(splits.test)) == (1347, 450)
    assert splits.train.sample_shape == (1, 8, 8) and splits.train.stored_dtype == torch.uint8
    with pytest.raises(SelfsupError, match="read lazily"):
        _ = splits.train.x  # the property refuses


def test_a_subset_stays_shards_and_reads_its_own_samples(shards: Path) -> None:
    train = load_data(str(shards)).train
    part = train.subset([5, 900, 17])
    assert isinstance(part, ShardDataset)
    assert part.ids == [train.ids[5], train.ids[900], train.ids[17]]
    assert torch.equal(part[1][0], train[900][0]) and part[1][1] == int(train.y[900])


def test_the_streaming_loader_gives_each_sample_of_a_subset_once_an_epoch(shards: Path) -> None:
    train = load_data(str(shards)).train
    part = train.subset(list(range(0, len(train), 3)))  # 449 samples spread over every chunk
    expected = Counter(_content(part[i][0]) for i in range(len(part)))
    stream = part.streaming(shuffle=True, seed=0, drop_last=False)
    seen = [(_content(x), y) for x, y in stream]
    assert Counter(content for content, _ in seen) == expected
    order = [content for content, _ in seen]
    assert order != [_content(part[i][0]) for i in range(len(part))]  # shuffled
    loader = part.loader(batch_size=64, num_workers=2, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 449 // 64  # full batches only
    x, y = batches[0]
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert y.dtype == torch.long and set(y.tolist()) <= set(range(10))


def test_the_loader_resumes_mid_epoch_from_its_state(shards: Path) -> None:
    train = load_data(str(shards)).train
    full = [_content(x) for x, _ in _samples(train.loader(batch_size=100, num_workers=0, seed=3))]
    first = train.loader(batch_size=100, num_workers=0, seed=3)
    head = []
    for step, (x, _) in enumerate(first):
        head += [_content(row) for row in x]
        if step == 4:
            break
    state = first.state_dict()
    resumed = train.loader(batch_size=100, num_workers=0, seed=3)
    resumed.load_state_dict(state)
    tail = [_content(x) for x, _ in _samples(resumed)]
    assert head + tail == full  # the same epoch, continued where it stopped


def _samples(loader) -> list[tuple[torch.Tensor, int]]:
    return [(row, int(label)) for x, y in loader for row, label in zip(x, y)]


def test_a_truncated_chunk_is_one_line(shards: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(shards, cut)
    chunk = sorted((cut / "train").glob("chunk-*.bin"))[1]
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(SelfsupError, match=r"is truncated \(100 of"):
        load_data(str(cut))
    chunk.unlink()
    with pytest.raises(SelfsupError, match="is missing"):
        load_data(str(cut))


def test_a_litdata_folder_selfsup_did_not_prepare_is_refused(shards: Path, tmp_path: Path) -> None:
    shutil.copytree(shards / "train", tmp_path / "foreign")
    with pytest.raises(SelfsupError, match="LitData folder without selfsup-shards.json"):
        load_data(str(tmp_path / "foreign"))


def test_other_modality_flags_are_refused(shards: Path) -> None:
    with pytest.raises(SelfsupError, match="holds image shards .* --modality tabular"):
        load_data(str(shards), DataOptions(modality="tabular"))
    with pytest.raises(SelfsupError, match="--image-size cannot be used with the prepared shards"):
        load_data(str(shards), DataOptions(image_size=32))


def test_in_memory_yes_decodes_the_shards(shards: Path) -> None:
    splits = load_data(str(shards), DataOptions(in_memory="yes"))
    lazy = load_data(str(shards))
    assert torch.equal(splits.train.x[10], lazy.train.decode(10))


def test_object_storage_out_of_reach_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(SelfsupError, match=r"cannot read 's3://selfsup-no-such-bucket/shards/selfsup-shards.json'"):
        load_data("s3://selfsup-no-such-bucket/shards")


def test_missing_litdata_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litdata", None)
    with pytest.raises(SelfsupError, match=r"pip install 'selfsup\[scale\]'"):
        litdata()
