"""Evaluate an encoder on labeled data against the random-init and raw-input baselines.

Frozen-embedding protocols and fine-tuning; all selection (k and C by cross-validation, early
stopping on a validation part) uses the training split only. The test split is the data's own when
it has one, otherwise a stratified split fixed by the seed and recorded in the report.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from selfsup.checkpoint import load_encoder, versions
from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Splits
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation.baselines import gradient_boosting
from selfsup.evaluation.embed import embed
from selfsup.evaluation.finetune import FinetuneOptions, fine_tune
from selfsup.evaluation.protocols import ALL_PROTOCOLS, PROTOCOLS, run_protocols
from selfsup.evaluation.report import write_report
from selfsup.evaluation.stats import accuracy_with_ci, confusion, over_seeds
from selfsup.evaluation.zeroshot import DEFAULT_PROMPT, class_prompts, load_partner, partner_path, zero_shot
from selfsup.modalities import check_fits, get_modality
from selfsup.outputs import EVALUATION, clear_output_folder
from selfsup.sources import load_data


@dataclass
class EvaluationResult:
    rows: list[dict]
    meta: dict
    files: dict[str, Path]
    figures: dict[str, Any] = field(default_factory=dict, repr=False)  # write_report's inputs beyond rows and meta

    def write(self, out: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
        """Write the report into ``out``; with ``overwrite``, first remove an earlier evaluation report's files
        there (only those: see ``selfsup.outputs``)."""
        if overwrite:
            clear_output_folder(out, EVALUATION)
        self.files = write_report(Path(out), self.rows, self.meta, **self.figures)
        return self.files


def _labeled_part(data: ArrayDataset, name: str) -> tuple[ArrayDataset, str]:
    if not data.classes or not (data.y != UNLABELED).any():
        raise SelfsupError(
            f"'{name}' has no labels; evaluation needs labeled data (image class sub-folders, "
            "or --label COLUMN for tables and CSV series)."
        )
    unlabeled = int((data.y == UNLABELED).sum())
    if not unlabeled:
        return data, ""
    return data.subset(np.flatnonzero(data.y.numpy() != UNLABELED)), f"; {unlabeled} unlabeled samples left out"


def check_classes(train: ArrayDataset, test: ArrayDataset, train_name: str, test_name: str) -> None:
    """Refuse training labels of one class (every probe would score 100%); warn when the test labels hold one
    class only (the probes still choose among every training class, but the score covers that class alone)."""
    trained, tested = np.unique(train.y.numpy()), np.unique(test.y.numpy())
    if len(trained) == 1:
        raise SelfsupError(
            f"'{train_name}' has only one class ('{train.classes[int(trained[0])]}') in its training "
            "labels; evaluation needs at least two classes: label samples of another class too."
        )
    if len(tested) == 1:
        warnings.warn(
            f"'{test_name}' has only one class ('{test.classes[int(tested[0])]}') in its test labels "
            f"(training has {len(trained)}): accuracy only says how often that class is recognised, not "
            "how well the classes are told apart.",
            UserWarning,
            stacklevel=3,
        )


def labeled_split(
    splits: Splits, test_data: str | None, options: DataOptions | None, config: dict, seed: int, test_fraction: float
) -> tuple[ArrayDataset, ArrayDataset, str]:
    """The labeled train and test parts, and a note saying how they were split: ``test_data`` when given,
    else the data's own test split, else a stratified ``test_fraction`` split fixed by ``seed``; training labels
    of one class are refused, test labels of one class warned about (``check_classes``)."""
    train, test, note = _split(splits, test_data, options, config, seed, test_fraction)
    check_classes(train, test, splits.name, test_data or splits.name)
    return train, test, note


def _split(
    splits: Splits, test_data: str | None, options: DataOptions | None, config: dict, seed: int, test_fraction: float
) -> tuple[ArrayDataset, ArrayDataset, str]:
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
        fit_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=train.y.numpy(), random_state=seed)
    except ValueError as err:
        raise SelfsupError(f"cannot split '{splits.name}' into train/test: {err}; add more samples per class.") from err
    return (
        train.subset(fit_idx),
        train.subset(test_idx),
        (f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%} split of {splits.name}, seed {seed}{note}"),
    )


def _gradient_boosting_row(train: ArrayDataset, test: ArrayDataset, config: dict, seed: int) -> dict:
    n_categorical = len(config["schema"]["categorical"])
    categorical = np.zeros(train.x.shape[1], dtype=bool)
    categorical[train.x.shape[1] - n_categorical :] = n_categorical > 0
    pred, details = gradient_boosting(
        train.x.numpy(), train.y.numpy(), test.x.numpy(), categorical=categorical, seed=seed
    )
    result = accuracy_with_ci(test.y.numpy(), pred, seed=seed)
    return {
        "encoder": "raw-input",
        "protocol": "gbdt",
        "accuracy": result["accuracy"],
        "ci_low": result["ci_low"],
        "ci_high": result["ci_high"],
        "n_train": len(train),
        "n_test": result["n_test"],
        "details": details,
    }


def _aggregate(per_seed: list[list[dict]], fixed_split: bool) -> list[dict]:
    """One row per (encoder, protocol): the mean over seeds with a 95% interval (``stats.over_seeds``; with a
    ``fixed_split`` it includes the test-sample uncertainty), each seed's accuracy kept."""
    if len(per_seed) == 1:
        return per_seed[0]
    rows = []
    for first in per_seed[0]:
        same = [
            next(r for r in rows_s if (r["encoder"], r["protocol"]) == (first["encoder"], first["protocol"]))
            for rows_s in per_seed
        ]
        halves = [(r["ci_high"] - r["ci_low"]) / 2 for r in same] if fixed_split else None
        row = first | over_seeds([r["accuracy"] for r in same], halves)
        if "confusion" in first:  # summed over seeds
            row["confusion"] = np.sum([r["confusion"] for r in same], axis=0).tolist()
        rows.append(row)
    return rows


def _finetune_rows(
    encoders: dict[str, nn.Module],
    train: ArrayDataset,
    test: ArrayDataset,
    options: FinetuneOptions,
    seed: int,
    progress: bool,
) -> list[dict]:
    rows = []
    for name, model in encoders.items():
        pred, details = fine_tune(
            model,
            train.float_samples(),
            train.y.numpy(),
            test.float_samples(),
            options=options,
            seed=seed,
            progress=progress,
        )
        result = accuracy_with_ci(test.y.numpy(), pred, seed=seed)
        rows.append(
            {
                "encoder": name,
                "protocol": "finetune",
                **result,
                "n_train": len(train),
                "details": details,
                "confusion": confusion(test.y.numpy(), pred, len(train.classes)),
            }
        )
    return rows


def _zero_shot_rows(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    partners: dict[str, nn.Module],
    test: ArrayDataset,
    prompt: str,
    seed: int,
) -> list[dict]:
    """Zero-shot rows: each encoder's test embeddings against its text partner's label-prompt embeddings."""
    rows = []
    for name, text_encoder in partners.items():
        pred, details = zero_shot(features[name][1], text_encoder, test.classes, prompt)
        rows.append(
            {
                "encoder": name,
                "protocol": "zeroshot",
                **accuracy_with_ci(test.y.numpy(), pred, seed=seed),
                "n_train": 0,
                "details": details,
                "confusion": confusion(test.y.numpy(), pred, len(test.classes)),
            }
        )
    return rows


def evaluate(
    encoder: nn.Module | str | Path,
    data: str | Splits,
    *,
    test_data: str | None = None,
    options: DataOptions | None = None,
    protocols: tuple[str, ...] | list[str] | None = None,
    k: int | str = "cv",
    seed: int = 0,
    seeds: int = 1,
    test_fraction: float = 0.25,
    finetune: FinetuneOptions | None = None,
    out: str | Path | None = None,
    loss_history: list[tuple[int, float]] | None = None,
    progress: bool = False,
    baselines: bool = True,
    partner: nn.Module | str | Path | None = None,
    prompt: str = DEFAULT_PROMPT,
    overwrite: bool = False,
) -> EvaluationResult:
    """Accuracy of every protocol with 95% CIs for the encoder, a random-init copy and raw input.

    Tables also get a gradient-boosted-trees model on the raw features (``gbdt``), the usual bar there.
    ``options`` says how to read ``data`` (e.g. a table's label column); a table is read with the
    encoder's own schema, so new rows get the preprocessing fitted at pre-training time.
    With ``seeds`` > 1 everything seeded (a split the data does not fix, the random-init copy, the
    probes) is repeated for seeds ``seed .. seed + seeds - 1`` and each row is the mean with a 95%
    t-interval over seeds; with one seed the interval is a bootstrap over test samples.
    ``baselines=False`` probes the encoder alone, for a caller that already has the baselines of the
    same split and seed (the before/after comparison).
    ``protocols`` defaults to kNN and linear, plus ``zeroshot`` when the encoder has a text ``partner``: a text
    encoder trained with it (a paired run's other side; by default the one its export names), whose
    embeddings of label ``prompt``s classify the test split.
    The report goes to ``out`` when given; ``overwrite`` replaces an earlier evaluation report there (its files
    only), right before the new one is written.
    """
    for name in protocols or ():  # fail on a bad name before any work
        if name not in ALL_PROTOCOLS + ("finetune", "zeroshot"):
            raise unknown_name("protocol", name, ALL_PROTOCOLS + ("finetune", "zeroshot"))
    if seeds < 1:
        raise SelfsupError(f"--seeds must be at least 1, got {seeds}.")
    class_prompts(["class"], prompt)  # a bad template fails before any work
    encoder_path = str(encoder) if isinstance(encoder, (str, Path)) else "in-memory encoder"
    if partner is not None and protocols is not None and "zeroshot" not in protocols:
        raise SelfsupError("--partner is the text encoder for zero-shot rows; add zeroshot to --protocol.")
    if isinstance(encoder, (str, Path)):
        path, encoder = encoder, load_encoder(encoder)
        if partner is None and (protocols is None or "zeroshot" in protocols):  # a paired run's text side
            partner = partner_path(path, modality="text")
    if protocols is None:
        protocols = PROTOCOLS + (("zeroshot",) if partner is not None else ())
    zero_shot_on = "zeroshot" in protocols
    if zero_shot_on and partner is None:
        raise SelfsupError(
            f"zero-shot classification needs the text encoder trained with '{encoder_path}' (the "
            "other side of a paired run, e.g. clip, which its export names); this encoder has "
            "none: pass --partner TEXT_ENCODER."
        )
    partner_name = str(partner) if isinstance(partner, (str, Path)) else "in-memory text encoder"
    partner = load_partner(partner) if zero_shot_on and isinstance(partner, (str, Path)) else partner
    if zero_shot_on and partner.embed_dim != encoder.embed_dim:
        raise SelfsupError(
            f"the text encoder '{partner_name}' embeds into {partner.embed_dim} dimensions but the "
            f"encoder into {encoder.embed_dim}; pass the text side trained with it."
        )
    protocols = [p for p in protocols if p != "zeroshot"]
    config = encoder.config
    splits = data if isinstance(data, Splits) else load_data(data, options, encoder_config=config)
    check_fits(encoder, splits)
    modality = get_modality(splits.modality)
    frozen = [p for p in protocols if p != "finetune"]
    per_seed, split_notes, cached, test_ids, cached_keys = [], [], {}, {}, set()
    for s in range(seed, seed + seeds):
        train, test, split_note = labeled_split(splits, test_data, options, config, s, test_fraction)
        if not test_data and splits.test is None:  # a split made here is saved, so it can be checked and reused
            test_ids[str(s)] = [str(i) for i in test.ids]
        check_fits(encoder, Splits(train=test, test=None, name=test_data or splits.name, modality=splits.modality))
        split_notes.append(split_note)
        x_train, x_test = train.float_samples(), test.float_samples()
        key = (tuple(train.ids), tuple(test.ids))  # the pretrained encoder's embeddings depend on the split only
        cached_keys.add(key)
        if key not in cached:
            cached = {key: (embed(encoder, x_train, progress=progress), embed(encoder, x_test, progress=progress))}
        features = {"pretrained": cached[key]}
        models = {"pretrained": encoder}
        if baselines:
            torch.manual_seed(s)
            models["random-init"] = random_init = build_encoder(config).eval()
            features["random-init"] = (embed(random_init, x_train), embed(random_init, x_test))
            features["raw-input"] = (modality.raw_features(train.x, config), modality.raw_features(test.x, config))
        rows = run_protocols(
            features, train.y.numpy(), test.y.numpy(), frozen, k=k, seed=s, n_classes=len(train.classes)
        )
        if zero_shot_on:
            partners = {"pretrained": partner}
            if baselines:
                torch.manual_seed(s)
                partners["random-init"] = build_encoder(partner.config).eval()
            rows += _zero_shot_rows(features, partners, test, prompt, s)
        if "finetune" in protocols:
            rows += _finetune_rows(models, train, test, finetune or FinetuneOptions(), s, progress)
        if baselines and modality.tree_baseline:
            rows.append(_gradient_boosting_row(train, test, config, s))
        per_seed.append(rows)
    note = "none"
    if baselines:
        note = f"random-init: same architecture, untrained, seeded by the run's seed; raw-input: {modality.raw_input}"
        if modality.tree_baseline:
            note += "; gbdt: HistGradientBoosting on the raw features, scikit-learn defaults"
    split_note = (
        split_notes[0]
        if len(set(split_notes)) == 1
        else (split_notes[0].replace(f"seed {seed}", f"seeds {seed}-{seed + seeds - 1}"))
    )
    meta = {
        "encoder": encoder_path,
        "encoder_config": config,
        "data": splits.name,
        "modality": splits.modality,
        "split": split_note,
        "seeds": seeds,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "classes": train.classes,
        "confidence_interval": (
            "95% percentile bootstrap over test samples (2000 resamples)"
            if seeds == 1
            else f"95% Student-t interval of the mean over {seeds} seeds"
            + (
                ", combined in quadrature with the mean bootstrap interval over test samples "
                "(every seed scored the same test split)"
                if len(cached_keys) == 1
                else ""
            )
        ),
        "baselines": note,
        "versions": versions(),
    }
    if test_ids:
        meta["test_ids_by_seed"] = test_ids
    if zero_shot_on:
        meta["zero_shot"] = {
            "text_encoder": partner_name,
            "prompt": prompt,
            "prompts": class_prompts(train.classes, prompt),
        }
    if isinstance(encoder_path, str) and (Path(encoder_path) / "recipe.yaml").is_file():
        meta["recipe"] = (Path(encoder_path) / "recipe.yaml").read_text()
    rows = _aggregate(per_seed, fixed_split=len(cached_keys) == 1)
    result = EvaluationResult(
        rows,
        meta,
        {},
        {
            "embeddings": {name: f[0] for name, f in features.items()},
            "train_labels": train.y.numpy(),
            "class_names": train.classes,
            "loss_history": loss_history,
        },
    )
    if out is not None:
        result.write(out, overwrite=overwrite)
    return result
