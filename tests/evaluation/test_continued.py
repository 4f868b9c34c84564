"""Forgetting, measured: evaluate several labeled sets before and after continued pre-training."""

from __future__ import annotations

import json
import shutil

import pytest
from sklearn.datasets import load_iris

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate

TINY = ["--epochs", "2", "--max-steps", "3", "--batch-size", "32"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A source run on iris, a run continued from it, and iris split into two labeled CSVs."""
    root = tmp_path_factory.mktemp("continued")
    frame = load_iris(as_frame=True).frame.sample(frac=1.0, random_state=0)
    first, second = root / "a.csv", root / "b.csv"
    frame.iloc[:75].to_csv(first, index=False)
    frame.iloc[75:].to_csv(second, index=False)
    source, continued = root / "source", root / "continued"
    assert (
        main(["pretrain", "--data", str(first), "--label", "target", "--method", "simclr", "--out", str(source), *TINY])
        == 0
    )
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(second),
                "--label",
                "target",
                "--method",
                "byol",
                "--init",
                str(source),
                "--out",
                str(continued),
                *TINY,
            ]
        )
        == 0
    )
    return source, continued, first, second


@pytest.mark.slow
def test_before_and_after_on_two_sets(runs, tmp_path) -> None:
    source, continued, first, second = runs
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(continued),
                "--data",
                str(first),
                "--data",
                str(second),
                "--label",
                "target",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "before_after.json").read_text())
    assert [(r["data"], r["protocol"]) for r in rows] == [
        (str(d), p) for d in (first, second) for p in ("knn", "linear")
    ]
    # "before" is the --init encoder, evaluated on the same split and seed
    options = DataOptions(label="target")
    for data in (first, second):
        expected = evaluate(source, str(data), EvaluationOptions(read=options))
        knn = next(r["accuracy"] for r in expected.rows if r["encoder"] == "pretrained" and r["protocol"] == "knn")
        row = next(r for r in rows if r["data"] == str(data) and r["protocol"] == "knn")
        assert row["before"] == knn and row["change"] == row["after"] - row["before"]
    assert (out / "before_after.md").is_file() and len(list(out.glob("*/results.json"))) == 2
    # --overwrite replaces the whole earlier report (a set it had and this one has not too); a user's file stays
    (first_report,) = out.glob("0-*")
    shutil.copytree(first_report, out / "7-old.csv")
    (out / "before_after.md").write_text("old")
    (out / "notes.txt").write_text("mine")
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(continued),
                "--data",
                str(first),
                "--data",
                str(second),
                "--label",
                "target",
                "--out",
                str(out),
                "--overwrite",
                "--protocol",
                "knn",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["before_after.md", "before_after.json", "notes.txt", first_report.name, next(out.glob("1-*")).name]
    )
    assert "old" not in (out / "before_after.md").read_text()
    assert [r["protocol"] for r in json.loads((out / "before_after.json").read_text())] == ["knn", "knn"]


def test_several_sets_need_a_before(runs, tmp_path, capsys) -> None:
    source, _, first, second = runs
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--encoder",
            str(source),
            "--data",
            str(first),
            "--data",
            str(second),
            "--label",
            "target",
            "--out",
            str(tmp_path / "e"),
        ]
    )
    assert code == EXIT_USER_ERROR and "--before ENCODER" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
