"""Weight decay only on 2+-dimensional weights (issue 16, point 5): its effect on one image, one table and one series cell.

Two variants of the same recipes, each pre-trained at the ``selfsup bench`` settings (``run_cell``: the
method's defaults, weight decay 1e-4, fixed budget of steps, training split only) and probed on the
dataset's test split (kNN and linear probe, hyperparameters by CV on train):

- ``all``: the old behaviour, AdamW decays every parameter (biases, norm weights, scalars too), obtained
  here by patching ``selfsup.training.module.decays`` to return True;
- ``2d``: the new rule (timm, nanoGPT), decay only on parameters of 2+ dimensions.

Each is the mean over seeds with a 95% interval computed as ``selfsup bench`` does (``leaderboard``:
Student t over seeds, combined in quadrature with the Wilson interval over test samples, since every
seed scores the same test split), next to the random-init and raw-input baselines of the same seeds and
the previous figures of the same cells in ``benchmarks/results/bench-cpu.json`` (all parameters decayed).
``all`` doubles as a control: it should reproduce the previous figures if nothing else changed.

Usage: python benchmarks/weight_decay.py [--seeds 2] [--threads 2] [--out benchmarks/results/weight_decay.json]
       [--previous benchmarks/results/bench-cpu.json] [--report-only]
Prints a markdown table; writes the rows, the comparison with the previous figures and every per-seed run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import selfsup.training.module as training_module
from selfsup.checkpoint import versions
from selfsup.workflows.bench import leaderboard, run_cell
from tables_series import prepare

CELLS = (("digits", "simclr", 300), ("breast_cancer", "scarf", 200), ("gunpoint", "ts2vec", 100))
VARIANTS = ("all", "2d")
PROTOCOLS = ("knn", "linear")


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """``all``: every parameter decayed (the old behaviour, patched in for this benchmark only); ``2d``: the rule as shipped."""
    rule = training_module.decays
    if name == "all":
        training_module.decays = lambda param: True
    try:
        yield
    finally:
        training_module.decays = rule


def summary(results: list[dict], previous: list[dict]) -> tuple[list[dict], list[dict]]:
    """Leaderboard rows per variant (baselines once, from the runs that probed them), and per cell, variant and
    protocol the pretrained row next to the previous one, with whether each mean lies in the other's interval."""
    rows = []
    for name in VARIANTS:  # baselines are probed by the "2d" runs only, so each appears once
        mine = [r for r in results if r["variant"] == name]
        methods = {r["method"] for r in mine}
        rows += [row | {"variant": name if row["encoder"] in methods else "baseline"} for row in leaderboard(mine)]
    comparison = []
    for dataset, method, _ in CELLS:
        for name in VARIANTS:
            for protocol in PROTOCOLS:
                new = _row(rows, dataset, method, protocol, name)
                old = _row(previous, dataset, method, protocol)
                if new is None or old is None:
                    continue
                comparison.append(
                    {
                        "dataset": dataset,
                        "method": method,
                        "variant": name,
                        "protocol": protocol,
                        "accuracy": new["accuracy"],
                        "ci_low": new["ci_low"],
                        "ci_high": new["ci_high"],
                        "per_seed": new.get("per_seed", [new["accuracy"]]),
                        "previous": old["accuracy"],
                        "previous_ci": [old["ci_low"], old["ci_high"]],
                        "previous_per_seed": old["per_seed"],
                        "within_previous_interval": old["ci_low"] <= new["accuracy"] <= old["ci_high"],
                        "previous_within_interval": new["ci_low"] <= old["accuracy"] <= new["ci_high"],
                    }
                )
    return rows, comparison


def _row(rows: list[dict], dataset: str, encoder: str, protocol: str, name: str | None = None) -> dict | None:
    found = [
        r
        for r in rows
        if r["group"] == dataset
        and r["encoder"] == encoder
        and r["protocol"] == protocol
        and (name is None or r.get("variant") == name)
    ]
    return found[0] if found else None


def pct(row: dict | None) -> str:
    if row is None:
        return ""
    return f"{100 * row['accuracy']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def markdown(rows: list[dict], previous: list[dict], results: list[dict]) -> str:
    lines = [
        "| dataset | encoder / method | weight decay on | kNN | linear | CPU s / run |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, method, steps in CELLS:
        for name in VARIANTS:
            runs = [r for r in results if r["dataset"] == dataset and r["variant"] == name]
            if not runs:
                continue
            cpu = sum(r["cpu_seconds"] for r in runs) / len(runs)
            label = "every parameter (old)" if name == "all" else "2+-D parameters (new)"
            lines.append(
                f"| {dataset} | {method}, {steps} steps | {label} | {pct(_row(rows, dataset, method, 'knn', name))} | "
                f"{pct(_row(rows, dataset, method, 'linear', name))} | {cpu:.0f} |"
            )
        old = [r for r in previous if r["group"] == dataset and r["encoder"] == method]
        if old:
            lines.append(
                f"| {dataset} | {method}, {steps} steps | previous (bench-cpu.json) | "
                f"{pct(_row(previous, dataset, method, 'knn'))} | {pct(_row(previous, dataset, method, 'linear'))} | "
                f"{old[0]['details'].get('cpu_seconds', '')} |"
            )
        for baseline in dict.fromkeys(
            r["encoder"] for r in rows if r["group"] == dataset and r["variant"] == "baseline"
        ):
            if baseline.startswith("random-init") or baseline == "raw-input":
                lines.append(
                    f"| {dataset} | {baseline} | | {pct(_row(rows, dataset, baseline, 'knn', 'baseline'))} | "
                    f"{pct(_row(rows, dataset, baseline, 'linear', 'baseline'))} | |"
                )
    return "\n".join(lines)


def header(seeds: int) -> str:
    return (
        f"AdamW, weight decay 1e-4, `selfsup bench` settings, {seeds} seeds; accuracy % on each dataset's test "
        f"split, mean [95% interval: t over seeds with the test-sample Wilson interval in quadrature, as bench-cpu.json].\n"
    )


def report(saved: dict) -> None:
    print(header(saved["meta"]["seeds"]))
    print(markdown(saved["rows"], saved["previous_rows"], saved["cells"]))
    print()
    for c in saved["comparison"]:
        print(
            f"{c['dataset']:14s} {c['variant']:3s} {c['protocol']:6s} {100 * c['accuracy']:5.1f} vs previous "
            f"{100 * c['previous']:5.1f}: {'inside' if c['within_previous_interval'] else 'OUTSIDE'} the previous interval; "
            f"per seed {[round(100 * a, 1) for a in c['per_seed']]} vs {[round(100 * a, 1) for a in c['previous_per_seed']]}"
        )


def save(out: Path, meta: dict, results: list[dict], previous: list[dict]) -> dict:
    rows, comparison = summary(results, previous)
    saved = {"meta": meta, "rows": rows, "comparison": comparison, "previous_rows": previous, "cells": results}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(saved, indent=1))
    os.replace(tmp, out)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/weight_decay.json")
    parser.add_argument(
        "--previous",
        default="benchmarks/results/bench-cpu.json",
        help="a `selfsup bench` leaderboard holding the same cells (all parameters decayed)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only print the table of the (finished or partial) --out file"
    )
    args = parser.parse_args()
    if args.report_only:
        report(json.loads(Path(args.out).read_text()))
        return
    out = prepare(args)
    previous = [
        r
        for r in json.loads(Path(args.previous).read_text())["rows"]
        if any(r["group"] == dataset for dataset, _, _ in CELLS)
    ]
    meta = {
        "title": "weight decay on every parameter vs on 2+-D parameters only (issue 16, point 5)",
        "cells": [f"{m} on {d}, {s} steps" for d, m, s in CELLS],
        "variants": {
            "all": "AdamW decays every parameter (the old behaviour; decays() patched to True)",
            "2d": "AdamW decays parameters of 2+ dimensions only (timm, nanoGPT)",
        },
        "weight_decay": 1e-4,
        "seeds": args.seeds,
        "threads": args.threads,
        "previous": args.previous,
        "confidence_interval": "95% Student-t interval of the mean over seeds, combined in quadrature with each "
        "seed's Wilson interval over test samples, each side on its own (selfsup.workflows.bench.leaderboard)",
        "versions": versions(),
    }
    results: list[dict] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, method, steps in CELLS:
            for seed in range(args.seeds):
                for name in VARIANTS:
                    with variant(name):  # baselines do not depend on the decay: probed once, with "2d"
                        row = run_cell(dataset, method, seed, steps, Path(tmp) / name, baselines=name == "2d")
                    results.append(row | {"variant": name})
                    pre = {r["protocol"]: r["accuracy"] for r in row["rows"] if r["encoder"] == "pretrained"}
                    print(
                        f"{dataset:14s} {method:7s} seed {seed} {name:3s}: kNN {pre['knn']:.3f} linear "
                        f"{pre['linear']:.3f} ({row['cpu_seconds']:.0f} CPU s, {row['wall_seconds']:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                    meta |= {
                        "wall_minutes": round((time.perf_counter() - start) / 60, 1),
                        "cpu_minutes": round((time.process_time() - cpu_start) / 60, 1),
                    }
                    saved = save(out, meta, results, previous)
    report(saved)


if __name__ == "__main__":
    main()
