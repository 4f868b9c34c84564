"""Unlearning a forget set, audited against retraining without it (issue 19, parts 2 and 3).

Data: ``builtin:digits`` (scikit-learn's 8x8 digits; its own split: 1,347 training and 450 test images). Per seed:

1. An encoder: SimCLR, small_cnn, ``--steps`` steps at batch 256 on the training split (``selfsup pretrain``).
2. The original classifier: that encoder fine-tuned with a linear head on the whole training split
   (``workflows/unlearn.fine_tune_classifier``: head at 10x the encoder's learning rate 1e-3, at most 30 epochs,
   early stopping on a stratified tenth of what it trains on).
3. Two forget sets (sample ids of the training split, drawn with the seed): ``class``, 10% of the training images of
   digit 3; ``random``, a random 5% of the training split. The retain set is the rest of the training split.
4. ``selfsup unlearn`` with its default options (at most 50 Adam steps at 1e-4, batch 64, NPO beta 0.1, retain
   weight 1) by ``npo``, ``gradient-ascent`` and ``label-agnostic`` (on the classifier's encoder, its head kept), each
   under both stopping rules: ``at-heldout-loss`` (the default: stop once the forget set's per-sample losses are no
   lower than those of a held-out part the classifier never trained on, i.e. a loss-threshold attack's AUC on them
   is at most 0.5, the overshooting last step bisected; the held-out part is step 2's early-stopping tenth less the
   forget set, passed as ``heldout`` and kept out of the unlearning's retain batches; label-agnostic scores
   ``-log max softmax``, no labels) and ``steps`` (all 50 steps, the earlier default). The gold standard
   for all three is the same retrained classifier: the pre-trained encoder fine-tuned on the retain set alone by the
   protocol of step 2 (the first run trains it, the others audit it with ``retrained``).
5. With ``--encoder-level`` (default on), ``label-agnostic`` on the encoder itself (fixed 50 steps: an encoder has no
   loss for the stopping rule), audited by kNN (k=20, fitted on the
   retain embeddings) against an encoder pre-trained again by step 1 on the retain set alone (written as a PNG
   subset): the gold standard for an encoder, and its cost.

Figures per (forget set, model): forget, retain and test accuracy, the membership-inference attack's ROC AUC on
forget (members) vs test (non-members) by per-sample loss (0.5: it cannot tell; the retrained model's value is the
target, not 0.5 itself), the forget embeddings' cosine to the original encoder's, and seconds (unlearning vs
retraining). Mean over seeds with a 95% t-interval over seeds. Nothing is chosen on the test split: the unlearning
options are the CLI defaults, fixed before this benchmark ran.

Torch runs on one thread: on this machine's 2 shared, busy cores one thread is many times faster for small steps.

Usage: python benchmarks/unlearning.py [--seeds 3] [--steps 150] [--no-encoder-level]
       python benchmarks/unlearning.py --report benchmarks/results/unlearning.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "unlearning.json"
DATA = "builtin:digits"
FORGET_CLASS = 3
CLASS_SHARE = 0.10
RANDOM_SHARE = 0.05
METHODS = ("npo", "gradient-ascent", "label-agnostic")
STOPS = ("at-heldout-loss", "steps")
FIGURES = ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_auc", "forget_similarity_to_original")


def _pretrain(data: str, out: Path, steps: int, seed: int) -> tuple[Path, float]:
    from selfsup.recipe import make_recipe
    from selfsup.workflows.pretrain import pretrain

    recipe = make_recipe(
        data=data,
        out=str(out),
        method="simclr",
        encoder="small_cnn",
        image_size=8,
        max_steps=steps,
        epochs=steps,
        batch_size=256,
        online_probe=False,
        seed=seed,
    )
    began = time.perf_counter()
    pretrain(recipe, progress=False)
    return out, time.perf_counter() - began


def _forget_ids(ids: list[str], y: np.ndarray, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    of_class = np.flatnonzero(y == FORGET_CLASS)
    chosen = {
        "class": rng.choice(of_class, size=round(CLASS_SHARE * len(of_class)), replace=False),
        "random": rng.choice(len(ids), size=round(RANDOM_SHARE * len(ids)), replace=False),
    }
    return {name: [ids[i] for i in sorted(idx)] for name, idx in chosen.items()}


def _csv(path: Path, ids: list[str]) -> Path:
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    return path


def run_seed(seed: int, steps: int, encoder_level: bool, work: Path) -> list[dict]:
    import torch

    from selfsup.checkpoint import load_encoder, save_classifier
    from selfsup.evaluation.finetune import FinetuneOptions, validation_split
    from selfsup.sources import load_data
    from selfsup.workflows.forget_sets import UnlearnOptions
    from selfsup.workflows.subsets import write_subset
    from selfsup.workflows.unlearn import fine_tune_classifier, unlearn

    options = UnlearnOptions()
    encoder_dir, pretrain_seconds = _pretrain(DATA, work / f"encoder-{seed}", steps, seed)
    encoder = load_encoder(encoder_dir)
    splits = load_data(DATA, preprocessing=encoder.preprocessing)
    train = splits.train
    assert train.classes is not None
    torch.manual_seed(seed)
    original, finetune_seconds = fine_tune_classifier(encoder, train, len(train.classes), options, seed)
    save_classifier(original, train.classes, work / f"classifier-{seed}")
    _, val_idx = validation_split(train.y.numpy(), FinetuneOptions().val_fraction, seed)  # step 2's held-out tenth
    rows = []
    for forget_name, ids in _forget_ids(train.ids, train.y.numpy(), seed).items():
        forget = _csv(work / f"forget-{forget_name}-{seed}.csv", ids)
        held = [train.ids[i] for i in val_idx if train.ids[i] not in set(ids)]
        heldout = _csv(work / f"heldout-{forget_name}-{seed}.csv", held)
        retrained: Path | None = None
        retrain_seconds = None
        for method in METHODS:
            for stop in STOPS:
                out = work / f"{forget_name}-{method}-{stop}-{seed}"
                result = unlearn(
                    work / f"classifier-{seed}",
                    DATA,
                    forget,
                    method,
                    out=out,
                    heldout=heldout,
                    options=replace(options, stop=stop),
                    retrain_from=None if retrained else encoder_dir,
                    retrained=retrained,
                    seed=seed,
                )
                if retrained is None:
                    retrained, retrain_seconds = out / "retrained", result.audit["seconds"]["retrain"]
                rows.append(_row(seed, forget_name, method, "classifier", result.audit, retrain_seconds))
                _show(rows[-1])
        if encoder_level:
            keep = np.flatnonzero(~np.isin(train.ids, ids))
            subset = write_subset(DATA, splits, keep, work / f"retain-{forget_name}-{seed}", _options())
            retrained_encoder, seconds = _pretrain(str(subset), work / f"re-encoder-{forget_name}-{seed}", steps, seed)
            result = unlearn(
                encoder_dir,
                DATA,
                forget,
                "label-agnostic",
                out=work / f"{forget_name}-encoder-{seed}",
                options=options,
                retrained=retrained_encoder,
                seed=seed,
            )
            rows.append(_row(seed, forget_name, "label-agnostic", "encoder", result.audit, seconds))
            _show(rows[-1])
    for row in rows:
        row["pretrain_seconds"], row["finetune_original_seconds"] = pretrain_seconds, finetune_seconds
    return rows


def _options():
    from selfsup.data import DataOptions

    return DataOptions()


def _row(seed: int, forget: str, method: str, level: str, audit: dict, retrain_seconds: float | None) -> dict:
    return {
        "seed": seed,
        "forget_set": forget,
        "method": method,
        "level": level,
        "stop": audit["stopping"]["rule"] if "trace" in audit["stopping"] else "steps",
        "stopped_at": audit["stopping"]["step"],
        "forget_samples": audit["forget"]["samples"],
        "audit": audit["audit"],
        "unlearn_seconds": audit["seconds"]["unlearn"],
        "retrain_seconds": retrain_seconds,
        "protocol": next(iter(audit["audit"].values())).get("protocol"),
    }


def _show(row: dict) -> None:
    parts = [f"seed {row['seed']} {row['forget_set']:<6} {row['method']:<15} {row['level']:<10} {row['stop']:<15}"]
    parts.append(f"step {row['stopped_at']}")
    for model in ("original", "unlearned", "retrained"):
        r = row["audit"].get(model, {})
        parts.append(
            f"{model}: f {100 * r.get('forget_accuracy', np.nan):.1f} r {100 * r.get('retain_accuracy', np.nan):.1f} "
            f"t {100 * r.get('test_accuracy', np.nan):.1f} auc {r.get('mia_auc', np.nan):.3f}"
        )
    parts.append(f"{row['unlearn_seconds']:.1f}s vs {row['retrain_seconds']:.1f}s")
    print(" | ".join(parts), flush=True)


def _interval(values: list[float]) -> tuple[float, float]:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def _cell(values: list[float], percent: bool) -> str:
    mean, half = _interval([100 * v if percent else v for v in values])
    digits = 1 if percent else 3
    return f"{mean:.{digits}f}" + ("" if np.isnan(half) else f" ± {half:.{digits}f}")


def summary(rows: list[dict]) -> str:
    """A markdown table: per forget set and method, each model's figures, mean ± 95% t half-width over seeds."""
    lines = [
        "| forget set | method (level, stop) | model | forget acc. | retain acc. | test acc. | MIA AUC | forget cos. "
        "| seconds | steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for row in rows:
        key = (row["forget_set"], row["method"], row["level"], row.get("stop", "steps"))
        groups.setdefault(key, []).append(row)
    for (forget, method, level, stop), group in groups.items():
        for model in ("original", "unlearned", "retrained"):
            present = [g["audit"][model] for g in group if model in g["audit"]]
            if not present:
                continue
            cells = [_cell([p[k] for p in present], k.endswith("accuracy")) for k in FIGURES]
            key = {"unlearned": "unlearn_seconds", "retrained": "retrain_seconds"}.get(model)
            seconds = _cell([g[key] for g in group], False) if key else ""
            steps = _cell([g.get("stopped_at", 50) for g in group], False) if model == "unlearned" else ""
            lines.append(
                f"| {forget} | {method} ({level}, {stop}) | {model} | "
                + " | ".join(cells)
                + f" | {seconds} | {steps} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150, help="SimCLR pre-training steps (batch 256)")
    parser.add_argument("--no-encoder-level", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, help="print the table of an earlier results file and stop")
    args = parser.parse_args()
    if args.report:
        print(summary(json.loads(args.report.read_text())["rows"]))
        return
    import torch

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    began = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="unlearning-bench-") as scratch:
        for seed in range(args.seeds):
            rows += run_seed(seed, args.steps, not args.no_encoder_level, Path(scratch))
    table = summary(rows)
    print(table)
    record = {
        "data": DATA,
        "protocol": __doc__,
        "seeds": args.seeds,
        "pretrain_steps": args.steps,
        "wall_seconds": round(time.perf_counter() - began, 1),
        "command": " ".join(sys.argv),
        "rows": rows,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, default=float))
    print(f"written to {args.out} ({record['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
