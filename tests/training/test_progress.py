"""Quiet output: when stdout is not a terminal (a log, a pipe, CI) a run prints a few plain progress lines, the
real number of steps (not "Epoch 2/19" under --max-steps 3), and none of Lightning's internal warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup.cli import main
from selfsup.recipe import make_recipe
from selfsup.training.checkpoints import ResumePoint
from selfsup.workflows.pretrain import _epochs

RUN = [
    "--data",
    "builtin:digits",
    "--image-size",
    "8",
    "--batch-size",
    "64",
    "--method-arg",
    "hidden_dim=16",
    "--method-arg",
    "projection_dim=8",
]


@pytest.mark.slow
def test_piped_output_is_a_few_plain_lines(tmp_path, capsys) -> None:
    assert main(["pretrain", *RUN, "--max-steps", "30", "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith(("training", "step"))]
    assert lines[0] == "training: 30 steps"
    assert 5 <= len(lines) <= 12, out  # about one line per tenth of the run
    assert "step 30/30 (100%)" in out
    assert "\x1b" not in out and "\r" not in out and "Epoch" not in out  # no redrawn bar
    assert err == "", err  # no Lightning warnings or banners


def test_a_resumed_run_says_where_it_resumes(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", *RUN, "--max-steps", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out), "--max-steps", "6"]) == 0
    printed, err = capsys.readouterr()
    assert printed.startswith("training: 6 steps, resuming at step 3"), printed
    assert "step 6/6" in printed and err == "", err


def test_the_epochs_shown_are_the_epochs_trained() -> None:
    """The bar's "Epoch i/N" comes from the trainer's max_epochs: 3 steps of a 4-step epoch are 1 epoch, not 20."""
    recipe = make_recipe(data="builtin:digits", max_steps=3)
    assert _epochs(recipe, steps_per_epoch=4, resume_from=None) == 1
    assert _epochs(make_recipe(data="builtin:digits", max_steps=9), 4, None) == 3
    assert _epochs(make_recipe(data="builtin:digits"), 4, None) == 20  # no step limit: the recipe's epochs
    # resumed after epoch 0 ended at step 3 (stopped by max_steps), to 9 steps: epoch 1 and 2 remain, and one spare
    # (Lightning restarts the epoch a checkpoint was written in, for one batch, and counts it again)
    assert _epochs(make_recipe(data="builtin:digits", max_steps=9), 4, ResumePoint(Path("x"), 0, 3)) == 4
