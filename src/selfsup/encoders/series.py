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
    "patch_transformer": {"patch_size": 8, "embed_dim": 64, "depth": 3, "heads": 4, "mlp_dim": 128,
                          "dropout": 0.1, "causal": False},
}


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Give ``value`` the type of ``default`` (``--encoder-arg KEY=VALUE`` values may arrive as text)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.strip().lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.strip().lower() in {"true", "1", "yes"}
            if value not in (True, False, 0, 1):
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        kind = "true or false" if isinstance(default, bool) else type(default).__name__
        raise SelfsupError(
            f"encoder argument {key}={value!r} of time-series encoder '{name}' must be {kind} (default {default})."
        ) from None


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
    defaults = DEFAULTS[name]
    unknown = sorted(set(encoder_args) - set(defaults))
    if unknown:
        raise SelfsupError(
            f"unknown encoder argument(s) {', '.join(unknown)} for time-series encoder '{name}'; "
            f"known: {', '.join(defaults)}."
        )
    hyper = {key: _coerce(name, key, encoder_args.get(key, default), default) for key, default in defaults.items()}
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
    return {"modality": "timeseries", "name": name, "in_chans": int(in_chans), "length": int(length),
            "mean": mean, "std": std, **hyper}


def build(config: dict[str, Any]) -> nn.Module:
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
    if "read" in config:  # how the pre-training files were read (CSV columns): travels with the encoder
        full["read"] = dict(config["read"])
    return {"dilated_conv": DilatedConvEncoder, "patch_transformer": PatchTransformer}[name](full)


def pool_tokens(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over the valid tokens: ``(B, T', D), (B, T') -> (B, D)``; zeros where no token is valid."""
    pooled = features.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class _SeriesEncoder(nn.Module):
    """Shared input handling: shape check, per-channel normalisation, NaN -> 0, valid time steps."""

    token_stride: int

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.in_chans = int(config["in_chans"])
        self.embed_dim: int = int(config["embed_dim"])
        self.causal = bool(config["causal"])
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, -1, 1))

    def _prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T)`` raw -> normalised values with NaN set to 0, and ``valid (B, T)``."""
        if x.ndim != 3 or x.shape[-1] < 1:
            raise SelfsupError(
                f"the time-series encoder takes (batch, {self.in_chans}, time) series, got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_chans:
            raise SelfsupError(
                f"the encoder takes {self.in_chans} channels, got {x.shape[1]}; "
                "give it data with the channels it was trained on."
            )
        x = (x.to(self.mean.dtype) - self.mean) / self.std
        missing = torch.isnan(x)
        return x.masked_fill(missing, 0.0), ~missing.all(dim=1)

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


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed sine/cosine positional encoding ``(n, dim)`` (Vaswani et al. 2017); any length works."""
    position = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, n, dim = z.shape
        q, k, v = self.qkv(self.norm1(z)).view(batch, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                              dropout_p=self.dropout if self.training else 0.0)
        z = z + self.drop(self.proj(attn.transpose(1, 2).reshape(batch, n, dim)))
        return z + self.drop(self.mlp(self.norm2(z)))


class PatchTransformer(_SeriesEncoder):
    """PatchTST-style encoder (Nie et al. 2023, "A Time Series is Worth 64 Words").

    Non-overlapping patches of ``patch_size`` steps (the series is padded at the end to a whole
    number of patches, so any ``T >= 1`` works). Channels are mixed: one token per patch from a linear
    embedding of all ``C * patch_size`` values (PatchTST embeds each channel separately with shared
    weights; mixing is simpler and gives ``(B, n_patches, D)`` directly). Fixed sinusoidal positions
    fit any length. A patch is invalid when all its steps are; tokens attend only to valid patches
    (and themselves), then a final LayerNorm. One token per ``patch_size`` time steps.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.patch_size = self.token_stride = int(config["patch_size"])
        dim, dropout = self.embed_dim, float(config["dropout"])
        self.patch_embed = nn.Linear(self.in_chans * self.patch_size, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            _Block(dim, int(config["heads"]), int(config["mlp_dim"]), dropout) for _ in range(int(config["depth"]))
        )
        self.norm = nn.LayerNorm(dim)

    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, valid = self._prepare(x)
        batch, chans, steps = h.shape
        size = self.patch_size
        n = -(-steps // size)
        h = F.pad(h, (0, n * size - steps))
        valid = F.pad(valid, (0, n * size - steps), value=False).view(batch, n, size).any(dim=-1)
        patches = h.view(batch, chans, n, size).transpose(1, 2).reshape(batch, n, chans * size)
        z = self.patch_embed(patches)
        z = self.dropout(z + sinusoidal_positions(n, self.embed_dim, h.device).to(z.dtype))
        eye = torch.eye(n, dtype=torch.bool, device=h.device)
        allowed = valid.unsqueeze(1) | eye  # (B, query, key); self is always allowed, so no row is empty
        if self.causal:
            allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=h.device).tril()
        allowed = allowed.unsqueeze(1)  # broadcast over heads
        for block in self.blocks:
            z = block(z, allowed)
        return self.norm(z), valid
