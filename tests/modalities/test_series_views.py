"""Batched time-series views: shapes, the original first, NaN padding kept, determinism, and the
statistics of each augmentation (jitter, scaling, magnitude and time warping, crop, masking, permutation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import valid_lengths
from selfsup.datasets.ucr import load_ucr
from selfsup.modalities.series_views import SeriesViews, fill_missing
from selfsup.views import ViewSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
NONE = {"crop_scale": (1.0, 1.0), "jitter": 0.0, "scaling": 0.0}  # every op off


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.fixture(scope="module")
def vowels() -> torch.Tensor:
    """Real ragged multivariate series: JapaneseVowels, 12 channels, lengths 7..26, NaN-padded."""
    return load_ucr("japanesevowels").train.x


@pytest.fixture(scope="module")
def gunpoint() -> torch.Tensor:
    return load_ucr("gunpoint").train.x


def _ramp(lengths: list[int], length: int, channels: int = 1) -> torch.Tensor:
    """Series whose value is the time step, NaN after each sample's length."""
    steps = torch.arange(length, dtype=torch.float32)
    x = steps.expand(len(lengths), channels, length).clone()
    for i, n in enumerate(lengths):
        x[i, :, n:] = float("nan")
    return x


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num()))


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "spec", [ViewSpec(), ViewSpec(2, 4), ViewSpec(1, 2, original=True), ViewSpec(0, 0, True, True)]
)
def test_shapes_original_and_padding(vowels, device, spec):
    x = vowels[:32].to(device)
    views = SeriesViews(spec, 12, magnitude_warp=0.2, time_warp=0.2, max_segments=4)
    out = views(x, _gen(0, device))
    assert len(out) == int(spec.original) + spec.n_global + spec.n_local
    if spec.original:
        assert out[0] is x
    globals_ = out[int(spec.original) : int(spec.original) + spec.n_global]
    locals_ = out[int(spec.original) + spec.n_global :]
    padding = torch.isnan(x).all(dim=1)
    for v in globals_:
        assert v.shape == x.shape and v.dtype == x.dtype and v.device == x.device
        assert torch.equal(torch.isnan(v).all(dim=1), padding)  # NaN exactly where the padding is
        assert torch.equal(torch.isnan(v).any(dim=1), padding)  # and nowhere else (no missing values here)
    for v in locals_:
        assert v.shape == (32, 12, 14)  # all local views share one shape: T // 2
        lengths = valid_lengths(v)
        expected = (valid_lengths(x) * 14 + 14) // 29  # the valid fraction of the series, rounded
        assert torch.equal(lengths, expected.clamp(1, 14))
        steps = torch.arange(14, device=device)
        assert torch.isnan(v).all(dim=1)[steps[None] >= lengths[:, None]].all()


def test_missing_values_follow_the_warp(gunpoint):
    x = gunpoint[:16].clone()
    x[:, :, 40:60] = float("nan")  # missing in the middle
    x[:8, :, 140:] = float("nan")  # and padding at the end of half of them
    identity = SeriesViews(ViewSpec(1), 1, **NONE)(x, _gen(0))[0]
    assert _equal(identity, x)  # every op off: the series itself, missing values and padding included
    warped = SeriesViews(ViewSpec(4), 1, time_warp=0.3, crop_scale=(0.9, 1.0))(x, _gen(1))
    for v in warped:
        assert torch.isnan(v[:8, :, 140:]).all() and not torch.isnan(v[8:, :, 140:]).any()
        gap = torch.isnan(v[:, 0, :140]).sum(dim=1)
        assert (gap > 0).all() and (gap < 40).all()  # the gap moves and stretches but stays a gap


def test_generator_reproducibility(vowels):
    views = SeriesViews(ViewSpec(2, 2), 12, magnitude_warp=0.2, time_warp=0.2, mask_ratio=0.2, max_segments=3)
    x = vowels[:64]
    a, b, c = views(x, _gen(7)), views(x, _gen(7)), views(x, _gen(8))
    assert all(_equal(u, v) for u, v in zip(a, b))
    assert not any(_equal(u, v) for u, v in zip(a, c))
    assert not _equal(a[0], a[1])  # two views of one batch differ


def test_empty_batch_and_bad_input():
    views = SeriesViews(ViewSpec(2, 1, original=True), 3)
    out = views(torch.zeros(0, 3, 20))
    assert [tuple(v.shape) for v in out] == [(0, 3, 20)] * 3 + [(0, 3, 10)]
    with pytest.raises(ValueError, match="expected 3 channels"):
        views(torch.zeros(2, 4, 20))
    with pytest.raises(ValueError, match="float"):
        views(torch.zeros(2, 3, 20, dtype=torch.long))


def test_helpers_fill_and_lengths():
    nan = float("nan")
    x = torch.tensor([[[nan, 1.0, nan, 3.0, nan, nan], [nan, nan, nan, nan, nan, nan]]])
    assert valid_lengths(x).tolist() == [4]
    assert fill_missing(x, torch.tensor([0.0, 9.0])).tolist() == [[[1.0, 1.0, 1.0, 3.0, 3.0, 3.0], [9.0] * 6]]


# --------------------------------------------------------------------------- each op


def test_jitter_noise_is_relative_to_each_series_scale(gunpoint):
    amplitude = torch.tensor([0.5, 1.0, 4.0, 20.0]).repeat_interleave(64)[:, None, None]
    x = gunpoint[:4].repeat(64, 1, 1) * amplitude
    view = SeriesViews(ViewSpec(1), 1, **(NONE | {"jitter": 0.2}))(x, _gen(0))[0]
    noise_std = (view - x).std(dim=(1, 2)).view(4, 64)
    series_std = x.std(dim=(1, 2), unbiased=False).view(4, 64)
    ratio = noise_std / series_std
    assert ratio.mean().item() == pytest.approx(0.2, rel=0.02)
    assert (ratio - 0.2).abs().max().item() < 0.05  # every sample, whatever its amplitude


def test_scaling_factor_distribution(gunpoint):
    x = gunpoint[:1].repeat(2000, 1, 1) + 5.0  # values away from the centre 0
    view = SeriesViews(ViewSpec(1), 1, **(NONE | {"scaling": 0.2}))(x, _gen(0))[0]
    factor = view / x
    per_sample = factor.mean(dim=(1, 2))
    assert torch.allclose(factor, per_sample[:, None, None], atol=1e-5)  # one factor per sample and channel
    assert per_sample.mean().item() == pytest.approx(1.0, abs=0.015)
    assert per_sample.std().item() == pytest.approx(0.2, rel=0.06)
    # around a centre: the channel's training mean stays put
    centred = SeriesViews(ViewSpec(1), 1, center=[5.0], **(NONE | {"scaling": 0.2}))(x, _gen(0))[0]
    assert torch.allclose((centred - 5.0) / (x - 5.0), per_sample[:, None, None], atol=1e-4)


def test_scaling_is_per_channel(vowels):
    x = vowels.nan_to_num(1.0).abs() + 1.0
    view = SeriesViews(ViewSpec(1), 12, **(NONE | {"scaling": 0.3}))(x, _gen(3))[0]
    factor = (view / x).mean(dim=2)  # (B, C)
    assert factor.std(dim=1).mean().item() > 0.15


def test_magnitude_warp_is_smooth_and_centred_on_one():
    x = torch.ones(500, 2, 200)
    curve = SeriesViews(ViewSpec(1), 2, **(NONE | {"magnitude_warp": 0.2}))(x, _gen(0))[0]
    assert curve.mean().item() == pytest.approx(1.0, abs=0.01)
    assert curve.std(dim=2).mean().item() > 0.05  # it does vary along time
    second_difference = curve.diff(n=2, dim=2).abs().max().item()
    assert second_difference < 0.01  # smooth: no step-to-step noise
    assert not torch.allclose(curve[:, 0], curve[:, 1])  # one curve per channel


def test_crop_stays_inside_the_valid_range():
    lengths = [200, 120, 50, 9] * 100
    x = _ramp(lengths, 200)
    crop_scale = (0.3, 0.6)
    out = SeriesViews(ViewSpec(2, 2), 1, **(NONE | {"crop_scale": crop_scale}))(x, _gen(0))
    lengths_t = torch.tensor(lengths, dtype=torch.float32)
    for v in out:
        first, last = v[:, 0, 0], v.nan_to_num(-1.0)[:, 0].amax(dim=1)
        assert (first >= 0).all() and (last <= lengths_t - 1 + 1e-4).all()
        covered = (last - first + 1) / lengths_t  # the crop's share of the valid length
        low = crop_scale[0] if v.shape[-1] == 200 else 0.25
        high = crop_scale[1] if v.shape[-1] == 200 else 0.5
        long_enough = lengths_t >= 50
        assert (covered[long_enough] >= low - 0.03).all() and (covered[long_enough] <= high + 0.03).all()
        assert (v.nan_to_num(1e9).diff(dim=2) >= -1e-4).all()  # resized, not reordered


def test_time_warp_is_monotone_and_keeps_the_endpoints():
    lengths = [150, 100, 31, 2] * 50
    x = _ramp(lengths, 150)
    views = SeriesViews(ViewSpec(3), 1, **(NONE | {"time_warp": 0.5, "knots": 4}))(x, _gen(0))
    lengths_t = torch.tensor(lengths)
    for v in views:
        rows = torch.arange(len(lengths))
        assert torch.allclose(v[:, 0, 0], torch.zeros(len(lengths)), atol=1e-4)
        assert torch.allclose(v[rows, 0, lengths_t - 1], (lengths_t - 1).float(), atol=1e-3)
        steps = v.diff(dim=2)
        assert (steps[~torch.isnan(steps)] > 0).all()  # strictly increasing over the valid part
        assert torch.equal(torch.isnan(v), torch.isnan(x))
        assert (v - x).nan_to_num().abs().amax().item() > 5  # and it does warp
    identity = SeriesViews(ViewSpec(1), 1, **NONE)(x, _gen(0))[0]
    assert torch.allclose(identity.nan_to_num(), x.nan_to_num(), atol=1e-4)


def test_time_masking_fraction_and_spans(gunpoint):
    x = gunpoint.repeat(8, 1, 1)  # 400 series of 150 steps
    for ratio, span in ((0.3, 10), (0.5, 1)):
        view = SeriesViews(ViewSpec(1), 1, **(NONE | {"mask_ratio": ratio, "mask_span": span}))(x, _gen(0))[0]
        hidden = torch.isnan(view[:, 0])
        assert hidden.float().mean().item() == pytest.approx(ratio, abs=0.03)
        assert torch.equal(view[~torch.isnan(view)], x[~torch.isnan(view)])  # the rest untouched
        runs = (hidden[:, 1:] & ~hidden[:, :-1]).sum().item() + hidden[:, 0].sum().item()  # masked spans
        assert hidden.sum().item() / runs >= span * 0.9  # spans of at least about mask_span steps
        assert (~hidden).any(dim=1).all()


def test_time_masking_hides_every_channel_and_never_a_whole_sample(vowels):
    view = SeriesViews(ViewSpec(1), 12, **(NONE | {"mask_ratio": 0.95, "mask_span": 3}))(vowels, _gen(0))[0]
    hidden = torch.isnan(view)
    assert torch.equal(hidden.any(dim=1), hidden.all(dim=1))  # a masked step is missing in every channel
    assert (~hidden).any(dim=(1, 2)).all()


def test_segment_permutation_keeps_the_values(gunpoint, vowels):
    for x in (gunpoint, vowels):
        view = SeriesViews(ViewSpec(1), x.shape[1], **(NONE | {"max_segments": 5}))(x, _gen(0))[0]
        assert torch.equal(torch.isnan(view), torch.isnan(x))
        same = torch.equal(view.nan_to_num().sort(dim=2).values, x.nan_to_num().sort(dim=2).values)
        assert same  # the multiset of values of every sample and channel
        changed = (view.nan_to_num() != x.nan_to_num()).flatten(1).any(dim=1).float().mean().item()
        assert changed > 0.5  # most samples are actually shuffled (1 piece, or pieces in order, keep it)


def test_segment_permutation_moves_whole_segments():
    x = _ramp([60] * 200, 60, channels=2)
    x[:, 1] += 1000.0
    out = SeriesViews(ViewSpec(1), 2, **(NONE | {"max_segments": 4}))(x, _gen(1))[0]
    assert torch.equal(out[:, 1] - out[:, 0], torch.full((200, 60), 1000.0))  # channels move together
    jumps = (out[:, 0].diff(dim=1) != 1).sum(dim=1)
    assert jumps.max().item() <= 3  # at most 4 pieces, each a run of consecutive steps
    assert (jumps > 0).float().mean().item() > 0.4


def test_defaults_change_the_series_moderately(gunpoint):
    views = SeriesViews(ViewSpec(2), 1)
    assert views.crop_scale == (0.5, 1.0) and views.jitter == 0.1 and views.scaling == 0.1
    assert views.magnitude_warp == views.time_warp == views.mask_ratio == 0 and views.max_segments == 1
    out = views(gunpoint, _gen(0))
    assert all(torch.isfinite(v).all() for v in out)
    correlation = np.corrcoef(out[0].flatten().numpy(), out[1].flatten().numpy())[0, 1]
    assert 0.3 < correlation < 0.999
