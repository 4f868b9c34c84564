"""``selfsup pretrain --target-data T --upsample-at-end FRACTION``, end to end on real digits written as PNG folders
(the data: classes 0-4; the target: classes 5-9): the metrics say which steps drew half of their batch from the
target, a resumed run keeps to its global step, and bad input is one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from selfsup.cli import EXIT_USER_ERROR, main

SMALL = [
    "--batch-size",
    "100",
    "--image-size",
    "8",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
]


def _write(root: Path, x: np.ndarray, y: np.ndarray, classes: range, per_class: int = 40) -> Path:
    for c in classes:
        (root / str(c)).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(y == c)[:per_class]):
            Image.fromarray(x[i, 0]).save(root / str(c) / f"{j:03d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory, digits) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("upsample")
    x, y = digits.train.x.numpy(), digits.train.y.numpy()
    return _write(root / "data", x, y, range(5)), _write(root / "target", x, y, range(5, 10))


def _shares(out: Path) -> dict[int, float]:
    metrics = pd.read_csv(out / "csv" / "metrics.csv").dropna(subset=["target_share"])
    return dict(zip(metrics["step"].astype(int), metrics["target_share"], strict=True))


def test_the_last_steps_draw_the_target_share_and_a_resume_keeps_to_its_step(folders, tmp_path, capsys) -> None:
    """200 samples in batches of 100: 2 steps an epoch, the metrics logged every 2 steps (at steps 1, 3, 5...)."""
    data, target = folders
    out = tmp_path / "run"
    upsample = ["--target-data", str(target), "--upsample-at-end", "0.4", "--no-probe", "--logger", "csv"]
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--max-steps", "5", *upsample, *SMALL]) == 0
    assert "domain upsampling: from step 3 of 5, 50 of each batch's 100 samples" in capsys.readouterr().err
    assert _shares(out) == {1: 0.0, 3: 0.5}
    # resumed mid-epoch and past its end: the last 0.4 of 10 steps is steps 6-9, by the global step
    assert main(["pretrain", "--resume", "--out", str(out), "--max-steps", "10"]) == 0
    assert "from step 6 of 10" in capsys.readouterr().err
    assert _shares(out) == {1: 0.0, 3: 0.5, 5: 0.0, 7: 0.5, 9: 0.5}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--upsample-at-end", "1"], "field 'upsample_at_end': Input should be less than 1"),
        (["--upsample-at-end", "-0.1"], "field 'upsample_at_end': Input should be greater than or equal to 0"),
        (["--upsample-at-end", "0.2", "--target-data", "TARGET", "--target-share", "0"], "'target_share'"),
        (["--upsample-at-end", "0.2"], "--upsample-at-end raises the target domain's share: give its data"),
        (["--target-data", "TARGET"], "--target-data is upsampled at the end of training: give --upsample-at-end"),
        (["--upsample-at-end", "0.2", "--target-data", "builtin:gunpoint"], "'builtin:gunpoint' is timeseries"),
        (["--upsample-at-end", "0.2", "--target-data", "no-such-folder"], "'no-such-folder' does not exist"),
        (
            ["--upsample-at-end", "0.2", "--target-data", "TARGET", "--replay", "TARGET"],
            "--replay and --target-data both mix another source",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(folders, tmp_path, capsys, extra, expected) -> None:
    data, target = folders
    out = tmp_path / "run"
    extra = [str(target) if part == "TARGET" else part for part in extra]
    capsys.readouterr()
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--max-steps", "2", *extra, *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and expected in err, err
    assert not out.exists()
    assert EXIT_USER_ERROR == 2
