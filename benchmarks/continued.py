"""Continued pre-training benchmark (issue 5): an image domain shift built from the built-in digits.

Source domain: digits 0-4; target domain: digits 5-9 (scikit-learn's digits, the built-in train/test
split, written as two image folders). A source checkpoint is pre-trained with SimCLR on the source
training images. Then, on the target training images, for the same budget of steps:

- scratch: SimCLR from a random init;
- continued: from the source checkpoint, head warm-up (encoder frozen for the first steps), cosine LR;
- continued + self-distillation (two stages, Lee et al. 2022; twice the steps in all);
- continued with the wsd and constant schedules;
- continued with no head warm-up and 10x the LR (the careless way).

Each encoder is probed on the target test split (the gain) and the source test split (retention):
kNN (k=20) and a linear probe (C by 5-fold CV on the training split), mean over seeds [95% interval:
``tables_series.fmt``, the t-interval over seeds with each seed's Wilson interval over the test samples in
quadrature], next to the source checkpoint itself, a random-init encoder and raw pixels.

Usage: python benchmarks/continued.py [--seeds 3] [--source-steps 300] [--steps 100] [--out benchmarks/results/continued.json]
       python benchmarks/continued.py --report benchmarks/results/continued.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
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
from selfsup.modalities import get_modality
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.pretrain import pretrain
from tables_series import INTERVAL, fmt, with_notes

SOURCE_CLASSES, TARGET_CLASSES = range(0, 5), range(5, 10)
COMMON = dict(
    method="simclr",
    batch_size=128,
    warmup_epochs=0,
    online_probe=False,
    checkpoint_every=10_000,
    epochs=10_000,
    image_size=16,
    view_args={"flip": False},
)
# name -> recipe fields on top of COMMON (continued runs also get init=the source checkpoint)
CONDITIONS = {
    "scratch": {},
    "continued (cosine, head warm-up)": {"freeze_encoder_steps": 20},
    "continued + self-distillation": {"freeze_encoder_steps": 20, "self_distill": True, "distill_report": False},
    "continued (wsd, head warm-up)": {"freeze_encoder_steps": 20, "schedule": "wsd"},
    "continued (constant, head warm-up)": {"freeze_encoder_steps": 20, "schedule": "constant"},
    "continued (no warm-up, 10x LR)": {"lr": 1e-2},
}


def write_domain(root: Path, classes: range) -> Path:
    """The built-in digits of ``classes`` as an image folder with train/ and test/ (8x8 grey PNGs)."""
    digits = load_builtin("digits")
    for split, data in (("train", digits.train), ("test", digits.test)):
        for i, (image, label) in enumerate(zip(data.x, data.y)):
            if int(label) in classes:
                folder = root / split / str(int(label))
                folder.mkdir(parents=True, exist_ok=True)
                pixels = image[0].numpy() if image.dtype == torch.uint8 else (image[0].numpy() * 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def probe(encoder, domains: dict, seed: int) -> dict:
    """kNN and linear accuracy of ``encoder`` on each domain's test split."""
    result = {}
    for name, splits in domains.items():
        train, test = splits.train, splits.test
        features = {"pretrained": (embed(encoder, train.float_samples()), embed(encoder, test.float_samples()))}
        rows = run_protocols(features, train.y.numpy(), test.y.numpy(), seed=seed)
        result[name] = {r["protocol"]: r["accuracy"] for r in rows}
    return result


def baselines(domains: dict, config: dict, seed: int) -> dict:
    torch.manual_seed(seed)
    random_init = build_encoder(config).eval()
    out = {"random-init": probe(random_init, domains, seed), "raw pixels": {}}
    raw = get_modality("image").raw_features
    for name, splits in domains.items():
        features = {"pretrained": (raw(splits.train.x, config), raw(splits.test.x, config))}
        rows = run_protocols(features, splits.train.y.numpy(), splits.test.y.numpy(), seed=seed)
        out["raw pixels"][name] = {r["protocol"]: r["accuracy"] for r in rows}
    return out


def test_sizes(saved: dict) -> dict[str, int]:
    """Each domain's number of test samples: as the run stored it, or (runs saved before it was stored) counted on
    the built-in digits' test split, whose classes 0-4 and 5-9 the domains are (``fmt`` refuses an accuracy that
    is not a whole number of them)."""
    if "n_test" in saved:
        return saved["n_test"]
    test_y = load_builtin("digits").test.y.numpy()
    return {
        "source": int(np.isin(test_y, list(SOURCE_CLASSES)).sum()),
        "target": int(np.isin(test_y, list(TARGET_CLASSES)).sum()),
    }


def markdown(saved: dict) -> str:
    rows, n_test = saved["results"], test_sizes(saved)
    lines = ["| encoder | target kNN | target linear | source kNN | source linear |", "|---|---|---|---|---|"]
    for condition in dict.fromkeys(r["condition"] for r in rows):
        runs = [r for r in rows if r["condition"] == condition]
        cells = [
            fmt([{"accuracy": r["probe"][d][p], "n_test": n_test[d]} for r in runs])
            for d in ("target", "source")
            for p in ("knn", "linear")
        ]
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return with_notes("\n".join(lines))


def header(saved: dict) -> str:
    return (
        f"Digits 0-4 (source) -> digits 5-9 (target); source checkpoint: SimCLR, {saved['source_steps']} steps; "
        f"each condition {saved['steps']} steps on the target training images (self-distillation: two stages of "
        f"{saved['steps']}); small_cnn, 16 px, batch 128, {saved['seeds']} seeds; accuracy % on each domain's "
        f"test split, {INTERVAL}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/continued.json")
    parser.add_argument("--report", metavar="JSON")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(header(saved))
        print(markdown(saved))
        return
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = {"seeds": args.seeds, "steps": args.steps, "source_steps": args.source_steps, "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = {
            "source": write_domain(root / "source", SOURCE_CLASSES),
            "target": write_domain(root / "target", TARGET_CLASSES),
        }
        domains = {name: load_data(str(path), DataOptions(image_size=16)) for name, path in folders.items()}
        saved["n_test"] = {name: len(splits.test) for name, splits in domains.items()}
        for seed in range(args.seeds):
            source = pretrain(
                make_recipe(
                    data=str(folders["source"]),
                    seed=seed,
                    max_steps=args.source_steps,
                    out=str(root / f"source-{seed}"),
                    **COMMON,
                ),
                progress=False,
            )
            entries = [("source checkpoint (before)", probe(source.encoder, domains, seed))]
            for name, value in baselines(domains, source.encoder.config, seed).items():
                entries.append((name, value))
            for condition, fields in CONDITIONS.items():
                init = {} if condition == "scratch" else {"init": str(source.out)}
                recipe = make_recipe(
                    data=str(folders["target"]),
                    seed=seed,
                    max_steps=args.steps,
                    out=str(root / f"{condition}-{seed}"),
                    **(COMMON | fields | init),
                )
                run = pretrain(recipe, progress=False)
                entries.append((condition, probe(run.encoder, domains, seed)))
            for condition, result in entries:
                saved["results"].append({"condition": condition, "seed": seed, "probe": result})
                print(
                    f"seed {seed} {condition:38s} target kNN {result['target']['knn']:.3f} "
                    f"source kNN {result['source']['knn']:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            tmp_out = out.with_name(out.name + ".tmp")
            tmp_out.write_text(json.dumps(saved, indent=1))
            tmp_out.replace(out)
    print(header(saved))
    print(markdown(saved))


if __name__ == "__main__":
    main()
