"""The audio reader on real files written with soundfile: formats, mono mixing, resampling, segments, labels,
the train/test layout, detection, and clear errors on bad folders, files and options."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from selfsup.data import UNLABELED, DataOptions, Preprocessing
from selfsup.errors import SelfsupError
from selfsup.modalities import detect_modality, get_modality
from selfsup.modalities.audio import load_folder, reading, segments
from selfsup.sources import load_data


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, **kwargs)
    return path


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(
    "suffix, rate, subtype",
    [(".wav", 44100, "PCM_16"), (".flac", 22050, "PCM_24"), (".ogg", 48000, "VORBIS"), (".wav", 8000, "FLOAT")],
)
def test_each_format_is_resampled_and_keeps_its_frequency(tmp_path, suffix, rate, subtype):
    path = write(tmp_path / f"tone{suffix}", sine(440.0, 1.0, rate), rate, subtype=subtype)
    splits = load_data(str(path))
    assert splits.modality == "audio" and splits.preprocessing == Preprocessing(
        "audio", {"sample_rate": 16000, "segment_seconds": 1.0}
    )
    x = splits.train.x
    assert x.dtype == torch.float32 and x.shape == (1, 1, 16000)
    wave = x[0, 0].numpy()
    assert not np.isnan(wave).any()
    assert abs(peak_hz(wave, 16000) - 440.0) <= 1.0
    assert np.sqrt(np.mean(wave[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # Vorbis is lossy


def test_resampling_keeps_amplitude_and_removes_what_the_new_rate_cannot_hold(tmp_path):
    rate = 48000
    tone = sine(1000.0, 1.0, rate) + sine(7000.0, 1.0, rate, 0.3)  # 7 kHz is above 8 kHz's Nyquist (4 kHz)
    path = write(tmp_path / "two_tones.wav", tone, rate, subtype="FLOAT")
    wave = load_folder(path, sample_rate=8000).train.x[0, 0].numpy()
    assert wave.shape == (8000,)
    assert abs(peak_hz(wave, 8000) - 1000.0) <= 1.0
    rms = np.sqrt(np.mean(wave[500:-500] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.02)  # the 1 kHz tone alone: no alias of the 7 kHz one


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(300.0, 0.5, 16000), sine(300.0, 0.5, 16000, amplitude=0.1)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    x = load_folder(path).train.x
    assert np.allclose(x[0, 0, :8000].numpy(), (left + right) / 2, atol=1e-6)


def test_long_files_are_cut_into_segments_and_short_ones_nan_padded(tmp_path):
    rate = 16000
    root = tmp_path / "clips"
    write(root / "long.wav", sine(200.0, 2.6, rate), rate)  # 2 full segments + 0.6 s: 3 segments
    write(root / "trail.wav", sine(200.0, 2.4, rate), rate)  # the 0.4 s tail is under half a segment: 2
    write(root / "short.flac", sine(200.0, 0.25, rate), rate)  # one segment, NaN after 0.25 s
    with pytest.warns(
        UserWarning,
        match=r"^1 of 3 audio files are shorter than a segment \(the shortest 0.25 s\) "
        r"and were padded to 1 s \(read as silence\)\.$",
    ):
        train = load_folder(root).train
    assert train.ids == ["long.wav#0", "long.wav#1", "long.wav#2", "short.flac", "trail.wav#0", "trail.wav#1"]
    assert train.y.tolist() == [UNLABELED] * 6 and train.classes is None
    x = train.x[:, 0]
    assert not torch.isnan(x[[0, 1, 4, 5]]).any()
    assert torch.isnan(x[2, 9600:]).all() and not torch.isnan(x[2, :9600]).any()  # 0.6 s of signal
    assert torch.isnan(x[3, 4000:]).all() and not torch.isnan(x[3, :4000]).any()
    assert load_folder(root, segment_seconds=0.5).train.x.shape == (5 + 1 + 5, 1, 8000)


def test_a_clip_shorter_than_a_segment_is_padded_with_a_warning(tmp_path):
    rate = 16000
    write(tmp_path / "clips" / "blip.wav", sine(300.0, 0.01, rate), rate)
    write(tmp_path / "clips" / "tone.wav", sine(300.0, 0.02, rate), rate)
    write(tmp_path / "clips" / "full.wav", sine(300.0, 0.5, rate), rate)
    with pytest.warns(
        UserWarning,
        match=r"^2 of 3 audio files are shorter than a segment \(the shortest 0.01 s\) "
        r"and were padded to 0.5 s",
    ) as record:
        x = load_folder(tmp_path / "clips", segment_seconds=0.5).train.x
    assert len(record) == 1 and torch.isnan(x[0, 0, 160:]).all() and not torch.isnan(x[0, 0, :160]).any()


def test_segments_rule():
    wave = np.arange(25, dtype=np.float32)
    assert [len(p) for p in segments(wave, 10)] == [10, 10, 10]  # a 5-sample tail is half a segment: kept
    assert len(segments(wave[:24], 10)) == 2
    assert len(segments(wave[:3], 10)) == 1 and np.isnan(segments(wave[:3], 10)[0][3:]).all()


def test_class_subfolders_are_labels_and_train_test_gives_both_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for word, freq in (("high", 880.0), ("low", 220.0)):
            for i in range(n):
                write(tmp_path / "words" / split / word / f"{i}.wav", sine(freq, 0.5, 16000), 16000)
    splits = load_data(str(tmp_path / "words"))
    assert splits.modality == "audio"
    assert splits.train.classes == ["high", "low"] and splits.test.classes == ["high", "low"]
    assert splits.train.y.tolist() == [0, 0, 0, 1, 1, 1] and splits.test.y.tolist() == [0, 0, 1, 1]
    assert splits.train.ids[0] == str(Path("high") / "0.wav")
    one = load_folder(tmp_path / "words" / "train")
    assert one.test is None and one.train.labeled


def test_detection(tmp_path):
    write(tmp_path / "a" / "x" / "c1" / "clip.ogg", sine(300.0, 0.2, 16000), 16000)
    (tmp_path / "img").mkdir()
    assert detect_modality(str(tmp_path / "a")) == "audio"
    assert detect_modality(str(tmp_path / "clip.FLAC")) == "audio"
    assert detect_modality(str(tmp_path / "img")) == "image"


def test_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelfsupError, match="no audio files found"):
        load_folder(tmp_path / "empty")
    root = tmp_path / "mixed"
    write(root / "loose.wav", sine(300.0, 0.2, 16000), 16000)
    write(root / "cls" / "in.wav", sine(300.0, 0.2, 16000), 16000)
    with pytest.raises(SelfsupError, match="both audio files and class sub-folders"):
        load_folder(root)
    bad = tmp_path / "bad"
    write(bad / "good.wav", sine(300.0, 0.2, 16000), 16000)
    (bad / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(SelfsupError, match="cannot read audio file .*broken.wav.*--bad-files skip"):
        load_folder(bad)
    with pytest.raises(SelfsupError, match="cannot read audio file .*broken.wav.*pass another file") as info:
        load_folder(bad / "broken.wav")  # one file: skipping it would leave nothing, so no --bad-files hint
    assert "--bad-files" not in str(info.value)
    with pytest.warns(
        UserWarning, match=rf"^skipped 1 unreadable audio file \({re.escape(str(bad / 'broken.wav'))}: .+\)$"
    ):
        skipped = load_folder(bad, bad_files="skip").train
    assert skipped.ids == ["good.wav"] and skipped.skipped == [str(bad / "broken.wav")]
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.flac").write_bytes(b"")
    with pytest.raises(SelfsupError, match="none of the 1 audio files"):
        load_folder(tmp_path / "only_bad", bad_files="skip")
    with pytest.raises(SelfsupError, match="sample rate must be a whole number of Hz"):
        load_folder(bad, sample_rate=22050.5)
    with pytest.raises(SelfsupError, match="sample rate"):
        load_data(str(bad), DataOptions(sample_rate=100))
    with pytest.raises(SelfsupError, match="segment length"):
        load_data(str(bad), DataOptions(segment_seconds=0))
    with pytest.raises(SelfsupError, match="cannot be used with builtin:spoken_words"):
        load_data("builtin:spoken_words", DataOptions(sample_rate=8000))


def test_new_data_is_read_as_the_encoder_was_trained(tmp_path):
    trained = Preprocessing("audio", {"sample_rate": 8000, "segment_seconds": 0.5})
    assert reading(DataOptions(), trained) == (8000, 0.5)
    assert reading(DataOptions(sample_rate=8000), trained) == (8000, 0.5)
    with pytest.raises(SelfsupError, match="--sample-rate 16000 differs from the encoder's 8000"):
        reading(DataOptions(sample_rate=16000), trained)
    path = write(tmp_path / "tone.wav", sine(440.0, 1.0, 16000), 16000)
    splits = load_data(str(path), preprocessing=trained)
    assert splits.train.x.shape == (2, 1, 4000) and splits.preprocessing == trained


def test_an_audio_encoders_preprocessing_is_its_rate_and_segment_length(tmp_path):
    """What an audio encoder fitted on some data reads new files with: the rate and clip length in its config."""
    from selfsup.encoders.audio import audio_encoder_config

    path = write(tmp_path / "tone.wav", sine(440.0, 1.0, 16000), 16000)
    splits = load_data(str(path), DataOptions(sample_rate=8000, segment_seconds=0.5))
    config = get_modality("audio").encoder_config("audio_cnn", splits, DataOptions(), {"n_mels": 16, "width": 8})
    assert (config["sample_rate"], config["segment_seconds"]) == (8000, 0.5)
    fitted = get_modality("audio").preprocessing(splits, DataOptions(), config)
    assert fitted == Preprocessing("audio", {"sample_rate": 8000, "segment_seconds": 0.5}) == splits.preprocessing
    other = get_modality("audio").preprocessing(splits, DataOptions(), audio_encoder_config("audio_cnn", 16000, 1.0))
    assert other.settings == {"sample_rate": 16000, "segment_seconds": 1.0}
