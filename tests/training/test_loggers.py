"""Where a run's metrics go (issue 20, part 2): --logger csv,tensorboard,mlflow,wandb through Lightning's loggers,
MLflow to a local file store and W&B offline by default, a resume logging on into the same runs, and the run's own
train.log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.training.loggers import LOGGER_IDS, TRAIN_LOG

IRIS = ["pretrain", "--data", "builtin:iris", "--batch-size", "32", "--no-online-probe"]  # 4 steps an epoch


def test_train_log_says_when_training_started_how_it_went_and_how_it_ended_and_a_resume_appends(tmp_path: Path):
    run = tmp_path / "run"
    assert main([*IRIS, "--max-steps", "3", "--out", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["checkpoints", "csv", "tensorboard"]
    lines = (run / TRAIN_LOG).read_text().splitlines()
    assert lines[0].endswith("training: 3 steps") and lines[-1].endswith("training ended at step 3")
    assert any("step 3/3 (100%), loss " in line for line in lines)
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "5"]) == 0
    lines = (run / TRAIN_LOG).read_text().splitlines()
    resumed = next(i for i, line in enumerate(lines) if line.endswith("training: 5 steps, resuming at step 3"))
    assert lines[resumed - 1].endswith("training ended at step 3") and lines[-1].endswith("training ended at step 5")


def test_mlflow_gets_the_recipe_and_every_logged_loss_and_a_resume_logs_on_into_the_same_run(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    assert main([*IRIS, "--logger", "mlflow", "--max-steps", "4", "--out", str(run)]) == 0
    assert not (run / "tensorboard").exists()  # only what was asked for, and csv (the report reads it)
    ids = json.loads((run / LOGGER_IDS).read_text())
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    logged = client.get_run(ids["mlflow"])
    assert logged.data.params["data"] == "builtin:iris" and logged.data.params["max_steps"] == "4"
    steps = [m.step for m in client.get_metric_history(ids["mlflow"], "loss_step")]
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "8"]) == 0
    assert json.loads((run / LOGGER_IDS).read_text()) == ids
    more = [m.step for m in client.get_metric_history(ids["mlflow"], "loss_step")]
    assert len(more) > len(steps) > 0 and max(more) > max(steps)
    assert main([*IRIS, "--max-steps", "2", "--out", str(run), "--overwrite"]) == 0  # its store goes with it
    assert not (run / "mlruns").exists() and not (run / LOGGER_IDS).exists()


def test_wandb_runs_offline_in_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    assert main([*IRIS, "--logger", "wandb,tensorboard", "--max-steps", "2", "--out", str(run)]) == 0
    run_id = json.loads((run / LOGGER_IDS).read_text())["wandb"]
    (offline,) = (run / "wandb").glob(f"offline-run-*-{run_id}")
    assert list(offline.glob("*.wandb")) and (run / "tensorboard").is_dir()
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "4"]) == 0
    # wandb cannot resume offline: the resume is a new offline run of the same id (beside the first, unless both
    # started within the same second)
    assert json.loads((run / LOGGER_IDS).read_text())["wandb"] == run_id
    assert list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))


def test_unknown_or_missing_loggers_are_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main([*IRIS, "--logger", "csv,mlflw", "--out", str(run)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "unknown logger 'mlflw'" in err and "did you mean 'mlflow'" in err
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    assert main([*IRIS, "--logger", "wandb", "--out", str(run)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("--logger wandb needs the optional package 'wandb': pip install 'selfsup[wandb]'")
    assert len(err.splitlines()) == 1 and not run.exists()
