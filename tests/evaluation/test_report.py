from __future__ import annotations

import json
import math

import numpy as np
from rich.console import Console

from selfsup.evaluation.report import print_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ROWS = [
    {
        "encoder": "pretrained",
        "protocol": "knn",
        "accuracy": 0.9,
        "ci_low": 0.85,
        "ci_high": 0.94,
        "n_train": 60,
        "n_test": 100,
        "details": {"k": 20, "temperature": 0.07},
    },
    {
        "encoder": "random-init",
        "protocol": "knn",
        "accuracy": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "n_train": 60,
        "n_test": 100,
        "details": {"k": 20, "temperature": 0.07},
    },
    {
        "encoder": "pretrained",
        "protocol": "linear",
        "accuracy": np.float64(0.95),
        "ci_low": 0.9,
        "ci_high": 0.98,
        "n_train": 60,
        "n_test": 100,
        "details": {"C": 1.0, "cv_accuracy": 0.93, "cv_folds": 5},
    },
]
META = {"split": "official test split", "seeds": 3, "seed": 0, "dataset": "toy"}


def test_write_report_files(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    emb = rng.normal(size=(60, 8)) + 5 * np.eye(8)[labels]
    out = tmp_path / "new" / "report"
    paths = write_report(
        out,
        ROWS,
        META,
        embeddings={"pretrained": emb, "raw-input": emb[:, :4]},
        train_labels=labels,
        class_names=["cat", "dog", "fox"],
        loss_history=[(i, math.exp(-i / 30) + 0.05 * rng.random()) for i in range(100)],
    )
    assert set(paths) == {"results", "summary", "html", "loss_curve", "embedding_map"}
    assert all(p.parent == out and p.exists() for p in paths.values())

    results = json.loads((out / "results.json").read_text())
    assert results["meta"] == META
    assert results["rows"][0] == ROWS[0] and results["rows"][2]["accuracy"] == 0.95

    summary = (out / "summary.md").read_text()
    assert "| encoder | protocol | accuracy | 95% CI |" in summary
    assert "| pretrained | knn | 90.00% | [85.00, 94.00] |" in summary
    assert "official test split" in summary and "3" in summary and "baseline" in summary
    assert "C=1.0" in summary and "k=20" in summary

    for name in ("loss_curve.png", "embedding_map.png"):
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert not list(out.glob("*.tmp"))


def test_write_report_minimal_and_subsampled(tmp_path, monkeypatch):
    import selfsup.evaluation.report as report

    paths = write_report(tmp_path, ROWS[:1], {"split": "s", "seeds": 1})
    assert set(paths) == {"results", "summary", "html"}
    assert not (tmp_path / "loss_curve.png").exists()

    monkeypatch.setattr(report, "MAX_MAP_POINTS", 40)
    emb = np.random.default_rng(1).normal(size=(300, 4))
    paths = write_report(tmp_path, ROWS, META, embeddings={"pretrained": emb}, train_labels=None)
    assert (tmp_path / "embedding_map.png").read_bytes().startswith(PNG_MAGIC)
    assert not list(tmp_path.glob("*.tmp"))


def test_print_table_highlights_best_per_protocol():
    console = Console(record=True, width=120, color_system="truecolor", force_terminal=True)
    print_table(ROWS, "Results", console=console)
    text = console.export_text(clear=False)
    assert "Results" in text and "90.00%" in text and "[85.00, 94.00]" in text and "100" in text
    styled = console.export_text(styles=True)
    best_lines = [line for line in styled.splitlines() if "\x1b[1;32m" in line]
    assert (
        len(best_lines) == 2
        and any("90.00%" in line for line in best_lines)
        and any("95.00%" in line for line in best_lines)
    )


def test_every_file_is_written_through_a_tmp_and_os_replace(tmp_path, monkeypatch):
    import os

    import selfsup.files as files  # the report writes through selfsup.files.write_atomic

    calls = []
    real_replace = os.replace

    def spy(src, dst):
        assert os.path.exists(src) and not os.path.exists(dst)  # the target appears in one step
        calls.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    paths = write_report(tmp_path, ROWS, META, loss_history=[(0, 1.0), (1, 0.5)])
    assert sorted(calls) == sorted((p.name + ".tmp", p.name) for p in paths.values())


def test_confusion_matrix_and_per_class_accuracy(tmp_path):
    row = {
        "encoder": "pretrained",
        "protocol": "linear",
        "accuracy": 0.75,
        "ci_low": 0.5,
        "ci_high": 0.9,
        "n_train": 8,
        "n_test": 8,
        "details": {"C": 1.0},
        "confusion": [[3, 1], [1, 3]],
    }
    baseline = row | {"encoder": "raw-input", "confusion": [[4, 0], [2, 2]], "accuracy": 0.75}
    paths = write_report(tmp_path, [row, baseline], META, class_names=["cat", "dog"])
    assert paths["confusion"].read_bytes().startswith(PNG_MAGIC)
    summary = (tmp_path / "summary.md").read_text()
    assert "Per-class accuracy (pretrained, linear): cat: 75.00%, dog: 75.00%" in summary
    assert "![confusion](confusion.png)" in summary
    page = (tmp_path / "report.html").read_text()
    assert '<table id="per-class">' in page and "<td>100.0%</td><td>50.0%</td>" not in page
    assert "<td>75.0%</td><td>100.0%</td>" in page and "<td>75.0%</td><td>50.0%</td>" in page  # cat, dog rows


def test_print_table_shows_paths_with_brackets_verbatim():
    console = Console(record=True, width=160)
    print_table([ROWS[0] | {"encoder": "runs/[/x]/a[bold]"}], "Results", console=console)
    assert "runs/[/x]/a[bold]" in console.export_text()
