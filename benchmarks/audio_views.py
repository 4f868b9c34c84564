"""Do pitch shift and time stretch help? SimCLR on builtin:spoken_words with BYOL-A's audio views (mixing, gain,
crop, SpecAugment masks) without and with ``pitch`` (semitones) and ``stretch`` (rate factor), at the same fixed
number of optimiser steps. (This result is why both are on by default.)

Each run pre-trains on the training voices and is probed on the unseen test voices (kNN with k by CV, linear
probe with C by CV, both on the training split); the random-init encoder and raw log-mel statistics are the
baselines. Mean over seeds with a 95% interval (``tables_series.fmt``: the t-interval over seeds with each seed's
Wilson interval over the test samples in quadrature), and each seed's pair of runs side by side (the
same seed draws the same split, initial weights and batches, so the difference is the views'). The spoken
words are synthetic speech (espeak-ng): 10 words, several voices, speeds and pitches.

Usage: python benchmarks/audio_views.py [--seeds 3] [--steps 100] [--pitch 3] [--stretch 1.25] [--threads 2]
       [--out benchmarks/results/audio_views.json]
       python benchmarks/audio_views.py --report benchmarks/results/audio_views.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.files import write_atomic
from selfsup.workflows.bench import run_cell
from tables_series import INTERVAL, accuracies, fmt, scored, with_notes


def markdown(runs: dict[str, list[dict]]) -> str:
    first = next(iter(runs.values()))
    lines = ["| encoder / views | kNN | linear | per seed (kNN / linear) | CPU s / run |", "|---|---|---|---|---|"]
    for name, encoder in (("raw log-mel statistics", "raw-input"), ("random-init audio_cnn", "random-init")):
        lines.append(f"| {name} | {fmt(scored(first, encoder, 'knn'))} | {fmt(scored(first, encoder, 'linear'))} | | |")
    for label, cells in runs.items():
        per_seed = ", ".join(
            f"{100 * accuracies([c], 'pretrained', 'knn')[0]:.1f} / "
            f"{100 * accuracies([c], 'pretrained', 'linear')[0]:.1f}"
            for c in cells
        )
        seconds = sum(c["cpu_seconds"] for c in cells) / len(cells)
        lines.append(
            f"| simclr, {label} | {fmt(scored(cells, 'pretrained', 'knn'))} | "
            f"{fmt(scored(cells, 'pretrained', 'linear'))} | {per_seed} | {seconds:.0f} |"
        )
    return with_notes("\n".join(lines))


def title(steps: int, seeds: int) -> str:
    return (
        f"\n### SimCLR views on builtin:spoken_words (synthetic speech), {steps} steps, {seeds} seeds, "
        f"test voices unseen, {INTERVAL}\n\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--pitch", type=float, default=3.0, help="largest pitch shift, semitones")
    parser.add_argument("--stretch", type=float, default=1.25, help="largest time-stretch rate factor")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/audio_views.json")
    parser.add_argument("--report", metavar="JSON", help="only print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(title(saved["args"]["steps"], saved["args"]["seeds"]) + markdown(saved["runs"]))
        return
    torch.set_num_threads(args.threads)
    configs = {
        "no pitch, no stretch (BYOL-A's views)": {"pitch": 0.0, "stretch": 1.0},
        f"+ pitch {args.pitch:g}, stretch {args.stretch:g}": {"pitch": args.pitch, "stretch": args.stretch},
    }
    runs: dict[str, list[dict]] = {label: [] for label in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for i, (label, view_args) in enumerate(configs.items()):
                cell = run_cell(
                    "spoken_words",
                    "simclr",
                    seed,
                    args.steps,
                    Path(tmp) / str(i),
                    baselines=i == 0,
                    view_args=view_args,
                )
                runs[label].append(cell | {"views": label, "view_args": view_args})
                print(f"seed {seed}, {label}: done ({cell['cpu_seconds']:.0f} CPU s)", file=sys.stderr, flush=True)
    table = markdown(runs)
    print(title(args.steps, args.seeds) + table)
    write_atomic(Path(args.out), json.dumps({"args": vars(args), "runs": runs, "table": table}, indent=1, default=str))


if __name__ == "__main__":
    main()
