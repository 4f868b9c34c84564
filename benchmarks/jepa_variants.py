"""JEPA variants against the method they extend (issue 21): each preset next to plain ``jepa``, same budget.

- ``tjepa`` (T-JEPA's context-first feature masks and a regularisation token) vs ``jepa`` on a built-in table;
- ``ecg_jepa`` (ECG-JEPA's kept-share masks with runs along time, a register token, L1) vs ``jepa`` on a
  built-in series (sktime's bundled UCR copy);
- ``sar_jepa`` (SAR-JEPA's multi-scale gradient targets instead of an EMA encoder) vs ``jepa`` on digits.

Each run pre-trains the modality's token encoder (ft_transformer, patch_transformer, vit at their defaults) for
the same number of AdamW steps on the training split (the CPU seconds each took are listed), then probes the
test split: kNN (k=20) and a linear probe (C by 5-fold CV on train), as ``benchmarks/tables_series.py`` does.
Each number is the mean over seeds with a 95% interval (the t-interval over seeds combined with each seed's
Wilson interval over the test samples), next to the random-init encoder (plain architecture, same seeds) and
the raw features. Nothing is tuned on a test split: every method runs at its defaults.

Usage: python benchmarks/jepa_variants.py [--seeds 3] [--steps 100] [--threads 2] [--pairs tjepa,...]
       [--out benchmarks/results/jepa_variants.json] [--report JSON] [--merge A.json,B.json,C.json]
(the pairs can run as separate processes, --pairs X --datasets D --out X.json, then --merge them into --out).
Results: benchmarks/results/jepa_variants.json (100 steps), jepa_variants_300steps.json (--steps 300).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from selfsup.workflows.bench import BATCH
from tables_series import (
    INTERVAL,
    accuracies,
    add_run_args,
    fmt,
    prepare,
    print_saved,
    run_one,
    save_progress,
    scored,
    with_notes,
)

# (dataset, the variant, the method it extends); plain jepa runs first, so the seed's baselines are its encoder's
# basicmotions: 6 channels, ECG-JEPA's "same time steps masked in every lead" case (40 test series: wide intervals)
PAIRS = (("breast_cancer", "tjepa"), ("gunpoint", "ecg_jepa"), ("basicmotions", "ecg_jepa"), ("digits", "sar_jepa"))


def markdown(results: list[dict]) -> str:
    lines = ["| dataset | encoder / method | kNN | linear | CPU s / run |", "|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        runs = [r for r in results if r["dataset"] == dataset]
        first = [r for r in runs if r["method"] == "jepa"] or runs
        for name, label in (("raw-input", "raw features"), ("random-init", "random-init encoder")):
            lines.append(
                f"| {dataset} | {label} | {fmt(scored(first, name, 'knn'))} | {fmt(scored(first, name, 'linear'))} | |"
            )
        base_knn, base_lin = accuracies(first, "pretrained", "knn"), accuracies(first, "pretrained", "linear")
        for method in dict.fromkeys(r["method"] for r in runs):
            mruns = [r for r in runs if r["method"] == method]
            knn, lin = accuracies(mruns, "pretrained", "knn"), accuracies(mruns, "pretrained", "linear")
            delta = ""
            if method != "jepa" and len(knn) == len(base_knn):  # paired by seed: the same split and seed
                delta = (
                    f" (Δ vs jepa, paired by seed: kNN {100 * np.mean(np.subtract(knn, base_knn)):+.1f}, "
                    f"linear {100 * np.mean(np.subtract(lin, base_lin)):+.1f})"
                )
            cpu = np.mean([r["cpu_seconds"] for r in mruns])
            lines.append(
                f"| {dataset} | {method}{delta} | {fmt(scored(mruns, 'pretrained', 'knn'))} | "
                f"{fmt(scored(mruns, 'pretrained', 'linear'))} | {cpu:.0f} |"
            )
    return with_notes("\n".join(lines))


def header(steps: int, seeds: int) -> str:
    return (
        f"Fixed budget: {steps} AdamW steps per run (batch {BATCH['tabular']} tables, {BATCH['timeseries']} series, "
        f"{BATCH['image']} images, capped at the training-set size), default hyperparameters, {seeds} seeds "
        f"(0..{seeds - 1}); accuracy % on each dataset's test split, {INTERVAL}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(parser, "benchmarks/results/jepa_variants.json")
    parser.set_defaults(steps=100)
    parser.add_argument("--pairs", help="comma-separated variants to run (default: tjepa,ecg_jepa,sar_jepa)")
    parser.add_argument("--datasets", help="comma-separated datasets of PAIRS to run (default: all)")
    parser.add_argument("--merge", metavar="JSON,JSON", help="join the results of runs of separate --pairs into --out")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(Path(path).read_text()) for path in args.merge.split(",")]
        joined = {"steps": parts[0]["steps"], "seeds": parts[0]["seeds"], "results": []}
        for part in parts:
            if (part["steps"], part["seeds"]) != (joined["steps"], joined["seeds"]):
                raise SystemExit("the runs to merge used different --steps or --seeds")
            joined["results"] += part["results"]
        Path(args.out).write_text(json.dumps(joined, indent=1))
        args.report = args.out
    if args.report:
        print_saved(args.report, header, markdown)
        return
    out = prepare(args)
    only = args.pairs.split(",") if args.pairs else None
    datasets = args.datasets.split(",") if args.datasets else None
    results: list[dict] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):  # seeds outermost: a run cut short still has every pair
            for dataset, variant in PAIRS:
                if (only and variant not in only) or (datasets and dataset not in datasets):
                    continue
                for method in ("jepa", variant):
                    row = run_one(dataset, method, seed, args.steps, Path(tmp), baselines=method == "jepa")
                    results.append(row)
                    save_progress(out, args.steps, args.seeds, results)
    print(header(args.steps, args.seeds))
    print(markdown(results))
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
