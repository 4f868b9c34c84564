"""Generate ``builtin:spoken_words``: synthetic one-word clips spoken by espeak-ng, shipped in the package.

The ten Speech Commands keywords (Warden 2018) said by 12 English espeak-ng voices (an accent plus a
voice variant, ``ACCENT+VARIANT``) at 2 speeds and 2 pitches: 480 clips. Each clip is espeak-ng's
22,050 Hz output resampled to 8 kHz (``scipy.signal.resample_poly``), its leading and trailing silence trimmed (kept
from 5 ms before the first to 5 ms after the last sample above 2% of the clip's peak), and written
as 16-bit mono FLAC to ``src/selfsup/datasets/data/spoken_words/{train,test}/WORD/VOICE_sSPEED_pPITCH.flac``.
The split is by voice, and the test voices' variants (the part after ``+``) are never used in training,
so a test voice differs from every training voice in its variant, not only in its accent. British English
is ``en``: espeak-ng 1.51 ignores the variant of ``en-gb+VARIANT`` (it speaks plain ``en-gb``), so the
script checks that every voice's variant changes the speech and that no two clips are the same.

Run from the repository root (needs ``apt-get install espeak-ng``)::

    python scripts/make_spoken_words.py

espeak-ng is deterministic, so the files come out the same on every run with the same espeak-ng
version (1.51 made the shipped ones). The audio is synthetic speech, not recordings of people.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
TRAIN_VOICES = ("en-us+m1", "en-us+f2", "en+m3", "en+m8", "en-gb-scotland+m4", "en-029+f1", "en-us-nyc+m7",
                "en-gb-x-rp+f5")
TEST_VOICES = ("en-us+m5", "en-us+f4", "en+f3", "en-gb-x-gbclan+m2")  # variants unused in TRAIN_VOICES
SPEEDS = (130, 175)  # words per minute (espeak-ng's default is 175)
PITCHES = (35, 65)  # 0-99 (default 50)
RATE = 8000  # Hz: speech below 4 kHz, small files
SOURCE_RATE = 22050  # espeak-ng's output rate
THRESHOLD = 0.02  # of the peak: what counts as sound when trimming silence
MARGIN = RATE // 200  # 5 ms kept around the sound
MAX_SECONDS = 1.0  # every clip must fit one default 1-second segment
OUT = Path(__file__).resolve().parents[1] / "src" / "selfsup" / "datasets" / "data" / "spoken_words"


def variant(voice: str) -> str:
    """The voice variant of ``ACCENT+VARIANT`` (``m5`` of ``en-us+m5``)."""
    return voice.split("+")[1]


def speak(word: str, voice: str, speed: int = 175, pitch: int = 50) -> bytes:
    """espeak-ng's WAV output."""
    return subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                          capture_output=True, check=True).stdout


def check_voices() -> None:
    """The split's variants are disjoint, and each voice's variant changes the speech (espeak-ng falls back to
    the accent's own voice, silently, for a variant it does not apply)."""
    shared = {variant(v) for v in TRAIN_VOICES} & {variant(v) for v in TEST_VOICES}
    assert not shared, f"test voice variants also used in training: {shared}"
    for voice in TRAIN_VOICES + TEST_VOICES:
        assert speak("yes", voice) != speak("yes", voice.split("+")[0]), f"espeak-ng ignores the variant of {voice}"


def synthesise(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """One word as float64 samples at ``RATE``, silence trimmed."""
    wav = speak(word, voice, speed, pitch)
    samples, rate = sf.read(io.BytesIO(wav), dtype="float64")
    assert rate == SOURCE_RATE, rate
    samples = resample_poly(samples, 160, 441)  # 22050 * 160 / 441 = 8000
    loud = np.flatnonzero(np.abs(samples) > THRESHOLD * np.abs(samples).max())
    clip = samples[max(0, loud[0] - MARGIN): loud[-1] + 1 + MARGIN]
    assert len(clip) <= MAX_SECONDS * RATE, (word, voice, speed, pitch, len(clip))
    return np.clip(clip, -1.0, 1.0)


def main() -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; install it with 'apt-get install espeak-ng'.")
    check_voices()
    if OUT.exists():
        shutil.rmtree(OUT)
    total, seen = 0, set()
    for split, voices in (("train", TRAIN_VOICES), ("test", TEST_VOICES)):
        for word in WORDS:
            folder = OUT / split / word
            folder.mkdir(parents=True)
            for voice in voices:
                for speed in SPEEDS:
                    for pitch in PITCHES:
                        path = folder / f"{voice.replace('+', '-')}_s{speed}_p{pitch}.flac"
                        clip = synthesise(word, voice, speed, pitch)
                        assert clip.tobytes() not in seen, f"{path} repeats another clip"
                        seen.add(clip.tobytes())
                        sf.write(path, clip, RATE, subtype="PCM_16")
                        total += path.stat().st_size
    count = len(WORDS) * (len(TRAIN_VOICES) + len(TEST_VOICES)) * len(SPEEDS) * len(PITCHES)
    print(f"wrote {count} clips, {total / 1e6:.2f} MB, to {OUT}")


if __name__ == "__main__":
    main()
