"""``selfsup curate`` on real digits written as PNG folders: a pool of every class and a target of two.

The encoder is a 2-step SimCLR run on the pool (the selection mechanism is under test, not the encoder): its
embeddings already put digits of a class near each other, so SimCore's coreset must take far more of the target's
classes than a random sample of the same size does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import DataOptions
from selfsup.sources import load_data
from selfsup.workflows.curate import curate

PER_CLASS = 30  # pool: 30 of each of the 10 digits
TARGET_CLASSES = ("0", "1")
TARGET_PER_CLASS = 20
DUPLICATES = 10
SMALL = [
    "--batch-size",
    "64",
    "--image-size",
    "16",
    "--method-arg",
    "hidden_dim=32",
    "--method-arg",
    "projection_dim=16",
]


def _write(root: Path, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...], per_class: int, prefix: str) -> Path:
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(y == int(name))[:per_class]):
            Image.fromarray(x[i, 0]).resize((16, 16), Image.Resampling.NEAREST).save(folder / f"{prefix}{j:03d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits) -> dict[str, Path]:
    """A pool (digits' training split, every class), a target (its test split, two classes), and a pool with
    ``DUPLICATES`` exact copies of its own files added."""
    root = tmp_path_factory.mktemp("curate")
    all_classes = tuple(str(c) for c in range(10))
    pool = _write(root / "pool", digits.train.x.numpy(), digits.train.y.numpy(), all_classes, PER_CLASS, "p")
    target = _write(
        root / "target", digits.test.x.numpy(), digits.test.y.numpy(), TARGET_CLASSES, TARGET_PER_CLASS, "t"
    )
    copied = root / "pool-with-copies"
    shutil.copytree(pool, copied)
    originals = sorted(copied.rglob("*.png"))[:: len(all_classes) * PER_CLASS // DUPLICATES][:DUPLICATES]
    for path in originals:
        shutil.copy(path, path.with_name(f"z-copy-{path.name}"))  # sorts after its original: the copy is dropped
    return {"pool": pool, "target": target, "copies": copied}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["pretrain", "--data", str(data["pool"]), "--out", str(out), "--max-steps", "2", *SMALL]) == 0
    return out


def _rows(out: Path) -> list[dict]:
    with (out / "selection.csv").open() as f:
        return list(csv.DictReader(f))


def _target_share(out: Path) -> float:
    return float(np.mean([row["label"] in TARGET_CLASSES for row in _rows(out)]))


def _curate(data, encoder, out: Path, strategy: str, budget: str = "0.2", *extra: str) -> int:
    return main(
        [
            "curate",
            "--target",
            str(data["target"]),
            "--pool",
            str(data["pool"]),
            "--budget",
            budget,
            "--strategy",
            strategy,
            "--encoder",
            str(encoder),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_coreset_takes_far_more_of_the_target_classes_than_random(data, encoder, tmp_path, capsys):
    assert _curate(data, encoder, tmp_path / "coreset", "coreset") == 0
    assert _curate(data, encoder, tmp_path / "random", "random") == 0
    coreset, random = _target_share(tmp_path / "coreset"), _target_share(tmp_path / "random")
    print(f"target classes' share: coreset {coreset:.3f}, random {random:.3f}")
    # the pool is 20% target classes: random stays near that; the coreset must be well above it
    assert coreset >= random + 0.35, (coreset, random)
    assert coreset >= 0.6
    meta = json.loads((tmp_path / "coreset" / "curation.json").read_text())
    assert meta["strategy"] == "coreset" and meta["selected"] == 60 and meta["pool"]["samples"] == 300
    assert meta["encoder"]["encoder"] == str(encoder)
    assert meta["coreset"]["centroids"] == len(TARGET_CLASSES) * TARGET_PER_CLASS  # every target sample
    scores = [float(row["score"]) for row in _rows(tmp_path / "coreset")]
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_budget_is_respected_and_the_subset_is_a_class_folder(data, encoder, tmp_path):
    out = tmp_path / "cur"
    assert _curate(data, encoder, out, "random", "0.1") == 0
    rows = _rows(out)
    assert len(rows) == 30 and len({row["index"] for row in rows}) == 30
    files = sorted(p.relative_to(out / "subset").as_posix() for p in (out / "subset").rglob("*.png"))
    assert files == sorted(row["id"] for row in rows)
    for row in rows:  # the same image as the pool's file, under its class folder
        assert (out / "subset" / row["id"]).read_bytes() == Path(row["path"]).read_bytes()
        assert row["id"].split("/")[0] == row["label"]
    assert not list(out.glob(".curate-*")) and not (out / ".selfsup.lock").exists()


def test_pretrain_reads_the_prepared_subset(data, encoder, tmp_path):
    out = tmp_path / "cur"
    assert _curate(data, encoder, out, "coreset") == 0
    assert len(load_data(str(out / "subset")).train) == 60
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(out / "subset"), "--out", str(run), "--max-steps", "2", *SMALL]) == 0
    assert (run / "encoder.safetensors").is_file()


def test_dedup_drops_the_inserted_exact_copies(data, encoder, tmp_path):
    with pytest.warns(UserWarning, match="near-duplicates; the .* left are fewer than the budget's 310"):
        result = curate(
            str(data["target"]),
            str(data["copies"]),
            1.0,
            "dedup",
            encoder=encoder,
            out=tmp_path / "cur",
            threshold=0.9999,
        )
    chosen = {row["id"] for row in _rows(tmp_path / "cur")}
    copies = sorted(p.relative_to(data["copies"]).as_posix() for p in data["copies"].rglob("z-copy-*"))
    assert len(copies) == DUPLICATES and not set(copies) & chosen
    originals = {copy.replace("z-copy-", "") for copy in copies}
    assert originals <= chosen  # each original comes first in pool order, so it is the one kept
    dropped = result.meta["dedup"]["near_duplicates_dropped"]
    assert dropped >= DUPLICATES and len(chosen) == result.pool_size - dropped == 300 + DUPLICATES - dropped


@pytest.mark.slow
def test_series_subset_is_an_npz_that_reads_back(tmp_path):
    """Without --encoder: a bootstrap run on the pool; series are written as x and y in subset.npz."""
    result = curate("builtin:gunpoint", "builtin:gunpoint", 0.5, "coreset", out=tmp_path / "cur", bootstrap_steps=2)
    assert result.encoder == "bootstrap" and result.meta["encoder"]["method"] == "ts2vec"
    read = load_data(str(tmp_path / "cur" / "subset.npz"))
    pool = load_data("builtin:gunpoint").train
    assert len(read.train) == 25 == len(result.selected)
    np.testing.assert_allclose(read.train.x.numpy(), pool.x[result.selected].numpy(), rtol=1e-6)
    assert [read.train.classes[i] for i in read.train.y] == [pool.classes[pool.y[i]] for i in result.selected]


def test_table_subset_keeps_the_chosen_rows_and_every_column(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
    table = tmp_path / "pool.csv"
    frame.to_csv(table, index=False)
    options = DataOptions(label="target", ignore=("patient_id",))
    result = curate(
        str(table), str(table), 0.1, "random", out=tmp_path / "cur", bootstrap_steps=2, options=options, seed=3
    )
    import pandas as pd

    written = pd.read_csv(tmp_path / "cur" / "subset.csv")
    assert list(written.columns) == list(frame.columns)
    assert sorted(written["patient_id"]) == sorted(frame["patient_id"].iloc[result.selected])
    assert len(written) == round(0.1 * len(frame))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"--budget": "0"}, "--budget must be a fraction of the pool in (0, 1]"),
        ({"--budget": "1.5"}, "--budget must be a fraction of the pool in (0, 1]"),
        ({"--strategy": "corset"}, "unknown curation strategy 'corset'. Did you mean 'coreset'?"),
        ({"--pool": "EMPTY"}, "no images found"),
        ({"--pool": "TABLE"}, "the target"),
        ({"--threshold": "1.5"}, "--threshold must be"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(data, encoder, tmp_path, capsys, change, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    argv = {
        "--target": str(data["target"]),
        "--pool": str(data["pool"]),
        "--budget": "0.2",
        "--strategy": "coreset",
        "--encoder": str(encoder),
        "--out": str(tmp_path / "out"),
    }
    argv |= {
        k: v.replace("EMPTY", str(tmp_path / "empty")).replace("TABLE", str(tmp_path / "t.csv"))
        for k, v in change.items()
    }
    capsys.readouterr()
    assert main(["curate", *[part for pair in argv.items() for part in pair]]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and expected in err, err
    assert not (tmp_path / "out").exists()


def test_an_earlier_curation_is_kept_without_overwrite(data, encoder, tmp_path, capsys):
    out = tmp_path / "cur"
    assert _curate(data, encoder, out, "random", "0.1") == 0
    before = (out / "selection.csv").read_bytes()
    capsys.readouterr()
    assert _curate(data, encoder, out, "random", "0.2") == EXIT_USER_ERROR
    assert "already holds a curation; pass --overwrite" in capsys.readouterr().err
    assert (out / "selection.csv").read_bytes() == before
    assert _curate(data, encoder, out, "random", "0.2", "--overwrite") == 0
    assert len(_rows(out)) == 60 and len(list((out / "subset").rglob("*.png"))) == 60


@pytest.mark.slow
def test_mixture_keeps_the_best_scored_candidate(data, encoder, tmp_path):
    result = curate(
        str(data["target"]),
        str(data["pool"]),
        0.2,
        "mixture",
        encoder=encoder,
        out=tmp_path / "cur",
        proxy_runs=3,
        proxy_steps=3,
    )
    mixture = result.meta["mixture"]
    scores = [candidate["score"] for candidate in mixture["candidates"]]
    assert mixture["proxy_runs"] == len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert len(result.selected) == 60 == len(set(result.selected.tolist()))
    assert all(abs(sum(c["weights"]) - 1) < 1e-3 for c in mixture["candidates"])
    rows = _rows(tmp_path / "cur")
    assert {int(row["cluster"]) for row in rows} <= set(range(mixture["clusters"]))


def test_a_builtin_image_pool_is_written_as_pngs_in_class_folders(data, encoder, tmp_path):
    result = curate(str(data["target"]), "builtin:digits", 0.05, "random", encoder=encoder, out=tmp_path / "cur")
    pool = load_data("builtin:digits").train
    read = load_data(str(tmp_path / "cur" / "subset")).train
    assert len(read) == len(result.selected) == round(0.05 * len(pool))
    expected = sorted(pool.classes[pool.y[i]] for i in result.selected)
    assert sorted(read.classes[i] for i in read.y) == expected


def test_without_an_encoder_the_pool_is_read_once(data, tmp_path, monkeypatch):
    """The bootstrap run reads the pool (with the preprocessing it fits) and its read is the one embedded."""
    import selfsup.sources
    import selfsup.workflows.pretrain

    reads: list[str] = []
    real = selfsup.sources.load_data

    def counted(source, *args, **kwargs):
        reads.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(selfsup.sources, "load_data", counted)
    monkeypatch.setattr(selfsup.workflows.pretrain, "load_data", counted)
    options = DataOptions(image_size=16)
    result = curate(
        str(data["target"]), str(data["pool"]), 0.1, "coreset", out=tmp_path / "cur", options=options, bootstrap_steps=2
    )
    assert reads.count(str(data["pool"])) == 1 and reads.count(str(data["target"])) == 1
    assert result.encoder == "bootstrap" and len(result.selected) == 30 == len(_rows(tmp_path / "cur"))


@pytest.mark.parametrize(
    ("change", "said"),
    [("--budget", "--budget must be a fraction"), ("--strategy", "Did you mean 'coreset'?"), ("--threshold", "--thr")],
)
def test_bad_numbers_are_refused_before_torch_is_imported(tmp_path, change, said):
    import subprocess
    import sys

    bad = {"--budget": "0", "--strategy": "corset", "--threshold": "1.5"}[change]
    script = "import sys; from selfsup.cli import main; code = main(sys.argv[1:]); print('torch' in sys.modules); sys.exit(code)"
    argv = ["curate", "--target", "builtin:digits", "--pool", "builtin:digits", "--budget", "0.2", "--out", "out"]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, change, bad], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == EXIT_USER_ERROR and said in proc.stderr and "\n" not in proc.stderr.strip()
    assert proc.stdout.strip() == "False" and list(tmp_path.iterdir()) == []
