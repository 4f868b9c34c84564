"""Table views: SCARF corruption rate and source, VIME masking, noise, randomness, view spec, arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import ArrayDataset, Preprocessing, Splits
from selfsup.datasets.tables import load_breast_cancer_splits
from selfsup.errors import SelfsupError
from selfsup.modalities.table_views import TableViews
from selfsup.modalities.tabular import MAX_MARGINAL_ROWS, encoder_config, make_views
from selfsup.views import ViewSpec

REPEAT = 12  # 426 training rows x 12 x 30 features x 2 views: ~300k entries, rate error ~0.001


@pytest.fixture(scope="module")
def cancer() -> Splits:
    return load_breast_cancer_splits()


def _views(splits: Splits, spec: ViewSpec = ViewSpec(), **args) -> TableViews:
    return make_views(spec, splits, encoder_config("mlp", splits, None, None), args)


def _tie_share(x: torch.Tensor, marginal: torch.Tensor) -> float:
    """Mean over entries of P(a random marginal row holds the same value): the draws that change nothing."""
    shares = []
    for f in range(x.shape[1]):
        values, counts = np.unique(marginal[:, f].numpy(), return_counts=True)
        where = np.searchsorted(values, x[:, f].numpy())
        hit = values[np.clip(where, 0, len(values) - 1)] == x[:, f].numpy()
        shares.append(np.where(hit, counts[np.clip(where, 0, len(values) - 1)], 0) / len(marginal))
    return float(np.mean(shares))


@pytest.mark.parametrize("rate", [0.3, 0.6])
def test_corruption_changes_the_requested_share(cancer, rate):
    views = _views(cancer, corrupt_rate=rate)
    x = cancer.train.x.repeat(REPEAT, 1)
    out = views(x, torch.Generator().manual_seed(1))
    assert len(out) == 2 and all(v.shape == x.shape for v in out)
    changed = torch.stack([v != x for v in out]).double().mean().item()
    expected = rate * (1 - _tie_share(cancer.train.x, views.marginal))
    assert expected < rate  # breast cancer has repeated values (e.g. zeros), so some draws change nothing
    assert changed == pytest.approx(expected, abs=0.004)


def test_replacements_come_from_the_same_column(cancer):
    views = _views(cancer, corrupt_rate=0.6)
    x = cancer.train.x
    view = views(x, torch.Generator().manual_seed(2))[0]
    changed = view != x
    assert changed.any(0).all()
    for f in range(x.shape[1]):
        assert torch.isin(view[changed[:, f], f], views.marginal[:, f]).all()
    # the columns differ in scale, so values drawn from other columns would show up
    assert not torch.isin(view[changed[:, 0], 0], views.marginal[:, 1:]).all()


def test_randomness_is_per_row_and_per_view(cancer):
    views = _views(cancer, corrupt_rate=0.5)
    x = cancer.train.x[:1].repeat(64, 1)  # the same row 64 times
    first, second = views(x, torch.Generator().manual_seed(3))
    pattern = first != x
    assert not torch.equal(pattern[0], pattern[1])
    assert len({tuple(row.tolist()) for row in pattern}) > 60
    assert not torch.equal(first, second)


def test_generator_makes_views_reproducible(cancer):
    views = _views(cancer, corrupt_rate=0.6, mask_rate=0.2, noise_std=0.1)
    x = cancer.train.x[:50]
    a = views(x, torch.Generator().manual_seed(7))
    b = views(x, torch.Generator().manual_seed(7))
    c = views(x, torch.Generator().manual_seed(8))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_original_comes_first_unchanged(cancer):
    views = _views(cancer, ViewSpec(n_global=1, n_local=2, original=True), corrupt_rate=0.6)
    x = cancer.train.x[:20]
    out = views(x)
    assert len(out) == 4 and out[0] is x
    assert all(v.shape == x.shape and not torch.equal(v, x) for v in out[1:])
    assert views(x[:0])[1].shape == (0, x.shape[1])


def _mixed_views(**args) -> tuple[TableViews, torch.Tensor]:
    """2 standardised numeric columns, 1 indicator, 2 categorical codes."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.cat(
        [
            torch.randn(200, 2, generator=gen),
            torch.randint(0, 2, (200, 1), generator=gen),
            torch.randint(0, 5, (200, 2), generator=gen),
        ],
        dim=1,
    ).float()
    return TableViews(ViewSpec(), 2, rows, **args), rows


def test_noise_only_on_numeric_columns():
    views, rows = _mixed_views(corrupt_rate=0.0, noise_std=0.5)
    out = views(rows, torch.Generator().manual_seed(4))[0]
    assert torch.equal(out[:, 2:], rows[:, 2:])
    delta = out[:, :2] - rows[:, :2]
    assert (delta != 0).all() and delta.std().item() == pytest.approx(0.5, rel=0.1)


def test_masking_sets_entries_to_zero():
    views, rows = _mixed_views(corrupt_rate=0.0, mask_rate=0.4)
    rows = rows.repeat(20, 1) + 10.0  # nothing is 0 before masking
    out = torch.stack(views(rows, torch.Generator().manual_seed(5)))
    zero = out == 0
    assert torch.equal(out[~zero], rows.expand_as(out)[~zero])
    assert zero.double().mean().item() == pytest.approx(0.4, abs=0.01)
    all_masked = TableViews(ViewSpec(), 2, rows, corrupt_rate=0.0, mask_rate=1.0)(rows)
    assert all((v == 0).all() for v in all_masked)


def test_marginal_buffer_is_capped_and_not_saved():
    x = torch.randn(MAX_MARGINAL_ROWS + 500, 3)
    schema = {
        "numeric": [{"name": c, "mean": 0.0, "std": 1.0} for c in "abc"],
        "indicators": [],
        "categorical": [],
        "label": None,
        "classes": None,
    }
    splits = Splits(
        train=ArrayDataset(x, torch.full((len(x),), -1), [str(i) for i in range(len(x))]),
        test=None,
        name="big",
        modality="tabular",
        preprocessing=Preprocessing("tabular", {"schema": schema}),
    )
    views = make_views(ViewSpec(), splits, None, {})
    assert views.marginal.shape == (MAX_MARGINAL_ROWS, 3) and torch.isin(views.marginal[:, 0], x[:, 0]).all()
    assert "marginal" not in views.state_dict() and views.corrupt_rate == 0.6


def test_views_follow_the_encoders_columns_or_the_fitted_schema(cancer):
    """The encoder config's column layout says which columns are numeric; without a config, the schema the rows
    were read with; a config written before preprocessing.json (the schema in it) still works."""
    config = encoder_config("mlp", cancer, None, None)
    schema = cancer.preprocessing.settings["schema"]
    assert "schema" not in config and config["columns"]["numeric"] == len(schema["numeric"]) == 30
    for views in (make_views(ViewSpec(), cancer, config, {}), make_views(ViewSpec(), cancer, None, {})):
        assert views.numeric_columns == 30 and torch.equal(views.marginal, cancer.train.x.float())
    assert make_views(ViewSpec(), cancer, {"schema": schema}, {}).numeric_columns == 30
    narrow = config | {"columns": {"numeric": 20, "indicators": 0, "cardinalities": []}}
    with pytest.raises(SelfsupError, match=r"has \(426, 30\) features but the encoder's columns make 20"):
        make_views(ViewSpec(), cancer, narrow, {})


def test_view_arguments_are_checked(cancer):
    with pytest.raises(SelfsupError, match="unknown table view argument.*crop_scale.*known: corrupt_rate, mask_rate"):
        _views(cancer, crop_scale=(0.2, 1.0))
    with pytest.raises(SelfsupError, match=r"corrupt_rate must be in \[0, 1\], got 1.5"):
        _views(cancer, corrupt_rate=1.5)
    with pytest.raises(SelfsupError, match="noise_std must be a number >= 0"):
        _views(cancer, noise_std=-0.1)
    with pytest.raises(ValueError, match="expected rows"):
        _views(cancer)(cancer.train.x[:, :5])


@pytest.mark.gpu
def test_views_stay_on_the_gpu(cancer):
    views = _views(cancer, corrupt_rate=0.6).cuda()
    x = cancer.train.x.cuda()
    out = views(x, torch.Generator(device="cuda").manual_seed(0))
    assert views.marginal.is_cuda and all(v.is_cuda for v in out)
    changed = out[0] != x
    assert changed.double().mean().item() == pytest.approx(0.6, abs=0.05)
    assert torch.isin(out[0][:, 0][changed[:, 0]], views.marginal[:, 0]).all()
    noisy = _views(cancer, corrupt_rate=0.3, mask_rate=0.1, noise_std=0.1)(x, torch.Generator(device="cuda"))
    assert all(v.is_cuda for v in noisy)
