"""Curating an uncurated pool for a target domain before pre-training (issue 19, part 1).

A domain mix from the built-in images, all 28x28 grey. Target: the four upper-body clothing classes of Fashion-MNIST
(T-shirt/top, Pullover, Coat, Shirt; ``builtin:fashion_mnist``): its training part is ``--target-per-class`` images
of each class from the training split (what the curation looks at, what upsampling draws from, and the labelled
split the probes are fitted on), its test part every image of those classes in the test split (scored only).
Pool: the rest of Fashion-MNIST's training split (the other six classes, and the upper-body images not in the
target) plus the training split of scikit-learn's digits (``builtin:digits``, 8x8 scaled up to 28x28).

Per seed, one bootstrap encoder (``--method``, ``--bootstrap-steps`` on the whole pool, as ``selfsup curate`` makes
without ``--encoder``) embeds both, and ``selfsup curate`` chooses ``--budget`` of the pool: coreset (SimCore) and a
random subset of the same size. Then ``--method`` (default: the image quickstart's recipe, VICReg, small_cnn, lr 2e-3,
crop scale [0.35, 1]), the same step budget for every condition, pre-trains on:

- the coreset; the random subset; the whole pool;
- the coreset with domain upsampling at the end (``--target-data TARGET --upsample-at-end 0.2``: half of each batch
  from the target's training part over the last fifth of the steps; Blakeney et al. 2024);
- with ``--target-only``, the target's training part alone (a reference: what the tiny target gives by itself).

The images are read at ``--image-size`` (default 28 px). The first run (SimCLR, 16 px, batch 64, 100 steps; kept in
the results under ``simclr-16px-100``) was too short to learn: no encoder beat random-init on kNN, so it said nothing
about which data helps; the default now is the quickstart's recipe, which beats raw pixels on Fashion-MNIST.

Each encoder is scored on the target: kNN and linear probes fitted on the target's training part (k and C chosen by
cross-validation on it; nothing is chosen on the test part), accuracy on its test part, mean over seeds [95%
interval: ``tables_series.fmt``], next to a random-init encoder and raw pixels; plus the share of the chosen pool
images that are of the target's classes, and each condition's minus random's accuracy per seed.

The results file holds one entry per recipe (``--key``, default METHOD-SIZEpx-STEPS); seeds can run in parallel
processes (``--first-seed``), each adding its seeds to the entry under a file lock.

Usage: python benchmarks/curation.py [--seeds 3] [--first-seed 0] [--steps 200] [--method vicreg] [--image-size 28]
       python benchmarks/curation.py --report benchmarks/results/curation.json
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.evaluation.embed import embed
from selfsup.evaluation.protocols import run_protocols
from selfsup.evaluation.stats import seed_interval
from selfsup.modalities import get_modality
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.curate import curate
from selfsup.workflows.pretrain import pretrain
from tables_series import INTERVAL, fmt, with_notes

TARGET_CLASSES = ("T-shirt/top", "Pullover", "Coat", "Shirt")  # Fashion-MNIST's upper-body clothing
COMMON = dict(
    warmup_fraction=0.05,
    online_probe=False,
    checkpoint_every=10_000,
    epochs=10_000,
    logger="csv",
)
UPSAMPLE = {"upsample_at_end": 0.2, "target_share": 0.5}


def _save(folder: Path, name: str, pixels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / f"{name}.png")


def write_domains(root: Path, per_class: int) -> dict[str, Path]:
    """The target's train/test folders and the pool's folder (class sub-folders; a pool image's class says where
    it came from: ``fashion-CLASS`` or ``digit-N``)."""
    fashion, digits = load_builtin("fashion_mnist"), load_builtin("digits")
    names = fashion.train.classes
    assert names is not None
    taken = {c: 0 for c in TARGET_CLASSES}
    for i, (image, label) in enumerate(zip(fashion.train.x.numpy(), fashion.train.y.numpy(), strict=True)):
        name = names[int(label)]
        safe = name.replace("/", "-")
        if name in taken and taken[name] < per_class:
            taken[name] += 1
            _save(root / "target" / "train" / safe, f"f{i}", image[0])
        else:
            _save(root / "pool" / f"fashion-{safe}", f"f{i}", image[0])
    for i, (image, label) in enumerate(zip(fashion.test.x.numpy(), fashion.test.y.numpy(), strict=True)):
        name = names[int(label)]
        if name in taken:
            _save(root / "target" / "test" / name.replace("/", "-"), f"t{i}", image[0])
    for i, (image, label) in enumerate(zip(digits.train.x.numpy(), digits.train.y.numpy(), strict=True)):
        big = Image.fromarray(image[0]).resize((28, 28), Image.Resampling.BILINEAR)
        _save(root / "pool" / f"digit-{int(label)}", f"d{i}", np.asarray(big))
    return {"target": root / "target", "target_train": root / "target" / "train", "pool": root / "pool"}


def target_share(curation: Path) -> float:
    """The share of the chosen pool images that are of the target's classes."""
    with (curation / "selection.csv").open() as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    target = {f"fashion-{c.replace('/', '-')}" for c in TARGET_CLASSES}
    return float(np.mean([label in target for label in labels]))


def probe(encoder, target, seed: int) -> dict[str, float]:
    train, test = target.train, target.test
    features = {"pretrained": (embed(encoder, train.float_samples()), embed(encoder, test.float_samples()))}
    rows = run_protocols(features, train.y.numpy(), test.y.numpy(), seed=seed)
    return {r["protocol"]: r["accuracy"] for r in rows}


def baselines(target, config: dict, seed: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(seed)
    out = {"random-init": probe(build_encoder(config).eval(), target, seed)}
    raw = get_modality("image").raw_features
    features = {"pretrained": (raw(target.train.x, config), raw(target.test.x, config))}
    rows = run_protocols(features, target.train.y.numpy(), target.test.y.numpy(), seed=seed)
    out["raw pixels"] = {r["protocol"]: r["accuracy"] for r in rows}
    return out


def run_seed(folders: dict[str, Path], target, args: argparse.Namespace, seed: int, root: Path) -> list[dict]:
    entries: list[dict] = []

    common = COMMON | {
        "method": args.method,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "view_args": {"crop_scale": args.crop_scale},
    }

    def train(condition: str, data: str, **fields) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        recipe = make_recipe(
            data=data, seed=seed, max_steps=args.steps, out=str(root / f"{condition}-{seed}"), **(common | fields)
        )
        run = pretrain(recipe, progress=False)
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        entries.append({"condition": condition, "seed": seed, "probe": probe(run.encoder, target, seed)} | fields)
        entries[-1] |= {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1)}
        print(
            f"seed {seed} {condition:28s} kNN {entries[-1]['probe']['knn']:.3f} "
            f"linear {entries[-1]['probe']['linear']:.3f} (pre-training {seconds:.0f} s, {cpu_seconds:.0f} CPU s)",
            file=sys.stderr,
            flush=True,
        )

    start = time.perf_counter()
    bootstrap = make_recipe(
        data=str(folders["pool"]),
        seed=seed,
        max_steps=args.bootstrap_steps,
        out=str(root / f"bootstrap-{seed}"),
        **common,
    )
    pretrain(bootstrap, progress=False)
    curated: dict[str, Path] = {}
    shares: dict[str, float] = {}
    for strategy in ("coreset", "random"):
        result = curate(
            str(folders["target_train"]),
            str(folders["pool"]),
            args.budget,
            strategy,
            out=root / f"curate-{strategy}-{seed}",
            encoder=root / f"bootstrap-{seed}",
            seed=seed,
            options=DataOptions(image_size=args.image_size),
        )
        curated[strategy], shares[strategy] = result.subset, target_share(result.out)
    curation_seconds = round(time.perf_counter() - start, 1)
    print(f"seed {seed} curation: target classes' share {shares} ({curation_seconds:.0f} s)", file=sys.stderr)
    train("coreset", str(curated["coreset"]))
    train("random", str(curated["random"]))
    train("whole pool", str(folders["pool"]))
    train("coreset + upsample at end", str(curated["coreset"]), target_data=str(folders["target_train"]), **UPSAMPLE)
    if args.target_only:
        train("target only", str(folders["target_train"]))
    config = build_encoder_config(root / f"coreset-{seed}")
    for name, result in baselines(target, config, seed).items():
        entries.append({"condition": name, "seed": seed, "probe": result})
    for entry in entries:
        entry["curation"] = {"seconds": curation_seconds, "target_class_share": shares}
    return entries


def build_encoder_config(run: Path) -> dict:
    return json.loads((run / "selfsup.json").read_text())["encoder"]


def markdown(saved: dict) -> str:
    rows, n_test = saved["results"], saved["n_test"]
    lines = [
        "| pre-trained on | target kNN | target linear | kNN minus random, per seed | pre-training s (CPU s) |",
        "|---|---|---|---|---|",
    ]
    by_seed = {(r["condition"], r["seed"]): r for r in rows}
    for condition in dict.fromkeys(r["condition"] for r in rows):
        runs = [r for r in rows if r["condition"] == condition]
        cells = [fmt([{"accuracy": r["probe"][p], "n_test": n_test} for r in runs]) for p in ("knn", "linear")]
        differences = [
            100 * (r["probe"]["knn"] - by_seed[("random", r["seed"])]["probe"]["knn"])
            for r in runs
            if ("random", r["seed"]) in by_seed
        ]
        if condition == "random" or len(differences) < 2:
            paired = ""
        else:
            mean, low, high = seed_interval(differences)
            paired = f"{mean:+.1f} [{low:+.1f}, {high:+.1f}] ({', '.join(f'{d:+.1f}' for d in differences)})"
        seconds = [r["seconds"] for r in runs if "seconds" in r]
        cpu = [r["cpu_seconds"] for r in runs if "cpu_seconds" in r]
        cost = f"{np.mean(seconds):.0f} ({np.mean(cpu):.0f})" if seconds else ""
        lines.append(f"| {condition} | {' | '.join(cells)} | {paired} | {cost} |")
    shares = [r["curation"]["target_class_share"] for r in rows if r["condition"] == "coreset"]
    share_line = ", ".join(
        f"{s}: {100 * np.mean([x[s] for x in shares]):.1f}%" for s in ("coreset", "random") if shares
    )
    table = "\n".join(lines)
    return (
        with_notes(table)
        + f"\n\nShare of the chosen pool images of the target's classes (mean over seeds): {share_line}."
    )


def header(saved: dict) -> str:
    method = saved.get("method", "simclr")
    recipe = f"{method}, small_cnn"
    if "lr" in saved:
        recipe += f", lr {saved['lr']}, crop scale {saved['crop_scale']}"
    return (
        f"Target: Fashion-MNIST's {', '.join(TARGET_CLASSES)} ({saved['target_train']} training images, "
        f"{saved['n_test']} test images); pool: the rest of builtin:fashion_mnist's training split and builtin:digits "
        f"scaled to 28 px ({saved['pool_size']} images, {100 * saved['pool_target_share']:.1f}% of the target's "
        f"classes); budget {saved['budget']} of the pool ({saved['subset_size']} images); bootstrap encoder: {method} "
        f"{saved['bootstrap_steps']} steps on the pool; every condition {recipe}, {saved['image_size']} px, batch "
        f"{saved['batch_size']}, {saved['steps']} steps; upsampling: the last {UPSAMPLE['upsample_at_end']} of the steps, "
        f"{UPSAMPLE['target_share']} of each batch from the target's training images; {saved['seeds']} seeds; "
        f"accuracy % on the target's test split (probes fitted, and k / C chosen by cross-validation, on its training "
        f"images), {INTERVAL}; 'minus random': kNN points, mean [95% t-interval over seeds] (per seed).\n"
    )


def run_key(saved: dict) -> str:
    return f"{saved.get('method', 'simclr')}-{saved['image_size']}px-{saved['steps']}"


def record(out: Path, key: str, saved: dict) -> None:
    """Put ``saved``'s seeds into entry ``key`` of ``out`` (replacing those seeds' earlier rows), atomically and under
    a file lock, so parallel processes running other seeds can share the file."""
    with open(Path(tempfile.gettempdir()) / "selfsup-curation.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = json.loads(out.read_text()) if out.exists() else {}
        if "results" in runs:  # the first run's file: one entry, not keyed
            runs = {run_key(runs): runs}
        mine = {r["seed"] for r in saved["results"]}
        earlier = runs.get(key, {})
        kept = [r for r in earlier.get("results", []) if r["seed"] not in mine]
        entry = saved | {"results": sorted(kept + saved["results"], key=lambda r: r["seed"])}
        entry["seeds"] = len({r["seed"] for r in entry["results"]})
        entry["wall_seconds"] = max(saved["wall_seconds"], earlier.get("wall_seconds", 0))
        runs[key] = entry
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_text(json.dumps(runs, indent=1))
        tmp_out.replace(out)


def report(runs: dict) -> None:
    if "results" in runs:
        runs = {run_key(runs): runs}
    for key, saved in runs.items():
        print(f"## {key}\n")
        print(header(saved))
        print(markdown(saved))
        print(f"\nwall time: {saved['wall_seconds']:.0f} s (longest process)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--method", default="vicreg")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--crop-scale", type=float, nargs=2, default=[0.35, 1.0])
    parser.add_argument("--bootstrap-steps", type=int, default=30)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--target-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=28, help="the size the 28x28 images are read at")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--target-only", action="store_true", help="also pre-train on the target's training images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--key", help="the results entry (default METHOD-SIZEpx-STEPS)")
    parser.add_argument("--out", default="benchmarks/results/curation.json")
    parser.add_argument("--report", metavar="JSON")
    args = parser.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = write_domains(root / "data", args.target_per_class)
        target = load_data(str(folders["target"]), DataOptions(image_size=args.image_size))
        pool = sorted(p.parent.name for p in folders["pool"].rglob("*.png"))
        upper = {f"fashion-{c.replace('/', '-')}" for c in TARGET_CLASSES}
        saved = {
            "seeds": args.seeds,
            "method": args.method,
            "lr": args.lr,
            "crop_scale": args.crop_scale,
            "steps": args.steps,
            "bootstrap_steps": args.bootstrap_steps,
            "budget": args.budget,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "target_train": len(target.train),
            "n_test": len(target.test),
            "pool_size": len(pool),
            "pool_target_share": float(np.mean([name in upper for name in pool])),
            "subset_size": round(args.budget * len(pool)),
            "results": [],
        }
        key = args.key or run_key(saved)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            saved["results"] += run_seed(folders, target, args, seed, root)
            saved["wall_seconds"] = round(time.perf_counter() - began, 1)
            record(out, key, saved)
    report({key: json.loads(out.read_text())[key]})


if __name__ == "__main__":
    main()
