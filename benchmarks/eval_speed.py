"""Evaluation speed (issue 22): ``selfsup evaluate`` with its default protocols, wall and CPU seconds per case.

Cases (each pre-trained for 3 steps first: speed does not depend on the weights):
* images-64, images-128: 2,000 digit images (sklearn's 1,797 8x8 digits and 203 copies shifted by a pixel,
  bilinearly enlarged to 32 px PNGs in class folders), read at 64 and at 128 px; default encoder (small_cnn).
* table: 10,000 rows x 500 columns (scikit-learn ``make_classification``: 50 informative columns, 5 classes;
  no bundled real table is this wide), default encoder (mlp) and the gbdt bar.
* series: PLAID from sktime's bundled UCR files (537 train / 537 test household appliance current
  signatures, ragged, up to 1,344 steps, 11 classes), default encoder (dilated_conv).
* series-1000: 1,000 series of exactly 1,000 steps (no bundled set is that long and that many: a sine of one of
  5 class frequencies at a random phase, plus noise of the same size; ``.npz``), default encoder.

``--slow`` also runs each case with every linear probe fitted on all its columns, as before issue 22 (the other
speed-ups stay on: folded batch norms, trimmed series batches, batched torch heads, kNN's one sort). ``--exact`` also
runs it with the raw input's linear probe fitted in the span of its standardised training rows instead of on its first
principal components: the same model as on all its columns (the representer theorem), at a fraction of ``--slow``'s
time on wide images. Figures go to ``benchmarks/results/eval_speed.json``.

Usage: python benchmarks/eval_speed.py [--cases images-64 ...] [--slow] [--exact] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = ("images-64", "images-128", "table", "series", "series-1000")
# the path before issue 22: every linear probe fitted on all its columns, whatever their number
SLOW = "import selfsup.evaluation.linear as l; l.WIDE = 10**12; "
# the raw input's linear probe without the principal-component reduction: in its training rows' span, exact
EXACT = "import selfsup.evaluation.protocols as p; p.RAW_COMPONENTS = None; "
RUN = "import sys; from selfsup.cli import main; sys.exit(main(sys.argv[1:]))"


def _images(work: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = work / "images"
    if folder.is_dir():
        return folder
    digits = load_digits()
    images, labels = list(digits.images), list(digits.target)
    for i in np.random.default_rng(0).choice(len(images), 203, replace=False):
        images.append(np.roll(digits.images[i], 1, axis=1))
        labels.append(digits.target[i])
    for k, (image, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = Image.fromarray((image / 16 * 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        pixels.save(folder / str(label) / f"{k:04d}.png")
    return folder


def _table(work: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    path = work / "wide.csv"
    if not path.is_file():
        x, y = make_classification(10_000, 500, n_informative=50, n_classes=5, random_state=0)
        frame = pd.DataFrame(x.astype(np.float32), columns=[f"c{i}" for i in range(500)])
        frame["label"] = y
        frame.to_csv(path, index=False)
    return path


def _dense_series(work: Path) -> Path:
    path = work / "series-1000.npz"
    if not path.is_file():
        rng = np.random.default_rng(0)
        y = np.arange(1000) % 5
        t = np.arange(1000) / 1000
        x = np.sin(2 * np.pi * (5 + 2 * y[:, None]) * t + rng.uniform(0, 2 * np.pi, (1000, 1)))
        np.savez(path, x=(x + rng.normal(size=x.shape)).astype(np.float32)[:, None, :], y=y)
    return path


def _series() -> Path:
    from selfsup.datasets.ucr import sktime_data_folder

    return sktime_data_folder() / "PLAID"


def _data(case: str, work: Path) -> tuple[str, list[str]]:
    """The data path and the reading flags of a case."""
    if case.startswith("images"):
        return str(_images(work)), ["--image-size", case.split("-")[1]]
    if case == "table":
        return str(_table(work)), ["--label", "label"]
    if case == "series-1000":
        return str(_dense_series(work)), []
    return str(_series()), []


def _cli(code: str, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (this process's children) of ``python -c code args``; stops on a failure."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"selfsup {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)


def _rows(report: Path) -> list[dict]:
    """Each row's accuracy, interval and test-sample count (so its interval can be re-derived), and the baselines."""
    results = json.loads((report / "results.json").read_text())
    return [
        {key: row[key] for key in ("encoder", "protocol", "accuracy", "ci_low", "ci_high", "n_test")}
        | {"details": row["details"]}
        for row in results["rows"]
    ] + [{"baselines": results["meta"]["baselines"], "split": results["meta"]["split"]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--slow", action="store_true", help="also run with every linear probe on all its columns")
    parser.add_argument("--exact", action="store_true", help="also run with the raw input's exact (span) linear probe")
    parser.add_argument("--work", type=Path, default=Path("/tmp/selfsup-eval-speed"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_speed.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for case in args.cases:
        data, flags = _data(case, args.work)
        run = args.work / f"run-{case}"
        if not (run / "encoder.safetensors").is_file():
            _cli(RUN, ["pretrain", "--data", data, *flags, "--max-steps", "3", "--out", str(run), "--overwrite"])
        read = [flag for flag in flags if flag != "--image-size" and not flag.isdigit()]
        paths = [("fast", RUN)] + [("slow", SLOW + RUN)] * args.slow + [("exact", EXACT + RUN)] * args.exact
        for path, code in paths:
            report = args.work / f"eval-{case}-{path}"
            evaluate = ["evaluate", "--encoder", str(run), "--data", data, *read, "--out", str(report), "--overwrite"]
            wall, cpu = _cli(code, evaluate)
            results.setdefault(case, {})[path] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
            results[case][path]["rows"] = _rows(report)
            accuracy = ", ".join(
                f"{r['encoder']}/{r['protocol']} {100 * r['accuracy']:.1f} [{100 * r['ci_low']:.1f}, "
                f"{100 * r['ci_high']:.1f}]"
                for r in results[case][path]["rows"]
                if "encoder" in r
            )
            print(f"{case:11s} {path}: {wall:6.1f} s wall, {cpu:6.1f} s CPU; {accuracy}", flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
