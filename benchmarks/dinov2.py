"""DINOv2 next to its base method, DINO (issue 21, part 2): the same small ViT on builtin:digits, the same budget.

``dinov2`` is ``dino`` with DINOv2's teacher-temperature warm-up (0.04 -> 0.07 over 30% of training), Sinkhorn-Knopp
centring, KoLeo (0.1) and, for this token encoder, iBOT's masked-patch loss (weight 1, half the global crops masked
at 10-50%, its own patch head). Each method pre-trains the same ViT (``VIT`` below) at its defaults otherwise, with
the same views (DINO's 2 global and 4 local crops) and batch, on the training split only, for an equal CPU budget:
a calibration first times a training step (loss, backward, AdamW, EMA) of each method on one batch, steps
interleaved, and the method with the cheaper step gets proportionally more steps than ``--steps`` (the costlier
one's); the step costs, step counts and each run's CPU seconds are saved and printed. Then the harness's probes on
the dataset's own test split: kNN (k by CV on the training split) and the linear probe (C by CV on the training
split), next to the random-init ViT and the raw pixels of the same seeds. Numbers: mean over seeds [95% interval,
``tables_series.INTERVAL``]; each seed's paired difference dinov2 - dino is listed too. Nothing is tuned on the test
split.

Usage: python benchmarks/dinov2.py [--seeds 3] [--steps 200] [--batch-size 128] [--threads 1]
       [--out benchmarks/results/dinov2.json] [--report JSON]
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

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.methods import build_method
from selfsup.modalities import get_modality
from selfsup.modalities.image_views import ImageViews
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain
from tables_series import INTERVAL, accuracies, fmt, prepare, scored, with_notes

# arms: name -> (method, its arguments beyond HEAD); dinov2-no-ibot (``--arms``) tells what iBOT adds
ARMS: dict[str, tuple[str, dict]] = {
    "dino": ("dino", {}),
    "dinov2": ("dinov2", {}),
    "dinov2-no-ibot": ("dinov2", {"ibot_weight": 0.0}),
}
VIT = {"embed_dim": 64, "depth": 2, "heads": 4, "mlp_dim": 128}  # a small ViT over the 4 x 4 patch grid
HEAD = {"prototypes": 256, "hidden_dim": 256, "bottleneck_dim": 64}  # both methods' heads (DINOv2's iBOT head too)


def step_costs(arms: list[str], batch_size: int, reps: int = 8) -> dict[str, float]:
    """CPU seconds of one training step (loss, backward, AdamW, EMA) of each arm on one batch of digits' views,
    the median over ``reps`` steps, the arms' steps interleaved so that all see the same machine load."""
    digits = load_builtin("digits")
    config = get_modality("image").encoder_config("vit", digits, DataOptions(), VIT)
    torch.manual_seed(0)
    methods = {a: build_method(ARMS[a][0], build_encoder(config), HEAD | ARMS[a][1]) for a in arms}
    optimizers = {m: torch.optim.AdamW(method.parameters(), lr=1e-4) for m, method in methods.items()}
    x = digits.train.float_samples()[:batch_size]
    views = ImageViews(methods[arms[0]].views, int(config["image_size"]), 1)(x, torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {a: [] for a in arms}
    for rep in range(reps + 2):
        for name, method in methods.items():
            start = time.process_time()
            loss = method.training_loss(views).loss
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            method.on_train_batch_end(0.5)
            if rep >= 2:  # the first two warm up
                times[name].append(time.process_time() - start)
    return {m: float(np.median(t)) for m, t in times.items()}


def run_one(arm: str, seed: int, steps: int, batch_size: int, workdir: Path, baselines: bool) -> dict:
    method, args = ARMS[arm]
    recipe = make_recipe(
        data="builtin:digits",
        method=method,
        method_args=HEAD | args,
        encoder="vit",
        encoder_args=VIT,
        seed=seed,
        max_steps=steps,
        epochs=10_000,
        batch_size=batch_size,
        warmup_epochs=0,
        online_probe=False,
        checkpoint_every=10_000,
        out=str(workdir / f"{arm}-{seed}"),
    )
    start, wall = time.process_time(), time.perf_counter()
    run = pretrain(recipe, progress=False)
    cpu_seconds, wall_seconds = time.process_time() - start, time.perf_counter() - wall
    result = evaluate(run.encoder, run.splits, EvaluationOptions(seed=seed, baselines=baselines))
    return {
        "dataset": "digits",
        "method": arm,
        "method_args": HEAD | args,
        "encoder": "vit",
        "seed": seed,
        "steps": steps,
        "cpu_seconds": round(cpu_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "split": result.meta["split"],
        "rows": result.rows,
    }


def markdown(results: list[dict]) -> str:
    lines = ["| encoder / method | kNN | linear | steps | CPU s / run | wall s / run |", "|---|---|---|---|---|---|"]
    first = [r for r in results if any(row["encoder"] == "random-init" for row in r["rows"])]  # probed them
    for encoder, name in (("raw-input", "raw pixels"), ("random-init", "random-init ViT")):
        lines.append(
            f"| {name} | {fmt(scored(first, encoder, 'knn'))} | {fmt(scored(first, encoder, 'linear'))} | | | |"
        )
    random = {p: np.mean(accuracies(first, "random-init", p)) for p in ("knn", "linear")}
    for method in ARMS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        cells = []
        for protocol in ("knn", "linear"):
            mark = " ▼" if np.mean(accuracies(runs, "pretrained", protocol)) <= random[protocol] else ""
            cells.append(fmt(scored(runs, "pretrained", protocol)) + mark)
        cpu, wall = np.mean([r["cpu_seconds"] for r in runs]), np.mean([r["wall_seconds"] for r in runs])
        steps = runs[0]["steps"]
        lines.append(f"| {method} (vit) | {cells[0]} | {cells[1]} | {steps} | {cpu:.0f} | {wall:.0f} |")
    lines.append("")
    for a, b in (("dinov2", "dino"), ("dinov2", "dinov2-no-ibot"), ("dinov2-no-ibot", "dino")):
        for protocol in ("knn", "linear"):
            pairs = []
            for seed in sorted({r["seed"] for r in results}):
                by = {r["method"]: r for r in results if r["seed"] == seed}
                if {a, b} <= set(by):
                    x, y = (accuracies([by[m]], "pretrained", protocol)[0] for m in (a, b))
                    pairs.append(f"seed {seed} {100 * (x - y):+.1f}")
            if pairs:
                lines.append(f"- {protocol}: {a} − {b} per seed (points): " + ", ".join(pairs))
    return with_notes("\n".join(lines))


def header(saved: dict) -> str:
    costs = ", ".join(f"{m} {1000 * c:.0f} ms" for m, c in saved["step_cpu_seconds"].items())
    steps = ", ".join(f"{m} {n}" for m, n in saved["method_steps"].items())
    return (
        f"builtin:digits, ViT {VIT} (4 x 4 patches), heads {HEAD}; batch {saved['batch_size']} (DINO's 2 global + "
        f"4 local crops), default method hyperparameters otherwise; equal CPU budget: a step costs {costs} of CPU "
        f"(calibrated, {saved['threads']} thread(s)), so AdamW steps per run: {steps}; "
        f"seeds {sorted({r['seed'] for r in saved['results']})}; accuracy % on the dataset's test split, {INTERVAL}; "
        "kNN k and linear C by CV on the training split. ▼: mean not above the random-init ViT's. Whole run: "
        f"{saved.get('wall_seconds', '?')} s wall.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=200, help="steps of the method with the costlier step (the budget)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on busy shared cores)")
    parser.add_argument("--out", default="benchmarks/results/dinov2.json")
    parser.add_argument("--report", metavar="JSON", help="only print the table of a finished (or partial) run")
    parser.add_argument("--arms", default="dino,dinov2", help=f"comma-separated, from {', '.join(ARMS)}")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(header(saved))
        print(markdown(saved["results"]))
        return
    out = prepare(args)
    arms = args.arms.split(",")
    saved: dict = {"steps": args.steps, "batch_size": args.batch_size, "threads": args.threads, "results": []}
    if out.exists():  # a run with the same settings: its (arm, seed) runs are kept, with their step counts
        earlier = json.loads(out.read_text())
        if all(earlier.get(k) == saved[k] for k in ("steps", "batch_size", "threads")):
            saved = earlier
            print(f"{out}: keeping its {len(saved['results'])} runs", file=sys.stderr)
    done = {(r["method"], r["seed"]) for r in saved["results"]}
    # the new arms' steps: the budget (--steps) of the costliest of every arm, timed together now
    costs = step_costs(list(dict.fromkeys(["dino", "dinov2", *arms])), args.batch_size)
    new_steps = {a: round(args.steps * max(costs.values()) / c) for a, c in costs.items()}
    saved["step_cpu_seconds"] = saved.get("step_cpu_seconds", {}) | {
        a: c for a, c in costs.items() if a not in saved.get("method_steps", {})
    }
    saved["method_steps"] = new_steps | saved.get("method_steps", {})
    print(f"step CPU s: {costs}; steps: {saved['method_steps']}", file=sys.stderr, flush=True)
    start, before = time.perf_counter(), saved.get("wall_seconds", 0)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method in [a for a in arms if (a, seed) not in done]:
                first = not any(r["seed"] == seed for r in saved["results"])  # baselines: once per seed
                steps = saved["method_steps"][method]
                row = run_one(method, seed, steps, args.batch_size, Path(tmp), baselines=first)
                saved["results"].append(row)
                pre = {r["protocol"]: r["accuracy"] for r in row["rows"] if r["encoder"] == "pretrained"}
                print(
                    f"{method:14s} seed {seed}: kNN {pre['knn']:.3f} linear {pre['linear']:.3f} "
                    f"({row['cpu_seconds']:.0f} CPU s, {row['wall_seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                saved["wall_seconds"] = before + round(time.perf_counter() - start)
                tmp_out = out.with_name(out.name + ".tmp")
                tmp_out.write_text(json.dumps(saved, indent=1))
                os.replace(tmp_out, out)
    print(header(saved))
    print(markdown(saved["results"]))


if __name__ == "__main__":
    main()
