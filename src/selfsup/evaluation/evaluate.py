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
from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Splits
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.baselines import gradient_boosting
from selfsup.evaluation.embed import embed
from selfsup.evaluation.protocols import ALL_PROTOCOLS, PROTOCOLS, run_protocols
from selfsup.evaluation.report import write_report
from selfsup.evaluation.stats import accuracy_with_ci
from selfsup.modalities import load_data, modality_module

RAW_INPUT = {"image": "flattened pixels in [0, 1]",
             "tabular": "standardised numeric columns, missing indicators and one-hot categories",
             "timeseries": "per-channel normalised values, flattened (missing and padding as 0)"}


@dataclass
class EvaluationResult:
    rows: list[dict]
    meta: dict
    files: dict[str, Path]


def _labeled_part(data: ArrayDataset, name: str) -> tuple[ArrayDataset, str]:
    if not data.classes or not (data.y != UNLABELED).any():
        raise SelfsupError(f"'{name}' has no labels; evaluation needs labeled data (image class sub-folders, "
                           "or --label COLUMN for tables and CSV series).")
    unlabeled = int((data.y == UNLABELED).sum())
    if not unlabeled:
        return data, ""
    return data.subset(np.flatnonzero(data.y.numpy() != UNLABELED)), f"; {unlabeled} unlabeled samples left out"


def labeled_split(splits: Splits, test_data: str | None, options: DataOptions | None, config: dict, seed: int,
                  test_fraction: float) -> tuple[ArrayDataset, ArrayDataset, str]:
    """The labeled train and test parts, and a note saying how they were split: ``test_data`` when given,
    else the data's own test split, else a stratified ``test_fraction`` split fixed by ``seed``."""
    train, note = _labeled_part(splits.train, splits.name)
    if test_data:
        test, test_note = _labeled_part(load_data(test_data, options, encoder_config=config).train, test_data)
        if test.classes != train.classes:
            raise SelfsupError(f"'{test_data}' has classes {test.classes}, but '{splits.name}' has {train.classes}.")
        return train, test, f"train: {splits.name}; test: {test_data}{note}{test_note}"
    if splits.test is not None:
        test, test_note = _labeled_part(splits.test, splits.name)
        return train, test, f"the dataset's own train/test split ({len(train)}/{len(test)}){note}{test_note}"
    idx = np.arange(len(train))
    try:
        fit_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=train.y.numpy(),
                                             random_state=seed)
    except ValueError as err:
        raise SelfsupError(f"cannot split '{splits.name}' into train/test: {err}; add more samples per class.") from err
    return train.subset(fit_idx), train.subset(test_idx), (
        f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%} split of {splits.name}, seed {seed}{note}"
    )


def check_fits(encoder: nn.Module, splits: Splits) -> None:
    """Refuse data of another modality, channel count or table width than the encoder was trained on."""
    if encoder.config["modality"] != splits.modality:
        raise SelfsupError(
            f"the encoder was trained on {encoder.config['modality']} data but '{splits.name}' is {splits.modality}."
        )
    expected = encoder.config.get("in_chans", encoder.config.get("n_features"))
    unit = "channel" if "in_chans" in encoder.config else "table feature"
    for part in (splits.train, splits.test):
        if expected is not None and part is not None and int(part.x.shape[1]) != int(expected):
            got = int(part.x.shape[1])
            raise SelfsupError(f"the encoder takes {expected} {unit}{'s' * (int(expected) != 1)} but "
                               f"'{splits.name}' has {got} {unit}{'s' * (got != 1)}; pass data like the "
                               "pre-training data.")


def _gradient_boosting_row(train: ArrayDataset, test: ArrayDataset, config: dict, seed: int) -> dict:
    n_categorical = len(config["schema"]["categorical"])
    categorical = np.zeros(train.x.shape[1], dtype=bool)
    categorical[train.x.shape[1] - n_categorical:] = n_categorical > 0
    pred, details = gradient_boosting(train.x.numpy(), train.y.numpy(), test.x.numpy(), categorical=categorical,
                                      seed=seed)
    result = accuracy_with_ci(test.y.numpy(), pred, seed=seed)
    return {"encoder": "raw-input", "protocol": "gbdt", "accuracy": result["accuracy"], "ci_low": result["ci_low"],
            "ci_high": result["ci_high"], "n_train": len(train), "n_test": result["n_test"], "details": details}


def evaluate(encoder: nn.Module | str | Path, data: str | Splits, *, test_data: str | None = None,
             options: DataOptions | None = None, protocols: tuple[str, ...] | list[str] = PROTOCOLS, k: int | str = 20,
             seed: int = 0, test_fraction: float = 0.25, out: str | Path | None = None,
             loss_history: list[tuple[int, float]] | None = None, progress: bool = False,
             baselines: bool = True) -> EvaluationResult:
    """kNN / linear-probe accuracy with 95% bootstrap CIs for the encoder, a random-init copy and raw input.

    Tables also get a gradient-boosted-trees model on the raw features (``gbdt``), the usual bar there.
    ``options`` says how to read ``data`` (e.g. a table's label column); a table is read with the
    encoder's own schema, so new rows get the preprocessing fitted at pre-training time.
    ``baselines=False`` probes the encoder alone, for a caller that already has the baselines of the
    same split and seed (the before/after comparison).
    """
    for name in protocols:  # fail on a bad name before any work
        if name not in ALL_PROTOCOLS:
            raise unknown_name("protocol", name, ALL_PROTOCOLS)
    encoder_path = str(encoder) if isinstance(encoder, (str, Path)) else "in-memory encoder"
    if isinstance(encoder, (str, Path)):
        encoder = load_encoder(encoder)
    config = encoder.config
    splits = data if isinstance(data, Splits) else load_data(data, options, encoder_config=config)
    check_fits(encoder, splits)
    train, test, split_note = labeled_split(splits, test_data, options, config, seed, test_fraction)
    check_fits(encoder, Splits(train=test, test=None, name=test_data or splits.name, modality=splits.modality))
    modality = modality_module(splits.modality)

    x_train, x_test = train.float_samples(), test.float_samples()
    features = {"pretrained": (embed(encoder, x_train, progress=progress), embed(encoder, x_test, progress=progress))}
    note = "none"
    if baselines:
        torch.manual_seed(seed)
        random_init = build_encoder(config).eval()
        features["random-init"] = (embed(random_init, x_train), embed(random_init, x_test))
        features["raw-input"] = (modality.raw_features(train.x, config), modality.raw_features(test.x, config))
        note = (f"random-init: same architecture, untrained, seed above; "
                f"raw-input: {RAW_INPUT.get(splits.modality, 'the inputs')}")
    rows = run_protocols(features, train.y.numpy(), test.y.numpy(), list(protocols), k=k, seed=seed)
    if baselines and splits.modality == "tabular":
        rows.append(_gradient_boosting_row(train, test, config, seed))
        note += "; gbdt: HistGradientBoosting on the raw features, scikit-learn defaults"
    meta = {
        "encoder": encoder_path,
        "encoder_config": config,
        "data": splits.name,
        "modality": splits.modality,
        "split": split_note,
        "seeds": 1,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "classes": train.classes,
        "confidence_interval": "95% percentile bootstrap over test samples (2000 resamples)",
        "baselines": note,
    }
    files: dict[str, Path] = {}
    if out is not None:
        files = write_report(Path(out), rows, meta, train_emb=features["pretrained"][0],
                             train_labels=train.y.numpy(), class_names=train.classes, loss_history=loss_history)
    return EvaluationResult(rows, meta, files)
