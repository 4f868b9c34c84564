"""Batched audio views on real spoken words: the contract (shapes, the original first, padding kept,
determinism, differing samples), the statistics of each op, and view-argument checking."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.datasets import load_builtin
from selfsup.encoders.audio import LogMel, hz_to_mel, mel_centres, mel_to_hz
from selfsup.errors import SelfsupError
from selfsup.modalities.audio import encoder_config, make_views
from selfsup.modalities.audio_views import (
    crop_frames,
    mask_frequency,
    mask_time,
    mix_clips,
    random_gain,
    shift_pitch,
    stretch_frames,
)
from selfsup.views import ViewSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
NONE = {
    "crop_scale": (1.0, 1.0),
    "gain_db": 0.0,
    "mix": 0.0,
    "pitch": 0.0,
    "stretch": 1.0,
    "time_mask": 0.0,
    "freq_mask": 0.0,
}


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num()))


@pytest.fixture(scope="module")
def words():
    splits = load_builtin("spoken_words")
    return splits, encoder_config("audio_cnn", splits, None, {"n_mels": 32})


@pytest.fixture(scope="module")
def clips(words) -> torch.Tensor:
    """24 real clips (0.25-0.73 s of speech, NaN-padded to 1 s)."""
    return words[0].train.x[::13][:24]


@pytest.fixture(scope="module")
def spectrograms(words, clips) -> torch.Tensor:
    return LogMel.from_config(words[1])(clips)[:, 0]


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", [ViewSpec(), ViewSpec(2, 3), ViewSpec(0, original=True), ViewSpec(1, original=True)])
def test_shapes_device_and_padding(words, clips, spectrograms, spec, device):
    splits, config = words
    views = make_views(spec, splits, config, {"stretch": 1.0}).to(device)  # no stretch: each clip keeps its end
    stretched = make_views(spec, splits, config).to(device)  # the defaults stretch
    for view in stretched(clips.to(device), _gen(0, device))[spec.original :]:  # a clip's end moves, frames stay whole
        assert view.device.type == device and torch.equal(torch.isnan(view).all(dim=2), torch.isnan(view).any(dim=2))
    x = clips.to(device)
    out = views(x, _gen(0, device))
    assert len(out) == spec.original + spec.n_global + spec.n_local
    if spec.original:
        assert out[0] is x
    frames = spectrograms.shape[-1]
    padded = torch.isnan(spectrograms[:, 0]).to(device)  # (B, T): frames past each clip's end
    for i, view in enumerate(out[spec.original :]):
        local = i >= spec.n_global
        assert view.device.type == device and view.dtype == torch.float32
        assert view.shape == (len(x), 1, 32, frames // 2 if local else frames)
        if not local:  # a global view keeps each clip's own length; every frame is NaN in all bins or none
            assert torch.equal(torch.isnan(view[:, 0, 0]), padded)
        assert torch.equal(torch.isnan(view).all(dim=2), torch.isnan(view).any(dim=2))
    assert all(
        not torch.equal(a.nan_to_num(), b.nan_to_num()) for a, b in zip(out[spec.original :], out[spec.original + 1 :])
    )


def test_empty_batch(words, clips):
    views = make_views(ViewSpec(2, 1), *words)
    out = views(clips[:0])
    assert [tuple(v.shape) for v in out] == [(0, 1, 32, 101), (0, 1, 32, 101), (0, 1, 32, 50)]


@pytest.mark.parametrize("view_args", [{}, {"pitch": 0.0, "stretch": 1.0}])
def test_generator_makes_views_reproducible_and_samples_differ(words, clips, view_args):
    views = make_views(ViewSpec(2), *words, view_args)
    first, again, other = views(clips, _gen(3)), views(clips, _gen(3)), views(clips, _gen(4))
    assert all(_equal(a, b) for a, b in zip(first, again))
    assert not _equal(first[0], other[0])
    same = clips[:1].expand(8, -1, -1).contiguous()  # one clip eight times: each copy gets its own draw
    out = views(same, _gen(0))[0][:, 0].nan_to_num()
    assert all(not torch.equal(out[0], out[i]) for i in range(1, 8))


def test_no_op_views_are_the_log_mel(words, clips, spectrograms):
    views = make_views(ViewSpec(2), *words, NONE)
    for view in views(clips, _gen(0)):
        assert _equal(view[:, 0], spectrograms)


# --------------------------------------------------------------------------- each op


def test_gain_shifts_every_bin_by_the_drawn_offset(words, clips, spectrograms):
    out, offset = random_gain(spectrograms, 6.0, _gen(0))
    assert offset.abs().max() <= 6.0 and offset.max() > 3.0 and offset.min() < -3.0
    assert _equal(out, spectrograms + offset.view(-1, 1, 1))
    # the same through the views: the waveform scaled by 10^(offset / 20) has that log-mel (away from silence)
    view = make_views(ViewSpec(1), *words, NONE | {"gain_db": 6.0})(clips, _gen(0))[0][:, 0]
    shift = (view - spectrograms).flatten(1).nanmean(dim=1)
    assert shift.abs().max() <= 6.0 + 1e-4
    factor = 10 ** (shift / 20)
    scaled = LogMel.from_config(words[1])(clips * factor.view(-1, 1, 1))[:, 0]
    loud = spectrograms > -60
    assert torch.allclose(view[loud], scaled[loud], atol=1e-3)


def test_mixing_is_a_convex_mix_in_power_with_another_clip(spectrograms):
    out, partner, weight = mix_clips(spectrograms.repeat(2, 1, 1), spectrograms, 0.4, _gen(1))
    n = len(spectrograms)
    own = torch.arange(2 * n) % n
    assert out.shape == (2 * n,) + spectrograms.shape[1:]
    assert (partner != own).all() and (weight >= 0).all() and (weight <= 0.4).all() and weight.max() > 0.2
    power = 10 ** (spectrograms[own] / 10)
    other = (10 ** (spectrograms[partner] / 10)).nan_to_num(nan=0.0)  # silent past the partner's end
    w = weight.view(-1, 1, 1)
    expected = 10 * torch.log10(((1 - w) * power + w * other).clamp_min(1e-10))  # the front end's -100 dB floor
    assert torch.equal(torch.isnan(out), torch.isnan(spectrograms[own]))  # each clip keeps its own end
    assert torch.allclose(out.nan_to_num(), expected.nan_to_num(), atol=1e-3)
    lone, partner, weight = mix_clips(spectrograms[:1], spectrograms[:1], 0.4, _gen(1))
    assert _equal(lone, spectrograms[:1]) and weight.item() == 0  # nobody to mix with


def test_crop_keeps_the_length_and_stretches_a_span(spectrograms):
    frames = (~torch.isnan(spectrograms[:, 0])).sum(dim=1)
    total = spectrograms.shape[-1]
    same = crop_frames(spectrograms, frames, total, frames, (1.0, 1.0), _gen(0))
    assert _equal(same, spectrograms)  # the whole clip, no resampling
    out = crop_frames(spectrograms, frames, total, frames, (0.5, 0.5), _gen(0))
    assert out.shape == spectrograms.shape
    assert torch.equal(torch.isnan(out), torch.isnan(spectrograms))  # the clip's length is kept
    ramp = torch.arange(total, dtype=torch.float32).expand(len(frames), 1, total).clone()
    ramp = ramp.masked_fill(torch.isnan(spectrograms[:, :1]), float("nan"))
    stretched = crop_frames(ramp, frames, total, frames, (0.5, 0.5), _gen(0))[:, 0]
    for row, n in zip(stretched, frames.tolist()):
        values = row[:n]
        assert (values.diff() >= 0).all()  # a contiguous span, in order, stretched over the clip
        assert values[-1] - values[0] == pytest.approx(0.5 * n - 1, abs=1.0)
        assert values[0] >= 0 and values[-1] <= n - 1


def _sines(config: dict, hz: float, count: int = 1, seconds: float = 0.5) -> torch.Tensor:
    """``count`` copies of a pure tone ``(count, 1, S)``, NaN-padded to 1 s like the reader's clips."""
    rate = int(config["sample_rate"])
    t = torch.arange(int(seconds * rate)) / rate
    wave = torch.full((count, 1, rate), float("nan"))
    wave[:, 0, : len(t)] = torch.sin(2 * math.pi * hz * t)
    return wave


def _tone(config: dict, hz: float) -> torch.Tensor:
    """The log-mel ``(1, M, T)`` of a pure tone."""
    return LogMel.from_config(config)(_sines(config, hz))[:, 0]


def _peak_hz(spec: torch.Tensor, config: dict) -> torch.Tensor:
    """Per row of log-mels ``(n, M, T)``, the power-weighted mel centre of the mean spectrum's peak bin and its
    neighbours, in Hz."""
    bins = spec.shape[1]
    centres = hz_to_mel(mel_centres(config["sample_rate"], bins))
    mean = spec.nanmean(dim=2)
    top = mean.argmax(dim=1)
    near = (torch.arange(bins)[None, :] - top[:, None]).abs() <= 1
    power = torch.where(near, 10 ** (mean / 10), torch.zeros_like(mean))
    return mel_to_hz((power * centres).sum(dim=1) / power.sum(dim=1))


def test_pitch_shift_moves_a_tone_by_the_semitones(words):
    config = words[1]
    tone = _tone(config, 1000.0)
    assert _equal(shift_pitch(tone, torch.zeros(1), config["sample_rate"]), tone)  # no shift: the identity
    for semitones, hz in [(12.0, 2000.0), (-12.0, 500.0), (7.0, 1000 * 2 ** (7 / 12)), (-5.0, 1000 * 2 ** (-5 / 12))]:
        shifted = shift_pitch(tone, torch.tensor([semitones]), config["sample_rate"])
        target = _tone(config, hz)
        assert torch.equal(torch.isnan(shifted), torch.isnan(tone))  # the clip's end is kept
        assert _peak_hz(shifted, config).item() == pytest.approx(hz, rel=0.06)
        assert _peak_hz(target, config).item() == pytest.approx(hz, rel=0.06)
        assert shifted.nanmean(dim=2).argmax() == target.nanmean(dim=2).argmax()  # the tone's own bin


def test_pitch_view_draws_shifts_within_the_bound(words):
    config = words[1]
    out = make_views(ViewSpec(1), *words, NONE | {"pitch": 4.0})(_sines(config, 1000.0, 200), _gen(0))[0][:, 0]
    shift = 12 * torch.log2(_peak_hz(out, config) / _peak_hz(_tone(config, 1000.0), config))
    assert shift.abs().max() <= 4.0 + 0.7  # within the bound, up to a bin's resolution
    assert shift.max() > 2.5 and shift.min() < -2.5 and shift.mean().abs() < 0.6  # U(-4, 4) semitones


def test_stretch_scales_the_valid_frames_within_the_factor(words, clips, spectrograms):
    frames = torch.full((4000,), 40)
    out, keep = stretch_frames(frames, 1.5, 101, _gen(0))
    ratio = out.float() / 40
    assert ratio.min() >= 1 / 1.5 - 0.02 and ratio.max() <= 1.5 + 0.02 and (keep == 1).all()
    assert ratio.min() < 0.7 and ratio.max() > 1.45 and ratio.log().mean().abs() < 0.02  # log-uniform
    full, keep = stretch_frames(torch.full((400,), 100), 2.0, 101, _gen(0))  # slowed past the view's end:
    assert full.max() == 101 and (full[keep < 1] == 101).all() and (keep[full < 101] == 1).all()  # cut there
    wanted = full.float() / keep
    assert (wanted <= 200.5).all() and wanted.max() > 190 and (keep >= 101 / 200 - 0.01).all()
    empty, keep = stretch_frames(torch.tensor([0, 10]), 2.0, 101, _gen(0))
    assert empty[0] == 0 and keep[0] == 1  # an empty clip stays empty
    # through the views: each clip, whole (no crop), resampled onto its stretched frames, first to last frame
    view = make_views(ViewSpec(1), *words, NONE | {"stretch": 1.5})(clips, _gen(1))[0][:, 0]
    have = (~torch.isnan(spectrograms[:, 0])).sum(dim=1)
    got = (~torch.isnan(view[:, 0])).sum(dim=1)
    assert torch.equal(torch.isnan(view).all(dim=1), torch.isnan(view).any(dim=1))
    assert (got.float() / have >= 1 / 1.5 - 0.05).all() and (got.float() / have <= 1.5 + 0.05).all()
    assert (got > have).any() and (got < have).any()
    for row, clip, n, m in zip(view, spectrograms, have.tolist(), got.tolist()):
        assert torch.allclose(row[:, 0], clip[:, 0]) and torch.allclose(row[:, m - 1], clip[:, n - 1], atol=1e-4)
    # a ramp that fills the view, slowed: the rate holds and the tail is cut (frame k shows k / f)
    total = spectrograms.shape[-1]
    ramp = torch.arange(total, dtype=torch.float32).expand(400, 1, total)
    every = torch.full((400,), total)
    out, keep = stretch_frames(every, 1.5, total, _gen(2))
    slowed = crop_frames(ramp, every, total, out, (1.0, 1.0), _gen(3), keep)[:, 0]
    rate = (slowed[:, -1] - slowed[:, 0]) / (total - 1)  # frames shown per frame of the view
    cut = keep < 1
    assert cut.sum() > 150 and torch.allclose(rate[cut], keep[cut], atol=0.02)
    assert (slowed[cut].diff(dim=1) < 1).all()  # every step less than a frame: slower


def test_masks_hide_at_most_the_stated_fraction_with_the_mean(words, spectrograms):
    fill = torch.tensor(words[1]["mean"]).view(1, -1, 1)
    frames = (~torch.isnan(spectrograms[:, 0])).sum(dim=1)
    many = spectrograms.repeat(20, 1, 1)
    out, hidden = mask_time(many, frames.repeat(20), 0.3, fill, _gen(0))
    widths = hidden.sum(dim=1)
    assert (widths <= (0.3 * frames.repeat(20)).floor()).all() and widths.min() == 0
    assert (widths == (0.3 * frames.repeat(20)).floor()).any()  # the widest span is drawn too
    assert widths.float().mean() == pytest.approx(0.15 * frames.float().mean(), rel=0.25)
    index = torch.arange(many.shape[-1])
    assert not (hidden & (index[None, :] >= frames.repeat(20)[:, None])).any()  # never past the clip's end
    normalised = (out - fill) / torch.tensor(words[1]["std"]).view(1, -1, 1)
    assert (normalised.transpose(1, 2)[hidden] == 0).all()  # the encoder sees exactly 0 there
    assert _equal(out.transpose(1, 2)[~hidden], many.transpose(1, 2)[~hidden])

    out, hidden = mask_frequency(many, 0.25, fill, _gen(0))
    widths = hidden.sum(dim=1)
    assert widths.max() == 8 and widths.min() == 0 and (widths <= 8).all()  # 0.25 of 32 bins
    assert widths.float().mean() == pytest.approx(4.0, rel=0.25)
    assert torch.equal(torch.isnan(out), torch.isnan(many))  # padding frames stay padding
    rows = hidden.unsqueeze(-1) & ~torch.isnan(many)
    assert (out[rows] == fill.expand_as(many)[rows]).all() and _equal(out[~rows], many[~rows])


# --------------------------------------------------------------------------- arguments


def test_view_arguments_are_checked(words):
    with pytest.raises(SelfsupError, match="unknown audio view argument.*flip.*known: crop_scale"):
        make_views(ViewSpec(), *words, {"flip": True})
    with pytest.raises(SelfsupError, match="time_mask must be a number >= 0 and <= 1"):
        make_views(ViewSpec(), *words, {"time_mask": 1.5})
    with pytest.raises(SelfsupError, match="crop_scale must be two numbers"):
        make_views(ViewSpec(), *words, {"crop_scale": (0.8, 0.2)})
    with pytest.raises(SelfsupError, match="stretch must be a number >= 1"):
        make_views(ViewSpec(), *words, {"stretch": 0.5})
    with pytest.raises(SelfsupError, match="pitch must be a number >= 0 and <= 24"):
        make_views(ViewSpec(), *words, {"pitch": -2})
    with pytest.raises(SelfsupError, match="pitch must be a number >= 0 and <= 24"):
        make_views(ViewSpec(), *words, {"pitch": 30})
    views = make_views(ViewSpec(), *words, {"gain_db": "3", "mix": "0", "pitch": "2", "stretch": "1.2"})  # as text
    assert views.gain_db == 3.0 and views.mix == 0.0 and views.pitch == 2.0 and views.stretch == 1.2
