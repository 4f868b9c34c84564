"""The class-incremental split: which classes each task holds, per-task probes on their own classes, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.evaluation.ncm import ncm_predict
from selfsup.evaluation.tasks import class_tasks, mean_over_seeds
from selfsup.modalities.image import encoder_config, raw_features


def test_tasks_are_consecutive_class_groups() -> None:
    assert class_tasks(10, 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # Split-MNIST
    assert class_tasks(10, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert class_tasks(4, 2) == [[0, 1], [2, 3]]


@pytest.mark.parametrize(
    ("n_classes", "n_tasks", "message"),
    [
        (10, 1, "between 2 and 5"),
        (10, 6, "between 2 and 5 .* got 6"),
        (3, 2, "at least 4 classes .* has 3"),
    ],
)
def test_refusals(n_classes: int, n_tasks: int, message: str) -> None:
    with pytest.raises(SelfsupError, match=message):
        class_tasks(n_classes, n_tasks)


def test_options_refuse_before_any_work() -> None:
    with pytest.raises(SelfsupError, match="at least 2"):
        EvaluationOptions(tasks=1)
    with pytest.raises(SelfsupError, match="add one of them to --protocol"):
        EvaluationOptions(tasks=2, protocols=("fewshot",))


def test_each_task_probes_its_own_classes_on_digits(digits, tmp_path) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", digits, 16)).eval()
    result = evaluate(encoder, digits, EvaluationOptions(protocols=("ncm",), tasks=5), out=tmp_path)
    tasks = result.meta["tasks"]
    assert tasks["classes"] == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"], ["8", "9"]]
    assert "task-incremental" in tasks["scenario"]
    raw = next(r for r in tasks["rows"] if r["encoder"] == "raw-input")
    # by hand: the raw pixels' nearest class mean among each task's two classes, on that task's test digits
    train_x, test_x = raw_features(digits.train.x, encoder.config), raw_features(digits.test.x, encoder.config)
    train_y, test_y = digits.train.y.numpy(), digits.test.y.numpy()
    expected = []
    for pair in ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9]):
        fit, scored = np.isin(train_y, pair), np.isin(test_y, pair)
        pred, _ = ncm_predict(train_x[fit], train_y[fit], test_x[scored])
        expected.append(float(np.mean(pred == test_y[scored])))
    assert raw["per_task"] == pytest.approx(expected) and raw["accuracy"] == pytest.approx(np.mean(expected))
    assert raw["n_test"] == [int(np.isin(test_y, pair).sum()) for pair in ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9])]
    # two classes are easier to tell apart than ten
    ten = next(r for r in result.rows if (r["encoder"], r["protocol"]) == ("raw-input", "ncm"))
    assert raw["accuracy"] > ten["accuracy"]
    saved = json.loads((tmp_path / "results.json").read_text())["meta"]["tasks"]
    assert saved["rows"] == tasks["rows"]
    summary = (tmp_path / "summary.md").read_text()
    assert "## Class-incremental split: 5 tasks" in summary and "task 1: 0, 1; task 2: 2, 3" in summary
    assert f"| raw-input | ncm | {100 * expected[0]:.2f}% |" in summary
    assert 'id="tasks"' in (tmp_path / "report.html").read_text()


def test_mean_over_seeds() -> None:
    rows = [
        [{"encoder": "e", "protocol": "knn", "accuracy": 0.75, "per_task": [1.0, 0.5], "n_test": [4, 4]}],
        [{"encoder": "e", "protocol": "knn", "accuracy": 0.5, "per_task": [0.5, 0.5], "n_test": [4, 4]}],
    ]
    (mean,) = mean_over_seeds(rows)
    assert mean["per_task"] == [0.75, 0.5] and mean["accuracy"] == 0.625 and mean["per_seed"] == [0.75, 0.5]


def test_the_cli_refuses_too_many_tasks_in_one_line(iris_run, tmp_path, capsys) -> None:
    argv = ["evaluate", "--encoder", str(iris_run), "--data", "builtin:iris", "--out", str(tmp_path / "e")]
    assert main([*argv, "--tasks", "1"]) == EXIT_USER_ERROR
    assert "--tasks must be at least 2" in capsys.readouterr().err
    assert main([*argv, "--tasks", "2"]) == EXIT_USER_ERROR  # iris has 3 classes
    err = capsys.readouterr().err.strip()
    assert "at least 4 classes" in err and len(err.splitlines()) == 1
