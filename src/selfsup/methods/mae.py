"""MAE: He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners".

Any modality's token encoder: a high ratio of tokens is masked, the encoder sees only the visible
ones, and a light decoder (context tokens + a mask token per hidden position) reconstructs the hidden
tokens' content; the loss is on masked tokens only. ``target`` makes the same pipeline predict the
tokens' values (``pixels``), their Fourier amplitude (``frequency``, see ``mfm``) or HOG features.
Views as in the paper: images get MAE's only augmentation, a random resized crop (area 20-100%,
``crop_scale``) and a horizontal flip (off where the data says so, e.g. digits), no colour jitter;
series, audio and tables are not augmented (they have no crop that keeps the whole sample; the paper
is on images). ``--view-arg "crop_scale=[1,1]" --view-arg flip=false`` gives the unaugmented images. The
decoder is a small transformer.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenOutput, TokenTransformer
from selfsup.losses.masked import masked_loss, token_targets
from selfsup.methods.base import Method, MethodConfig, StepOutput, check_heads, register_method
from selfsup.methods.heads import TokenPredictor
from selfsup.methods.masking import check_masking, split_tokens
from selfsup.views import ViewSpec


def predict_hidden(
    encoder: TokenTransformer, decoder: TokenPredictor, x: torch.Tensor, config: HiddenTokenConfig
) -> tuple[torch.Tensor, torch.Tensor, TokenOutput]:
    """Mask ``x``'s tokens as ``config`` says (``mask_ratio``, ``masking``, ``block_size``), encode the
    visible ones only, and decode predictions at the hidden ones (MAE and data2vec 2.0).

    Returns ``(prediction (B, M, out), masked (B, M), visible)``, ``visible`` the encoder's output.
    """
    tokenizer = encoder.tokenizer
    grid = tokenizer.grid(x)
    keep, masked = split_tokens(
        len(x), grid, config.mask_ratio, config.masking, tokenizer.ordered, config.block_size, device=x.device
    )
    visible = encoder.run(x, keep)
    prediction = decoder(visible.tokens, keep, masked, tokenizer.positions(math.prod(grid)), visible.valid)
    return prediction, masked, visible


class HiddenTokenConfig(MethodConfig):
    """What ``predict_hidden`` reads: how tokens are hidden, and the decoder that predicts them (MAE, data2vec)."""

    mask_ratio: float = Field(0.75, gt=0, lt=1, description="share of tokens hidden from the encoder")
    masking: Literal["random", "block", "span", "feature_subset"] = "random"
    block_size: int = Field(2, ge=1, description="tokens per block side (block) or mean span length (span)")
    decoder_dim: int = Field(64, ge=1)
    decoder_depth: int = Field(2, ge=1)
    decoder_heads: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        return check_heads(self, "decoder_dim", "decoder_heads")


class MAEConfig(HiddenTokenConfig):
    target: Literal["pixels", "frequency", "hog"] = "pixels"
    norm_target: bool = Field(True, description="standardise each patch's target (MAE's norm_pix_loss)")


@register_method
class MAE(Method):
    name = "mae"
    summary = (
        "masked autoencoder: reconstruct hidden tokens from the visible ones (any token encoder); "
        "images cropped and flipped as in the paper, other data unaugmented"
    )
    paper = "He et al. 2022, Masked Autoencoders Are Scalable Vision Learners"
    views = ViewSpec(n_global=0, original=True, light=True)  # images: one crop + flip in place of the batch
    view_defaults: ClassVar[dict[str, Any]] = {"crop_scale": (0.2, 1.0)}  # MAE's RandomResizedCrop area
    needs_tokens = True
    default_lr = 1e-3
    Config = MAEConfig
    config: MAEConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: MAEConfig) -> None:
        super().__init__(encoder, config)
        tokenizer = self.encoder.tokenizer
        probe = torch.zeros(1, 1, *tokenizer.patch_shape)
        out_dim = token_targets(probe, tokenizer.spatial_dims, config.target).shape[-1]
        self.decoder = TokenPredictor(
            encoder.embed_dim, config.decoder_dim, config.decoder_depth, config.decoder_heads, out_dim
        )

    def check_data(self, x: torch.Tensor) -> None:
        check_masking(self.encoder, self.config.masking, x)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x, tokenizer, config = views[0], self.encoder.tokenizer, self.config
        prediction, masked, visible = predict_hidden(self.encoder, self.decoder, x, config)
        with torch.no_grad():
            patches, valid = tokenizer.patches(x)
            target = token_targets(patches, tokenizer.spatial_dims, config.target, config.norm_target)
        # image and series patches: mean over a patch's values (MAE); a table column: sum over its slots
        per_token = "sum" if tokenizer.spatial_dims == 0 else "mean"
        loss = masked_loss(prediction, target, masked, valid, per_token=per_token)
        return StepOutput(loss, {}, visible.pooled)
