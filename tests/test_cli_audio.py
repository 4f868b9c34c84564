"""The command line on audio, end to end on the built-in spoken words (synthetic speech): pre-train, evaluate
against the baselines, and embed a new folder of WAV files read the way the encoder was trained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from selfsup.checkpoint import load_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.datasets import load_builtin
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.sources import load_data

TINY = [
    "--epochs",
    "1",
    "--max-steps",
    "2",
    "--batch-size",
    "32",
    "--no-probe",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
    "--encoder-arg",
    "n_mels=32",
    "--encoder-arg",
    "width=8",
]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audio") / "run"
    assert main(["pretrain", "--data", "builtin:spoken_words", "--method", "simclr", "--out", str(out), *TINY]) == 0
    return out


def test_audio_run_saves_the_front_end_and_evaluates(audio_run):
    meta = json.loads((audio_run / "selfsup.json").read_text())
    config = meta["encoder"]
    assert meta["modality"] == "audio" and config["name"] == "audio_cnn"
    assert config["sample_rate"] == 16000 and config["segment_seconds"] == 1.0 and len(config["mean"]) == 32
    # the evaluation itself, without the report's figures (the CLI's 'evaluate' adds only those)
    rows = evaluate(str(audio_run), "builtin:spoken_words", EvaluationOptions(protocols=("knn",), k=20)).rows
    assert {"pretrained", "random-init", "raw-input"} <= {row["encoder"] for row in rows}
    raw = next(row for row in rows if row["encoder"] == "raw-input")
    assert raw["n_test"] == 160 and raw["accuracy"] > 0.5  # log-mel statistics, unseen voices; chance is 10%


def test_embed_a_folder_of_wav_files_at_the_encoders_rate(audio_run, tmp_path):
    words = load_builtin("spoken_words").test
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(5):  # 8 kHz files, as a user might have: read back at the encoder's 16 kHz
        wave = words.x[i * 30, 0].numpy()
        sf.write(folder / f"clip{i}.wav", wave[~np.isnan(wave)][::2], 8000)
    target = tmp_path / "emb.npy"
    assert main(["embed", "--encoder", str(audio_run), "--data", str(folder), "--out", str(target)]) == 0
    encoder = load_encoder(audio_run)
    x = load_data(str(folder), preprocessing=encoder.preprocessing).train.x
    assert x.shape == (5, 1, 16000)
    with torch.no_grad():
        assert np.allclose(np.load(target), encoder.eval()(x).numpy(), atol=1e-5)


def test_audio_bad_input(tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    capsys.readouterr()
    assert main(["pretrain", "--data", str(folder), "--out", str(tmp_path / "r"), *TINY]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert "cannot read audio file" in err and "broken.wav" in err and "\n" not in err
    assert not (tmp_path / "r").exists()
