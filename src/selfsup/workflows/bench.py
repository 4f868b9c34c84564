"""``selfsup bench``: a named suite of recipes x built-in datasets x seeds, summarised as a leaderboard.

Every cell pre-trains one method on one dataset's training split for a fixed budget of optimiser
steps at the method's defaults, then evaluates it on that dataset's own test split (kNN with k by CV,
linear probe with C by CV) next to the random-init and raw-input baselines of the same seed. Each
leaderboard row is the mean over seeds with a 95% t-interval over seeds; nothing is tuned on a test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfsup.datasets import builtin_datasets
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.evaluation.stats import over_seeds

BATCH = {"tabular": 128, "timeseries": 64, "image": 128, "audio": 64, "text": 32}


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    steps: int


SUITES: dict[str, tuple[Cell, ...]] = {
    # 22.5 minutes with 2 seeds on an idle 2-core CPU (measured 2026-11-23; results in benchmarks/results)
    "cpu": (
        Cell("digits", "simclr", 300),
        Cell("digits", "byol", 300),
        Cell("breast_cancer", "scarf", 200),
        Cell("breast_cancer", "vicreg", 200),
        Cell("wine", "scarf", 200),
        Cell("gunpoint", "ts2vec", 100),
        Cell("basicmotions", "ts2vec", 100),
        Cell("basicmotions", "simclr", 100),
        Cell("spoken_words", "simclr", 100),
    ),
    # seconds: checks that the machinery runs end to end
    "smoke": (Cell("iris", "simclr", 2), Cell("iris", "scarf", 2)),
}


def run_cell(
    dataset: str,
    method: str,
    seed: int,
    steps: int,
    workdir: Path,
    baselines: bool = True,
    view_args: dict[str, Any] | None = None,
) -> dict:
    """Pre-train ``method`` on ``builtin:dataset`` for ``steps`` steps with ``seed`` (and ``view_args``), then
    evaluate it (kNN and linear; with ``baselines``, the random-init and raw-input baselines of the same seed too)."""
    from selfsup.recipe import make_recipe
    from selfsup.workflows.pretrain import pretrain

    modality = builtin_datasets()[dataset].modality
    recipe = make_recipe(
        data=f"builtin:{dataset}",
        method=method,
        seed=seed,
        max_steps=steps,
        epochs=10_000,
        batch_size=BATCH[modality],
        warmup_epochs=0,
        online_probe=False,
        checkpoint_every=10_000,
        view_args=view_args or {},
        out=str(workdir / f"{dataset}-{method}-{seed}"),
    )
    start, wall = time.process_time(), time.perf_counter()
    run = pretrain(recipe, progress=False)
    cpu_seconds, wall_seconds = time.process_time() - start, time.perf_counter() - wall
    result = evaluate(run.encoder, run.splits, EvaluationOptions(seed=seed, baselines=baselines))
    return {
        "dataset": dataset,
        "modality": modality,
        "method": method,
        "encoder": run.encoder.config["name"],
        "seed": seed,
        "steps": steps,
        "cpu_seconds": round(cpu_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "split": result.meta["split"],
        "view_args": view_args or {},
        "rows": result.rows,
    }


def leaderboard(results: list[dict]) -> list[dict]:
    """Report rows grouped by dataset: each method's pretrained encoder, best first, then the baselines,
    each the mean over seeds with a 95% t-interval."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        mine = [r for r in results if r["dataset"] == dataset]
        entries: dict[tuple[str, str], list[dict]] = {}
        baselines: dict[tuple[str, str], dict[int, dict]] = {}
        for cell in mine:
            for row in cell["rows"]:
                if row["encoder"] == "pretrained":
                    entries.setdefault((cell["method"], row["protocol"]), []).append(row | {"cell": cell})
                else:  # one per seed and architecture: every method of a seed shares the baselines
                    name = f"random-init ({cell['encoder']})" if row["encoder"] == "random-init" else row["encoder"]
                    baselines.setdefault((name, row["protocol"]), {})[cell["seed"]] = row | {"cell": cell}
        group = [_summarise(dataset, name, protocol, same) for (name, protocol), same in entries.items()]
        score = {n: sum(r["accuracy"] for r in group if r["encoder"] == n) for n in {r["encoder"] for r in group}}
        rows += sorted(group, key=lambda r: (-score[r["encoder"]], r["encoder"]))
        rows += [
            _summarise(dataset, name, protocol, list(by_seed.values()))
            for (name, protocol), by_seed in baselines.items()
        ]
    return rows


def _summarise(dataset: str, name: str, protocol: str, same: list[dict]) -> dict:
    cells = [r["cell"] for r in same]
    details = {"seeds": [c["seed"] for c in cells], "split": cells[0]["split"]}
    if name == cells[0]["method"]:
        details |= {
            "encoder": cells[0]["encoder"],
            "steps": cells[0]["steps"],
            "cpu_seconds": round(sum(c["cpu_seconds"] for c in cells) / len(cells), 1),
        }
    # one seed: keep the evaluation's own interval (Wilson over test samples) rather than a zero-width one
    fixed_split = len({c["split"] for c in cells}) == 1  # then the seeds do not resample the test samples
    intervals = [(r["ci_low"], r["ci_high"]) for r in same] if fixed_split else None
    spread = (
        over_seeds([r["accuracy"] for r in same], intervals)
        if len(same) > 1
        else {"accuracy": same[0]["accuracy"], "ci_low": same[0]["ci_low"], "ci_high": same[0]["ci_high"]}
    )
    return {
        "group": dataset,
        "encoder": name,
        "protocol": protocol,
        **spread,
        "n_train": same[0].get("n_train"),
        "n_test": same[0]["n_test"],
        "details": details,
    }


def bench(suite: str, seeds: int, workdir: Path, on_cell: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """Run every cell of ``suite`` for seeds ``0 .. seeds - 1``; returns each cell's result (``run_cell``)."""
    if suite not in SUITES:
        raise unknown_name("suite", suite, SUITES)
    if seeds < 1:
        raise SelfsupError(f"--seeds must be at least 1, got {seeds}.")
    plan = [(cell, seed) for cell in SUITES[suite] for seed in range(seeds)]
    results = []
    for i, (cell, seed) in enumerate(plan, start=1):
        results.append(run_cell(cell.dataset, cell.method, seed, cell.steps, workdir))
        if on_cell is not None:
            on_cell(results[-1], i, len(plan))
    return results
