"""Quality benchmark for tables and time series (issue 3): every applicable method on every built-in set.

For each built-in table and series dataset, each method that fits it is pre-trained for the same fixed
budget of optimiser steps (the CPU seconds each run took are reported), on the training split only,
then probed on the dataset's test split: kNN (k=20) and a linear probe (C by 5-fold CV on train).
Every number is the mean over seeds with a 95% interval (``fmt``: the t-interval over seeds combined with each
seed's Wilson interval over the test samples, as the harness does on a fixed split), next to the random-init
encoder (same architecture, untrained, same seeds), the raw features and, for tables, gradient-boosted
trees on the raw features. No hyperparameter is tuned on a test split: methods run at their defaults.

Usage: python benchmarks/tables_series.py [--seeds 3] [--steps 100] [--datasets a,b] [--methods a,b]
       [--threads 2] [--out benchmarks/results/tables_series.json]
Prints a markdown table; writes every per-seed row to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reinterval import wilson_of
from selfsup.datasets import builtin_datasets
from selfsup.evaluation.stats import over_seeds, seed_interval
from selfsup.methods import METHODS
from selfsup.workflows.bench import BATCH, run_cell

TABLES = ("breast_cancer", "wine", "iris")
SERIES = ("gunpoint", "italypowerdemand", "basicmotions", "japanesevowels")  # arrowhead: --datasets arrowhead
run_one = run_cell  # one pre-train + evaluate cell, shared with `selfsup bench`
# what fmt's intervals are, for the tables' headers
INTERVAL = (
    "mean [95% interval: the t-interval over seeds combined in quadrature, each side on its own, with each seed's "
    "Wilson interval over the test samples, since every seed scores the same test split]"
)
T_ONLY = "†"  # fmt's mark on an interval that leaves out test-sampling uncertainty; with_notes explains it
T_ONLY_NOTE = (
    f"{T_ONLY} 95% t-interval over seeds alone (no test-sample count stored, or seeds on different test splits): "
    "on a fixed test split it leaves out test-sampling uncertainty, and seeds that agree give it zero width."
)


def applicable_methods(modality: str, only: list[str] | None) -> list[str]:
    names = [n for n, cls in sorted(METHODS.items()) if cls.modalities is None or modality in cls.modalities]
    return [n for n in names if not only or n in only]


def save_progress(out: Path, steps: int, seeds: int, results: list[dict]) -> None:
    """Print the newest run's line and rewrite the JSON of every run so far (temporary name, then rename)."""
    row = results[-1]
    pre = {r["protocol"]: r["accuracy"] for r in row["rows"] if r["encoder"] == "pretrained"}
    print(
        f"{row['dataset']:18s} {row['method']:13s} seed {row['seed']}: kNN {pre['knn']:.3f} "
        f"linear {pre['linear']:.3f} ({row['cpu_seconds']:.0f} CPU s)",
        file=sys.stderr,
        flush=True,
    )
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps({"steps": steps, "seeds": seeds, "results": results}, indent=1))
    os.replace(tmp_out, out)


def interval(scores: Sequence[float | Mapping[str, Any]]) -> tuple[float, float, float, bool]:
    """Mean and 95% interval in percent, clipped to [0, 100], and whether it is the t-interval over seeds alone.

    ``scores``: one per seed, a result row (``accuracy`` and ``n_test``, or ``accuracy`` and its own interval
    ``ci_low``/``ci_high``) or a bare accuracy. When every seed has an interval over its test samples (Wilson's,
    from ``n_test``), the seeds scored the same test split, so the interval is ``over_seeds``: Student t over the
    seeds combined in quadrature, each side on its own, with each seed's interval, as ``selfsup bench`` computes
    it (one seed: its Wilson interval; never zero-width). Otherwise the t-interval over seeds (NaN for one seed).
    """
    values = [float(s["accuracy"]) if isinstance(s, Mapping) else float(s) for s in scores]
    samples = [i for i in map(_sample_interval, scores) if i is not None]
    if values and len(samples) == len(values):
        spread = over_seeds(values, samples)
        return 100 * spread["accuracy"], 100 * spread["ci_low"], 100 * spread["ci_high"], False
    if len(values) < 2:
        return 100 * float(np.mean(values)), float("nan"), float("nan"), True
    mean, low, high = seed_interval(values)
    return 100 * mean, max(0.0, 100 * low), min(100.0, 100 * high), True


def _sample_interval(score: float | Mapping[str, Any]) -> tuple[float, float] | None:
    """One seed's 95% interval over its test samples: Wilson's from ``n_test``, else the row's own, else None."""
    if not isinstance(score, Mapping):
        return None
    if score.get("n_test"):
        return wilson_of(float(score["accuracy"]), int(score["n_test"]))  # refuses a non-count accuracy
    if "ci_low" in score and "ci_high" in score:
        return float(score["ci_low"]), float(score["ci_high"])
    return None


def fmt(scores: Sequence[float | Mapping[str, Any]]) -> str:
    """``mean [low, high]`` in percent (``interval``); a t-interval over seeds alone is marked ``T_ONLY``."""
    mean, low, high, t_only = interval(scores)
    if np.isnan(low):
        return f"{mean:.1f}"
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]" + (T_ONLY if t_only else "")


def with_notes(table: str) -> str:
    """``table``, followed by the footnote of ``T_ONLY`` when one of its intervals carries it."""
    return f"{table}\n\n{T_ONLY_NOTE}" if T_ONLY in table else table


def scored(runs: list[dict], encoder: str, protocol: str) -> list[dict] | list[float]:
    """What ``fmt`` takes for ``encoder`` under ``protocol``, one per run: its result rows (each with ``n_test``),
    or only their accuracies when the runs scored different test splits (then the t-interval over seeds holds)."""
    rows = [r for run in runs for r in run["rows"] if r["encoder"] == encoder and r["protocol"] == protocol]
    if len({run.get("split") for run in runs}) > 1:
        return [r["accuracy"] for r in rows]
    return rows


def accuracies(runs: list[dict], encoder: str, protocol: str) -> list[float]:
    return [r["accuracy"] for run in runs for r in run["rows"] if r["encoder"] == encoder and r["protocol"] == protocol]


def compared(result: dict, encoder: str, protocol: str) -> dict | float:
    """What ``fmt`` takes for ``encoder`` under ``protocol`` in a ``selfsup compare`` result: its accuracy with the
    test-sample count (one seed), or the bare accuracy (a mean over several seeds is no count of test samples)."""
    accuracy = next(
        a["accuracy"] for a in result["accuracies"] if a["encoder"] == encoder and a["protocol"] == protocol
    )
    return {"accuracy": accuracy, "n_test": result["n_test"]} if result.get("seeds", 1) == 1 else accuracy


def markdown(results: list[dict]) -> str:
    lines = ["| dataset | encoder / method | kNN | linear | CPU s / run |", "|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        runs = [r for r in results if r["dataset"] == dataset]
        first = [r for r in runs if r["method"] == runs[0]["method"]]  # baselines depend on the seed only
        random_knn, random_lin = accuracies(first, "random-init", "knn"), accuracies(first, "random-init", "linear")
        lines.append(
            f"| {dataset} | raw features | {fmt(scored(first, 'raw-input', 'knn'))} | "
            f"{fmt(scored(first, 'raw-input', 'linear'))} | |"
        )
        if accuracies(first, "raw-input", "gbdt"):
            lines.append(
                f"| {dataset} | gradient-boosted trees (raw) | | {fmt(scored(first, 'raw-input', 'gbdt'))} (supervised) | |"
            )
        lines.append(
            f"| {dataset} | random-init encoder | {fmt(scored(first, 'random-init', 'knn'))} | "
            f"{fmt(scored(first, 'random-init', 'linear'))} | |"
        )
        for method in dict.fromkeys(r["method"] for r in runs):
            mruns = [r for r in runs if r["method"] == method]
            knn, lin = accuracies(mruns, "pretrained", "knn"), accuracies(mruns, "pretrained", "linear")
            # a mean at or below random-init's is a finding, marked on each protocol separately
            knn_mark = " ▼" if np.mean(knn) <= np.mean(random_knn) else ""
            lin_mark = " ▼" if np.mean(lin) <= np.mean(random_lin) else ""
            cpu = np.mean([r["cpu_seconds"] for r in mruns])
            lines.append(
                f"| {dataset} | {method} | {fmt(scored(mruns, 'pretrained', 'knn'))}{knn_mark} | "
                f"{fmt(scored(mruns, 'pretrained', 'linear'))}{lin_mark} | {cpu:.0f} |"
            )
    return with_notes("\n".join(lines))


def add_run_args(parser: argparse.ArgumentParser, out: str) -> None:
    """The flags every quality benchmark shares: seeds, step budget, threads, output, report-only mode."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps per pre-training run (the budget)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=out)
    parser.add_argument("--report", metavar="JSON", help="only print the table of a finished (or partial) run")


def print_saved(path: str, header: Callable[[int, int], str], markdown: Callable[[list[dict]], str]) -> None:
    saved = json.loads(Path(path).read_text())
    print(header(saved["steps"], saved["seeds"]))
    print(markdown(saved["results"]))


def prepare(args: argparse.Namespace) -> Path:
    """Threads and quiet logs for a run; the output path, its folder made."""
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(parser, "benchmarks/results/tables_series.json")
    parser.add_argument("--datasets", help="comma-separated built-in names (default: 3 tables, 4 series)")
    parser.add_argument("--methods", help="comma-separated method names (default: every applicable one)")
    args = parser.parse_args()
    if args.report:
        print_saved(args.report, header, markdown)
        return
    out = prepare(args)
    datasets = args.datasets.split(",") if args.datasets else list(TABLES + SERIES)
    only = args.methods.split(",") if args.methods else None
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            for method in applicable_methods(builtin_datasets()[dataset].modality, only):
                for seed in range(args.seeds):
                    first = not any(r["dataset"] == dataset and r["seed"] == seed for r in results)
                    row = run_one(dataset, method, seed, args.steps, Path(tmp), baselines=first)
                    results.append(row)
                    save_progress(out, args.steps, args.seeds, results)
    print(header(args.steps, args.seeds))
    print(markdown(results))


def header(steps: int, seeds: int) -> str:
    return (
        f"Fixed budget: {steps} AdamW steps per run (batch {BATCH['tabular']} tables, {BATCH['timeseries']} "
        f"series, capped at the training-set size; the CPU seconds each run took are listed), default encoder "
        f"and method hyperparameters, {seeds} seeds; accuracy % on each dataset's test split, {INTERVAL}. "
        "▼: mean not above the random-init encoder's.\n"
    )


def earlier(out: Path, steps: int, batch_size: int) -> dict:
    """The seeds already saved in OUT by a run with the same settings (they are kept and not run again)."""
    fresh: dict = {"steps": steps, "batch_size": batch_size, "runs": []}
    if not out.exists():
        return fresh
    saved = json.loads(out.read_text())
    if (saved.get("steps"), saved.get("batch_size")) != (steps, batch_size):
        return fresh
    print(f"{out}: keeping the {len(saved['runs'])} seed(s) saved there; running the rest", file=sys.stderr)
    return saved


if __name__ == "__main__":
    main()
