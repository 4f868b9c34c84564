"""TS2Vec: Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time Series".

The method receives the unaugmented batch and makes its own two views, as the official code does
("contextual consistency"): two random crops that overlap, each with random time steps masked, and
the hierarchical contrastive loss on the overlap's per-token features. No projection head: the loss
is on the encoder's features.

Differences from the official code, because our encoders are generic:
- Timestamp masking hides input time steps (sets every channel to NaN, i.e. missing) with
  probability ``mask_prob``; TS2Vec zeroes the same steps in the latent after its input projection,
  which is what ``dilated_conv`` does with a missing step, so there the two agree (except that a
  masked run at the very end of a crop is taken for padding).
- Crops are counted in tokens, so their boundaries are multiples of ``encoder.token_stride`` and the
  overlap's tokens cover the same time steps in both crops (patches stay aligned).
- Ragged series: the crop lengths are shared by the batch and drawn within the shortest series of
  the batch (capped at ``max_length`` steps); each sample's offset is drawn within its own valid
  length, so crops never reach into padding. (TS2Vec crops within the padded length.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from selfsup.data import valid_lengths
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.losses.temporal import hierarchical_contrastive_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

if TYPE_CHECKING:
    from selfsup.encoders.series import SeriesEncoder


@dataclass(frozen=True)
class CropPair:
    """Two overlapping crops per sample, in tokens.

    Crop 1 is tokens ``[start1, start1 + length1)``, crop 2 ``[start2, start2 + length2)``;
    the last ``overlap`` tokens of crop 1 are the first ``overlap`` tokens of crop 2.
    """

    start1: torch.Tensor  # (B,) long
    start2: torch.Tensor  # (B,) long
    length1: int
    length2: int
    overlap: int


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high)``."""
    return int(torch.randint(low, high, (1,), generator=generator).item())


def sample_crops(
    n_tokens: torch.Tensor, max_tokens: int, min_overlap: int = 2, generator: torch.Generator | None = None
) -> CropPair:
    """TS2Vec's random crops: a shared overlap ``[left, right)`` of at least ``min_overlap`` tokens,
    crop 1 ``[eleft, right)`` and crop 2 ``[left, eright)`` within a window of ``w`` tokens, the
    window shifted per sample by a random offset that keeps both crops in ``[0, n_tokens[b])``.

    ``n_tokens``: ``(B,)`` each sample's length in tokens; ``w = min(min(n_tokens), max_tokens)``.
    """
    n_tokens = n_tokens.detach().to("cpu", torch.long)
    window = min(int(n_tokens.min()), max_tokens)
    if window < min_overlap:
        raise SelfsupError(
            f"TS2Vec crops need series of at least {min_overlap} tokens, but the shortest in the batch has "
            f"{int(n_tokens.min())}; use a smaller patch_size or temporal_unit, or leave out very short series."
        )
    overlap = _randint(min_overlap, window + 1, generator)
    left = _randint(0, window - overlap + 1, generator)
    right = left + overlap
    eleft = _randint(0, left + 1, generator)
    eright = _randint(right, window + 1, generator)
    # per-sample offset in [-eleft, n_b - eright]: both crops stay inside each sample's own length
    room = (n_tokens - eright + eleft + 1).to(torch.float64)
    offset = (torch.rand(len(n_tokens), generator=generator, dtype=torch.float64) * room).long() - eleft
    return CropPair(offset + eleft, offset + left, right - eleft, eright - left, overlap)


def take_steps(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Per-sample window ``x[b, :, start[b] : start[b] + length]`` of ``(B, C, T)``; NaN past ``T``."""
    batch, chans, steps = x.shape
    index = start.to(x.device).view(-1, 1) + torch.arange(length, device=x.device)  # (B, length)
    extra = max(0, int(index.max()) + 1 - steps)
    if extra:
        x = torch.cat([x, x.new_full((batch, chans, extra), float("nan"))], dim=-1)
    return torch.gather(x, 2, index.unsqueeze(1).expand(batch, chans, length))


def mask_steps(x: torch.Tensor, prob: float) -> torch.Tensor:
    """TS2Vec's timestamp masking: each time step becomes missing (NaN in every channel) with ``prob``."""
    if prob == 0:
        return x
    hidden = torch.rand(x.shape[0], 1, x.shape[-1], device=x.device) < prob
    return x.masked_fill(hidden, float("nan"))


class TS2VecConfig(MethodConfig):
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the instance-wise term (1 - alpha: temporal)
    temporal_unit: int = Field(0, ge=0)  # scales below this get no temporal term
    mask_prob: float = Field(0.5, ge=0, lt=1)  # probability that a time step is masked in a crop
    max_length: int = Field(3000, ge=1)  # longest stretch (time steps) the two crops cover together


@register_method
class TS2Vec(Method):
    name = "ts2vec"
    summary = "temporal contrastive: two overlapping masked crops, contrast per time step across samples and time"
    paper = "Yue et al. 2022, TS2Vec: Towards Universal Representation of Time Series"
    views = ViewSpec(n_global=0, original=True)
    modalities = ("timeseries",)
    default_lr = 1e-3  # the official code's Adam learning rate
    Config = TS2VecConfig
    config: TS2VecConfig
    encoder: SeriesEncoder

    def __init__(self, encoder: Encoder, config: TS2VecConfig) -> None:
        super().__init__(encoder, config)
        if not hasattr(encoder, "forward_tokens"):
            raise SelfsupError(
                "ts2vec needs a time-series encoder with per-time-step features (dilated_conv, patch_transformer)."
            )

    def check_data(self, x: torch.Tensor) -> None:
        """Every series with a valid step must give the two crops their minimal overlap."""
        stride = int(self.encoder.token_stride)
        lengths = valid_lengths(x.float())
        shortest = int(lengths[lengths > 0].min()) if (lengths > 0).any() else 0
        min_overlap = 2 ** (self.config.temporal_unit + 1)
        if -(-shortest // stride) < min_overlap:
            raise SelfsupError(
                f"ts2vec needs series of at least {min_overlap} tokens ({min_overlap * stride} time steps with "
                f"{stride} per token), but the shortest training series has {shortest} steps; use a smaller "
                "patch_size, the dilated_conv encoder, or leave the short series out."
            )

    def crops(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The two masked crops of ``x`` (time steps) and their overlap in tokens (torch's global RNG)."""
        stride = int(self.encoder.token_stride)
        lengths = valid_lengths(x)
        # a series with no valid step has nothing to crop: it must not shrink the batch's window
        n_tokens = -(-torch.where(lengths > 0, lengths, x.shape[-1]) // stride)
        min_overlap = 2 ** (self.config.temporal_unit + 1)
        max_tokens = self.config.max_length // stride
        if max_tokens < min_overlap:
            raise SelfsupError(
                f"ts2vec max_length={self.config.max_length} leaves fewer than {min_overlap} tokens of "
                f"{stride} steps for its crops; raise max_length to at least {min_overlap * stride}."
            )
        pair = sample_crops(n_tokens, max_tokens, min_overlap)
        x1 = take_steps(x, pair.start1 * stride, pair.length1 * stride)
        x2 = take_steps(x, pair.start2 * stride, pair.length2 * stride)
        prob = self.config.mask_prob
        return mask_steps(x1, prob), mask_steps(x2, prob), pair.overlap

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x = views[0]
        x1, x2, overlap = self.crops(x)
        z1, _ = self.encoder.forward_tokens(x1)
        z2, _ = self.encoder.forward_tokens(x2)
        cfg = self.config
        loss = hierarchical_contrastive_loss(z1[:, -overlap:], z2[:, :overlap], cfg.alpha, cfg.temporal_unit)
        with torch.no_grad():  # the instance embedding of the whole series, for the online probe
            embedding = self.encoder(x)
        return StepOutput(loss, {"overlap_tokens": float(overlap)}, embedding)
