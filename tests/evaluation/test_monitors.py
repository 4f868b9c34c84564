"""Label-free quality of a real encoder on real data, and the monitors in the evaluation report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.evaluation.monitors import MONITOR_SAMPLES, embedding_monitors, label_free, subset
from selfsup.modalities.image import encoder_config, make_views
from selfsup.views import ViewSpec


def test_label_free_on_a_real_encoder(digits) -> None:
    torch.manual_seed(0)
    config = encoder_config("small_cnn", digits, 16)
    encoder = build_encoder(config)
    views = make_views(ViewSpec(n_global=2), digits, config, {})
    x = digits.train.float_samples()[:256]
    result = label_free(encoder, x, views)
    assert 1.0 <= result["rankme"] <= encoder.embed_dim
    assert result["alignment"] > 0 and result["uniformity"] < 0 and 0 < result["embedding_spread"] < 2


def test_rankme_of_a_collapsed_and_an_isotropic_embedding() -> None:
    rng = np.random.default_rng(0)
    isotropic = rng.standard_normal((2048, 32))
    line = np.outer(rng.standard_normal(2048), rng.standard_normal(32)) + 1e-4 * rng.standard_normal((2048, 32))
    assert embedding_monitors(isotropic)["rankme"] == pytest.approx(32, rel=0.02)
    assert embedding_monitors(line)["rankme"] == pytest.approx(1, abs=0.05)
    # every point on one of two antipodal directions: uniformity is log of the mean of exp(-2 * 4) over the
    # half of the pairs that are apart (and exp(0) = 1 over the other half), close to log(1/2)
    assert embedding_monitors(np.sign(line[:, :1]) * np.ones((1, 32)))["uniformity"] == pytest.approx(
        np.log((1 + np.exp(-8)) / 2), abs=0.01
    )


def test_subset_is_fixed_by_the_seed() -> None:
    assert subset(10, 20, 0).tolist() == list(range(10))
    picked = subset(5000, MONITOR_SAMPLES, 3)
    assert len(picked) == MONITOR_SAMPLES == len(set(picked.tolist())) and picked.tolist() == sorted(picked.tolist())
    assert (picked == subset(5000, MONITOR_SAMPLES, 3)).all() and not (picked == subset(5000, MONITOR_SAMPLES, 4)).all()


def test_the_report_gives_each_encoders_monitors(digits, tmp_path) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", digits, 16)).eval()
    evaluate(encoder, digits, EvaluationOptions(protocols=("ncm",)), out=tmp_path)
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    monitors = meta["monitors"]
    assert set(monitors) == {"pretrained", "random-init", "raw-input"}
    assert 1 < monitors["raw-input"]["rankme"] <= 64 and "alignment" not in monitors["raw-input"]  # 8 x 8 pixels
    for name in ("pretrained", "random-init"):
        assert 1 < monitors[name]["rankme"] <= encoder.embed_dim
        assert 0 < monitors[name]["alignment"] < 4 and -4 <= monitors[name]["uniformity"] <= 0
    assert "1347 of the 1347 training samples" in meta["monitors_on"]
    summary, page = (tmp_path / "summary.md").read_text(), (tmp_path / "report.html").read_text()
    rankme = f"{monitors['pretrained']['rankme']:.1f}"
    assert "## Label-free monitors" in summary and f"| pretrained | {rankme} |" in summary
    assert 'id="monitors"' in page and "No labels used" in page and f"<td>{rankme}</td>" in page
