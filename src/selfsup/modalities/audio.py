"""Audio: folder reader, view factory, encoder configuration and the raw-input baseline.

Sources: an audio file, or a folder of them read like an image folder: files directly in the folder are
unlabeled, class sub-folders are labeled (labels are used for probing only), and a folder with
``train/`` and ``test/`` sub-folders gives both splits. Files are read with soundfile (libsndfile:
WAV, FLAC, OGG/Vorbis, MP3), mixed to mono (the mean of the channels) and resampled to the sample rate
(``DataOptions.sample_rate``, default 16 kHz, or the encoder's) with ``scipy.signal.resample_poly``
(polyphase, Kaiser-windowed anti-aliasing filter).

Each file is cut into segments of ``segment_seconds`` (default 1 s, or the encoder's), from its start;
a trailing piece is kept when it is at least half a segment long (or is the whole file), and a piece
shorter than a segment is padded at the end with NaN, which marks padding as in time series: the
encoders read it as silence and leave the frames after a clip's end out of pooling and attention, and
the per-bin statistics ignore them. ``x`` is float32 ``(N, 1, samples)``. Sample ids are the file's
path in the folder, with ``#k`` (the 0-based segment) for a file cut into several segments. Files
shorter than a segment (padded to one) are counted in one warning.

Unreadable files (corrupt, empty, non-finite samples) stop the run (``bad_files="fail"``) or are left
out (``"skip"``, with a warning), as for images.

Read lazily (``--in-memory no``, or ``auto`` when the decoded segments, 4 bytes a sample, would pass
``IN_MEMORY_BYTES``; issue 17), each file's segments are counted from its header (``soundfile.info``: frames and
rate), and a segment is decoded when training asks for it: only the frames its resampled samples depend on
are read (``resample_poly``'s filter reaches ``10 * max(up, down)`` upsampled samples), so segments are the
in-memory ones bit for bit (MP3, whose seeks libsndfile does not land on the exact sample, is decoded from the
file's start to the segment's end: convert long MP3 files to FLAC, or prepare them). A file whose header is
unreadable stops the run up front; one that turns out unreadable (or non-finite, or shorter than its header
says) in a segment stops it when that segment is reached, naming it, and ``--bad-files skip`` is refused
(prepare the data instead).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

import numpy as np
import torch
from rich.progress import track

from selfsup.data import (
    UNLABELED,
    ArrayDataset,
    DataOptions,
    LazyDataset,
    Preprocessing,
    Samples,
    Splits,
    fit_sample,
    reads_lazily,
    refuse_skipping_lazily,
    warn_skipped,
)
from selfsup.errors import SelfsupError, first_line, require
from selfsup.modalities import AUDIO_SUFFIXES, Modality
from selfsup.modalities.view_args import bounded_number, check_known, crop_pair
from selfsup.views import ViewSpec

NAME = "audio"
DEFAULT_ENCODER = "audio_cnn"
TOKEN_ENCODER = "spec_transformer"  # the default for masked methods, which need tokens
SUFFIXES = AUDIO_SUFFIXES
DEFAULT_SAMPLE_RATE = 16000
DEFAULT_SEGMENT_SECONDS = 1.0
MAX_SAMPLE_RATE = 384000
MAX_SEGMENT_SECONDS = 600.0
MIN_STD_DB = 1.0  # per-bin std floor: a band silent in training (above a low source rate's Nyquist) stays tame
SEEK_INEXACT = (".mp3",)  # formats whose seeks libsndfile does not land on the exact sample (read from the start)
VIEW_ARGS = ("crop_scale", "local_crop_scale", "gain_db", "mix", "pitch", "stretch", "time_mask", "freq_mask")


# --------------------------------------------------------------------------- reading


def soundfile() -> Any:
    """The soundfile package (libsndfile; the ``[audio]`` extra), or the one-line error saying how to install it."""
    return require("soundfile", "audio", "reading audio")


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly in ``folder``, sorted; hidden files (``._x.wav``) are left out."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
    )


def read_clip(path: Path | BinaryIO, sample_rate: int) -> np.ndarray:
    """One file (a path, or an open file: a Hugging Face Audio cell's bytes) as float32 mono samples at
    ``sample_rate``; OSError/ValueError/soundfile errors if unreadable."""
    sf = soundfile()
    from scipy.signal import resample_poly

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError("it holds no samples")
    wave = data.mean(axis=1)
    if not np.isfinite(wave).all():
        raise ValueError("it holds non-finite samples")
    if rate != sample_rate:
        g = math.gcd(int(rate), sample_rate)
        wave = resample_poly(wave, sample_rate // g, int(rate) // g)
    return wave.astype(np.float32, copy=False)


def segment_starts(samples: int, length: int) -> list[int]:
    """Where the segments of a clip of ``samples`` samples start (see :func:`segments`)."""
    shortest = (length + 1) // 2
    return [start for start in range(0, samples, length) if not start or samples - start >= shortest]


def _ratio(rate: int, sample_rate: int) -> tuple[int, int]:
    """``resample_poly``'s up and down factors from ``rate`` to ``sample_rate``."""
    g = math.gcd(int(rate), sample_rate)
    return sample_rate // g, int(rate) // g


def resampled_length(frames: int, rate: int, sample_rate: int) -> int:
    """Samples of a clip of ``frames`` at ``rate`` once resampled to ``sample_rate`` (``resample_poly``:
    ``ceil(frames * up / down)``)."""
    up, down = _ratio(rate, sample_rate)
    return -(-frames * up // down)


def read_window(path: str, start: int, length: int, frames: int, rate: int, sample_rate: int) -> np.ndarray:
    """Samples ``start .. start + length`` (at ``sample_rate``; fewer at the clip's end) of the file ``path`` of
    ``frames`` frames at ``rate``, equal bit for bit to those of :func:`read_clip`'s whole clip, reading only the
    frames they depend on: ``resample_poly``'s filter reaches ``10 * max(up, down)`` upsampled samples either
    way, and a window starting at a multiple of ``down`` frames keeps the whole clip's output phase. MP3 files are
    decoded from their start to the window's end (libsndfile's MP3 seeks are not sample-exact)."""
    sf = soundfile()
    up, down = _ratio(rate, sample_rate)
    if up == down:
        first, stop = start, min(frames, start + length)
    else:
        margin = 10 * max(up, down) // up + 2  # input frames the filter reaches, and one for rounding
        first = max(0, ((start * down) // up - margin) // down * down)
        stop = min(frames, -(-(start + length) * down // up) + margin)
    if path.lower().endswith(SEEK_INEXACT):  # decoded from the start: its seeks can land off the sample
        data = sf.read(path, stop=stop, dtype="float32", always_2d=True)[0][first:]
    else:
        data = sf.read(path, start=first, stop=stop, dtype="float32", always_2d=True)[0]
    if data.shape[0] < stop - first:
        raise ValueError(f"it ends after {first + data.shape[0]} samples, before the {frames} its header announces")
    wave = data.mean(axis=1)
    if not np.isfinite(wave).all():
        raise ValueError("it holds non-finite samples")
    if up == down:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    offset = start - first // down * up
    return resample_poly(wave, up, down).astype(np.float32, copy=False)[offset : offset + length]


def segments(wave: np.ndarray, length: int) -> list[np.ndarray]:
    """``wave`` cut into pieces of ``length`` samples from its start, NaN-padded at the end; a trailing piece
    shorter than half a segment is dropped unless it is the whole clip."""
    out = []
    for start in segment_starts(len(wave), length):
        piece = np.full(length, np.nan, dtype=np.float32)
        chunk = wave[start : start + length]
        piece[: len(chunk)] = chunk
        out.append(piece)
    return out


def _read_files(
    entries: list[tuple[Path, int]], root: Path, sample_rate: int, length: int, bad_files: str
) -> tuple[list[np.ndarray], list[int], list[str], list[str]]:
    sf = soundfile()
    pieces, labels, ids, skipped, first_reason = [], [], [], [], ""
    for path, label in track(entries, description=f"reading {root.name}", transient=True, disable=len(entries) < 2000):
        try:
            wave = read_clip(path, sample_rate)
        except (sf.SoundFileError, OSError, ValueError, EOFError) as err:
            if bad_files == "fail":
                fix = "Fix or remove it, or pass --bad-files skip." if path != root else "Fix it, or pass another file."
                raise SelfsupError(f"cannot read audio file '{path}': {err}. {fix}") from err
            first_reason = first_reason or str(err)
            skipped.append(str(path))
            continue
        cut = segments(wave, length)
        name = str(path.relative_to(root)) if path != root else path.name
        pieces += cut
        labels += [label] * len(cut)
        ids += [name] if len(cut) == 1 else [f"{name}#{k}" for k in range(len(cut))]
    if pieces:
        warn_skipped(skipped, "audio file", first_reason)
    return pieces, labels, ids, skipped


def _warn_padded(parts: list[ArrayDataset | None], sample_rate: int, length: int) -> None:
    """One warning line for the files (of every split) shorter than a segment: those read into one segment
    (an id without ``#k``) that ends in padding."""
    files, lengths = 0, []
    for part in (p for p in parts if p is not None):
        files += len({re.sub(r"#\d+$", "", i) for i in part.ids})
        whole = torch.tensor([not re.search(r"#\d+$", i) for i in part.ids], dtype=torch.bool)
        for start in range(0, len(part.x), 4096):  # bounded memory
            kept = (~torch.isnan(part.x[start : start + 4096, 0])).sum(dim=1)
            lengths += kept[(kept < length) & whole[start : start + 4096]].tolist()
    _warn_short(lengths, files, sample_rate, length)


def _warn_short(lengths: list[int], files: int, sample_rate: int, length: int) -> None:
    """The warning of :func:`_warn_padded`: ``lengths`` (samples) of the ``files`` files shorter than a segment."""
    if lengths:
        warnings.warn(
            f"{len(lengths)} of {files} audio files are shorter than a segment (the shortest "
            f"{min(lengths) / sample_rate:.3g} s) and were padded to {length / sample_rate:g} s "
            "(read as silence).",
            UserWarning,
            stacklevel=4,
        )


def read_split(folder: Path, sample_rate: int, length: int, bad_files: str = "fail") -> ArrayDataset:
    """Read one folder: class sub-folders (labeled) or files directly in it (unlabeled)."""
    entries, classes = split_entries(folder)
    pieces, labels, ids, skipped = _read_files(entries, folder, sample_rate, length, bad_files)
    if not pieces:
        raise SelfsupError(f"none of the {len(entries)} audio files in '{folder}' could be read.")
    return ArrayDataset(
        torch.from_numpy(np.stack(pieces)[:, None]), torch.tensor(labels, dtype=torch.long), ids, classes, skipped
    )


def split_entries(folder: Path) -> tuple[list[tuple[Path, int]], list[str] | None]:
    """A folder's audio files with their labels, and its classes: class sub-folders (labeled) or files directly in
    it (unlabeled, classes None)."""
    class_dirs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".") and audio_files(d)]
    flat = audio_files(folder)
    if class_dirs and flat:
        raise SelfsupError(
            f"'{folder}' holds both audio files and class sub-folders; put every file in a class "
            "sub-folder (labeled) or all of them directly in the folder (unlabeled)."
        )
    if class_dirs:
        entries = [(p, label) for label, d in enumerate(class_dirs) for p in audio_files(d)]
        classes: list[str] | None = [d.name for d in class_dirs]
    else:
        entries, classes = [(p, UNLABELED) for p in flat], None
    if not entries:
        raise SelfsupError(
            f"no audio files found in '{folder}' (looked for {', '.join(SUFFIXES)} files, directly "
            "or in class sub-folders)."
        )
    return entries, classes


# a segment of a lazily read file: its path, where the segment starts (samples at the sample rate), and the file's
# frame count and rate (from its header)
Segment = tuple[str, int, int, int]


@dataclass
class _Index:
    """A split's files read from their headers only: its segments, their labels and ids, the lengths (samples at
    the sample rate) of files shorter than a segment, how many files were read and the first unreadable one."""

    items: list[Segment] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    short: list[int] = field(default_factory=list)
    files: int = 0
    failed: tuple[Path, str] | None = None


def _index(entries: list[tuple[Path, int]], root: Path, sample_rate: int, length: int) -> _Index:
    """Each file's segments from its header (``soundfile.info``: frames and rate), no samples decoded."""
    sf = soundfile()
    index = _Index()
    for path, label in track(entries, description=f"indexing {root.name}", transient=True, disable=len(entries) < 2000):
        try:
            info = sf.info(str(path))
            if info.frames <= 0:
                raise ValueError("it holds no samples")
        except (sf.SoundFileError, OSError, ValueError, EOFError, RuntimeError) as err:
            index.failed = index.failed or (path, first_line(err))
            continue
        frames, rate = int(info.frames), int(info.samplerate)
        samples = resampled_length(frames, rate, sample_rate)
        starts = segment_starts(samples, length)
        name = str(path.relative_to(root)) if path != root else path.name
        index.items += [(str(path), start, frames, rate) for start in starts]
        index.labels += [label] * len(starts)
        index.ids += [name] if len(starts) == 1 else [f"{name}#{k}" for k in range(len(starts))]
        index.short += [samples] if samples < length else []
        index.files += 1
    return index


def _decode_segment(item: Segment, sample_rate: int, length: int) -> torch.Tensor:
    """One segment of a lazily read file as :func:`segments` cuts it from :func:`read_clip`: float32 ``(1, length)``,
    NaN-padded; an unreadable file stops the run naming it, since a sample cannot be left out once training began."""
    path, start, frames, rate = item
    sf = soundfile()
    try:
        wave = read_window(path, start, length, frames, rate, sample_rate)
    except (sf.SoundFileError, OSError, ValueError, EOFError, RuntimeError) as err:
        raise SelfsupError(
            f"cannot read audio file '{path}': {first_line(err)}. Fix or remove it; 'selfsup prepare --bad-files "
            "skip' reads every file once and leaves unreadable ones out."
        ) from err
    piece = np.full((1, length), np.nan, dtype=np.float32)
    piece[0, : len(wave)] = wave
    return torch.from_numpy(piece)


def _lazy_splits(
    parts: dict[str, tuple[list[tuple[Path, int]], list[str] | None, Path]],
    sample_rate: int,
    length: int,
    in_memory: str,
    bad_files: str,
    source: Path,
) -> dict[str, Samples] | None:
    """The splits read lazily (segments decoded as training asks for them), or None to read them into memory: as
    ``in_memory`` says, or (auto) when the decoded segments (4 bytes a sample) would pass ``IN_MEMORY_BYTES``."""
    indexed = {name: _index(entries, root, sample_rate, length) for name, (entries, _, root) in parts.items()}
    count = sum(len(index.items) for index in indexed.values())
    if not reads_lazily(in_memory, count * length * 4):
        return None
    if bad_files == "skip":
        raise refuse_skipping_lazily(f"'{source}'", count, "segments", "files", in_memory == "auto")
    lazy: dict[str, Samples] = {}
    for name, index in indexed.items():
        if index.failed is not None:
            raise SelfsupError(
                f"cannot read audio file '{index.failed[0]}': {index.failed[1]}. Fix or remove it; 'selfsup prepare "
                "--bad-files skip' reads every file once and leaves unreadable ones out."
            )
        lazy[name] = LazyDataset(
            partial(_decode_segment, sample_rate=sample_rate, length=length),
            index.items,
            torch.tensor(index.labels, dtype=torch.long),
            index.ids,
            (1, length),
            torch.float32,
            str(parts[name][2]),
            parts[name][1],
        )
    short = [n for index in indexed.values() for n in index.short]
    _warn_short(short, sum(index.files for index in indexed.values()), sample_rate, length)
    return lazy


def check_sample_rate(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not float(value).is_integer()
        or not (1000 <= value <= MAX_SAMPLE_RATE)
    ):
        raise SelfsupError(f"sample rate must be a whole number of Hz from 1000 to {MAX_SAMPLE_RATE}, got {value!r}.")
    return int(value)


def check_segment_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SEGMENT_SECONDS:
        raise SelfsupError(
            f"segment length must be a number of seconds above 0 and at most {MAX_SEGMENT_SECONDS:g}, got {value!r}."
        )
    return float(value)


class Reading(TypedDict):
    """An audio encoder's preprocessing settings: the rate files are resampled to and the clip length."""

    sample_rate: int
    segment_seconds: float


def reading(options: DataOptions, preprocessing: Preprocessing | None) -> tuple[int, float]:
    """The sample rate and segment length to read at: the options', else the encoder's, else the defaults;
    options that contradict the encoder are refused."""
    trained = preprocessing.settings if preprocessing is not None else {}
    rate, seconds = options.sample_rate, options.segment_seconds
    for flag, given, key in (("--sample-rate", rate, "sample_rate"), ("--segment-seconds", seconds, "segment_seconds")):
        if given is not None and key in trained and float(given) != float(trained[key]):
            raise SelfsupError(
                f"{flag} {given} differs from the encoder's {trained[key]}; leave it out to read the "
                "data as the encoder was trained."
            )
    rate = check_sample_rate(rate if rate is not None else trained.get("sample_rate", DEFAULT_SAMPLE_RATE))
    seconds = check_segment_seconds(
        seconds if seconds is not None else trained.get("segment_seconds", DEFAULT_SEGMENT_SECONDS)
    )
    return rate, seconds


def load_folder(
    path: str | Path,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    bad_files: str = "fail",
    name: str | None = None,
    in_memory: str = "yes",
) -> Splits:
    """Read an audio file or folder (see the module docstring): decoded into memory, or lazily (``in_memory``: yes,
    no, or auto: lazily when its decoded segments would pass ``IN_MEMORY_BYTES``), each file's segments indexed
    from its header and a segment read (only the frames it depends on) and resampled as training asks for it."""
    source = Path(path)
    rate, seconds = check_sample_rate(sample_rate), check_segment_seconds(segment_seconds)
    length = max(1, round(seconds * rate))
    if not source.exists():
        raise SelfsupError(f"audio data '{source}' does not exist; pass an audio file or a folder of them.")
    if source.is_file() and source.suffix.lower() not in SUFFIXES:
        raise SelfsupError(f"'{source}' is not an audio file ({', '.join(SUFFIXES)}).")
    split_folders = source.is_dir() and (source / "train").is_dir() and (source / "test").is_dir()
    parts: dict[str, tuple[list[tuple[Path, int]], list[str] | None, Path]]  # files and labels, classes, root
    if source.is_file():
        parts = {"": ([(source, UNLABELED)], None, source)}
    elif split_folders:
        parts = {split: (*split_entries(source / split), source / split) for split in ("train", "test")}
    else:
        parts = {"": (*split_entries(source), source)}
    lazy = _lazy_splits(parts, rate, length, in_memory, bad_files, source) if in_memory != "yes" else None
    read: dict[str, Samples] = {}
    if lazy is not None:
        read = lazy
    elif source.is_file():
        pieces, labels, ids, skipped = _read_files([(source, UNLABELED)], source, rate, length, "fail")
        read[""] = ArrayDataset(torch.from_numpy(np.stack(pieces)[:, None]), torch.tensor(labels), ids, None, skipped)
    else:
        read = {split: read_split(source / split, rate, length, bad_files) for split in parts}
    train, test = read.get("train", read.get("")), read.get("test")
    assert train is not None  # parts holds a train split, or the source itself
    if test is not None and train.classes != test.classes:
        raise SelfsupError(f"'{source}/train' and '{source}/test' have different class sub-folders.")
    if lazy is None:
        _warn_padded([part for part in (train, test) if isinstance(part, ArrayDataset)], rate, length)
    return Splits(
        train=train,
        test=test,
        name=name or str(source),
        modality=NAME,
        preprocessing=Preprocessing(NAME, Reading(sample_rate=rate, segment_seconds=seconds)),
    )


def load(source: str, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """Read an audio file or folder; for an encoder, at its sample rate and segment length."""
    rate, seconds = reading(options, preprocessing)
    return load_folder(source, rate, seconds, options.bad_files, in_memory=options.in_memory)


# --------------------------------------------------------------------------- encoder, views, baseline


def _log_mels(x: torch.Tensor, encoder_config: dict, batch: int = 256):
    """Log-mel spectrograms ``(b, n_mels, T)`` (dB, NaN past a clip's end) of ``x`` in batches of ``batch``."""
    from selfsup.encoders.audio import LogMel

    log_mel = LogMel.from_config(encoder_config)
    with torch.no_grad():
        for start in range(0, len(x), batch):
            yield log_mel(x[start : start + batch].float())[:, 0]


def bin_statistics(x: torch.Tensor, encoder_config: dict) -> tuple[list[float], list[float]]:
    """Per mel bin, the mean and std (dB) of the log-mel frames of ``x`` within the clips (padding left out);
    std is floored at ``MIN_STD_DB``."""
    total = square = count = torch.zeros((), dtype=torch.float64)  # broadcast to (n_mels,) by the first clip
    for db in _log_mels(x, encoder_config):
        valid = ~torch.isnan(db)
        values = torch.where(valid, db, 0.0).double()
        total = total + values.sum(dim=(0, 2))
        square = square + values.square().sum(dim=(0, 2))
        count = count + valid.sum(dim=(0, 2)).double()
    mean = total / count.clamp_min(1)
    std = (square / count.clamp_min(1) - mean.square()).clamp_min(0).sqrt().clamp_min(MIN_STD_DB)
    return mean.tolist(), std.tolist()


def encoder_config(
    name: str, splits: Splits, options: DataOptions | None = None, encoder_args: dict | None = None
) -> dict:
    """The encoder config: the data's sample rate and segment length, and per-mel-bin statistics of the
    training split computed with the encoder's own front end."""
    from selfsup.encoders.audio import audio_encoder_config

    read = splits.preprocessing.settings if splits.preprocessing is not None else {}
    rate = read.get("sample_rate", DEFAULT_SAMPLE_RATE)
    seconds = read.get("segment_seconds", DEFAULT_SEGMENT_SECONDS)
    args = dict(encoder_args or {})
    config = audio_encoder_config(name, rate, seconds, **args)
    mean, std = bin_statistics(fit_sample(splits.train).x, config)  # a bounded sample of lazily read data
    return audio_encoder_config(name, rate, seconds, mean, std, **args)


def make_views(spec: ViewSpec, splits: Splits, encoder_config: dict, view_args: dict | None = None) -> torch.nn.Module:
    """The batched on-device augmentation pipeline for a method's view spec (``view_args``: see VIEW_ARGS and
    ``audio_views``); its views are log-mel spectrograms made with the encoder's front end."""
    from selfsup.encoders.audio import LogMel
    from selfsup.modalities.audio_views import AudioViews

    view_args = check_known(view_args, VIEW_ARGS, "audio")
    for key in ("crop_scale", "local_crop_scale"):
        if key in view_args:
            view_args[key] = crop_pair(key, view_args[key])
    if "gain_db" in view_args:
        view_args["gain_db"] = bounded_number("gain_db", view_args["gain_db"])
    if "pitch" in view_args:
        view_args["pitch"] = bounded_number("pitch", view_args["pitch"], high=24.0)  # semitones: two octaves
    if "stretch" in view_args:
        view_args["stretch"] = bounded_number("stretch", view_args["stretch"], low=1.0)
    for key in ("mix", "time_mask", "freq_mask"):
        if key in view_args:
            view_args[key] = bounded_number(key, view_args[key], high=1.0)
    return AudioViews(spec, LogMel.from_config(encoder_config), encoder_config["mean"], **view_args)


def raw_features(x: torch.Tensor, encoder_config: dict) -> np.ndarray:
    """The raw-input baseline: per mel bin, the mean and the std over the clip's frames of the log-mel
    spectrogram normalised as the encoder does, ``(N, 2 * n_mels)``."""
    mean = torch.tensor(encoder_config["mean"]).view(1, -1, 1)
    std = torch.tensor(encoder_config["std"]).view(1, -1, 1)
    rows = []
    for db in _log_mels(x.detach().cpu(), encoder_config):
        h = (db - mean) / std
        valid = ~torch.isnan(h)
        count = valid.sum(dim=-1).clamp_min(1)
        average = torch.where(valid, h, 0.0).sum(dim=-1) / count
        spread = (torch.where(valid, h - average.unsqueeze(-1), 0.0).square().sum(dim=-1) / count).sqrt()
        rows.append(torch.cat([average, spread], dim=1))
    return torch.cat(rows).numpy() if rows else np.zeros((0, 2 * len(encoder_config["mean"])), dtype=np.float32)


def preprocessing(splits: Splits, options: DataOptions, encoder_config: dict) -> Preprocessing:
    """New audio is read at the encoder's sample rate and segment length."""
    return Preprocessing(
        NAME,
        Reading(
            sample_rate=int(encoder_config["sample_rate"]), segment_seconds=float(encoder_config["segment_seconds"])
        ),
    )


MODALITY = Modality(
    NAME,
    load,
    encoder_config,
    make_views,
    raw_features,
    "per-mel-bin mean and std over time of the normalised log-mel spectrogram",
    DEFAULT_ENCODER,
    TOKEN_ENCODER,
    VIEW_ARGS,
    preprocessing=preprocessing,
)
