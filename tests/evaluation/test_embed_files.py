"""``selfsup embed`` writes embeddings block by block: a .npy filled in place, a .parquet one row group a block, or
a folder of Parquet shards; read back, they are the in-memory embeddings with their ids and labels, whether the
data was read lazily or into memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from selfsup.checkpoint import load_encoder
from selfsup.cli import main
from selfsup.data import DataOptions
from selfsup.evaluation.embed import embed
from selfsup.sources import load_data
from selfsup.workflows.export import write_embeddings


def _expected(export: Path, folder: Path) -> tuple[list[str], list[str], np.ndarray]:
    encoder = load_encoder(export)
    data = load_data(str(folder), DataOptions(in_memory="yes"), preprocessing=encoder.preprocessing).train
    assert data.classes is not None
    return data.ids, [data.classes[i] for i in data.y.tolist()], embed(encoder, data.float_samples())


@pytest.mark.parametrize("in_memory", ["no", "yes"])
def test_parquet_shards_round_trip(digits_folder, small_export, tmp_path, in_memory) -> None:
    ids, labels, emb = _expected(small_export, digits_folder)
    out = tmp_path / "emb"
    options = DataOptions(in_memory=in_memory)
    write_embeddings(small_export, str(digits_folder), out, options=options, chunk_rows=32, accelerator="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["_embeddings.json"] + [f"part-0000{i}.parquet" for i in range(4)]
    assert [pq.read_metadata(p).num_rows for p in sorted(out.glob("part-*"))] == [32, 32, 32, 24]
    described = json.loads((out / "_embeddings.json").read_text())
    assert described["shape"] == [120, emb.shape[1]] and described["parts"] == 4
    frame = pd.read_parquet(out)  # the folder reads as one table
    assert list(frame["id"]) == ids and list(frame["label"]) == labels and set(frame["split"]) == {"train"}
    np.testing.assert_allclose(frame.filter(regex=r"^e\d+$").to_numpy(), emb, rtol=1e-5, atol=1e-6)
    assert frame.filter(regex=r"^e\d+$").dtypes.unique().tolist() == [np.float32]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb"]  # no temporary folder left


def test_npy_and_parquet_files_are_written_block_by_block(digits_folder, small_export, tmp_path) -> None:
    ids, labels, emb = _expected(small_export, digits_folder)
    options = DataOptions(in_memory="no")
    for name in ("emb.npy", "emb.parquet"):
        write_embeddings(small_export, str(digits_folder), tmp_path / name, options=options, chunk_rows=50)
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), emb, rtol=1e-5, atol=1e-6)
    assert pq.read_metadata(tmp_path / "emb.parquet").num_row_groups == 3  # 50 + 50 + 20 rows
    frame = pd.read_parquet(tmp_path / "emb.parquet")
    assert list(frame.columns[:3]) == ["id", "split", "label"]
    assert list(frame["id"]) == ids and list(frame["label"]) == labels
    np.testing.assert_allclose(frame.filter(regex=r"^e\d+$").to_numpy(), emb, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "emb.npy.json", "emb.parquet"]


def _fails(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_shard_folder_is_replaced_only_when_selfsup_wrote_it(digits_folder, small_export, tmp_path, capsys) -> None:
    out = tmp_path / "emb"
    argv = ["embed", "--encoder", str(small_export), "--data", str(digits_folder), "--out", str(out)]
    assert main([*argv, "--accelerator", "cpu"]) == 0
    first = (out / "part-00000.parquet").read_bytes()
    assert "--overwrite" in _fails(capsys, argv)
    assert main([*argv, "--overwrite", "--in-memory", "no"]) == 0
    assert (out / "part-00000.parquet").read_bytes() == first  # the same embeddings, written anew
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    err = _fails(capsys, [*argv[:-1], str(mine), "--overwrite"])
    assert "did not write" in err and (mine / "notes.txt").read_text() == "mine"
    (out / "notes.txt").write_text("mine")  # a user's file in selfsup's folder: no longer selfsup's alone
    assert "did not write" in _fails(capsys, [*argv, "--overwrite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb", "mine"]


def test_an_unreadable_image_met_while_embedding_lazily_leaves_nothing(digits_folder, tmp_path, small_export, capsys):
    import shutil

    folder = tmp_path / "digits"
    shutil.copytree(digits_folder, folder)
    (folder / "3" / "3_5.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    argv = ["embed", "--encoder", str(small_export), "--data", str(folder), "--out", str(out), "--in-memory", "no"]
    err = _fails(capsys, argv)  # the worker's error, in its own line
    assert "3_5.png" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]
