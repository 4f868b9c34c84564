"""RankMe against the probes (issue 20, point 5): does the label-free effective rank order encoders as the kNN and
linear probes do?

The cells stored in ``benchmarks/results/bench-cpu.json`` hold probe accuracies but no RankMe, and their runs were
not kept, so they cannot be re-embedded. This re-runs the cheapest datasets of the ``selfsup bench`` cpu suite with
its own cells (``run_cell``: the method's defaults, the suite's step budget, the training split only, the dataset's
own test split), with more seeds so that each dataset has about ten encoders (a pretrained encoder per method and
seed, a random-init one per architecture and seed) in 5.6 CPU minutes; digits, gunpoint and
spoken_words are left out (one of their cells costs 1.5 to 11 CPU minutes). The seeds the stored file also holds
are checked against it (same accuracies).

Each encoder's RankMe (and alignment, uniformity) is computed on its training split as ``selfsup evaluate``
reports it (``evaluation.monitors.encoder_monitors``: at most 2,048 training samples; the random-init encoder built
as evaluate builds it). Spearman's rank correlation between RankMe and each probe's test accuracy is given per
dataset, pooled over every encoder (datasets mixed), and pooled over within-dataset ranks (each dataset's RankMe
and accuracy turned into ranks scaled to [0, 1] first), each with its two-sided p-value (``scipy.stats.spearmanr``,
ties by average ranks; with ten points and many tied accuracies, read the p-values as rough). The raw input's
monitors are listed but left out of the correlations: they live in another space than the encoders'.

Usage: python benchmarks/rankme.py [--threads 2] [--out benchmarks/results/rankme.json] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.checkpoint import load_encoder, versions
from selfsup.encoders import build_encoder, preprocessing_of
from selfsup.evaluation.embed import embed
from selfsup.evaluation.monitors import default_views, encoder_monitors
from selfsup.modalities import get_modality
from selfsup.sources import load_data
from selfsup.workflows.bench import SUITES, run_cell
from tables_series import prepare

# (dataset, method, seeds): cells of the cpu suite, at its step budgets
PLAN = (
    ("wine", "scarf", 6),
    ("breast_cancer", "scarf", 6),
    ("breast_cancer", "vicreg", 2),
    ("basicmotions", "ts2vec", 3),
    ("basicmotions", "simclr", 3),
)
PROTOCOLS = ("knn", "linear")
MONITORS = ("rankme", "alignment", "uniformity")


def steps_of(dataset: str, method: str) -> int:
    return next(c.steps for c in SUITES["cpu"] if (c.dataset, c.method) == (dataset, method))


def monitors_of(dataset: str, run: Path, seed: int) -> dict[str, dict[str, float]]:
    """The pretrained, random-init and raw-input monitors of one run on its dataset's training split."""
    encoder = load_encoder(run)
    splits = load_data(f"builtin:{dataset}", preprocessing=preprocessing_of(encoder))
    torch.manual_seed(seed)  # as evaluate builds its random-init copy
    random_init = build_encoder(encoder.config).eval()
    x = splits.train.float_samples()
    features = {
        "pretrained": embed(encoder, x),
        "random-init": embed(random_init, x),
        "raw-input": get_modality(splits.modality).raw_features(splits.train.x, encoder.config),
    }
    models = {"pretrained": encoder, "random-init": random_init}
    return encoder_monitors(features, models, x, default_views(splits, encoder.config), seed)


def points_of(cells: list[dict]) -> list[dict]:
    """One point per encoder: each method and seed's pretrained encoder, each architecture and seed's random-init
    (shared by the methods of that architecture and seed), the raw input once per dataset."""
    points: dict[tuple, dict] = {}
    for cell in cells:
        for row_encoder in ("pretrained", "random-init", "raw-input"):
            accuracy = {r["protocol"]: r["accuracy"] for r in cell["rows"] if r["encoder"] == row_encoder}
            if row_encoder == "pretrained":
                key: tuple = (cell["dataset"], cell["method"], cell["seed"])
                name = f"{cell['method']} seed {cell['seed']}"
            elif row_encoder == "random-init":
                key = (cell["dataset"], "random-init", cell["encoder"], cell["seed"])
                name = f"random-init ({cell['encoder']}) seed {cell['seed']}"
            else:
                key, name = (cell["dataset"], "raw-input"), "raw-input"
            point = {"dataset": cell["dataset"], "encoder": name, **cell["monitors"][row_encoder]}
            point |= {p: accuracy[p] for p in PROTOCOLS}
            if key in points and points[key]["rankme"] != point["rankme"]:  # not the same encoder after all
                key, point["encoder"] = (*key, cell["method"]), f"{name}, {cell['method']}'s"
            points.setdefault(key, point)
    return list(points.values())


def _spearman(a: list[float], b: list[float]) -> dict:
    rho, p = spearmanr(a, b)
    return {"rho": float(rho), "p": float(p), "n": len(a)}


def _within_ranks(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value's rank within its group, scaled to [0, 1]."""
    ranks = np.empty(len(values))
    for g in np.unique(groups):
        mine = groups == g
        ranks[mine] = (rankdata(values[mine]) - 1) / max(mine.sum() - 1, 1)
    return ranks


def correlations(points: list[dict]) -> list[dict]:
    """Spearman's rho of each monitor with each probe: per dataset, pooled, pooled over within-dataset ranks."""
    encoders = [p for p in points if p["encoder"] != "raw-input"]
    rows = []
    for monitor in MONITORS:
        mine = [p for p in encoders if monitor in p]
        for protocol in PROTOCOLS:
            for dataset in dict.fromkeys(p["dataset"] for p in mine):
                here = [p for p in mine if p["dataset"] == dataset]
                rows.append(
                    {"monitor": monitor, "protocol": protocol, "dataset": dataset}
                    | _spearman([p[monitor] for p in here], [p[protocol] for p in here])
                )
            rows.append(
                {"monitor": monitor, "protocol": protocol, "dataset": "pooled"}
                | _spearman([p[monitor] for p in mine], [p[protocol] for p in mine])
            )
            groups = np.array([p["dataset"] for p in mine])
            rows.append(
                {"monitor": monitor, "protocol": protocol, "dataset": "pooled, within-dataset ranks"}
                | _spearman(
                    _within_ranks(np.array([p[monitor] for p in mine]), groups).tolist(),
                    _within_ranks(np.array([p[protocol] for p in mine]), groups).tolist(),
                )
            )
    return rows


def stored_check(cells: list[dict], stored: list[dict]) -> dict:
    """How many re-run (cell, seed, protocol) pretrained accuracies equal those in the stored file."""
    same = total = 0
    for cell in cells:
        old = next(
            (
                c
                for c in stored
                if (c["dataset"], c["method"], c["seed"]) == (cell["dataset"], cell["method"], cell["seed"])
            ),
            None,
        )
        if old is None:
            continue
        for protocol in PROTOCOLS:
            new_acc = next(
                r["accuracy"] for r in cell["rows"] if (r["encoder"], r["protocol"]) == ("pretrained", protocol)
            )
            old_acc = next(
                r["accuracy"] for r in old["rows"] if (r["encoder"], r["protocol"]) == ("pretrained", protocol)
            )
            same += int(abs(new_acc - old_acc) < 1e-9)
            total += 1
    return {"equal": same, "compared": total}


def report(saved: dict) -> None:
    print(f"{saved['meta']['title']}; {saved['meta']['cpu_minutes']} CPU minutes\n")
    print("| dataset | encoder | RankMe | alignment | uniformity | kNN | linear |")
    print("|---|---|---|---|---|---|---|")
    for p in saved["points"]:
        cells = [f"{p[m]:.3f}" if m in p else "-" for m in ("alignment", "uniformity")]
        print(
            f"| {p['dataset']} | {p['encoder']} | {p['rankme']:.1f} | {' | '.join(cells)} | "
            f"{100 * p['knn']:.1f} | {100 * p['linear']:.1f} |"
        )
    print("\n| monitor | probe | dataset | n | Spearman rho | p |")
    print("|---|---|---|---|---|---|")
    for c in saved["correlations"]:
        print(f"| {c['monitor']} | {c['protocol']} | {c['dataset']} | {c['n']} | {c['rho']:+.2f} | {c['p']:.2g} |")
    check = saved["stored_check"]
    print(f"\nre-run pretrained accuracies equal to bench-cpu.json's: {check['equal']} of {check['compared']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/rankme.json")
    parser.add_argument("--stored", default="benchmarks/results/bench-cpu.json")
    parser.add_argument("--report-only", action="store_true", help="print the tables of the --out file")
    args = parser.parse_args()
    if args.report_only:
        report(json.loads(Path(args.out).read_text()))
        return
    out = prepare(args)
    stored = json.loads(Path(args.stored).read_text())["cells"]
    start = time.process_time()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, method, seeds in PLAN:
            for seed in range(seeds):
                cell = run_cell(dataset, method, seed, steps_of(dataset, method), Path(tmp))
                cell["monitors"] = monitors_of(dataset, Path(tmp) / f"{dataset}-{method}-{seed}", seed)
                cells.append(cell)
                print(f"{dataset} {method} seed {seed}: {cell['cpu_seconds']} CPU s", flush=True)
    points = points_of(cells)
    saved = {
        "meta": {
            "title": "RankMe vs probe accuracy on cells of the selfsup bench cpu suite (issue 20, point 5)",
            "plan": [f"{m} on {d}, {steps_of(d, m)} steps, seeds 0-{s - 1}" for d, m, s in PLAN],
            "cpu_minutes": round((time.process_time() - start) / 60, 1),
            "versions": versions(),
        },
        "points": points,
        "correlations": correlations(points),
        "stored_check": stored_check(cells, stored),
        "cells": cells,
    }
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(saved, indent=1, default=str))
    os.replace(tmp_out, out)
    report(saved)


if __name__ == "__main__":
    main()
