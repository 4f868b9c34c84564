"""selfsup bench: the leaderboard's arithmetic on known cells, and the smoke suite end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.evaluation.stats import seed_interval
from selfsup.workflows.bench import SUITES, leaderboard


def _cell(method: str, seed: int, pretrained: float, random_init: float) -> dict:
    def row(encoder: str, accuracy: float) -> dict:
        return {
            "encoder": encoder,
            "protocol": "knn",
            "accuracy": accuracy,
            "ci_low": 0,
            "ci_high": 1,
            "n_train": 10,
            "n_test": 5,
        }

    return {
        "dataset": "toy",
        "method": method,
        "encoder": "mlp",
        "seed": seed,
        "steps": 3,
        "cpu_seconds": 2.0,
        "split": "own",
        "rows": [row("pretrained", pretrained), row("random-init", random_init), row("raw-input", 0.5)],
    }


def test_leaderboard_ranks_methods_and_shares_baselines_across_methods() -> None:
    cells = [_cell("a", 0, 0.6, 0.4), _cell("a", 1, 0.8, 0.2), _cell("b", 0, 0.9, 0.4), _cell("b", 1, 0.9, 0.2)]
    rows = leaderboard(cells)
    assert [r["encoder"] for r in rows] == ["b", "a", "random-init (mlp)", "raw-input"]  # best method first
    a = rows[1]
    assert a["accuracy"] == pytest.approx(0.7) and a["per_seed"] == [0.6, 0.8]
    # the same split every seed: the seeds' t-interval and each side of the test-sample intervals ([0, 1] here:
    # on average 0.7 below the accuracy and 0.3 above) combine
    t_half = seed_interval([0.6, 0.8])[2] - 0.7
    below, above = np.sqrt(t_half**2 + 0.7**2), np.sqrt(t_half**2 + 0.3**2)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((max(0.0, 0.7 - below), min(1.0, 0.7 + above)))
    assert rows[2]["per_seed"] == [0.4, 0.2]  # one random-init per seed, not one per method and seed
    assert rows[0]["details"]["steps"] == 3 and rows[0]["group"] == "toy"


@pytest.mark.slow
def test_smoke_suite_writes_a_leaderboard_and_keeps_it(tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    assert main(["bench", "--suite", "smoke", "--seeds", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    methods = {c.method for c in SUITES["smoke"]}
    assert methods <= {r["encoder"] for r in results["rows"]} and {"raw-input"} <= {
        r["encoder"] for r in results["rows"]
    }
    assert results["meta"]["suite"] == "smoke" and len(json.loads((out / "cells.json").read_text())) == len(methods)
    page = (out / "report.html").read_text()
    assert "<th>data</th>" in page and "selfsup bench: suite &#x27;smoke&#x27;" in page
    assert main(["bench", "--suite", "smoke", "--seeds", "1", "--out", str(out)]) == EXIT_USER_ERROR
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite replaces the leaderboard and its runs, nothing else
    (out / "results.json").write_text(json.dumps(results | {"meta": results["meta"] | {"old": True}}))
    shutil.copytree(out / "runs" / "iris-simclr-0", out / "runs" / "iris-simclr-9")  # an earlier bench's cell
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "mine").mkdir()
    (out / "runs" / "mine" / "keep.txt").write_text("mine too")
    assert main(["bench", "--suite", "smoke", "--seeds", "1", "--out", str(out), "--overwrite"]) == 0
    assert "old" not in json.loads((out / "results.json").read_text())["meta"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs" / "mine" / "keep.txt").read_text() == "mine too"
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["iris-scarf-0", "iris-simclr-0", "mine"]
    assert len(json.loads((out / "cells.json").read_text())) == len(methods)
    assert main(["bench", "--suite", "nope", "--out", str(tmp_path / "other")]) == EXIT_USER_ERROR
    assert "unknown suite 'nope'" in capsys.readouterr().err and not (tmp_path / "other").exists()
