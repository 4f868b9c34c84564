"""TERA: Liu et al. 2021, "TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech".

The input's frames are altered along three axes and the encoder reconstructs the original frames:

- time: ``round(T * time_ratio / span)`` runs of ``span`` frames (15% of frames in runs of 7) start at distinct
  random frames in ``[0, T - span - 1]`` (runs may overlap); per sample, with probability 0.8 they are set to
  zero, 0.1 replaced by other frames of the same sample, 0.1 left as they are;
- channel (frequency): one band of ``w`` contiguous channels, ``w`` uniform in ``0 .. int(F * freq_ratio)``
  (up to 20% of the mel bins), set to zero in every frame;
- magnitude: with probability ``noise_proportion`` a sample gets Gaussian noise (std 0.2) on every frame.

Values are in the encoder's normalised units (log-mel per bin for audio, each channel for series, as TERA
alters CMVN-normalised features), so zero is the channel's mean. The encoder sees every (altered) token; a
prediction head (dense, GELU, LayerNorm, dense: TERA's) maps each token to its patch of original values, and
the loss is the L1 error over the altered values only: the time-masked frames (every channel) and the masked
band (every frame), as the reference implementation (s3prl) labels them; with neither alteration on, every
value. Noise alone is not a target.

Simplifications: tokens are the encoder's patches (spec_transformer: 16 bins x 8 frames; patch_transformer:
``patch_size`` steps) rather than TERA's single (or stacked) frames; a replaced run takes the frames of a random
circular shift of the same sample (s3prl copies random runs); the noise probability (0.1) is this library's
choice, the card gives none. A series with one channel gets no channel alteration (``int(1 * 0.2) = 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.audio import SpecPatchTokenizer
from selfsup.encoders.series import SeriesPatchTokenizer, prepare_series
from selfsup.encoders.tokens import TokenOutput, TokenTransformer
from selfsup.errors import SelfsupError
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

ZERO_P, REPLACE_P = 0.8, 0.1  # TERA's (BERT's) policy for a sample's time-masked runs; the rest are kept


def span_mask(starts: torch.Tensor, span: int) -> torch.Tensor:
    """``(B, T)`` bool: the frames covered by a run of ``span`` frames from each True start."""
    covered = F.max_pool1d(F.pad(starts.float().unsqueeze(1), (span - 1, 0)), span, stride=1)
    return covered.squeeze(1) > 0


def tera_alter(
    h: torch.Tensor,
    valid: torch.Tensor,
    *,
    time_ratio: float = 0.15,
    span: int = 7,
    freq_ratio: float = 0.2,
    noise_proportion: float = 0.1,
    noise_std: float = 0.2,
    policy: tuple[float, float] = (ZERO_P, REPLACE_P),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TERA's time, channel and magnitude alteration of normalised frames ``h (B, F, T)`` whose first
    ``valid.sum(1)`` steps are real (the module docstring has the rules). ``policy``: the probabilities of zeroing
    and of replacing a sample's time-masked runs. Returns ``(altered (B, F, T), label (B, F, T) bool)``, ``label``
    the altered values the loss reads (0 and False past each sample's end)."""
    batch, chans, steps = h.shape
    device = h.device
    valid = valid.bool()
    lengths = valid.sum(1)  # (B,)
    step = torch.arange(steps, device=device)
    altered = h.masked_fill(~valid.unsqueeze(1), 0.0).clone()
    label = torch.zeros(batch, chans, steps, dtype=torch.bool, device=device)
    if time_ratio > 0:
        last_start = (lengths - span - 1).clamp_min(0)  # s3prl's valid_start_max
        count = torch.round(lengths.float() * time_ratio / span).long()
        allowed = step.unsqueeze(0) <= last_start.unsqueeze(1)
        score = torch.rand(batch, steps, generator=generator, device=device).masked_fill(~allowed, 2.0)
        rank = score.argsort(1).argsort(1)  # each start's place in a random order of the allowed starts
        starts = allowed & (rank < count.unsqueeze(1))
        frames = span_mask(starts, span) & valid  # (B, T)
        dice = torch.rand(batch, generator=generator, device=device)
        zero, replace = dice < policy[0], (dice >= policy[0]) & (dice < policy[0] + policy[1])
        shift = (torch.rand(batch, generator=generator, device=device) * lengths.clamp_min(1)).long()
        source = (step.unsqueeze(0) + shift.unsqueeze(1)) % lengths.clamp_min(1).unsqueeze(1)
        shifted = altered.gather(2, source.unsqueeze(1).expand(-1, chans, -1))
        put = frames.unsqueeze(1)
        altered = torch.where(put & replace.view(-1, 1, 1), shifted, altered)
        altered = altered.masked_fill(put & zero.view(-1, 1, 1), 0.0)
        label |= put.expand(-1, chans, -1)
    widest = int(chans * freq_ratio)
    if freq_ratio > 0 and widest > 0:
        width = torch.randint(0, widest + 1, (batch,), generator=generator, device=device)
        start = (torch.rand(batch, generator=generator, device=device) * (chans - width)).long()
        channel = torch.arange(chans, device=device).unsqueeze(0)
        band = (channel >= start.unsqueeze(1)) & (channel < (start + width).unsqueeze(1))  # (B, F)
        band_values = band.unsqueeze(2) & valid.unsqueeze(1)
        altered = altered.masked_fill(band_values, 0.0)
        label |= band_values
    if time_ratio <= 0 and (freq_ratio <= 0 or widest == 0):
        label = valid.unsqueeze(1).expand(-1, chans, -1).clone()
    if noise_proportion > 0:
        noisy = torch.rand(batch, generator=generator, device=device) < noise_proportion
        noise = torch.randn(h.shape, generator=generator, device=device, dtype=h.dtype) * noise_std
        altered = altered + noise * (noisy.view(-1, 1, 1) & valid.unsqueeze(1))
    return altered, label


def tera_l1(prediction: torch.Tensor, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of ``prediction`` against ``target`` over the values where ``label`` is True (TERA's
    L1 on the altered frames; s3prl's ``L1Loss`` on ``masked_select``)."""
    weight = label.to(prediction.dtype)
    return ((prediction - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def frames_and_input(
    encoder: TokenTransformer, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``x`` as the encoder normalises it, channels by frames ``(B, F, T)``, its ``valid (B, T)`` steps, and the map
    from such frames back to an input the encoder takes (a series, or a log-mel spectrogram in dB), NaN past each
    sample's end."""
    tokenizer = encoder.tokenizer
    if isinstance(tokenizer, SeriesPatchTokenizer):
        h, valid = prepare_series(x, tokenizer.mean, tokenizer.std)
        mean, std = tokenizer.mean, tokenizer.std
    elif isinstance(tokenizer, SpecPatchTokenizer):
        spec, valid = tokenizer.frontend(x)
        h, mean, std = spec[:, 0], tokenizer.frontend.mean[:, 0], tokenizer.frontend.std[:, 0]
    else:
        raise SelfsupError("tera needs spec_transformer (audio) or patch_transformer (series).")

    def to_input(frames: torch.Tensor) -> torch.Tensor:
        raw = (frames * std + mean).masked_fill(~valid.unsqueeze(1), float("nan"))
        return raw.unsqueeze(1) if isinstance(tokenizer, SpecPatchTokenizer) else raw

    return h, valid, to_input


class TERAConfig(MethodConfig):
    time_ratio: float = Field(0.15, ge=0, lt=1, description="share of frames masked in time runs")
    span: int = Field(7, ge=1, description="frames per time run")
    freq_ratio: float = Field(0.2, ge=0, lt=1, description="widest masked channel band, as a share of channels")
    noise_proportion: float = Field(0.1, ge=0, le=1, description="probability a sample gets Gaussian noise")
    noise_std: float = Field(0.2, ge=0)


@register_method
class TERA(Method):
    name = "tera"
    summary = (
        "reconstruct frames altered in time, channel and magnitude (L1 on altered values); "
        "patch tokens, replaced runs by a circular shift"
    )
    paper = "Liu et al. 2021, TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech"
    views = ViewSpec(n_global=0, original=True)
    modalities = ("audio", "timeseries")
    needs_tokens = True
    default_lr = 1e-3
    Config = TERAConfig
    config: TERAConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: TERAConfig) -> None:
        super().__init__(encoder, config)
        tokenizer = self.encoder.tokenizer
        if not isinstance(tokenizer, SeriesPatchTokenizer | SpecPatchTokenizer):
            raise SelfsupError("tera needs spec_transformer (audio) or patch_transformer (series).")
        dim = encoder.embed_dim
        self.head = nn.Sequential(  # TERA's TransformerSpecPredictionHead
            nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim), nn.Linear(dim, math.prod(tokenizer.patch_shape))
        )

    def alter(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(original, altered, label)``: ``x`` and its altered copy in an input format the encoder takes (a
        series, or a log-mel in dB), and the altered values as that format's 0/1 mask (``label``)."""
        c = self.config
        h, valid, to_input = frames_and_input(self.encoder, x)
        altered, label = tera_alter(
            h,
            valid,
            time_ratio=c.time_ratio,
            span=c.span,
            freq_ratio=c.freq_ratio,
            noise_proportion=c.noise_proportion,
            noise_std=c.noise_std,
        )
        return to_input(h), to_input(altered), to_input(label.to(h.dtype))

    def loss_of(
        self, original: torch.Tensor, altered: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, TokenOutput]:
        """TERA's L1 loss of reconstructing ``original`` from ``altered`` where ``label`` (as ``alter`` gives them);
        and the encoder's output on ``altered``."""
        tokenizer = self.encoder.tokenizer
        out = self.encoder.run(altered)
        prediction = self.head(out.tokens)  # (B, N, P)
        with torch.no_grad():
            target, valid = tokenizer.patches(original)
            labels = tokenizer.patches(label)[0].flatten(2) > 0.5  # the altered values in token layout
            labels = labels & valid.unsqueeze(-1)
        return tera_l1(prediction, target.flatten(2), labels), out

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        with torch.no_grad():
            original, altered, label = self.alter(views[0])
        loss, out = self.loss_of(original, altered, label)
        return StepOutput(loss, {}, out.pooled)
