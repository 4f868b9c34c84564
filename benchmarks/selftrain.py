"""Self-training (issue 21, part 1): teacher vs student (same size and smaller) vs fine-tuning alone, at 1% and 10%
of the labels, with FST's look-ahead teacher and SLA's label augmentation as rows of their own.

Data: ``builtin:fashion_mnist`` (5,000 train / 2,000 test, 28x28 grey, 10 classes). One short VICReg pre-training
(small_cnn at 28 px, on the 5,000 training images without labels, seed 0) is shared by every run. For each seed
(0, 1, 2) and label fraction (1%: 50 images, 10%: 500; stratified, drawn by the seed), ``self_train`` gets those
labelled images (with the 2,000 test images as the labeled data's test split) and an unlabeled pool of 1,000 other
training images (drawn by the seed). Every setting is fixed beforehand (nothing is chosen on the test split; early
stopping uses a validation part of each model's own training data): the teacher at most 20 epochs (patience 10), the
student 5 (it also sees the pool), batch 64, encoder learning rate 1e-3 and head 1e-2 (evaluate's fine-tuning
defaults), a fresh student's encoder 1e-2 (selftrain's 10x for random weights):

- **fine-tuning alone** is the teacher: the pre-trained encoder plus a linear head fine-tuned on the labels;
- **student (same size)**: SimCLRv2's distillation into a copy of the pre-trained encoder, on the labels and the
  teacher's soft predictions on the whole pool (threshold 0, temperature 1, as SimCLRv2 distils on all unlabeled
  data);
- **student (small_cnn width 16)**: the same into a fresh, 4x smaller network;
- **student of the FST teacher**: pseudo-labels from the look-ahead copy (1 virtual SGD step at 0.01 per batch);
- **SLA teacher / its student**: the teacher fine-tuned with joint (class, rotation) labels, aggregated at test.

Each row: accuracy on the 2,000 test images per seed (95% Wilson interval over test images) and the mean over the 3
seeds with a 95% t-interval over seeds. One thread per process (a shared 2-core machine: two threads contend);
``--pretrain-only`` trains the shared run once, ``--fractions`` lets two processes split the rest, ``--merge``
joins their files.

Usage: python benchmarks/selftrain.py [--fractions 0.01 0.1] [--seeds 0 1 2] [--out benchmarks/results/selftrain.json]
       python benchmarks/selftrain.py --merge A.json B.json --out benchmarks/results/selftrain.json
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

import numpy as np
import torch
from PIL import Image

from selfsup.data import ArrayDataset, DataOptions
from selfsup.evaluation.stats import over_seeds, seed_interval
from selfsup.files import write_atomic
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.pretrain import pretrain
from selfsup.workflows.selftrain import self_train

DATA = "builtin:fashion_mnist"
POOL = 1000
PRETRAIN = {"method": "vicreg", "epochs": 2, "batch_size": 128, "lr": 2e-3, "view_args": {"crop_scale": [0.35, 1.0]}}
# the teacher: at most 20 epochs, early stopping (patience 10) on its validation part; the student, which also sees
# the pool, 5; the learning rates of evaluate's fine-tuning protocol (encoder 1e-3, head 1e-2)
FIXED = {"epochs": 20, "student_epochs": 5, "batch_size": 64, "lr": 1e-3, "threshold": 0.0, "temperature": 1.0}
# variant -> self_train arguments on top of FIXED; each gives a teacher row and a student row
VARIANTS: dict[str, dict[str, Any]] = {
    "same size": {},
    "small student": {"student_encoder": "small_cnn", "student_encoder_args": {"width": 16}},
    "FST teacher": {"teacher": "future", "future_steps": 1, "future_lr": 0.01},
    "SLA teacher": {"label_augmentation": "rotation"},
}


def _save(part: ArrayDataset, idx: np.ndarray, folder: Path, labelled: bool) -> None:
    assert part.classes is not None
    for i in idx:
        where = folder / part.classes[int(part.y[i])].replace("/", "-") if labelled else folder  # T-shirt/top
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(part.x[i, 0].numpy()).save(where / f"{i}.png")


def write_folders(root: Path, seed: int, fraction: float) -> tuple[Path, Path]:
    """``labeled/{train,test}/CLASS/*.png`` (the seed's stratified share of the training images, all test images)
    and ``pool/*.png`` (1,000 other training images, no labels)."""
    splits = load_data(DATA)
    assert splits.test is not None
    y = splits.train.y.numpy()
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), round(fraction * np.sum(y == c)), replace=False) for c in np.unique(y)]
    )
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    pool = rng.choice(rest, POOL, replace=False)
    labeled, unlabeled = root / f"labeled-{seed}-{fraction}", root / f"pool-{seed}-{fraction}"
    _save(splits.train, chosen, labeled / "train", True)
    _save(splits.test, np.arange(len(splits.test)), labeled / "test", True)
    _save(splits.train, pool, unlabeled, False)
    return labeled, unlabeled


def pretrained(folder: Path) -> tuple[Path, float]:
    """The shared VICReg run in ``folder`` (trained once; a later call reuses it) and the seconds it took."""
    record = folder / "bench_seconds.txt"
    if not record.exists():
        start = time.perf_counter()
        pretrain(make_recipe(data=DATA, encoder="small_cnn", seed=0, out=str(folder), **PRETRAIN), progress=False)
        record.write_text(f"{time.perf_counter() - start:.1f}")
    return folder, float(record.read_text())


def run(
    fractions: list[float], seeds: list[int], variants: list[str], out: Path, encoder: Path, seconds: float
) -> dict:
    saved: dict[str, Any] = {
        "data": DATA,
        "pretrain": PRETRAIN | {"encoder": "small_cnn", "seed": 0},
        "fixed": FIXED,
        "pool": POOL,
        "variants": VARIANTS,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        saved["pretrain_seconds"] = seconds
        folders = {(f, seed): write_folders(root, seed, f) for f in fractions for seed in seeds}
        for variant in variants:  # every seed of a variant before the next variant
            arguments = VARIANTS[variant]
            for fraction in fractions:
                for seed in seeds:
                    labeled, pool = folders[fraction, seed]
                    start = time.perf_counter()
                    result = self_train(
                        encoder, str(labeled), str(pool), options=DataOptions(), seed=seed, **FIXED, **arguments
                    )
                    row = {
                        "fraction": fraction,
                        "seed": seed,
                        "variant": variant,
                        "teacher": result.teacher,
                        "student": result.student,
                        "n_labeled": result.n_labeled,
                        "n_pseudo": result.n_pseudo,
                        "pseudo_labeller": result.pseudo_labeller,
                        "architectures": result.architectures,
                        "fitting": result.fitting,
                        "split": result.split,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                    saved["runs"].append(row)
                    print(
                        f"{fraction:.0%} seed {seed} {variant}: teacher {100 * result.teacher['accuracy']:.1f} "
                        f"student {100 * result.student['accuracy']:.1f} ({row['seconds']} s)",
                        flush=True,
                    )
                    write_atomic(out, json.dumps(saved, indent=1, default=float))
    return saved


def summary(runs: list[dict]) -> list[dict]:
    """One row per model and fraction: per-seed accuracies and the mean with a 95% t-interval over seeds."""
    models = {
        "fine-tuning alone (teacher)": ("same size", "teacher"),
        "student, same size": ("same size", "student"),
        "student, small_cnn width 16": ("small student", "student"),
        "student of the FST teacher": ("FST teacher", "student"),
        "SLA teacher (fine-tuning with SLA)": ("SLA teacher", "teacher"),
        "student of the SLA teacher": ("SLA teacher", "student"),
    }
    rows = []
    for fraction in sorted({r["fraction"] for r in runs}):
        for name, (variant, model) in models.items():
            cells = sorted(
                (r for r in runs if r["fraction"] == fraction and r["variant"] == variant), key=lambda r: r["seed"]
            )
            if not cells:
                continue
            accuracies = [r[model]["accuracy"] for r in cells]
            intervals = [(r[model]["ci_low"], r[model]["ci_high"]) for r in cells]
            base = {
                r["seed"]: r["teacher"]["accuracy"]
                for r in runs
                if (r["fraction"], r["variant"]) == (fraction, "same size")
            }
            # paired by seed: the same labels, pool and test images as fine-tuning alone at that seed
            difference = seed_interval([r[model]["accuracy"] - base[r["seed"]] for r in cells if r["seed"] in base])
            rows.append(
                {"fraction": fraction, "model": name, "seeds": [r["seed"] for r in cells]}
                | over_seeds(accuracies, intervals)
                | {"vs_finetuning": dict(zip(("mean", "ci_low", "ci_high"), difference))}
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| labels | model | accuracy per seed | mean [95% CI] | minus fine-tuning alone, paired by seed [95% t-CI] |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        per_seed = ", ".join(f"{100 * a:.1f}" for a in row["per_seed"])
        d = row["vs_finetuning"]
        lines.append(
            f"| {row['fraction']:.0%} | {row['model']} | {per_seed} | {100 * row['accuracy']:.1f} "
            f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}] | {100 * d['mean']:+.1f} "
            f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default="benchmarks/results/selftrain.json")
    parser.add_argument("--merge", nargs="+", metavar="JSON")
    parser.add_argument("--run", default="/tmp/selftrain_bench_run", help="the shared pre-training's folder")
    parser.add_argument("--pretrain-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        saved = parts[0] | {"runs": [r for p in parts for r in p["runs"]]}
    else:
        torch.set_num_threads(1)
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
        encoder, seconds = pretrained(Path(args.run))
        print(f"pre-training {seconds} s", flush=True)
        if args.pretrain_only:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        saved = run(args.fractions, args.seeds, args.variants, out, encoder, seconds)
    saved["summary"] = summary(saved["runs"])
    write_atomic(out, json.dumps(saved, indent=1, default=float))
    print(markdown(saved["summary"]))


if __name__ == "__main__":
    main()
