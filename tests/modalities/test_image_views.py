"""Batched image views: shapes, determinism, per-sample randomness and each op's behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from selfsup.modalities import image_views as iv
from selfsup.modalities.image_views import ImageViews
from selfsup.views import ViewSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _images(b: int, c: int, h: int = 32, w: int = 32, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=_gen(seed)).to(device)


# --------------------------------------------------------------------------- module contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("spec", [ViewSpec(), ViewSpec(2, 4, True), ViewSpec(2, 0, True), ViewSpec(1, 2, False)])
def test_shapes_dtype_range(device, channels, spec):
    views = ImageViews(spec, 32, channels)
    x = _images(6, channels, 40, 36, device=device)  # non-square, not the view size
    out = views(x, _gen(1, device))
    assert len(out) == spec.n_global + spec.n_local
    local = iv.default_local_size(32)
    assert local == 14
    for i, v in enumerate(out):
        side = 32 if i < spec.n_global else local
        assert v.shape == (6, channels, side, side)
        assert v.dtype == x.dtype and v.device == x.device
        assert torch.isfinite(v).all()
        assert v.min() >= 0.0 and v.max() <= 1.0
        assert v.is_contiguous()


def test_local_size_argument_and_other_channel_counts():
    views = ImageViews(ViewSpec(2, 3), 16, 4, local_size=6)
    out = views(_images(5, 4, 20, 20), _gen(0))
    assert [tuple(v.shape) for v in out] == [(5, 4, 16, 16)] * 2 + [(5, 4, 6, 6)] * 3
    assert all(v.min() >= 0 and v.max() <= 1 for v in out)


def test_dtype_is_kept():
    out = ImageViews(ViewSpec(2, 2, True), 16, 3)(_images(4, 3).double(), _gen(0))
    assert all(v.dtype == torch.float64 for v in out)


def test_empty_batch():
    out = ImageViews(ViewSpec(2, 1), 16, 3)(torch.rand(0, 3, 32, 32))
    assert [tuple(v.shape) for v in out] == [(0, 3, 16, 16)] * 2 + [(0, 3, 7, 7)]


def test_bad_inputs_are_rejected():
    views = ImageViews(ViewSpec(), 16, 3)
    with pytest.raises(ValueError, match="channels"):
        views(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="float"):
        views(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError):
        views(torch.rand(3, 16, 16))


def test_input_is_not_modified():
    x = _images(8, 3)
    before = x.clone()
    ImageViews(ViewSpec(2, 2, True), 32, 3)(x, _gen(0))
    assert torch.equal(x, before)


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_views_other_seed_other_views(device):
    views = ImageViews(ViewSpec(2, 2, True), 32, 3)
    x = _images(16, 3, device=device)
    a = views(x, _gen(7, device))
    b = views(x, _gen(7, device))
    c = views(x, _gen(8, device))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert all(not torch.allclose(u, v) for u, v in zip(a, c))


def test_global_rng_when_no_generator():
    views = ImageViews(ViewSpec(), 32, 3)
    x = _images(8, 3)
    torch.manual_seed(3)
    a = views(x)
    torch.manual_seed(3)
    b = views(x)
    c = views(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.allclose(a[0], c[0])


@pytest.mark.parametrize("device", DEVICES)
def test_randomness_is_per_sample(device):
    views = ImageViews(ViewSpec(2, 2), 32, 3)
    x = _images(1, 3, device=device).expand(8, -1, -1, -1).contiguous()  # 8 identical images
    out = views(x, _gen(0, device))
    for v in out:
        flat = v.flatten(1)
        for i in range(len(flat)):
            for j in range(i + 1, len(flat)):
                assert not torch.allclose(flat[i], flat[j]), "two identical inputs gave the same view"
    # and the two global views of one image differ
    assert not torch.allclose(out[0][0], out[1][0])


def test_jitter_parameters_are_per_sample():
    # constant grey images: crop/flip/blur keep them constant, so only brightness/contrast show
    x = torch.full((64, 1, 8, 8), 0.5)
    out = ImageViews(ViewSpec(1), 8, 1, flip=False)(x, _gen(0))[0]
    levels = out.mean(dim=(1, 2, 3))
    assert levels.unique().numel() > 40  # most of the ~80% jittered samples get their own factor
    assert ((levels - 0.5).abs() < 1e-6).sum() > 3  # some are not jittered (p = 0.8)


def test_blur_and_solarize_probabilities_of_the_specs():
    blur, sol = ImageViews.global_probabilities(ViewSpec(2, 0, False))
    assert blur == [0.5, 0.5] and sol == [0.0, 0.0]
    blur, sol = ImageViews.global_probabilities(ViewSpec(2, 0, True))
    assert blur == [1.0, 0.1] and sol == [0.0, 0.2]


def test_asymmetric_spec_solarizes_only_the_second_view():
    # constant 0.75 grey images, no colour jitter: crop, flip, grayscale and blur keep 0.75, only
    # solarize turns it into 0.25, so each view tells whether it was solarized
    x = torch.full((512, 3, 16, 16), 0.75)
    views = ImageViews(ViewSpec(2, 2, True), 16, 3, jitter_strength=0.0)
    out = views(x, _gen(0))
    solarized = [(v < 0.5).flatten(1) for v in out]
    for s in solarized:  # a view is solarized entirely or not at all
        assert (s.all(1) | ~s.any(1)).all()
    assert not solarized[0].any()
    fraction = solarized[1].all(1).float().mean().item()
    assert 0.12 <= fraction <= 0.28, fraction
    assert not solarized[2].any() and not solarized[3].any()  # local crops: solarize p = 0
    # symmetric spec: never
    sym = ImageViews(ViewSpec(2), 16, 3, jitter_strength=0.0)(x, _gen(0))
    assert all((v > 0.5).all() for v in sym)


def test_blur_probability_statistically():
    # vertical stripes: blur lowers their contrast, crop with scale (1, 1) at the same size keeps them
    x = torch.zeros(1, 1, 16, 16)
    x[..., ::2] = 1.0
    x = x.expand(1000, -1, -1, -1)
    p = torch.full((1000,), 0.3)
    out = iv._random_blur(x.clone(), p, iv.blur_sigma_range(16), iv.blur_kernel_size(16), _gen(0))
    blurred = (out.flatten(1).std(1) < x.flatten(1).std(1) - 0.05).float().mean().item()
    assert 0.22 <= blurred <= 0.38, blurred


# --------------------------------------------------------------------------- geometry


def test_crop_with_full_scale_and_square_aspect_reproduces_the_resized_input():
    x = _images(4, 3, 64, 64)
    out = iv._random_resized_crop(x, 32, 2, (1.0, 1.0), 0.0, _gen(0), ratio=(1.0, 1.0))
    expected = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected.repeat(2, 1, 1, 1), atol=1e-5)
    same = iv._random_resized_crop(x, 64, 1, (1.0, 1.0), 0.0, _gen(0), ratio=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)


def test_flip_mirrors():
    x = _images(4, 3, 16, 16)
    flipped = iv._random_resized_crop(x, 16, 1, (1.0, 1.0), 1.0, _gen(0), ratio=(1.0, 1.0))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)
    assert not torch.allclose(flipped, x, atol=1e-2)


def test_flip_happens_to_about_half_the_samples():
    x = _images(1, 1, 8, 8).expand(400, -1, -1, -1)
    out = iv._random_resized_crop(x, 8, 1, (1.0, 1.0), 0.5, _gen(0), ratio=(1.0, 1.0))
    mirrored = (out - x.flip(-1)).flatten(1).abs().amax(1) < 1e-5
    kept = (out - x).flatten(1).abs().amax(1) < 1e-5
    assert (mirrored ^ kept).all()
    assert 0.4 <= mirrored.float().mean().item() <= 0.6


def test_no_flip_when_disabled():
    # left half dark, right half bright; full-size crops keep it that way unless flipped
    x = torch.zeros(200, 1, 16, 16)
    x[..., 8:] = 1.0
    views = ImageViews(ViewSpec(1), 16, 1, flip=False, crop_scale=(0.9, 1.0), jitter_strength=0.0)
    out = views(x, _gen(0))[0]
    assert (out[..., :4].mean((1, 2, 3)) < out[..., -4:].mean((1, 2, 3))).all()
    flip_views = ImageViews(ViewSpec(1), 16, 1, flip=True, crop_scale=(0.9, 1.0), jitter_strength=0.0)
    out = flip_views(x, _gen(0))[0]
    left_brighter = (out[..., :4].mean((1, 2, 3)) > out[..., -4:].mean((1, 2, 3))).float().mean()
    assert 0.35 <= left_brighter <= 0.65


def test_crop_boxes_stay_inside_and_follow_the_scale_range():
    theta = iv._crop_boxes(4000, 32, 48, (0.25, 1.0), (3 / 4, 4 / 3), 0.5, _gen(0), torch.device("cpu"))
    fw, fh = theta[:, 0, 0].abs(), theta[:, 1, 1]
    cx, cy = theta[:, 0, 2], theta[:, 1, 2]
    assert (fw <= 1).all() and (fh <= 1).all()
    assert (cx.abs() + fw <= 1 + 1e-6).all() and (cy.abs() + fh <= 1 + 1e-6).all()
    area = fw * fh
    assert area.min() >= 0.25 - 1e-6 and area.max() <= 1 + 1e-6
    aspect = (fw * 48) / (fh * 32)  # in pixels
    assert aspect.min() >= 3 / 4 - 1e-4 and aspect.max() <= 4 / 3 + 1e-4
    assert 0.45 <= (theta[:, 0, 0] < 0).float().mean() <= 0.55  # flips


def test_crops_zoom_in():
    # a crop of scale < 1 of a smooth ramp spans a narrower range of values than the full image
    ramp = torch.linspace(0, 1, 32).expand(1, 1, 32, 32).repeat(64, 1, 1, 1)
    out = iv._random_resized_crop(ramp, 32, 1, (0.1, 0.3), 0.0, _gen(0))
    span = out.amax((1, 2, 3)) - out.amin((1, 2, 3))
    assert (span < 0.75).all()


# --------------------------------------------------------------------------- colour


def test_brightness_contrast_saturation_match_torchvision():
    x = _images(8, 3, 12, 12)
    for f in (0.6, 1.0, 1.4):
        factor = torch.full((8,), f)
        assert torch.allclose(iv._brightness(x.clone(), factor), TF.adjust_brightness(x, f), atol=1e-5)
        assert torch.allclose(iv._contrast(x.clone(), factor), TF.adjust_contrast(x, f), atol=1e-4)
        assert torch.allclose(iv._saturation(x.clone(), factor), TF.adjust_saturation(x, f), atol=1e-4)


def test_jitter_factors_are_per_sample():
    x = _images(1, 3, 8, 8).expand(3, -1, -1, -1)
    factor = torch.tensor([0.7, 1.0, 1.3])
    out = iv._brightness(x.clone(), factor)
    for i, f in enumerate(factor.tolist()):
        assert torch.allclose(out[i], TF.adjust_brightness(x[i], f), atol=1e-6)


def _hue_hsv(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Exact HSV hue shift by ``shift`` turns per sample (torchvision ``adjust_hue``), vectorised: the
    reference the colour jitter's cheaper YIQ rotation is checked against (once its exact hue path).

    A hue shift keeps each pixel's max and min channel (value and chroma ``c``). With the shifted hue
    ``h`` in sextants, HSV -> RGB gives channel ``max - c * clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (h + 5, 3, 1) mod 6`` for R, G, B; written with the circular distance of ``k`` to 2 this is
    ``min - c + c * clamp(|(h + 6, 4, 2) mod 6 - 3|, 1, 2)``.
    """
    r, g, b = x.unbind(1)
    top = torch.maximum(torch.maximum(r, g), b)
    bottom = torch.minimum(torch.minimum(r, g), b)
    chroma = top - bottom
    inv = chroma.clamp_min(1e-8).reciprocal_()
    hue = torch.where(
        top == r, g - b, torch.where(top == g, (b - r).add_(chroma, alpha=2.0), (r - g).add_(chroma, alpha=4.0))
    )
    # +12 keeps the argument of the remainder positive (hue >= -1 sextant, shift >= -0.5 turn)
    hue.mul_(inv).add_((6.0 * shift + 12.0).to(hue.dtype).view(-1, 1, 1))
    k = torch.add(hue.unsqueeze(1), torch.tensor((6.0, 4.0, 2.0), dtype=x.dtype).view(1, 3, 1, 1))
    k = k.remainder_(6.0).sub_(3.0).abs_().clamp_(1.0, 2.0)
    return torch.addcmul(bottom.sub_(chroma).unsqueeze(1), chroma.unsqueeze(1), k)


def test_hsv_reference_matches_torchvision():
    x = _images(16, 3, 10, 10)
    x[:2] = x[:2, :1]  # grey pixels
    x[2:4, 1] = x[2:4, 0]  # ties between channels
    for shift in (-0.5, -0.1, 0.0, 0.05, 0.3, 0.5):
        out = _hue_hsv(x, torch.full((16,), shift))
        assert torch.allclose(out, TF.adjust_hue(x, shift), atol=1e-5), shift


def test_yiq_hue_is_a_hue_rotation():
    x = _images(16, 3, 10, 10)
    zero = iv._hue_yiq(x.clone(), torch.zeros(16))
    assert torch.allclose(zero, x, atol=1e-5)
    grey = x[:, :1].expand(-1, 3, -1, -1).contiguous()
    assert torch.allclose(iv._hue_yiq(grey.clone(), torch.full((16,), 0.1)), grey, atol=1e-5)
    primaries = torch.eye(3).view(3, 3, 1, 1)  # red, green, blue
    turned = iv._hue_yiq(primaries.clone(), torch.full((3,), 1 / 3)).flatten(1)
    assert turned.argmax(1).tolist() == [1, 2, 0]  # red -> green -> blue -> red, as HSV
    # roughly the same direction as the exact HSV shift on moderately saturated colours
    x = 0.25 + 0.5 * x
    shift = torch.full((16,), 0.08)
    yiq = iv._hue_yiq(x.clone(), shift) - x
    hsv = _hue_hsv(x, shift) - x
    cosine = F.cosine_similarity(yiq.flatten(), hsv.flatten(), dim=0)
    assert cosine > 0.5, cosine


def test_grayscale_gives_equal_channels_with_the_luma():
    x = _images(4, 3, 8, 8)
    g = iv._grayscale(x)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    # torchvision weighs red 0.2989 instead of 0.299 (ours sum to 1 so grey stays grey)
    assert torch.allclose(g, TF.rgb_to_grayscale(x, num_output_channels=3), atol=2e-4)
    some = iv._random_grayscale(x.clone(), 0.5, _gen(0))
    equal = (some[:, 0] == some[:, 1]).flatten(1).all(1) & (some[:, 1] == some[:, 2]).flatten(1).all(1)
    for i in range(4):
        assert torch.allclose(some[i], g[i]) if equal[i] else torch.equal(some[i], x[i])


def test_grayscale_probability():
    x = _images(1000, 3, 4, 4, seed=1)
    out = iv._random_grayscale(x.clone(), 0.2, _gen(0))
    grey = ((out[:, 0] == out[:, 1]) & (out[:, 1] == out[:, 2])).flatten(1).all(1).float().mean().item()
    assert 0.15 <= grey <= 0.25


def test_colour_ops_skip_for_non_rgb():
    x = _images(4, 2, 8, 8)
    assert torch.equal(iv._grayscale(x), x)
    out = iv._colour_jitter(x.clone(), 1.0, 1.0, _gen(0))  # brightness/contrast only
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_colour_jitter_probability_and_identity():
    x = _images(400, 3, 6, 6)
    out = iv._colour_jitter(x.clone(), 0.8, 1.0, _gen(0))
    unchanged = (out - x).flatten(1).abs().amax(1) < 1e-5
    assert 0.12 <= unchanged.float().mean().item() <= 0.28
    assert torch.allclose(iv._colour_jitter(x.clone(), 0.0, 1.0, _gen(0)), x, atol=1e-5)


# --------------------------------------------------------------------------- blur and solarize


def test_solarize_inverts_pixels_above_the_threshold():
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.7, 1.0]).view(1, 1, 1, 6)
    out = iv._solarize(x)
    assert torch.allclose(out, torch.tensor([0.0, 0.2, 0.49, 0.5, 0.3, 0.0]).view(1, 1, 1, 6))
    x = _images(4, 3, 8, 8)
    mixed = iv._random_solarize(x.clone(), torch.tensor([1.0, 0.0, 1.0, 0.0]), _gen(0))
    assert torch.equal(mixed[1], x[1]) and torch.equal(mixed[3], x[3])
    assert torch.allclose(mixed[0], torch.where(x[0] >= 0.5, 1 - x[0], x[0]))


def test_blur_keeps_a_constant_image_and_reduces_noise_variance():
    const = torch.full((4, 3, 16, 16), 0.3)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0])
    assert torch.allclose(iv._gaussian_blur(const.clone(), sigma, 5), const, atol=1e-6)
    noise = _images(4, 3, 16, 16)
    out = iv._gaussian_blur(noise.clone(), sigma, 5)
    assert torch.allclose(out.mean((1, 2, 3)), noise.mean((1, 2, 3)), atol=0.02)
    var_in, var_out = noise.var((1, 2, 3)), out.var((1, 2, 3))
    assert (var_out[1:] < 0.6 * var_in[1:]).all()
    assert var_out[3] < var_out[2] < var_out[1]  # more sigma, more smoothing
    assert torch.allclose(out[0], noise[0], atol=1e-3)  # sigma 0.1: nearly the identity


@pytest.mark.parametrize("kernel_size", [3, 5, 9])  # 9: the two 1-D convs path
def test_blur_matches_torchvision_per_sample(kernel_size):
    x = _images(3, 3, 12, 12)
    sigma = torch.tensor([0.4, 1.0, 2.0])
    out = iv._gaussian_blur(x.clone(), sigma, kernel_size)
    for i, s in enumerate(sigma.tolist()):
        expected = TF.gaussian_blur(x[i], [kernel_size, kernel_size], [s, s])
        assert torch.allclose(out[i], expected, atol=1e-5)


def test_blur_kernel_and_sigma_sizes():
    assert iv.blur_kernel_size(32) == 3 and iv.blur_kernel_size(224) == 23
    assert iv.blur_kernel_size(64) % 2 == 1 and iv.blur_kernel_size(8) == 3
    assert iv.blur_sigma_range(32) == (0.1, 2.0)
    assert iv.blur_sigma_range(448) == (0.2, 4.0)
