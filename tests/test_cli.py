"""The ``selfsup`` command line, end to end on a tiny real image folder (digits written as PNGs).

Commands run in-process through ``selfsup.cli.main``; one call goes through the installed entry point
to check the real exit code. Runs are tiny (1 epoch, 1-2 steps, 16x16 images, small heads).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions, Preprocessing
from selfsup.sources import load_data

CLASSES = ("0", "1", "2")
PER_CLASS = 10
N_IMAGES = len(CLASSES) * PER_CLASS
SMALL = [
    "--batch-size",
    "32",
    "--image-size",
    "16",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
]
TINY = ["--epochs", "1", "--max-steps", "2", *SMALL]
METHOD_NAMES = ("simclr", "mocov3", "byol", "simsiam", "dino", "barlow_twins", "vicreg")


def _write_digits(root: Path, digits, per_class: int, mode: str = "L", labeled: bool = True) -> Path:
    x, y = digits.train.x.numpy(), digits.train.y.numpy()
    for label, name in enumerate(CLASSES):
        for j, i in enumerate(np.flatnonzero(y == label)[:per_class]):
            folder = root / name if labeled else root
            folder.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(x[i, 0]).resize((16, 16), Image.Resampling.NEAREST)
            img.convert(mode).save(folder / f"{name}_{j}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digits) -> Path:
    """3 classes x 10 real grey digit images (16x16 PNGs) in class sub-folders."""
    return _write_digits(tmp_path_factory.mktemp("data") / "digits", digits, PER_CLASS)


@pytest.fixture(scope="module")
def run(tmp_path_factory, folder) -> Path:
    """A finished tiny pre-training run. Tests must not modify it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["pretrain", "--data", str(folder), "--out", str(out), *TINY]) == 0
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _embeddings(encoder_path: Path, data: Path) -> torch.Tensor:
    encoder = load_encoder(encoder_path)
    with torch.no_grad():
        return encoder(load_data(str(data), preprocessing=encoder.preprocessing).train.float_samples())


def _fails(capsys, argv: list[str]) -> str:
    """Run the CLI expecting a user error: exit code 2 and one line on stderr. Returns that line."""
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: "), err
    assert "\n" not in err, err
    assert "Traceback" not in err
    return err


def _metrics(run_dir: Path) -> list[dict]:
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the happy path


def test_pretrain_writes_a_complete_run(run, folder):
    files = ("encoder.safetensors", "selfsup.json", "preprocessing.json", "recipe.yaml", "checkpoints/last.ckpt")
    for name in (*files, "csv/metrics.csv"):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp"))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["data"] == str(folder)
    assert recipe["method"] == "simclr"
    assert recipe["method_args"] == {"hidden_dim": 32, "projection_dim": 16}
    assert (recipe["epochs"], recipe["max_steps"], recipe["batch_size"], recipe["image_size"]) == (1, 2, 32, 16)
    meta = json.loads((run / "selfsup.json").read_text())
    assert meta["modality"] == "image"
    assert meta["encoder"]["in_chans"] == 1 and meta["encoder"]["image_size"] == 16
    # how new images are read for this encoder: at its input size
    assert load_encoder(run).preprocessing == Preprocessing("image", {"image_size": 16})
    assert meta["recipe"]["data"] == str(folder)
    losses = [float(r["loss_step"]) for r in _metrics(run) if r.get("loss_step")]
    assert losses and all(np.isfinite(losses))
    assert load_encoder(run).embed_dim == meta["embed_dim"]


def test_evaluate_writes_report_with_baselines(run, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--encoder", str(run), "--data", str(folder), "--out", str(out), "--k", "5"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {(r["encoder"], r["protocol"]): r for r in results["rows"]}
    assert set(rows) == {(e, p) for e in ("pretrained", "random-init", "raw-input") for p in ("knn", "linear")}
    for r in rows.values():
        assert 0.0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1.0
        assert r["n_train"] + r["n_test"] == N_IMAGES
    assert results["meta"]["classes"] == list(CLASSES)
    summary = (out / "summary.md").read_text()
    for encoder in ("pretrained", "random-init", "raw-input"):
        assert f"| {encoder} | knn |" in summary
        assert f"| {encoder} | linear |" in summary
    assert "summary.md" in capsys.readouterr().out


def test_evaluate_refuses_to_overwrite_a_report(run, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    report = json.dumps({"meta": {"encoder": str(run)}, "rows": []})
    (out / "results.json").write_text(report)
    err = _fails(capsys, ["evaluate", "--encoder", str(run), "--data", str(folder), "--out", str(out)])
    assert "already holds an evaluation report" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == report


def _users_folder(root: Path) -> Path:
    """A folder of a user's files, some named like selfsup's."""
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (root / "results.json").write_text('{"mine": true}')
    (root / "selfsup.json").write_text("{}")
    (root / "runs").mkdir()
    (root / "runs" / "data.csv").write_text("a,b\n1,2\n")
    return root


USER_FOLDER_COMMANDS = {
    "evaluate": ["evaluate", "--encoder", "RUN", "--data", "DATA"],
    "compare": ["compare", "RUN", "RUN", "--data", "DATA"],
    "bench": ["bench", "--suite", "smoke", "--seeds", "1"],
    "selftrain": ["selftrain", "--encoder", "RUN", "--labeled", "DATA", "--unlabeled", "DATA"],
    "export": ["export", "--run", "RUN"],
}


@pytest.mark.parametrize("command", USER_FOLDER_COMMANDS)
def test_overwrite_refuses_a_users_folder_and_changes_nothing(run, folder, tmp_path, capsys, command):
    mine = _users_folder(tmp_path / "mine")
    before = _snapshot(mine)
    argv = [str(run) if a == "RUN" else str(folder) if a == "DATA" else a for a in USER_FOLDER_COMMANDS[command]]
    for overwrite in ([], ["--overwrite"]):
        err = _fails(capsys, [*argv, "--out", str(mine), *overwrite])
        assert "did not write" in err and "--overwrite" not in err, err
        assert _snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(
            ["notes.txt", "results.json", "selfsup.json", "runs"]
        )


@pytest.mark.parametrize("command", USER_FOLDER_COMMANDS)
def test_out_that_is_a_file_fails_before_any_work(run, tmp_path, capsys, command):
    a_file = tmp_path / "report.txt"
    a_file.write_text("mine")
    # the data does not exist: the --out check comes first
    argv = [
        str(run) if a == "RUN" else str(tmp_path / "no-data") if a == "DATA" else a
        for a in USER_FOLDER_COMMANDS[command]
    ]
    err = _fails(capsys, [*argv, "--out", str(a_file), "--overwrite"])
    assert "is a file" in err and "no-data" not in err
    assert a_file.read_text() == "mine"


def test_evaluate_overwrite_replaces_its_own_report_only(run, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", "--encoder", str(run), "--data", str(folder), "--out", str(out), "--k", "3"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps(results | {"meta": results["meta"] | {"old": True}}))
    (out / "few_shot.png").write_bytes(b"an old run's figure")  # written by an earlier run with --protocol fewshot
    (out / "notes.txt").write_text("mine")
    assert "--overwrite" in _fails(capsys, argv)
    assert main([*argv, "--overwrite"]) == 0
    assert "old" not in json.loads((out / "results.json").read_text())["meta"]
    assert not (out / "few_shot.png").exists() and (out / "notes.txt").read_text() == "mine"
    assert (out / "report.html").is_file() and not list(out.glob("*.tmp")) and not (out / ".selfsup.lock").exists()


def test_embed_npy_and_parquet(run, folder, tmp_path):
    npy, parquet = tmp_path / "x.npy", tmp_path / "x.parquet"
    assert main(["embed", "--encoder", str(run), "--data", str(folder), "--out", str(npy)]) == 0
    assert main(["embed", "--encoder", str(run), "--data", str(folder), "--out", str(parquet)]) == 0
    emb = np.load(npy)
    embed_dim = json.loads((run / "selfsup.json").read_text())["embed_dim"]
    assert emb.shape == (N_IMAGES, embed_dim) and emb.dtype == np.float32
    assert np.allclose(emb, _embeddings(run, folder).numpy(), atol=1e-5)

    frame = pd.read_parquet(parquet)
    assert len(frame) == N_IMAGES
    assert list(frame.columns[:3]) == ["id", "split", "label"]
    assert list(frame.columns[3:]) == [f"e{i}" for i in range(embed_dim)]
    assert set(frame["split"]) == {"train"}
    assert sorted(frame["label"].unique()) == list(CLASSES)
    assert frame["id"].is_unique
    # ids and labels agree with the folder layout: "1/1_3.png" is labeled "1"
    assert all(Path(i).parent.name == label for i, label in zip(frame["id"], frame["label"]))
    assert np.allclose(frame[[f"e{i}" for i in range(embed_dim)]].to_numpy(), emb)
    assert not list(tmp_path.glob("*.tmp"))


def test_embed_unlabeled_parquet_has_no_label_column(run, digits, tmp_path):
    flat = _write_digits(tmp_path / "flat", digits, 2, labeled=False)
    out = tmp_path / "flat.parquet"
    assert main(["embed", "--encoder", str(run), "--data", str(flat), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 6
    assert "label" not in frame.columns
    assert list(frame.columns[:2]) == ["id", "split"]


def test_export_from_run_and_from_checkpoint(run, folder, tmp_path):
    from_run, from_ckpt = tmp_path / "export-run", tmp_path / "export-ckpt"
    assert main(["export", "--run", str(run), "--out", str(from_run)]) == 0
    assert (
        main(
            [
                "export",
                "--run",
                str(run),
                "--checkpoint",
                str(run / "checkpoints" / "last.ckpt"),
                "--out",
                str(from_ckpt),
            ]
        )
        == 0
    )
    expected = _embeddings(run, folder)
    for exported in (from_run, from_ckpt):
        assert sorted(p.name for p in exported.iterdir()) == [
            "encoder.safetensors",
            "method.safetensors",  # the method's own parts, for --init with the same method
            "preprocessing.json",
            "selfsup.json",
        ]
        assert (exported / "preprocessing.json").read_bytes() == (run / "preprocessing.json").read_bytes()
        assert torch.equal(_embeddings(exported, folder), expected)
        assert json.loads((exported / "selfsup.json").read_text())["recipe"]["method"] == "simclr"


def test_export_refuses_a_non_empty_out_and_bad_checkpoints(run, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for overwrite in ([], ["--overwrite"]):
        err = _fails(capsys, ["export", "--run", str(run), "--out", str(busy), *overwrite])
        assert "did not write" in err and "--overwrite" not in err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert "the run itself" in _fails(capsys, ["export", "--run", str(run), "--out", str(run), "--overwrite"])
    a_file = busy / "keep.txt"
    assert "folder" in _fails(capsys, ["export", "--run", str(run), "--out", str(a_file)])
    assert a_file.read_text() == "mine"

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    err = _fails(capsys, ["export", "--run", str(run), "--checkpoint", str(garbage), "--out", str(tmp_path / "x")])
    assert "garbage.ckpt" in err
    err = _fails(
        capsys,
        ["export", "--run", str(run), "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "y")],
    )
    assert "missing.ckpt" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_export_overwrite_replaces_its_own_export_only(run, folder, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    (out / "encoder.safetensors").write_bytes(b"an old export's weights")
    (out / "init.json").write_text("{}")  # a run's file: the export replaces what is there as a run
    (out / "notes.txt").write_text("mine")
    assert "--overwrite" in _fails(capsys, ["export", "--run", str(run), "--out", str(out)])
    assert main(["export", "--run", str(run), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "encoder.safetensors",
        "method.safetensors",
        "notes.txt",
        "preprocessing.json",
        "selfsup.json",
    ]
    assert torch.equal(_embeddings(out, folder), _embeddings(run, folder))


def test_quickstart_passes_the_refusal_through(tmp_path, capsys):
    mine = _users_folder(tmp_path / "mine")
    before = _snapshot(mine)
    _fails(capsys, ["quickstart", "--out", str(mine), "--epochs", "1"])
    assert _snapshot(mine) == before


def test_config_replays_the_recipe(run, tmp_path):
    other = tmp_path / "replay"
    assert main(["pretrain", "--config", str(run / "recipe.yaml"), "--out", str(other)]) == 0
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    replayed_recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    assert replayed_recipe.pop("out") == str(other)
    recipe.pop("out")
    assert replayed_recipe == recipe
    assert (other / "encoder.safetensors").is_file()
    a = json.loads((run / "selfsup.json").read_text())["encoder"]
    b = json.loads((other / "selfsup.json").read_text())["encoder"]
    assert a == b
    # same seed, same data, same recipe: the same weights (initialisation included) ...
    original = load_file(run / "encoder.safetensors")
    replayed = load_file(other / "encoder.safetensors")
    assert original.keys() == replayed.keys()
    for name, value in original.items():
        assert torch.allclose(value.float(), replayed[name].float(), rtol=0, atol=1e-5), name
    # ... and the seed is what decides them
    reseeded = tmp_path / "reseeded"
    assert main(["pretrain", "--config", str(run / "recipe.yaml"), "--out", str(reseeded), "--seed", "1"]) == 0
    other_seed = load_file(reseeded / "encoder.safetensors")
    assert not torch.allclose(original["backbone.features.0.0.weight"], other_seed["backbone.features.0.0.weight"])


def test_config_with_flag_overrides(run, tmp_path):
    """Flags win over the recipe file; validated before anything is written."""
    other = tmp_path / "replay"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text((run / "recipe.yaml").read_text())
    assert main(["pretrain", "--config", str(recipe), "--out", str(other), "--epochs", "0"]) == EXIT_USER_ERROR
    assert not other.exists()


def test_resume_continues_the_run(folder, tmp_path):
    first = tmp_path / "run"
    assert (
        main(["pretrain", "--data", str(folder), "--out", str(first), "--epochs", "1", "--max-steps", "-1", *SMALL])
        == 0
    )
    rows = _metrics(first)
    assert {int(r["epoch"]) for r in rows} == {0}
    steps_before = max(int(r["step"]) for r in rows)
    ckpt_before = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)

    moved = tmp_path / "moved-run"  # a copy elsewhere resumes where it now lives, not where it was
    shutil.copytree(first, moved)
    x = load_data(str(folder), DataOptions(image_size=16)).train.float_samples()[:8]
    with torch.no_grad():
        emb_before = load_encoder(first)(x)

    assert main(["pretrain", "--resume", "--out", str(first), "--epochs", "2"]) == 0
    rows = _metrics(first)
    assert {int(r["epoch"]) for r in rows} == {0, 1}  # epoch 0 rows kept, epoch 1 rows added
    assert sorted(p.name for p in (first / "csv").iterdir()) == ["metrics.csv"]
    assert not list(first.glob("metrics-before-resume*"))
    assert max(int(r["step"]) for r in rows) > steps_before
    ckpt = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == ckpt_before["epoch"] + 1
    assert ckpt["global_step"] > ckpt_before["global_step"]
    assert yaml.safe_load((first / "recipe.yaml").read_text())["epochs"] == 2
    with torch.no_grad():  # the exported encoder is the one trained further
        assert not torch.allclose(load_encoder(first)(x), emb_before)
    first_files = _snapshot(first)

    assert main(["pretrain", "--resume", "--out", str(moved), "--epochs", "2"]) == 0
    moved_ckpt = torch.load(moved / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert moved_ckpt["epoch"] == ckpt["epoch"]
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["last.ckpt", "previous.ckpt"]
    assert {int(r["epoch"]) for r in _metrics(moved)} == {0, 1}
    assert yaml.safe_load((moved / "recipe.yaml").read_text())["out"] == str(moved)
    assert _snapshot(first) == first_files  # resuming the copy left the original alone


# --------------------------------------------------------------------------- user errors: exit 2, one line, nothing written


def test_unknown_method_suggests_the_close_name(folder, tmp_path, capsys):
    out = tmp_path / "out"
    err = _fails(capsys, ["pretrain", "--data", str(folder), "--method", "simclrr", "--out", str(out), *TINY])
    assert "simclrr" in err and "Did you mean 'simclr'" in err
    assert not out.exists()


def test_unknown_encoder_suggests_a_timm_name(folder, tmp_path, capsys):
    out = tmp_path / "out"
    err = _fails(capsys, ["pretrain", "--data", str(folder), "--encoder", "resnet181", "--out", str(out), *TINY])
    assert "resnet181" in err and "Did you mean 'resnet18" in err
    assert not out.exists()


def test_missing_data_folder(tmp_path, capsys):
    out = tmp_path / "out"
    err = _fails(capsys, ["pretrain", "--data", str(tmp_path / "nowhere"), "--out", str(out), *TINY])
    assert "does not exist" in err and "nowhere" in err
    assert not out.exists()


def test_empty_data_folder(tmp_path, capsys):
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    err = _fails(capsys, ["pretrain", "--data", str(empty), "--out", str(out), *TINY])
    assert "no images found" in err
    assert not out.exists()


def test_pretrain_without_data(tmp_path, capsys):
    out = tmp_path / "out"
    assert "--data" in _fails(capsys, ["pretrain", "--out", str(out)])
    assert not out.exists()


def test_unknown_recipe_field_in_config(folder, tmp_path, capsys):
    config, out = tmp_path / "recipe.yaml", tmp_path / "out"
    config.write_text(f"data: {folder}\nmethod: simclr\nlearning_rate: 0.1\n")
    err = _fails(capsys, ["pretrain", "--config", str(config), "--out", str(out)])
    assert "learning_rate" in err and "known fields" in err
    assert not out.exists()


def test_bad_method_arg(folder, tmp_path, capsys):
    out = tmp_path / "out"
    err = _fails(capsys, ["pretrain", "--data", str(folder), "--out", str(out), *TINY, "--method-arg", "temp=0.1"])
    assert "temp" in err and "temperature" in err
    assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["--epochs", "1"], ["--config", "RECIPE"]])
def test_existing_run_is_not_overwritten(run, folder, capsys, extra):
    before = _snapshot(run)
    extra = [str(run / "recipe.yaml") if a == "RECIPE" else a for a in extra]
    args = ["pretrain", "--out", str(run), *extra] + ([] if "--config" in extra else ["--data", str(folder)])
    err = _fails(capsys, args)
    assert "--resume" in err and "--overwrite" in err
    assert _snapshot(run) == before


def test_resume_without_checkpoint(run, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / "recipe.yaml", unfinished / "recipe.yaml")
    shutil.copy(run / "selfsup.json", unfinished / "selfsup.json")
    before = _snapshot(unfinished)
    err = _fails(capsys, ["pretrain", "--resume", "--out", str(unfinished)])
    assert "last.ckpt" in err
    assert _snapshot(unfinished) == before


def test_resume_on_a_folder_that_is_no_run(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _fails(capsys, ["pretrain", "--resume", "--out", str(empty)])
    assert "resume" in err
    assert list(empty.iterdir()) == []
    assert "--out" in _fails(capsys, ["pretrain", "--resume"])


def _users_table(path: Path) -> Path:
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(path)
    return path


@pytest.mark.parametrize(
    "users_file",
    [
        lambda p: p.with_suffix(".npy").write_bytes(b"precious"),
        lambda p: np.save(p.with_suffix(".npy"), np.arange(6).reshape(2, 3)),  # a .npy, but no float32 embeddings
        lambda p: np.save(p.with_suffix(".npy"), np.zeros(3, dtype=np.float32)),  # 1-D
        lambda p: np.save(p.with_suffix(".npy"), np.ones((3, 4), dtype=np.float32)),  # a user's own features
        lambda p: _users_table(p.with_suffix(".parquet")),  # a table without selfsup's metadata
        lambda p: p.with_suffix(".parquet").write_bytes(b"PAR1 not really"),
    ],
)
def test_embed_never_replaces_a_users_file(run, folder, tmp_path, capsys, users_file):
    users_file(tmp_path / "x")
    (out,) = tmp_path.iterdir()
    before = out.read_bytes()
    for overwrite in ([], ["--overwrite"]):
        err = _fails(capsys, ["embed", "--encoder", str(run), "--data", str(folder), "--out", str(out), *overwrite])
        assert "did not write" in err and "--overwrite" not in err
    assert out.read_bytes() == before and list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_embed_overwrite_replaces_its_own_embeddings(run, folder, tmp_path, capsys, suffix):
    out = tmp_path / f"x{suffix}"
    argv = ["embed", "--encoder", str(run), "--data", str(folder), "--out", str(out)]
    assert main(argv) == 0
    first, inode = out.read_bytes(), out.stat().st_ino
    assert "--overwrite" in _fails(capsys, argv)
    assert out.read_bytes() == first
    assert main([*argv, "--overwrite"]) == 0
    assert out.stat().st_ino != inode  # replaced in one step by a complete new file
    loaded = np.load(out) if suffix == ".npy" else pd.read_parquet(out).filter(like="e").to_numpy()
    assert loaded.shape[0] == N_IMAGES
    described = [out.name + ".json"] if suffix == ".npy" else []  # what made a .npy is written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, *described])  # no temporary file left


def test_embed_refuses_a_folder_and_leaves_no_temporary_file_on_failure(run, folder, tmp_path, capsys, monkeypatch):
    a_folder = tmp_path / "emb.npy"
    a_folder.mkdir()
    assert "is a folder" in _fails(
        capsys, ["embed", "--encoder", str(run), "--data", str(folder), "--out", str(a_folder), "--overwrite"]
    )
    assert list(a_folder.iterdir()) == []

    import selfsup.workflows.export

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(selfsup.workflows.export, "_write_parquet", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["embed", "--encoder", str(run), "--data", str(folder), "--out", str(tmp_path / "x.parquet")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]


def test_embed_refuses_other_formats(run, folder, tmp_path, capsys):
    out = tmp_path / "x.csv"
    err = _fails(capsys, ["embed", "--encoder", str(run), "--data", str(folder), "--out", str(out)])
    assert ".npy" in err and ".parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_embed_with_a_missing_encoder(folder, tmp_path, capsys):
    err = _fails(
        capsys,
        ["embed", "--encoder", str(tmp_path / "no-run"), "--data", str(folder), "--out", str(tmp_path / "x.npy")],
    )
    assert "no-run" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_unknown_protocol(run, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    err = _fails(
        capsys,
        ["evaluate", "--encoder", str(run), "--data", str(folder), "--out", str(out), "--protocol", "knn,linaer"],
    )
    assert "linaer" in err and "Did you mean 'linear'" in err
    assert not out.exists()


def test_evaluate_unlabeled_folder(run, digits, tmp_path, capsys):
    flat, out = _write_digits(tmp_path / "flat", digits, 3, labeled=False), tmp_path / "eval"
    err = _fails(capsys, ["evaluate", "--encoder", str(run), "--data", str(flat), "--out", str(out)])
    assert "no labels" in err
    assert not out.exists()


def test_evaluate_grey_encoder_on_rgb_folder(run, digits, tmp_path, capsys):
    rgb, out = _write_digits(tmp_path / "rgb", digits, 4, mode="RGB"), tmp_path / "eval"
    err = _fails(capsys, ["evaluate", "--encoder", str(run), "--data", str(rgb), "--out", str(out)])
    assert "takes 1 channel but" in err and "3 channels" in err
    assert not out.exists()


def test_embed_grey_encoder_on_rgb_folder(run, digits, tmp_path, capsys):
    rgb, out = _write_digits(tmp_path / "rgb", digits, 2, mode="RGB"), tmp_path / "x.npy"
    assert "channel" in _fails(capsys, ["embed", "--encoder", str(run), "--data", str(rgb), "--out", str(out)])
    assert not out.exists()


def test_installed_entry_point_exit_code(tmp_path):
    exe = shutil.which("selfsup")
    assert exe, "the selfsup console script is not installed"
    out = tmp_path / "x.csv"
    proc = subprocess.run(
        [exe, "embed", "--encoder", str(tmp_path), "--data", "builtin:digits", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.strip().startswith("selfsup: error:")
    assert "\n" not in proc.stderr.strip()
    assert not out.exists()


# --------------------------------------------------------------------------- listing and help


def test_methods_lists_every_method_and_its_data(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in (*METHOD_NAMES, "scarf", "vime", "ts2vec", "cpc", "cropmae", "tera"):
        assert name in out
    assert "tabular" in out and "timeseries" in out
    assert "clip" in out and "pairs of any two" in out


@pytest.mark.parametrize(
    "argv", [["--help"], ["pretrain", "--help"], ["evaluate", "--help"], ["embed", "--help"], ["export", "--help"]]
)
def test_help_exits_zero(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: selfsup" in out


def test_pretrain_help_lists_the_recipe_flags(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--data",
        "--method",
        "--method-arg",
        "--encoder",
        "--epochs",
        "--resume",
        "--overwrite",
        "--config",
        "--bad-files",
    ):
        assert flag in out


def test_argparse_errors_are_one_line_exit_two(capsys):
    assert "--epochs" in _fails(capsys, ["pretrain", "--epochs", "many"])
    assert "no-such-command" in _fails(capsys, ["no-such-command"])
    assert "Did you mean '--weight-decay'" in _fails(capsys, ["pretrain", "--weight-decy", "0.1"])


# --------------------------------------------------------------------------- the flags are the recipe's


def _pretrain_flags() -> dict[str, list]:
    from selfsup.cli import _build_parser

    actions: dict[str, list] = {}
    for action in _build_parser().commands["pretrain"]._actions:
        actions.setdefault(action.dest, []).append(action)
    return actions


def test_every_recipe_field_has_a_flag_with_its_description():
    from selfsup.recipe import Recipe

    actions = _pretrain_flags()
    for name, field in Recipe.model_fields.items():
        assert field.description, f"recipe field '{name}' has no description"
        flag = f"--{name.replace('_', '-')}"
        (action,) = [a for a in actions.get(name, []) if flag in a.option_strings]
        assert action.help.replace("%%", "%") == field.description, name
        assert action.default is None, name  # unset flags leave --config and the recipe's defaults alone


@pytest.mark.parametrize("command", ["evaluate", "embed", "compare", "selftrain"])
def test_data_flags_of_other_commands_share_the_recipe_help(command):
    from selfsup.cli import DATA_FIELDS, _build_parser
    from selfsup.recipe import Recipe

    helps = {a.dest: a.help for a in _build_parser().commands[command]._actions}
    for name in DATA_FIELDS:
        assert helps[name].replace("%%", "%") == Recipe.model_fields[name].description, (command, name)


def _printed(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(["pretrain", *argv, "--print-config"]) == 0
    return capsys.readouterr().out


def test_print_config_is_the_full_resolved_recipe(tmp_path, capsys, monkeypatch):
    from selfsup.recipe import Recipe, load_recipe, make_recipe, save_recipe

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "start.yaml"
    save_recipe(make_recipe(data="builtin:digits", method="byol", epochs=5, seed=3), config)
    out = _printed(
        capsys,
        [
            "--config",
            str(config),
            "--epochs",
            "7",
            "--weight-decay",
            "0.05",
            "--warmup-epochs",
            "0.5",
            "--method-arg",
            "tau_base=0.99",
            "--out",
            "somewhere",
        ],
    )
    printed = tmp_path / "printed.yaml"
    printed.write_text(out)
    recipe = load_recipe(printed)
    assert list(yaml.safe_load(out)) == list(Recipe.model_fields)  # every field, defaults included, in order
    assert recipe == make_recipe(
        data="builtin:digits",
        method="byol",
        epochs=7,
        seed=3,
        weight_decay=0.05,
        warmup_epochs=0.5,
        method_args={"tau_base": 0.99},
        out="somewhere",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["printed.yaml", "start.yaml"]  # nothing written


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--text-column", "body", "--pair-text-column", "caption"],
            {"text_field": "body", "pair_text_field": "caption"},
        ),
        (["--method-arg", "t=0.2", "--method-args", "u=[1,2]"], {"method_args": {"t": 0.2, "u": [1, 2]}}),
        (
            ["--view-arg", "flip=false", "--encoder-arg", "width=8", "--pair-encoder-arg", "depth=1"],
            {"view_args": {"flip": False}, "encoder_args": {"width": 8}, "pair_encoder_args": {"depth": 1}},
        ),
        (["--ignore", "id", "--ignore", "name"], {"ignore": ["id", "name"]}),
        (["--no-probe", "--self-distill"], {"online_probe": False, "self_distill": True}),
        (["--no-online-probe", "--no-self-distill"], {"online_probe": False, "self_distill": False}),
        (
            ["--checkpoint-every", "2", "--checkpoint-every-steps", "50"],
            {"checkpoint_every": 2, "checkpoint_every_steps": 50},
        ),
        (
            ["--devices", "2", "--schedule", "wsd", "--bad-files", "skip"],
            {"devices": 2, "schedule": "wsd", "bad_files": "skip"},
        ),
        (
            ["--devices", "auto", "--lr", "0.01", "--image-size", "32"],
            {"devices": "auto", "lr": 0.01, "image_size": 32},
        ),
    ],
)
def test_flag_spellings_reach_the_recipe(capsys, argv, expected):
    recipe = yaml.safe_load(_printed(capsys, ["--data", "builtin:digits", *argv]))
    assert {name: recipe[name] for name in expected} == expected


def test_weight_decay_and_warmup_reach_pretrain(monkeypatch, tmp_path, capsys):
    import selfsup.workflows.pretrain
    from selfsup.errors import SelfsupError

    seen = []

    def fake_pretrain(recipe, **kwargs):
        seen.append(recipe)
        raise SelfsupError("stopped by the test")

    monkeypatch.setattr(selfsup.workflows.pretrain, "pretrain", fake_pretrain)
    assert "stopped by the test" in _fails(
        capsys,
        [
            "pretrain",
            "--data",
            "builtin:digits",
            "--weight-decay",
            "0.2",
            "--warmup-epochs",
            "0",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    (recipe,) = seen
    assert (recipe.weight_decay, recipe.warmup_epochs) == (0.2, 0.0)


def test_version(capsys):
    from selfsup import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"selfsup {__version__}"


def test_evaluate_takes_several_prompt_templates_and_refuses_one_without_a_slot(capsys, tmp_path):
    from selfsup.cli import _build_parser

    flags = ["--encoder", "e", "--data", "d", "--prompt", "a {}", "--prompt", "{}"]
    args = _build_parser().parse_args(["evaluate", *flags])
    assert args.prompt == ["a {}", "{}"]
    argv = ["evaluate", "--encoder", str(tmp_path), "--data", "builtin:iris", "--prompt", "a {}", "--prompt", "bad"]
    assert "--prompt must hold" in _fails(capsys, argv)
