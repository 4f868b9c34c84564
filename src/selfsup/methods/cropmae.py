"""CropMAE: Eymaël et al. 2024, "Efficient Image Pre-Training with Siamese Cropped Masked Autoencoders".

A Siamese MAE on two crops of the same image instead of two video frames (SiamMAE). The views are
CropMAE's global-to-local crops (``ViewSpec(nested=True)``): a global crop of 50-100% of the image, then a
local crop of 30-60% of that global crop, both resized to the full view size and flipped on their own, no
colour augmentation. The encoder sees the global crop whole; the local crop is masked at 98.5% (on a 4 x 4
token grid that leaves one visible patch) and its visible tokens are encoded by the same encoder. A decoder
reconstructs the local crop: its queries are the visible tokens and a mask token at each hidden position (plus
positions); each block self-attends over them, cross-attends to the global crop's tokens and applies an MLP.
The loss is MAE's: squared error on the hidden patches only, each patch's pixels standardised
(``norm_pix_loss``). The first view's pooled embedding is what the step reports.

Left as simplifications: the decoder blocks are pre-norm (self-attention, cross-attention, MLP) where the
paper's reference blocks are post-norm in the order cross-attention, MLP, self-attention; the decoder is
narrow (64 wide, 2 blocks; the paper: 256 wide, 4 blocks for ViT-S) to train on a CPU; the paper evaluates
by video label propagation, this library by kNN and linear probes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenOutput, TokenTransformer
from selfsup.losses.masked import masked_loss, token_targets
from selfsup.methods.base import Method, MethodConfig, StepOutput, check_heads, register_method
from selfsup.methods.masking import check_masking, split_tokens
from selfsup.views import ViewSpec


class CrossBlock(nn.Module):
    """Pre-norm decoder block: ``z + SA(LN(z))``, ``z + CA(LN(z), LN(context))``, ``z + MLP(LN(z))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_self, self.norm_cross, self.norm_context = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.proj_self, self.proj_cross = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        batch, n, dim = t.shape
        return t.view(batch, n, self.heads, dim // self.heads).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of ``q (B, n, D)`` over ``k, v (B, m, D)`` -> ``(B, n, D)``."""
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        batch, heads, n, width = out.shape
        return out.transpose(1, 2).reshape(batch, n, heads * width)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm_self(z)).chunk(3, dim=-1)
        z = z + self.proj_self(self._attend(q, k, v))
        k, v = self.kv(self.norm_context(context)).chunk(2, dim=-1)
        z = z + self.proj_cross(self._attend(self.q(self.norm_cross(z)), k, v))
        return z + self.mlp(self.norm_mlp(z))


class CrossDecoder(nn.Module):
    """SiamMAE's / CropMAE's decoder: the masked view's visible tokens and a shared mask token at each hidden
    position (each plus its projected position) attend to each other and to the other view's tokens;
    predictions are read out at the hidden positions."""

    def __init__(self, encoder_dim: int, dim: int, depth: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)  # both views' tokens (SiamMAE's shared decoder_embed)
        self.position = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(CrossBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(
        self,
        visible: torch.Tensor,
        keep: torch.Tensor,
        masked: torch.Tensor,
        context: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """``visible (B, K, encoder_dim)`` at ``keep (B, K)``, hidden ``masked (B, M)``, the other view's
        ``context (B, N, encoder_dim)``, ``positions (N, encoder_dim)`` -> predictions ``(B, M, out_dim)``."""
        position = self.position(positions.to(visible.dtype))
        z = torch.cat([self.embed(visible) + position[keep], self.mask_token + position[masked]], dim=1)
        memory = self.embed(context)
        for block in self.blocks:
            z = block(z, memory)
        return self.head(self.norm(z[:, visible.shape[1] :]))


class CropMAEConfig(MethodConfig):
    mask_ratio: float = Field(0.985, gt=0, lt=1, description="share of the local crop's tokens hidden (paper: 98.5%)")
    decoder_dim: int = Field(64, ge=1)
    decoder_depth: int = Field(2, ge=1)
    decoder_heads: int = Field(4, ge=1)
    norm_target: bool = Field(True, description="standardise each patch's target (MAE's norm_pix_loss)")

    @model_validator(mode="after")
    def _heads_divide_width(self):
        return check_heads(self, "decoder_dim", "decoder_heads")


@register_method
class CropMAE(Method):
    name = "cropmae"
    summary = (
        "Siamese cropped MAE: reconstruct a 98.5%-masked local crop from its global crop (cross-attention "
        "decoder); pre-norm narrow decoder"
    )
    paper = "Eymaël et al. 2024, Efficient Image Pre-Training with Siamese Cropped Masked Autoencoders"
    views = ViewSpec(n_global=2, light=True, nested=True)
    view_defaults: ClassVar[dict[str, Any]] = {"crop_scale": (0.5, 1.0), "local_crop_scale": (0.3, 0.6)}
    modalities = ("image",)
    needs_tokens = True
    default_lr = 1e-3
    Config = CropMAEConfig
    config: CropMAEConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: CropMAEConfig) -> None:
        super().__init__(encoder, config)
        tokenizer = self.encoder.tokenizer
        out_dim = math.prod(tokenizer.patch_shape)
        self.decoder = CrossDecoder(
            encoder.embed_dim, config.decoder_dim, config.decoder_depth, config.decoder_heads, out_dim
        )

    def check_data(self, x: torch.Tensor) -> None:
        check_masking(self.encoder, "random", x)

    def reconstruct(
        self, first: torch.Tensor, second: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor
    ) -> tuple[torch.Tensor, TokenOutput]:
        """The loss of predicting ``second``'s tokens at ``masked (B, M)`` from its tokens at ``keep (B, K)`` and all
        of ``first``'s tokens; and ``first``'s encoder output."""
        tokenizer = self.encoder.tokenizer
        context = self.encoder.run(first)
        visible = self.encoder.run(second, keep)
        n = math.prod(tokenizer.grid(second))
        prediction = self.decoder(visible.tokens, keep, masked, context.tokens, tokenizer.positions(n))
        with torch.no_grad():
            patches, valid = tokenizer.patches(second)
            target = token_targets(patches, tokenizer.spatial_dims, "pixels", self.config.norm_target)
        return masked_loss(prediction, target, masked, valid), context

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        first, second = views[0], views[1]
        tokenizer = self.encoder.tokenizer
        keep, masked = split_tokens(
            len(second),
            tokenizer.grid(second),
            self.config.mask_ratio,
            "random",
            tokenizer.ordered,
            device=second.device,
        )
        loss, context = self.reconstruct(first, second, keep, masked)
        return StepOutput(loss, {}, context.pooled)
