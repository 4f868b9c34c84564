"""Synthetic spoken words shipped inside the package (``datasets/data/spoken_words``; no downloads).

Made offline by ``scripts/make_spoken_words.py`` with espeak-ng (formant-synthesised speech, not
recordings of people): the ten Speech Commands keywords (Warden 2018, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition") by 12 English voices at 2 speeds and 2 pitches, 8 kHz 16-bit
FLAC, silence trimmed, each clip under 1 s. The split is by voice, and no test voice's variant (espeak-ng's
``+f3``, ``+m5``, ...) is used in training, so the test voices are unseen.
The folder is read by the audio reader, resampled to 16 kHz (or the encoder's rate).

``builtin:spoken_word_captions`` is the text side of the same clips, for paired pre-training (CLIP): one
caption per clip, written from what made it (the word, the voice's accent and sex, speed and pitch:
'the word "yes" spoken slowly by a low-pitched Scottish male voice'), with the clip's id (``WORD/FILE``
without the suffix) and its word as the label, in the clips' train/test split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from selfsup.data import ArrayDataset, Preprocessing, Splits
from selfsup.errors import SelfsupError

FOLDER = Path(__file__).parent / "data" / "spoken_words"
ACCENTS = {
    "en-us": "American",
    "en": "British",
    "en-gb-scotland": "Scottish",
    "en-029": "Caribbean",
    "en-us-nyc": "New York",
    "en-gb-x-rp": "Received Pronunciation",
    "en-gb-x-gbclan": "Lancashire",
}
SPEEDS = {"130": "slowly", "175": "at a normal pace"}
PITCHES = {"35": "low-pitched", "65": "high-pitched"}


def _check_folder() -> None:
    if not (FOLDER / "train").is_dir():
        raise SelfsupError(
            f"the spoken-word clips are missing from the installed package ('{FOLDER}'); reinstall "
            "selfsup, or regenerate them with scripts/make_spoken_words.py."
        )


def load_spoken_words(preprocessing: Preprocessing | None = None) -> Splits:
    """The spoken words, at the encoder's sample rate and segment length when given."""
    from selfsup.data import DataOptions
    from selfsup.modalities.audio import load_folder, reading

    _check_folder()
    rate, seconds = reading(DataOptions(), preprocessing)
    with warnings.catch_warnings():  # every clip is one word, under a second: padded to the segment by design
        warnings.filterwarnings("ignore", message=".*shorter than a segment.*")
        return load_folder(FOLDER, rate, seconds, name="builtin:spoken_words")


def caption(word: str, file_stem: str) -> str:
    """What a clip says and how: ``en-gb-scotland-m4_s130_p35`` -> 'the word "yes" spoken slowly by a
    low-pitched Scottish male voice'."""
    voice, speed, pitch = file_stem.split("_")
    accent, variant = voice.rsplit("-", 1)
    sex = "male" if variant.startswith("m") else "female"
    return f'the word "{word}" spoken {SPEEDS[speed[1:]]} by a {PITCHES[pitch[1:]]} {ACCENTS[accent]} {sex} voice'


def load_spoken_word_captions(preprocessing: Preprocessing | None = None) -> Splits:
    """A caption per spoken-word clip, as token ids of the (text) encoder's tokenizer, ids matching the clips'."""
    from selfsup.modalities.text import dataset, default_preprocessing

    _check_folder()
    preprocessing = preprocessing or default_preprocessing()
    name = "builtin:spoken_word_captions"

    def part(split: str) -> ArrayDataset:
        files = sorted((FOLDER / split).glob("*/*.flac"))
        return dataset(
            [caption(f.parent.name, f.stem) for f in files],
            [f.parent.name for f in files],
            [f"{f.parent.name}/{f.stem}" for f in files],
            preprocessing,
            name,
        )

    return Splits(train=part("train"), test=part("test"), name=name, modality="text", preprocessing=preprocessing)


CAPTIONS_DESCRIPTION = (
    "a caption per builtin:spoken_words clip (its word, the voice's accent and sex, speed and "
    "pitch), with the clip's id and split: the text side for paired pre-training (clip)"
)

SPEECH: dict[str, tuple[str, Callable[[Preprocessing | None], Splits]]] = {
    "spoken_words": (
        "480 one-word clips, 10 classes (yes, no, up, down, left, right, on, off, stop, go); SYNTHETIC speech made "
        "with espeak-ng by 12 English voices x 2 speeds x 2 pitches, 8 kHz; train/test split by voice "
        "(320 clips by 8 voices / 160 by 4 unseen voices, whose voice variants training never uses)",
        load_spoken_words,
    ),
}
