"""Quality benchmark for the masked methods (issue 4): MAE, MFM, data2vec and JEPA on one image, one
series and one table dataset, next to the best view-based method of the earlier benchmarks and the baselines.

Each method is pre-trained for the same fixed budget of optimiser steps (the CPU seconds each run took
are listed) on the training split only, with default hyperparameters, then probed on the dataset's
test split: kNN (k=20) and a linear probe (C by 5-fold CV on train). Masked methods use the data's
token encoder (vit, patch_transformer, ft_transformer); the view-based method its default encoder
(small_cnn, dilated_conv, mlp). Each gets the random-init baseline of its own architecture (same
seeds), ▼ marking a mean not above it. Numbers: mean over seeds [95% interval: the t-interval over seeds with
each seed's Wilson interval over the test samples in quadrature, ``tables_series.fmt``].

The view-based method per dataset is the one that did best in the earlier benchmarks: SimCLR on digits
(the quickstart), Barlow Twins on ItalyPowerDemand (best view-based linear probe in
``results/series.json``), SimCLR on breast cancer (best linear probe, tied, in ``results/tables.json``).

Usage: python benchmarks/masked.py [--seeds 3] [--steps 100] [--datasets digits,italypowerdemand,breast_cancer]
       [--methods mae,mfm,data2vec,jepa] [--no-view-method] [--out benchmarks/results/masked.json] [--report JSON]

A masked step costs far fewer CPU seconds than a two-view step on images and series (the encoder
sees a quarter of the tokens, one view), so the equal-step table is followed by runs with more
steps (``--no-view-method --steps N``) that match the view method's CPU seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
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

VIEW_METHOD = {"digits": "simclr", "italypowerdemand": "barlow_twins", "breast_cancer": "simclr"}
MASKED = ("mae", "mfm", "data2vec", "jepa")


def markdown(results: list[dict]) -> str:
    lines = ["| dataset | encoder / method | kNN | linear | CPU s / run |", "|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        runs = [r for r in results if r["dataset"] == dataset]
        first = [r for r in runs if r["method"] == runs[0]["method"]]  # probed the baselines
        lines.append(
            f"| {dataset} | raw features | {fmt(scored(first, 'raw-input', 'knn'))} | "
            f"{fmt(scored(first, 'raw-input', 'linear'))} | |"
        )
        if accuracies(first, "raw-input", "gbdt"):
            lines.append(
                f"| {dataset} | gradient-boosted trees (raw) | | {fmt(scored(first, 'raw-input', 'gbdt'))} (supervised) | |"
            )
        random_init = {}
        for encoder in dict.fromkeys(r["encoder"] for r in runs):
            one = [r for r in runs if r["encoder"] == encoder]
            one = [r for r in one if r["method"] == one[0]["method"]]  # the run that probed its baselines
            random_init[encoder] = (accuracies(one, "random-init", "knn"), accuracies(one, "random-init", "linear"))
            lines.append(
                f"| {dataset} | random-init {encoder} | {fmt(scored(one, 'random-init', 'knn'))} | "
                f"{fmt(scored(one, 'random-init', 'linear'))} | |"
            )
        for method in dict.fromkeys(r["method"] for r in runs):
            mruns = [r for r in runs if r["method"] == method]
            encoder = mruns[0]["encoder"]
            knn, lin = accuracies(mruns, "pretrained", "knn"), accuracies(mruns, "pretrained", "linear")
            knn_mark = " ▼" if np.mean(knn) <= np.mean(random_init[encoder][0]) else ""
            lin_mark = " ▼" if np.mean(lin) <= np.mean(random_init[encoder][1]) else ""
            cpu = np.mean([r["cpu_seconds"] for r in mruns])
            lines.append(
                f"| {dataset} | {method} ({encoder}) | {fmt(scored(mruns, 'pretrained', 'knn'))}{knn_mark} | "
                f"{fmt(scored(mruns, 'pretrained', 'linear'))}{lin_mark} | {cpu:.0f} |"
            )
    return with_notes("\n".join(lines))


def header(steps: int, seeds: int) -> str:
    return (
        f"Fixed budget: {steps} AdamW steps per run (batch 128 images and tables, 64 series, capped at the "
        f"training-set size), default hyperparameters, {seeds} seeds; accuracy % on each dataset's test split, "
        f"{INTERVAL}. ▼: mean not above the random-init encoder of the same architecture.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(parser, "benchmarks/results/masked.json")
    parser.add_argument("--datasets", default=",".join(VIEW_METHOD))
    parser.add_argument("--methods", default=",".join(MASKED), help="masked methods (the view-based one is added)")
    parser.add_argument(
        "--no-view-method",
        action="store_true",
        help="masked methods only (e.g. a longer budget matching the view method's CPU seconds)",
    )
    args = parser.parse_args()
    if args.report:
        print_saved(args.report, header, markdown)
        return
    out = prepare(args)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            view = [] if args.no_view_method else [VIEW_METHOD[dataset]]
            for method in args.methods.split(",") + view:
                for seed in range(args.seeds):
                    # baselines depend on the seed and the architecture only: probed once for each
                    first = method in (args.methods.split(",")[0], VIEW_METHOD[dataset])
                    row = run_one(dataset, method, seed, args.steps, Path(tmp), baselines=first)
                    results.append(row)
                    save_progress(out, args.steps, args.seeds, results)
    print(header(args.steps, args.seeds))
    print(markdown(results))


if __name__ == "__main__":
    main()
