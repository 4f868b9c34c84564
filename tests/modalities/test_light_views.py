"""Light views (MAE, CropMAE): crops and flips only, in place of the batch for MAE; CropMAE's local crop is cut
from its global crop of the same image. Other modalities give masked methods the batch itself."""

from __future__ import annotations

import torch

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.modalities import get_modality
from selfsup.modalities.image_views import ImageViews
from selfsup.views import ViewSpec

MAE_SPEC = ViewSpec(n_global=0, original=True, light=True)
CROPMAE_SPEC = ViewSpec(n_global=2, light=True, nested=True)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mae_gets_a_crop_in_place_of_the_batch_and_no_colour_change() -> None:
    x = torch.rand(8, 3, 16, 16, generator=_gen(0))
    out = ImageViews(MAE_SPEC, 16, 3, crop_scale=(0.2, 1.0))(x, _gen(1))
    assert len(out) == 1 and out[0].shape == x.shape
    assert not torch.allclose(out[0], x)  # cropped
    # the whole image, unflipped, is the batch itself: no jitter, greyscale, blur or solarize happened
    whole = ImageViews(MAE_SPEC, 16, 3, crop_scale=(1.0, 1.0), flip=False)(x, _gen(1))
    torch.testing.assert_close(whole[0], x, atol=1e-5, rtol=0)


def test_light_crop_is_a_pure_crop_of_the_image() -> None:
    # a horizontal ramp: a crop (maybe flipped) keeps the ramp, linear along x, constant along y
    ramp = torch.linspace(0, 1, 32).expand(4, 1, 32, 32).contiguous()
    (view,) = ImageViews(MAE_SPEC, 16, 1, crop_scale=(0.3, 0.6))(ramp, _gen(2))
    assert torch.allclose(view, view[:, :, :1, :].expand_as(view), atol=1e-6)  # no colour or blur: rows agree
    steps = view[..., 1:] - view[..., :-1]
    assert torch.allclose(steps, steps[..., :1].expand_as(steps), atol=1e-5)  # still linear


def test_cropmae_views_come_from_the_same_image() -> None:
    values = torch.arange(6, dtype=torch.float32) / 10
    x = values.view(6, 1, 1, 1).expand(6, 1, 20, 20).contiguous()  # image i is the constant i / 10
    first, second = ImageViews(CROPMAE_SPEC, 16, 1, crop_scale=(0.5, 1.0), local_crop_scale=(0.3, 0.6))(x, _gen(3))
    for view in (first, second):
        torch.testing.assert_close(view, values.view(6, 1, 1, 1).expand_as(view))


def test_cropmae_local_crop_lies_inside_its_global_crop() -> None:
    # a ramp along x and another along y: a view's values span the part of the image it shows
    xs = torch.linspace(0, 1, 64)
    image = torch.stack([xs.expand(64, 64), xs.view(64, 1).expand(64, 64)]).expand(16, 2, 64, 64).contiguous()
    views = ImageViews(CROPMAE_SPEC, 16, 2, crop_scale=(0.5, 1.0), local_crop_scale=(0.3, 0.6))
    first, second = views(image, _gen(4))
    for axis in (0, 1):
        low_1, high_1 = first[:, axis].amin((1, 2)), first[:, axis].amax((1, 2))
        low_2, high_2 = second[:, axis].amin((1, 2)), second[:, axis].amax((1, 2))
        assert (low_2 >= low_1 - 1e-2).all() and (high_2 <= high_1 + 1e-2).all()
        # the local crop covers 30-60% of the global crop's area, so it is narrower along some axis
    span_1 = (first.amax((2, 3)) - first.amin((2, 3))).prod(1)
    span_2 = (second.amax((2, 3)) - second.amin((2, 3))).prod(1)
    assert (span_2 < 0.7 * span_1).all()


def test_masked_methods_get_the_series_itself() -> None:
    splits = load_builtin("italypowerdemand")
    module = get_modality("timeseries")
    config = module.encoder_config("patch_transformer", splits, DataOptions(), {})
    x = splits.train.float_samples()[:8]
    out = module.make_views(MAE_SPEC, splits, config, {"crop_scale": (0.2, 1.0)})(x)
    assert len(out) == 1 and torch.equal(out[0], x)
