"""Evaluate an encoder on labeled data against the random-init and raw-input baselines.

Frozen-embedding protocols and fine-tuning; all selection (k and C by cross-validation, early
stopping on a validation part) uses the training split only. The test split is the data's own when
it has one, otherwise a stratified split fixed by the seed and recorded in the report. Every encoder also gets the
label-free monitors (``evaluation.monitors``) on the training split, and, with ``tasks``, per-task probes
(``evaluation.tasks``). The encoders embed on one device (``EvaluationOptions.accelerator``; the probes run on the
CPU). A lazily read source (``data.LazyDataset``) is embedded through DataLoader workers, never decoded whole: its
raw-input and gbdt baselines, which fit on every raw sample in memory, are left out with one warning line, and the
finetune protocol is refused before any work.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from selfsup.checkpoint import load_encoder, versions
from selfsup.data import UNLABELED, ArrayDataset, DataOptions, LazyDataset, Preprocessing, Samples, Splits, decoded
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.errors import SelfsupError
from selfsup.evaluation import label_augmentation
from selfsup.evaluation.baselines import gradient_boosting
from selfsup.evaluation.embed import embed
from selfsup.evaluation.finetune import FinetuneOptions, fine_tune
from selfsup.evaluation.monitors import ALIGNMENT_PAIRS, MONITOR_SAMPLES, default_views, encoder_monitors
from selfsup.evaluation.options import EvaluationOptions
from selfsup.evaluation.progress import probe_steps
from selfsup.evaluation.protocols import MODEL_PROTOCOLS, PREDICTORS, PROTOCOLS, RAW_INPUT, run_protocols
from selfsup.evaluation.report import write_report
from selfsup.evaluation.rows import ResultRow, result_row
from selfsup.evaluation.stats import accuracy_with_ci, confusion, over_seeds
from selfsup.evaluation.tasks import SCENARIO, class_tasks, mean_over_seeds, task_rows
from selfsup.evaluation.zeroshot import class_prompts, load_partner, partner_path, templates_of, zero_shot
from selfsup.modalities import check_fits, get_modality
from selfsup.outputs import EVALUATION, clear_output_folder
from selfsup.sources import load_data


@dataclass
class EvaluationResult:
    rows: list[ResultRow]
    meta: dict[str, Any]
    files: dict[str, Path]
    figures: dict[str, Any] = field(default_factory=dict, repr=False)  # write_report's inputs beyond rows and meta

    def write(self, out: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
        """Write the report into ``out``; with ``overwrite``, first remove an earlier evaluation report's files
        there (only those: see ``selfsup.outputs``)."""
        if overwrite:
            clear_output_folder(out, EVALUATION)
        self.files = write_report(Path(out), cast(list[dict], self.rows), self.meta, **self.figures)
        return self.files


def _labeled_part(data: Samples, name: str) -> tuple[Samples, str]:
    if not data.classes or not (data.y != UNLABELED).any():
        raise SelfsupError(
            f"'{name}' has no labels; evaluation needs labeled data (image class sub-folders, "
            "or --label COLUMN for tables and CSV series)."
        )
    unlabeled = int((data.y == UNLABELED).sum())
    if not unlabeled:
        return data, ""
    return data.subset(np.flatnonzero(data.y.numpy() != UNLABELED)), f"; {unlabeled} unlabeled samples left out"


def check_classes(train: Samples, test: Samples, train_name: str, test_name: str) -> None:
    """Refuse training labels of one class (every probe would score 100%); warn when the test labels hold one
    class only (the probes still choose among every training class, but the score covers that class alone)."""
    assert train.classes is not None and test.classes is not None  # labeled data only
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
    splits: Splits,
    test_data: str | None,
    options: DataOptions | None,
    preprocessing: Preprocessing | None,
    seed: int,
    test_fraction: float,
) -> tuple[ArrayDataset, ArrayDataset, str]:
    """:func:`labeled_samples` in memory, for steps that need every sample at once (a lazily read source is
    refused in one line, ``data.decoded``)."""
    train, test, note = labeled_samples(splits, test_data, options, preprocessing, seed, test_fraction)
    return decoded(train, "this step"), decoded(test, "this step"), note


def labeled_samples(
    splits: Splits,
    test_data: str | None,
    options: DataOptions | None,
    preprocessing: Preprocessing | None,
    seed: int,
    test_fraction: float,
) -> tuple[Samples, Samples, str]:
    """The labeled train and test parts, and a note saying how they were split: ``test_data`` (read with the
    encoder's ``preprocessing``) when given, else the data's own test split, else a stratified ``test_fraction``
    split fixed by ``seed``; training labels of one class are refused, test labels of one class warned about
    (``check_classes``)."""
    train, note = _labeled_part(splits.train, splits.name)
    if test_data:
        test, test_note = _labeled_part(load_data(test_data, options, preprocessing=preprocessing).train, test_data)
        if test.classes != train.classes:
            raise SelfsupError(f"'{test_data}' has classes {test.classes}, but '{splits.name}' has {train.classes}.")
        note = f"train: {splits.name}; test: {test_data}{note}{test_note}"
    elif splits.test is not None:
        test, test_note = _labeled_part(splits.test, splits.name)
        note = f"the dataset's own train/test split ({len(train)}/{len(test)}){note}{test_note}"
    else:
        idx = np.arange(len(train))
        try:
            fit_idx, test_idx = train_test_split(
                idx, test_size=test_fraction, stratify=train.y.numpy(), random_state=seed
            )
        except ValueError as err:
            raise SelfsupError(
                f"cannot split '{splits.name}' into train/test: {err}; add more samples per class."
            ) from err
        train, test = train.subset(fit_idx), train.subset(test_idx)
        note = f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%} split of {splits.name}, seed {seed}{note}"
    check_classes(train, test, splits.name, test_data or splits.name)
    return train, test, note


def _gradient_boosting_row(train: Samples, test: Samples, categorical: np.ndarray, seed: int) -> ResultRow:
    pred, details = gradient_boosting(
        train.x.numpy(), train.y.numpy(), test.x.numpy(), categorical=categorical, seed=seed
    )
    return result_row(RAW_INPUT, "gbdt", accuracy_with_ci(test.y.numpy(), pred), len(train), details)


def _aggregate(per_seed: list[list[ResultRow]], fixed_split: bool) -> list[ResultRow]:
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
        intervals = [(r["ci_low"], r["ci_high"]) for r in same] if fixed_split else None
        summary = over_seeds([r["accuracy"] for r in same], intervals)
        row = first.copy()
        row["accuracy"], row["ci_low"], row["ci_high"] = summary["accuracy"], summary["ci_low"], summary["ci_high"]
        row["per_seed"] = summary["per_seed"]
        if "confusion" in first:  # summed over seeds
            row["confusion"] = np.sum([r["confusion"] for r in same], axis=0).tolist()
        rows.append(row)
    return rows


def _finetune_rows(
    encoders: dict[str, Encoder],
    train: Samples,
    test: Samples,
    options: FinetuneOptions,
    seed: int,
    progress: bool,
) -> list[ResultRow]:
    assert train.classes is not None  # labeled_split refuses unlabeled data
    rows = []
    x_train = decoded(train, "the finetune protocol").float_samples()
    x_test = decoded(test, "the finetune protocol").float_samples()
    for name, model in encoders.items():
        pred, details = fine_tune(
            model,
            x_train,
            train.y.numpy(),
            x_test,
            options=options,
            seed=seed,
            progress=progress,
        )
        scores = accuracy_with_ci(test.y.numpy(), pred)
        rows.append(
            result_row(
                name, "finetune", scores, len(train), details, confusion(test.y.numpy(), pred, len(train.classes))
            )
        )
    return rows


def _zero_shot_rows(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    partners: dict[str, Encoder],
    test: Samples,
    prompt: tuple[str, ...],
    seed: int,
) -> list[ResultRow]:
    """Zero-shot rows: each encoder's test embeddings against its text partner's label-prompt embeddings."""
    assert test.classes is not None  # labeled_split refuses unlabeled data
    rows = []
    for name, text_encoder in partners.items():
        pred, details = zero_shot(features[name][1], text_encoder, test.classes, prompt)
        scores = accuracy_with_ci(test.y.numpy(), pred)
        rows.append(
            result_row(name, "zeroshot", scores, 0, details, confusion(test.y.numpy(), pred, len(test.classes)))
        )
    return rows


@dataclass(frozen=True)
class _Partner:
    """Zero-shot's text encoder and its name for the report."""

    encoder: Encoder
    name: str


def _load(
    encoder: Encoder | str | Path, options: EvaluationOptions
) -> tuple[Encoder, str, tuple[str, ...], _Partner | None]:
    """The encoder, its name for the report, the protocols to run and zero-shot's text partner (None without
    zero-shot). By default the protocols are kNN and linear, plus zeroshot when a paired run's side names a text
    partner."""
    partner, protocols = options.partner, options.protocols
    if isinstance(encoder, (str, Path)):
        name, model = str(encoder), load_encoder(encoder)
        if partner is None and (protocols is None or "zeroshot" in protocols):  # a paired run's text side
            partner = partner_path(encoder, modality="text")
    else:
        name, model = "in-memory encoder", encoder
    if protocols is None:
        protocols = PROTOCOLS + (("zeroshot",) if partner is not None else ())
    if "zeroshot" not in protocols:
        return model, name, protocols, None
    if partner is None:
        raise SelfsupError(
            f"zero-shot classification needs the text encoder trained with '{name}' (the "
            "other side of a paired run, e.g. clip, which its export names); this encoder has "
            "none: pass --partner TEXT_ENCODER."
        )
    if isinstance(partner, (str, Path)):
        text = _Partner(load_partner(partner), str(partner))
    else:
        text = _Partner(partner, "in-memory text encoder")
    if text.encoder.embed_dim != model.embed_dim:
        raise SelfsupError(
            f"the text encoder '{text.name}' embeds into {text.encoder.embed_dim} dimensions but the "
            f"encoder into {model.embed_dim}; pass the text side trained with it."
        )
    return model, name, protocols, text


@dataclass
class _SeedRun:
    """One seed's split and rows, the embeddings the report maps, the encoders the monitors read and the per-task
    rows (with ``tasks``)."""

    train: Samples
    test: Samples
    split_note: str
    features: dict[str, tuple[np.ndarray, np.ndarray]]
    rows: list[ResultRow]
    models: dict[str, Encoder]
    task_rows: list[dict[str, Any]]


def _seed_rows(
    encoder: Encoder,
    splits: Splits,
    options: EvaluationOptions,
    protocols: tuple[str, ...],
    partner: _Partner | None,
    seed: int,
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]],
) -> _SeedRun:
    """Every protocol's rows at one seed: the split it fixes, the random-init copy it builds, the probes it seeds.
    ``cache`` holds the pretrained encoder's embeddings of the last split (seeds that share a split embed it once)."""
    config = encoder.config
    modality = get_modality(splits.modality)
    train, test, split_note = labeled_samples(
        splits, options.test_data, options.read, preprocessing_of(encoder), seed, options.test_fraction
    )
    assert train.classes is not None  # labeled_split refuses unlabeled data
    groups = class_tasks(len(train.classes), options.tasks) if options.tasks is not None else []  # before any work
    check_fits(encoder, Splits(train=test, test=None, name=options.test_data or splits.name, modality=splits.modality))
    x_train, x_test = train, test  # in memory: float samples a block at a time; lazily read: by workers
    device, precision = options.device, options.precision
    key = (tuple(train.ids), tuple(test.ids))  # the pretrained encoder's embeddings depend on the split only
    if key not in cache:
        cache.clear()
        cache[key] = (
            embed(encoder, x_train, progress=options.progress, device=device, precision=precision),
            embed(encoder, x_test, progress=options.progress, device=device, precision=precision),
        )
    features = {"pretrained": cache[key]}
    models = {"pretrained": encoder}
    lazy = isinstance(train, LazyDataset) or isinstance(test, LazyDataset)
    if options.baselines:
        torch.manual_seed(seed)
        models["random-init"] = random_init = build_encoder(config).eval()
        features["random-init"] = (
            embed(random_init, x_train, device=device, precision=precision),
            embed(random_init, x_test, device=device, precision=precision),
        )
        if not lazy:
            features[RAW_INPUT] = (modality.raw_features(train.x, config), modality.raw_features(test.x, config))
        elif seed == options.seed:
            warnings.warn(
                f"no raw-input baseline: '{splits.name}' is read lazily and that baseline fits a probe on every "
                "raw sample in memory; pass --in-memory yes to get it.",
                UserWarning,
                stacklevel=2,
            )
    frozen = [p for p in protocols if p not in MODEL_PROTOCOLS]
    rows = run_protocols(
        features,
        train.y.numpy(),
        test.y.numpy(),
        frozen,
        k=options.k,
        seed=seed,
        n_classes=len(train.classes),
        progress=options.progress,
    )
    tasks: list[dict[str, Any]] = []
    if groups:
        probes = [p for p in frozen if p in PREDICTORS]
        tasks = task_rows(features, train.y.numpy(), test.y.numpy(), groups, probes, k=options.k, seed=seed)
    if partner is not None:
        partners = {"pretrained": partner.encoder}
        if options.baselines:
            torch.manual_seed(seed)
            partners["random-init"] = build_encoder(partner.encoder.config).eval()
        rows += _zero_shot_rows(features, partners, test, templates_of(options.prompt, splits.modality), seed)
    if "finetune" in protocols:
        rows += _finetune_rows(models, train, test, options.finetune or FinetuneOptions(), seed, options.progress)
    if options.baselines and modality.tree_columns is not None and not lazy:
        with probe_steps(1, options.progress) as starting:
            starting(f"gbdt on raw-input ({len(train):,} x {train.x.shape[1]:,})")
            rows.append(_gradient_boosting_row(train, test, modality.tree_columns(config), seed))
    return _SeedRun(train, test, split_note, features, rows, models, tasks)


def _meta(
    encoder_name: str,
    config: dict,
    splits: Splits,
    options: EvaluationOptions,
    last: _SeedRun,
    split_notes: list[str],
    fixed_split: bool,
    test_ids: dict[str, list[str]],
    partner: _Partner | None,
) -> dict[str, Any]:
    """The report's description of the run: data, split, seeds, intervals, baselines, versions."""
    seed, seeds = options.seed, options.seeds
    modality = get_modality(splits.modality)
    baselines = "none"
    if options.baselines:
        raw = modality.raw_input if RAW_INPUT in last.features else "left out (the data is read lazily)"
        baselines = f"random-init: same architecture, untrained, seeded by the run's seed; raw-input: {raw}"
        if modality.tree_columns is not None and RAW_INPUT in last.features:
            baselines += "; gbdt: HistGradientBoosting on the raw features, scikit-learn defaults"
    split_note = (
        split_notes[0]
        if len(set(split_notes)) == 1
        else split_notes[0].replace(f"seed {seed}", f"seeds {seed}-{seed + seeds - 1}")
    )
    interval = f"95% Wilson score interval over the {len(last.test)} test samples"
    if seeds > 1:
        interval = f"95% Student-t interval of the mean over {seeds} seeds"
        if fixed_split:
            interval += (
                ", combined in quadrature with the mean Wilson interval over test samples, each side on its own "
                "(every seed scored the same test split)"
            )
    assert last.train.classes is not None  # labeled_split refuses unlabeled data
    meta: dict[str, Any] = {
        "encoder": encoder_name,
        "encoder_config": config,
        "data": splits.name,
        "modality": splits.modality,
        "split": split_note,
        "seeds": seeds,
        "seed": seed,
        "n_train": len(last.train),
        "n_test": len(last.test),
        "classes": last.train.classes,
        "confidence_interval": interval,
        "baselines": baselines,
        "versions": versions(),
    }
    if test_ids:  # a split made here is saved, so it can be checked and reused
        meta["test_ids_by_seed"] = test_ids
    if partner is not None:
        meta["zero_shot"] = {
            "text_encoder": partner.name,
            "prompt": " | ".join(templates_of(options.prompt, splits.modality)),
            "prompts": [
                p for t in templates_of(options.prompt, splits.modality) for p in class_prompts(last.train.classes, t)
            ],
        }
    if (Path(encoder_name) / "recipe.yaml").is_file():
        meta["recipe"] = (Path(encoder_name) / "recipe.yaml").read_text()
    return meta


def _monitors(run: _SeedRun, splits: Splits, config: dict, seed: int) -> dict[str, Any]:
    """The label-free monitors of every encoder on the last seed's training split, and what they were computed on."""
    views = default_views(splits, config)
    # the split itself: of a lazily read one, only the few samples alignment takes are decoded
    monitors = encoder_monitors({name: f[0] for name, f in run.features.items()}, run.models, run.train, views, seed)
    n = min(len(run.train), MONITOR_SAMPLES)
    on = f"{n} of the {len(run.train)} training samples (seed {seed})"
    if any("alignment" in m for m in monitors.values()):
        on += f"; alignment over {min(n, ALIGNMENT_PAIRS)} of them, two views each by the modality's default views"
    else:
        on += "; no alignment: the modality's two views of a sample are the same input"
    return {"monitors": monitors, "monitors_on": on}


def _check_label_augmentation(
    options: EvaluationOptions, protocols: tuple[str, ...], modality: str | None, splits: Splits
) -> None:
    """SLA and plain rotation augmentation are the finetune protocol's options, for data their transformations
    apply to: refused before any work."""
    for name, flag, option in (
        (options.finetune.label_augmentation if options.finetune else None, "label-augmentation", "label augmentation"),
        (options.finetune.augment if options.finetune else None, "augment", "augmentation"),
    ):
        if name is None:
            continue
        if "finetune" not in protocols:
            raise SelfsupError(f"--finetune-{flag} is an option of the finetune protocol: add finetune to --protocol.")
        label_augmentation.check_input(name, str(modality), splits.train.head(1).x, option=option)


def evaluate(
    encoder: Encoder | str | Path,
    data: str | Splits,
    options: EvaluationOptions | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    loss_history: list[tuple[int, float]] | None = None,
) -> EvaluationResult:
    """Accuracy of every protocol with 95% CIs for the encoder, a random-init copy and raw input.

    ``options`` (``EvaluationOptions``; default: kNN and linear, one seed) says how. Tables also get a
    gradient-boosted-trees model on the raw features (``gbdt``), the usual bar there. A table is read with the
    encoder's own schema, so new rows get the preprocessing fitted at pre-training time.
    With ``seeds`` > 1 everything seeded (a split the data does not fix, the random-init copy, the
    probes) is repeated for seeds ``seed .. seed + seeds - 1`` and each row is the mean with a 95%
    t-interval over seeds; with one seed the interval is Wilson's over the test samples.
    ``baselines=False`` probes the encoder alone, for a caller that already has the baselines of the
    same split and seed (the before/after comparison).
    The report goes to ``out`` when given (``loss_history`` adds the pre-training loss curve); ``overwrite``
    replaces an earlier evaluation report there (its files only), right before the new one is written.
    """
    options = options or EvaluationOptions()
    model, encoder_name, protocols, partner = _load(encoder, options)
    config = model.config
    splits = data if isinstance(data, Splits) else load_data(data, options.read, preprocessing=preprocessing_of(model))
    check_fits(model, splits)
    _check_label_augmentation(options, protocols, config.get("modality"), splits)
    if "finetune" in protocols:  # before any work: fine-tuning trains on tensors in memory
        for part in (splits.train, splits.test):
            if part is not None:
                decoded(part, "the finetune protocol")
    per_seed: list[list[ResultRow]] = []
    per_seed_tasks: list[list[dict[str, Any]]] = []
    split_notes: list[str] = []
    split_keys: set[tuple] = set()
    test_ids: dict[str, list[str]] = {}  # by seed, of a split made here
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for seed in range(options.seed, options.seed + options.seeds):
        run = _seed_rows(model, splits, options, protocols, partner, seed, cache)
        per_seed.append(run.rows)
        per_seed_tasks.append(run.task_rows)
        split_notes.append(run.split_note)
        split_keys.add((tuple(run.train.ids), tuple(run.test.ids)))
        if not options.test_data and splits.test is None:
            test_ids[str(seed)] = [str(i) for i in run.test.ids]
    fixed_split = len(split_keys) == 1
    meta = _meta(encoder_name, config, splits, options, run, split_notes, fixed_split, test_ids, partner)
    meta["preprocessing"] = preprocessing_of(model).as_dict()  # how the data was read for the encoder
    meta |= _monitors(run, splits, config, options.seed + options.seeds - 1)
    if options.tasks is not None:
        assert run.train.classes is not None  # labeled_split refuses unlabeled data
        names = run.train.classes
        meta["tasks"] = {
            "scenario": SCENARIO,
            "classes": [[names[i] for i in group] for group in class_tasks(len(names), options.tasks)],
            "rows": mean_over_seeds(per_seed_tasks),
        }
    result = EvaluationResult(
        _aggregate(per_seed, fixed_split),
        meta,
        {},
        {
            "embeddings": {name: f[0] for name, f in run.features.items()},
            "train_labels": run.train.y.numpy(),
            "class_names": run.train.classes,
            "loss_history": loss_history,
        },
    )
    if out is not None:
        result.write(out, overwrite=overwrite)
    return result
