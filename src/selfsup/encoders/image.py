"""Image encoders: the built-in small CNN or any timm model, adapted to channels and image size.

The encoder owns its preprocessing (resize to its input size, per-channel normalisation), so a
loaded encoder maps raw images in [0, 1] to embeddings with nothing else to configure.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.args import checked_args
from selfsup.encoders.small_cnn import SmallCNN
from selfsup.encoders.tokens import Tokenizer, TokenTransformer, sincos_2d
from selfsup.errors import SelfsupError, unknown_name

BUILTIN = {
    "small_cnn": "small CNN (32-64-128 channels), fast on a CPU",
    "vit": "small ViT (our token transformer over image patches; masked methods need it)",
}
# vit hyperparameters (``--encoder-arg``): a ViT-Tiny-like width at depth 4, to train on a CPU;
# patch_size 0 means image_size // 4 (a 4 x 4 grid of patches, 16 tokens, on 16-32 pixel images).
VIT_DEFAULTS: dict[str, Any] = {
    "patch_size": 0,
    "embed_dim": 128,
    "depth": 4,
    "heads": 4,
    "mlp_dim": 256,
    "dropout": 0.0,
}
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
        # CIFAR stem (SimCLR appendix B.9): 3x3 stride-1 first conv and no max-pool for small images; a deep stem
        # (resnet10t, resnet50d: three convolutions) becomes that one convolution too, of the stem's width
        convs = [m for m in cast(nn.Module, model.conv1).modules() if isinstance(m, nn.Conv2d)]
        out_chans = convs[-1].out_channels
        model.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


class ImageEncoder(Encoder):
    """Resize + normalise + backbone + pooled ``(B, D)`` embedding."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        name, chans, size = config["name"], int(config["in_chans"]), int(config["image_size"])
        if name == "small_cnn":
            self.backbone: nn.Module = SmallCNN(chans, int(config.get("width", 32)))
        else:
            self.backbone = _timm_backbone(name, chans, size)
        self.embed_dim: int = int(cast(int, self.backbone.num_features))  # SmallCNN and timm models carry it
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


def _vit_args(image_size: int, encoder_args: dict[str, Any]) -> dict[str, Any]:
    hyper = checked_args("image encoder 'vit'", VIT_DEFAULTS, encoder_args)
    hyper["patch_size"] = hyper["patch_size"] or max(1, image_size // 4)
    if not 0 <= hyper["dropout"] < 1:
        raise SelfsupError(f"encoder argument dropout={hyper['dropout']} for 'vit' must be in [0, 1).")
    if any(hyper[k] < 1 for k in ("patch_size", "embed_dim", "depth", "heads", "mlp_dim")):
        raise SelfsupError("vit's patch_size, embed_dim, depth, heads and mlp_dim must be at least 1.")
    if image_size % hyper["patch_size"]:
        raise SelfsupError(
            f"vit patch_size={hyper['patch_size']} does not divide the image size {image_size}; "
            "pick a patch size that does, or set --image-size."
        )
    if hyper["embed_dim"] % hyper["heads"] or hyper["embed_dim"] % 4:
        raise SelfsupError(f"vit embed_dim={hyper['embed_dim']} must be a multiple of 4 and of heads={hyper['heads']}.")
    return hyper


def image_encoder_config(
    name: str, in_chans: int, image_size: int, mean: list[float], std: list[float], **encoder_args: Any
) -> dict:
    """The JSON-serialisable description from which an image encoder is rebuilt.

    ``vit`` takes ``encoder_args`` (see ``VIT_DEFAULTS``), ``small_cnn`` its ``width`` (first stage's channels,
    default 32: e.g. 16 for a smaller self-training student); every other encoder is chosen by name.
    """
    extra = set(encoder_args) - ({"width"} if name == "small_cnn" else set())
    if extra and name != "vit":
        but = " other than width" if name == "small_cnn" else ""
        raise SelfsupError(
            f"image encoder '{name}' takes no encoder arguments{but} (got {', '.join(sorted(extra))}); "
            "pick another timm model name instead, or use 'vit'."
        )
    if name == "small_cnn" and "width" in encoder_args:
        width = encoder_args["width"]
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise SelfsupError(f"small_cnn's width must be a whole number of at least 1, got {width!r}.")
        return _image_config(name, in_chans, image_size, mean, std) | {"width": width}
    config = _image_config(name, in_chans, image_size, mean, std)
    return config | (_vit_args(image_size, encoder_args) if name == "vit" else {})


def _image_config(name: str, in_chans: int, image_size: int, mean: list[float], std: list[float]) -> dict:
    return {
        "modality": "image",
        "name": name,
        "in_chans": in_chans,
        "image_size": image_size,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }


class ImagePatchTokenizer(Tokenizer):
    """Resize + normalise, then non-overlapping ``patch_size`` patches, one token each (a linear
    embedding, as ViT's patch convolution) plus MAE's fixed 2-D sine/cosine positions
    (see ``encoders/tokens.py``). A token's ``patches`` content is its normalised ``(C, p, p)`` pixels."""

    spatial_dims = 2
    ordered = True

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.image_size, self.patch_size = int(config["image_size"]), int(config["patch_size"])
        self.side, self.dim = self.image_size // self.patch_size, int(config["embed_dim"])
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.embed = nn.Conv2d(len(config["mean"]), self.dim, self.patch_size, stride=self.patch_size)
        self.patch_shape = (len(config["mean"]), self.patch_size, self.patch_size)

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        chans = self.mean.shape[1]
        if x.ndim != 4 or x.shape[1] != chans:
            raise SelfsupError(
                f"image encoder expects (batch, {chans}, H, W) images, got shape {tuple(x.shape)}; "
                "check the data has the channel count the encoder was trained with."
            )
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def grid(self, x: torch.Tensor) -> tuple[int, ...]:
        return (self.side, self.side)

    def positions(self, n: int) -> torch.Tensor:
        return sincos_2d(self.side, self.side, self.dim, self.mean.device)[:n]

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, p = self._normalised(x), self.patch_size
        b, c = x.shape[:2]
        patches = x.view(b, c, self.side, p, self.side, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c, p, p)
        return patches, torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embed(self._normalised(x)).flatten(2).transpose(1, 2)
        tokens = tokens + self.positions(tokens.shape[1]).to(tokens.dtype)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


class ViT(TokenTransformer):
    """A small Vision Transformer (Dosovitskiy et al. 2021) on :class:`ImagePatchTokenizer`; the
    embedding is the mean of the final-normed patch tokens (MAE's global pooling)."""

    def __init__(self, config: dict[str, Any]) -> None:
        dropout = float(config["dropout"])
        super().__init__(
            ImagePatchTokenizer(config),
            dim=int(config["embed_dim"]),
            depth=int(config["depth"]),
            heads=int(config["heads"]),
            hidden=int(config["mlp_dim"]),
            dropout=dropout,
            attention_dropout=dropout,
            ffn_dropout=dropout,
            input_dropout=dropout,
            pool="mean",
        )
        self.config = dict(config)
        self.image_size = int(config["image_size"])


def build(config: dict[str, Any]) -> Encoder:
    if config.get("name") == "vit":
        args = {key: config[key] for key in VIT_DEFAULTS if key in config}
        checked = image_encoder_config(
            "vit", int(config["in_chans"]), int(config["image_size"]), config["mean"], config["std"], **args
        )
        return ViT(checked)
    return ImageEncoder(config)
