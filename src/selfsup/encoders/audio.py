"""Audio encoders over a log-mel spectrogram computed inside the encoder: a small 2-D CNN and an AST-style
spectrogram-patch transformer.

Input (docs/modalities.md): float32 waveforms ``(B, 1, samples)`` at the config's ``sample_rate``, NaN
marking the padding after a clip's end; or log-mel spectrograms ``(B, 1, n_mels, frames)`` in dB, NaN
in the frames past a clip's end, as the audio views give them (SpecAugment masks live there).

The front end (:class:`LogMel`) follows librosa's conventions, so its numbers can be checked against
``librosa.feature.melspectrogram`` + ``librosa.power_to_db(top_db=None)``: a centred, zero-padded
STFT with a periodic Hann window of ``n_fft = window_ms`` samples (no zero-padding of the window),
hop ``hop_ms``, power spectrum ``|X|^2``, Slaney-style mel filters (Slaney's Auditory Toolbox mel scale,
linear below 1 kHz and logarithmic above, each filter normalised to unit area) from 0 Hz to Nyquist,
then ``10 * log10(max(power, 1e-10))``. A frame is valid while its centre lies within the clip
(``t * hop <= length``); later frames are NaN. The encoders normalise each mel bin with the
``mean``/``std`` fitted on the pre-training data (in dB), then set NaN (padding) to 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.args import checked_args
from selfsup.encoders.small_cnn import conv_block
from selfsup.encoders.tokens import Tokenizer, TokenTransformer, pool_tokens, sincos_2d
from selfsup.errors import SelfsupError, unknown_name

ENCODERS = {
    "audio_cnn": "small 2-D CNN over the log-mel spectrogram, max + mean over time (PANNs-style, Kong et al. 2020)",
    "spec_transformer": "AST-style transformer over log-mel patches (Gong et al. 2021); masked methods need it",
}
AMIN = 1e-10  # power floor of the dB conversion (librosa's power_to_db amin): -100 dB

# The front end: 25 ms windows every 10 ms (AST, Kaldi fbank), 64 mel bins (BYOL-A); one 1-s clip gives
# 64 x 101 log-mel values. audio_cnn: three conv stages (width, 2 width, 4 width) as the image small_cnn.
# spec_transformer: 16 mel bins x 8 frames (80 ms) per patch, so a 1-s clip is 4 x 13 tokens; a ViT-Tiny-like
# width at depth 4 to train on a CPU (AST: 16 x 16 patches, 768 wide, 12 deep).
FRONTEND_DEFAULTS: dict[str, Any] = {"n_mels": 64, "window_ms": 25.0, "hop_ms": 10.0}
DEFAULTS: dict[str, dict[str, Any]] = {
    "audio_cnn": FRONTEND_DEFAULTS | {"width": 32},
    "spec_transformer": FRONTEND_DEFAULTS
    | {"patch_freq": 16, "patch_time": 8, "embed_dim": 128, "depth": 4, "heads": 4, "mlp_dim": 256, "dropout": 0.0},
}


# --------------------------------------------------------------------------- mel filters


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    log_step = math.log(6.4) / 27.0
    linear = hz / (200.0 / 3)
    return torch.where(hz >= 1000.0, 15.0 + torch.log(hz.clamp_min(1000.0) / 1000.0) / log_step, linear)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    log_step = math.log(6.4) / 27.0
    return torch.where(mel >= 15.0, 1000.0 * torch.exp(log_step * (mel - 15.0)), mel * (200.0 / 3))


def mel_edges(sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """The ``n_mels + 2`` band edges (Hz, float64) evenly spaced on the Slaney mel scale from ``f_min`` to ``f_max``
    (default Nyquist): filter ``m`` of :func:`mel_filterbank` rises from edge ``m``, peaks at ``m + 1``, ends at
    ``m + 2``."""
    f_max = sample_rate / 2 if f_max is None else f_max
    low, high = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64))
    return mel_to_hz(torch.linspace(float(low), float(high), n_mels + 2, dtype=torch.float64))


def mel_centres(sample_rate: int, n_mels: int) -> torch.Tensor:
    """The centre frequencies (Hz, float32) of :func:`mel_filterbank`'s ``n_mels`` filters from 0 Hz to Nyquist."""
    return mel_edges(sample_rate, n_mels)[1:-1].float()


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters evenly spaced on the Slaney mel scale, each scaled to
    unit area (``2 / bandwidth``): librosa's ``filters.mel(norm="slaney", htk=False)``, in float32."""
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_edges(sample_rate, n_mels, f_min, f_max)
    width = edges.diff()
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).float()


# --------------------------------------------------------------------------- front end


def clip_lengths(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` samples up to the last non-NaN one of waveforms ``(B, 1, S)`` (NaN pads a clip's end)."""
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return torch.where(torch.isnan(x[:, 0]), 0, steps).amax(dim=1)


class LogMel(nn.Module):
    """Waveforms ``(B, 1, S)`` -> log-mel spectrograms ``(B, 1, n_mels, 1 + S // hop)`` in dB, NaN in the
    frames past each clip's end (see the module docstring). Runs in float32 on the input's device."""

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LogMel:
        rate = int(config["sample_rate"])
        return cls(
            rate,
            window_samples(rate, config["window_ms"]),
            window_samples(rate, config["hop_ms"]),
            int(config["n_mels"]),
        )

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:  # the FFT refuses an empty batch
            return x.new_empty(0, 1, self.n_mels, self.frames(x.shape[-1]), dtype=torch.float32)
        length = clip_lengths(x)
        with torch.autocast(x.device.type, enabled=False):
            wave = torch.nan_to_num(x[:, 0].float(), nan=0.0)
            spec = torch.stft(
                wave,
                self.n_fft,
                self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()
            db = 10.0 * torch.log10(torch.matmul(self.filters, power).clamp_min(AMIN))
        starts = torch.arange(db.shape[-1], device=x.device) * self.hop_length
        valid = (starts[None, :] <= length[:, None]) & (length[:, None] > 0)
        return db.masked_fill(~valid[:, None, :], float("nan")).unsqueeze(1)


def window_samples(sample_rate: int, ms: float) -> int:
    return max(1, round(float(ms) * int(sample_rate) / 1000.0))


class AudioFrontend(nn.Module):
    """Waveforms or log-mels -> ``(features (B, 1, n_mels, T) normalised per mel bin with NaN set to 0,
    valid (B, T))``; a frame is invalid where every bin is NaN (past a clip's end)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.log_mel = LogMel.from_config(config)
        self.n_mels = self.log_mel.n_mels
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, 1, -1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, 1, -1, 1))

    def frames(self, x: torch.Tensor) -> int:
        """Frames of an input: its own for a log-mel, the STFT's for a waveform."""
        return int(x.shape[-1]) if x.ndim == 4 else self.log_mel.frames(int(x.shape[-1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim == 3 and x.shape[1] == 1 and x.shape[-1] > 0:
            db = self.log_mel(x)
        elif x.ndim == 4 and x.shape[1] == 1 and x.shape[2] == self.n_mels and x.shape[-1] > 0:
            db = x.float()
        else:
            raise SelfsupError(
                f"the audio encoder takes waveforms (batch, 1, samples) or log-mel spectrograms "
                f"(batch, 1, {self.n_mels}, frames), got shape {tuple(x.shape)}."
            )
        h = (db - self.mean) / self.std
        missing = torch.isnan(h)
        return h.masked_fill(missing, 0.0), ~missing.all(dim=2)[:, 0]


# --------------------------------------------------------------------------- config


def _check(name: str, hyper: dict[str, Any], sample_rate: int) -> None:
    for key, value in hyper.items():
        if key == "dropout":
            if not 0 <= value < 1:
                raise SelfsupError(f"encoder argument dropout={value} must be in [0, 1).")
        elif value <= 0:
            raise SelfsupError(f"encoder argument {key}={value} of audio encoder '{name}' must be positive.")
    n_fft = window_samples(sample_rate, hyper["window_ms"])
    if hyper["hop_ms"] > hyper["window_ms"]:
        raise SelfsupError(
            f"encoder argument hop_ms={hyper['hop_ms']} is longer than window_ms="
            f"{hyper['window_ms']}; the STFT would skip samples."
        )
    if hyper["n_mels"] > n_fft // 2 + 1:
        raise SelfsupError(
            f"n_mels={hyper['n_mels']} is more than the {n_fft // 2 + 1} frequency bins of a "
            f"{hyper['window_ms']} ms window at {sample_rate} Hz; use fewer mel bins or a longer "
            "window."
        )
    if name == "audio_cnn" and hyper["n_mels"] < 4:
        raise SelfsupError(f"audio_cnn needs n_mels >= 4 (its two 2 x 2 pools), got {hyper['n_mels']}.")
    if name == "spec_transformer":
        if hyper["n_mels"] % hyper["patch_freq"]:
            raise SelfsupError(
                f"patch_freq={hyper['patch_freq']} does not divide n_mels={hyper['n_mels']}; pick values where it does."
            )
        if hyper["embed_dim"] % hyper["heads"] or hyper["embed_dim"] % 4:
            raise SelfsupError(f"embed_dim={hyper['embed_dim']} must be a multiple of 4 and of heads={hyper['heads']}.")


def audio_encoder_config(
    name: str, sample_rate: int, segment_seconds: float, mean: Any = None, std: Any = None, **encoder_args: Any
) -> dict:
    """The JSON-serialisable description from which an audio encoder is rebuilt.

    ``sample_rate`` is the rate the encoder's waveforms must have; ``segment_seconds`` the pre-training
    clip length (new data is cut the same way; the encoders take any length). ``mean``/``std`` hold one
    value per mel bin (dB); None gives 0 and 1 (no normalisation), for fitting them with this config's
    front end. Every hyperparameter is written out, defaults included.
    """
    if name not in ENCODERS:
        raise unknown_name("audio encoder", name, ENCODERS)
    hyper = checked_args(f"audio encoder '{name}'", DEFAULTS[name], encoder_args)
    _check(name, hyper, int(sample_rate))
    n_mels = hyper["n_mels"]
    mean = [0.0] * n_mels if mean is None else [float(m) for m in mean]
    std = [1.0] * n_mels if std is None else [float(s) for s in std]
    if len(mean) != n_mels or len(std) != n_mels:
        raise SelfsupError(
            f"the audio encoder needs one mean and one std per mel bin: {n_mels} bins, got "
            f"{len(mean)} means and {len(std)} stds."
        )
    if not all(math.isfinite(v) for v in mean + std) or any(s <= 0 for s in std):
        raise SelfsupError("audio mel-bin statistics must be finite with std > 0.")
    return {
        "modality": "audio",
        "name": name,
        "sample_rate": int(sample_rate),
        "segment_seconds": float(segment_seconds),
        "mean": mean,
        "std": std,
        **hyper,
    }


def build(config: dict[str, Any]) -> Encoder:
    """Build a freshly initialised audio encoder from its config (validated again here)."""
    name = config.get("name")
    if name not in ENCODERS:
        raise unknown_name("audio encoder", str(name), ENCODERS)
    missing = [key for key in ("sample_rate", "segment_seconds", "mean", "std") if key not in config]
    if missing:
        raise SelfsupError(f"audio encoder config lacks {', '.join(missing)}; rebuild it with audio_encoder_config.")
    args = {key: config[key] for key in DEFAULTS[name] if key in config}
    full = audio_encoder_config(
        name, config["sample_rate"], config["segment_seconds"], config["mean"], config["std"], **args
    )
    return {"audio_cnn": AudioCNN, "spec_transformer": SpecTransformer}[name](full)


# --------------------------------------------------------------------------- encoders


class AudioCNN(Encoder):
    """Log-mel -> three conv stages (``width``, 2, 4 x ``width`` channels; 2 x 2 max-pool between) -> mean
    over frequency -> max + mean over the valid frames, as PANNs' CNN14 pools (Kong et al. 2020, "PANNs:
    Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition"). ``embed_dim = 4 width``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        width = int(config["width"])
        self.frontend = AudioFrontend(config)
        self.features = nn.Sequential(
            conv_block(1, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            conv_block(2 * width, 4 * width),
        )
        self.embed_dim: int = 4 * width

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(frames (B, T // 4, D), valid (B, T // 4) bool)``: the last stage's features averaged over frequency,
        one token per pooled time step (FILIP's token-wise similarity reads them); ``valid`` False past the end."""
        h, valid = self.frontend(x)
        if h.shape[-1] < 4:  # inputs under 4 frames (~30 ms): pad to what the two 2 x 2 pools need
            h, valid = F.pad(h, (0, 4 - h.shape[-1])), F.pad(valid, (0, 4 - valid.shape[-1]), value=False)
        h = self.features(h).mean(dim=2).transpose(1, 2)  # (B, T // 4, D)
        keep = F.max_pool1d(F.max_pool1d(valid.float().unsqueeze(1), 2), 2).squeeze(1) > 0
        keep[:, 0] |= ~keep.any(dim=1)  # a sample with no valid frame still pools its first position
        return h, keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, keep = self.forward_tokens(x)
        weights = keep.unsqueeze(-1).to(h.dtype)
        return pool_tokens(h, keep) + (h * weights).sum(1) / weights.sum(1)


class SpecPatchTokenizer(Tokenizer):
    """Non-overlapping ``patch_freq`` x ``patch_time`` patches of the normalised log-mel, one token each (a
    linear embedding, as AST's patch convolution), plus fixed 2-D sine/cosine positions (mel rows, time
    columns) that fit any clip length (see ``encoders/tokens.py``). The time axis is padded to whole
    patches; a patch is invalid when all its frames are (past the clip's end). Tokens are in row-major
    order over the ``(n_mels / patch_freq, ceil(frames / patch_time))`` grid; a token's ``patches``
    content is its ``(1, patch_freq, patch_time)`` normalised log-mel values (0 past the clip's end)."""

    spatial_dims = 2
    ordered = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.frontend = AudioFrontend(config)
        self.patch_freq, self.patch_time = int(config["patch_freq"]), int(config["patch_time"])
        self.rows, self.dim = self.frontend.n_mels // self.patch_freq, int(config["embed_dim"])
        self.embed = nn.Linear(self.patch_freq * self.patch_time, self.dim)
        self.patch_shape = (1, self.patch_freq, self.patch_time)

    def grid(self, x: torch.Tensor) -> tuple[int, ...]:
        return self.rows, -(-self.frontend.frames(x) // self.patch_time)

    def positions(self, n: int) -> torch.Tensor:
        return sincos_2d(self.rows, n // self.rows, self.dim, self.frontend.mean.device)

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, valid = self.frontend(x)
        batch, frames = h.shape[0], h.shape[-1]
        cols = -(-frames // self.patch_time)
        extra = cols * self.patch_time - frames
        h = F.pad(h, (0, extra)).view(batch, self.rows, self.patch_freq, cols, self.patch_time)
        patches = h.permute(0, 1, 3, 2, 4).reshape(batch, self.rows * cols, 1, self.patch_freq, self.patch_time)
        valid = F.pad(valid, (0, extra), value=False).view(batch, 1, cols, self.patch_time).any(dim=-1)
        return patches, valid.expand(batch, self.rows, cols).reshape(batch, self.rows * cols)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, valid = self.patches(x)
        tokens = self.embed(patches.flatten(2))
        return tokens + self.positions(tokens.shape[1]).to(tokens.dtype), valid


class SpecTransformer(TokenTransformer):
    """AST-style encoder (Gong et al. 2021, "AST: Audio Spectrogram Transformer"):
    :class:`SpecPatchTokenizer` then the shared token transformer, mean-pooled over the valid patches
    (MAE, data2vec and JEPA mask its tokens, as Audio-MAE does, Huang et al. 2022)."""

    def __init__(self, config: dict[str, Any]) -> None:
        dropout = float(config["dropout"])
        super().__init__(
            SpecPatchTokenizer(config),
            dim=int(config["embed_dim"]),
            depth=int(config["depth"]),
            heads=int(config["heads"]),
            hidden=int(config["mlp_dim"]),
            dropout=dropout,
            attention_dropout=dropout,
            pool="mean",
        )
        self.config = dict(config)
