"""Masked methods with views (issue 21): CropMAE against MAE (with its crop-and-flip views and without) on
digits, and TERA against MAE on series; each next to the random-init encoder of the same architecture.

Each run pre-trains for the same fixed number of optimiser steps (the CPU seconds each took are listed: a
CropMAE step encodes a whole crop plus one patch of the other, an MAE step a quarter of one view) on the
training split only, at default hyperparameters, then is probed on the dataset's test split: kNN (k=20) and a
linear probe (C by 5-fold CV on train). Numbers: mean over seeds [95% interval: the t-interval over seeds with
each seed's Wilson interval over the test samples in quadrature, ``tables_series.fmt``]; the paired column is
the mean per-seed difference to MAE with its t-interval over seeds (test-sampling noise is shared by both runs
of a seed, so it is left out). ▼ marks a mean not above the random-init encoder.

"mae, no views" is MAE given the images themselves (``crop_scale=(1, 1)``, no flip: the whole image), i.e. MAE
before it had the paper's crop-and-flip views. Digits are never flipped (the data's own view default).

Usage: python benchmarks/masked_views.py [--seeds 3] [--steps 200] [--series-steps 200] [--no-extra]
       [--datasets digits,gunpoint (also: italypowerdemand, spoken_words)] [--out benchmarks/results/masked_views.json]
       [--report JSON] [--threads 2] [--mae-only --steps N: MAE alone, e.g. at CropMAE's CPU seconds]
On busy shared cores pass --threads 1: two threads spin-waiting on each other made a step ~20x costlier in CPU
seconds (measured on 2026-12-03 at load ~15 on 2 cores; the recorded results used one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from tables_series import INTERVAL, accuracies, add_run_args, fmt, prepare, run_one, scored, with_notes

NO_VIEWS = {"crop_scale": (1.0, 1.0), "flip": False}
# dataset -> [(label, method, view args)]; the first is the reference the others are compared with
RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "digits": [("mae", "mae", {}), ("cropmae", "cropmae", {})],
    "italypowerdemand": [("mae", "mae", {}), ("tera", "tera", {})],
    "gunpoint": [("mae", "mae", {}), ("tera", "tera", {})],
    "spoken_words": [("mae", "mae", {}), ("tera", "tera", {})],  # costly on 2 cores: not in the default run
}
IMAGE_SETS = ("digits",)
# run after every dataset's main runs (the JSON is saved after each run, so a cut-short run keeps the main table)
EXTRA: list[tuple[str, str, str, dict]] = [("digits", "mae, no views", "mae", NO_VIEWS)]


def paired(runs: list[dict], reference: list[dict], protocol: str) -> str:
    """Mean per-seed difference (points) to the reference runs, with its 95% t-interval over seeds."""
    mine = dict(zip([r["seed"] for r in runs], accuracies(runs, "pretrained", protocol), strict=True))
    ref = dict(zip([r["seed"] for r in reference], accuracies(reference, "pretrained", protocol), strict=True))
    diffs = np.array([mine[s] - ref[s] for s in sorted(mine) if s in ref]) * 100
    if len(diffs) < 2:
        return f"{diffs.mean():+.1f}" if len(diffs) else ""
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return f"{diffs.mean():+.1f} [{diffs.mean() - half:+.1f}, {diffs.mean() + half:+.1f}]"


def markdown(results: list[dict]) -> str:
    lines = [
        "| dataset | encoder / method | kNN | linear | Δ kNN vs mae | Δ linear vs mae | CPU s / run | steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        runs = [r for r in results if r["dataset"] == dataset]
        labels = list(dict.fromkeys(r["label"] for r in runs))
        first = [r for r in runs if r["label"] == labels[0]]  # probed the baselines
        lines.append(
            f"| {dataset} | raw features | {fmt(scored(first, 'raw-input', 'knn'))} | "
            f"{fmt(scored(first, 'raw-input', 'linear'))} | | | | |"
        )
        encoder = first[0]["encoder"]
        random_knn, random_lin = accuracies(first, "random-init", "knn"), accuracies(first, "random-init", "linear")
        lines.append(
            f"| {dataset} | random-init {encoder} | {fmt(scored(first, 'random-init', 'knn'))} | "
            f"{fmt(scored(first, 'random-init', 'linear'))} | | | | |"
        )
        for label in labels:
            mine = [r for r in runs if r["label"] == label]
            knn, lin = accuracies(mine, "pretrained", "knn"), accuracies(mine, "pretrained", "linear")
            knn_mark = " ▼" if np.mean(knn) <= np.mean(random_knn) else ""
            lin_mark = " ▼" if np.mean(lin) <= np.mean(random_lin) else ""
            delta = ("", "") if label == labels[0] else (paired(mine, first, "knn"), paired(mine, first, "linear"))
            lines.append(
                f"| {dataset} | {label} ({mine[0]['encoder']}) | {fmt(scored(mine, 'pretrained', 'knn'))}{knn_mark} | "
                f"{fmt(scored(mine, 'pretrained', 'linear'))}{lin_mark} | {delta[0]} | {delta[1]} | "
                f"{np.mean([r['cpu_seconds'] for r in mine]):.0f} | {mine[0]['steps']} |"
            )
    return with_notes("\n".join(lines))


def header(seeds: int) -> str:
    return (
        f"Fixed budget of AdamW steps per run (batch 128 images, 64 series, capped at the training-set size), default "
        f"hyperparameters, token encoders at their defaults (vit, patch_transformer), {seeds} seeds; accuracy % on "
        f"each dataset's test split, {INTERVAL}. Δ: mean per-seed difference to mae in points [95% t-interval over "
        "seeds]. ▼: mean not above the random-init encoder of the same architecture.\n"
    )


def save(out: Path, args: argparse.Namespace, results: list[dict], wall: float) -> None:
    row = results[-1]
    knn = accuracies([row], "pretrained", "knn")[0]
    lin = accuracies([row], "pretrained", "linear")[0]
    print(
        f"{row['dataset']} {row['label']} seed {row['seed']}: kNN {knn:.3f} linear {lin:.3f} ({row['cpu_seconds']} CPU s)"
    )
    payload = {"seeds": args.seeds, "steps": args.steps, "series_steps": args.series_steps, "wall_seconds": wall}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload | {"results": results}, indent=1))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(parser, "benchmarks/results/masked_views.json")
    parser.set_defaults(steps=200)
    parser.add_argument("--series-steps", type=int, default=200, help="steps per run on series and audio")
    parser.add_argument("--datasets", default="digits,gunpoint")
    parser.add_argument("--no-extra", action="store_true", help="skip 'mae, no views'")
    parser.add_argument(
        "--mae-only", action="store_true", help="only MAE on the image sets, e.g. at --steps matching CropMAE's CPU s"
    )
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(header(saved["seeds"]))
        print(markdown(saved["results"]))
        return
    out = prepare(args)
    results: list[dict] = []
    start = time.perf_counter()
    datasets = args.datasets.split(",")
    plan = [(dataset, *run) for dataset in datasets for run in RUNS[dataset]]
    plan += [] if args.no_extra else [run for run in EXTRA if run[0] in datasets]
    if args.mae_only:  # the equal-CPU check: MAE for as many steps as CropMAE's CPU seconds buy
        plan = [(d, f"mae, {args.steps} steps", "mae", {}) for d in datasets if d in IMAGE_SETS]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (dataset, label, method, view_args) in enumerate(plan):
            steps = args.steps if dataset in IMAGE_SETS else args.series_steps
            first = label == RUNS[dataset][0][0] or args.mae_only  # probes the baselines
            for seed in range(args.seeds):
                row = run_one(dataset, method, seed, steps, Path(tmp) / str(i), baselines=first, view_args=view_args)
                results.append(row | {"label": label})
                save(out, args, results, round(time.perf_counter() - start, 1))
    print(header(args.seeds))
    print(markdown(results))
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
