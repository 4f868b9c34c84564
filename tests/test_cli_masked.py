"""The masked methods from the command line, on one built-in dataset per modality: the data's token
encoder is chosen for them, the run embeds, and a wrong encoder or target fails before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfsup.cli import EXIT_USER_ERROR, main

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "32"]


@pytest.mark.parametrize(
    "data, method, encoder, args",
    [
        ("builtin:digits", "mae", "vit", ["--encoder-arg", "depth=1"]),
        ("builtin:italypowerdemand", "jepa", "patch_transformer", ["--encoder-arg", "depth=1"]),
        ("builtin:iris", "data2vec", "ft_transformer", ["--encoder-arg", "n_layers=1"]),
        ("builtin:iris", "mfm", "ft_transformer", ["--encoder-arg", "n_layers=1"]),
        ("builtin:iris", "mae", "ft_transformer", ["--encoder-arg", "n_layers=1"]),  # MAE's crop scale: images only
        ("builtin:digits", "cropmae", "vit", ["--encoder-arg", "depth=1"]),
        ("builtin:italypowerdemand", "tera", "patch_transformer", ["--encoder-arg", "depth=1"]),
    ],
)
def test_masked_run_uses_the_token_encoder_and_embeds(data, method, encoder, args, tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", "--data", data, "--method", method, "--out", str(out), *TINY, *args]) == 0
    meta = json.loads((out / "selfsup.json").read_text())
    assert meta["encoder"]["name"] == encoder
    embeddings = tmp_path / "e.npy"
    assert main(["embed", "--encoder", str(out), "--data", data, "--out", str(embeddings)]) == 0
    assert np.isfinite(np.load(embeddings)).all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--encoder", "mlp"], "needs a token encoder"),
        (["--method-arg", "target=hog"], "'hog' target needs tokens with spatial extent"),
        (["--method-arg", "masking=block"], "a table's columns have none"),
    ],
)
def test_masked_bad_input_fails_before_writing(argv, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    capsys.readouterr()
    code = main(["pretrain", "--data", "builtin:iris", "--method", "mae", "--out", str(out), *TINY, *argv])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR and err.startswith("selfsup: error: ") and "\n" not in err, err
    assert message in err
    assert not out.exists()


def test_jepa_block_masking_refused_on_a_table(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    capsys.readouterr()
    code = main(
        [
            "pretrain",
            "--data",
            "builtin:iris",
            "--method",
            "jepa",
            "--out",
            str(out),
            *TINY,
            "--method-arg",
            "masking=block",
        ]
    )
    assert code == EXIT_USER_ERROR and "a table's columns have none" in capsys.readouterr().err
    assert not out.exists()
