"""Batched, on-device time-series augmentation with per-sample random parameters.

``SeriesViews`` turns a batch of raw series ``(B, C, T)`` (NaN = padding or missing, as the reader
gives them; see ``docs/modalities.md``) into the views a method asks for (its
:class:`~selfsup.views.ViewSpec`): with ``spec.original`` the batch itself first, then
``n_global`` views of length ``T``, then ``n_local`` shorter local views (DINO multi-crop), all of
one length. Like ``ImageViews`` every random parameter is drawn for the whole batch in one call per
op (with the given ``torch.Generator``, on the series' device) and every op is a few batched tensor
ops: no Python loop over samples. All views of one kind are made together as one ``(V * B, C, T)``
batch.

The ops are those of Um et al. 2017 ("Data augmentation of wearable sensor data for Parkinson's
disease monitoring using convolutional neural networks"): jittering, scaling, magnitude warping, time
warping, cropping, permutation; TS-TCC (Eldele et al. 2021) calls jitter + scaling its *weak* and
permutation + jitter its *strong* augmentation. Per view, in this order:

1. **crop + resize** (``crop_scale``): a window of a uniform fraction of the sample's valid length,
   resampled (linear interpolation) back to that valid length; local views use ``local_crop_scale``
   and are resampled to ``local_length`` (default ``T // 2``) scaled by the sample's valid fraction;
2. **time warping** (``time_warp`` = sigma, fused with the crop into one resampling): output time is
   mapped through a smooth, strictly increasing curve with fixed endpoints, the normalised integral of
   a speed curve interpolated (bicubic) through ``knots + 2`` speeds ~ N(1, sigma) clamped at 0.1;
3. **segment permutation** (``max_segments``; TS-TCC's strong augmentation): the valid part is cut at
   random points into 1..``max_segments`` pieces that are shuffled;
4. **magnitude warping** (``magnitude_warp`` = sigma): the deviation from ``center`` is multiplied by a
   smooth per-channel curve through ``knots + 2`` values ~ N(1, sigma) (bicubic);
5. **scaling** (``scaling`` = sigma): the deviation from ``center`` is multiplied by one factor
   ~ N(1, sigma) per sample and channel;
6. **jitter** (``jitter``): Gaussian noise whose std is ``jitter`` times the sample's own std of that
   channel (over its observed values), so the noise is relative to each series' scale whatever the
   units (a constant channel gets none);
7. **time masking** (``mask_ratio``, ``mask_span``): blocks of ``mask_span`` steps (default 5% of the
   view length) at a random phase are set to NaN in every channel with probability ``mask_ratio``, so
   an encoder sees those steps as missing (time steps where every channel is NaN are invalid to it).
   A sample keeps at least its unmasked self if the draw would hide all of it.

``center`` (per channel; ``make_views`` passes the training mean) is the point that scaling and
magnitude warping stretch around, so data with a large offset (e.g. kelvins) is not shifted.

Defaults (general view-based methods, SimCLR/BYOL/DINO on series): crop + resize ``(0.5, 1.0)``,
jitter 0.1, scaling 0.1 (Um et al.'s sigma) on; magnitude and time warping (Um et al. use 0.2 with
4 knots), permutation and masking off. Every global view uses the same recipe (``spec.asymmetric``
changes nothing here).

Padding and missing values: ops run on a filled copy (forward fill, then back fill, per channel)
and NaN is put back afterwards through the same warp: a view step is missing where its nearest
source step was, and the padding after the valid length stays NaN, so a global view of a ragged
series has NaN exactly where the series has padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from selfsup.data import valid_lengths
from selfsup.views import ViewSpec

_MIN_SPEED = 0.1  # lowest relative speed of a time warp: keeps it strictly increasing
_MASK_SPAN_FRACTION = 0.05


def default_local_length(length: int) -> int:
    """Local (multi-crop) view length: half the series length, at least 1."""
    return max(1, length // 2)


def fill_missing(x: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` with every NaN replaced by the previous observed value of its channel (the next one before
    the first observation); channels with no observation get ``fill`` (per channel, default 0)."""
    missing = torch.isnan(x)
    steps = torch.arange(x.shape[-1], device=x.device).expand_as(x)
    last = torch.where(missing, -1, steps).cummax(dim=-1).values
    first = torch.where(missing, x.shape[-1], steps).amin(dim=-1, keepdim=True)
    index = torch.where(last < 0, first, last).clamp_(max=x.shape[-1] - 1)
    out = x.gather(-1, index)
    default = torch.zeros(1, x.shape[1], 1, device=x.device, dtype=x.dtype) if fill is None else fill.view(1, -1, 1)
    return torch.where(torch.isnan(out), default.to(x.dtype).expand_as(out), out)


def sample_scale(x: torch.Tensor) -> torch.Tensor:
    """Per sample and channel, the std of the observed values ``(B, C, 1)`` (0 where fewer than 2)."""
    observed = ~torch.isnan(x)
    count = observed.sum(dim=-1, keepdim=True).clamp_min(1)
    values = torch.where(observed, x, 0.0)
    mean = values.sum(dim=-1, keepdim=True) / count
    var = torch.where(observed, (x - mean) ** 2, 0.0).sum(dim=-1, keepdim=True) / count
    return var.sqrt()


def _interpolate_knots(knots: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Bicubic curves through ``knots`` ``(N, K, M)`` (M knots evenly over [0, 1]) at ``t`` ``(N, L)``: (N, K, L)."""
    grid = torch.stack([2.0 * t - 1.0, torch.zeros_like(t)], dim=-1).unsqueeze(1)  # (N, 1, L, 2)
    out = F.grid_sample(knots.unsqueeze(2), grid, mode="bicubic", padding_mode="border", align_corners=True)
    return out.squeeze(2)


def _unit_grid(n: int, length: int, valid: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, length)`` relative times: step j of a view with ``valid`` steps at ``j / (valid - 1)``, clamped to 1
    (a one-step view samples the middle, 0.5)."""
    steps = torch.arange(length, device=device, dtype=dtype).expand(n, length)
    denom = (valid - 1).clamp_min(1).to(dtype)[:, None]
    t = (steps / denom).clamp_(max=1.0)
    return torch.where((valid == 1)[:, None], torch.full_like(t, 0.5), t)


def _time_warp(t: torch.Tensor, sigma: float, knots: int, generator: torch.Generator | None) -> torch.Tensor:
    """Smooth strictly increasing map of ``t`` ``(N, L)`` in [0, 1] onto [0, 1] that keeps 0 and 1 fixed."""
    speeds = 1.0 + sigma * torch.randn(t.shape[0], 1, knots + 2, generator=generator, device=t.device, dtype=t.dtype)
    speed = _interpolate_knots(speeds.clamp_min(_MIN_SPEED), t).squeeze(1).clamp_min(_MIN_SPEED)
    area = (speed[:, 1:] + speed[:, :-1]) * 0.5 * torch.diff(t, dim=1)  # trapezoids; 0 past the valid end
    cumulative = F.pad(area.cumsum(dim=1), (1, 0))
    total = cumulative[:, -1:]
    return torch.where(total > 0, cumulative / total.clamp_min(torch.finfo(t.dtype).tiny), t)  # one-step views: t


def _resample(x: torch.Tensor, missing: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation of ``x`` ``(N, C, T)`` at fractional ``positions`` ``(N, L)``; the missing mask
    follows the nearest source step."""
    channels, last = x.shape[1], x.shape[-1] - 1
    low = positions.floor().clamp_(0, last)
    weight = (positions - low).clamp_(0.0, 1.0).unsqueeze(1)
    low = low.long()
    high = (low + 1).clamp_(max=last)
    expand = (-1, channels, -1)
    out = torch.lerp(
        x.gather(-1, low.unsqueeze(1).expand(*expand)), x.gather(-1, high.unsqueeze(1).expand(*expand)), weight
    )
    nearest = positions.round().clamp_(0, last).long().unsqueeze(1).expand(*expand)
    return out, missing.gather(-1, nearest)


def _permute_segments(
    x: torch.Tensor, missing: torch.Tensor, valid: torch.Tensor, max_segments: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sample's first ``valid`` steps into 1..``max_segments`` pieces at random points and shuffle them."""
    n, channels, length = x.shape
    device = x.device
    u = torch.rand(n, 2 * max_segments, generator=generator, device=device)
    count = 1 + (u[:, 0] * max_segments).long().clamp_(max=max_segments - 1)  # pieces per sample
    room = (valid - 1).clamp_min(0)[:, None]  # cut points lie in 1..valid-1
    cuts = 1 + (u[:, 1:max_segments] * room).long().clamp_(max=(room - 1).clamp_min(0))
    used = torch.arange(1, max_segments, device=device)[None, :] < count[:, None]
    cuts = torch.where(used & (room > 0), cuts, valid[:, None]).sort(dim=1).values
    bounds = torch.cat([torch.zeros(n, 1, dtype=torch.long, device=device), cuts, valid[:, None]], dim=1)
    starts, sizes = bounds[:, :-1], bounds.diff(dim=1)  # (n, S); unused pieces are empty
    order = u[:, max_segments:].argsort(dim=1)  # slot j holds piece order[j]
    new_sizes = sizes.gather(1, order)
    new_ends = new_sizes.cumsum(dim=1)
    steps = torch.arange(length, device=device)
    slot = (new_ends[:, :, None] <= steps[None, None, :]).sum(dim=1).clamp_(max=max_segments - 1)  # (n, T)
    piece = order.gather(1, slot)
    source = starts.gather(1, piece) + steps[None, :] - (new_ends - new_sizes).gather(1, slot)
    source = torch.where(steps[None, :] < valid[:, None], source, steps[None, :]).clamp_(0, length - 1)
    index = source.unsqueeze(1).expand(-1, channels, -1)
    return x.gather(-1, index), missing.gather(-1, index)


def _time_mask(
    view_length: int, valid: torch.Tensor, ratio: float, span: int, generator: torch.Generator | None
) -> torch.Tensor:
    """``(N, L)`` True where a step is hidden: blocks of ``span`` steps at a random phase, each with prob ``ratio``."""
    n, device = valid.shape[0], valid.device
    blocks = view_length // span + 2
    u = torch.rand(n, blocks + 1, generator=generator, device=device)
    phase = (u[:, :1] * span).long()
    block = (torch.arange(view_length, device=device)[None, :] + phase) // span
    return (u[:, 1:].gather(1, block) < ratio) & (torch.arange(view_length, device=device)[None, :] < valid[:, None])


class SeriesViews(torch.nn.Module):
    """Random views of a batch of series for a method's :class:`ViewSpec` (see the module docstring).

    ``forward(x, generator=None)`` takes float ``(B, C, T)`` series (``C == channels``; NaN = padding
    or missing) and returns, after ``x`` itself when ``spec.original``, ``spec.n_global`` tensors
    ``(B, C, T)`` and ``spec.n_local`` tensors ``(B, C, local_length)``, on ``x``'s device and dtype.
    Randomness comes from ``generator`` (on ``x``'s device), or torch's global RNG when it is None.
    """

    center: torch.Tensor

    def __init__(
        self,
        spec: ViewSpec,
        channels: int,
        *,
        center: Sequence[float] | None = None,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        local_crop_scale: tuple[float, float] = (0.25, 0.5),
        local_length: int | None = None,
        jitter: float = 0.1,
        scaling: float = 0.1,
        magnitude_warp: float = 0.0,
        time_warp: float = 0.0,
        knots: int = 4,
        mask_ratio: float = 0.0,
        mask_span: int | None = None,
        max_segments: int = 1,
    ) -> None:
        super().__init__()
        if spec.n_global < 0 or spec.n_local < 0:
            raise ValueError(f"view counts must be non-negative, got {spec}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1 or not 0 < local_crop_scale[0] <= local_crop_scale[1] <= 1:
            raise ValueError(f"crop scales must be 0 < low <= high <= 1, got {crop_scale}, {local_crop_scale}")
        if min(jitter, scaling, magnitude_warp, time_warp) < 0 or not 0 <= mask_ratio < 1:
            raise ValueError("augmentation strengths must be >= 0 and mask_ratio in [0, 1)")
        if (
            knots < 1
            or max_segments < 1
            or (mask_span is not None and mask_span < 1)
            or (local_length is not None and local_length < 1)
        ):
            raise ValueError("knots, max_segments, mask_span and local_length must be at least 1")
        self.spec = spec
        self.channels = int(channels)
        center_values = [0.0] * self.channels if center is None else [float(c) for c in center]
        if len(center_values) != self.channels:
            raise ValueError(f"center has {len(center_values)} values for {self.channels} channels")
        self.register_buffer("center", torch.tensor(center_values).view(1, -1, 1), persistent=False)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.local_crop_scale = (float(local_crop_scale[0]), float(local_crop_scale[1]))
        self.local_length = None if local_length is None else int(local_length)
        self.jitter, self.scaling = float(jitter), float(scaling)
        self.magnitude_warp, self.time_warp, self.knots = float(magnitude_warp), float(time_warp), int(knots)
        self.mask_ratio, self.mask_span = float(mask_ratio), None if mask_span is None else int(mask_span)
        self.max_segments = int(max_segments)

    def extra_repr(self) -> str:
        return (
            f"spec={self.spec}, channels={self.channels}, crop_scale={self.crop_scale}, "
            f"local_crop_scale={self.local_crop_scale}, local_length={self.local_length}, jitter={self.jitter}, "
            f"scaling={self.scaling}, magnitude_warp={self.magnitude_warp}, time_warp={self.time_warp}, "
            f"knots={self.knots}, mask_ratio={self.mask_ratio}, mask_span={self.mask_span}, "
            f"max_segments={self.max_segments}"
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if x.dim() != 3:
            raise ValueError(f"expected series (B, C, T), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float series, got dtype {x.dtype}")
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        length = x.shape[-1]
        local_length = self.local_length or default_local_length(length)
        views: list[torch.Tensor] = [x] if self.spec.original else []
        if x.shape[0] == 0 or length == 0:
            return (
                views
                + [x.new_empty(x.shape)] * self.spec.n_global
                + [x.new_empty(x.shape[0], x.shape[1], local_length)] * self.spec.n_local
            )
        center = self.center.to(x.device, x.dtype)
        valid = valid_lengths(x)
        missing = torch.isnan(x)
        filled = fill_missing(x, center.flatten())
        scale = sample_scale(x)
        if self.spec.n_global:
            views += self._views(
                filled,
                missing,
                valid,
                scale,
                center,
                self.spec.n_global,
                length,
                valid.clamp_min(1),
                self.crop_scale,
                generator,
            )
        if self.spec.n_local:
            local_valid = (valid * local_length + length // 2).div(length, rounding_mode="floor")
            views += self._views(
                filled,
                missing,
                valid,
                scale,
                center,
                self.spec.n_local,
                local_length,
                local_valid.clamp_(1, local_length),
                self.local_crop_scale,
                generator,
            )
        return views

    def _views(
        self,
        filled: torch.Tensor,
        missing: torch.Tensor,
        valid: torch.Tensor,
        scale: torch.Tensor,
        center: torch.Tensor,
        count: int,
        view_length: int,
        view_valid: torch.Tensor,
        crop_scale: tuple[float, float],
        generator: torch.Generator | None,
    ) -> list[torch.Tensor]:
        """``count`` views of ``view_length`` steps, the first ``view_valid`` of each sample observed."""
        device, dtype = filled.device, filled.dtype
        filled, missing = filled.repeat(count, 1, 1), missing.repeat(count, 1, 1)
        valid, view_valid, scale = valid.repeat(count), view_valid.repeat(count), scale.repeat(count, 1, 1)
        n, channels = filled.shape[:2]
        source_length = valid.clamp_min(1).to(dtype)

        # crop + resize (+ time warp) as one map from view steps to fractional source steps
        u = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
        crop = (crop_scale[0] + (crop_scale[1] - crop_scale[0]) * u[:, 0]) * source_length
        crop = crop.clamp_(min=1.0)
        start = (source_length - crop).clamp_min(0.0) * u[:, 1]
        t = _unit_grid(n, view_length, view_valid, device, dtype)
        if self.time_warp > 0:
            t = _time_warp(t, self.time_warp, self.knots, generator)
        positions = start[:, None] + t * (crop - 1.0)[:, None]
        snapped = positions.round()  # whole steps stay exact (no crop, no warp: the identity)
        positions = torch.where((positions - snapped).abs() < 1e-4, snapped, positions)
        out, out_missing = _resample(filled, missing, positions)

        if self.max_segments > 1:
            out, out_missing = _permute_segments(out, out_missing, view_valid, self.max_segments, generator)
        if self.magnitude_warp > 0:
            knots = 1.0 + self.magnitude_warp * torch.randn(
                n, channels, self.knots + 2, generator=generator, device=device, dtype=dtype
            )
            curve = _interpolate_knots(knots, _unit_grid(n, view_length, view_valid, device, dtype))
            out = center + (out - center) * curve
        if self.scaling > 0:
            factor = 1.0 + self.scaling * torch.randn(n, channels, 1, generator=generator, device=device, dtype=dtype)
            out = center + (out - center) * factor
        if self.jitter > 0:
            noise = torch.randn(out.shape, generator=generator, device=device, dtype=dtype)
            out = out + noise * (self.jitter * scale)

        padding = torch.arange(view_length, device=device)[None, :] >= view_valid[:, None]  # (n, L)
        out_missing = out_missing | padding.unsqueeze(1)
        if self.mask_ratio > 0:
            span = self.mask_span or max(1, round(_MASK_SPAN_FRACTION * view_length))
            hidden = _time_mask(view_length, view_valid, self.mask_ratio, span, generator)
            seen_before = (~out_missing).flatten(1).any(dim=1)
            seen_after = (~(out_missing | hidden.unsqueeze(1))).flatten(1).any(dim=1)
            hidden &= (seen_after | ~seen_before)[:, None]  # never hide all of a sample
            out_missing = out_missing | hidden.unsqueeze(1)
        out = out.masked_fill(out_missing, float("nan"))
        return list(out.chunk(count))
