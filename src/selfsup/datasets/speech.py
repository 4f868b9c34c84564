"""Synthetic spoken words shipped inside the package (``datasets/data/spoken_words``; no downloads).

Made offline by ``scripts/make_spoken_words.py`` with espeak-ng (formant-synthesised speech, not
recordings of people): the ten Speech Commands keywords (Warden 2018, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition") by 12 English voices at 2 speeds and 2 pitches, 8 kHz 16-bit
FLAC, silence trimmed, each clip under 1 s. The split is by voice, and no test voice's variant (espeak-ng's
``+f3``, ``+m5``, ...) is used in training, so the test voices are unseen.
The folder is read by the audio reader, resampled to 16 kHz (or the encoder's rate).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selfsup.data import Splits
from selfsup.errors import SelfsupError

FOLDER = Path(__file__).parent / "data" / "spoken_words"


def load_spoken_words(encoder_config: dict | None = None) -> Splits:
    """The spoken words, at the encoder's sample rate and segment length when given."""
    from selfsup.data import DataOptions
    from selfsup.modalities.audio import load_folder, reading

    if not (FOLDER / "train").is_dir():
        raise SelfsupError(f"the spoken-word clips are missing from the installed package ('{FOLDER}'); reinstall "
                           "selfsup, or regenerate them with scripts/make_spoken_words.py.")
    rate, seconds = reading(DataOptions(), encoder_config)
    return load_folder(FOLDER, rate, seconds, name="builtin:spoken_words")


SPEECH: dict[str, tuple[str, Callable[[dict | None], Splits]]] = {
    "spoken_words": (
        "480 one-word clips, 10 classes (yes, no, up, down, left, right, on, off, stop, go); SYNTHETIC speech made "
        "with espeak-ng by 12 English voices x 2 speeds x 2 pitches, 8 kHz; train/test split by voice "
        "(320 clips by 8 voices / 160 by 4 unseen voices, whose voice variants training never uses)",
        load_spoken_words,
    ),
}
