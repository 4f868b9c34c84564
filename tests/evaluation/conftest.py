"""A tiny pre-trained run on iris, shared by the CLI tests of the optional protocols; a small real image folder
(built-in digits as 16x16 PNGs, 10 classes) and an untrained small_cnn export for it, to compare evaluate and embed
on the folder read lazily and read into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.checkpoint import save_encoder
from selfsup.cli import main
from selfsup.data import Preprocessing
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.image import image_encoder_config


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iris") / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:iris",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "32",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """12 real digits of each class as grey 16x16 PNGs in class sub-folders (120 images)."""
    root = tmp_path_factory.mktemp("lazy") / "digits"
    data = load_builtin("digits").train
    x, y = data.x.numpy(), data.y.numpy()
    for label in range(10):
        for j, i in enumerate(np.flatnonzero(y == label)[:12]):
            folder = root / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i, 0]).resize((16, 16), Image.Resampling.NEAREST).save(folder / f"{label}_{j}.png")
    return root


@pytest.fixture(scope="session")
def small_export(tmp_path_factory) -> Path:
    """An untrained small_cnn (seed 0) saved as an export that reads images at 16 px. Tests must not modify it."""
    torch.manual_seed(0)
    encoder = build_encoder(image_encoder_config("small_cnn", 1, 16, [0.3], [0.4]))
    encoder.preprocessing = Preprocessing("image", {"image_size": 16})
    return save_encoder(encoder, tmp_path_factory.mktemp("export") / "encoder")
