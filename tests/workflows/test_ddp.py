"""Distributed training that is correct (issue 17, part 3): two CPU processes under Lightning's DDP launcher train
on disjoint samples with their own augmentation draws, resume, and export an encoder that loads; gradient
accumulation counts optimiser steps everywhere (schedule, --max-steps, checkpoints); bad distributed flags are
refused in one line with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.datasets import load_builtin
from selfsup.training.checkpoints import checkpoint_progress

LAUNCHERS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


def _selfsup(*argv: str) -> subprocess.CompletedProcess:
    """The command line in a process of its own: Lightning's launcher starts rank 1 by running it again."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHERS and not k.startswith(("SLURM_", "TORCHELASTIC"))}
    return subprocess.run(
        [sys.executable, "-m", "selfsup", *argv], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.slow
def test_two_processes_train_on_their_own_samples_and_views_resume_and_export(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _selfsup(
        "pretrain", "--data", "builtin:digits", "--encoder", "small_cnn", "--batch-size", "32", "--num-workers", "0",
        *DDP, "--max-steps", "3", "--out", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("encoder written to") == 1  # rank 1 stays quiet
    resumed = _selfsup("pretrain", "--resume", "--max-steps", "5", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (out / "train.log").read_text()
    # both fits: the ranks' first batches are disjoint and their random states differ (ProcessCheck, by rank 0)
    checks = [line for line in log.splitlines() if "processes:" in line]
    assert len(checks) == 2, log
    assert all("2 processes" in line and "share no sample" in line and "own random state" in line for line in checks)
    assert "warning" not in log, log
    assert "resuming at step 3" in log and "training ended at step 5" in log
    assert checkpoint_progress(out / "checkpoints" / "last.ckpt")[1] == 5
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert (recipe["devices"], recipe["strategy"], recipe["max_steps"]) == (2, "ddp", 5)
    exported = tmp_path / "exported"  # the training checkpoint exports as well as the run does
    checkpoint = out / "checkpoints" / "last.ckpt"
    assert main(["export", "--run", str(out), "--checkpoint", str(checkpoint), "--out", str(exported)]) == 0
    x = load_builtin("digits").train.float_samples()[:8]
    for folder in (out, exported):
        encoder = load_encoder(folder)
        with torch.no_grad():
            z = encoder(x)
        assert z.shape == (8, encoder.embed_dim) and torch.isfinite(z).all()


def test_accumulated_batches_count_as_one_optimiser_step_everywhere(tmp_path: Path) -> None:
    """iris: 100 training samples after the probe's tenth, 3 batches of 32 an epoch, 2 to a step: 2 optimiser steps
    an epoch (the second on the one batch left), 6 in 3 epochs. The schedule's warm-up (half of them), the
    progress, the step checkpoint and the end count those 6, not the 12 batches."""
    out = tmp_path / "run"
    argv = ["pretrain", "--data", "builtin:iris", "--batch-size", "32", "--epochs", "3", "--out", str(out)]
    flags = ["--accumulate-grad-batches", "2", "--gradient-clip-val", "1.0", "--gradient-clip-algorithm", "value"]
    schedule = ["--schedule", "constant", "--warmup-fraction", "0.5", "--checkpoint-every-steps", "5"]
    assert main([*argv, *flags, *schedule]) == 0
    log = (out / "train.log").read_text()
    assert "training: 6 steps" in log and "training ended at step 6" in log, log
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert recipe["warmup_steps"] == 3  # half of the 6 optimiser steps
    assert (recipe["accumulate_grad_batches"], recipe["gradient_clip_val"]) == (2, 1.0)
    assert checkpoint_progress(out / "checkpoints" / "previous.ckpt") == (2, 5)  # the step checkpoint, rotated
    assert checkpoint_progress(out / "checkpoints" / "last.ckpt")[1] == 6


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--num-nodes", "2"], "--num-nodes 2 needs a launcher"),
        (["--devices", "2", "--strategy", "fsdp"], "--strategy fsdp is not supported"),
        (["--num-nodes", "0"], "num_nodes"),
        (["--accumulate-grad-batches", "0"], "accumulate_grad_batches"),
        (["--gradient-clip-val", "0"], "gradient_clip_val"),
        (["--gradient-clip-algorithm", "l2"], "invalid choice"),
    ],
)
def test_bad_distributed_flags_are_refused_with_nothing_written(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, flags: list[str], words: str
) -> None:
    for name in LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    argv = ["pretrain", "--data", "builtin:digits", "--accelerator", "cpu", "--max-steps", "2", "--out", str(out)]
    assert main([*argv, *flags]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and words in err, err
    assert not out.exists()


def test_distributed_flags_reach_the_recipe(capsys) -> None:
    argv = ["pretrain", "--data", "builtin:digits", "--print-config", "--num-nodes", "2", "--devices", "4"]
    flags = ["--accumulate-grad-batches", "8", "--gradient-clip-val", "0.5", "--gradient-clip-algorithm", "value"]
    assert main([*argv, *flags]) == 0
    recipe = yaml.safe_load(capsys.readouterr().out)
    assert {k: recipe[k] for k in ("num_nodes", "devices", "accumulate_grad_batches", "gradient_clip_val")} == {
        "num_nodes": 2,
        "devices": 4,
        "accumulate_grad_batches": 8,
        "gradient_clip_val": 0.5,
    }
    assert recipe["gradient_clip_algorithm"] == "value"
