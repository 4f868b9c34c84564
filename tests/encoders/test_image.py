"""Image encoders: timm backbones get the small-image (CIFAR) stem at 64 px and below, whatever their stem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.encoders.image import _timm_backbone


@pytest.mark.parametrize("name", ["resnet18", "resnet10t"])  # one 7x7 conv, and a deep stem of three
def test_small_images_get_one_stride_1_stem_convolution_and_no_max_pool(name: str) -> None:
    model = _timm_backbone(name, 3, 32)
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, model.num_features)
    large = _timm_backbone(name, 3, 96)  # above 64 px the architecture is timm's own
    assert not isinstance(large.maxpool, nn.Identity)


def test_small_cnn_takes_a_width(digits) -> None:
    """A narrower small_cnn (e.g. self-training's smaller student): 4 * width features, about width^2 weights."""
    from selfsup.encoders import build_encoder
    from selfsup.errors import SelfsupError
    from selfsup.modalities.image import encoder_config

    narrow = build_encoder(encoder_config("small_cnn", digits, 16, {"width": 16}))
    default = build_encoder(encoder_config("small_cnn", digits, 16))
    assert narrow.embed_dim == 64 and default.embed_dim == 128
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 3.5 < count(default) / count(narrow) < 4.5
    with torch.no_grad():
        assert narrow(digits.train.float_samples()[:2]).shape == (2, 64)
    with pytest.raises(SelfsupError, match="width must be a whole number"):
        encoder_config("small_cnn", digits, 16, {"width": 0})
    with pytest.raises(SelfsupError, match="other than width"):
        encoder_config("small_cnn", digits, 16, {"width": 16, "depth": 2})
