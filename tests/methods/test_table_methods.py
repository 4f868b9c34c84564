"""SCARF and VIME train on real breast_cancer rows; their objectives match hand-written ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn

import selfsup.methods.scarf
import selfsup.methods.vime
from selfsup.encoders import build_encoder
from selfsup.encoders.table import table_encoder_config
from selfsup.errors import SelfsupError
from selfsup.methods import build_method
from selfsup.views import ViewSpec

SMALL_ENCODERS = {"mlp": {"width": 64, "depth": 2}, "ft_transformer": {"d_token": 32, "n_layers": 2, "n_heads": 4}}
SMALL_HEADS = {"scarf": {"hidden_dim": 64, "projection_dim": 32}, "vime": {}}
N_NUMERIC, N_FEATURES = 30, 32  # 30 standardised numeric columns + 2 category-code columns


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table() -> tuple[torch.Tensor, dict]:
    """breast_cancer laid out as docs/modalities.md says: 30 standardised numeric columns, then the
    quartile of 'mean radius' and the tertile of 'worst texture' as category codes (1..K)."""
    data = load_breast_cancer()
    raw = data.data
    numeric = (raw - raw.mean(0)) / raw.std(0)
    radius, texture = raw[:, 0], raw[:, list(data.feature_names).index("worst texture")]
    codes = np.stack(
        [
            1 + np.digitize(radius, np.quantile(radius, [0.25, 0.5, 0.75])),
            1 + np.digitize(texture, np.quantile(texture, [1 / 3, 2 / 3])),
        ],
        axis=1,
    )
    schema = {
        "numeric": [
            {"name": n, "mean": float(m), "std": float(s)}
            for n, m, s in zip(data.feature_names, raw.mean(0), raw.std(0))
        ],
        "indicators": [],
        "categorical": [
            {"name": "radius_bin", "categories": ["q1", "q2", "q3", "q4"]},
            {"name": "texture_bin", "categories": ["low", "mid", "high"]},
        ],
        "label": "target",
        "classes": list(data.target_names),
        "ignored": [],
        "dropped": [],
    }
    x = torch.tensor(np.concatenate([numeric, codes], axis=1), dtype=torch.float32)
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))], schema


def corrupt(x: torch.Tensor, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SCARF/VIME corruption, as the tabular views do it: each entry, with probability ``p``, becomes
    the same column's value in a uniformly drawn row. Returns the corrupted rows and the drawn mask."""
    n, f = x.shape
    chosen = torch.rand(n, f, generator=generator) < p
    rows = torch.randint(0, n, (n, f), generator=generator)
    return torch.where(chosen, x[rows, torch.arange(f)], x), chosen


def make(method: str, encoder: str, schema: dict, **args) -> nn.Module:
    config = table_encoder_config(encoder, schema, **SMALL_ENCODERS[encoder])
    return build_method(method, build_encoder(config), SMALL_HEADS[method] | args)


def test_methods_are_tabular_and_ask_for_the_original_rows() -> None:
    for name in ("scarf", "vime"):
        cls = selfsup.methods.base.method_class(name)
        assert cls.modalities == ("tabular",)
        assert cls.views == ViewSpec(n_global=1, original=True)
        assert cls.default_lr == 1e-3
    assert selfsup.methods.scarf.SCARFConfig().temperature == 1.0
    assert selfsup.methods.vime.VIMEConfig().alpha == 2.0


@pytest.mark.parametrize("method", ["scarf", "vime"])
@pytest.mark.parametrize("encoder", ["mlp", "ft_transformer"])
def test_method_trains(method: str, encoder: str, table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make(method, encoder, schema)
    x = x_all[:64]
    views = [x, corrupt(x, 0.6 if method == "scarf" else 0.3, torch.Generator().manual_seed(0))[0]]
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        out = model.training_loss(views)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert all(np.isfinite(losses))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert out.embedding.shape == (64, model.encoder.embed_dim)
    after = model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)
    if method == "vime":
        assert set(out.logs) == {"mask_loss", "reconstruction_loss"}
        assert all(type(v) is float for v in out.logs.values())


def test_scarf_loss_is_infonce_clean_anchors_vs_corrupted_rows(table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make("scarf", "mlp", schema, temperature=0.5).eval()  # eval: no batch-statistics noise
    x = x_all[:64]
    corrupted = corrupt(x, 0.6, torch.Generator().manual_seed(1))[0]
    out = model.training_loss([x, corrupted])
    with torch.no_grad():
        z = F.normalize(model.head(model.encoder(x)), dim=1)
        zc = F.normalize(model.head(model.encoder(corrupted)), dim=1)
        # row i: -log softmax_k(<z_i, zc_k> / t)[i], averaged; no MoCo-style 2t factor
        expected = -torch.log_softmax(z @ zc.T / 0.5, dim=1).diagonal().mean()
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert torch.equal(out.embedding, model.encoder(x))


def test_scarf_identical_views_score_better_than_heavily_corrupted_ones(table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make("scarf", "mlp", schema).eval()
    x = x_all[:128]
    with torch.no_grad():
        identical = model.training_loss([x, x.clone()]).loss.item()
        light = model.training_loss([x, corrupt(x, 0.2, torch.Generator().manual_seed(2))[0]]).loss.item()
        heavy = model.training_loss([x, corrupt(x, 0.9, torch.Generator().manual_seed(2))[0]]).loss.item()
    # identical views: each positive has the highest cosine similarity (1), so p(positive) >= 1/B
    assert identical <= np.log(128)
    assert identical < light < heavy


def test_vime_mask_target_is_the_corrupted_positions(table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make("vime", "mlp", schema).eval()
    x = x_all[:64].clone()
    x[:, 3] = 0.5  # a constant column: swapping its values changes nothing, so nothing is to be found there
    x_tilde, chosen = corrupt(x, 0.3, torch.Generator().manual_seed(3))
    changed = (x_tilde != x).float()
    assert changed[:, 3].sum() == 0 and chosen[:, 3].sum() > 0
    assert changed.sum() > 0 and (changed.bool() <= chosen).all()  # changed positions were all drawn
    out = model.training_loss([x, x_tilde])
    with torch.no_grad():
        logits = model.mask_head(model.encoder(x_tilde))
    assert np.isclose(out.logs["mask_loss"], F.binary_cross_entropy_with_logits(logits, changed).item(), rtol=1e-5)
    assert not np.isclose(
        out.logs["mask_loss"], F.binary_cross_entropy_with_logits(logits, chosen.float()).item(), rtol=1e-3
    )


def test_vime_reconstructs_numbers_by_squared_error_and_categories_by_cross_entropy(table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make("vime", "ft_transformer", schema, alpha=3.0).eval()
    x = x_all[:64]
    x_tilde = corrupt(x, 0.3, torch.Generator().manual_seed(4))[0]
    out = model.training_loss([x, x_tilde])
    with torch.no_grad():
        estimate = model.feature_head(model.encoder(x_tilde))
    assert estimate.shape == (64, N_NUMERIC + 5 + 4)  # 30 numbers, then 4+1 and 3+1 category logits
    squared = (estimate[:, :N_NUMERIC] - x[:, :N_NUMERIC]).square().sum(1)
    radius_ce = F.cross_entropy(estimate[:, 30:35], x[:, 30].long(), reduction="none")
    texture_ce = F.cross_entropy(estimate[:, 35:39], x[:, 31].long(), reduction="none")
    assert torch.isfinite(radius_ce).all() and (radius_ce > 0).all() and (texture_ce > 0).all()
    expected = ((squared + radius_ce + texture_ce) / N_FEATURES).mean().item()
    assert np.isclose(out.logs["reconstruction_loss"], expected, rtol=1e-5)
    assert np.isclose(out.loss.item(), out.logs["mask_loss"] + 3.0 * expected, rtol=1e-5)
    with torch.no_grad():
        assert torch.equal(out.embedding, model.encoder(x))  # the clean rows' embedding


@pytest.mark.parametrize("encoder", ["mlp", "ft_transformer"])
def test_vime_on_numbers_only_reconstructs_by_squared_error(encoder: str, table) -> None:
    x_all, schema = table
    torch.manual_seed(0)
    model = make("vime", encoder, schema | {"categorical": []}).eval()
    x = x_all[:32, :N_NUMERIC]
    x_tilde = corrupt(x, 0.3, torch.Generator().manual_seed(5))[0]
    out = model.training_loss([x, x_tilde])
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        expected = F.mse_loss(model.feature_head(model.encoder(x_tilde)), x).item()
    assert np.isclose(out.logs["reconstruction_loss"], expected, rtol=1e-5)


def test_vime_refuses_an_encoder_without_a_table_schema() -> None:
    encoder = nn.Linear(4, 8)
    encoder.embed_dim, encoder.config = 8, {"modality": "image"}
    with pytest.raises(SelfsupError, match="VIME needs a tabular encoder"):
        build_method("vime", encoder)


def test_bad_arguments_are_named(table) -> None:
    _, schema = table
    with pytest.raises(SelfsupError, match="alpha"):
        make("vime", "mlp", schema, alpha=-1.0)
    with pytest.raises(SelfsupError, match="temperature"):
        make("scarf", "mlp", schema, temperature=0.0)
