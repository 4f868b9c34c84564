"""Any channel count, end to end through the CLI: an RGB run continued on a folder of 6-band GeoTIFF-like files (its
first layer adapted, reported in init.json and the init table), the result evaluated on that folder; bad raster
folders give one line, exit 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from selfsup.cli import EXIT_USER_ERROR, main

CLASSES = ("a", "b", "c")
BANDS = 6
TINY = [
    "--epochs",
    "1",
    "--max-steps",
    "2",
    "--batch-size",
    "16",
    "--image-size",
    "16",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
]


def _raster(label: int, seed: int) -> np.ndarray:
    """A 6-band 16-bit raster whose band levels depend on its class, with noise."""
    rng = np.random.default_rng(seed)
    levels = 1000.0 * (np.arange(BANDS) + 1) * (1 + label)
    return np.clip(levels[:, None, None] + rng.normal(0, 300, (BANDS, 16, 16)), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def bands(tmp_path_factory) -> Path:
    """3 classes x 6 six-band TIFFs (band-interleaved, as GDAL writes them)."""
    root = tmp_path_factory.mktemp("data") / "bands"
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(6):
            tifffile.imwrite(
                root / name / f"{j}.tif",
                _raster(label, 10 * label + j),
                photometric="minisblack",
                planarconfig="separate",
            )
    return root


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory, digits) -> Path:
    """A tiny pre-training run on an RGB picture folder (digits as 16x16 colour PNGs)."""
    root = tmp_path_factory.mktemp("data") / "rgb"
    x, y = digits.train.x.numpy(), digits.train.y.numpy()
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(y == label)[:6]):
            Image.fromarray(x[i, 0]).resize((16, 16)).convert("RGB").save(root / name / f"{j}.png")
    out = tmp_path_factory.mktemp("runs") / "rgb-run"
    assert main(["pretrain", "--data", str(root), "--out", str(out), *TINY]) == 0
    return out


def _fails(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    return err


def test_an_rgb_run_continues_on_six_band_tifs_and_the_result_evaluates(rgb_run, bands, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["pretrain", "--data", str(bands), "--init", str(rgb_run), "--out", str(out), *TINY]) == 0
    assert "3 -> 6 channels" in capsys.readouterr().err  # the init table (or its warning line) says it
    report = json.loads((out / "init.json").read_text())
    [(name, how)] = report["adapted"]
    assert name.endswith(".weight") and how == "3 -> 6 channels"
    assert sorted(report["missing"]) == ["mean", "std"] and report["shape_mismatch"] == []
    encoder = json.loads((out / "selfsup.json").read_text())["encoder"]
    assert encoder["in_chans"] == BANDS and len(encoder["mean"]) == len(encoder["std"]) == BANDS
    expected = [1000.0 * (b + 1) * 2 for b in range(BANDS)]  # mean over the classes' levels (x1, x2, x3)
    assert np.allclose(encoder["mean"], expected, rtol=0.01)
    report_dir = tmp_path / "eval"
    argv = ["evaluate", "--encoder", str(out), "--data", str(bands), "--out", str(report_dir), "--k", "3"]
    assert main(argv) == 0
    rows = json.loads((report_dir / "results.json").read_text())["rows"]
    assert {r["encoder"] for r in rows} >= {"pretrained", "raw-input"}
    # evaluate has no adaptation: the 6-band encoder refuses the RGB run's kind of data, in one line
    rgb_data = Path(json.loads((rgb_run / "selfsup.json").read_text())["recipe"]["data"])
    err = _fails(capsys, ["evaluate", "--encoder", str(out), "--data", str(rgb_data), "--out", str(tmp_path / "e2")])
    assert "takes 6 channels" in err and not (tmp_path / "e2").exists()


@pytest.mark.parametrize("bad", ["bands", "nan", "ndim"])
def test_bad_raster_folders_exit_2_and_write_nothing(rgb_run, bands, tmp_path, capsys, bad) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for j in range(3):
        np.save(data / f"{j}.npy", _raster(0, j))
    if bad == "bands":
        np.save(data / "odd.npy", _raster(0, 9)[:4])
    elif bad == "nan":
        holes = _raster(0, 9).astype(np.float32)
        holes[0, 0, 0] = np.nan
        np.save(data / "odd.npy", holes)
    else:
        np.save(data / "odd.npy", np.zeros((2, 6, 16, 16), dtype=np.float32))
    out = tmp_path / "run"
    err = _fails(capsys, ["pretrain", "--data", str(data), "--init", str(rgb_run), "--out", str(out), *TINY])
    assert "odd.npy" in err
    assert {"bands": "has 4 bands but", "nan": "NaN", "ndim": "4-D array"}[bad] in err
    assert not out.exists()
