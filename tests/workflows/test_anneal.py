"""The infinite schedule and its anneal (issue 18, part 3): a run's warm-up and cool-down are fixed in steps at its
start, so extending it (--resume --max-steps) continues its constant phase; --anneal RUN --anneal-steps N branches
a new run off RUN's latest checkpoint, decays the LR linearly to 0 and leaves RUN byte for byte as it was; a killed
anneal resumes; an anneal that cannot be (no constant phase, not yet in it, into RUN itself, with other flags) is
refused in one line with nothing written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.training.checkpoints import checkpoint_progress

TINY = ["--data", "builtin:iris", "--batch-size", "32", "--no-probe"]  # 4 steps an epoch
PEAK = 1e-3


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _recipe(run: Path) -> dict:
    return yaml.safe_load((run / "recipe.yaml").read_text())


def _step_and_lrs(run: Path) -> tuple[int, list[float]]:
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return state["global_step"], [group["lr"] for group in state["optimizer_states"][0]["param_groups"]]


def _pretrain(out: Path, *flags: str) -> None:
    assert main(["pretrain", *TINY, "--lr", str(PEAK), *flags, "--out", str(out)]) == 0


@pytest.fixture(scope="module")
def infinite_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("infinite") / "run"
    _pretrain(out, "--schedule", "infinite", "--max-steps", "12", "--warmup-steps", "2", "--cooldown-steps", "4")
    return out


def test_an_anneal_branches_off_the_constant_phase_and_leaves_the_run_as_it_was(
    infinite_run: Path, tmp_path: Path, capsys
) -> None:
    step, lrs = _step_and_lrs(infinite_run)
    assert step == 12 and all(lr == pytest.approx(0.5 * PEAK) for lr in lrs)  # constant: half the peak
    before = _snapshot(infinite_run)
    out = tmp_path / "annealed"
    capsys.readouterr()
    assert main(["pretrain", "--anneal", str(infinite_run), "--anneal-steps", "5", "--out", str(out)]) == 0
    assert f"from '{infinite_run}' at step 12, the LR decays linearly to 0 over 5 steps" in capsys.readouterr().err
    assert _snapshot(infinite_run) == before  # the run annealed is only read
    step, lrs = _step_and_lrs(out)
    assert step == 17 and lrs == [0.0] * len(lrs)  # 5 steps on, the LR has reached 0
    recipe = _recipe(out)
    assert (recipe["anneal"], recipe["anneal_steps"], recipe["max_steps"]) == (str(infinite_run), 5, 17)
    assert (recipe["warmup_steps"], recipe["cooldown_steps"], recipe["schedule"]) == (2, 4, "infinite")
    trained, annealed = (
        load_file(str(infinite_run / "encoder.safetensors")),
        load_file(str(out / "encoder.safetensors")),
    )
    assert any(not torch.equal(trained[k], annealed[k]) for k in trained)  # it trained on from the checkpoint
    # a second anneal of the same run, of another length, is another branch of the same state
    other = tmp_path / "annealed-longer"
    assert main(["pretrain", "--anneal", str(infinite_run), "--anneal-steps", "8", "--out", str(other)]) == 0
    assert _step_and_lrs(other)[0] == 20 and _snapshot(infinite_run) == before


def test_extending_an_infinite_run_continues_its_constant_phase(infinite_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _pretrain(run, "--schedule", "infinite", "--max-steps", "12", "--warmup-steps", "2", "--cooldown-steps", "4")
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "30"]) == 0
    step, lrs = _step_and_lrs(run)
    assert step == 30 and all(lr == pytest.approx(0.5 * PEAK) for lr in lrs)  # no re-warming, no decay
    assert (_recipe(run)["warmup_steps"], _recipe(run)["cooldown_steps"]) == (2, 4)


def test_a_new_infinite_run_fixes_its_phases_in_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _pretrain(run, "--schedule", "infinite", "--max-steps", "20", "--warmup-fraction", "0.1")
    recipe = _recipe(run)  # 2 warm-up steps; a cool-down of --decay-fraction 0.2 of the 18 after it
    assert (recipe["warmup_steps"], recipe["warmup_fraction"], recipe["cooldown_steps"]) == (2, None, 4)


def _refused(capsys, argv: list[str], *words: str) -> None:
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    for word in words:
        assert word in err, err


def test_anneals_that_cannot_be_are_refused_before_anything_is_written(
    infinite_run: Path, tmp_path: Path, capsys
) -> None:
    cosine, early = tmp_path / "cosine", tmp_path / "early"
    _pretrain(cosine, "--max-steps", "4")
    _pretrain(early, "--schedule", "infinite", "--max-steps", "4", "--cooldown-steps", "100")
    out = tmp_path / "out"
    before = _snapshot(infinite_run)
    _refused(capsys, ["pretrain", "--anneal", str(cosine), "--out", str(out)], "cosine schedule", "--schedule infinite")
    _refused(capsys, ["pretrain", "--anneal", str(early), "--out", str(out)], "step 4", "starts at step 100")
    _refused(capsys, ["pretrain", "--anneal", str(tmp_path), "--out", str(out)], "holds no recipe.yaml")
    _refused(capsys, ["pretrain", "--anneal", str(infinite_run), "--out", str(infinite_run)], "another --out")
    _refused(capsys, ["pretrain", "--anneal", str(infinite_run), "--out", str(out), "--lr", "1"], "(got --lr)")
    _refused(capsys, ["pretrain", "--anneal", str(infinite_run)], "give --out")
    _refused(capsys, ["pretrain", *TINY, "--anneal-steps", "3", "--out", str(out)], "--anneal RUN")
    _refused(capsys, ["pretrain", *TINY, "--cooldown-steps", "3", "--out", str(out)], "--schedule infinite")
    distilled = tmp_path / "distilled"
    flags = ["--schedule", "infinite", "--max-steps", "4", "--cooldown-steps", "1", "--warmup-steps", "1"]
    _pretrain(distilled, "--init", str(infinite_run), "--self-distill", "--no-distill-report", *flags)
    _refused(capsys, ["pretrain", "--anneal", str(distilled), "--out", str(out)], "a self-distillation run")
    assert not out.exists() and _snapshot(infinite_run) == before
    # an anneal is itself a run in no constant phase, and ends where it began N steps: it is not extended
    annealed = tmp_path / "annealed"
    assert main(["pretrain", "--anneal", str(infinite_run), "--anneal-steps", "2", "--out", str(annealed)]) == 0
    _refused(capsys, ["pretrain", "--anneal", str(annealed), "--out", str(out)], "itself an anneal")
    _refused(capsys, ["pretrain", "--resume", "--out", str(annealed), "--max-steps", "40"], "--resume --out alone")


# real digits, a fraction of a second a step on 2 cores: long enough to be killed mid-anneal
DIGITS = ["--data", "builtin:digits", "--batch-size", "64", "--image-size", "8", "--no-probe"]


@pytest.mark.slow
def test_a_killed_anneal_resumes_to_its_end(tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "annealed"
    flags = ["--schedule", "constant", "--max-steps", "6", "--warmup-steps", "1", "--checkpoint-every-steps", "3"]
    assert main(["pretrain", *DIGITS, *flags, "--out", str(run)]) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "selfsup.cli", "pretrain", "--anneal", str(run), "--anneal-steps", "60"]
        + ["--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoints" / "last.ckpt").is_file():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    killed_at = checkpoint_progress(out / "checkpoints" / "last.ckpt")[1]
    assert 6 < killed_at < 66 and not (out / "encoder.safetensors").exists()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    step, lrs = _step_and_lrs(out)
    assert step == 66 and lrs == [0.0] * len(lrs)
