"""The HTML report renders in headless Chromium, offline, with its table and every figure."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest

from selfsup.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# no network at all: the page must need nothing from outside the file
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=5000",
]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; .ci/run installs it)")
def test_report_renders_with_table_and_images(iris_run, tmp_path) -> None:
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(iris_run),
                "--data",
                "builtin:iris",
                "--protocol",
                "knn,linear,fewshot,labels",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    figures = sorted(p.stem for p in out.glob("*.png"))
    assert figures == ["confusion", "embedding_map", "few_shot", "label_efficiency"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", (out / "report.html").as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    assert re.search(r'data-images-rendered="(\d+)"', dom).group(1) == str(len(figures))  # every PNG decoded
    table = re.search(r'<table id="results">(.*?)</table>', dom, re.S).group(1)
    assert table.count("<tr") == 1 + 3 * 8 + 1  # header, 3 encoders x 8 protocol rows, gbdt
    assert "pretrained" in table and "random-init" in table and "raw-input" in table and "%" in table
    for name in figures:
        assert f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,' in dom
    assert '<table id="per-class">' in dom and '<table id="versions">' in dom and "torch" in dom
