"""The built-in spoken words shipped in the package: sizes, classes, the split by voice, what the files are,
and reading them at an encoder's sample rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import soundfile as sf
import torch

from selfsup.data import Preprocessing
from selfsup.datasets import builtin_datasets, load_builtin
from selfsup.datasets.speech import FOLDER
from selfsup.errors import SelfsupError
from selfsup.sources import load_data

WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


def _generator():
    path = Path(__file__).parents[2] / "scripts" / "make_spoken_words.py"
    spec = importlib.util.spec_from_file_location("make_spoken_words", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sizes_classes_and_split_by_voice():
    dataset = builtin_datasets()["spoken_words"]
    assert dataset.modality == "audio" and "SYNTHETIC" in dataset.description and "espeak-ng" in dataset.description
    splits = load_builtin("spoken_words")
    assert splits.name == "builtin:spoken_words" and splits.modality == "audio"
    assert splits.train.x.shape == (320, 1, 16000) and splits.test.x.shape == (160, 1, 16000)
    assert splits.train.classes == WORDS and splits.test.classes == WORDS
    assert torch.bincount(splits.train.y).tolist() == [32] * 10 and torch.bincount(splits.test.y).tolist() == [16] * 10
    voices = {
        split: {Path(i).name.split("_s")[0] for i in part.ids}
        for split, part in (("train", splits.train), ("test", splits.test))
    }
    assert len(voices["train"]) == 8 and len(voices["test"]) == 4
    # ACCENT-VARIANT: a test voice's variant (f4 of en-us-f4) is never heard in training, in any accent
    variants = {split: {voice.rsplit("-", 1)[1] for voice in names} for split, names in voices.items()}
    assert len(variants["test"]) == 4 and not variants["train"] & variants["test"]
    train_clips = {row.numpy().tobytes() for row in splits.train.x}
    assert len(train_clips) == 320 and not train_clips & {row.numpy().tobytes() for row in splits.test.x}
    lengths = (~torch.isnan(splits.train.x[:, 0])).sum(dim=1)
    assert lengths.min() > 0.2 * 16000 and lengths.max() < 16000  # one word each, padded to the 1-s segment


def test_files_match_the_generator_and_stay_small():
    generator = _generator()
    assert generator.OUT == FOLDER
    files = sorted(FOLDER.rglob("*.flac"))
    per_voice = len(generator.WORDS) * len(generator.SPEEDS) * len(generator.PITCHES)
    assert len(files) == per_voice * (len(generator.TRAIN_VOICES) + len(generator.TEST_VOICES)) == 480
    train_variants = {generator.variant(voice) for voice in generator.TRAIN_VOICES}
    assert not train_variants & {generator.variant(voice) for voice in generator.TEST_VOICES}
    assert not any(voice.startswith("en-gb+") for voice in generator.TRAIN_VOICES + generator.TEST_VOICES)  # ignored
    assert sum(f.stat().st_size for f in files) < 3_000_000
    info = sf.info(files[0])
    assert info.samplerate == generator.RATE == 8000 and info.channels == 1 and info.subtype == "PCM_16"


def test_an_encoder_of_another_modality_is_refused_in_one_line():
    with pytest.raises(SelfsupError, match="trained on text data but 'builtin:spoken_words' is audio"):
        load_data(
            "builtin:spoken_words",
            preprocessing=Preprocessing("text", {"tokenizer": "minilm", "max_length": 8, "pad_id": 0}),
        )


def test_read_at_the_encoders_rate():
    trained = Preprocessing("audio", {"sample_rate": 8000, "segment_seconds": 0.5})
    splits = load_builtin("spoken_words", trained)
    assert splits.preprocessing == trained
    assert splits.train.x.shape == (320, 1, 4000)  # the longest word (0.73 s) leaves under half a segment over


def test_captions_describe_each_clip_with_its_id_label_and_split():
    from selfsup.datasets.speech import caption

    words, captions = load_builtin("spoken_words"), load_builtin("spoken_word_captions")
    assert captions.modality == "text" and captions.train.classes == words.train.classes
    for clips, texts in ((words.train, captions.train), (words.test, captions.test)):
        assert sorted(i.rsplit(".", 1)[0] for i in clips.ids) == sorted(texts.ids)
    assert caption("yes", "en-gb-scotland-m4_s130_p35") == (
        'the word "yes" spoken slowly by a low-pitched Scottish male voice'
    )
    assert (
        caption("go", "en-us-f4_s175_p65")
        == 'the word "go" spoken at a normal pace by a high-pitched American female voice'
    )
    first = captions.train.ids.index("down/en-029-f1_s130_p35")
    assert captions.train.classes[int(captions.train.y[first])] == "down"
