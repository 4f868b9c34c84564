"""Image quickstart candidate (issue 20, part 6): does pre-training beat random-init AND raw pixels on Fashion-MNIST?

``builtin:fashion_mnist`` (a fixed stratified 5,000 train / 2,000 test subset of the official split, 28x28 grey, 10
classes; Debian package dataset-fashion-mnist) is pre-trained with one of the RECIPES below exactly as
``selfsup quickstart`` runs its plan (``make_recipe`` + ``pretrain``, small_cnn, then ``evaluate`` with its defaults:
kNN with k by CV and the linear probe, each on the training split only, tested on the test split, 95% Wilson
intervals over the 2,000 test samples). The same encoder then goes through ``selfsup.evaluation.compare``: each pair
of pretrained / random-init / raw-input compared sample by sample (95% paired bootstrap interval of the difference,
exact McNemar p, Holm-corrected over the 3 pairs of a protocol; "A beats B" only when both agree). The wall time is
what the quickstart would take: pre-training plus ``evaluate`` (the comparison runs after it and is timed apart), with
the CPU seconds of the same part (on a shared machine, wall time / threads understates an idle machine's speed).

With ``--holdout`` the same encoder is also probed on the 8,000 official test images outside the subset (trained on
the subset's 5,000 training images as before): the recipes were chosen by their scores on the subset's 2,000 test
images, so only these untouched images confirm the choice.

Usage: python benchmarks/image_quickstart.py [--recipes NAME ...] [--threads 2] [--holdout] [--out benchmarks/results/image_quickstart.json]
       python benchmarks/image_quickstart.py --report benchmarks/results/image_quickstart.json
Each recipe's figures at a seed replace its earlier ones at that seed in OUT; the others there are kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from selfsup.data import Splits
from selfsup.evaluation.compare import compare
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.files import write_atomic
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.pretrain import pretrain

DATA = "builtin:fashion_mnist"
ENCODERS = ("pretrained", "random-init", "raw-input")
PROTOCOLS = ("knn", "linear")
# name -> recipe fields on top of the quickstart's (data, small_cnn, seed 0); views at the data's 28 px
RECIPES: dict[str, dict[str, Any]] = {
    "simclr-b128-t0.2": {
        "method": "simclr",
        "epochs": 8,
        "batch_size": 128,
        "lr": 2e-3,
        "method_args": {"temperature": 0.2},
        "view_args": {"crop_scale": [0.35, 1.0]},
    },
    "simclr-b64-t0.2": {  # the same samples seen as above, in twice the steps
        "method": "simclr",
        "epochs": 8,
        "batch_size": 64,
        "lr": 2e-3,
        "method_args": {"temperature": 0.2},
        "view_args": {"crop_scale": [0.35, 1.0]},
    },
    "vicreg-b128": {  # the first one's budget and views, another objective
        "method": "vicreg",
        "epochs": 8,
        "batch_size": 128,
        "lr": 2e-3,
        "view_args": {"crop_scale": [0.35, 1.0]},
    },
}


def holdout_splits(subset: Splits) -> Splits:
    """The subset's training split, tested on the official test images outside the subset's test split."""
    full = load_data(DATA + "_full")
    assert full.test is not None and subset.test is not None
    used = set(subset.test.ids)
    rest = full.test.subset([i for i, sample_id in enumerate(full.test.ids) if sample_id not in used])
    return Splits(train=subset.train, test=rest, name=f"{DATA} train, held-out official test", modality="image")


def _rows(result: Any) -> list[dict]:
    return [
        {key: row[key] for key in ("encoder", "protocol", "accuracy", "ci_low", "ci_high", "n_test")}
        for row in result.rows
        if row["encoder"] in ENCODERS and row["protocol"] in PROTOCOLS
    ]


def run_recipe(name: str, root: Path, seed: int, holdout: bool = False) -> dict:
    """Pre-train, evaluate as the quickstart does, then compare; seconds of each part and the figures."""
    out = root / name
    recipe = make_recipe(data=DATA, encoder="small_cnn", seed=seed, out=str(out), **RECIPES[name])
    start, cpu = time.perf_counter(), time.process_time()
    run = pretrain(recipe, progress=False)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(run.encoder, run.splits, EvaluationOptions(seed=seed), out=out / "report")
    evaluated, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    compared = compare([("pretrained", run.encoder)], DATA, seed=seed)
    compare_seconds = time.perf_counter() - start
    held: dict[str, Any] = {}
    if holdout:
        held_out = evaluate(run.encoder, holdout_splits(run.splits), EvaluationOptions(seed=seed), out=out / "holdout")
        held = {"holdout": {"split": held_out.meta.get("split"), "rows": _rows(held_out)}}
    return held | {
        "recipe": RECIPES[name],
        "steps": torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"],
        "seconds": {
            "pretrain": round(trained, 1),
            "evaluate": round(evaluated, 1),
            "quickstart": round(trained + evaluated, 1),
            "quickstart_cpu": round(cpu, 1),  # this process's CPU seconds: wall x threads on an idle machine
            "compare": round(compare_seconds, 1),
        },
        "split": result.meta.get("split"),
        "rows": _rows(result),
        "pairs": [
            {key: pair[key] for key in ("protocol", "a", "b", "difference", "ci_low", "ci_high", "p_holm", "verdict")}
            for pair in compared["pairs"]
        ],
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown(saved: dict) -> str:
    lines = []
    for name, trial in saved["trials"].items():
        seconds = trial["seconds"]
        lines += [
            f"### {name}: {json.dumps(trial['recipe'])}, {trial['steps']} steps",
            f"quickstart wall time {seconds['quickstart']:.0f} s (pre-training {seconds['pretrain']:.0f} s + "
            f"evaluate {seconds['evaluate']:.0f} s; {seconds['quickstart_cpu']:.0f} CPU s on {trial['threads']} threads; "
            f"the comparison after it {seconds['compare']:.0f} s)",
            *([f"note: {trial['note']}"] if trial.get("note") else []),
            "",
            "| encoder | kNN | linear |",
            "|---|---|---|",
        ]
        for encoder in ENCODERS:
            cells = [
                f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
                for protocol in PROTOCOLS
                for r in trial["rows"]
                if r["encoder"] == encoder and r["protocol"] == protocol
            ]
            lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
        if "holdout" in trial:
            lines += ["", f"held out ({trial['holdout']['split']}):", "", "| encoder | kNN | linear |", "|---|---|---|"]
            for encoder in ENCODERS:
                cells = [
                    f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] (n={r['n_test']})"
                    for protocol in PROTOCOLS
                    for r in trial["holdout"]["rows"]
                    if r["encoder"] == encoder and r["protocol"] == protocol
                ]
                lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
        lines.append("")
        for pair in trial["pairs"]:
            lines.append(
                f"- {pair['protocol']}: {pair['a']} − {pair['b']} {100 * pair['difference']:+.1f} "
                f"[{100 * pair['ci_low']:+.1f}, {100 * pair['ci_high']:+.1f}], p (Holm) {pair['p_holm']:.2g}: "
                f"{pair['verdict']}"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/image_quickstart.json")
    parser.add_argument("--report", metavar="JSON")
    parser.add_argument(
        "--holdout", action="store_true", help="also probe on the official test images outside the subset"
    )
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(Path(args.report).read_text())))
        return
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    saved: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"data": DATA, "trials": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            key = f"{name} seed {args.seed}"
            saved["trials"][key] = run_recipe(name, Path(tmp), args.seed, args.holdout) | {
                "seed": args.seed,
                "threads": args.threads,
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(out, json.dumps(saved, indent=1) + "\n")
            print(markdown({"trials": {key: saved["trials"][key]}}), flush=True)


if __name__ == "__main__":
    main()
