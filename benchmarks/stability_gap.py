"""The stability gap, watched while it happens (issue 18, part 4): ``--watch`` on continued pre-training.

Source domain digits 0-4, target digits 5-9 (built-in digits as two image folders, as in ``continued.py``). A source
checkpoint is pre-trained with SimCLR on the source; it is then continued on the target with ``--watch SOURCE``
(nearest-class-mean accuracy of the source test split, class means from its training split, every few steps, and of
the target's held-out split), two ways, both with SimCLR's heads carried from the source run (so no head warm-up) and
no LR warm-up, cosine decay: at SimCLR's default peak LR (1e-3), and at 10x it. Per seed and way: the source accuracy at the
start, its lowest point (the dip) and where it ends; the curves of seed 0 go to one PNG.

Usage: python benchmarks/stability_gap.py [--seeds 3] [--source-steps 300] [--steps 100] [--every 5]
       python benchmarks/stability_gap.py --report benchmarks/results/stability_gap.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from continued import COMMON, SOURCE_CLASSES, TARGET_CLASSES, write_domain
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain
from tables_series import fmt, with_notes

WAYS = {"default LR (1e-3)": {}, "10x LR (1e-2)": {"lr": 1e-2}}


def curve(run: Path, name: str) -> list[tuple[int, float]]:
    with (run / "watch.csv").open() as f:
        return [(int(r["step"]), 100 * float(r["ncm_accuracy"])) for r in csv.DictReader(f) if r["set"] == name]


def plot(curves: dict[str, dict[str, list[tuple[int, float]]]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5), layout="constrained")
    for i, domain in enumerate(("source", "target")):
        ax = figure.add_subplot(1, 2, i + 1)
        for way, sets in curves.items():
            ax.plot([s for s, _ in sets[domain]], [a for _, a in sets[domain]], marker=".", label=way)
        ax.set_title(f"{domain} (digits {'0-4' if domain == 'source' else '5-9'})")
        ax.set_xlabel("step of continued pre-training")
        ax.set_ylabel("nearest-class-mean accuracy (%)")
    figure.axes[0].legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    path.write_bytes(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/stability_gap.json")
    parser.add_argument("--report", metavar="JSON", help="print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.report:
        print(table(json.loads(Path(args.report).read_text())))
        return
    torch.set_num_threads(2)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    saved: dict = {"steps": args.steps, "source_steps": args.source_steps, "every": args.every, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source_folder = write_domain(root / "source", SOURCE_CLASSES)
        target_folder = write_domain(root / "target", TARGET_CLASSES)
        for seed in range(args.seeds):
            base = {**COMMON, "seed": seed}
            source = pretrain(
                make_recipe(data=str(source_folder), max_steps=args.source_steps, out=str(root / f"s{seed}"), **base),
                progress=False,
            )
            curves = {}
            for i, (way, fields) in enumerate(WAYS.items()):
                recipe = make_recipe(
                    data=str(target_folder),
                    init=str(source.out),
                    max_steps=args.steps,
                    watch=[str(source_folder)],
                    watch_every=args.every,
                    out=str(root / f"c{seed}-{i}"),
                    **(base | {"online_probe": True} | fields),
                )
                run = pretrain(recipe, progress=False)
                curves[way] = {"source": curve(run.out, "source"), "target": curve(run.out, "target")}
                points = [a for _, a in curves[way]["source"]]
                saved["runs"].append(
                    {"seed": seed, "way": way, "start": points[0], "lowest": min(points), "end": points[-1]}
                    | {"curves": curves[way]}
                )
                print(f"seed {seed} {way}: source {points[0]:.1f} -> lowest {min(points):.1f} -> {points[-1]:.1f}")
            if seed == 0:
                plot(curves, out.with_suffix(".png"))
    out.write_text(json.dumps(saved, indent=1))
    print(table(saved))


def table(saved: dict) -> str:
    """Source-domain accuracy (%) at the start, at its lowest and at the end: mean [95% t-interval over seeds].

    No test-sample count is stored with these accuracies, and the lowest is a minimum over many evaluations (no
    single run's k of n), so the interval is the t-interval over seeds alone, marked and footnoted (``with_notes``).
    """
    lines = ["| continued on the target | source at start | lowest | at the end |", "|---|---|---|---|"]
    for way in WAYS:
        runs = [r for r in saved["runs"] if r["way"] == way]
        lines.append(
            f"| {way} | " + " | ".join(fmt([r[k] / 100 for r in runs]) for k in ("start", "lowest", "end")) + " |"
        )
    return with_notes("\n".join(lines))


if __name__ == "__main__":
    main()
