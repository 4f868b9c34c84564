"""Table encoders: an MLP with per-column category embeddings, and the FT-Transformer.

Both read ``x`` laid out by the table schema (``docs/modalities.md``): the standardised numeric
columns, then the missing-value indicators, then one category code per categorical column (as a
float; ``0`` = missing or unseen, ``1..K`` = ``categories[code - 1]``). The config carries the
column layout (``columns``: how many numeric and indicator columns, the cardinality of every categorical
one); the schema itself (names, statistics, vocabularies) is the reader's, in the encoder's preprocessing.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import Tokenizer, TokenTransformer
from selfsup.errors import SelfsupError, unknown_name

ENCODERS = {
    "mlp": "MLP over standardised columns and per-column category embeddings (Linear-Norm-ReLU blocks)",
    "ft_transformer": "FT-Transformer (Gorishniy et al. 2021): one token per column, [CLS] token, Transformer",
}

# name -> hyperparameter -> (kind, default); kind: "int" (>= 1), "dropout" (in [0, 1)), "positive", or choices
_ARGS: dict[str, dict[str, tuple[Any, Any]]] = {
    # SCARF's encoders are 256-unit ReLU MLPs; depth 3 keeps pre-training fast on a CPU.
    "mlp": {
        "width": ("int", 256),
        "depth": ("int", 3),
        "embedding_dim": ("int", 8),
        "dropout": ("dropout", 0.0),
        "norm": (("batch", "layer", "none"), "batch"),
    },
    # The paper's default is d_token 192 with 8 heads; 64/4 is the small variant for a 2-core CPU.
    "ft_transformer": {
        "d_token": ("int", 64),
        "n_layers": ("int", 3),
        "n_heads": ("int", 4),
        "ffn_factor": ("positive", 4 / 3),
        "attention_dropout": ("dropout", 0.1),
        "ffn_dropout": ("dropout", 0.05),
        "residual_dropout": ("dropout", 0.0),
    },
}


def schema_columns(schema: dict[str, Any]) -> dict[str, Any]:
    """The layout a schema gives ``x``: numeric and indicator column counts, and ``len(categories) + 1`` for
    each categorical column (the extra slot is code 0, missing or unseen)."""
    return {
        "numeric": len(schema.get("numeric", [])),
        "indicators": len(schema.get("indicators", [])),
        "cardinalities": [len(c["categories"]) + 1 for c in schema.get("categorical", [])],
    }


def table_layout(config: dict[str, Any]) -> tuple[int, list[int]]:
    """``(n_continuous, cardinalities)`` of a table encoder config (or of a schema): numeric + indicator column
    count, and each categorical column's cardinality."""
    columns = config["columns"] if "columns" in config else schema_columns(config.get("schema", config))
    return int(columns["numeric"]) + int(columns["indicators"]), [int(c) for c in columns["cardinalities"]]


def _check_columns(columns: Any) -> dict[str, Any]:
    fix = "rebuild the config with table_encoder_config()."
    if (
        not isinstance(columns, dict)
        or not all(isinstance(columns.get(key), int) and columns[key] >= 0 for key in ("numeric", "indicators"))
        or not isinstance(columns.get("cardinalities"), list)
        or not all(isinstance(c, int) and c >= 1 for c in columns["cardinalities"])
    ):
        raise SelfsupError(f"the table encoder's columns {columns!r} are not a column layout; {fix}")
    if columns["numeric"] + columns["indicators"] + len(columns["cardinalities"]) == 0:
        raise SelfsupError("the table schema has no feature columns; the table needs at least one usable column.")
    return dict(columns)


def category_codes(codes: torch.Tensor, cardinalities: torch.Tensor) -> torch.Tensor:
    """Float codes ``(B, C)`` -> long indices: rounded, and ``0`` (unseen) wherever a code is not a
    valid ``0..K`` (negative, too large, NaN, inf), so garbage can never index out of range."""
    codes = torch.nan_to_num(codes.float(), nan=0.0, posinf=-1.0, neginf=-1.0).round()
    valid = (codes >= 0) & (codes < cardinalities.to(codes.dtype))
    return torch.where(valid, codes, torch.zeros_like(codes)).long()


def _check_schema(schema: Any) -> dict[str, Any]:
    fix = "pass the schema fitted by the table reader (encoder_config['schema'])."
    if not isinstance(schema, dict):
        raise SelfsupError(f"the table schema must be a dict, got {type(schema).__name__}; {fix}")
    for key in ("numeric", "indicators", "categorical"):
        if not isinstance(schema.get(key, []), list):
            raise SelfsupError(f"table schema '{key}' must be a list, got {type(schema[key]).__name__}; {fix}")
    for column in schema.get("categorical", []):
        if not isinstance(column, dict) or not isinstance(column.get("categories"), list):
            raise SelfsupError(f"table schema categorical entry {column!r} has no 'categories' list; {fix}")
    return copy.deepcopy(schema)


def _check_arg(name: str, key: str, kind: Any, value: Any) -> Any:
    bad = f"encoder argument {key}={value!r} for '{name}'"
    if isinstance(kind, tuple):
        if value not in kind:
            raise SelfsupError(f"{bad}: choose from {', '.join(kind)}.")
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise SelfsupError(f"{bad}: expected a number.") from None
    if kind == "int":
        if not math.isfinite(number) or number != int(number) or number < 1:
            raise SelfsupError(f"{bad}: expected a whole number >= 1.")
        return int(number)
    if kind == "dropout" and not 0 <= number < 1:
        raise SelfsupError(f"{bad}: expected a dropout rate in [0, 1).")
    if kind == "positive" and not (number > 0 and math.isfinite(number)):
        raise SelfsupError(f"{bad}: expected a number > 0.")
    return number


def table_encoder_config(name: str, columns: dict[str, Any], **encoder_args: Any) -> dict[str, Any]:
    """The JSON-serialisable description from which a table encoder is rebuilt.

    ``columns``: the layout (``schema_columns``), or the schema the reader fitted, whose layout is taken.
    ``encoder_args`` override the hyperparameters of ``name`` (see ``_ARGS`` for names and defaults).
    """
    if name not in ENCODERS:
        raise unknown_name("tabular encoder", name, ENCODERS)
    known = _ARGS[name]
    unknown = sorted(set(encoder_args) - set(known))
    if unknown:
        raise SelfsupError(
            f"unknown encoder argument(s) {', '.join(unknown)} for '{name}'; its arguments: {', '.join(known)}."
        )
    if "cardinalities" not in columns:  # a schema
        columns = schema_columns(_check_schema(columns))
    columns = _check_columns(columns)
    n_continuous, cardinalities = table_layout({"columns": columns})
    hyper = {key: _check_arg(name, key, kind, encoder_args.get(key, default)) for key, (kind, default) in known.items()}
    if name == "ft_transformer" and hyper["d_token"] % hyper["n_heads"]:
        raise SelfsupError(
            f"ft_transformer d_token={hyper['d_token']} must be a multiple of "
            f"n_heads={hyper['n_heads']}; change one of them."
        )
    return {
        "modality": "tabular",
        "name": name,
        "columns": columns,
        "n_features": n_continuous + len(cardinalities),
        **hyper,
    }


class _TableEncoder(nn.Module):
    """Schema bookkeeping shared by the table encoders: shape check and column split."""

    _cards: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.n_continuous, cardinalities = table_layout(config)
        self.cardinalities = cardinalities
        self.n_features = self.n_continuous + len(cardinalities)
        self.register_buffer("_cards", torch.tensor(cardinalities, dtype=torch.long), persistent=False)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check ``x`` is ``(B, F)`` and return continuous columns ``(B, n_continuous)`` (NaN -> 0, the
        mean) and category indices ``(B, n_categorical)``."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise SelfsupError(
                f"the encoder takes {self.n_features} table features, got shape {tuple(x.shape)}; "
                "read the table with the encoder's schema."
            )
        x = x.float()
        continuous = torch.nan_to_num(x[:, : self.n_continuous], nan=0.0)
        return continuous, category_codes(x[:, self.n_continuous :], self._cards)


class TableMLP(_TableEncoder, Encoder):
    """Category embeddings concatenated with the continuous columns, then ``depth`` Linear-Norm-ReLU
    blocks of ``width`` units (the SCARF / VIME encoder shape). ``embed_dim = width``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        width, depth, emb = int(config["width"]), int(config["depth"]), int(config["embedding_dim"])
        self.embeddings = nn.ModuleList(nn.Embedding(card, emb) for card in self.cardinalities)
        norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": None}[config["norm"]]
        blocks: list[nn.Module] = []
        dim = self.n_continuous + emb * len(self.cardinalities)
        for _ in range(depth):
            blocks.append(nn.Linear(dim, width, bias=norm is None))
            if norm is not None:
                blocks.append(norm(width))
            blocks.append(nn.ReLU(inplace=True))
            if config["dropout"] > 0:
                blocks.append(nn.Dropout(float(config["dropout"])))
            dim = width
        self.mlp = nn.Sequential(*blocks)
        self.embed_dim: int = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        continuous, codes = self._split(x)
        parts = [continuous] + [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1))


class FeatureTokenizer(_TableEncoder, Tokenizer):
    """The FT-Transformer's feature tokenizer, one token per column (see ``encoders/tokens.py``).

    Continuous column ``j``: ``x_j * W_j + b_j``; categorical column ``j``: the embedding of its code
    + ``b_j``. The per-column bias ``b_j`` is the column's identity, so it is also the token's position.
    A token's ``patches`` content is ``(W,)`` with ``W`` the largest cardinality (at least 1): the
    value in slot 0 for a continuous column, the one-hot code for a categorical one.
    """

    spatial_dims = 0
    ordered = False

    _offsets: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        d = self.dim = int(config["d_token"])
        bound = 1 / math.sqrt(d)  # the paper's tokenizer init: U(-1/sqrt(d), 1/sqrt(d))
        self.weight = nn.Parameter(torch.empty(self.n_continuous, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(self.n_features, d).uniform_(-bound, bound))
        # one table for all categorical columns, column j's rows start at _offsets[j]; none without any
        # (an unused parameter would break DistributedDataParallel)
        self.category_embedding = nn.Embedding(sum(self.cardinalities), d) if self.cardinalities else None
        if self.category_embedding is not None:
            nn.init.uniform_(self.category_embedding.weight, -bound, bound)
        offsets = torch.tensor([0] + self.cardinalities[:-1], dtype=torch.long).cumsum(0)
        self.register_buffer("_offsets", offsets[: len(self.cardinalities)], persistent=False)
        self.width = max([1] + self.cardinalities)
        self.patch_shape = (self.width,)

    def grid(self, x: torch.Tensor) -> tuple[int, ...]:
        return (self.n_features,)

    def positions(self, n: int) -> torch.Tensor:
        return self.bias[:n]

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        continuous, codes = self._split(x)
        parts = [F.pad(continuous.unsqueeze(-1), (0, self.width - 1))]
        if self.cardinalities:
            parts.append(F.one_hot(codes, self.width).to(continuous.dtype))
        patches = torch.cat(parts, dim=1)
        return patches, torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        continuous, codes = self._split(x)
        tokens = [continuous.unsqueeze(-1) * self.weight]
        if self.category_embedding is not None:
            tokens.append(self.category_embedding(codes + self._offsets))
        h = torch.cat(tokens, dim=1) + self.bias
        return h, torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)


class FTTransformer(TokenTransformer):
    """FT-Transformer: Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular Data".

    :class:`FeatureTokenizer`, a [CLS] token first, pre-norm blocks with a ReGLU feed-forward (the
    first without its attention LayerNorm), a final LayerNorm. ``forward`` is the [CLS] token
    ``(B, d_token)``; ``forward_tokens`` the ``F`` column tokens.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        d = int(config["d_token"])
        tokenizer = FeatureTokenizer(config)
        super().__init__(
            tokenizer,
            dim=d,
            depth=int(config["n_layers"]),
            heads=int(config["n_heads"]),
            hidden=max(1, int(d * float(config["ffn_factor"]))),
            dropout=float(config["residual_dropout"]),
            attention_dropout=float(config["attention_dropout"]),
            ffn_dropout=float(config["ffn_dropout"]),
            glu=True,
            skip_first_norm=True,
            n_prefix=1,
            pool="cls",
        )
        self.config = tokenizer.config


_CLASSES: dict[str, type[Encoder]] = {"mlp": TableMLP, "ft_transformer": FTTransformer}


def build(config: dict[str, Any]) -> Encoder:
    """A freshly initialised table encoder from its config (validated as ``table_encoder_config`` does)."""
    name = config.get("name")
    if name not in ENCODERS:
        raise unknown_name("tabular encoder", str(name), ENCODERS)
    layout = config.get("columns", config.get("schema"))  # "schema": an export written before December 2026
    if layout is None:
        raise SelfsupError("the tabular encoder config has no 'columns'; build it with table_encoder_config().")
    hyper = {key: config[key] for key in _ARGS[name] if key in config}
    checked = table_encoder_config(name, layout, **hyper)
    if "n_features" in config and config["n_features"] != checked["n_features"]:
        raise SelfsupError(
            f"the encoder config says n_features={config['n_features']} but its columns make "
            f"{checked['n_features']} columns; rebuild the config with table_encoder_config()."
        )
    return _CLASSES[name](checked)
