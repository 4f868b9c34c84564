"""``selfsup quickstart``: pre-train on a built-in real dataset, evaluate against baselines, write a report."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from rich.console import Console

from selfsup.data import Splits
from selfsup.datasets.fashion_mnist import MISSING as FASHION_MNIST_MISSING
from selfsup.datasets.fashion_mnist import idx_files
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.evaluate import EvaluationOptions, EvaluationResult, evaluate
from selfsup.evaluation.label_efficiency import label_subset
from selfsup.evaluation.report import print_table
from selfsup.methods import method_class
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain


@dataclass(frozen=True)
class Quickstart:
    """What ``selfsup quickstart --modality M`` runs. ``max_steps`` stops sooner than ``epochs`` (-1: every epoch),
    ``pair_data`` is a paired method's second side, ``probe_fraction`` probes a stratified part of each split (a
    big set embeds slowly on a CPU); ``lr`` (None: the recipe's default) and ``view_args`` go to the recipe."""

    data: str
    method: str
    encoder: str
    epochs: int
    batch_size: int
    note: str
    max_steps: int = -1
    pair_data: str | None = None
    probe_fraction: float = 1.0
    lr: float | None = None
    view_args: dict[str, Any] = field(default_factory=dict)


QUICKSTARTS = {
    # chosen in benchmarks/image_quickstart.py among 3 recipes on the subset's test split, confirmed on the 8,000
    # official test images outside the subset (README)
    "image": Quickstart(
        "builtin:fashion_mnist",
        "vicreg",
        "small_cnn",
        8,
        128,
        "Fashion-MNIST: 5,000 training and 2,000 test photos of clothes (28x28 grey, 10 classes; a fixed stratified "
        "subset of the official split). VICReg beat both baselines on both probes at seeds 0-2 "
        "(benchmarks/image_quickstart.py, paired tests with Holm's correction); read the intervals.",
        lr=2e-3,
        view_args={"crop_scale": [0.35, 1.0]},
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
    "audio": Quickstart(
        "builtin:spoken_words",
        "simclr",
        "audio_cnn",
        18,
        64,
        "Spoken words are synthetic speech (espeak-ng): 320 training clips, tested on voices training never "
        "heard. A random-init CNN over log-mels is already a fair baseline here and the gain over it varies with "
        "the seed (benchmarks/audio_views.py, SimCLR over 3 seeds: kNN 72.5 vs 67.7): read the intervals.",
    ),
    "text": Quickstart(
        "builtin:rottentomatoes",
        "simcse",
        "minilm",
        1,
        32,
        "'pretrained' is the shipped all-MiniLM-L6-v2, already pre-trained on a billion sentence pairs, after 50 "
        "SimCSE steps on these reviews: most of its lead over random-init is MiniLM's own pre-training (with "
        "--seed 0 the shipped MiniLM alone scores kNN 67.1%, linear 76.5% here). Probed on a stratified 10% of "
        "each split: a CPU embeds about 80 reviews a second.",
        max_steps=50,
        probe_fraction=0.1,
    ),
    "pairs": Quickstart(
        "builtin:spoken_words",
        "clip",
        "audio_cnn",
        36,
        64,
        "CLIP pairs each clip with its caption, and the caption names the word: this is language supervision, "
        "not self-supervision. zeroshot labels a test clip by the nearest class-name prompt as the text side (the "
        "shipped MiniLM, kept fixed, and a trained projection) embeds it; chance is 10%.",
        pair_data="builtin:spoken_word_captions",
    ),
}
# the image quickstart without Debian's dataset-fashion-mnist package: digits ship inside scikit-learn
DIGITS = Quickstart(
    "builtin:digits",
    "simclr",
    "small_cnn",
    30,
    256,
    "Digits are tiny 8x8 images: raw pixels are a strong baseline here, so this run shows the mechanics; "
    "the gain to look for is pretrained vs random-init.",
)


def _plan(modality: str) -> Quickstart:
    """The quickstart of ``modality``; the image one falls back to digits, with a warning, without Fashion-MNIST."""
    if modality not in QUICKSTARTS:
        raise unknown_name("quickstart modality", modality, QUICKSTARTS)
    if modality == "image" and not all(path.is_file() for path in idx_files()):
        warnings.warn(
            f"the image quickstart runs on Fashion-MNIST, which is not installed, so it runs on 8x8 digits, where raw "
            f"pixels are hard to beat ({FASHION_MNIST_MISSING.split(': ', 1)[1]} to get it).",
            stacklevel=3,
        )
        return DIGITS
    return QUICKSTARTS[modality]


def _probe_part(splits: Splits, fraction: float, seed: int) -> Splits:
    """A stratified ``fraction`` of each split (every class kept), fixed by ``seed``; the splits when 1."""
    if fraction >= 1.0 or splits.test is None:
        return splits
    train, test = (part.subset(label_subset(part.y.numpy(), fraction, seed)) for part in (splits.train, splits.test))
    return replace(splits, train=train, test=test, name=f"{splits.name} (a stratified {fraction:.0%} of each split)")


def quickstart(
    out: str | Path | None = None,
    method: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    modality: str = "image",
    progress: bool = True,
    console: Console | None = None,
    max_steps: int | None = None,
) -> EvaluationResult:
    """Pre-train on a built-in real dataset of ``modality`` (CPU, a few minutes), then probe vs baselines."""
    plan = _plan(modality)
    method, epochs = method or plan.method, epochs or plan.epochs
    max_steps = max_steps or plan.max_steps
    if method_class(method).paired and not plan.pair_data:
        raise SelfsupError(
            f"quickstart --modality {modality} runs a method on one built-in dataset, but '{method}' trains on "
            "pairs; run it with 'selfsup quickstart --modality pairs'."
        )
    if plan.pair_data and not method_class(method).paired:
        raise SelfsupError(
            f"quickstart --modality pairs runs a paired method (clip), but '{method}' trains on one dataset; "
            "run it with another --modality (image, tabular, timeseries, audio or text)."
        )
    console = console or Console()
    out = Path(out) if out else Path("selfsup-runs") / f"quickstart-{modality}-{datetime.now():%Y%m%d-%H%M%S}"
    recipe = make_recipe(
        data=plan.data,
        pair_data=plan.pair_data,
        method=method,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=plan.batch_size,
        seed=seed,
        out=str(out),
        encoder=plan.encoder,
        view_args=plan.view_args,
        **({"lr": plan.lr} if plan.lr is not None else {}),
    )
    paired = f" paired with {plan.pair_data}" if plan.pair_data else ""
    steps = f" (at most {max_steps} steps)" if max_steps > 0 else ""
    console.print(f"[bold]selfsup quickstart[/]: {method} on {plan.data}{paired} for {epochs} epochs{steps} -> {out}")
    start = time.perf_counter()
    run = pretrain(recipe, progress=progress)
    trained = time.perf_counter() - start
    # a paired run: its first side (e.g. the audio encoder) on the labeled data, zero-shot by the other side
    encoder, data = (run.sides[0], plan.data) if run.sides else (run.encoder, run.splits)
    result = evaluate(
        encoder,
        data if isinstance(data, str) else _probe_part(data, plan.probe_fraction, seed),
        EvaluationOptions(seed=seed, progress=progress),
        out=out / "report",
        loss_history=run.loss_history,
    )
    result.meta["pretrain_seconds"] = round(trained, 1)
    title = f"{result.meta['data']}: {result.meta['split']}, 1 seed, 95% Wilson CI"
    print_table(cast(list[dict], result.rows), title, console)
    console.print(f"pre-training took {trained:.0f} s. {plan.note}")
    console.print(f"report: {out / 'report' / 'report.html'} (one page, opens offline; also summary.md and the plots)")
    where = run.sides[0] if run.sides else out
    console.print(f"encoder: {where / 'encoder.safetensors'} — load it with selfsup.load_encoder('{where}')")
    return result
