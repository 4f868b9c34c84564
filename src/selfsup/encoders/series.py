"""Time-series encoders: TS2Vec's dilated convolutions and a PatchTST-style patch transformer.

Input (docs/modalities.md): float32 ``(B, C, T)`` raw values, NaN marking padding (ragged series
are padded at the end) and missing values. Both encoders normalise ``(x - mean) / std`` with the
per-channel statistics of their config, set NaN to 0, and call a time step invalid where every
channel is NaN. ``forward_tokens(x)`` gives ``(features (B, T', D), valid (B, T') bool)``, one token
per ``token_stride`` time steps; ``forward(x)`` is the max over valid tokens (TS2Vec's instance-level
representation), zeros for a sample with no valid step.

Padding at the end never changes the tokens of the series before it: the convolutions see zeros
past a series' last valid step (exactly like their own zero padding) and padded patches are never
attended to, so a series embeds the same whatever batch it is padded into.

Both take ``causal=True`` (each token sees only the past), which CPC needs; TS2Vec and PatchTST are
non-causal, the default.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.args import checked_args
from selfsup.encoders.tokens import Tokenizer, TokenTransformer, pool_tokens, sincos_1d
from selfsup.errors import SelfsupError, unknown_name

ENCODERS = {
    "dilated_conv": "TS2Vec residual dilated 1-D convolutions, one token per time step (Yue et al. 2022)",
    "patch_transformer": "PatchTST-style pre-norm transformer over patches of time steps (Nie et al. 2023)",
}

# Hyperparameters (the ``encoder_args``) and their defaults, chosen to train quickly on a CPU:
# - dilated_conv: TS2Vec uses hidden 64, depth 10, output 320. Depth 6 (7 blocks with dilations
#   1..64) still covers ~500 time steps, and the final 64->320 block is most of TS2Vec's compute,
#   so the output is 128.
# - patch_transformer: between PatchTST's two settings (d_model 128 / 16 heads on large data,
#   16 / 4 heads on small data, 3 layers both): d_model 64, 3 layers, 4 heads, MLP 2 x d_model,
#   patches of 8 steps (PatchTST: 16 with stride 8 on series of 336-512 steps; ours are often shorter).
DEFAULTS: dict[str, dict[str, Any]] = {
    "dilated_conv": {"hidden_dim": 64, "depth": 6, "embed_dim": 128, "dropout": 0.1, "causal": False},
    "patch_transformer": {
        "patch_size": 8,
        "embed_dim": 64,
        "depth": 3,
        "heads": 4,
        "mlp_dim": 128,
        "dropout": 0.1,
        "causal": False,
    },
}


def _check(name: str, hyper: dict[str, Any]) -> None:
    for key, value in hyper.items():
        if key == "dropout" and not 0 <= value < 1:
            raise SelfsupError(f"encoder argument dropout={value} must be in [0, 1).")
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise SelfsupError(f"encoder argument {key}={value} of time-series encoder '{name}' must be at least 1.")
    if name == "patch_transformer" and hyper["embed_dim"] % hyper["heads"]:
        raise SelfsupError(
            f"embed_dim={hyper['embed_dim']} must be a multiple of heads={hyper['heads']}; change one of them."
        )


def series_encoder_config(name: str, in_chans: int, length: int, mean: Any, std: Any, **encoder_args: Any) -> dict:
    """The JSON-serialisable description from which a time-series encoder is rebuilt.

    ``length`` is the pre-training series length (informative: the encoders take any length);
    ``mean``/``std`` hold one value per channel. Every hyperparameter is written out, defaults
    included, so a saved config fixes the architecture.
    """
    if name not in ENCODERS:
        raise unknown_name("time-series encoder", name, ENCODERS)
    hyper = checked_args(f"time-series encoder '{name}'", DEFAULTS[name], encoder_args)
    _check(name, hyper)
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) != int(in_chans) or len(std) != int(in_chans):
        raise SelfsupError(
            f"the time-series encoder needs one mean and one std per channel: {in_chans} channels, "
            f"got {len(mean)} means and {len(std)} stds."
        )
    if not all(math.isfinite(v) for v in mean + std) or any(s <= 0 for s in std):
        raise SelfsupError(
            f"time-series channel statistics must be finite with std > 0, got mean={mean}, std={std}; "
            "a channel that is constant or entirely missing in the training data should be dropped."
        )
    return {
        "modality": "timeseries",
        "name": name,
        "in_chans": int(in_chans),
        "length": int(length),
        "mean": mean,
        "std": std,
        **hyper,
    }


def build(config: dict[str, Any]) -> Encoder:
    """Build a freshly initialised time-series encoder from its config (validated again here)."""
    name = config.get("name")
    if name not in ENCODERS:
        raise unknown_name("time-series encoder", str(name), ENCODERS)
    missing = [key for key in ("in_chans", "length", "mean", "std") if key not in config]
    if missing:
        raise SelfsupError(
            f"time-series encoder config lacks {', '.join(missing)}; rebuild it with series_encoder_config."
        )
    args = {key: config[key] for key in DEFAULTS[name] if key in config}
    full = series_encoder_config(name, config["in_chans"], config["length"], config["mean"], config["std"], **args)
    return {"dilated_conv": DilatedConvEncoder, "patch_transformer": PatchTransformer}[name](full)


class _SeriesEncoder(Encoder):
    """Shared input handling: shape check, per-channel normalisation, NaN -> 0, valid time steps."""

    token_stride: int
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.in_chans = int(config["in_chans"])
        self.embed_dim: int = int(config["embed_dim"])
        self.causal = bool(config["causal"])
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, -1, 1))

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return prepare_series(x, self.mean, self.std)

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_tokens(*self.forward_tokens(x))


class _ConvBlock(nn.Module):
    """TS2Vec's residual block: GELU -> dilated conv -> GELU -> dilated conv, plus a (1x1) residual."""

    def __init__(self, in_dim: int, out_dim: int, dilation: int, causal: bool, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, out_dim, 3, dilation=dilation)
        self.conv2 = nn.Conv1d(out_dim, out_dim, 3, dilation=dilation)
        self.pad = (2 * dilation, 0) if causal else (dilation, dilation)  # 'same' length
        self.projector = nn.Conv1d(in_dim, out_dim, 1) if project else None

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        residual = x if self.projector is None else self.projector(x)
        h = self.conv1(F.pad(F.gelu(x) * keep, self.pad))
        h = self.conv2(F.pad(F.gelu(h) * keep, self.pad))
        return h + residual


class DilatedConvEncoder(_SeriesEncoder):
    """TS2Vec's encoder (Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time Series").

    Linear input projection ``C -> hidden_dim``; invalid time steps enter as zeros (TS2Vec sets NaN
    inputs to 0 and masks those steps in the latent); ``depth`` residual blocks of kernel-3 convs with
    dilation ``2**i`` at width ``hidden_dim``, then a last block (dilation ``2**depth``) to
    ``embed_dim``; dropout 0.1 on the output as in TS2Vec. One token per time step.
    """

    token_stride = 1
    # its embedding of a ragged series does not depend on the NaN steps after the series' end (each conv sees
    # them as zeros, the pooling skips them), so a batch may be cut after its own longest series
    # (``evaluation.embed``)
    trims_padding = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        hidden, depth = int(config["hidden_dim"]), int(config["depth"])
        self.input_fc = nn.Linear(self.in_chans, hidden)
        dims = [hidden] * depth + [self.embed_dim]
        self.blocks = nn.ModuleList(
            _ConvBlock(hidden if i == 0 else dims[i - 1], dims[i], 2**i, self.causal, project=i == depth)
            for i in range(depth + 1)
        )
        self.dropout = nn.Dropout(float(config["dropout"]))

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, valid = self._prepare(x)
        steps = torch.arange(1, valid.shape[1] + 1, device=valid.device)
        length = (valid * steps).amax(dim=1, keepdim=True)  # last valid step + 1: the tail after it is padding
        keep = (steps <= length).unsqueeze(1).to(h.dtype)  # (B, 1, T)
        h = self.input_fc(h.transpose(1, 2)) * valid.unsqueeze(-1)
        h = h.transpose(1, 2)
        for block in self.blocks:
            h = block(h, keep)
        return self.dropout(h).transpose(1, 2), valid


def prepare_series(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, T)`` raw -> values normalised with ``mean``/``std`` ``(1, C, 1)``, NaN set to 0, and
    ``valid (B, T)`` (a time step is invalid where every channel is NaN)."""
    chans = mean.shape[1]
    if x.ndim != 3 or x.shape[-1] < 1:
        raise SelfsupError(f"the time-series encoder takes (batch, {chans}, time) series, got shape {tuple(x.shape)}.")
    if x.shape[1] != chans:
        raise SelfsupError(
            f"the encoder takes {chans} channels, got {x.shape[1]}; give it data with the channels it was trained on."
        )
    x = (x.to(mean.dtype) - mean) / std
    missing = torch.isnan(x)
    return x.masked_fill(missing, 0.0), ~missing.all(dim=1)


class SeriesPatchTokenizer(Tokenizer):
    """Non-overlapping patches of ``patch_size`` steps, one token each (see ``encoders/tokens.py``).

    The series is padded at the end to a whole number of patches, so any ``T >= 1`` works. Channels
    are mixed: a token is a linear embedding of all ``C * patch_size`` values (PatchTST embeds each
    channel separately with shared weights; mixing is simpler and gives ``(B, n_patches, D)``
    directly), plus fixed sinusoidal positions, which fit any length. A patch is invalid when all its
    steps are. A patch that ends a ragged series part-way holds zeros after the series' end (also in
    its reconstruction target).
    """

    spatial_dims = 1
    ordered = True

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.in_chans, self.patch_size = int(config["in_chans"]), int(config["patch_size"])
        self.dim = int(config["embed_dim"])
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, -1, 1))
        self.embed = nn.Linear(self.in_chans * self.patch_size, self.dim)
        self.patch_shape = (self.in_chans, self.patch_size)

    def _patched(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n, C, p)`` normalised patches (NaN -> 0) and ``valid (B, n)``."""
        h, valid = prepare_series(x, self.mean, self.std)
        batch, chans, steps = h.shape
        size = self.patch_size
        n = -(-steps // size)
        h = F.pad(h, (0, n * size - steps))
        valid = F.pad(valid, (0, n * size - steps), value=False).view(batch, n, size).any(dim=-1)
        return h.view(batch, chans, n, size).transpose(1, 2), valid

    def grid(self, x: torch.Tensor) -> tuple[int, ...]:
        return (-(-x.shape[-1] // self.patch_size),)

    def positions(self, n: int) -> torch.Tensor:
        return sincos_1d(n, self.dim, self.mean.device)

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._patched(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, valid = self._patched(x)
        tokens = self.embed(patches.flatten(2))
        return tokens + self.positions(tokens.shape[1]).to(tokens.dtype), valid


class PatchTransformer(TokenTransformer):
    """PatchTST-style encoder (Nie et al. 2023, "A Time Series is Worth 64 Words").

    :class:`SeriesPatchTokenizer` then the shared token transformer; tokens attend only to valid
    patches (and themselves), then a final LayerNorm; ``forward`` is the max over valid tokens. One
    token per ``patch_size`` time steps.
    """

    trims_padding = True  # patches past a series' end are masked (see ``DilatedConvEncoder``)

    def __init__(self, config: dict[str, Any]) -> None:
        dropout = float(config["dropout"])
        super().__init__(
            SeriesPatchTokenizer(config),
            dim=int(config["embed_dim"]),
            depth=int(config["depth"]),
            heads=int(config["heads"]),
            hidden=int(config["mlp_dim"]),
            dropout=dropout,
            attention_dropout=dropout,
            ffn_dropout=dropout,
            input_dropout=dropout,
            pool="max",
            causal=bool(config["causal"]),
        )
        self.config = dict(config)
        self.in_chans = int(config["in_chans"])
        self.patch_size = self.token_stride = int(config["patch_size"])


SeriesEncoder = DilatedConvEncoder | PatchTransformer  # what series methods (TS2Vec, CPC) train: tokens per step
