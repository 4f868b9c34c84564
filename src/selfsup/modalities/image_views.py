"""Batched, on-device image augmentation with per-sample random parameters.

``ImageViews`` turns a batch of images ``(B, C, H, W)`` in ``[0, 1]`` into the views a method asks
for (its :class:`~selfsup.views.ViewSpec`): ``n_global`` full-size views followed by ``n_local``
small multi-crop views. It replaces per-sample PIL transforms in DataLoader workers: every random
parameter is drawn for the whole batch in one call per op (with the given ``torch.Generator``, on the
images' device), and every op is a handful of batched tensor ops, so there is no Python loop over
samples and it runs wherever the batch lives (CPU or GPU).

The recipe is SimCLR's / BYOL's / DINO's at CIFAR scale:

* random resized crop (area ``crop_scale``, aspect ratio 3/4-4/3 log-uniform, bilinear), fused with
  the horizontal flip (p=0.5) into one batched affine grid + ``F.grid_sample``;
* colour jitter with p=0.8: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1 (all times
  ``jitter_strength``), applied in that fixed order (torchvision shuffles the order; we do not);
* random grayscale p=0.2;
* Gaussian blur: sigma uniform in ``[0.1, 2.0]`` pixels (times ``size / 224`` for views larger than
  224 px, so the blur keeps SimCLR's proportions there), kernel about 10% of the view size, odd, at
  least 3 (23 at 224 px as in SimCLR, 3 at 32 px as in the usual CIFAR recipes); reflect padding;
* solarize (threshold 0.5: pixels ``>= 0.5`` become ``1 - x``).

Probabilities: symmetric spec (SimCLR) blur 0.5 / solarize 0 on every global view; asymmetric spec
(BYOL, DINO) global view 1 blur 1.0 / solarize 0, global view 2 blur 0.1 / solarize 0.2 (further
global views alternate); local crops blur 0.5 / solarize 0 and use ``local_crop_scale``.

Light specs (``spec.light``: MAE, CropMAE) get the crop and flip only, at ``crop_scale``; with ``spec.original`` the
first view is such a crop in place of the batch itself. With ``spec.nested`` each global view after the first is a
crop of the first one at ``local_crop_scale`` of its area, resized to the full view size and flipped on its own
(CropMAE's global-to-local crops: 50-100% of the image, then 30-60% of that).

Saturation, hue and grayscale need RGB and are skipped when ``C != 3``; brightness and contrast apply
to any channel count (contrast then uses the mean over all channels). Every colour op clamps to
``[0, 1]``.

Rasters (``raster=True``: multispectral or SAR bands at their own values, any range and channel count) get
the crop, the flip and the blur (not clamped) only: colour jitter, grayscale and solarize assume RGB in
``[0, 1]`` and are off, as in the usual remote-sensing recipes, which keep to geometric views.

Hue: by default the hue shift is a rotation of the chroma (I, Q) plane in YIQ space, i.e. one
per-sample 3x3 colour matrix applied with a single batched matmul (the approach of e.g. NVIDIA DALI's
hue op). It is a proper hue rotation: identity for a zero shift, luma (Y) and grey pixels kept
exactly, a positive shift turns red towards green as an HSV hue shift does, and a third of a turn
maps the primaries onto one another to within about 20 degrees. It is not HSV's hue (torchvision's
``adjust_hue``), which keeps each pixel's max and min channel instead of its luma, so per pixel the
two differ by about as much as the shift itself moves it; as an augmentation (a random colour
rotation of the jitter's size) that does not matter, and it costs a fraction of the exact version (an
exact vectorised HSV shift cost about 1.7x the whole pipeline's CPU time; the tests keep it as the
reference the rotation is checked against).

Ops that touch a minority of samples (grayscale, blur, solarize) run on CPU only on the selected
samples (gather, transform, write back); on other devices they run on the whole batch and are blended
with ``torch.where`` so that nothing waits on the host.

All views of one kind (all globals, all locals) are produced together as one ``(V * B, ...)`` batch
and split at the end, so each op runs once per kind rather than once per view.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from selfsup.views import ViewSpec

# ITU-R 601 luma weights (torchvision uses 0.2989 for red; these sum to 1 so grey stays grey).
_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ (FCC NTSC); rows Y, I, Q.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)
_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_CROP_TRIES = 10
_SIGMA = (0.1, 2.0)
_SIGMA_REFERENCE_SIZE = 224
_SOLARIZE_THRESHOLD = 0.5


def default_local_size(size: int) -> int:
    """DINO's local/global ratio (96/224) applied to ``size``, at least 4 pixels."""
    return max(4, round(size * 3 / 7))


def blur_kernel_size(size: int) -> int:
    """Odd kernel of about 10% of the view size, at least 3 (SimCLR: 23 at 224 px)."""
    return max(3, 2 * int(size * 0.1 / 2) + 1)


def blur_sigma_range(size: int) -> tuple[float, float]:
    """Sigma range in pixels: SimCLR's (0.1, 2.0), scaled up for views larger than 224 px."""
    factor = max(1.0, size / _SIGMA_REFERENCE_SIZE)
    return (_SIGMA[0] * factor, _SIGMA[1] * factor)


# --------------------------------------------------------------------------- geometry


def _crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    flip_p: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Per-sample affine matrices ``(n, 2, 3)`` (normalised coordinates) of a random resized crop.

    Like torchvision's ``RandomResizedCrop``: area fraction uniform in ``scale``, aspect ratio
    (width / height, in pixels) log-uniform in ``ratio``; up to ``_CROP_TRIES`` candidates per sample
    (all drawn at once), the first that fits the image is used, otherwise torchvision's fallback: a central
    crop, the whole image when its aspect ratio is within ``ratio`` (so ``scale=(1, 1)`` gives the whole image).
    The centre is uniform over the positions that keep the crop inside the image. A horizontal flip
    (p=``flip_p``) negates the x scale.
    """
    u = torch.rand(n, 2 * _CROP_TRIES + 3, generator=generator, device=device)
    area = scale[0] + (scale[1] - scale[0]) * u[:, :_CROP_TRIES]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, _CROP_TRIES : 2 * _CROP_TRIES])
    aspect = aspect * (height / width)  # pixel aspect -> aspect of the normalised fractions
    frac_w = torch.sqrt(area * aspect)  # crop width / image width
    frac_h = torch.sqrt(area / aspect)
    fits = (frac_w <= 1.0) & (frac_h <= 1.0)
    # index of the first candidate that fits (or the last one when none does)
    first = torch.where(fits.any(dim=1), fits.to(torch.uint8).argmax(dim=1), _CROP_TRIES - 1)
    frac_w = frac_w.gather(1, first[:, None]).squeeze(1).clamp_(max=1.0)
    frac_h = frac_h.gather(1, first[:, None]).squeeze(1).clamp_(max=1.0)
    centre_x = (1.0 - frac_w) * (2.0 * u[:, -3] - 1.0)
    centre_y = (1.0 - frac_h) * (2.0 * u[:, -2] - 1.0)
    none = ~fits.any(dim=1)  # torchvision's fallback: the central crop closest to the whole image
    in_ratio = width / height
    frac_w = torch.where(none, min(1.0, ratio[1] / in_ratio), frac_w)
    frac_h = torch.where(none, min(1.0, in_ratio / ratio[0]), frac_h)
    centre_x, centre_y = centre_x.masked_fill(none, 0.0), centre_y.masked_fill(none, 0.0)
    sign = torch.where(u[:, -1] < flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = frac_w * sign
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = frac_h
    theta[:, 1, 2] = centre_y
    return theta


def _resized_crop(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops ``(V * B, C, size, size)`` of ``x`` ``(B, C, H, W)``; ``theta`` is ``(V * B, 2, 3)``.

    Row ``v * B + b`` of the output is a crop of image ``b``. ``theta`` is axis-aligned (scale and
    translation only), so the sampling grid is built by broadcasting instead of ``F.affine_grid``
    (whose batched matmul with K=3 costs more than the sampling itself on CPU); same grid, same
    ``align_corners=False`` convention.
    """
    batch = x.shape[0]
    n = theta.shape[0]
    views = n // batch
    source = x if views == 1 else x.expand(views, *x.shape).reshape(n, *x.shape[1:])
    theta = theta.to(x.dtype)
    base = torch.arange(size, device=x.device, dtype=x.dtype).mul_(2.0 / size).add_(1.0 / size - 1.0)
    grid = torch.empty(n, size, size, 2, device=x.device, dtype=x.dtype)
    grid[..., 0] = torch.addcmul(theta[:, 0, 2:3], theta[:, 0, 0:1], base).unsqueeze(1)  # x varies along width
    grid[..., 1] = torch.addcmul(theta[:, 1, 2:3], theta[:, 1, 1:2], base).unsqueeze(2)  # y along height
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _random_resized_crop(
    x: torch.Tensor,
    size: int,
    views: int,
    scale: tuple[float, float],
    flip_p: float,
    generator: torch.Generator | None,
    ratio: tuple[float, float] = _RATIO,
) -> torch.Tensor:
    """``views`` random resized (and maybe flipped) crops of every image: ``(views * B, C, size, size)``."""
    theta = _crop_boxes(views * x.shape[0], x.shape[-2], x.shape[-1], scale, ratio, flip_p, generator, x.device)
    return _resized_crop(x, theta, size)


def _nested_boxes(
    outer: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    flip_p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Boxes ``(n, 2, 3)`` in the image of random resized crops taken inside the ``outer`` crops (CropMAE's local
    crop of its global view): a crop of a ``size`` x ``size`` view at ``scale`` of its area, composed with the
    outer crop before the outer crop's flip (each view is flipped on its own, as CropMAE flips after cropping)."""
    inner = _crop_boxes(outer.shape[0], size, size, scale, _RATIO, flip_p, generator, outer.device)
    theta = torch.zeros_like(inner)
    outer_w = outer[:, 0, 0].abs()  # the outer crop unflipped
    theta[:, 0, 0] = outer_w * inner[:, 0, 0]
    theta[:, 0, 2] = outer_w * inner[:, 0, 2] + outer[:, 0, 2]
    theta[:, 1, 1] = outer[:, 1, 1] * inner[:, 1, 1]
    theta[:, 1, 2] = outer[:, 1, 1] * inner[:, 1, 2] + outer[:, 1, 2]
    return theta


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=128)
def _const(values: tuple, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A small constant tensor, made once per device and dtype (no host-to-device copy per call)."""
    return torch.tensor(values, device=device, dtype=dtype)


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(n,)`` values shaped ``(n, 1, 1, 1)`` in ``x``'s dtype, to broadcast over images."""
    return values.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def _on_samples(x: torch.Tensor, mask: torch.Tensor, op, *params: torch.Tensor) -> torch.Tensor:
    """``op(x, *params)`` on the samples where ``mask`` (``(n,)`` bool) is set; the others unchanged.

    ``params`` are per-sample tensors (first dimension ``n``). On CPU only the selected samples are
    computed (gathered, transformed, written back into ``x`` in place): for the ops applied to a
    minority of samples (grayscale 0.2, solarize 0.2, blur 0.1-0.5) that is most of their cost. On
    other devices the op runs on the whole batch and is blended with ``torch.where``, which needs no
    host synchronisation.
    """
    if x.device.type != "cpu":
        return torch.where(mask.view(-1, 1, 1, 1), op(x, *params), x)
    index = mask.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    if index.numel() == x.shape[0]:
        return op(x, *params)
    x[index] = op(x[index], *(p[index] for p in params))
    return x


# --------------------------------------------------------------------------- colour


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(n, 1, H, W)`` of RGB images (the channel mean for other channel counts)."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    r, g, b = x.unbind(1)
    return (r * _LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``x * factor`` per sample (torchvision ``adjust_brightness``); in place."""
    return x.mul_(_per_sample(factor, x)).clamp_(0.0, 1.0)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level (torchvision ``adjust_contrast``); in place."""
    if x.shape[1] == 3:
        mean = x.mean(dim=(2, 3)) @ _const(_LUMA, x.device, x.dtype)  # mean of the luma image
    else:
        mean = x.mean(dim=(1, 2, 3))
    f = factor.to(x.dtype)
    return x.mul_(_per_sample(f, x)).add_(_per_sample((1.0 - f) * mean, x)).clamp_(0.0, 1.0)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the luma image (torchvision ``adjust_saturation``); RGB only; in place."""
    f = _per_sample(factor, x)
    grey = _grey(x).mul_(1.0 - f)
    return x.mul_(f).add_(grey).clamp_(0.0, 1.0)


def _yiq_rotation_basis() -> tuple:
    """``(A, B, C)`` with ``RGB<-YIQ @ rotation(angle) @ YIQ<-RGB = A + cos(angle) B + sin(angle) C``."""
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    from_yiq = torch.linalg.inv(to_yiq)
    keep = torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    cos = torch.diag(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64))
    sin = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    return tuple(tuple((from_yiq @ m @ to_yiq).flatten().tolist()) for m in (keep, cos, sin))


_YIQ_ROTATION = _yiq_rotation_basis()


def _hue_matrix(shift: torch.Tensor) -> torch.Tensor:
    """Per-sample RGB matrices ``(n, 3, 3)``: rotate the YIQ chroma plane by ``shift`` turns."""
    angle = (-2.0 * math.pi) * shift  # negative: a positive shift goes red -> green -> blue, as HSV
    coefficients = torch.stack([torch.ones_like(angle), torch.cos(angle), torch.sin(angle)], dim=1)
    return (coefficients @ _const(_YIQ_ROTATION, shift.device, shift.dtype)).view(-1, 3, 3)


def _hue_yiq(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue shift by ``shift`` turns per sample as a YIQ chroma rotation: one batched matmul.

    Keeps luma and grey pixels exactly; a positive shift turns red towards green like an HSV hue
    shift, a third of a turn maps the primaries to one another to within about 20 degrees.
    """
    n, c, h, w = x.shape
    out = torch.bmm(_hue_matrix(shift.to(torch.float32)).to(x.dtype), x.reshape(n, c, h * w))
    return out.view(n, c, h, w).clamp_(0.0, 1.0)


def _colour_jitter(x: torch.Tensor, p: float, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    """With probability ``p`` per sample: brightness, contrast, saturation, hue (in that order).

    Factors are uniform in ``[max(0, 1 - a), 1 + a]`` for a = 0.4, 0.4, 0.2 (times ``strength``),
    the hue shift uniform in ``[-h, h]`` turns, h = 0.1 * strength (at most 0.5). Samples that are
    not jittered get the identity parameters. Saturation and hue are skipped unless ``C == 3``.
    """
    amounts = (0.4 * strength, 0.4 * strength, 0.2 * strength)
    hue = min(0.1 * strength, 0.5)
    rgb = x.shape[1] == 3
    u = torch.rand(x.shape[0], 5, generator=generator, device=x.device)
    low = _const(tuple(max(0.0, 1.0 - a) for a in amounts) + (-hue,), x.device)
    high = _const(tuple(1.0 + a for a in amounts) + (hue,), x.device)
    identity = _const((1.0, 1.0, 1.0, 0.0), x.device)
    params = torch.where(u[:, :1] < p, torch.lerp(low, high, u[:, 1:]), identity).unbind(1)
    if amounts[0] > 0:
        x = _brightness(x, params[0])
    if amounts[1] > 0:
        x = _contrast(x, params[1])
    if rgb and amounts[2] > 0:
        x = _saturation(x, params[2])
    if rgb and hue > 0:
        x = _hue_yiq(x, params[3])
    return x


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images repeated over the 3 channels (others unchanged)."""
    if x.shape[1] != 3:
        return x
    return _grey(x).expand_as(x)


def _random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Grayscale each RGB sample with probability ``p``."""
    if x.shape[1] != 3 or p <= 0:
        return x
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return _on_samples(x, mask, _grayscale)


# --------------------------------------------------------------------------- blur and solarize


def _gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels ``(n, kernel_size)``; sigma 0 gives the identity kernel."""
    half = kernel_size // 2
    taps = torch.arange(-half, half + 1, device=sigma.device, dtype=sigma.dtype)
    logits = -(taps**2) / (2.0 * sigma.clamp_min(1e-6)[:, None] ** 2)
    return torch.softmax(logits, dim=1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int, clamp: bool = True) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma ``(n,)``, reflect padding, as a grouped conv; clamped to
    ``[0, 1]`` unless ``clamp`` is False (rasters).

    The ``(n * C)`` images are the channels of one grouped (depthwise) ``conv2d`` whose kernel per
    image is its sample's Gaussian. Up to 7 taps the kernel is the 2-D outer product of the 1-D
    kernel (one conv: faster than two on CPU at these sizes), beyond that two 1-D convs.
    """
    n, c, h, w = x.shape
    half = min(kernel_size // 2, h - 1, w - 1)  # reflect padding needs pad < size
    if half <= 0:
        return x
    size = 2 * half + 1
    kernel = _gaussian_kernels(sigma.to(torch.float32), size).to(x.dtype)  # (n, size)
    kernel = kernel.repeat_interleave(c, dim=0)  # one per (sample, channel)
    padded = F.pad(x.reshape(1, n * c, h, w), (half, half, half, half), mode="reflect")
    if size <= 7:
        kernel2d = kernel[:, :, None] * kernel[:, None, :]
        out = F.conv2d(padded, kernel2d.unsqueeze(1), groups=n * c)
    else:
        out = F.conv2d(padded, kernel.view(n * c, 1, size, 1), groups=n * c)
        out = F.conv2d(out, kernel.view(n * c, 1, 1, size), groups=n * c)
    out = out.view(n, c, h, w)
    return out.clamp_(0.0, 1.0) if clamp else out


def _random_blur(
    x: torch.Tensor,
    p: torch.Tensor,
    sigma_range: tuple[float, float],
    kernel_size: int,
    generator: torch.Generator | None,
    clamp: bool = True,
) -> torch.Tensor:
    """Blur each sample with probability ``p`` (``(n,)``) and a sigma uniform in ``sigma_range``."""
    u = torch.rand(x.shape[0], 2, generator=generator, device=x.device)
    sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * u[:, 1]
    return _on_samples(x, u[:, 0] < p, lambda images, s: _gaussian_blur(images, s, kernel_size, clamp), sigma)


def _solarize(x: torch.Tensor, threshold: float = _SOLARIZE_THRESHOLD) -> torch.Tensor:
    """Invert (``1 - x``) the pixels ``>= threshold``."""
    return torch.where(x >= threshold, 1.0 - x, x)


def _random_solarize(x: torch.Tensor, p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Solarize each sample with probability ``p`` (``(n,)``)."""
    return _on_samples(x, torch.rand(x.shape[0], generator=generator, device=x.device) < p, _solarize)


# --------------------------------------------------------------------------- module


class ImageViews(torch.nn.Module):
    """Random views of an image batch for a method's :class:`ViewSpec` (see the module docstring).

    ``forward(x, generator=None)`` takes float ``(B, C, H, W)`` images in ``[0, 1]``, or at any values when
    ``raster`` (``C == channels``), and returns, after ``x`` itself when ``spec.original``, ``spec.n_global`` tensors
    ``(B, C, size, size)`` followed by ``spec.n_local`` tensors ``(B, C, local_size, local_size)``, same device and dtype as ``x``.
    Randomness comes from ``generator`` (on ``x``'s device), or torch's global RNG when it is None.
    """

    def __init__(
        self,
        spec: ViewSpec,
        size: int,
        channels: int,
        *,
        local_size: int | None = None,
        crop_scale: tuple[float, float] = (0.25, 1.0),
        local_crop_scale: tuple[float, float] = (0.05, 0.25),
        flip: bool = True,
        jitter_strength: float = 1.0,
        raster: bool = False,
    ) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"view size must be positive, got {size}")
        if spec.n_global < 0 or spec.n_local < 0:
            raise ValueError(f"view counts must be non-negative, got {spec}")
        self.spec = spec
        self.size = int(size)
        self.channels = int(channels)
        self.local_size = int(local_size) if local_size is not None else default_local_size(self.size)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.local_crop_scale = (float(local_crop_scale[0]), float(local_crop_scale[1]))
        self.flip = flip
        self.jitter_strength = float(jitter_strength)
        self.raster = raster
        self.jitter_p = 0.8
        self.grayscale_p = 0.2
        blur, solarize = self.global_probabilities(spec)
        self.global_blur_p, self.global_solarize_p = blur, solarize
        self.local_blur_p, self.local_solarize_p = 0.5, 0.0

    @staticmethod
    def global_probabilities(spec: ViewSpec) -> tuple[list[float], list[float]]:
        """Blur and solarize probabilities of each global view."""
        if spec.asymmetric:
            blur = [1.0 if i % 2 == 0 else 0.1 for i in range(spec.n_global)]
            solarize = [0.0 if i % 2 == 0 else 0.2 for i in range(spec.n_global)]
        else:
            blur, solarize = [0.5] * spec.n_global, [0.0] * spec.n_global
        return blur, solarize

    def extra_repr(self) -> str:
        return (
            f"spec={self.spec}, size={self.size}, channels={self.channels}, local_size={self.local_size}, "
            f"crop_scale={self.crop_scale}, local_crop_scale={self.local_crop_scale}, flip={self.flip}, "
            f"jitter_strength={self.jitter_strength}, raster={self.raster}"
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        views: list[torch.Tensor] = [x] if self.spec.original else []  # the batch itself (masked methods)
        if x.shape[0] == 0:
            first = [x.new_empty(0, x.shape[1], self.size, self.size)] if self.spec.original and self.spec.light else []
            return (
                (first or views)
                + [x.new_empty(0, x.shape[1], self.size, self.size)] * self.spec.n_global
                + [x.new_empty(0, x.shape[1], self.local_size, self.local_size)] * self.spec.n_local
            )
        if self.spec.light:  # crops and flips only (MAE, CropMAE)
            views = self._light_views(x, int(self.spec.original) + self.spec.n_global, generator)
        elif self.spec.n_global:
            views += self._views(
                x, self.spec.n_global, self.size, self.crop_scale, self.global_blur_p, self.global_solarize_p, generator
            )
        if self.spec.n_local:
            views += self._views(
                x,
                self.spec.n_local,
                self.local_size,
                self.local_crop_scale,
                [self.local_blur_p] * self.spec.n_local,
                [self.local_solarize_p] * self.spec.n_local,
                generator,
            )
        return views

    def _light_views(self, x: torch.Tensor, count: int, generator: torch.Generator | None) -> list[torch.Tensor]:
        """``count`` random resized crops (``crop_scale``) with flips, nothing else; with ``spec.nested``, every one
        after the first is a crop of the first (``local_crop_scale`` of its area, full size)."""
        if count == 0:
            return []
        flip_p = 0.5 if self.flip else 0.0
        height, width = x.shape[-2:]
        if not self.spec.nested:
            theta = _crop_boxes(count * len(x), height, width, self.crop_scale, _RATIO, flip_p, generator, x.device)
            return list(_resized_crop(x, theta, self.size).chunk(count))
        outer = _crop_boxes(len(x), height, width, self.crop_scale, _RATIO, flip_p, generator, x.device)
        inner = [_nested_boxes(outer, self.size, self.local_crop_scale, flip_p, generator) for _ in range(count - 1)]
        return list(_resized_crop(x, torch.cat([outer, *inner]), self.size).chunk(count))

    def _views(
        self,
        x: torch.Tensor,
        count: int,
        size: int,
        scale: tuple[float, float],
        blur_p: list[float],
        solarize_p: list[float],
        generator: torch.Generator | None,
    ) -> list[torch.Tensor]:
        batch = x.shape[0]
        out = _random_resized_crop(x, size, count, scale, 0.5 if self.flip else 0.0, generator)
        if not self.raster:
            out = _colour_jitter(out, self.jitter_p, self.jitter_strength, generator)
            out = _random_grayscale(out, self.grayscale_p, generator)

        def per_view(values: list[float]) -> torch.Tensor:
            return _const(tuple(values), x.device).repeat_interleave(batch)

        if any(p > 0 for p in blur_p):
            sigma = blur_sigma_range(size)
            out = _random_blur(out, per_view(blur_p), sigma, blur_kernel_size(size), generator, not self.raster)
        if not self.raster and any(p > 0 for p in solarize_p):
            out = _random_solarize(out, per_view(solarize_p), generator)
        return list(out.chunk(count))
