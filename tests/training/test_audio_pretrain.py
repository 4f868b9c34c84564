"""Continued pre-training on audio: a run that starts from a selfsup export (--init) reads its data at the
export's sample rate and segment length, and so does that run when it is resumed."""

from __future__ import annotations

import shutil

import pytest

from selfsup.data import Preprocessing
from selfsup.datasets.speech import FOLDER
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain, resume_recipe

TINY = {
    "method": "simclr",
    "method_args": {"hidden_dim": 32, "projection_dim": 16},
    "epochs": 1,
    "batch_size": 8,
    "online_probe": False,
}
EXPORT_READ = Preprocessing("audio", {"sample_rate": 8000, "segment_seconds": 0.5})  # not the defaults (16 kHz, 1 s)


@pytest.fixture
def clips(tmp_path):
    """16 of the shipped spoken-word clips (8 kHz FLAC), unlabeled in one folder."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for path in sorted((FOLDER / "train").rglob("*.flac"))[::20]:
        shutil.copy(path, folder / f"{path.parent.name}-{path.name}")
    return folder


def test_a_resumed_init_run_reads_at_the_exports_rate(tmp_path, clips, one_thread):
    export = pretrain(
        make_recipe(
            data=str(clips),
            out=str(tmp_path / "export"),
            encoder_args={"n_mels": 32, "width": 8},
            **EXPORT_READ.settings,
            **TINY,
        ),
        progress=False,
    )
    assert export.splits.preprocessing == EXPORT_READ and export.splits.train.x.shape[-1] == 4000
    first = pretrain(
        make_recipe(data=str(clips), out=str(tmp_path / "run"), init=str(export.out), **TINY), progress=False
    )
    assert first.splits.preprocessing == EXPORT_READ  # no --sample-rate: the export's
    assert first.encoder.preprocessing == EXPORT_READ
    resumed = pretrain(resume_recipe(tmp_path / "run", epochs=2), resume=True, progress=False)
    assert resumed.splits.preprocessing == EXPORT_READ and resumed.splits.train.x.shape == first.splits.train.x.shape
    assert resumed.encoder.config["sample_rate"] == 8000
