"""selfsup quickstart end to end: one epoch of pre-training, the table against the baselines, the report, the
encoder file."""

from __future__ import annotations

import json
import re

import pytest
import torch

from selfsup.checkpoint import load_encoder
from selfsup.cli import main

BASELINES = ("pretrained", "random-init", "raw-input")
# a table row: encoder, protocol, accuracy and its 95% interval (e.g. "pretrained │ knn │ 91.23% │ 88.9–93.4%")
ACCURACY = r"\d{1,3}\.\d+%"


def _quickstart(tmp_path, capsys, monkeypatch, *args: str):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps a narrow (captured) terminal's table cells
    out = tmp_path / "q"
    code = main(["quickstart", "--epochs", "1", "--out", str(out), *args])
    printed = capsys.readouterr().out
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


@pytest.mark.slow
def test_quickstart_pretrains_compares_and_reports(tmp_path, capsys, monkeypatch) -> None:
    out, printed = _quickstart(tmp_path, capsys, monkeypatch)
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
