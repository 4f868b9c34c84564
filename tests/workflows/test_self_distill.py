"""Self-distillation for further pre-training: two stages from one command, the pull hand-computed."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch
import yaml
from torch import nn

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.methods.base import build_method
from selfsup.training.module import PretrainModule

TINY = ["--epochs", "2", "--max-steps", "3", "--batch-size", "32"]


class _Linear(nn.Linear):
    embed_dim = 2


def test_distill_loss_hand_computed() -> None:
    student, teacher = _Linear(2, 2, bias=False), _Linear(2, 2, bias=False)
    with torch.no_grad():
        student.weight.copy_(torch.eye(2))
        teacher.weight.copy_(2 * torch.eye(2))
    method = build_method("simclr", student, {"hidden_dim": 4, "projection_dim": 2})
    module = PretrainModule(
        method, nn.Identity(), lr=1e-3, weight_decay=0.0, warmup_fraction=0.0, distill_teacher=teacher
    )
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # student x, teacher 2x: squared distances 1 and 2, mean 1.5
    assert math.isclose(module._distill_loss(x).item(), 1.5)
    assert not any(p.requires_grad for p in module.distill_teacher.parameters())
    assert teacher.weight.requires_grad  # the teacher is a frozen copy, the original is untouched


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    assert main(["pretrain", "--data", "builtin:iris", "--method", "simclr", "--out", str(out), *TINY]) == 0
    return out


def test_one_command_runs_both_stages(source, tmp_path) -> None:
    out = tmp_path / "distilled"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:iris",
                "--method",
                "simclr",
                "--init",
                str(source),
                "--self-distill",
                "--distill-weight",
                "0.5",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    stage1 = tmp_path / "distilled-stage1"
    assert load_encoder(stage1) is not None and load_encoder(out) is not None
    with (out / "csv" / "metrics.csv").open() as f:
        distill = [float(r["distill_loss"]) for r in csv.DictReader(f) if r.get("distill_loss")]
    assert distill and all(d >= 0 for d in distill)
    # stage 2 re-starts from --init (the original checkpoint), not from the stage-1 encoder
    assert json.loads((out / "init.json").read_text())["source"] == str(source)
    with (stage1 / "csv" / "metrics.csv").open() as f:
        assert not any(r.get("distill_loss") for r in csv.DictReader(f))


def test_self_distill_needs_init(tmp_path, capsys) -> None:
    capsys.readouterr()
    assert (
        main(["pretrain", "--data", "builtin:iris", "--self-distill", "--out", str(tmp_path / "r"), *TINY])
        == EXIT_USER_ERROR
    )
    assert "give it with --init" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r-stage1").exists()


def test_resume_continues_whichever_stage_stopped(source, tmp_path) -> None:
    out = tmp_path / "distilled"
    argv = [
        "pretrain",
        "--data",
        "builtin:iris",
        "--method",
        "simclr",
        "--init",
        str(source),
        "--self-distill",
        "--out",
        str(out),
        *TINY,
    ]
    assert main(argv) == 0
    stage1 = tmp_path / "distilled-stage1"
    # stopped after stage 1: stage 2 has no checkpoint and no export yet
    for path in (out / "checkpoints" / "last.ckpt", out / "encoder.safetensors"):
        path.unlink()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert (out / "encoder.safetensors").is_file()
    # stopped inside stage 1: its last checkpoint is there, its export is not
    (stage1 / "encoder.safetensors").unlink()
    (out / "checkpoints" / "last.ckpt").unlink()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert (stage1 / "encoder.safetensors").is_file() and (out / "encoder.safetensors").is_file()


def test_an_occupied_stage1_folder_is_refused_before_writing(source, tmp_path, capsys) -> None:
    (tmp_path / "d-stage1").mkdir()
    (tmp_path / "d-stage1" / "something").write_text("x")
    capsys.readouterr()
    code = main(
        [
            "pretrain",
            "--data",
            "builtin:iris",
            "--init",
            str(source),
            "--self-distill",
            "--out",
            str(tmp_path / "d"),
            *TINY,
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "stage-1 folder" in err and "selfsup did not write" in err, err
    assert not (tmp_path / "d").exists()


def test_stage_2_failing_before_its_first_checkpoint_keeps_the_run_resumable(
    source, tmp_path, capsys, monkeypatch
) -> None:
    """Stage 2 rolls back what it wrote, but OUT keeps its recipe: stage 1 is done, and --resume goes on."""
    import selfsup.workflows.pretrain as pretrain_module

    real_fit, calls = pretrain_module._fit, []

    def fit_failing_in_stage_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise pretrain_module.SelfsupError("stage 2 failed")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "_fit", fit_failing_in_stage_2)
    out = tmp_path / "distilled"
    argv = ["pretrain", "--data", "builtin:iris", "--init", str(source), "--self-distill", "--out", str(out), *TINY]
    assert main(argv) == EXIT_USER_ERROR and "stage 2 failed" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["recipe.yaml"]
    assert (tmp_path / "distilled-stage1" / "encoder.safetensors").is_file()
    monkeypatch.setattr(pretrain_module, "_fit", real_fit)
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert (out / "encoder.safetensors").is_file()


def test_it_ends_with_the_four_way_comparison_and_a_resume_finishes_a_stopped_one(source, tmp_path, capsys) -> None:
    """Lee et al. 2022's comparison on the data's labels: original, stage 1, self-distilled, from scratch (trained
    for stage 1's steps in OUT-scratch, the distilled encoder's architecture, random weights), every pair with a
    paired interval; a run stopped before it resumes to it, and a finished one says so."""
    out = tmp_path / "distilled"
    argv = ["pretrain", "--data", "builtin:iris", "--init", str(source), "--self-distill", "--out", str(out), *TINY]
    capsys.readouterr()
    assert main([*argv, "--seed", "3"]) == 0
    assert "self-distillation on builtin:iris" in capsys.readouterr().out
    report = json.loads((out / "distill-report" / "compare.json").read_text())
    assert report["seed"] == 3  # the run's seed: its random-init baseline and probes
    encoders = ["original", "further (stage 1)", "self-distilled", "from scratch", "random-init", "raw-input"]
    assert list(dict.fromkeys(a["encoder"] for a in report["accuracies"])) == encoders
    assert {(p["a"], p["b"]) for p in report["pairs"] if p["protocol"] == "linear"} >= {
        ("original", "further (stage 1)"),
        ("further (stage 1)", "self-distilled"),
    }
    scratch = tmp_path / "distilled-scratch"
    recipe = yaml.safe_load((scratch / "recipe.yaml").read_text())
    assert recipe["init"] is None and recipe["random_init"] and recipe["max_steps"] == 3
    assert (
        json.loads((scratch / "selfsup.json").read_text())["encoder"]
        == json.loads((out / "selfsup.json").read_text())["encoder"]
    )  # the same architecture
    # stopped after stage 2, during the from-scratch run: a resume trains it and writes the comparison
    shutil.rmtree(out / "distill-report")
    (scratch / "encoder.safetensors").unlink()
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    assert (out / "distill-report" / "compare.json").is_file() and (scratch / "encoder.safetensors").is_file()
    capsys.readouterr()
    assert main(["pretrain", "--resume", "--out", str(out)]) == EXIT_USER_ERROR
    assert "has finished (both stages and its comparison)" in capsys.readouterr().err


def test_an_occupied_scratch_folder_is_refused_before_writing(source, tmp_path, capsys) -> None:
    (tmp_path / "d-scratch").mkdir()
    (tmp_path / "d-scratch" / "something").write_text("x")
    capsys.readouterr()
    argv = ["pretrain", "--data", "builtin:iris", "--init", str(source), "--self-distill", "--out", str(tmp_path / "d")]
    assert main([*argv, *TINY]) == EXIT_USER_ERROR
    assert "from-scratch folder" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert main([*argv, *TINY, "--no-distill-report"]) == 0  # the comparison off: no from-scratch run
    assert not (tmp_path / "d" / "distill-report").exists()


def test_the_from_scratch_run_has_the_distilled_encoders_architecture_and_reading(tmp_path) -> None:
    """Not the recipe's defaults: a ViT source read at 12 px (the data's own size is 8) gives a from-scratch ViT read
    at 12 px, every weight trained (no adapter, though stage 1 and 2 train one)."""
    source, out = tmp_path / "vit", tmp_path / "distilled"
    digits = ["--data", "builtin:digits", "--batch-size", "64", "--max-steps", "2", "--no-probe"]
    assert main(["pretrain", *digits, "--encoder", "vit", "--image-size", "12", "--out", str(source)]) == 0
    assert (
        main(["pretrain", *digits, "--init", str(source), "--self-distill", "--adapter", "lora", "--out", str(out)])
        == 0
    )
    scratch = tmp_path / "distilled-scratch"
    for name in ("selfsup.json", "preprocessing.json"):
        saved = json.loads((scratch / name).read_text())
        assert saved.get("encoder", saved) == json.loads((out / name).read_text()).get("encoder", saved), name
    assert json.loads((scratch / "selfsup.json").read_text())["encoder"]["image_size"] == 12
    assert yaml.safe_load((scratch / "recipe.yaml").read_text())["adapter"] == "none"
    assert not (scratch / "adapter.safetensors").exists() and (out / "adapter.safetensors").is_file()


def test_random_init_is_refused_for_paired_runs(tmp_path, capsys) -> None:
    capsys.readouterr()
    argv = ["pretrain", "--data", "builtin:spoken_words", "--pair-data", "builtin:spoken_word_captions"]
    assert main([*argv, "--method", "clip", "--random-init", "--out", str(tmp_path / "r")]) == EXIT_USER_ERROR
    assert "paired runs do not take it yet" in capsys.readouterr().err and not (tmp_path / "r").exists()
