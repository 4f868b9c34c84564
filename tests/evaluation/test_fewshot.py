"""Few-shot episodes: separable data gives 100%, the interval shrinks with episodes, bad shots are refused."""

from __future__ import annotations

import numpy as np
import pytest

from selfsup.cli import main
from selfsup.errors import SelfsupError
from selfsup.evaluation.fewshot import few_shot


def clusters(n_per_class: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(4) * 10
    x = np.concatenate([c + spread * rng.standard_normal((n_per_class, 4)) for c in centres])
    return x, np.repeat(np.arange(4), n_per_class)


def test_separable_classes_are_solved_with_one_shot() -> None:
    x, y = clusters(20, 0.1, 0)
    xt, yt = clusters(10, 0.1, 1)
    rows = few_shot(x, y, xt, yt, shots=(1, 5), episodes=10)
    assert [r["protocol"] for r in rows] == ["1-shot", "5-shot"]
    assert all(r["accuracy"] == 1.0 for r in rows)


def test_interval_shrinks_with_more_episodes_and_more_shots_help() -> None:
    x, y = clusters(30, 6.0, 0)  # overlapping classes: episodes differ
    xt, yt = clusters(30, 6.0, 1)
    few = few_shot(x, y, xt, yt, shots=(1,), episodes=10)[0]
    many = few_shot(x, y, xt, yt, shots=(1,), episodes=400)[0]
    assert many["ci_high"] - many["ci_low"] < few["ci_high"] - few["ci_low"]
    one, ten = few_shot(x, y, xt, yt, shots=(1, 10), episodes=200)
    assert ten["accuracy"] > one["accuracy"]


def test_too_many_shots_are_refused() -> None:
    x, y = clusters(3, 0.1, 0)
    with pytest.raises(SelfsupError, match="need 5 training samples per class"):
        few_shot(x, y, x, y, shots=(5,))


def test_evaluate_reports_few_shot_rows(iris_run, tmp_path) -> None:
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(iris_run),
                "--data",
                "builtin:iris",
                "--protocol",
                "knn,fewshot",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert "| pretrained | 5-shot |" in summary and "| random-init | 10-shot |" in summary
    assert "**k-shot**" in summary
