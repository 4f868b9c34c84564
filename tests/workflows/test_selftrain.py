"""Self-training: teacher, pseudo-labels above a threshold, student; the pool's labels are never read."""

from __future__ import annotations

import json

import pytest
from sklearn.datasets import load_breast_cancer

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.outputs import STAGING
from selfsup.workflows.selftrain import self_train

FAST = dict(epochs=20, batch_size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """80 labeled breast-cancer rows, the other 489 as a pool (its label column kept, to show it is unused)."""
    root = tmp_path_factory.mktemp("selftrain")
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
    labeled, pool, shuffled = root / "labeled.csv", root / "pool.csv", root / "pool_shuffled.csv"
    frame.iloc[:80].to_csv(labeled, index=False)
    frame.iloc[80:].to_csv(pool, index=False)
    wrong = frame.iloc[80:].copy()
    wrong["target"] = 1 - wrong["target"]  # every pool label flipped
    wrong.to_csv(shuffled, index=False)
    run = root / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(labeled),
                "--label",
                "target",
                "--method",
                "scarf",
                "--out",
                str(run),
                "--epochs",
                "2",
                "--max-steps",
                "4",
                "--batch-size",
                "32",
            ]
        )
        == 0
    )
    return run, labeled, pool, shuffled


@pytest.mark.slow
def test_teacher_pseudo_labels_student_and_the_pool_labels_are_never_read(setup) -> None:
    run, labeled, pool, flipped = setup
    options = DataOptions(label="target")
    loose = self_train(run, str(labeled), str(pool), options=options, threshold=0.0, **FAST)
    strict = self_train(run, str(labeled), str(pool), options=options, threshold=0.99, **FAST)
    assert loose.n_pool == 489 and loose.n_pseudo == 489  # threshold 0 keeps every pool row
    assert strict.n_pseudo <= loose.n_pseudo
    assert loose.n_labeled == 60  # 75% of the 80 labeled rows; 20 held out for the test
    assert loose.teacher["n_test"] == loose.student["n_test"] == 20
    assert loose.teacher["accuracy"] > 0.7  # breast cancer is easy: far above the 63% majority class
    # every pool label flipped: nothing changes, since the pool is read without its label column
    same = self_train(run, str(labeled), str(flipped), options=options, threshold=0.0, **FAST)
    assert same.n_pseudo == loose.n_pseudo and same.student == loose.student and same.teacher == loose.teacher


def test_cli_and_bad_input(setup, tmp_path, capsys) -> None:
    run, labeled, pool, _ = setup
    out = tmp_path / "st"
    assert (
        main(
            [
                "selftrain",
                "--encoder",
                str(run),
                "--labeled",
                str(labeled),
                "--unlabeled",
                str(pool),
                "--label",
                "target",
                "--epochs",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = json.loads((out / "selftrain.json").read_text())
    assert set(saved) >= {"teacher", "student", "n_pseudo", "threshold", "fitting"}
    teacher, student = saved["fitting"]["teacher"], saved["fitting"]["student"]
    assert teacher["n_val"] == round(0.1 * saved["n_labeled"])  # early stopping on a part of what each trains on
    assert student["n_val"] == round(0.1 * (saved["n_labeled"] + saved["n_pseudo"]))
    assert 1 <= teacher["best_epoch"] <= teacher["epochs_run"] <= 2
    # its own earlier report is replaced only with --overwrite; a user's file beside it stays
    (out / "selftrain.json").write_text(json.dumps(saved | {"old": True}))
    (out / "notes.txt").write_text("mine")
    argv = [
        "selftrain",
        "--encoder",
        str(run),
        "--labeled",
        str(labeled),
        "--unlabeled",
        str(pool),
        "--label",
        "target",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR and "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert "old" not in json.loads((out / "selftrain.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "pseudo_labels.csv", "selftrain.json", "student"]
    capsys.readouterr()
    assert (
        main(
            [
                "selftrain",
                "--encoder",
                str(run),
                "--labeled",
                str(labeled),
                "--unlabeled",
                str(pool),
                "--label",
                "target",
                "--threshold",
                "1.0",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == EXIT_USER_ERROR
    )
    assert "--threshold 1.0 must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SelfsupError, match="image"):
        self_train(run, str(labeled), "builtin:digits", options=DataOptions(label="target"), **FAST)


def test_the_student_is_saved_as_an_encoder_and_classifier_with_the_pseudo_labels(setup, tmp_path) -> None:
    """The student loads back as an ordinary encoder and as encoder + head, and predicts as it scored; a smaller
    fresh architecture can be the student; the pseudo-label file holds every pool row with its confidence."""
    import numpy as np
    import pandas as pd
    import torch

    from selfsup.checkpoint import load_classifier, load_encoder
    from selfsup.sources import load_data

    run, labeled, pool, _ = setup
    options = DataOptions(label="target")
    out = tmp_path / "small"
    result = self_train(
        run, str(labeled), str(pool), options=options, threshold=0.9, student_encoder="mlp",
        student_encoder_args={"width": 32, "depth": 2}, out=out, epochs=5, batch_size=32,
    )  # fmt: skip
    teacher, student = result.architectures["teacher"], result.architectures["student"]
    assert student["encoder"] == "mlp" and student["parameters"] < teacher["parameters"] / 10
    assert student["start"] == "fresh (random) weights" and student["encoder_lr"] == 1e-3  # 10x --lr

    model, classes = load_classifier(out / "student")
    assert classes == ["0", "1"]
    encoder = load_encoder(out / "student")  # an ordinary export: evaluate, embed and export read it
    assert encoder.embed_dim == 32 and sum(p.numel() for p in model.parameters()) == student["parameters"]
    # the saved model reproduces the reported test accuracy on the same split (75/25 of the labeled rows, seed 0)
    splits = load_data(str(labeled), options, preprocessing=encoder.preprocessing)
    from selfsup.evaluation.evaluate import labeled_split

    _, test, _ = labeled_split(splits, None, options, encoder.preprocessing, 0, 0.25)
    with torch.inference_mode():
        predicted = model(test.float_samples()).argmax(1).numpy()
    assert np.mean(predicted == test.y.numpy()) == result.student["accuracy"]

    pseudo = pd.read_csv(out / "pseudo_labels.csv")
    assert len(pseudo) == 489 and list(pseudo.columns) == ["id", "pseudo_label", "confidence", "used"]
    assert pseudo["confidence"].between(0.5, 1.0).all()  # the top of two class probabilities
    assert pseudo["used"].sum() == result.n_pseudo == (pseudo["confidence"] >= 0.9).sum()
    assert set(pseudo["pseudo_label"].astype(str)) <= {"0", "1"}


def test_pseudo_labels_as_a_training_stage_before_the_gold_labels(setup) -> None:
    """Predictions for pre-training: the student first fits the kept pseudo-labels alone, then the labels."""
    run, labeled, pool, _ = setup
    options = DataOptions(label="target")
    result = self_train(
        run, str(labeled), str(pool), options=options, threshold=0.0, order="pseudo-then-gold", epochs=5, batch_size=32
    )
    assert result.order == "pseudo-then-gold"
    first, second = result.fitting["student on pseudo-labels"], result.fitting["student"]
    assert first["n_val"] == round(0.1 * 489)  # the whole pool (threshold 0), and none of the labeled rows
    assert second["n_val"] == round(0.1 * result.n_labeled)  # then the labeled rows alone
    assert result.student["accuracy"] > 0.7
    with pytest.raises(SelfsupError, match="unknown self-training order 'gold-first'"):
        self_train(run, str(labeled), str(pool), options=options, order="gold-first", epochs=1)


@pytest.mark.parametrize("stop_at", ["student", "selftrain.json"])
def test_a_move_stopped_midway_leaves_a_folder_still_recognised_as_self_training(
    setup, tmp_path, monkeypatch, stop_at
) -> None:
    """The outputs move into --out pseudo-labels first and the report last; stopped before the student or before the
    report, the folder is still a self-training report: refused without --overwrite, replaced with it."""
    import os
    from pathlib import Path

    from selfsup.outputs import SELFTRAIN, check_output_folder

    run, labeled, pool, _ = setup
    out = tmp_path / "st"
    real = os.replace

    def stopped(src, dst):  # a kill as the move reaches ``stop_at``
        if Path(dst).is_relative_to(out) and Path(dst).relative_to(out).parts[0] == stop_at:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", stopped)
    arguments = dict(options=DataOptions(label="target"), threshold=0.9, epochs=1, batch_size=32, out=out)
    with pytest.raises(KeyboardInterrupt):
        self_train(run, str(labeled), str(pool), **arguments)
    monkeypatch.undo()
    assert not list(out.glob(STAGING + "*")) and [p.name for p in tmp_path.iterdir()] == ["st"]  # staging gone
    left = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".selfsup.lock"}
    assert "pseudo_labels.csv" in left and "selftrain.json" not in left
    assert ("student/selfsup.json" in left) == (stop_at == "selftrain.json")
    assert all(name == "pseudo_labels.csv" or name.startswith("student/") for name in left)
    with pytest.raises(SelfsupError, match="already holds a self-training report"):
        check_output_folder(out, SELFTRAIN, overwrite=False)
    self_train(run, str(labeled), str(pool), **arguments, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["pseudo_labels.csv", "selftrain.json", "student"]


def test_future_teacher_and_sla_options(setup) -> None:
    """--teacher future records its look-ahead; SLA rotates images, so a table is refused in one line."""
    run, labeled, pool, _ = setup
    options = DataOptions(label="target")
    result = self_train(
        run, str(labeled), str(pool), options=options, teacher="future", future_steps=2, future_lr=5.0, epochs=2,
        batch_size=64,
    )  # fmt: skip
    labeller = result.pseudo_labeller  # large look-ahead steps: the copy's labels differ from the teacher's
    assert labeller["teacher"] == "future" and labeller["steps"] == 2 and 0 < labeller["changed"] <= result.n_pool
    with pytest.raises(SelfsupError, match="unknown self-training teacher 'past'"):
        self_train(run, str(labeled), str(pool), options=options, teacher="past", epochs=1)
    with pytest.raises(SelfsupError, match="--future-steps of at least 1"):
        self_train(run, str(labeled), str(pool), options=options, teacher="future", future_steps=0, epochs=1)
    with pytest.raises(SelfsupError, match="leave out one of --teacher future and --label-augmentation"):
        self_train(run, str(labeled), str(pool), options=options, teacher="future", label_augmentation="rotation")
    with pytest.raises(SelfsupError, match="rotates images, but the encoder reads tabular data"):
        self_train(run, str(labeled), str(pool), options=options, label_augmentation="rotation", epochs=1)


def test_plain_rotation_augmentation_of_the_teacher_is_refused_on_tables_and_with_sla(setup, capsys) -> None:
    """--augment (SLA's DA control) rotates images: a table is refused in one line, before any training."""
    run, labeled, pool, _ = setup
    base = ["selftrain", "--encoder", str(run), "--labeled", str(labeled), "--unlabeled", str(pool)]
    assert main([*base, "--label", "target", "--augment", "rotation"]) == 2
    err = capsys.readouterr().err.strip()
    assert "augmentation 'rotation' rotates images, but the encoder reads tabular data" in err
    assert len(err.splitlines()) == 1
    options = DataOptions(label="target")
    with pytest.raises(SelfsupError, match="unknown fine-tuning augmentation 'flip'"):
        self_train(run, str(labeled), str(pool), options=options, augment="flip")
    with pytest.raises(SelfsupError, match="SLA already trains on every rotation"):
        self_train(run, str(labeled), str(pool), options=options, augment="rotation", label_augmentation="rotation")
