"""Table encoders on real rows (scikit-learn's breast_cancer) laid out by a hand-written schema; their config holds
the schema's column layout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from selfsup.encoders import build_encoder
from selfsup.encoders.table import (
    ENCODERS,
    FTTransformer,
    TableMLP,
    build,
    category_codes,
    schema_columns,
    table_encoder_config,
    table_layout,
)
from selfsup.errors import SelfsupError

SMALL = {"mlp": {"width": 32, "depth": 2}, "ft_transformer": {"d_token": 16, "n_layers": 2, "n_heads": 2}}


def breast_cancer_table(categorical: bool) -> tuple[torch.Tensor, dict]:
    """``x`` and schema following docs/modalities.md: 30 standardised numeric columns; with
    ``categorical``, also a missing-value indicator for 'mean area' (5% of it blanked) and two binned
    columns as category codes (quartiles of 'mean radius', tertiles of 'worst texture')."""
    data = load_breast_cancer()
    raw = data.data.astype(np.float64)
    numeric_names = list(data.feature_names)
    schema: dict = {
        "numeric": [],
        "indicators": [],
        "categorical": [],
        "label": "target",
        "classes": list(data.target_names),
        "ignored": [],
        "dropped": [],
    }
    missing = np.zeros(len(raw), dtype=bool)
    if categorical:
        missing[np.random.default_rng(0).permutation(len(raw))[: len(raw) // 20]] = True
        raw[missing, numeric_names.index("mean area")] = np.nan
    mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
    schema["numeric"] = [{"name": n, "mean": float(m), "std": float(s)} for n, m, s in zip(numeric_names, mean, std)]
    columns = [np.nan_to_num((raw - mean) / std, nan=0.0)]
    if categorical:
        schema["indicators"] = ["mean area"]
        columns.append(missing[:, None].astype(np.float64))
        radius = data.data[:, numeric_names.index("mean radius")]
        texture = data.data[:, numeric_names.index("worst texture")]
        radius_codes = 1 + np.digitize(radius, np.quantile(radius, [0.25, 0.5, 0.75]))
        texture_codes = 1 + np.digitize(texture, np.quantile(texture, [1 / 3, 2 / 3]))
        schema["categorical"] = [
            {"name": "radius_bin", "categories": ["q1", "q2", "q3", "q4"]},
            {"name": "texture_bin", "categories": ["low", "mid", "high"]},
        ]
        columns.append(np.stack([radius_codes, texture_codes], axis=1).astype(np.float64))
    return torch.tensor(np.concatenate(columns, axis=1), dtype=torch.float32), schema


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def numeric_table() -> tuple[torch.Tensor, dict]:
    return breast_cancer_table(categorical=False)


@pytest.fixture(scope="module")
def mixed_table() -> tuple[torch.Tensor, dict]:
    return breast_cancer_table(categorical=True)


def test_mixed_table_follows_the_contract_layout(mixed_table) -> None:
    x, schema = mixed_table
    assert x.shape == (569, 30 + 1 + 2)
    assert set(x[:, 30].tolist()) == {0.0, 1.0}
    assert set(x[:, 31].tolist()) == {1.0, 2.0, 3.0, 4.0} and set(x[:, 32].tolist()) == {1.0, 2.0, 3.0}
    assert table_encoder_config("mlp", schema)["n_features"] == 33


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("table", ["numeric_table", "mixed_table"])
def test_output_shape_and_embed_dim(name: str, table: str, request) -> None:
    torch.manual_seed(0)
    x, schema = request.getfixturevalue(table)
    encoder = build(table_encoder_config(name, schema))
    assert isinstance(encoder, {"mlp": TableMLP, "ft_transformer": FTTransformer}[name])
    assert encoder.embed_dim == {"mlp": 256, "ft_transformer": 64}[name]  # the defaults
    out = encoder(x[:16])
    assert out.shape == (16, encoder.embed_dim) and torch.isfinite(out).all()
    if name == "ft_transformer":
        encoder.eval()  # no dropout: one token per column, valid everywhere; forward is the [CLS] token
        tokens, valid = encoder.forward_tokens(x[:16])
        assert tokens.shape == (16, x.shape[1], 64) and valid.all()
        out = encoder.run(x[:16])
        assert torch.equal(out.tokens, tokens) and torch.equal(out.pooled, encoder(x[:16]))


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("table", ["numeric_table", "mixed_table"])
def test_every_parameter_gets_a_gradient(name: str, table: str, request) -> None:
    x, schema = request.getfixturevalue(table)  # an unused parameter would break DDP
    encoder = build(table_encoder_config(name, schema, **SMALL[name]))
    encoder(x[:32]).square().mean().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_category_codes_are_rounded_and_invalid_codes_become_unseen() -> None:
    codes = torch.tensor([[-3.0, 0.0, 2.4, 2.6, 4.0, 5.0, 99.0, math.nan, math.inf, -math.inf]])
    got = category_codes(codes.T, torch.tensor([5])).T  # cardinality 5: codes 0..4
    assert got.tolist() == [[0, 0, 2, 3, 4, 0, 0, 0, 0, 0]]
    assert got.dtype == torch.long


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_unseen_and_garbage_codes_embed_as_the_unseen_slot(name: str, mixed_table) -> None:
    x, schema = mixed_table
    encoder = build(table_encoder_config(name, schema, **SMALL[name])).eval()
    rows = x[:6].clone().repeat(6, 1)
    rows[:6, 31] = 0.0  # unseen / missing category
    for i, garbage in enumerate([-1.0, 5.0, 1e9, math.nan, math.inf], start=1):
        rows[6 * i : 6 * (i + 1), 31] = garbage
    with torch.no_grad():
        out = encoder(rows)
    assert torch.isfinite(out).all()
    for i in range(1, 6):
        assert torch.allclose(out[6 * i : 6 * (i + 1)], out[:6])
    with torch.no_grad():  # a real code gives a different embedding than the unseen slot
        assert not torch.allclose(encoder(x[:6]), out[:6])


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_wrong_feature_count_is_refused(name: str, mixed_table) -> None:
    x, schema = mixed_table
    encoder = build(table_encoder_config(name, schema, **SMALL[name]))
    with pytest.raises(SelfsupError, match=r"takes 33 table features, got shape \(4, 30\); read the table"):
        encoder(x[:4, :30])
    with pytest.raises(SelfsupError, match="takes 33 table features"):
        encoder(x[0])


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_config_is_json_and_rebuilds_the_same_architecture(name: str, mixed_table) -> None:
    x, schema = mixed_table
    config = table_encoder_config(name, schema, **SMALL[name])
    assert config["modality"] == "tabular" and config["name"] == name and config["n_features"] == 33
    loaded = json.loads(json.dumps(config))
    assert loaded == config
    first, second = build(config).eval(), build_encoder(loaded).eval()
    second.load_state_dict(first.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(first(x[:8]), second(x[:8]))
    assert second.config == config


def test_encoder_args_override_defaults_and_are_validated(numeric_table) -> None:
    _, schema = numeric_table
    config = table_encoder_config("mlp", schema, width="128", depth=2.0, norm="layer")
    assert (config["width"], config["depth"], config["norm"]) == (128, 2, "layer")
    assert build(config).embed_dim == 128
    for bad in [
        {"depth": 0},
        {"width": 1.5},
        {"width": True},
        {"dropout": 1.0},
        {"norm": "group"},
        {"width": "wide"},
        {"depth": float("inf")},
        {"width": float("nan")},
        {"dropout": -0.1},
    ]:
        with pytest.raises(SelfsupError, match="^encoder argument"):
            table_encoder_config("mlp", schema, **bad)
    with pytest.raises(SelfsupError, match="multiple of n_heads=4"):
        table_encoder_config("ft_transformer", schema, d_token=30)


def test_unknown_encoder_name_and_argument(numeric_table) -> None:
    _, schema = numeric_table
    with pytest.raises(SelfsupError, match="unknown tabular encoder 'mpl'. Did you mean 'mlp'"):
        table_encoder_config("mpl", schema)
    with pytest.raises(SelfsupError, match="widht.*its arguments: width, depth"):
        table_encoder_config("mlp", schema, widht=64)
    with pytest.raises(SelfsupError, match="unknown tabular encoder"):
        build({"modality": "tabular", "name": "resnet", "columns": schema_columns(schema)})


def test_bad_schema_and_config_are_refused(numeric_table) -> None:
    _, schema = numeric_table
    with pytest.raises(SelfsupError, match="no feature columns"):
        table_encoder_config("mlp", {"numeric": [], "indicators": [], "categorical": []})
    with pytest.raises(SelfsupError, match="no 'categories' list"):
        table_encoder_config("mlp", schema | {"categorical": [{"name": "city"}]})
    config = table_encoder_config("mlp", schema) | {"n_features": 31}
    with pytest.raises(SelfsupError, match="n_features=31 but its columns make 30 columns"):
        build(config)
    with pytest.raises(SelfsupError, match="no feature columns"):
        table_encoder_config("mlp", {"numeric": 0, "indicators": 0, "cardinalities": []})
    for bad in (
        {"numeric": -1, "indicators": 0, "cardinalities": []},
        {"numeric": 2, "indicators": "0", "cardinalities": []},
        {"numeric": 2, "indicators": 0, "cardinalities": [0]},
        {"numeric": 2, "indicators": 0, "cardinalities": 3},
    ):
        with pytest.raises(SelfsupError, match="are not a column layout"):
            table_encoder_config("mlp", bad)
    with pytest.raises(SelfsupError, match="has no 'columns'"):
        build({"modality": "tabular", "name": "mlp", "width": 32})


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_the_config_holds_the_column_layout_not_the_schema(name: str, mixed_table) -> None:
    """The schema (names, statistics, vocabularies) is the reader's, in the encoder's preprocessing; the
    config keeps only the layout the network needs, and is the same built from either."""
    x, schema = mixed_table
    config = table_encoder_config(name, schema, **SMALL[name])
    assert "schema" not in config
    assert config["columns"] == schema_columns(schema) == {"numeric": 30, "indicators": 1, "cardinalities": [5, 4]}
    assert table_encoder_config(name, schema_columns(schema), **SMALL[name]) == config
    assert table_layout(config) == table_layout(schema) == (31, [5, 4])
    # a config saved before December 2026 carried the schema: it still builds the same network
    old = {key: value for key, value in config.items() if key != "columns"} | {"schema": schema}
    first, second = build(config).eval(), build(old).eval()
    second.load_state_dict(first.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(first(x[:8]), second(x[:8]))
    assert second.config == config
