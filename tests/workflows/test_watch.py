"""Watching forgetting while it happens (issue 18, part 4): --watch DATA (and a labelled --replay source, and the
data itself) is scored by nearest-class-mean accuracy at the start, every --watch-every steps and at the end, into
the metrics, watch.csv and watch.png; a resumed run continues the curve; data that cannot be watched is refused in
one line with nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn.datasets import load_iris

from selfsup.cli import EXIT_USER_ERROR, main

IRIS = ["--data", "builtin:iris", "--batch-size", "32"]  # 4 steps an epoch, a held-out tenth for the probe


def _curve(run: Path) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    with (run / "watch.csv").open() as f:
        for row in csv.DictReader(f):
            assert 0.0 <= float(row["ncm_accuracy"]) <= 1.0
            steps.setdefault(row["set"], []).append(int(row["step"]))
    return steps


def test_watched_sets_are_scored_on_schedule_and_a_resumed_run_continues_the_curve(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["pretrain", *IRIS, "--watch", "builtin:iris", "--replay", "builtin:iris", "--watch-every", "2"]
    assert main([*argv, "--max-steps", "6", "--out", str(run)]) == 0
    # the --watch source, the labelled --replay source (the same here: named apart) and the data's held-out split
    assert _curve(run) == {name: [0, 2, 4, 6] for name in ("iris", "iris-1", "iris-data")}
    assert (run / "watch.png").read_bytes().startswith(b"\x89PNG")
    with (run / "csv" / "metrics.csv").open() as f:
        logged = [row for row in csv.DictReader(f) if row.get("watch_iris")]
    assert [int(row["step"]) for row in logged] == [2, 4, 6]
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "10"]) == 0
    assert _curve(run)["iris"] == [0, 2, 4, 6, 8, 10]  # the scores before the resume come from the checkpoint


def test_data_that_cannot_be_watched_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    iris = load_iris(as_frame=True).frame
    labelled, unlabelled = tmp_path / "labelled.csv", tmp_path / "unlabelled.csv"
    iris.to_csv(labelled, index=False)
    iris.drop(columns="target").to_csv(unlabelled, index=False)
    out = tmp_path / "out"
    base = ["pretrain", "--data", str(labelled), "--label", "target", "--max-steps", "2", "--out", str(out)]
    for flags, words in (
        (["--watch", str(unlabelled)], "unknown label column 'target'"),
        (["--watch", "builtin:digits"], "is image"),
        (["--watch", str(tmp_path / "missing")], "--watch"),
        (["--watch", str(labelled), "--strategy", "fsdp"], "--strategy fsdp is not supported"),
        (["--watch-every", "3"], "give the data to watch with --watch DATA"),
    ):
        capsys.readouterr()
        assert main([*base, *flags]) == EXIT_USER_ERROR
        err = capsys.readouterr().err.strip()
        assert err.startswith("selfsup: error: ") and "\n" not in err and words in err, err
        assert not out.exists()


def test_a_watched_table_is_scored_by_its_own_classes(tmp_path: Path) -> None:
    """The usual stability-gap case for tables: the source domain's label column holds other classes than the
    data's (here iris species as names in one table, as numbers in the other)."""
    iris = load_iris(as_frame=True).frame
    target, source = tmp_path / "target.csv", tmp_path / "source.csv"
    iris.to_csv(target, index=False)
    iris.assign(target=iris["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})).to_csv(source, index=False)
    run = tmp_path / "run"
    argv = ["pretrain", "--data", str(target), "--label", "target", "--watch", str(source), "--watch-every", "2"]
    assert main([*argv, "--max-steps", "4", "--batch-size", "32", "--out", str(run)]) == 0
    assert _curve(run)["source"] == [0, 2, 4]
