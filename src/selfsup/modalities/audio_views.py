"""Batched, on-device audio augmentation with per-sample random parameters; the views are log-mel spectrograms.

``AudioViews`` takes a batch of waveforms ``(B, 1, S)`` (NaN = padding after a clip's end, as the
reader gives them), computes their log-mel spectrograms once with the encoder's own front end
(``encoders/audio.py``: dB, NaN in the frames past a clip's end) and makes every view from them:
with ``spec.original`` the waveforms themselves first, then ``n_global`` views ``(B, 1, n_mels, T)``
(``T`` the spectrogram's frames), then ``n_local`` views ``(B, 1, n_mels, T // 2)`` (DINO multi-crop).
The encoders take both waveforms and log-mels, so a view-based method sees augmented spectrograms and a
masked method (``original``, no augmentation) the waveforms. Every random parameter is drawn for the
whole batch in one call per op, with the given ``torch.Generator`` on the batch's device.

Why spectrograms: SpecAugment's masks are defined on the spectrogram, and there they are exact (a
masked band or span holds the training mean, which the encoder normalises to exactly 0); a waveform
cannot carry a frequency mask. Working on the spectrogram also needs one STFT per batch, not per view.

Per view, in this order (all in the mel power or dB domain of the spectrogram):

1. **mixing** (``mix`` = the largest weight; BYOL-A's mixup, Niizumi et al. 2021, "BYOL for Audio"):
   each clip is mixed with another clip of the batch as background noise,
   ``P = (1 - w) P_self + w P_other`` in mel power (``P = 10^(dB / 10)``) with ``w ~ U(0, mix)``; the
   other clip is silent past its end, and the clip keeps its own end. BYOL-A mixes with past inputs
   (a memory bank); the rest of the batch plays that part here.
2. **gain** (``gain_db``): every bin of a clip shifts by one offset ``~ U(-gain_db, gain_db)`` dB, which is
   the waveform scaled by ``10^(offset / 20)`` (up to the -100 dB floor of silence).
3. **pitch shift** (``pitch``, in semitones; off at 0): the whole spectrum moves by ``s ~ U(-pitch,
   pitch)`` semitones, i.e. every mel bin reads the spectrum at its centre frequency divided by ``2^(s / 12)``,
   interpolated linearly (in dB) between the neighbouring bins and held at the edge bins beyond the first
   and the last. This is the clip resampled in frequency, as if played faster or slower and then stretched
   back to its own duration, so the harmonics and the formants move together (a voice sounds higher or
   lower and a little smaller or larger); a vocoder-style shift that keeps the formants costs far more.
4. **time stretch** (``stretch``, a rate factor >= 1; off at 1): the view's valid frames become the clip's
   times ``f = exp(U(-ln stretch, ln stretch))``, so a word is spoken up to ``stretch`` times slower or
   faster; the crop below is resampled onto them. Where a slowed clip would run past the view's end, the view
   ends there and the crop is shortened to what fits at rate ``f`` (the rate holds; the clip's tail is cut).
5. **crop + resize in time** (``crop_scale``; local views ``local_crop_scale``): a span of a uniform
   fraction of the clip's valid frames, linearly resampled onto the view's valid frames (a time stretch
   without a pitch change; BYOL-A's random resize crop does the same in time); frames past them stay NaN.
6. **frequency masking** (``freq_mask``; SpecAugment, Park et al. 2019): one band of ``~ U{0..freq_mask *
   n_mels}`` adjacent mel bins at a uniform position is set to the training mean of each bin.
7. **time masking** (``time_mask``): one span of ``~ U{0..time_mask * frames}`` adjacent frames (the clip's
   valid frames in the view) at a uniform position within the clip, set to the training mean.

Defaults: mixing up to 0.4 (BYOL-A's alpha), gain +-6 dB, pitch +-3 semitones, stretch up to 1.25x either way,
crop (0.5, 1.0) (local (0.25, 0.5)), masks up to 0.2 of the frames and of the bins. ``spec.asymmetric`` changes
nothing here. Pitch and stretch are on because on the built-in spoken words (unseen test voices) they lifted
SimCLR's kNN accuracy from 58.5 to 72.5 on average, on each of 3 seeds (``benchmarks/audio_views.py``); set
``pitch=0`` and ``stretch=1`` for BYOL-A's views exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from selfsup.encoders.audio import AMIN, LogMel, hz_to_mel, mel_centres
from selfsup.views import ViewSpec


def mix_clips(
    spec: torch.Tensor, pool: torch.Tensor, strength: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each log-mel of ``spec (n, M, T)`` with one of ``pool (B, M, T)`` in mel power (step 1 above).

    Row ``i`` is a copy of ``pool[i % B]`` and gets a partner ``j != i % B`` (itself, with weight 0, when
    ``B == 1``). Returns ``(mixed, partner (n,), weight (n,))``."""
    n, batch, device = spec.shape[0], pool.shape[0], spec.device
    own = torch.arange(n, device=device) % max(1, batch)
    if batch < 2:  # nobody to mix with
        return spec, own, torch.zeros(n, device=device, dtype=spec.dtype)
    weight = torch.rand(n, generator=generator, device=device, dtype=spec.dtype) * strength
    partner = (own + torch.randint(1, batch, (n,), generator=generator, device=device)) % batch
    power = torch.pow(10.0, spec / 10.0)
    other = torch.nan_to_num(torch.pow(10.0, pool[partner] / 10.0), nan=0.0)
    w = weight.view(-1, 1, 1)
    return 10.0 * torch.log10(((1 - w) * power + w * other).clamp_min(AMIN)), partner, weight


def random_gain(
    spec: torch.Tensor, max_db: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each log-mel of ``spec (n, M, T)`` by one offset ``~ U(-max_db, max_db)`` dB: ``(out, offset (n,))``."""
    u = torch.rand(spec.shape[0], generator=generator, device=spec.device, dtype=spec.dtype)
    offset = (2 * u - 1) * max_db
    return spec + offset.view(-1, 1, 1), offset


def _interpolate(spec: torch.Tensor, positions: torch.Tensor, last: torch.Tensor, dim: int) -> torch.Tensor:
    """``spec (n, M, T)`` read at fractional ``positions (n, K)`` along ``dim`` (1: mel bins, 2: frames), linearly
    between the two nearest whole positions, none past ``last`` (a number or ``(n, 1)``): ``(n, K, T)`` or
    ``(n, M, K)``. A position within 1e-4 of a whole one reads it exactly, so resampling onto the same grid is
    the identity."""
    snapped = positions.round()
    positions = torch.where((positions - snapped).abs() < 1e-4, snapped, positions)
    last = torch.as_tensor(last, device=positions.device)
    below = positions.floor().long().clamp(min=0).minimum(last)
    above = (below + 1).minimum(last)
    weight = (positions - below.to(positions.dtype)).clamp(0.0, 1.0).to(spec.dtype)
    shape = list(spec.shape)
    shape[dim] = positions.shape[1]
    other = 3 - dim  # the axis not resampled
    return torch.lerp(
        spec.gather(dim, below.unsqueeze(other).expand(shape)),
        spec.gather(dim, above.unsqueeze(other).expand(shape)),
        weight.unsqueeze(other),
    )


def shift_pitch(spec: torch.Tensor, semitones: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Shift each log-mel of ``spec (n, M, T)`` (the mel bins of ``LogMel`` at ``sample_rate``, ``M >= 2``) by
    ``semitones (n,)`` (step 3 above). No shift gives the spectrogram back exactly; NaN frames stay NaN."""
    bins = spec.shape[1]
    hz = mel_centres(sample_rate, bins).to(spec.device)
    mel = hz_to_mel(hz)  # evenly spaced
    ratio = torch.pow(2.0, semitones.to(device=spec.device, dtype=torch.float32) / 12.0)
    source = hz_to_mel(hz[None, :] / ratio[:, None])
    position = ((source - mel[0]) / (mel[1] - mel[0])).clamp(0.0, bins - 1.0)
    return _interpolate(spec, position, torch.tensor(bins - 1), dim=1)


def stretch_frames(
    frames: torch.Tensor, stretch: float, length: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's ``frames (n,)`` times ``f = exp(U(-ln stretch, ln stretch))`` (step 4 above), rounded:
    ``(out_frames, keep)``. Where that passes the view's ``length``, ``out_frames`` is ``length`` and ``keep``
    (< 1) is the fraction of the crop that fits at rate ``f``; elsewhere ``keep`` is 1. Empty clips stay empty."""
    u = torch.rand(frames.shape[0], generator=generator, device=frames.device)
    factor = torch.exp((2 * u - 1) * math.log(stretch))
    wanted = (frames.float() * factor).round().clamp_min(1.0)
    out_frames = torch.where(frames > 0, wanted.clamp(max=float(length)).long(), frames)
    return out_frames, torch.where(frames > 0, out_frames.float() / wanted, torch.ones_like(wanted))


def crop_frames(
    spec: torch.Tensor,
    frames: torch.Tensor,
    length: int,
    out_frames: torch.Tensor,
    scale: tuple[float, float],
    generator: torch.Generator | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop a span of a ``U(scale)`` fraction (times ``keep (n,)`` when given) of each clip's ``frames`` valid
    frames of ``spec (n, M, T)`` and resample it linearly to ``out_frames`` frames of an ``(n, M, length)`` output
    (NaN after them)."""
    n = spec.shape[0]
    device, dtype = spec.device, spec.dtype
    u = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
    have = frames.clamp_min(1).to(dtype)
    crop = (scale[0] + (scale[1] - scale[0]) * u[:, 0]) * have
    crop = (crop if keep is None else crop * keep.to(dtype)).clamp_min(1.0)
    start = (have - crop) * u[:, 1]
    steps = torch.arange(length, device=device, dtype=dtype)
    t = (steps[None, :] / (out_frames - 1).clamp_min(1).to(dtype)[:, None]).clamp(max=1.0)
    t = torch.where((out_frames == 1)[:, None], torch.full_like(t, 0.5), t)
    positions = start[:, None] + t * (crop - 1.0)[:, None]
    out = _interpolate(spec, positions, (frames.clamp_min(1) - 1)[:, None], dim=2)  # no crop: the identity
    past_end = torch.arange(length, device=device)[None, :] >= out_frames[:, None]
    return out.masked_fill(past_end.unsqueeze(1), float("nan"))


def _span(
    n: int, size: torch.Tensor, fraction: float, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a span of ``U{0..floor(fraction * size)}`` positions at a uniform start in ``[0, size - width]``."""
    u = torch.rand(n, 2, generator=generator, device=device)
    size = size.float()
    widest = (fraction * size).floor()
    width = (u[:, 0] * (widest + 1)).floor().minimum(widest)
    start = (u[:, 1] * (size - width + 1)).floor().minimum(size - width)
    return start.long(), width.long()


def mask_frequency(
    spec: torch.Tensor, fraction: float, fill: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set one band of adjacent mel bins of each ``spec (n, M, T)`` to ``fill (1, M, 1)`` (NaN frames stay NaN):
    ``(out, hidden (n, M) bool)``."""
    n, bins = spec.shape[:2]
    start, width = _span(n, torch.full((n,), bins, device=spec.device), fraction, generator, spec.device)
    index = torch.arange(bins, device=spec.device)[None, :]
    hidden = (index >= start[:, None]) & (index < (start + width)[:, None])
    return torch.where(hidden.unsqueeze(-1) & ~torch.isnan(spec), fill.to(spec.dtype), spec), hidden


def mask_time(
    spec: torch.Tensor,
    frames: torch.Tensor,
    fraction: float,
    fill: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set one span of adjacent frames within each clip's ``frames`` valid ones of ``spec (n, M, T)`` to ``fill
    (1, M, 1)``: ``(out, hidden (n, T) bool)``."""
    n, total = spec.shape[0], spec.shape[-1]
    start, width = _span(n, frames, fraction, generator, spec.device)
    index = torch.arange(total, device=spec.device)[None, :]
    hidden = (index >= start[:, None]) & (index < (start + width)[:, None])
    return torch.where(hidden.unsqueeze(1), fill.to(spec.dtype), spec), hidden


class AudioViews(nn.Module):
    """Random log-mel views of a batch of waveforms for a method's :class:`ViewSpec` (see the module docstring).

    ``log_mel`` is the encoder's front end; ``fill`` the per-bin training mean (dB) that masks write.
    """

    fill: torch.Tensor

    def __init__(
        self,
        spec: ViewSpec,
        log_mel: LogMel,
        fill: Sequence[float],
        *,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        local_crop_scale: tuple[float, float] = (0.25, 0.5),
        gain_db: float = 6.0,
        mix: float = 0.4,
        pitch: float = 3.0,
        stretch: float = 1.25,
        time_mask: float = 0.2,
        freq_mask: float = 0.2,
    ) -> None:
        super().__init__()
        if spec.n_global < 0 or spec.n_local < 0:
            raise ValueError(f"view counts must be non-negative, got {spec}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1 or not 0 < local_crop_scale[0] <= local_crop_scale[1] <= 1:
            raise ValueError(f"crop scales must be 0 < low <= high <= 1, got {crop_scale}, {local_crop_scale}")
        if gain_db < 0 or not 0 <= mix <= 1 or not 0 <= time_mask <= 1 or not 0 <= freq_mask <= 1:
            raise ValueError("gain_db must be >= 0 and mix, time_mask, freq_mask in [0, 1]")
        if pitch < 0 or stretch < 1:
            raise ValueError(f"pitch must be >= 0 semitones and stretch >= 1, got {pitch}, {stretch}")
        if len(fill) != log_mel.n_mels:
            raise ValueError(f"fill has {len(fill)} values for {log_mel.n_mels} mel bins")
        self.spec, self.log_mel = spec, log_mel
        self.register_buffer("fill", torch.tensor([float(v) for v in fill]).view(1, -1, 1), persistent=False)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.local_crop_scale = (float(local_crop_scale[0]), float(local_crop_scale[1]))
        self.gain_db, self.mix = float(gain_db), float(mix)
        self.pitch, self.stretch = float(pitch), float(stretch)
        self.time_mask, self.freq_mask = float(time_mask), float(freq_mask)

    def extra_repr(self) -> str:
        return (
            f"spec={self.spec}, crop_scale={self.crop_scale}, local_crop_scale={self.local_crop_scale}, "
            f"gain_db={self.gain_db}, mix={self.mix}, pitch={self.pitch}, stretch={self.stretch}, "
            f"time_mask={self.time_mask}, freq_mask={self.freq_mask}"
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if x.dim() != 3 or x.shape[1] != 1 or not x.is_floating_point():
            raise ValueError(f"expected float waveforms (B, 1, samples), got {x.dtype} {tuple(x.shape)}")
        views: list[torch.Tensor] = [x] if self.spec.original else []
        spec = self.log_mel(x)[:, 0]  # (B, M, T), float32
        total = spec.shape[-1]
        if self.spec.n_global:
            views += self._views(spec, self.spec.n_global, total, self.crop_scale, generator)
        if self.spec.n_local:
            views += self._views(spec, self.spec.n_local, max(1, total // 2), self.local_crop_scale, generator)
        return views

    def _views(
        self, spec: torch.Tensor, count: int, length: int, scale: tuple[float, float], generator: torch.Generator | None
    ) -> list[torch.Tensor]:
        """``count`` views ``(B, 1, M, length)`` of the batch's log-mels ``spec (B, M, T)``."""
        total = spec.shape[-1]
        if spec.shape[0] == 0:
            return [spec.new_empty(0, 1, spec.shape[1], length)] * count
        out = spec.repeat(count, 1, 1)
        frames = (~torch.isnan(out[:, 0])).sum(dim=1)  # valid frames: a prefix of each clip
        if self.mix > 0:
            out = mix_clips(out, spec, self.mix, generator)[0]
        if self.gain_db > 0:
            out = random_gain(out, self.gain_db, generator)[0]
        if self.pitch > 0:
            u = torch.rand(out.shape[0], generator=generator, device=out.device)
            out = shift_pitch(out, (2 * u - 1) * self.pitch, self.log_mel.sample_rate)
        out_frames = (
            frames
            if length == total
            else (frames * length + total // 2).div(total, rounding_mode="floor").clamp(1, length)
        )
        keep = None
        if self.stretch > 1:
            out_frames, keep = stretch_frames(out_frames, self.stretch, length, generator)
        out = crop_frames(out, frames, length, out_frames, scale, generator, keep)
        fill = self.fill.to(out.device)
        if self.freq_mask > 0:
            out = mask_frequency(out, self.freq_mask, fill, generator)[0]
        if self.time_mask > 0:
            out = mask_time(out, out_frames, self.time_mask, fill, generator)[0]
        return list(out.unsqueeze(1).chunk(count))
