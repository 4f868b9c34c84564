"""Continued pre-training with the same method carries the whole method (issue 18, part 1): a run saves its
method's own tensors (heads, teacher, centres) as method.safetensors, and --init from it loads them when the method
matches (--init-parts auto/all), or leaves them as built (--init-parts encoder); asking for all across methods is
refused in one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfsup.checkpoint import METHOD_WEIGHTS
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods import build_method
from selfsup.recipe import make_recipe
from selfsup.training.init import read_init
from selfsup.workflows.pretrain import _carry_method

TINY = ["--data", "builtin:iris", "--max-steps", "4", "--batch-size", "32", "--no-probe"]


@pytest.fixture(scope="module")
def dino_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dino") / "run"
    assert main(["pretrain", *TINY, "--method", "dino", "--method-arg", "prototypes=64", "--out", str(out)]) == 0
    return out


def _method(source: Path, name: str, args: dict):
    init = read_init(source)
    assert init.encoder_config is not None
    return init, build_method(name, build_encoder(init.encoder_config), args)


def test_a_run_saves_its_method_parts_and_the_same_method_gets_them_back(dino_run: Path) -> None:
    saved = load_file(str(dino_run / METHOD_WEIGHTS))
    assert "center" in saved and any(k.startswith("teacher") for k in saved)  # the centre and the EMA teacher
    assert not any(k.startswith("encoder.") for k in saved)  # the encoder is encoder.safetensors' alone
    assert saved["center"].abs().sum() > 0  # trained: not the zeros a new DINO starts from
    init, method = _method(dino_run, "dino", {"prototypes": 64})
    report = _carry_method(make_recipe(data="x", method="dino", init=str(dino_run)), method, init)
    assert report is not None and set(report.loaded) == set(saved) and not report.missing
    own = method.own_state()
    for name, value in saved.items():
        torch.testing.assert_close(own[name], value, rtol=0, atol=0)
    _, fresh = _method(dino_run, "dino", {"prototypes": 64})
    recipe = make_recipe(data="x", method="dino", init=str(dino_run), init_parts="encoder")
    assert _carry_method(recipe, fresh, init) is None
    assert fresh.own_state()["center"].abs().sum() == 0  # left as built


def test_another_method_starts_its_parts_afresh_unless_all_is_asked(dino_run: Path) -> None:
    init, method = _method(dino_run, "simclr", {})
    assert _carry_method(make_recipe(data="x", method="simclr", init=str(dino_run)), method, init) is None
    recipe = make_recipe(data="x", method="simclr", init=str(dino_run), init_parts="all")
    with pytest.raises(SelfsupError, match="trained dino and this run trains simclr; use --init-parts encoder"):
        _carry_method(recipe, method, init)
    init, other = _method(dino_run, "dino", {"prototypes": 32})  # the same method with another head
    with pytest.raises(SelfsupError, match="other --method-arg values"):
        _carry_method(make_recipe(data="x", method="dino", init=str(dino_run)), other, init)


def test_the_cli_refuses_all_across_methods_before_writing(dino_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "continued"
    capsys.readouterr()
    argv = ["pretrain", *TINY, "--method", "simclr", "--init", str(dino_run), "--init-parts", "all", "--out", str(out)]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and "--init-parts encoder" in err
    assert not out.exists()
    assert (
        main(
            [
                "pretrain",
                *TINY,
                "--method",
                "dino",
                "--method-arg",
                "prototypes=64",
                "--init",
                str(dino_run),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "method" in (out / "init.json").read_text() and (out / METHOD_WEIGHTS).is_file()


def test_new_heads_on_an_init_encoder_warm_up_first_by_default_and_carried_ones_do_not(
    dino_run: Path, tmp_path: Path, capsys
) -> None:
    import yaml

    steps = [a if a != "4" else "20" for a in TINY]  # 20 steps: a tenth is 2
    capsys.readouterr()
    fresh = tmp_path / "simclr"
    assert main(["pretrain", *steps, "--method", "simclr", "--init", str(dino_run), "--out", str(fresh)]) == 0
    assert "frozen for the first 2 steps" in capsys.readouterr().err
    assert yaml.safe_load((fresh / "recipe.yaml").read_text())["freeze_encoder_steps"] == 2
    carried = tmp_path / "dino"
    argv = ["pretrain", *steps, "--method", "dino", "--method-arg", "prototypes=64", "--init", str(dino_run)]
    assert main([*argv, "--out", str(carried)]) == 0
    assert "head warm-up" not in capsys.readouterr().err
    assert yaml.safe_load((carried / "recipe.yaml").read_text())["freeze_encoder_steps"] == 0
    scratch = tmp_path / "scratch"
    assert main(["pretrain", *steps, "--method", "simclr", "--out", str(scratch)]) == 0
    assert yaml.safe_load((scratch / "recipe.yaml").read_text())["freeze_encoder_steps"] == 0


def test_exports_keep_the_method_parts_from_the_run_and_from_a_training_checkpoint(
    dino_run: Path, tmp_path: Path
) -> None:
    saved = load_file(str(dino_run / METHOD_WEIGHTS))
    assert main(["export", "--run", str(dino_run), "--out", str(tmp_path / "a")]) == 0
    last = str(dino_run / "checkpoints" / "last.ckpt")
    assert main(["export", "--run", str(dino_run), "--checkpoint", last, "--out", str(tmp_path / "b")]) == 0
    for folder in ("a", "b"):  # the last checkpoint is the finished run's state
        exported = load_file(str(tmp_path / folder / METHOD_WEIGHTS))
        assert set(exported) == set(saved)
        for name, value in saved.items():
            torch.testing.assert_close(exported[name], value, rtol=0, atol=0)
    init, method = _method(tmp_path / "b", "dino", {"prototypes": 64})
    assert _carry_method(make_recipe(data="x", method="dino", init=str(tmp_path / "b")), method, init) is not None
