"""evaluate on a lazily read image folder: the same probes as on the folder read into memory, embedded through
DataLoader workers; the raw-input baseline is left out (it needs every raw sample in memory), fine-tuning refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from selfsup.cli import main
from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate


def _rows(result) -> dict[tuple[str, str], float]:
    return {(r["encoder"], r["protocol"]): r["accuracy"] for r in result.rows}


def test_lazy_folder_gives_the_in_memory_knn_and_linear_numbers(digits_folder, small_export) -> None:
    options = EvaluationOptions(protocols=("knn", "linear"), k=5, seed=3, accelerator="cpu")
    in_memory = evaluate(small_export, str(digits_folder), replace(options, read=DataOptions(in_memory="yes")))
    with pytest.warns(UserWarning, match="no raw-input baseline: .* read lazily"):
        lazy = evaluate(
            small_export,
            str(digits_folder),
            replace(options, read=DataOptions(in_memory="no")),
        )
    expected = {key: acc for key, acc in _rows(in_memory).items() if key[0] != "raw-input"}
    assert {key[0] for key in _rows(in_memory)} == {"pretrained", "random-init", "raw-input"}
    assert _rows(lazy) == pytest.approx(expected, abs=1e-9)  # same split (seed 3), same probes, same embeddings
    assert lazy.meta["split"] == in_memory.meta["split"] and lazy.meta["n_test"] == 30
    assert "raw-input: left out" in lazy.meta["baselines"]
    assert lazy.meta["monitors"]["pretrained"]["rankme"] == pytest.approx(
        in_memory.meta["monitors"]["pretrained"]["rankme"], rel=1e-5
    )


def test_finetune_on_a_lazy_folder_is_refused_before_any_work(digits_folder, small_export) -> None:
    options = EvaluationOptions(protocols=("finetune",), read=DataOptions(in_memory="no"), accelerator="cpu")
    with pytest.raises(SelfsupError, match="finetune protocol needs every sample in memory.*--in-memory yes"):
        evaluate(small_export, str(digits_folder), options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", ["evaluate", "embed"])
def test_gpu_without_cuda_is_one_line_and_exit_2(digits_folder, small_export, tmp_path, capsys, command) -> None:
    out = tmp_path / ("report" if command == "evaluate" else "emb.parquet")
    argv = [
        command,
        "--encoder",
        str(small_export),
        "--data",
        str(digits_folder),
        "--out",
        str(out),
        "--accelerator",
        "gpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA GPU" in err and "--accelerator cpu" in err
    assert main([*argv[:-2], "--devices", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one device" in err
    assert list(tmp_path.iterdir()) == []
