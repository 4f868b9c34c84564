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

``--sla-only`` reruns SLA against its own control (Lee et al. 2020, Table 1: "DA", the rotations as plain data
augmentation with the ordinary labels), the teacher's fine-tuning alone for each seed and fraction, nothing else:
fine-tuning alone, + a random quarter turn per image (DA at the same views per step), + all 4 turns of each image in
its batch (DA at SLA's views per step, SLA's compute), and SLA (joint labels, aggregated at test). All four share the
epoch cap (20), early stopping (patience 10 on the validation loss of the same stratified validation part, best
epoch kept; SLA's loss is that of its aggregated prediction, DA's of the unturned images), batch order, batch size and
learning rates; none is tuned, and the test split is used once per model. The early stopping favours whichever
model's validation loss keeps falling (on 10 validation images at 1%), so each comparison is also run with a fixed
budget: all 20 epochs, the last kept, no validation choice at all. It adds the key ``sla_vs_augmentation`` to the JSON
at ``--out``, keeping the earlier runs and summary, with the paired differences SLA - DA by seed.

Usage: python benchmarks/selftrain.py [--fractions 0.01 0.1] [--seeds 0 1 2] [--out benchmarks/results/selftrain.json]
       python benchmarks/selftrain.py --merge A.json B.json --out benchmarks/results/selftrain.json
       python benchmarks/selftrain.py --sla-only [--fractions 0.01 0.1] [--seeds 0 1 2]
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

from selfsup.checkpoint import load_encoder
from selfsup.data import ArrayDataset, DataOptions
from selfsup.evaluation.compare import mcnemar
from selfsup.evaluation.evaluate import labeled_split
from selfsup.evaluation.finetune import FinetuneOptions, logits_of, train_classifier
from selfsup.evaluation.stats import accuracy_with_ci, over_seeds, seed_interval
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


# --sla-only: the teacher's fine-tuning with SLA, its DA controls and neither; FinetuneOptions on top of FIXED's
FAIR: dict[str, dict[str, Any]] = {
    "fine-tuning alone": {},
    "fine-tuning + random rotation (DA)": {"augment": "rotation"},
    "SLA (joint labels, aggregated)": {"label_augmentation": "rotation"},
    "fine-tuning + all 4 rotations (DA, SLA's views)": {"augment": "all-rotations"},
}
SLA_ROW = "SLA (joint labels, aggregated)"
# how each of them ends: the benchmark's early stopping, or a fixed budget that gives every model the same steps
SETTINGS: dict[str, dict[str, Any]] = {
    "early stopping": {},  # patience 10 on the validation loss, best epoch kept
    "fixed budget": {"keep": "last"},  # all 20 epochs, the last kept
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


def teacher_only(encoder: Path, labeled: Path, seed: int, finetune: dict[str, Any]) -> dict:
    """self_train's teacher alone: the same reading of ``labeled``, split, options (FIXED) and seed; its test accuracy
    (95% Wilson interval), early stopping and training budget (optimizer steps, images through the encoder)."""
    pretrained = load_encoder(encoder)
    splits = load_data(str(labeled), DataOptions(), preprocessing=pretrained.preprocessing)
    train, test, note = labeled_split(splits, None, DataOptions(), pretrained.preprocessing, seed, 0.25)
    assert train.classes is not None
    options = FinetuneOptions(
        backbone_lr=FIXED["lr"], head_lr=10 * FIXED["lr"], epochs=FIXED["epochs"], batch_size=FIXED["batch_size"],
        **finetune,
    )  # fmt: skip
    model, details = train_classifier(
        pretrained, train.float_samples(), train.y, train.y.numpy(), len(train.classes), options=options, seed=seed
    )
    pred = logits_of(model, test.float_samples()).argmax(1).numpy()
    n_fit = len(train) - details["n_val"]
    steps = details["epochs_run"] * (n_fit // options.batch_size + (n_fit % options.batch_size >= 2))
    views = 4 if finetune.get("augment") == "all-rotations" or finetune.get("label_augmentation") else 1
    return accuracy_with_ci(test.y.numpy(), pred) | {
        "split": note,
        "fitting": {k: details[k] for k in ("best_epoch", "epochs_run", "n_val", "val_loss", "val_accuracy")},
        "n_fit": n_fit,
        "optimizer_steps": steps,
        "images_through_encoder": details["epochs_run"] * n_fit * views,
        "per_test_correct": "".join("1" if c else "0" for c in pred == test.y.numpy()),
    }


def sla_rows(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per fraction and model: the mean accuracy over seeds (95% t-interval over seeds, Wilson's over test images
    added in quadrature), epochs and steps; and SLA minus each other row, paired by seed (95% t-interval)."""
    rows, paired = [], []
    for setting, fraction in sorted({(r["setting"], r["fraction"]) for r in runs}, key=lambda k: (k[0], k[1])):
        at = [r for r in runs if (r["setting"], r["fraction"]) == (setting, fraction)]
        by_model = {m: {r["seed"]: r for r in at if r["model"] == m} for m in FAIR}
        for model, cells in by_model.items():
            if not cells:
                continue
            seeds = sorted(cells)
            rows.append(
                {"setting": setting, "fraction": fraction, "model": model, "seeds": seeds}
                | over_seeds([cells[s]["accuracy"] for s in seeds], [(cells[s]["ci_low"], cells[s]["ci_high"]) for s in seeds])
                | {
                    "epochs_run": [cells[s]["fitting"]["epochs_run"] for s in seeds],
                    "best_epoch": [cells[s]["fitting"]["best_epoch"] for s in seeds],
                    "optimizer_steps": [cells[s]["optimizer_steps"] for s in seeds],
                    "images_through_encoder": [cells[s]["images_through_encoder"] for s in seeds],
                }
            )  # fmt: skip
        for model, cells in by_model.items():
            common = sorted(set(cells) & set(by_model[SLA_ROW]))
            if model == SLA_ROW or not common:
                continue
            gaps = [by_model[SLA_ROW][s]["accuracy"] - cells[s]["accuracy"] for s in common]
            mean, low, high = seed_interval(gaps)
            correct = [
                [np.array(list(r["per_test_correct"])) == "1" for r in (by_model[SLA_ROW][s], cells[s])] for s in common
            ]
            paired.append(
                {"setting": setting, "fraction": fraction, "difference": f"SLA - {model}", "seeds": common}
                | {"per_seed": gaps, "mcnemar_p_per_seed": [mcnemar(a, b) for a, b in correct]}
                | {"mean": mean, "ci_low": low, "ci_high": high}
            )
    return rows, paired


def run_sla_only(
    fractions: list[float], seeds: list[int], out: Path, encoder: Path, settings: list[str], models: list[str]
) -> dict:
    """The --sla-only rows, added to the JSON at ``out`` under ``sla_vs_augmentation`` (written after each run)."""
    saved = json.loads(out.read_text()) if out.exists() else {}
    part: dict[str, Any] = {
        "added": time.strftime("%Y-%m-%d", time.gmtime()) + ": new rows (the earlier runs and summary are kept as run)",
        "why": "SLA's rows above train on 4 rotated views per sample; these add its control, DA (the same rotations as "
        "plain augmentation with the ordinary labels), under the same budget and stopping rule",
        "protocol": "the self-training teacher's fine-tuning alone (no student): the pre-trained encoder + a linear "
        f"head, AdamW, encoder lr {FIXED['lr']}, head lr {10 * FIXED['lr']}, batch {FIXED['batch_size']}, at most "
        f"{FIXED['epochs']} epochs, then (settings) either early stopping with patience 10 on the cross-entropy of a "
        "stratified 10% validation part of the labelled images, best epoch kept, or all epochs and the last kept (the "
        "same validation part, seed and batch order for every model); test: the 2,000 fashion_mnist test images, once "
        "per model",
        "models": FAIR,
        "settings": {
            "early stopping": "patience 10 on the validation loss, the best epoch kept (the benchmark's rule above)",
            "fixed budget": "all 20 epochs run, the last epoch kept, no choice on the validation part",
        },
        "runs": [],
    }
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {(f, seed): write_folders(Path(tmp), seed, f)[0] for f in fractions for seed in seeds}
        for setting in settings:
            ending = SETTINGS[setting]
            for fraction in fractions:
                for seed in seeds:
                    for model in models:
                        finetune = FAIR[model]
                        start = time.perf_counter()
                        row = {"setting": setting, "fraction": fraction, "seed": seed, "model": model} | teacher_only(
                            encoder, folders[fraction, seed], seed, finetune | ending
                        )
                        row["seconds"] = round(time.perf_counter() - start, 1)
                        part["runs"].append(row)
                        print(
                            f"{setting} {fraction:.0%} seed {seed} {model}: {100 * row['accuracy']:.1f} (epochs "
                            f"{row['fitting']['epochs_run']}, kept {row['fitting']['best_epoch']}, {row['seconds']} s)",
                            flush=True,
                        )
                        part["summary"], part["paired"] = sla_rows(part["runs"])
                        part["wall_seconds"] = round(time.perf_counter() - began, 1)
                        write_atomic(out, json.dumps(saved | {"sla_vs_augmentation": part}, indent=1, default=float))
    return saved | {"sla_vs_augmentation": part}


def sla_markdown(part: dict) -> str:
    lines = [
        "| ending | labels | model | accuracy per seed | mean [95% CI] | epochs run | optimizer steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in part["summary"]:
        per_seed = ", ".join(f"{100 * a:.1f}" for a in row["per_seed"])
        lines.append(
            f"| {row['setting']} | {row['fraction']:.0%} | {row['model']} | {per_seed} | {100 * row['accuracy']:.1f} "
            f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}] | {row['epochs_run']} | {row['optimizer_steps']} |"
        )
    lines += [
        "",
        "| ending | labels | paired by seed | per seed (McNemar p on the test images) | mean [95% t-CI] |",
        "|---|---|---|---|---|",
    ]
    for d in part["paired"]:
        lines.append(
            f"| {d['setting']} | {d['fraction']:.0%} | {d['difference']} | "
            + ", ".join(f"{100 * g:+.1f} ({q:.2g})" for g, q in zip(d["per_seed"], d["mcnemar_p_per_seed"]))
            + " | "
            f"{100 * d['mean']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] |"
        )
    return "\n".join(lines)


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
    parser.add_argument("--sla-only", action="store_true", help="SLA vs its DA controls and fine-tuning alone")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), help="--sla-only")
    parser.add_argument("--models", nargs="+", choices=list(FAIR), default=list(FAIR), help="--sla-only")
    parser.add_argument(
        "--merge-sla", nargs="+", metavar="JSON", help="join the sla_vs_augmentation runs of these files into --out"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if args.merge_sla:
        parts = [json.loads(Path(p).read_text())["sla_vs_augmentation"] for p in args.merge_sla]
        base = json.loads(out.read_text())
        unique = {(r["setting"], r["fraction"], r["seed"], r["model"]): r for p in reversed(parts) for r in p["runs"]}
        joined = parts[0] | {"runs": list(unique.values())}  # a run in two files: the first file's
        joined["wall_seconds"] = {p_: part["wall_seconds"] for p_, part in zip(args.merge_sla, parts)}
        joined["summary"], joined["paired"] = sla_rows(joined["runs"])
        write_atomic(out, json.dumps(base | {"sla_vs_augmentation": joined}, indent=1, default=float))
        print(sla_markdown(joined))
        return
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
        if args.sla_only:
            part = run_sla_only(args.fractions, args.seeds, out, encoder, args.settings, args.models)
            print(sla_markdown(part["sla_vs_augmentation"]))
            return
        saved = run(args.fractions, args.seeds, args.variants, out, encoder, seconds)
    saved["summary"] = summary(saved["runs"])
    write_atomic(out, json.dumps(saved, indent=1, default=float))
    print(markdown(saved["summary"]))


if __name__ == "__main__":
    main()
