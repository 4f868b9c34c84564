"""Label efficiency: stratified label subsets, a curve that reaches the full probe, the plot in the report."""

from __future__ import annotations

import numpy as np

from selfsup.cli import main
from selfsup.evaluation.label_efficiency import label_efficiency, label_subset
from selfsup.evaluation.linear import linear_probe


def test_label_subset_is_stratified_with_one_per_class_at_least() -> None:
    y = np.repeat(np.arange(3), [100, 50, 5])
    idx = label_subset(y, 0.1, seed=0)
    assert list(np.bincount(y[idx])) == [10, 5, 1]  # 10% rounded, at least one of the smallest class
    assert len(set(idx)) == len(idx) and np.array_equal(idx, np.sort(idx))
    assert not np.array_equal(idx, label_subset(y, 0.1, seed=1))


def test_curve_points_and_the_full_point_is_the_linear_probe() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 200)
    x = rng.standard_normal((400, 5)) + 1.5 * y[:, None]  # overlapping classes
    yt = np.repeat(np.arange(2), 100)
    xt = rng.standard_normal((200, 5)) + 1.5 * yt[:, None]
    rows = label_efficiency(x, y, xt, yt, seed=0)
    assert [r["protocol"] for r in rows] == ["linear@1%", "linear@10%", "linear@100%"]
    assert [r["n_train"] for r in rows] == [4, 40, 400]
    full, _ = linear_probe(x, y, xt, seed=0)
    assert rows[-1]["accuracy"] == float((full == yt).mean())
    assert rows[-1]["accuracy"] >= rows[0]["accuracy"]


def test_evaluate_writes_the_curve(iris_run, tmp_path) -> None:
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(iris_run),
                "--data",
                "builtin:iris",
                "--protocol",
                "linear,labels",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    assert (tmp_path / "eval" / "label_efficiency.png").stat().st_size > 1000
    assert "| raw-input | linear@10% |" in (tmp_path / "eval" / "summary.md").read_text()
