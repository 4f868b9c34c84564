"""Evaluate an encoder on labeled data against the random-init and raw-input baselines.

Protocols run on frozen embeddings; all selection (k is fixed, C by cross-validation) uses the
training split only. The test split is the data's own when it has one, otherwise a stratified
split fixed by the seed and recorded in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from selfsup.checkpoint import load_encoder
from selfsup.data import ArrayDataset, Splits
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.embed import embed
from selfsup.evaluation.protocols import PROTOCOLS, run_protocols
from selfsup.evaluation.report import write_report
from selfsup.modalities import load_data


@dataclass
class EvaluationResult:
    rows: list[dict]
    meta: dict
    files: dict[str, Path]


def _split(splits: Splits, test_data: str | None, seed: int, test_fraction: float) -> tuple[
        ArrayDataset, ArrayDataset, str]:
    train = splits.train
    if not train.labeled:
        raise SelfsupError(
            f"'{splits.name}' has no labels; evaluation needs labeled data (a folder with one sub-folder per class)."
        )
    if test_data:
        test = load_data(test_data).train
        if test.classes != train.classes:
            raise SelfsupError(f"'{test_data}' has classes {test.classes}, but '{splits.name}' has {train.classes}.")
        return train, test, f"train: {splits.name}; test: {test_data}"
    if splits.test is not None:
        return train, splits.test, f"the dataset's own train/test split ({len(train)}/{len(splits.test)})"
    idx = np.arange(len(train))
    try:
        fit_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=train.y.numpy(),
                                             random_state=seed)
    except ValueError as err:
        raise SelfsupError(f"cannot split '{splits.name}' into train/test: {err}; add more samples per class.") from err
    return train.subset(fit_idx), train.subset(test_idx), (
        f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%} split of {splits.name}, seed {seed}"
    )


def check_fits(encoder: nn.Module, splits: Splits) -> None:
    """Refuse data of another modality or channel count than the encoder was trained on."""
    if encoder.config["modality"] != splits.modality:
        raise SelfsupError(
            f"the encoder was trained on {encoder.config['modality']} data but '{splits.name}' is {splits.modality}."
        )
    expected = encoder.config.get("in_chans")
    for part in (splits.train, splits.test):
        if expected is not None and part is not None and int(part.x.shape[1]) != int(expected):
            raise SelfsupError(
                f"the encoder takes {expected}-channel input but '{splits.name}' has {part.x.shape[1]} channels."
            )


def evaluate(encoder: nn.Module | str | Path, data: str | Splits, *, test_data: str | None = None,
             protocols: tuple[str, ...] | list[str] = PROTOCOLS, k: int = 20, seed: int = 0,
             test_fraction: float = 0.25, out: str | Path | None = None,
             loss_history: list[tuple[int, float]] | None = None, progress: bool = False) -> EvaluationResult:
    """kNN / linear-probe accuracy with 95% bootstrap CIs for the encoder, a random-init copy and raw input."""
    for name in protocols:  # fail on a bad name before any work
        if name not in PROTOCOLS:
            raise unknown_name("protocol", name, PROTOCOLS)
    encoder_path = str(encoder) if isinstance(encoder, (str, Path)) else "in-memory encoder"
    if isinstance(encoder, (str, Path)):
        encoder = load_encoder(encoder)
    splits = data if isinstance(data, Splits) else load_data(data)
    check_fits(encoder, splits)
    train, test, split_note = _split(splits, test_data, seed, test_fraction)
    check_fits(encoder, Splits(train=test, test=None, name=test_data or splits.name, modality=splits.modality))

    torch.manual_seed(seed)
    random_init = build_encoder(encoder.config).eval()
    x_train, x_test = train.float_samples(), test.float_samples()
    features = {
        "pretrained": (embed(encoder, x_train, progress=progress), embed(encoder, x_test, progress=progress)),
        "random-init": (embed(random_init, x_train), embed(random_init, x_test)),
        "raw-input": (x_train.flatten(1).numpy(), x_test.flatten(1).numpy()),
    }
    rows = run_protocols(features, train.y.numpy(), test.y.numpy(), list(protocols), k=k, seed=seed)
    meta = {
        "encoder": encoder_path,
        "encoder_config": encoder.config,
        "data": splits.name,
        "split": split_note,
        "seeds": 1,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "classes": train.classes,
        "confidence_interval": "95% percentile bootstrap over test samples (2000 resamples)",
        "baselines": "random-init: same architecture, untrained, seed above; raw-input: flattened pixels",
    }
    files: dict[str, Path] = {}
    if out is not None:
        files = write_report(Path(out), rows, meta, train_emb=features["pretrained"][0],
                             train_labels=train.y.numpy(), class_names=train.classes, loss_history=loss_history)
    return EvaluationResult(rows, meta, files)
