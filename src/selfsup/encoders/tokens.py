"""The one token transformer behind every modality's token encoder (``vit``, ``patch_transformer``,
``ft_transformer``, ``spec_transformer``).

A modality supplies a **tokenizer**, a :class:`Tokenizer` (an ``nn.Module``) with:

- ``forward(x) -> (tokens (B, N, D), valid (B, N) bool)``: one embedding per token, positions added;
  ``valid`` is False for padding (series padded past their end), True everywhere else;
- ``positions(n) -> (n, D)``: the positional part of each token (a masked-token query needs it);
- ``patches(x) -> (patches (B, N, *patch_shape), valid)``: the normalised input content of each
  token, the reconstruction target of masked modelling (``patch_shape``: image ``(C, p, p)``,
  series ``(C, p)``, table ``(W,)``, audio log-mel ``(1, p_freq, p_time)``);
- ``spatial_dims``: how many trailing dims of a patch are space or time (2, 1, 0): Fourier and
  gradient targets work over them;
- ``grid(x) -> tuple[int, ...]``: the token layout, ``(h, w)`` for images and spectrograms, ``(n,)`` for series;
  ``ordered`` is False for tables, whose columns have no neighbours (masking policies read both).

:class:`TokenTransformer` prepends ``n_prefix`` learned tokens ([CLS]), runs pre-norm blocks and a
final LayerNorm. ``forward_tokens(x, keep)`` encodes only the tokens at ``keep``: masked methods
never hand the encoder a masked token; iBOT (in ``dino``/``dinov2``) does, with ``run(x, mask=..., mask_token=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError


def sincos_1d(n: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed sine/cosine positions ``(n, dim)`` (Vaswani et al. 2017); any length works."""
    position = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def sincos_2d(h: int, w: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """MAE's fixed 2-D positions ``(h * w, dim)``: half the channels encode the row, half the column."""
    half = dim // 2
    rows = sincos_1d(h, half, device).unsqueeze(1).expand(h, w, half)
    cols = sincos_1d(w, dim - half, device).unsqueeze(0).expand(h, w, dim - half)
    return torch.cat([rows, cols], dim=-1).reshape(h * w, dim)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``.

    ``glu`` makes the FFN a ReGLU (FT-Transformer); ``first`` drops the attention LayerNorm, as the
    FT-Transformer does in its first block (the tokenizer output is used as is).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        hidden: int,
        *,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        glu: bool = False,
        first: bool = False,
    ) -> None:
        super().__init__()
        self.heads, self.attention_dropout = heads, attention_dropout
        self.norm1 = nn.Identity() if first else nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.glu = glu
        self.ffn_in = nn.Linear(dim, 2 * hidden if glu else hidden)
        self.ffn_out = nn.Linear(hidden, dim)
        self.ffn_dropout, self.drop = nn.Dropout(ffn_dropout), nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, N, D)``; ``allowed`` (bool, broadcastable to ``(B, heads, N, N)``): which keys a query sees."""
        batch, n, dim = z.shape
        q, k, v = self.qkv(self.norm1(z)).view(batch, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attention_dropout if self.training else 0.0
        )
        z = z + self.drop(self.proj(attended.transpose(1, 2).reshape(batch, n, dim)))
        h = self.ffn_in(self.norm2(z))
        if self.glu:
            a, gate = h.chunk(2, dim=-1)
            h = a * F.relu(gate)
        else:
            h = F.gelu(h)
        return z + self.drop(self.ffn_out(self.ffn_dropout(h)))


def key_mask(keys: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` attendable keys -> ``(B, 1, N, N)`` attention mask; a token always sees itself, so no row is
    empty (padding queries attend to themselves only)."""
    eye = torch.eye(keys.shape[1], dtype=torch.bool, device=keys.device)
    return (keys.unsqueeze(1) | eye).unsqueeze(1)


def pool_tokens(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over the valid tokens: ``(B, T', D), (B, T') -> (B, D)``; zeros where no token is valid."""
    pooled = features.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(valid.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens (B, N, ...)`` at ``index (B, K)`` -> ``(B, K, ...)``."""
    shape = index.shape + tokens.shape[2:]
    expanded = index.view(*index.shape, *([1] * (tokens.ndim - 2))).expand(shape)
    return tokens.gather(1, expanded)


@dataclass
class TokenOutput:
    """What :meth:`TokenTransformer.run` returns: content tokens after the final LayerNorm, their
    validity, the pooled embedding, and (when asked) every block's output at the content tokens,
    before the final norm (data2vec's targets)."""

    tokens: torch.Tensor
    valid: torch.Tensor
    pooled: torch.Tensor
    layers: list[torch.Tensor]


class Tokenizer(nn.Module):
    """The tokenizer contract in the module docstring, as the base class of each modality's tokenizer."""

    spatial_dims: int
    ordered: bool
    patch_shape: tuple[int, ...]

    def grid(self, x: torch.Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    def positions(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class TokenTransformer(Encoder):
    """Tokenizer, ``n_prefix`` learned tokens, ``depth`` pre-norm blocks, LayerNorm; pooled to ``(B, D)``.

    ``pool``: ``"cls"`` (the first prefix token), ``"mean"`` or ``"max"`` over the valid content
    tokens. ``dropout`` is on each block's residual branches, ``input_dropout`` on the tokens.
    ``causal``: a token sees only itself, earlier tokens and the prefix (CPC).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        dim: int,
        depth: int,
        heads: int,
        hidden: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        input_dropout: float = 0.0,
        glu: bool = False,
        skip_first_norm: bool = False,
        n_prefix: int = 0,
        pool: str = "mean",
        causal: bool = False,
    ) -> None:
        super().__init__()
        if pool == "cls" and (n_prefix < 1 or causal):
            raise ValueError("pool='cls' needs a prefix token, and no causal order (the prefix would see no input)")
        self.tokenizer = tokenizer
        self.embed_dim: int = dim
        self.pool, self.causal, self.n_prefix = pool, causal, n_prefix
        self.prefix = nn.Parameter(torch.empty(n_prefix, dim).uniform_(-(dim**-0.5), dim**-0.5)) if n_prefix else None
        self.dropout = nn.Dropout(input_dropout)  # on the tokens entering the first block
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                heads,
                hidden,
                dropout=dropout,
                attention_dropout=attention_dropout,
                ffn_dropout=ffn_dropout,
                glu=glu,
                first=skip_first_norm and i == 0,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def _allowed(self, valid: torch.Tensor) -> torch.Tensor:
        """``(B, 1, P + K, P + K)`` attention mask: valid keys, prefix keys and oneself; causal order if asked."""
        p = self.n_prefix
        allowed = key_mask(torch.cat([valid.new_ones(len(valid), p), valid], dim=1))
        if self.causal:
            n = allowed.shape[-1]
            order = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
            order[:, :p] = True  # the prefix is context for everyone
            allowed = allowed & order
        return allowed

    def run(
        self,
        x: torch.Tensor,
        keep: torch.Tensor | None = None,
        layers: bool = False,
        mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> TokenOutput:
        """Encode the content tokens at ``keep (B, K)`` (all when None; sorted indices keep causal order).

        ``mask (B, N)`` bool, with ``mask_token (D,)``: the content tokens where ``mask`` is True are replaced by
        ``mask_token`` plus their position (iBOT's and BEiT's [MASK] input; the caller owns the learned token)."""
        tokens, valid = self.tokenizer(x)
        if mask is not None:
            if mask_token is None or mask.shape != tokens.shape[:2]:
                raise ValueError(f"mask needs a mask_token and the token layout {tuple(tokens.shape[:2])}")
            masked = mask_token.to(tokens.dtype) + self.tokenizer.positions(tokens.shape[1]).to(tokens.dtype)
            tokens = torch.where(mask.unsqueeze(-1), masked.unsqueeze(0), tokens)
        if keep is not None:
            tokens, valid = gather_tokens(tokens, keep), gather_tokens(valid, keep)
        batch, p = tokens.shape[0], self.n_prefix
        if self.prefix is not None:
            tokens = torch.cat([self.prefix.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        z = self.dropout(tokens)
        allowed = None if not self.causal and bool(valid.all()) else self._allowed(valid)
        outputs = []
        for block in self.blocks:
            z = block(z, allowed)
            if layers:
                outputs.append(z[:, p:])
        z = self.norm(z)
        content = z[:, p:]
        if self.pool == "cls":
            pooled = z[:, 0]
        elif self.pool == "max":
            pooled = pool_tokens(content, valid)
        else:
            weights = valid.unsqueeze(-1).to(content.dtype)
            pooled = (content * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return TokenOutput(content, valid, pooled, outputs)

    def forward_tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens (B, K, D), valid (B, K))``: the content tokens at ``keep`` after the final LayerNorm."""
        out = self.run(x, keep)
        return out.tokens, out.valid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled ``(B, D)`` embedding of all tokens (zeros for a series with no valid token)."""
        return self.run(x).pooled

    n_registers: int = 0  # learned tokens add_registers appended to the prefix

    def add_registers(self, n: int) -> None:
        """Append ``n`` learned register tokens to the prefix (Darcet et al. 2024, "Vision Transformers Need
        Registers"; ECG-JEPA's register token, T-JEPA's regularisation tokens).

        Every token attends to them, and they leave the output like the prefix ([CLS] stays first, so
        ``pool='cls'`` is unchanged). ``config["registers"]`` records them, so ``build_encoder`` rebuilds them and a
        saved encoder loads. ``n`` equal to the registers already there is a no-op (a rebuilt encoder); another
        count is refused (the learned ones would be lost)."""
        if n == self.n_registers:
            return
        if self.n_registers or n < 0:
            raise SelfsupError(
                f"the encoder has {self.n_registers} register tokens, so it cannot take {n}; "
                f"set registers={self.n_registers}."
            )
        dim = self.embed_dim
        new = torch.empty(n, dim).uniform_(-(dim**-0.5), dim**-0.5)  # as the prefix: U(-1/sqrt(d), 1/sqrt(d))
        old = self.prefix.data if self.prefix is not None else new[:0]
        self.prefix = nn.Parameter(torch.cat([old, new.to(old)]))
        self.n_prefix, self.n_registers = self.n_prefix + n, n
        if isinstance(getattr(self, "config", None), dict):
            self.config["registers"] = n
