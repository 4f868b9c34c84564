"""Checkpoints that exist: written on the step and epoch schedule, a real SIGKILL and a real Ctrl-C (SIGINT) of a
running pre-training resumed to the same final step, a second run on a held folder refused, a corrupt or truncated
checkpoint reported in one line (an earlier good one used), and a write that fails (a full disk, simulated with
RLIMIT_FSIZE) leaves the last good checkpoint and the run's description as they were."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from selfsup.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from selfsup.errors import SelfsupError
from selfsup.training.checkpoints import checkpoint_progress, resume_checkpoint

STEPS = 60
# real digits (scikit-learn's), small enough that a step takes a fraction of a second on 2 cores
RUN = [
    "--data",
    "builtin:digits",
    "--batch-size",
    "64",
    "--image-size",
    "8",
    "--no-probe",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
    "--max-steps",
    str(STEPS),
    "--checkpoint-every-steps",
    "5",
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _step(out: Path, name: str = "last.ckpt") -> int:
    return checkpoint_progress(out / "checkpoints" / name)[1]


def _start(out: Path) -> subprocess.Popen:
    """A real pre-training process (the installed CLI's module), stopped by the test with a real signal."""
    return subprocess.Popen(
        [sys.executable, "-m", "selfsup.cli", "pretrain", *RUN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(process: subprocess.Popen, out: Path, timeout: float = 240) -> int:
    """Wait until the running process has written its first checkpoint; returns its step."""
    deadline = time.monotonic() + timeout
    while not (out / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    return _step(out)


def test_checkpoints_follow_the_step_schedule(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = [a if a != str(STEPS) else "7" for a in RUN]  # 7 steps, a checkpoint every 5 steps
    assert main(["pretrain", *args, "--checkpoint-every", "100", "--out", str(out)]) == 0
    assert _step(out) == 7 and _step(out, "previous.ckpt") == 5  # at step 5, and at the end
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt", "previous.ckpt"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_final_step(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    process = _start(out)
    try:
        _wait_for_checkpoint(process, out)
        # while it runs, its folder is held: a second run is refused in one line naming the process
        err = _fails(capsys, ["pretrain", "--resume", "--out", str(out)])
        assert f"process {process.pid}" in err and "in use" in err
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    killed_at = _step(out)
    assert 0 < killed_at < STEPS  # killed mid-training, with its checkpoint on disk
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert f"resuming at step {killed_at}" in capsys.readouterr().out  # from the checkpoint, not from scratch
    assert _step(out) == STEPS
    assert (out / "encoder.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    # no checkpoint is due before the end (3 epochs of 20 steps): the one on disk is the one Ctrl-C wrote
    args = [a for a in RUN if a not in ("--checkpoint-every-steps", "5")] + ["--checkpoint-every", "10"]
    process = subprocess.Popen(
        [sys.executable, "-m", "selfsup.cli", "pretrain", *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:  # training is under way once it reports a step
            if line.startswith("step "):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"--resume --out {out}" in lines[0], err
    stopped_at = _step(out)
    assert f"interrupted at step {stopped_at};" in lines[0] and 0 < stopped_at < STEPS
    assert not (out / "checkpoints" / "previous.ckpt").exists()  # the only checkpoint: Ctrl-C's
    assert not (out / "encoder.safetensors").exists()  # not finished: no export yet
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert f"resuming at step {stopped_at}" in capsys.readouterr().out
    assert _step(out) == STEPS


@pytest.fixture
def finished(tmp_path) -> Path:
    """A finished 6-step run with checkpoints at steps 5 (previous) and 6 (last)."""
    out = tmp_path / "run"
    args = [a if a != str(STEPS) else "6" for a in RUN]
    assert main(["pretrain", *args, "--out", str(out)]) == 0
    return out


def _fails(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    return err


def test_a_truncated_checkpoint_is_reported_and_the_run_left_as_it_was(finished, capsys) -> None:
    (finished / "checkpoints" / "previous.ckpt").unlink()
    last = finished / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = _snapshot(finished)
    err = _fails(capsys, ["pretrain", "--resume", "--out", str(finished), "--max-steps", "9"])
    assert "corrupted or truncated" in err and "last.ckpt" in err
    assert _snapshot(finished) == before  # recipe.yaml and selfsup.json untouched


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one(finished, capsys) -> None:
    last = finished / "checkpoints" / "last.ckpt"
    last.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="resuming from the earlier"):
        point = resume_checkpoint(finished)
    assert point.path.name == "previous.ckpt" and point.step == 5
    assert (finished / "checkpoints" / "last.ckpt.corrupt").is_file()
    assert main(["pretrain", "--resume", "--out", str(finished), "--max-steps", "8"]) == 0
    assert _step(finished) == 8  # resumed from step 5
    assert yaml.safe_load((finished / "recipe.yaml").read_text())["max_steps"] == 8


def test_no_good_checkpoint_at_all(finished) -> None:
    for name in ("last.ckpt", "previous.ckpt"):
        (finished / "checkpoints" / name).write_bytes(b"")
    with pytest.raises(SelfsupError, match="and so is the earlier one"):
        resume_checkpoint(finished)


def _limit_file_size(limit: int):
    def apply() -> None:  # a write past the limit fails with EFBIG, as on a full disk (the signal is ignored)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_last_good_one(finished) -> None:
    before = _snapshot(finished)
    size = (finished / "checkpoints" / "last.ckpt").stat().st_size
    result = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "pretrain", "--resume", "--out", str(finished), "--max-steps", "12"],
        preexec_fn=_limit_file_size(size // 2),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not write the checkpoint" in lines[0] and "is kept" in lines[0], lines
    for name in ("recipe.yaml", "selfsup.json", "checkpoints/last.ckpt", "checkpoints/previous.ckpt"):
        assert _snapshot(finished)[name] == before[name], name
    assert not list((finished / "checkpoints").glob("*.tmp"))
    assert main(["pretrain", "--resume", "--out", str(finished), "--max-steps", "12"]) == 0  # and it resumes later
    assert _step(finished) == 12


def test_optimiser_state_of_another_shape_is_one_line(finished, capsys) -> None:
    """A checkpoint whose optimiser had other parameter groups (an older selfsup's) is refused in one line."""
    last = finished / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    groups = state["optimizer_states"][0]["param_groups"]
    groups[0]["params"] += groups.pop(1)["params"]  # two groups merged into one
    torch.save(state, last)
    before = _snapshot(finished)
    err = _fails(capsys, ["pretrain", "--resume", "--out", str(finished), "--max-steps", "9"])
    assert "optimiser state of another shape" in err
    after = _snapshot(finished)  # the run's description and state as they were (its logs' rows set aside)
    for name in ("recipe.yaml", "selfsup.json", "encoder.safetensors", "checkpoints/last.ckpt"):
        assert after[name] == before[name], name


def test_a_resume_asked_to_go_further_goes_further_or_says_why_not(tmp_path, capsys) -> None:
    """A run that trained its one epoch, resumed with a --max-steps past it, trains on to that step (its epochs
    raised, in one line); resumed with nothing left to train, it is refused and left as it was."""
    out = tmp_path / "run"
    one_epoch = RUN[:-4]  # no --max-steps, no step checkpoints
    assert main(["pretrain", *one_epoch, "--epochs", "1", "--out", str(out)]) == 0
    per_epoch = _step(out)  # its checkpoint was written at the end of its only epoch
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out), "--max-steps", str(per_epoch + 3)]) == 0
    err = capsys.readouterr().err
    assert f"--max-steps {per_epoch + 3} reaches past the run's 1 epochs of {per_epoch} steps" in err
    assert _step(out) == per_epoch + 3
    assert yaml.safe_load((out / "recipe.yaml").read_text())["epochs"] == 2
    before = _snapshot(out)
    err = _fails(capsys, ["pretrain", "--resume", "--out", str(out)])
    assert f"has trained its {per_epoch + 3} steps" in err and "larger --max-steps or --epochs" in err
    assert _snapshot(out) == before


def test_a_dinov2_run_from_before_ibot_resumes_without_it(tmp_path, capsys) -> None:
    """A dinov2 run begun before iBOT was on by default (its recipe names no ibot_weight, its checkpoint has no
    mask token) resumes as it began, without the new term's weights, and says so in one line."""
    out = tmp_path / "run"
    argv = ["--data", "builtin:digits", "--image-size", "8", "--method", "dinov2", "--encoder", "vit"]
    argv += ["--encoder-arg", "patch_size=4", "--batch-size", "64", "--max-steps", "2", "--no-probe"]
    assert main(["pretrain", *argv, "--method-arg", "ibot_weight=0", "--out", str(out)]) == 0
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    del recipe["method_args"]["ibot_weight"]  # as an older selfsup wrote it
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out), "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    assert "began before dinov2 had its iBOT term; it resumes without it" in err
    assert _step(out) == 4
