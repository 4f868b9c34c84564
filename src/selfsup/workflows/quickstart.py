"""``selfsup quickstart``: pre-train on a built-in real dataset, evaluate against baselines, write a report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from rich.console import Console

from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.evaluate import EvaluationOptions, EvaluationResult, evaluate
from selfsup.evaluation.report import print_table
from selfsup.methods import method_class
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain


@dataclass(frozen=True)
class Quickstart:
    data: str
    method: str
    encoder: str
    epochs: int
    batch_size: int
    note: str


QUICKSTARTS = {
    "image": Quickstart(
        "builtin:digits",
        "simclr",
        "small_cnn",
        30,
        256,
        "Digits are tiny 8x8 images: raw pixels are a strong baseline here, so this run shows the mechanics; "
        "the gain to look for is pretrained vs random-init.",
    ),
    "tabular": Quickstart(
        "builtin:breast_cancer",
        "scarf",
        "mlp",
        100,
        128,
        "Breast cancer has 30 clean numeric features and 426 training rows: raw features and gradient-boosted "
        "trees are hard to beat on it; the gain to look for is pretrained vs random-init.",
    ),
    "timeseries": Quickstart(
        "builtin:japanesevowels",
        "ts2vec",
        "dilated_conv",
        30,
        64,
        "Japanese Vowels: 12-channel speech series of varying length (UEA archive, official split).",
    ),
}


def quickstart(
    out: str | Path | None = None,
    method: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    modality: str = "image",
    progress: bool = True,
    console: Console | None = None,
) -> EvaluationResult:
    """Pre-train on a built-in real dataset of ``modality`` (CPU, a minute or two), then probe vs baselines."""
    if modality not in QUICKSTARTS:
        raise unknown_name("quickstart modality", modality, QUICKSTARTS)
    plan = QUICKSTARTS[modality]
    method, epochs = method or plan.method, epochs or plan.epochs
    if method_class(method).paired:
        raise SelfsupError(
            f"quickstart runs a method on one built-in dataset, but '{method}' trains on pairs; run it "
            "with 'selfsup pretrain --method clip --data builtin:spoken_words --pair-data "
            "builtin:spoken_word_captions'."
        )
    console = console or Console()
    out = Path(out) if out else Path("selfsup-runs") / f"quickstart-{modality}-{datetime.now():%Y%m%d-%H%M%S}"
    recipe = make_recipe(
        data=plan.data,
        method=method,
        epochs=epochs,
        batch_size=plan.batch_size,
        seed=seed,
        out=str(out),
        encoder=plan.encoder,
    )
    console.print(f"[bold]selfsup quickstart[/]: {method} on {plan.data} for {epochs} epochs -> {out}")
    start = time.perf_counter()
    run = pretrain(recipe, progress=progress)
    trained = time.perf_counter() - start
    result = evaluate(
        run.encoder,
        run.splits,
        EvaluationOptions(seed=seed, progress=progress),
        out=out / "report",
        loss_history=run.loss_history,
    )
    result.meta["pretrain_seconds"] = round(trained, 1)
    print_table(cast(list[dict], result.rows), f"{plan.data}: {result.meta['split']}, 1 seed, 95% Wilson CI", console)
    console.print(f"pre-training took {trained:.0f} s. {plan.note}")
    console.print(f"report: {out / 'report' / 'report.html'} (one page, opens offline; also summary.md and the plots)")
    console.print(f"encoder: {out / 'encoder.safetensors'} — load it with selfsup.load_encoder('{out}')")
    return result
