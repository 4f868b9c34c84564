"""Image encoders: the built-in small CNN or any timm model, adapted to channels and image size.

The encoder owns its preprocessing (resize to its input size, per-channel normalisation), so a
loaded encoder maps raw images in [0, 1] to embeddings with nothing else to configure.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders.small_cnn import SmallCNN
from selfsup.errors import SelfsupError, unknown_name

BUILTIN = {"small_cnn": "small CNN (32-64-128 channels), fast on a CPU"}
ENCODERS = BUILTIN | {"<timm name>": "any timm model, e.g. resnet18 or vit_tiny_patch16_224 (random init)"}


def _timm_backbone(name: str, in_chans: int, image_size: int) -> nn.Module:
    import timm

    if name not in timm.list_models():
        raise unknown_name("encoder", name, list(BUILTIN) + timm.list_models(), hint="Any timm model name works.")
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": 0, "in_chans": in_chans}
    try:
        model = timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError:  # convolutional models take no img_size
        model = timm.create_model(name, **kwargs)
    if image_size <= 64 and hasattr(model, "conv1") and hasattr(model, "maxpool"):
        # CIFAR stem (SimCLR appendix B.9): 3x3 stride-1 first conv and no max-pool for small images.
        out_chans = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


class ImageEncoder(nn.Module):
    """Resize + normalise + backbone + pooled ``(B, D)`` embedding."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        name, chans, size = config["name"], int(config["in_chans"]), int(config["image_size"])
        self.backbone = SmallCNN(chans) if name == "small_cnn" else _timm_backbone(name, chans, size)
        self.embed_dim: int = int(self.backbone.num_features)
        self.image_size = size
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise SelfsupError(
                f"image encoder expects (batch, {self.mean.shape[1]}, H, W) images, got shape {tuple(x.shape)}; "
                "check the data has the channel count the encoder was trained with."
            )
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.backbone((x - self.mean) / self.std)


def image_encoder_config(name: str, in_chans: int, image_size: int, mean: list[float], std: list[float]) -> dict:
    """The JSON-serialisable description from which ``ImageEncoder`` is rebuilt."""
    return {"modality": "image", "name": name, "in_chans": in_chans, "image_size": image_size,
            "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def build(config: dict[str, Any]) -> ImageEncoder:
    return ImageEncoder(config)
