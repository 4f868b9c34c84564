"""MLP probe: solves what a linear probe cannot (XOR-like classes), and runs from evaluate."""

from __future__ import annotations

import numpy as np

from selfsup.cli import main
from selfsup.evaluation.linear import linear_probe
from selfsup.evaluation.mlp import mlp_probe


def xor(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    x = x[np.abs(x).min(axis=1) > 0.1]  # a margin around the axes
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)


def test_mlp_solves_xor_where_the_linear_probe_cannot() -> None:
    x, y = xor(800, 0)
    xt, yt = xor(400, 1)
    mlp_pred, details = mlp_probe(x, y, xt, seed=0)
    linear_pred, _ = linear_probe(x, y, xt, seed=0)
    assert (mlp_pred == yt).mean() > 0.95 and details["early_stopping"]
    assert (linear_pred == yt).mean() < 0.7  # no line separates XOR


def test_evaluate_reports_the_mlp_probe(iris_run, tmp_path) -> None:
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(iris_run),
                "--data",
                "builtin:iris",
                "--protocol",
                "mlp",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert "| pretrained | mlp |" in summary and "**mlp**" in summary
