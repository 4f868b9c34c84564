"""Parameter-efficient continued pre-training (issue 18, part 5): --adapter lora trains only low-rank adapters on a
transformer encoder, carries the method's EMA teacher onto the adapted names, exports the adapters folded into plain
weights (W + alpha/r B A, checked by hand) and apart, the same from a training checkpoint, resumes; an encoder without
layers to adapt is refused in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfsup.cli import EXIT_USER_ERROR, main

TABLE = ["--data", "builtin:iris", "--batch-size", "32", "--no-probe", "--method", "byol"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "source"
    assert main(["pretrain", *TABLE, "--encoder", "ft_transformer", "--max-steps", "4", "--out", str(out)]) == 0
    return out


def test_lora_trains_only_adapters_and_exports_them_folded_in_and_apart(source: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "lora"
    capsys.readouterr()
    argv = ["pretrain", *TABLE, "--init", str(source), "--adapter", "lora", "--lora-rank", "2", "--lora-alpha", "4"]
    assert main([*argv, "--max-steps", "6", "--out", str(out)]) == 0
    assert "LoRA: rank-2 adapters on" in capsys.readouterr().err
    before, after = load_file(str(source / "encoder.safetensors")), load_file(str(out / "encoder.safetensors"))
    adapters = load_file(str(out / "adapter.safetensors"))
    assert set(after) == set(before)  # plain names: any selfsup command reads the export
    adapted = {name.split(".lora_")[0] for name in adapters}
    assert adapted and all(".lora_A." in n or ".lora_B." in n for n in adapters)
    for name in before:
        layer = name.removesuffix(".weight")
        if name.endswith(".weight") and layer in adapted:  # W + alpha / r * B A, by hand
            down, up = adapters[f"{layer}.lora_A.default.weight"], adapters[f"{layer}.lora_B.default.weight"]
            assert down.shape[0] == 2 and up.abs().sum() > 0  # B starts at 0: it trained
            torch.testing.assert_close(after[name], before[name] + 2.0 * up @ down, rtol=0, atol=1e-6)
        else:  # every other weight was frozen
            assert torch.equal(after[name], before[name]), name
    summary = json.loads((out / "adapter.json").read_text())
    assert (summary["rank"], summary["alpha"], summary["base"]) == (2, 4.0, str(source))
    assert 0 < summary["trainable"] < summary["full"]
    # the EMA teacher came from the source run, onto the adapted layers' names; its new adapters start afresh
    carried = json.loads((out / "init.json").read_text())["method"]
    assert any(".base_layer." in name for name in carried["loaded"])
    assert carried["missing"] and all(".lora_" in name for name in carried["missing"])
    assert not any(".lora_" in n or ".base_layer." in n for n in load_file(str(out / "method.safetensors")))
    # from the training checkpoint, the same weights; resumed further, still only the adapters train
    exported = tmp_path / "exported"
    checkpoint = out / "checkpoints" / "last.ckpt"
    assert main(["export", "--run", str(out), "--checkpoint", str(checkpoint), "--out", str(exported)]) == 0
    from_checkpoint = load_file(str(exported / "encoder.safetensors"))
    for name in after:
        torch.testing.assert_close(from_checkpoint[name], after[name], rtol=0, atol=1e-6)
    assert main(["pretrain", "--resume", "--out", str(out), "--max-steps", "9"]) == 0
    resumed = load_file(str(out / "encoder.safetensors"))
    assert all(torch.equal(resumed[n], before[n]) for n in before if n.removesuffix(".weight") not in adapted)


def test_an_encoder_without_layers_to_adapt_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["pretrain", *TABLE, "--adapter", "lora", "--max-steps", "2", "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and "'mlp' encoder cannot take a LoRA adapter" in err
    assert not out.exists()


def test_adapters_on_random_weights_are_said_in_one_warning(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["pretrain", *TABLE, "--encoder", "ft_transformer", "--adapter", "lora", "--max-steps", "2"]
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "--adapter lora without --init" in line]
    assert len(warned) == 1 and warned[0].startswith("selfsup: warning: ")
    assert json.loads((out / "adapter.json").read_text())["base"] is None
