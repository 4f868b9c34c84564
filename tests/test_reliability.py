"""Bad input, as a hostile tester gives it (issue "Nothing lost"): each case is one line on stderr, exit 2, and the
output folder exactly as it was (or still absent). Killed, interrupted and corrupted runs are in
tests/training/test_checkpoints.py; what each command may replace is in tests/test_outputs.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.cli import EXIT_USER_ERROR, main

# real digits (scikit-learn's), tiny model: every case fails before or within a few steps
TINY = [
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
    "--max-steps",
    "2",
    "--epochs",
    "1",
]


def _snapshot(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(path.rglob("*"))}


def _user_folder(path: Path) -> None:
    path.mkdir()
    (path / "thesis.docx").write_bytes(b"years of work")
    (path / "photos").mkdir()
    (path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a cat")


def _a_file(path: Path) -> None:
    path.write_text("a user's notes\n")


def _nothing(path: Path) -> None:
    pass


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["pretrain", *TINY, "--out", str(out)]) == 0
    return out


# (case, argv with OUT for the output path and ENC for a finished run, how OUT is set up, a phrase of the error)
CASES: list[tuple[str, list[str], Callable[[Path], None], str]] = [
    (
        "overwrite a folder of the user's",
        ["pretrain", *TINY, "--out", "OUT", "--overwrite"],
        _user_folder,
        "selfsup did not write",
    ),
    ("out is a file", ["pretrain", *TINY, "--out", "OUT"], _a_file, "is a file"),
    ("out is a file, overwrite", ["pretrain", *TINY, "--out", "OUT", "--overwrite"], _a_file, "is a file"),
    ("infinite lr", ["pretrain", *TINY, "--lr", "inf", "--out", "OUT"], _nothing, "finite number"),
    ("nan lr", ["pretrain", *TINY, "--lr", "nan", "--out", "OUT"], _nothing, "finite number"),
    # diverges within its first epoch, before any checkpoint is due: nothing is kept
    (
        "lr that diverges",
        [
            "pretrain",
            *TINY,
            "--max-steps",
            "20",
            "--epochs",
            "20",
            "--checkpoint-every",
            "20",
            "--lr",
            "1e6",
            "--out",
            "OUT",
        ],
        _nothing,
        "lower --lr",
    ),
    ("negative max steps", ["pretrain", *TINY, "--max-steps", "-5", "--out", "OUT"], _nothing, "at least 1"),
    ("zero max steps", ["pretrain", *TINY, "--max-steps", "0", "--out", "OUT"], _nothing, "at least 1"),
    ("gpu without a gpu", ["pretrain", *TINY, "--accelerator", "gpu", "--out", "OUT"], _nothing, "no CUDA GPU"),
    ("unknown precision", ["pretrain", *TINY, "--precision", "17", "--out", "OUT"], _nothing, "cannot train"),
    ("unknown method", ["pretrain", *TINY, "--method", "simclrr", "--out", "OUT"], _nothing, "Did you mean"),
    (
        "zero checkpoint steps",
        ["pretrain", *TINY, "--checkpoint-every-steps", "0", "--out", "OUT"],
        _nothing,
        "checkpoint_every_steps",
    ),
    ("resume a folder of the user's", ["pretrain", "--resume", "--out", "OUT"], _user_folder, "holds no recipe.yaml"),
    (
        "evaluate into a file",
        ["evaluate", "--encoder", "ENC", "--data", "builtin:digits", "--out", "OUT"],
        _a_file,
        "is a file",
    ),
    (
        "evaluate over a user's folder",
        ["evaluate", "--encoder", "ENC", "--data", "builtin:digits", "--out", "OUT", "--overwrite"],
        _user_folder,
        "selfsup did not write",
    ),
    (
        "embed over a user's file",
        ["embed", "--encoder", "ENC", "--data", "builtin:digits", "--out", "OUT", "--overwrite"],
        _a_file,
        "selfsup did not write",
    ),
    (
        "export over a user's folder",
        ["export", "--run", "ENC", "--out", "OUT", "--overwrite"],
        _user_folder,
        "selfsup did not write",
    ),
]


@pytest.mark.parametrize("argv, setup, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(argv, setup, phrase, encoder, tmp_path, capsys) -> None:
    if "gpu" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / ("out.npy" if argv[0] == "embed" else "out")
    setup(out)
    before = _snapshot(out)
    capsys.readouterr()
    code = main([str(out) if a == "OUT" else str(encoder) if a == "ENC" else a for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR, err
    assert err.startswith("selfsup: error: ") and "\n" not in err and phrase in err, err
    assert _snapshot(out) == before


def test_out_is_the_current_folder_of_a_users_files(tmp_path, monkeypatch, capsys) -> None:
    """'--out . --overwrite' used to empty the current directory."""
    _user_folder(tmp_path / "home")
    monkeypatch.chdir(tmp_path / "home")
    before = _snapshot(tmp_path / "home")
    assert main(["pretrain", *TINY, "--out", ".", "--overwrite"]) == EXIT_USER_ERROR
    assert "selfsup did not write" in capsys.readouterr().err
    assert _snapshot(tmp_path / "home") == before


def test_out_inside_a_read_only_folder(tmp_path, capsys) -> None:
    """Root writes through permission bits, so the folder is made immutable (chattr +i) when running as root."""
    locked = tmp_path / "read-only"
    locked.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(locked)]).returncode != 0:
        locked.chmod(0o555)
    try:
        try:
            (locked / "probe").touch()
        except OSError:
            pass
        else:
            pytest.skip("cannot make a read-only folder on this file system")
        assert main(["pretrain", *TINY, "--out", str(locked / "run")]) == EXIT_USER_ERROR
        err = capsys.readouterr().err.strip()
        assert "cannot write to" in err and "\n" not in err, err
        assert list(locked.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o755)


def test_a_diverging_run_with_a_checkpoint_keeps_it_and_says_so(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(
        ["pretrain", *TINY, "--max-steps", "20", "--checkpoint-every-steps", "2", "--lr", "1e6", "--out", str(out)]
    )
    *warned, err = capsys.readouterr().err.strip().splitlines()  # a collapse warning may come first
    assert code == EXIT_USER_ERROR and err.startswith("selfsup: error: ") and "lower --lr" in err, err
    assert all(line.startswith("selfsup: warning: ") for line in warned), warned
    assert "checkpoints are kept" in err and (out / "checkpoints" / "last.ckpt").is_file()


def test_bad_files_skip_is_accepted_by_evaluate_and_embed_and_counted(encoder, tmp_path, capsys) -> None:
    data = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(data / label / f"{i}.png")
    (data / "a" / "broken.png").write_bytes(b"not a png")
    for argv in (
        [
            "evaluate",
            "--encoder",
            str(encoder),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "eval"),
            "--protocol",
            "knn",
            "--k",
            "1",
        ],
        ["embed", "--encoder", str(encoder), "--data", str(data), "--out", str(tmp_path / "e.npy")],
    ):
        assert main([*argv, "--bad-files", "skip"]) == 0
        assert "skipped 1 unreadable image (" in capsys.readouterr().err
    assert np.load(tmp_path / "e.npy").shape[0] == 12


def test_overwrite_of_a_run_leaves_a_users_files_inside_its_folders(encoder, tmp_path, capsys) -> None:
    """A project folder holding a copy of a run's recipe.yaml counts as a run; --overwrite then removes the files
    selfsup writes, never a user's file that sits in checkpoints/ or csv/."""
    project = tmp_path / "project"
    (project / "checkpoints").mkdir(parents=True)
    (project / "csv").mkdir()
    shutil.copy(encoder / "recipe.yaml", project / "recipe.yaml")
    (project / "checkpoints" / "model_v3.pt").write_bytes(b"weeks of training")
    (project / "csv" / "mydata.csv").write_text("a,b\n1,2\n")
    assert main(["pretrain", *TINY, "--out", str(project), "--overwrite"]) == 0
    assert (project / "checkpoints" / "model_v3.pt").read_bytes() == b"weeks of training"
    assert (project / "csv" / "mydata.csv").read_text() == "a,b\n1,2\n"
    assert (project / "checkpoints" / "last.ckpt").is_file() and (project / "encoder.safetensors").is_file()
