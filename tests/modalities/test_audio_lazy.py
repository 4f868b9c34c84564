"""Audio read lazily (issue 17): segments counted from headers, decoded when asked for, equal bit for bit to the
segments read into memory, whatever the file's rate, channels and format."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from selfsup import data
from selfsup.data import ArrayDataset, DataOptions, LazyDataset, Samples
from selfsup.datasets.speech import FOLDER
from selfsup.errors import SelfsupError
from selfsup.modalities import audio
from selfsup.sources import load_data

WORDS = ("yes", "no", "up")


def _clips(word: str, split: str = "train") -> list[Path]:
    return sorted((FOLDER / split / word).glob("*.flac"))


def _folder(root: Path) -> Path:
    """A train/test folder of the shipped spoken words (8 kHz FLAC), three classes, plus longer real clips: a stereo
    22.05 kHz WAV (about 5 s) and a 44.1 kHz FLAC (about 2.5 s) made of many words each."""
    for split, count in (("train", 4), ("test", 2)):
        for word in WORDS:
            for clip in _clips(word, split)[:count]:
                target = root / split / word / clip.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(clip.read_bytes())
    words = [sf.read(clip, dtype="float32")[0] for clip in _clips("yes")[4:]]  # about 13 s at 8 kHz
    joined = np.concatenate(words)
    sf.write(root / "train" / "yes" / "stereo.wav", np.stack([joined, joined[::-1] * 0.5], axis=1), 22050)
    sf.write(root / "train" / "no" / "long.flac", np.concatenate(words[::-1]), 44100, subtype="PCM_24")
    return root


def _same(a: Samples, b: Samples) -> None:
    assert len(a) == len(b) and a.ids == b.ids and a.classes == b.classes and torch.equal(a.y, b.y)
    assert a.sample_shape == b.sample_shape and a.stored_dtype == b.stored_dtype == torch.float32
    for i in range(len(a)):
        assert np.array_equal(a[i][0].numpy(), b[i][0].numpy(), equal_nan=True), a.ids[i]


def _load(source: Path, **options) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the clips are under a segment: padded, by design
        return load_data(str(source), DataOptions(**options))


@pytest.mark.parametrize("rate, seconds", [(16000, 0.25), (8000, 0.3), (11025, 1.0)])
def test_lazy_segments_are_the_in_memory_ones_bit_for_bit(tmp_path, rate, seconds):
    root = _folder(tmp_path / "words")
    options = {"sample_rate": rate, "segment_seconds": seconds}
    eager, lazy = _load(root, in_memory="yes", **options), _load(root, in_memory="no", **options)
    assert isinstance(eager.train, ArrayDataset) and isinstance(lazy.train, LazyDataset)
    assert eager.preprocessing == lazy.preprocessing and eager.test is not None and lazy.test is not None
    _same(eager.train, lazy.train)
    _same(eager.test, lazy.test)
    assert any(i.startswith("no/long.flac#") for i in lazy.train.ids)  # long files are cut in several segments
    fitted = audio.encoder_config("audio_cnn", eager)
    assert audio.encoder_config("audio_cnn", lazy)["mean"] == pytest.approx(fitted["mean"], abs=1e-9)


@pytest.mark.parametrize(
    "name, rate, kwargs",
    [
        ("speech.wav", 48000, {"subtype": "FLOAT"}),
        ("speech.ogg", 44100, {"subtype": "VORBIS"}),
        ("speech.mp3", 44100, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),  # its seeks are not sample-exact
    ],
)
def test_a_single_long_file_is_read_lazily_segment_by_segment(tmp_path, name, rate, kwargs):
    if kwargs.get("format", "OGG") not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {kwargs['format']}")
    words = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in _clips("go")])  # ~2.7 s at 48 kHz
    path = tmp_path / name
    sf.write(path, np.stack([words, -words * 0.5], axis=1) * 0.7, rate, **kwargs)
    eager, lazy = _load(path, in_memory="yes"), _load(path, in_memory="no")
    assert len(lazy.train) >= 2 and lazy.train.ids == [f"{name}#{k}" for k in range(len(lazy.train))]
    _same(eager.train, lazy.train)


def test_a_lazy_split_holds_file_names_not_samples_and_refuses_steps_that_need_them_all(tmp_path):
    lazy = _load(_folder(tmp_path / "words"), in_memory="no", segment_seconds=2.0).train
    assert len(pickle.dumps(lazy)) < 300 * len(lazy)  # a 2 s segment decoded is 128 kB
    with pytest.raises(SelfsupError, match="read lazily .*--in-memory yes"):
        _ = lazy.x
    assert lazy.head(3).x.shape == (3, 1, 32000)


def test_auto_reads_in_memory_until_the_decoded_segments_pass_the_limit(tmp_path, monkeypatch):
    root = _folder(tmp_path / "words")
    eager = _load(root)
    assert isinstance(eager.train, ArrayDataset)
    segments = len(eager.train) + len(eager.test)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", segments * 16000 * 4)  # exactly the decoded size: still fits
    assert isinstance(_load(root).train, ArrayDataset)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", segments * 16000 * 4 - 1)
    assert isinstance(_load(root).train, LazyDataset)


def test_short_files_are_counted_in_one_warning_as_in_memory(tmp_path):
    root = _folder(tmp_path / "words")
    messages = []
    for mode in ("yes", "no"):
        with pytest.warns(UserWarning, match="shorter than a segment") as caught:
            load_data(str(root), DataOptions(in_memory=mode))
        messages.append([str(w.message) for w in caught if "shorter than a segment" in str(w.message)])
    assert messages[0] == messages[1] and len(messages[0]) == 1


def test_unreadable_files_stop_the_run_in_one_line_up_front_or_when_reached(tmp_path):
    root = _folder(tmp_path / "words")
    wave = sf.read(_clips("up")[5], dtype="float32")[0]
    wave = np.concatenate([wave, wave, wave])
    wave[3000] = np.nan  # in the middle of the second 0.25 s segment (2,000 samples at 8 kHz)
    sf.write(root / "train" / "up" / "nan.wav", wave, 8000, subtype="FLOAT")
    lazy = _load(root, in_memory="no", segment_seconds=0.25).train  # headers only: the NaN is not seen yet
    first = lazy.ids.index("up/nan.wav#0")
    assert not torch.isnan(lazy[first][0][0, :2000]).any()
    with pytest.raises(SelfsupError, match=r"cannot read audio file '.*nan.wav': it holds non-finite samples\."):
        lazy[first + 1]
    with pytest.raises(SelfsupError, match="read lazily .*--bad-files skip"):
        _load(root, in_memory="no", bad_files="skip")
    (root / "test" / "no" / "broken.flac").write_bytes(b"fLaC not really")
    with pytest.raises(SelfsupError, match=r"^cannot read audio file '.*broken.flac': .*\. Fix or remove it") as err:
        _load(root, in_memory="no")
    assert "\n" not in str(err.value)


def test_pretraining_from_lazy_audio_trains_as_from_memory(tmp_path):
    """Same seed, same segments, same order: the lazy path (no workers) ends on the in-memory path's weights."""
    from selfsup.checkpoint import load_encoder
    from selfsup.recipe import Recipe
    from selfsup.workflows.pretrain import pretrain

    root = _folder(tmp_path / "words")
    weights = []
    for mode in ("yes", "no"):
        recipe = Recipe(
            data=str(root), method="simclr", encoder="audio_cnn", batch_size=8, max_steps=2, segment_seconds=0.5,
            online_probe=False, in_memory=mode, num_workers=0, out=str(tmp_path / f"run-{mode}"),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pretrain(recipe, progress=False)
        weights.append(load_encoder(tmp_path / f"run-{mode}").state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
