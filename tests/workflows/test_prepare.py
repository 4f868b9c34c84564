"""``selfsup prepare``: a source written as LitData shards reads back as the same samples, labels and ids; pre-training
streams them (and its Lightning checkpoint holds the loader's mid-epoch state), evaluate reads them, and bad input is
one line with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.checkpoint import load_encoder
from selfsup.cli import main
from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.errors import SelfsupError
from selfsup.shards import SHARDS_FILE
from selfsup.sources import load_data
from selfsup.workflows.prepare import prepare

pytest.importorskip("litdata")
LAUNCHERS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


@pytest.fixture(scope="module")
def digits_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepare") / "digits"
    assert main(["prepare", "builtin:digits", str(out)]) == 0
    return out


def _by_id(samples) -> dict[str, tuple[torch.Tensor, int]]:
    return {sample_id: samples[i] for i, sample_id in enumerate(samples.ids)}


def test_prepared_digits_read_back_as_the_builtin(digits_shards: Path) -> None:
    source, prepared = load_builtin("digits"), load_data(str(digits_shards))
    for name in ("train", "test"):
        ours, theirs = getattr(prepared, name), getattr(source, name)
        assert sorted(ours.ids) == sorted(theirs.ids) and ours.ids != theirs.ids  # all of them, stored shuffled
        expected = _by_id(theirs)
        for i in range(len(ours)):
            x, label = ours[i]
            assert torch.equal(x, expected[ours.ids[i]][0]) and label == expected[ours.ids[i]][1] == int(ours.y[i])
    assert prepared.train.classes == source.train.classes and prepared.view_defaults == source.view_defaults
    meta = json.loads((digits_shards / SHARDS_FILE).read_text())
    assert meta["splits"] == {"train": {"count": 1347}, "test": {"count": 450}} and meta["stored_dtype"] == "uint8"


def test_an_image_folder_is_prepared_lazily_and_unreadable_files_skipped(tmp_path: Path) -> None:
    source = load_builtin("digits").train.subset(np.arange(40))
    folder = tmp_path / "images"
    for i in range(len(source)):
        (folder / str(int(source.y[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(source.x[i, 0].numpy()).save(folder / str(int(source.y[i])) / f"{i:03d}.png")
    (folder / "0" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(SelfsupError, match="broken.png.*nothing was written"):
        prepare(str(folder), tmp_path / "failed", progress=False)
    assert not (tmp_path / "failed").exists()
    result = prepare(str(folder), tmp_path / "shards", DataOptions(bad_files="skip"), progress=False)
    assert result.counts == {"train": 40} and result.skipped == 1
    read = load_data(str(folder), DataOptions(bad_files="skip", in_memory="yes"))
    prepared = load_data(str(tmp_path / "shards"))
    expected = _by_id(read.train)
    assert sorted(prepared.train.ids) == sorted(expected)
    for i in range(len(prepared.train)):
        assert torch.equal(prepared.train[i][0], expected[prepared.train.ids[i]][0])


def test_a_table_is_prepared_as_its_encoded_rows(tmp_path: Path) -> None:
    source = load_builtin("breast_cancer")
    prepare("builtin:breast_cancer", tmp_path / "table", progress=False)
    prepared = load_data(str(tmp_path / "table"))
    assert prepared.modality == "tabular" and prepared.preprocessing == source.preprocessing
    expected = _by_id(source.test)
    assert all(torch.equal(prepared.test[i][0], expected[prepared.test.ids[i]][0]) for i in range(len(prepared.test)))


def test_pretrain_streams_the_shards_then_evaluate_and_export_read_them(
    digits_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    flags = ["--method", "simclr", "--encoder", "small_cnn", "--batch-size", "256", "--num-workers", "0"]
    assert (
        main(["pretrain", "--data", str(digits_shards), *flags, "--no-probe", "--max-steps", "2", "--out", str(run)])
        == 0
    )
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    loader = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]  # LitData's StreamingDataLoader state
    assert loader["dataset"]["num_samples_yielded"] == 2 * 256
    # 5 steps an epoch (1347 // 256): resumed mid-epoch, the epoch ends after 3 more steps, not 5
    assert main(["pretrain", "--resume", "--out", str(run), "--max-steps", "7"]) == 0
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert state["epoch"] == 1 and state["global_step"] == 7
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["dataset"]["num_samples_yielded"] == 2 * 256
    assert load_encoder(run).config["in_chans"] == 1
    report = tmp_path / "eval"
    evaluate = [
        "evaluate",
        "--encoder",
        str(run),
        "--data",
        str(digits_shards),
        "--protocol",
        "knn",
        "--out",
        str(report),
    ]
    assert main(evaluate) == 0
    rows = json.loads((report / "results.json").read_text())["rows"]
    assert {row["n_test"] for row in rows if "n_test" in row} == {450}
    exported = tmp_path / "exported"  # the export checks itself on the first samples of the run's (lazy) data
    assert main(["export", "--run", str(run), "--format", "torchscript", "--out", str(exported)]) == 0
    assert (exported / "encoder.pt").is_file()


def test_bad_input_is_one_line_and_writes_nothing(digits_shards: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    table = tmp_path / "table"
    prepare("builtin:breast_cancer", table, progress=False)
    encoder = tmp_path / "image-run"
    flags = ["--method", "simclr", "--encoder", "small_cnn", "--max-steps", "1", "--no-probe", "--num-workers", "0"]
    assert main(["pretrain", "--data", "builtin:digits", *flags, "--out", str(encoder)]) == 0
    capsys.readouterr()
    cases = {
        "holds tabular shards": [
            "evaluate",
            "--encoder",
            str(encoder),
            "--data",
            str(table),
            "--out",
            str(tmp_path / "e"),
        ],
        "does not exist": ["prepare", str(tmp_path / "missing"), str(tmp_path / "o1")],
        "no images found": ["prepare", str(tmp_path / "empty"), str(tmp_path / "o2")],
        "already holds a prepared dataset": ["prepare", "builtin:digits", str(digits_shards)],
        "holds files selfsup did not write": ["prepare", "builtin:digits", str(tmp_path / "mine")],
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    for message, argv in cases.items():
        assert main(argv) == 2, message
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not any((tmp_path / name).exists() for name in ("e", "o1", "o2"))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_two_ddp_processes_stream_their_own_shards_and_resume(digits_shards: Path, tmp_path: Path) -> None:
    """Lightning starts the process group after selfsup builds its loaders: each rank still streams its own part."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHERS and not k.startswith(("SLURM_", "TORCHELASTIC"))}
    out = tmp_path / "run"
    flags = ["--encoder", "small_cnn", "--batch-size", "64", "--num-workers", "0", "--no-probe"]
    for argv in (
        ["--data", str(digits_shards), *flags, *DDP, "--max-steps", "3"],
        ["--resume", "--max-steps", "5"],
    ):
        command = [sys.executable, "-m", "selfsup", "pretrain", *argv, "--out", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    checks = [line for line in (out / "train.log").read_text().splitlines() if "processes:" in line]
    assert len(checks) == 2 and all("2 processes" in line and "share no sample" in line for line in checks), checks
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    loader = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["dataset"]
    assert state["global_step"] == 5 and loader["world_size"] == 2


def test_the_online_probe_holds_out_a_contiguous_tail_of_the_shards(digits_shards: Path) -> None:
    """LitData streams a subset as pieces of chunks: the probe's held-out part is one piece, not thousands."""
    from selfsup.workflows.pretrain import _probe_split

    train = load_data(str(digits_shards)).train
    fit, held = _probe_split(train, seed=0, enabled=True)
    assert held is not None and len(fit) + len(held) == len(train)
    assert fit.items == list(range(len(fit))) and held.items == list(range(len(fit), len(train)))
    assert len(set(held.y.tolist())) == 10  # prepare stored the samples shuffled: every class is held out
