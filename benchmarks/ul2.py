"""UL2's mixture of denoisers against the objective it extends (T5 span corruption, the R-denoiser alone) and
against masked language modelling, on builtin:rottentomatoes (critics' snippets, fresh vs rotten).

Protocol: each run pre-trains from random weights on the training split (9,473 snippets) for the same number of
AdamW steps, batch and learning rate (``--lr``, the same for every objective: nothing is tuned), scheduled as
``selfsup pretrain`` does (10% linear warm-up, cosine decay, weight decay 1e-4) in a plain loop over the tokenised
split (the workflow's start-up, reading and tokenising the 12,752 snippets per run, costs more than the training
on these shared cores); then the pooled encoder embedding is probed with ``evaluate``'s probes, fitted on a
stratified subset of the training split (``--probe-rows``, 3,000 by default, fixed by the seed: fitting on all 9,473
costs more than the pre-training on these shared cores) and scored on the test split (3,279 snippets of other films;
``--test-rows`` scores a fixed stratified subset): kNN (k by 5-fold CV on the probe's training rows) and a linear probe (C by 5-fold CV on them).

* ``ul2``: the seven denoisers with mode tokens on the ``t5`` encoder (encoder-decoder, the decoder in the method);
* ``span``: ``ul2 mixture=r``, T5's span corruption (mean span 3, 15%) alone, same ``t5`` architecture;
* ``mlm``: BERT's masked LM on a ``small_bert`` of the same width and encoder depth (an encoder-only model).

Baselines of the same seeds: the random-init encoder of each architecture (built with ``torch.manual_seed(seed)``),
and the raw-input bag of subword ids (seed 0 only unless ``--raw-every-seed``: it depends on the seed only through
the probe's subset and folds).
Numbers: mean over seeds [95% interval: the t-interval over seeds combined in quadrature with each seed's Wilson
interval over the test snippets, ``tables_series.fmt``]. CPU seconds per pre-training run are listed: a UL2 step
costs about twice a span-corruption step (its extreme and prefix-LM targets are longer), so ``--steps-for span=N``
gives span corruption its own step count for equal CPU time.

Runs kept in ``results/`` (all ``--probe-rows 1500 --test-rows 1600``, on two cores shared with other jobs):
``ul2.json`` (``--objectives ul2,span``, 100 steps each), ``ul2-equal-cpu.json`` (``--objectives ul2,span``, ul2 200
steps, span 400) and ``ul2-400.json`` (ul2 400 steps, span 800, mlm 400).

Usage: python benchmarks/ul2.py [--seeds 3] [--steps 200] [--steps-for span=400] [--batch 32] [--lr 1e-3]
       [--objectives ul2,span,mlm] [--probe-rows 3000] [--test-rows 3279] [--out benchmarks/results/ul2.json]
       [--report JSON]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tables_series import INTERVAL, fmt, scored, with_notes

DATASET = "rottentomatoes"
SIZE = {"embed_dim": 64, "depth": 2, "heads": 2, "mlp_dim": 256, "max_length": 48}
OBJECTIVES = {  # name: (method, method args, encoder, encoder args)
    "ul2": ("ul2", {}, "t5", SIZE | {"decoder_depth": 2}),
    "span": ("ul2", {"mixture": "r"}, "t5", SIZE | {"decoder_depth": 2}),
    "mlm": ("mlm", {}, "small_bert", SIZE),
}


def probe_rows(encoder: torch.nn.Module | None, data: dict, seed: int, name: str, features=None) -> list[dict]:
    """kNN (k by 5-fold CV on the probe's training rows) and a linear probe (C by 5-fold CV on them) of the encoder's
    embedding (or of ``features``: ``(train, test)``), scored on the whole test split."""
    from selfsup.evaluation.embed import embed
    from selfsup.evaluation.knn import choose_k, knn_predict
    from selfsup.evaluation.linear import linear_probe

    if features is None:
        features = (embed(encoder, data["train_x"]), embed(encoder, data["test_x"]))
    train, test = features
    rows = []
    k, _ = choose_k(train, data["train_y"], seed=seed)
    predictions = {
        "knn": knn_predict(train, data["train_y"], test, k=k),
        "linear": linear_probe(train, data["train_y"], test, seed=seed, components=256)[0],
    }
    for protocol, predicted in predictions.items():
        correct = int((predicted == data["test_y"]).sum())
        rows.append(
            {
                "encoder": name,
                "protocol": protocol,
                "accuracy": correct / len(data["test_y"]),
                "n_test": len(data["test_y"]),
            }
        )
    return rows


def _subset(y: np.ndarray, rows: int, seed: int) -> list[int]:
    """A stratified subset of ``rows`` of ``y``'s indices, fixed by ``seed`` (all of them when ``rows`` covers it)."""
    from sklearn.model_selection import train_test_split

    if rows >= len(y):
        return list(range(len(y)))
    chosen, _ = train_test_split(range(len(y)), train_size=rows, stratify=y, random_state=seed)
    return sorted(chosen)


def probe_data(splits, seed: int, rows: int, test_rows: int) -> dict:
    """Stratified subsets of ``rows`` training snippets (fixed by ``seed``) to fit the probes on and of
    ``test_rows`` test snippets (fixed, the same for every seed) to score them on."""
    y, test_y = splits.train.y.numpy(), splits.test.y.numpy()
    chosen, tested = _subset(y, rows, seed), _subset(test_y, test_rows, 0)
    return {
        "train_x": splits.train.x[chosen],
        "train_y": y[chosen],
        "test_x": splits.test.x[tested],
        "test_y": test_y[tested],
    }


def load_reviews() -> tuple:
    """builtin:rottentomatoes as MiniLM token ids (t5 and small_bert read text alike: same tokenizer and length)."""
    from selfsup.data import DataOptions
    from selfsup.modalities import get_modality
    from selfsup.sources import load_data

    text = get_modality("text")
    readings = [text.planned_preprocessing(enc, DataOptions(), args) for _, _, enc, args in OBJECTIVES.values()]
    assert all(r.settings == readings[0].settings for r in readings)
    return load_data(f"builtin:{DATASET}", preprocessing=readings[0])


def steps_of(objective: str, args: argparse.Namespace) -> int:
    """The objective's steps: ``--steps``, or its own from ``--steps-for`` (e.g. ``span=300``: equal CPU time)."""
    own = dict(item.split("=") for item in args.steps_for.split(",") if item)
    return int(own.get(objective, args.steps))


def train(objective: str, seed: int, args: argparse.Namespace, x: torch.Tensor) -> tuple:
    """``(pre-trained encoder, random-init copy, CPU seconds, wall seconds, last losses)``: ``args.steps`` AdamW
    steps (batches drawn with replacement by a generator seeded with ``seed``), linear warm-up over 10% of the
    steps then cosine decay, weight decay 1e-4, as ``selfsup pretrain`` schedules them."""
    import copy
    import math

    from selfsup.encoders import build_encoder
    from selfsup.encoders.text import text_encoder_config
    from selfsup.methods import build_method

    method_name, method_args, encoder_name, encoder_args = OBJECTIVES[objective]
    torch.manual_seed(seed)
    encoder = build_encoder(text_encoder_config(encoder_name, **encoder_args))
    initial = copy.deepcopy(encoder)
    method = build_method(method_name, encoder, method_args).train()
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=args.lr, weight_decay=1e-4)
    steps = steps_of(objective, args)
    warm = max(1, steps // 10)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        batch = x[torch.randint(len(x), (args.batch,), generator=generator)]
        loss = method.training_loss([batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return encoder.eval(), initial.eval(), cpu, wall, losses


def run_one(objective: str, seed: int, args: argparse.Namespace, splits, baselines: bool) -> dict:
    encoder, initial, cpu, wall, losses = train(objective, seed, args, splits.train.x)
    eval_wall = time.perf_counter()
    data = probe_data(splits, seed, args.probe_rows, args.test_rows)
    rows = probe_rows(encoder, data, seed, "pretrained")
    if baselines:
        rows += probe_rows(initial, data, seed, "random-init")
        if seed == 0 or args.raw_every_seed:
            from selfsup.modalities.text import raw_features

            raw = (raw_features(data["train_x"], encoder.config), raw_features(data["test_x"], encoder.config))
            rows += probe_rows(None, data, seed, "raw-input", features=raw)
    method, method_args, encoder_name, encoder_args = OBJECTIVES[objective]
    return {
        "objective": objective,
        "method": method,
        "method_args": method_args,
        "encoder": encoder_name,
        "encoder_args": encoder_args,
        "seed": seed,
        "steps": steps_of(objective, args),
        "batch": args.batch,
        "lr": args.lr,
        "probe_rows": args.probe_rows,
        "test_rows": len(data["test_y"]),
        "loss_first_10": sum(losses[:10]) / len(losses[:10]),
        "loss_last_10": sum(losses[-10:]) / len(losses[-10:]),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(wall, 1),
        "eval_wall_seconds": round(time.perf_counter() - eval_wall, 1),
        "split": "test",
        "rows": rows,
    }


def markdown(results: list[dict]) -> str:
    lines = ["| encoder / objective | steps | kNN | linear | CPU s / run |", "|---|---|---|---|---|"]
    first = [r for r in results if any(x["encoder"] == "raw-input" for x in r["rows"])]
    lines.append(
        f"| raw input (bag of subword ids) | | {fmt(scored(first, 'raw-input', 'knn'))} | "
        f"{fmt(scored(first, 'raw-input', 'linear'))} | |"
    )
    for encoder in dict.fromkeys(r["encoder"] for r in results):
        probed = [
            r for r in results if r["encoder"] == encoder and any(x["encoder"] == "random-init" for x in r["rows"])
        ]
        if probed:
            lines.append(
                f"| random-init {encoder} | 0 | {fmt(scored(probed, 'random-init', 'knn'))} | "
                f"{fmt(scored(probed, 'random-init', 'linear'))} | |"
            )
    for objective in dict.fromkeys(r["objective"] for r in results):
        runs = [r for r in results if r["objective"] == objective]
        cpu = sum(r["cpu_seconds"] for r in runs) / len(runs)
        lines.append(
            f"| {objective} ({runs[0]['encoder']}) | {runs[0]['steps']} | {fmt(scored(runs, 'pretrained', 'knn'))} | "
            f"{fmt(scored(runs, 'pretrained', 'linear'))} | {cpu:.0f} |"
        )
    return with_notes("\n".join(lines))


def header(results: list[dict]) -> str:
    r = results[0]
    seeds = sorted({x["seed"] for x in results})
    return (
        f"builtin:{DATASET}, AdamW steps as listed, batch {r['batch']}, lr {r['lr']} (cosine, 10% warm-up), "
        f"seeds {seeds}; {SIZE['embed_dim']} wide, {SIZE['depth']} encoder layers (t5: and {SIZE['depth']} decoder "
        f"layers), {SIZE['max_length']} tokens; probes fitted on {r['probe_rows']} training snippets; accuracy % on "
        f"{r.get('test_rows', 3279)} snippets of the test split (films unseen in training), {INTERVAL}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--steps-for", default="", help="objective=steps,...: other step counts (equal CPU time)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: busy shared cores)")
    parser.add_argument("--probe-rows", type=int, default=3000, help="training snippets the probes are fitted on")
    parser.add_argument("--test-rows", type=int, default=3279, help="test snippets scored (a fixed stratified subset)")
    parser.add_argument(
        "--raw-every-seed", action="store_true", help="the raw-input baseline at every seed, not seed 0"
    )
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--out", default="benchmarks/results/ul2.json")
    parser.add_argument("--report", help="print the table of a saved JSON and stop")
    args = parser.parse_args()
    if args.report:
        results = json.loads(Path(args.report).read_text())["results"]
        print(header(results) + "\n" + markdown(results))
        return
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    start = time.perf_counter()
    splits = load_reviews()
    for seed in range(args.seeds):
        probed: set[str] = set()
        for objective in args.objectives.split(","):
            encoder = OBJECTIVES[objective][2]
            row = run_one(objective, seed, args, splits, baselines=encoder not in probed)
            probed.add(encoder)
            results.append(row)
            pre = {x["protocol"]: x["accuracy"] for x in row["rows"] if x["encoder"] == "pretrained"}
            print(
                f"{objective:5s} seed {seed}: kNN {pre['knn']:.3f} linear {pre['linear']:.3f} loss "
                f"{row['loss_first_10']:.2f} -> {row['loss_last_10']:.2f} "
                f"(pre-train {row['cpu_seconds']:.0f} CPU s, {row['wall_seconds']:.0f} s wall; "
                f"evaluate {row['eval_wall_seconds']:.0f} s wall)",
                file=sys.stderr,
                flush=True,
            )
            total = round(time.perf_counter() - start, 1)
            tmp_out = out.with_name(out.name + ".tmp")
            tmp_out.write_text(json.dumps({"wall_seconds": total, "results": results}, indent=1))
            os.replace(tmp_out, out)
    print(header(results) + "\n" + markdown(results))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
