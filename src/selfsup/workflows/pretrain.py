"""Run a pre-training recipe end to end: data -> views -> encoder -> method -> Lightning -> exported encoder."""

from __future__ import annotations

import csv
import json
import math
import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import RichProgressBar
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

from selfsup.checkpoint import (
    WEIGHTS,
    load_encoder,
    read_meta,
    read_preprocessing,
    save_encoder,
    save_method_state,
    write_meta,
)
from selfsup.data import (
    UNLABELED,
    ArrayDataset,
    DataOptions,
    LazyDataset,
    Preprocessing,
    Samples,
    Splits,
    decoded,
    loader_workers,
)
from selfsup.distributed import check_accelerator
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.encoders.pair import PairEncoder
from selfsup.errors import RunInterrupted, SelfsupError, first_line
from selfsup.files import write_atomic
from selfsup.methods import build_method, method_class
from selfsup.methods.base import Method
from selfsup.modalities import check_fits, get_modality
from selfsup.modalities.text import LINE_SUFFIXES
from selfsup.outputs import RUN, check_output_folder, clear_output_folder, folder_lock
from selfsup.recipe import Recipe, load_recipe, make_recipe, save_recipe
from selfsup.shards import ShardDataset
from selfsup.sources import BUILTIN_PREFIX, load_data, source_modality
from selfsup.training.adapters import (
    AdapterSummary,
    add_lora,
    merge_lora,
    merged_state,
    onto_adapted,
    save_adapters,
)
from selfsup.training.callbacks import EmbeddingMonitors, Throughput
from selfsup.training.checkpoints import (
    FOLDER,
    ResumePoint,
    RunCheckpoints,
    has_checkpoint,
    resume_checkpoint,
    stop_on_interrupt,
)
from selfsup.training.init import InitReport, InitSource, load_into, load_method_parts, read_init, report_table
from selfsup.training.launch import ProcessCheck, launch, lightning_trainer
from selfsup.training.loggers import TRAIN_LOG, LoggerIds, TrainLog, build_loggers
from selfsup.training.module import PretrainModule
from selfsup.training.pairs import (
    check_paired,
    export_sides,
    pair_splits,
    pair_views,
    resolved_lock,
    same_encoder_side,
    side_b,
    starts_pre_trained,
)
from selfsup.training.probe import OnlineProbe
from selfsup.training.progress import PlainProgress
from selfsup.training.samplers import BlockShuffleSampler
from selfsup.training.upsample import DomainUpsampling
from selfsup.training.watch import Watch, WatchedSet

RECIPE_FILE = "recipe.yaml"
PROBE_HOLDOUT = 0.1


@dataclass
class PretrainResult:
    out: Path
    encoder: Encoder
    recipe: Recipe
    splits: Splits
    loss_history: list[tuple[int, float]]
    sides: tuple[Path, Path] | None = None  # a paired run's side exports


def launched_rank(recipe: Recipe) -> int:
    """This process's global rank, as Lightning's Trainer for the recipe's devices, nodes and strategy sets it
    (torchrun, SLURM or Lightning's own launcher; ``training/launch.py``): 0 in a one-process run."""
    return launch(recipe).global_rank


def _one_process(recipe: Recipe) -> bool:
    """Whether the run trains in one process (its steps per epoch are the loader's; several processes split each
    epoch between them, and Lightning counts their steps)."""
    return recipe.devices in (1, "1") and recipe.num_nodes == 1


def _check_out(recipe: Recipe, resume: bool, overwrite: bool, flag: str = "--out") -> None:
    """Before any work: --out is new, empty, or a selfsup run (to resume or, with --overwrite, replace)."""
    if launched_rank(recipe) > 0:  # rank 0 checks and writes the folder
        return
    check_output_folder(recipe.out, RUN, overwrite=overwrite, resume=resume, flag=flag)


def _holding(recipe: Recipe, out: Path) -> AbstractContextManager:
    """The run's lock on its folder, held by the rank-0 process (the other processes share it)."""
    return folder_lock(out) if launched_rank(recipe) == 0 else nullcontext(out)


def _roll_back(out: Path) -> None:
    """Remove what a new run wrote, when it fails before its first checkpoint (there is nothing to resume); a
    failure to do so is a warning, so that the error that stopped the run is the one reported."""
    try:
        clear_output_folder(out, RUN)
    except (OSError, SelfsupError) as err:
        warnings.warn(f"could not remove the unfinished run in '{out}': {first_line(err)}", stacklevel=2)


def _probe_split(train: Samples, seed: int, enabled: bool) -> tuple[Samples, Samples | None]:
    """Carve a stratified held-out split for the online probe when the data is labeled (and has a sample of
    every class to hold out); prepared shards hold out their last tenth (shuffled when prepared) instead."""
    counts = np.bincount(train.y.numpy()) if train.labeled else np.array([])
    if (
        not enabled
        or not train.labeled
        or len(counts) < 2
        or counts.min() < 2
        or (math.ceil(PROBE_HOLDOUT * len(train)) < len(counts))
    ):
        return train, None
    idx = np.arange(len(train))
    if isinstance(train, ShardDataset):  # stored in a seeded random order: a contiguous tail streams as one piece
        cut = len(train) - math.ceil(PROBE_HOLDOUT * len(train))
        return train.subset(idx[:cut]), train.subset(idx[cut:])
    fit_idx, val_idx = train_test_split(idx, test_size=PROBE_HOLDOUT, stratify=train.y.numpy(), random_state=seed)
    return train.subset(fit_idx), train.subset(val_idx)


def _loss_history(csv_dir: Path) -> list[tuple[int, float]]:
    path = csv_dir / "metrics.csv"
    if not path.is_file():
        return []
    history = []
    with path.open() as f:
        for row in csv.DictReader(f):
            if row.get("loss_step"):
                history.append((int(row["step"]), float(row["loss_step"])))
    return history


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted(set().union(*rows)))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _keep_metrics_across_resume(csv_dir: Path, rank_zero: bool) -> Path | None:
    """Lightning's CSV logger deletes the metrics.csv it finds: set the rows aside before a resumed fit (rank 0).

    Outside ``csv_dir``: the logger warns that it will delete whatever that folder holds.
    """
    path, previous = csv_dir / "metrics.csv", csv_dir.parent / "metrics-before-resume.csv"
    rows = _read_rows(previous) + _read_rows(path)  # a backup is left only by a resume that crashed
    if not rows or not rank_zero:
        return None
    _write_rows(previous, rows)
    path.unlink(missing_ok=True)
    return previous


def _merge_metrics(csv_dir: Path, previous: Path) -> None:
    """Put the rows logged before the resume back in front of the resumed run's rows."""
    _write_rows(csv_dir / "metrics.csv", _read_rows(previous) + _read_rows(csv_dir / "metrics.csv"))
    previous.unlink()


def _check_export(recipe: Recipe, encoder_config: dict, splits: Splits) -> None:
    """Check a selfsup export given to --init fits the data and the recipe."""
    if encoder_config["modality"] != splits.modality:
        raise SelfsupError(
            f"--init '{recipe.init}' is a {encoder_config['modality']} encoder but '{recipe.data}' is "
            f"{splits.modality} data; continue pre-training on data of the checkpoint's modality."
        )
    if recipe.encoder and recipe.encoder != encoder_config["name"]:
        raise SelfsupError(
            f"--init '{recipe.init}' is a '{encoder_config['name']}' encoder, not '{recipe.encoder}'; "
            "leave --encoder out to continue it as it is."
        )
    if recipe.encoder_args:
        raise SelfsupError(
            "--encoder-arg cannot change the architecture of a selfsup export given to --init; leave it out."
        )


def _steps_per_epoch(recipe: Recipe, loader: DataLoader) -> int:
    """The optimiser steps an epoch of the training loader takes in one process: one per
    ``--accumulate-grad-batches`` batches, and one at the epoch's end on what has accumulated (as Lightning
    steps, and counts ``estimated_stepping_batches``, the schedule's length)."""
    return math.ceil(len(loader) / recipe.accumulate_grad_batches)


def _planned_steps(recipe: Recipe, steps_per_epoch: int) -> int:
    """The steps the run will take: its epochs of ``steps_per_epoch`` (its training loader's, replay included),
    or fewer when ``--max-steps`` ends it first."""
    every = steps_per_epoch * recipe.epochs
    return every if recipe.max_steps < 0 else min(recipe.max_steps, every)


def _head_warmup(
    recipe: Recipe, method: Method, init: InitSource | None, carried: InitReport | None, steps_per_epoch: int
) -> Recipe:
    """The recipe with its head warm-up decided, when left to the default: a tenth of the steps when ``--init``
    loaded the encoder but the method's own parts (heads, projector, teacher) start afresh, so that they do not
    pull a pre-trained encoder around while they are random (linear-probe-then-fine-tune, Kumar et al. 2022);
    none otherwise (carried heads, a new encoder, a resumed run: its recipe holds the number)."""
    if recipe.freeze_encoder_steps is not None:
        return recipe
    fresh_heads = init is not None and carried is None and bool(method.own_state())
    steps = _planned_steps(recipe, steps_per_epoch) // 10 if fresh_heads else 0
    if steps:
        print(
            f"head warm-up: the encoder from --init stays frozen for the first {steps} steps while the method's new "
            "parts train (--freeze-encoder-steps 0 to skip)",
            file=sys.stderr,
        )
    return recipe.model_copy(update={"freeze_encoder_steps": steps})


def _check_freeze(recipe: Recipe, steps_per_epoch: int) -> None:
    """Head warm-up must end before training does; without --init it would freeze a random encoder."""
    if not recipe.freeze_encoder_steps:  # none (decided by _head_warmup when left to the default)
        return
    total = _planned_steps(recipe, steps_per_epoch)
    if recipe.freeze_encoder_steps >= total:
        raise SelfsupError(
            f"--freeze-encoder-steps {recipe.freeze_encoder_steps} is not below the run's {total} "
            "steps, so the encoder would never train; lower it or train for longer."
        )
    if not recipe.init:
        warnings.warn("--freeze-encoder-steps without --init freezes a randomly initialised encoder.", stacklevel=2)


def _phases_in_steps(recipe: Recipe, steps_per_epoch: int) -> Recipe:
    """A new run's warm-up (and, infinite, cool-down) in steps, for schedules whose constant phase a run is extended
    in (``--resume`` with more steps) or branched off (``--anneal``): its phases stay where they began, whatever
    the run's length becomes. Other schedules stretch with the run, as before; so do runs on several devices,
    whose steps Lightning counts once it has split the data (the module takes the fractions of its count)."""
    if recipe.schedule not in ("constant", "infinite") or not _one_process(recipe):
        return recipe
    total = _planned_steps(recipe, steps_per_epoch)
    update: dict = {}
    warmup = recipe.warmup_steps
    if warmup is None:
        warmup = int(_warmup_fraction(recipe) * total)
        update |= {"warmup_steps": warmup, "warmup_fraction": None}
    if recipe.schedule == "infinite" and recipe.cooldown_steps is None:
        update["cooldown_steps"] = max(1, round(recipe.decay_fraction * max(1, total - warmup)))
    return recipe.model_copy(update=update)


def _warmup_fraction(recipe: Recipe) -> float:
    """The share of the run's steps spent warming up: ``--warmup-fraction``, else ``--warmup-epochs`` of its epochs."""
    if recipe.warmup_fraction is not None:
        return recipe.warmup_fraction
    return min(1.0, recipe.warmup_epochs / recipe.epochs)


def constant_phase_start(recipe: Recipe) -> int | None:
    """The step at which a run's LR has become constant (head warm-up, warm-up and cool-down behind it); None for
    schedules that have no constant phase, or a recipe that does not record its phases in steps (older runs)."""
    if recipe.schedule not in ("constant", "infinite") or recipe.warmup_steps is None:
        return None
    if recipe.schedule == "infinite" and recipe.cooldown_steps is None:
        return None
    return (recipe.freeze_encoder_steps or 0) + recipe.warmup_steps + (recipe.cooldown_steps or 0)


def _anneal_source(run: str | Path) -> Recipe:
    """The recipe of the run to anneal, which must have a constant phase recorded in steps; its folder is only
    read."""
    run = Path(run)
    if not (run / RECIPE_FILE).is_file():
        raise SelfsupError(
            f"--anneal '{run}' holds no {RECIPE_FILE}; pass the folder of a selfsup run trained with "
            "--schedule infinite (or constant)."
        )
    recipe = load_recipe(run / RECIPE_FILE)
    if recipe.self_distill or not _one_process(recipe):
        nodes = f" --num-nodes {recipe.num_nodes}" if recipe.num_nodes > 1 else ""
        what = "a self-distillation run" if recipe.self_distill else f"a run on --devices {recipe.devices}{nodes}"
        raise SelfsupError(
            f"--anneal '{run}' is {what}; annealing such runs is not supported yet (anneal a one-device run)."
        )
    if recipe.anneal:
        raise SelfsupError(
            f"--anneal '{run}' is itself an anneal (of '{recipe.anneal}'); anneal the run in its constant phase."
        )
    if constant_phase_start(recipe) is None:
        why = (
            f"trained with the {recipe.schedule} schedule, which has no constant phase"
            if recipe.schedule not in ("constant", "infinite")
            else "does not record its warm-up in steps (a run of an older selfsup)"
        )
        raise SelfsupError(
            f"--anneal branches off a run's constant phase, and '{run}' {why}; pre-train with --schedule infinite "
            "(or constant), then anneal that run."
        )
    return recipe


def anneal_recipe(run: str | Path, out: str | Path, steps: int | None = None) -> Recipe:
    """The recipe of an anneal of ``run`` into ``out`` (``--anneal RUN --anneal-steps N --out OUT``): the run's own.
    Where it ends is fixed when it starts (:func:`_anneal_start`): ``steps`` (default: a tenth of the steps the run
    has trained) after the run's latest checkpoint."""
    recipe = _anneal_source(run)
    return make_recipe(**(recipe.model_dump() | {"out": str(out), "anneal": str(run), "anneal_steps": steps}))


def _anneal_start(recipe: Recipe) -> tuple[Recipe, ResumePoint]:
    """The anneal ``recipe`` ending its steps after the annealed run's latest checkpoint, which must lie in that
    run's constant phase, and that checkpoint (read once here; the run's folder is only read); ``--out`` must be
    another folder."""
    assert recipe.anneal is not None  # called for anneals only
    run = Path(recipe.anneal)
    if Path(recipe.out).resolve() == run.resolve():
        raise SelfsupError(f"--anneal writes a new run and leaves '{run}' as it is: give another --out folder.")
    start = constant_phase_start(_anneal_source(run))
    assert start is not None  # _anneal_source refuses a run without a constant phase
    if not has_checkpoint(run):
        raise SelfsupError(f"--anneal '{run}' has saved no training checkpoint yet; anneal it once it has.")
    try:
        point = resume_checkpoint(run, set_aside=False)
    except SelfsupError as err:
        raise SelfsupError(f"--anneal '{run}': {err}") from None
    if point.step < start:
        raise SelfsupError(
            f"--anneal '{run}': its latest checkpoint (step {point.step}) is before its constant phase, which starts "
            f"at step {start} (warm-up and cool-down); anneal it once it has trained past that step."
        )
    steps = recipe.anneal_steps or max(1, point.step // 10)
    print(
        f"anneal: from '{run}' at step {point.step}, the LR decays linearly to 0 over {steps} steps, "
        f"into '{recipe.out}'",
        file=sys.stderr,
    )
    return recipe.model_copy(update={"anneal_steps": steps, "max_steps": point.step + steps}), point


def _other_options(recipe: Recipe, source: str, splits: Splits, labelled: bool) -> DataOptions:
    """How to read another source of the data's modality: the data's options, with its label column when
    ``labelled`` (--watch; a --replay table is read without: a folder's labels are its sub-folders); a built-in
    source keeps none of the reading flags, a .txt file no --text-column."""
    options = get_modality(splits.modality).read_like(recipe.data_options(), splits)
    if not labelled:
        options = replace(options, label=None)
    if source.startswith(BUILTIN_PREFIX):  # built-in data comes with its own columns and fields
        return DataOptions(modality=options.modality, image_size=options.image_size, bad_files=options.bad_files)
    if Path(source).suffix.lower() in LINE_SUFFIXES:  # one text per line: no fields to name
        return replace(options, text_field=None)
    return options


def _other_set(recipe: Recipe, source: str, flag: str, preprocessing: Preprocessing | None, splits: Splits) -> Splits:
    """Another source (``--replay``, ``--watch``) read as the encoder reads its data, its samples fitted to the
    data's shape (e.g. series cut or NaN-padded to the data's length); its labels, if any, are its own."""
    options = _other_options(recipe, source, splits, labelled=flag == "--watch")
    modality = get_modality(splits.modality)
    if preprocessing is not None:  # the encoder's part only: the other source's columns are its own
        preprocessing = preprocessing.without_source()
        schema = preprocessing.get("schema")
        if schema is not None and options.label is not None:  # a table's classes are its own, not the data's
            unlabelled = dict(schema) | {"label": None, "classes": None}
            preprocessing = replace(preprocessing, settings=dict(preprocessing.settings) | {"schema": unlabelled})
    try:
        other = load_data(source, options, preprocessing=preprocessing)
    except SelfsupError as err:
        raise SelfsupError(f"{flag} '{source}': {err}") from err
    if other.modality != splits.modality:
        raise SelfsupError(
            f"{flag} '{source}' is {other.modality} data but '{recipe.data}' is "
            f"{splits.modality}; give data of the same modality."
        )
    shape = splits.train.sample_shape

    def fitted(part: Samples) -> ArrayDataset:
        part = decoded(part, flag)
        x = modality.fit_samples(part.x, shape)
        if x.shape[1:] != shape:
            raise SelfsupError(
                f"{flag} samples have shape {tuple(x.shape[1:])} but the data's are {shape}; "
                "give data with the same channels (or columns)."
            )
        return replace(part, x=x)

    return replace(other, train=fitted(other.train), test=fitted(other.test) if other.test is not None else None)


WATCH_FIT, WATCH_TEST = 2000, 1000  # samples of a watched set: class means from the first, accuracy on the second


def _watched(name: str, fit: Samples, test: Samples | None, seed: int) -> WatchedSet:
    """A watched set: its test split, or a stratified fifth of its samples held out; each part subsampled."""
    if test is None:
        counts = np.unique(fit.y.numpy(), return_counts=True)[1]
        stratify = fit.y.numpy() if counts.min() >= 2 else None  # a class of one sample cannot be stratified
        fit_idx, test_idx = train_test_split(np.arange(len(fit)), test_size=0.2, stratify=stratify, random_state=seed)
        fit, test = fit.subset(fit_idx), fit.subset(test_idx)
    rng = np.random.default_rng(seed)
    parts = [
        part.subset(np.sort(rng.choice(len(part), limit, replace=False))) if len(part) > limit else part
        for part, limit in ((fit, WATCH_FIT), (test, WATCH_TEST))
    ]
    fit_part, test_part = (part if isinstance(part, ArrayDataset) else part.in_memory() for part in parts)
    return WatchedSet(name, fit_part, test_part)  # bounded: decoded even when the data is read lazily


def _short_name(source: str) -> str:
    """A source's name in the watch's curves: a built-in's name, or a path's stem."""
    return source.removeprefix(BUILTIN_PREFIX) if source.startswith(BUILTIN_PREFIX) else Path(source).stem


def _watch_sets(
    recipe: Recipe,
    fit_set: Samples,
    probe_set: Samples | None,
    replay: Splits | None,
    preprocessing: Preprocessing,
    splits: Splits,
    paired: bool,
) -> list[WatchedSet]:
    """What ``--watch`` scores: each --watch source, the --replay source when labelled, and the data itself (its
    online probe's held-out split) when labelled; none without --watch or a labelled --replay. Paired runs are not
    watched (sharded strategies, where every process would have to embed, are refused before: training/launch.py)."""
    if recipe.watch and paired:
        raise SelfsupError("--watch is not available for paired runs yet; leave it out.")
    if paired:
        return []
    sources = [(source, _other_set(recipe, source, "--watch", preprocessing, splits)) for source in recipe.watch]
    for source, read in sources:
        if not read.train.labeled:
            raise SelfsupError(
                f"--watch '{source}' has no labels to score; watch labelled data (class sub-folders, or a table's "
                "--label column)."
            )
    if replay is not None and replay.train.labeled and recipe.replay is not None:
        sources.append((recipe.replay, replay))
    if not sources:
        return []
    names: list[str] = []
    for source, _ in sources:
        name = _short_name(source)
        names.append(name if name not in names else f"{name}-{len(names)}")
    sets = [_watched(name, read.train, read.test, recipe.seed) for name, (_, read) in zip(names, sources)]
    if probe_set is not None:
        data = _short_name(recipe.data)
        sets.insert(0, _watched(data if data not in names else f"{data}-data", fit_set, probe_set, recipe.seed))
    return sets


class ReplaySampler(torch.utils.data.Sampler):
    """Every sample of the data once per epoch, plus ``fraction / (1 - fraction)`` as many replay samples
    drawn at random, all shuffled together: a ``fraction`` of each batch is replay, in expectation.
    Indices ``>= n_data`` are replay samples. The order depends on ``seed`` and the epoch (``set_epoch``,
    which Lightning calls), so a resumed run does not repeat its first epoch."""

    def __init__(self, n_data: int, n_replay: int, fraction: float, seed: int) -> None:
        self.n_data, self.n_replay, self.seed, self.epoch = n_data, n_replay, seed, 0
        self.n_draws = round(n_data * fraction / (1 - fraction))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_data + self.n_draws

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        replay = self.n_data + torch.randint(0, self.n_replay, (self.n_draws,), generator=generator)
        order = torch.cat([torch.arange(self.n_data), replay])
        return iter(order[torch.randperm(len(order), generator=generator)].tolist())


def _with_replay(data: Samples, replay: ArrayDataset, fraction: float, seed: int):
    """One dataset of both, and the :class:`ReplaySampler` over it."""
    from torch.utils.data import ConcatDataset

    return ConcatDataset([data, replay]), ReplaySampler(len(data), len(replay), fraction, seed)


def _upsampling(
    recipe: Recipe, method: Method, splits: Splits, preprocessing: Preprocessing, loader: DataLoader
) -> DomainUpsampling | None:
    """``--target-data T --upsample-at-end FRACTION``: T read as the encoder reads the data (of its modality, its
    samples fitted to the data's shape), unlabelled, and replacing ``--target-share`` of each batch in the last
    FRACTION of the steps (Blakeney et al. 2024; ``training/upsample.py``)."""
    if recipe.target_data is None:
        return None
    if method.paired or recipe.pair_data is not None:
        raise SelfsupError("--upsample-at-end is not supported with paired data; leave it out.")
    read = _other_set(recipe, recipe.target_data, "--target-data", preprocessing, splits).train
    if len(read) == 0:
        raise SelfsupError(f"--target-data '{recipe.target_data}' has no samples; pass target data with samples.")
    target = ArrayDataset(read.x, torch.full((len(read),), UNLABELED, dtype=torch.long), read.ids)
    method.check_data(target.x)
    upsample = DomainUpsampling(target, recipe.upsample_at_end, recipe.target_share, recipe.seed)
    total, batch = _planned_steps(recipe, _steps_per_epoch(recipe, loader)), int(loader.batch_size or 1)
    print(
        f"domain upsampling: from step {upsample.start(total)} of {total}, {upsample.count(batch)} of each batch's "
        f"{batch} samples come from '{recipe.target_data}' ({len(target)} samples)",
        file=sys.stderr,
    )
    return upsample


def _write_init_report(
    out: Path, init: InitSource, report: InitReport, method_report: InitReport | None, show: bool
) -> None:
    """Show the loaded / missing / unexpected / shape-mismatch table of the encoder (and of the method's parts, when
    they were carried), and keep it in the run folder."""
    method = {"method": {"name": init.method} | method_report.as_dict()} if method_report is not None else {}
    write_atomic(out / "init.json", json.dumps({"source": str(init.path)} | report.as_dict() | method, indent=1))
    if show:
        from rich.console import Console

        console = Console(stderr=True)
        console.print(report_table(report, init.path))
        if method_report is not None:
            console.print(report_table(method_report, init.path, f"{init.method} method parts"))


def _carry_method(recipe: Recipe, method: Method, init: InitSource | None) -> InitReport | None:
    """The ``--init`` run's method parts (heads, teacher, centres, decoder) loaded into ``method`` as
    ``--init-parts`` says: ``auto`` when the run trained the same method and saved them, ``all`` or refused,
    ``encoder`` never. None when nothing was carried."""
    if init is None or recipe.init_parts == "encoder":
        return None
    same = init.method == recipe.method and init.method_state is not None
    if recipe.init_parts == "all" and not same:
        why = (
            f"'{init.path}' holds no saved method parts (not a selfsup run, or one from an older selfsup)"
            if init.method_state is None
            else f"'{init.path}' trained {init.method} and this run trains {recipe.method}"
        )
        raise SelfsupError(f"--init-parts all carries the method's parts, but {why}; use --init-parts encoder.")
    if not same:
        return None
    own = method.own_state()
    if recipe.adapter != "none" and init.method_state is not None:  # a teacher copied from the adapted encoder
        init = replace(init, method_state=onto_adapted(init.method_state, own))
    return load_method_parts(method, own, init)


def resume_recipe(out: str | Path, epochs: int | None = None, max_steps: int | None = None) -> Recipe:
    """The recipe saved in a run folder (optionally trained for longer), to continue that run."""
    recipe_file = Path(out) / RECIPE_FILE
    if not recipe_file.is_file():
        raise SelfsupError(f"cannot resume: '{out}' holds no {RECIPE_FILE}; pass the folder of a selfsup run.")
    recipe = load_recipe(recipe_file)
    if recipe.anneal and (epochs or max_steps is not None):
        raise SelfsupError(
            f"the run in '{out}' is an anneal of '{recipe.anneal}', which ends {recipe.anneal_steps} steps after "
            "where it began; resume it with --resume --out alone (anneal again for another length)."
        )
    # the run lives where it is now, not where the recipe says it was first written (moved or copied runs)
    update = (
        {"out": str(out)}
        | ({"epochs": epochs} if epochs else {})
        | ({"max_steps": max_steps} if max_steps is not None else {})
        | _defaults_it_predates(recipe, Path(out))
    )
    return make_recipe(**(recipe.model_dump() | update))


def _defaults_it_predates(recipe: Recipe, out: Path) -> dict[str, Any]:
    """Method defaults that changed after the run began, kept as the run had them: a ``dinov2`` run from before its
    iBOT term (on by default since) resumes without it, whose weights its checkpoint lacks."""
    if recipe.method != "dinov2" or "ibot_weight" in recipe.method_args or not has_checkpoint(out):
        return {}
    path = resume_checkpoint(out, set_aside=False).path  # mapped, not read: only its key names are looked at
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    keys = list(state.get("state_dict", {}))
    token_encoder = any(".encoder.tokenizer." in key for key in keys)  # iBOT is for token encoders only
    if not token_encoder or any(key.endswith("mask_token") for key in keys):
        return {}
    warnings.warn(
        f"the dinov2 run in '{out}' began before dinov2 had its iBOT term; it resumes without it (ibot_weight=0)",
        UserWarning,
        stacklevel=2,
    )
    return {"method_args": recipe.method_args | {"ibot_weight": 0.0}}


def stage1_folder(out: str | Path) -> Path:
    """Where a self-distillation run keeps its stage 1 (the further pre-trained teacher): beside it."""
    out = Path(out)
    return out.with_name(out.name + "-stage1")


def pretrain(recipe: Recipe, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> PretrainResult:
    """Pre-train an encoder as the recipe says; returns the trained encoder and where the run lives.

    The run holds a lock on its folder; checkpoints are written on the recipe's schedule and on Ctrl-C
    (:class:`RunInterrupted`). A new run that fails before its first checkpoint removes what it wrote.
    With ``recipe.self_distill`` (Lee et al. 2022, "Self-Distillation for Further Pre-training of
    Transformers") this is two runs: stage 1 further pre-trains ``recipe.init`` on the data into
    ``OUT-stage1``; stage 2 re-starts from ``recipe.init`` and trains the same objective plus
    ``distill_weight`` x the squared distance of its embeddings to the frozen stage-1 encoder's, into OUT.
    """
    method_cls = method_class(recipe.method)  # fail on a bad name before any data is read
    check_paired(recipe, method_cls)
    if recipe.random_init and (method_cls.paired or recipe.pair_data):
        raise SelfsupError("--random-init starts one encoder from random weights; paired runs do not take it yet.")
    if recipe.self_distill:
        return _self_distill(recipe, resume, overwrite, progress)
    branch = None
    if recipe.anneal and not resume:  # a new branch off another run's checkpoint (a resumed one has its own)
        recipe, branch = _anneal_start(recipe)
    _check_out(recipe, resume, overwrite)  # before the lock file goes into someone's folder
    with _holding(recipe, Path(recipe.out)):
        _check_out(recipe, resume, overwrite)  # and again: another run may have finished there meanwhile
        return _run(recipe, resume=resume, overwrite=overwrite, progress=progress, branch=branch)


def _self_distill(recipe: Recipe, resume: bool, overwrite: bool, progress: bool) -> PretrainResult:
    """Stage 1 into ``OUT-stage1``, then stage 2 into OUT, then (``distill_report``) the from-scratch run into
    ``OUT-scratch`` and the comparison; ``--resume --out OUT`` continues whichever stopped."""
    if not recipe.init:
        raise SelfsupError("--self-distill re-starts from the original checkpoint: give it with --init.")
    first = recipe.model_copy(update={"self_distill": False, "out": str(stage1_folder(recipe.out))})
    stage1, final = Path(first.out), Path(recipe.out)
    scratch = _scratch_recipe(recipe) if recipe.distill_report else None
    _check_out(recipe, resume, overwrite)  # every folder is checked before anything is written
    _check_out(first, resume, overwrite, flag="the stage-1 folder of --self-distill")
    if scratch is not None:
        _check_out(scratch, resume, overwrite, flag="the from-scratch folder of --self-distill")
    with _holding(recipe, final):
        _check_out(recipe, resume, overwrite)
        fresh = not resume and launched_rank(recipe) == 0
        if fresh:  # OUT's recipe first, so that '--resume --out OUT' finds the run
            if overwrite:
                clear_output_folder(final, RUN)
                if scratch is not None:  # an earlier from-scratch run must not pass for this one's on a resume
                    clear_output_folder(Path(scratch.out), RUN)
            save_recipe(recipe, final / RECIPE_FILE)
        stage1_done = resume and (stage1 / WEIGHTS).is_file()  # then only stage 2 (and the comparison) go on
        try:
            teacher = _side_run(first, resume, overwrite, progress)
        except BaseException as err:
            if fresh and not has_checkpoint(stage1):  # nothing to resume: leave no half-made run behind
                _roll_back(final)
            if isinstance(err, RunInterrupted):  # resumed through OUT, not through its stage 1
                raise RunInterrupted(final, err.step) from None
            raise
        if stage1_done and (final / WEIGHTS).is_file() and not _extended(recipe):  # the comparison is what is left
            if scratch is None or (final / DISTILL_REPORT / "compare.json").is_file():
                raise SelfsupError(
                    f"the self-distillation run in '{final}' has finished (both stages"
                    + (" and its comparison)" if scratch is not None else ")")
                    + "; start another with a new --out."
                )
            distilled = load_encoder(final)
            splits = load_data(recipe.data, recipe.data_options(), preprocessing=preprocessing_of(distilled))
            result = PretrainResult(final, distilled, recipe, splits, _loss_history(final / "csv"))
        else:
            result = _stage2(recipe, teacher, resume, progress)
        if scratch is not None:
            _distill_report(recipe, scratch, teacher, result, resume, overwrite, progress)
        return result


def _side_run(recipe: Recipe, resume: bool, overwrite: bool, progress: bool, **run: Any) -> Encoder:
    """The encoder of a run beside a self-distillation (stage 1, from scratch) in its own folder: its export when a
    resume finds it finished, else trained on from its last checkpoint, or again from the start without one."""
    folder = Path(recipe.out)
    if resume and (folder / WEIGHTS).is_file():
        return load_encoder(folder)
    from_checkpoint = resume and has_checkpoint(folder)
    with _holding(recipe, folder):
        overwrite = not from_checkpoint and (overwrite or resume)
        return _run(recipe, resume=from_checkpoint, overwrite=overwrite, progress=progress, **run).encoder


def _extended(recipe: Recipe) -> bool:
    """Whether a resumed run is asked for other epochs or steps than its saved recipe says."""
    saved = load_recipe(Path(recipe.out) / RECIPE_FILE)
    return (recipe.epochs, recipe.max_steps) != (saved.epochs, saved.max_steps)


def _stage2(recipe: Recipe, teacher: nn.Module, resume: bool, progress: bool) -> PretrainResult:
    """Self-distillation's stage 2 in OUT (which holds only its recipe, or a start without a checkpoint)."""
    final = Path(recipe.out)
    stage2_resume = resume and has_checkpoint(final)  # stage 2 may not have started yet
    try:
        return _run(recipe, resume=stage2_resume, overwrite=not stage2_resume, progress=progress, teacher=teacher)
    except BaseException as err:
        if launched_rank(recipe) == 0 and not (final / RECIPE_FILE).is_file():  # stage 2 rolled back: stage 1 is
            save_recipe(recipe, final / RECIPE_FILE)  # done, and '--resume --out OUT' goes on with stage 2
        if isinstance(err, RunInterrupted):
            raise RunInterrupted(final, err.step) from None
        raise


DISTILL_REPORT = "distill-report"


def scratch_folder(out: str | Path) -> Path:
    """Where a self-distillation run trains its from-scratch comparison: beside it."""
    out = Path(out)
    return out.with_name(out.name + "-scratch")


def _scratch_recipe(recipe: Recipe) -> Recipe:
    """Stage 1's training from random weights (the architecture is the distilled encoder's: ``_run``'s
    ``architecture``), into ``OUT-scratch``."""
    return recipe.model_copy(
        update={
            "init": None,
            "init_parts": "auto",
            "self_distill": False,
            "distill_report": False,
            "freeze_encoder_steps": 0,  # no checkpoint to protect from new heads
            "random_init": True,
            "adapter": "none",  # every weight trains from random: adapters on frozen random weights would not
            "watch": [],
            "out": str(scratch_folder(recipe.out)),
        }
    )


def _original(recipe: Recipe, distilled: Encoder) -> Encoder:
    """The ``--init`` checkpoint as an encoder of the distilled one's architecture and preprocessing."""
    assert recipe.init is not None  # self-distillation starts from one
    encoder = build_encoder(distilled.config)
    encoder.preprocessing = distilled.preprocessing
    load_into(encoder, read_init(recipe.init))
    return encoder.eval()


def _distill_report(
    recipe: Recipe,
    scratch: Recipe,
    stage1: Encoder,
    distilled: PretrainResult,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> None:
    """Lee et al. 2022's comparison on the data's labels: the original checkpoint, stage 1 (further pre-trained),
    the self-distilled encoder and the same architecture trained from scratch, each pair with a paired bootstrap
    interval and McNemar's test (``selfsup compare``), into OUT/distill-report; skipped, said in one line, on
    unlabelled data."""
    from selfsup.evaluation.compare import compare

    if not distilled.splits.train.labeled:
        print(
            f"--self-distill: '{recipe.data}' has no labels, so the comparison of the original, further pre-trained, "
            "self-distilled and from-scratch encoders is skipped (evaluate them with 'selfsup compare').",
            file=sys.stderr,
        )
        return
    from_scratch = _side_run(scratch, resume, overwrite, progress, architecture=distilled.encoder)  # every rank
    if launched_rank(recipe) > 0:  # the comparison: once
        return
    encoders = [
        ("original", _original(recipe, distilled.encoder)),
        ("further (stage 1)", stage1),
        ("self-distilled", distilled.encoder),
        ("from scratch", from_scratch),
    ]
    where = Path(recipe.out) / DISTILL_REPORT
    result = compare(encoders, recipe.data, options=recipe.data_options(), seed=recipe.seed, out=where, overwrite=True)
    if progress:
        _print_distill_report(result, where)


def _print_distill_report(result: dict, where: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"self-distillation on {result['data']}: {result['split']}; accuracy %")
    table.add_column("encoder")
    protocols = list(dict.fromkeys(row["protocol"] for row in result["accuracies"]))
    for protocol in protocols:
        table.add_column(protocol, justify="right")
    for name in dict.fromkeys(row["encoder"] for row in result["accuracies"]):
        cells = {row["protocol"]: row["accuracy"] for row in result["accuracies"] if row["encoder"] == name}
        table.add_row(name, *(f"{100 * cells[p]:.2f}" for p in protocols))
    console = Console()
    console.print(table)
    console.print(f"paired intervals and McNemar tests of every pair: {where}/compare.md")


def _run(
    recipe: Recipe,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
    teacher: nn.Module | None = None,
    branch: ResumePoint | None = None,
    architecture: Encoder | None = None,
) -> PretrainResult:
    """One pre-training run in the (checked, locked) folder ``recipe.out``, step by step; the folder is written
    only once every step before training has passed. A ``branch`` (``--anneal``) is a new run that starts from
    another run's training checkpoint, read as a resume of that run reads it; an ``architecture`` (an encoder) is
    built, and reads the data, as that encoder does, instead of as the recipe says."""
    out = Path(recipe.out)
    # a corrupt checkpoint fails before any work; rank 0 sets a broken last.ckpt aside, the others only read
    resume_from = resume_checkpoint(out, set_aside=launched_rank(recipe) == 0) if resume else branch
    from_checkpoint = resume_from is not None  # the weights come from a training checkpoint, not --init
    source = recipe if branch is None else recipe.model_copy(update={"out": recipe.anneal})
    if architecture is None:
        splits, config, preprocessing, init = _read(source, from_checkpoint)
    else:  # another encoder's, exactly: its config and the way it reads the data (--self-distill's from scratch)
        config, preprocessing, init = dict(architecture.config), preprocessing_of(architecture), None
        splits = load_data(recipe.data, recipe.data_options(), preprocessing=preprocessing.without_source())
    encoder, init_report, pair, method_args = _encoder(recipe, splits, config, preprocessing, init, from_checkpoint)
    adapters = _adapters(recipe, encoder, progress and not resume)  # before the method copies it (EMA teachers)
    method, views, splits = _method(recipe, splits, config, encoder, pair, method_args)
    method_report = _carry_method(recipe, method, init)
    train_loader, val_loader, watch = _loaders(recipe, method, splits, preprocessing)
    steps_per_epoch = _steps_per_epoch(recipe, train_loader)
    recipe = _resumed_target(recipe, resume_from, steps_per_epoch)
    recipe = _head_warmup(recipe, method, init, method_report, steps_per_epoch)
    _check_freeze(recipe, steps_per_epoch)
    if resume_from is None:
        recipe = _phases_in_steps(recipe, steps_per_epoch)
    upsample = _upsampling(recipe, method, splits, preprocessing, train_loader)
    module = _module(recipe, method, views, teacher, upsample)
    n_classes = len(splits.train.classes or []) if val_loader else 0
    probe = OnlineProbe(method.encoder.embed_dim, n_classes, lr=module.lr) if n_classes > 1 else None

    def write_description() -> None:  # what a resumed run changes, once its new state is on disk
        save_recipe(recipe, out / RECIPE_FILE)
        write_meta(encoder, out, recipe.model_dump())

    checkpoints = RunCheckpoints(
        out,
        recipe.checkpoint_every,
        recipe.checkpoint_every_steps,
        after_first_save=write_description if resume and launched_rank(recipe) == 0 else None,
    )
    watcher = _watcher(recipe, watch, out, steps_per_epoch)
    trainer = _trainer(
        recipe, out, checkpoints, probe, watcher, steps_per_epoch, progress, resume_from
    )  # bad devices: before
    fresh = not resume and trainer.is_global_zero  # anything is written
    if fresh:
        if overwrite:
            clear_output_folder(out, RUN)
        out.mkdir(parents=True, exist_ok=True)
        write_description()  # recipe.yaml: '--resume' finds the run; selfsup.json: a killed run can be exported
        if init is not None and init_report is not None:
            _write_init_report(out, init, init_report, method_report, progress)
    try:
        _fit(trainer, module, checkpoints, train_loader, val_loader, out, resume_from)
    except BaseException:
        if fresh and checkpoints.saved_step is None:  # nothing to resume: leave no half-made run behind
            _roll_back(out)
        raise
    encoder = method.encoder.cpu().eval()
    sides = None
    if trainer.is_global_zero:
        own = method.own_state()
        if adapters is not None:  # kept apart, then folded in: the export is a plain encoder
            save_adapters(encoder, out, adapters, _adapted_weights(recipe, encoder))
            merge_lora(encoder)
            own = merged_state(own, adapters.alpha / adapters.rank)
        save_encoder(encoder, out, recipe.model_dump())
        save_method_state(own, out)
        if isinstance(encoder, PairEncoder):
            sides = export_sides(encoder, out, recipe.model_dump() | {"method_args": method_args})
    return PretrainResult(out, encoder, recipe, splits, _loss_history(out / "csv"), sides)


def _adapted_weights(recipe: Recipe, encoder: Encoder) -> str | None:
    """What LoRA adapts: the --init checkpoint, an encoder's own pre-trained weights (minilm), or None (random)."""
    if recipe.init is not None:
        return recipe.init
    own = get_modality(encoder.config["modality"]).start_weights is not None and not recipe.random_init
    return f"{encoder.config['name']} (its own weights)" if own else None


def _adapters(recipe: Recipe, encoder: Encoder, show: bool) -> AdapterSummary | None:
    """``--adapter lora``: the encoder's adapters, injected in place (everything else of it frozen), said in one
    line with what trains and the training state's size next to full continued pre-training's."""
    if recipe.adapter != "lora":
        return None
    summary = add_lora(encoder, recipe.lora_rank, recipe.lora_alpha, train_norms=recipe.adapter_norms)
    if _adapted_weights(recipe, encoder) is None:
        warnings.warn(
            "--adapter lora without --init trains adapters on randomly initialised, frozen weights; give the "
            "checkpoint to adapt with --init.",
            stacklevel=2,
        )
    if show:
        print(
            f"LoRA: rank-{summary.rank} adapters on {summary.layers} layers ({', '.join(summary.targets)}): "
            f"{summary.trainable:,} of {summary.total:,} parameters train ({100 * summary.trainable / summary.total:.1f}%); "
            f"weights, gradients and AdamW state {summary.state_bytes / 2**20:.0f} MiB (full continued pre-training: "
            f"{summary.full_state_bytes / 2**20:.0f} MiB)",
            file=sys.stderr,
        )
    return summary


def _read(recipe: Recipe, resume: bool) -> tuple[Splits, dict, Preprocessing, InitSource | None]:
    """The data, read once and as its encoder reads it; the encoder's config (a checkpoint's, or fitted on the
    data) and preprocessing (fitted on the data); the checkpoint to start from (``--init``; a resumed run's
    weights are in its training checkpoint)."""
    method_cls = method_class(recipe.method)
    options = recipe.data_options()
    saved_config = read_meta(recipe.out)["encoder"] if resume and recipe.init else None
    paired = saved_config is not None and saved_config["modality"] == "pairs"
    if saved_config is not None and paired:
        saved_config = saved_config["a"]  # --init is side a's
    init = read_init(recipe.init) if recipe.init and not resume else None  # a bad checkpoint fails before reading
    export_config = saved_config or (init.encoder_config if init is not None else None)
    splits = load_data(recipe.data, options, preprocessing=_planned(recipe, export_config, init, paired))
    if init is not None and init.encoder_config is not None:  # a resumed run passed these checks when it began
        _check_export(recipe, init.encoder_config, splits)
    if method_cls.modalities is not None and splits.modality not in method_cls.modalities:
        raise SelfsupError(
            f"method '{recipe.method}' is made for {' and '.join(method_cls.modalities)} data, but "
            f"'{recipe.data}' is {splits.modality}; run 'selfsup methods' to see which methods fit."
        )
    modality = get_modality(splits.modality)
    if export_config is not None:
        config = dict(export_config)  # the export's architecture and input normalisation, as trained
        channels = splits.train.sample_shape[0]
        if init is not None and "in_chans" in config and int(config["in_chans"]) != channels:
            # data of another channel count (an RGB export on multi-band data): the data's channels and statistics,
            # fitted as for a new encoder; load_into adapts the first layer to them
            fitted = modality.encoder_config(modality.default_encoder, splits, options, None)
            config |= {key: fitted[key] for key in ("in_chans", "mean", "std")}
    else:
        config = modality.encoder_config(
            _encoder_name(recipe, splits.modality, init), splits, options, _encoder_args(recipe)
        )
    return splits, config, modality.preprocessing(splits, options, config), init


def _encoder_name(recipe: Recipe, modality_name: str, init: InitSource | None) -> str:
    """The architecture of a new encoder: ``--encoder``, a model folder's, the method's own (ul2's t5), or the
    modality's default (a token encoder for methods that need tokens)."""
    modality, method = get_modality(modality_name), method_class(recipe.method)
    default = method.default_encoder or (modality.token_encoder if method.needs_tokens else modality.default_encoder)
    return recipe.encoder or (init.architecture if init else None) or default


def _encoder_args(recipe: Recipe) -> dict:
    return method_class(recipe.method).encoder_defaults | recipe.encoder_args


def _planned(recipe: Recipe, export_config: dict | None, init: InitSource | None, paired: bool) -> Preprocessing | None:
    """How the data must be read, when known before reading it, so that it is read once: as the checkpoint's
    encoder reads (a selfsup export given to --init, or the one a resumed run started from: its schema, rate,
    tokenizer, size; this source's columns are the recipe's), or as the chosen encoder reads (text: its
    tokenizer). None when reading or the checks after it will refuse the data (a missing path, another
    modality than the method's or the checkpoint's): they say what is wrong."""
    modality = source_modality(recipe.data, recipe.data_options())
    method_modalities = method_class(recipe.method).modalities
    if modality is None or (method_modalities is not None and modality not in method_modalities):
        return None
    if export_config is not None:
        if export_config["modality"] != modality:
            return None
        folder = Path(recipe.out) if init is None else init.path
        return read_preprocessing(folder, export_config, side="a" if paired else None).without_source()
    name = _encoder_name(recipe, modality, init)
    return get_modality(modality).planned_preprocessing(name, recipe.data_options(), _encoder_args(recipe))


def _encoder(
    recipe: Recipe,
    splits: Splits,
    config: dict,
    preprocessing: Preprocessing,
    init: InitSource | None,
    resume: bool,
) -> tuple[Encoder, InitReport | None, tuple[Splits, Encoder] | None, dict]:
    """The encoder (seeded, from ``--init`` or its own pre-trained weights) with its preprocessing, its paired
    side for paired methods, and the method's arguments (a pair's applied lock)."""
    L.seed_everything(recipe.seed, workers=True, verbose=False)  # before the weights are initialised
    modality = get_modality(splits.modality)
    encoder = build_encoder(config)
    encoder.preprocessing = preprocessing
    check_fits(encoder, splits)  # e.g. a resumed run on other data (--init's config has the data's channels)
    init_report = load_into(encoder, init) if init is not None else None  # adapts the first layer to them
    if init is None and not resume and not recipe.random_init and modality.start_weights is not None:
        modality.start_weights(encoder)  # e.g. minilm: continued pre-training from its own weights
    pair = side_b(recipe, recipe.data_options(), resume) if method_class(recipe.method).paired else None
    method_args = recipe.method_args
    if pair is not None:
        encoder = PairEncoder(encoder, pair[1])
        method_args = resolved_lock(
            recipe,
            starts_pre_trained(config, recipe.init),  # what the exports record
            starts_pre_trained(pair[1].config),
        )
    return encoder, init_report, pair, method_args


def _method(
    recipe: Recipe,
    splits: Splits,
    config: dict,
    encoder: Encoder,
    pair: tuple[Splits, Encoder] | None,
    method_args: dict,
) -> tuple[Method, nn.Module, Splits]:
    """The method over the encoder, the views its spec asks of the modality, and the splits it trains on (a
    paired run's: samples matched with their partners)."""
    method_cls = method_class(recipe.method)
    method = build_method(recipe.method, encoder, method_args)
    # a method's paper defaults for view arguments its data's modality has (MAE's crop scale is for images)
    known = get_modality(splits.modality).view_args
    paper = {key: value for key, value in method_cls.view_defaults.items() if key in known}
    view_args = splits.view_defaults | paper | recipe.view_args
    if pair is not None:
        assert isinstance(encoder, PairEncoder)  # _encoder pairs it with its side
        views = pair_views(method_cls.views, splits, pair[0], encoder.a.config, encoder.b.config, view_args)
        return method, views, pair_splits(splits, pair[0])
    if recipe.pair_data:  # a positive per sample, through the one encoder (supervised SimCSE)
        assert encoder.preprocessing is not None  # _encoder gives it the one it read the data with
        partner = same_encoder_side(recipe, encoder.preprocessing)
        views = pair_views(method_cls.views, splits, partner, config, config, view_args)
        return method, views, pair_splits(splits, partner)
    return method, get_modality(splits.modality).make_views(method_cls.views, splits, config, view_args), splits


def _loaders(
    recipe: Recipe, method: Method, splits: Splits, preprocessing: Preprocessing
) -> tuple[DataLoader, DataLoader | None, list[WatchedSet]]:
    """The training loader (with replayed source samples, if any), the online probe's held-out loader and the
    sets ``--watch`` scores."""
    fit_set, probe_set = _probe_split(splits.train, recipe.seed, recipe.online_probe)
    if len(fit_set) < 2:
        raise SelfsupError(f"'{recipe.data}' has {len(fit_set)} usable samples; pre-training needs at least 2.")
    method.check_data(fit_set.head(CHECK_SAMPLES).x if isinstance(fit_set, LazyDataset) else fit_set.x)
    replayed = _other_set(recipe, recipe.replay, "--replay", preprocessing, splits) if recipe.replay else None
    paired = method.paired or recipe.pair_data is not None
    watch = _watch_sets(recipe, fit_set, probe_set, replayed, preprocessing, splits, paired)
    replay = None
    if replayed is not None:  # the online probe knows only the data's classes: replayed samples are unlabelled
        x = replayed.train.x
        replay = ArrayDataset(x, torch.full((len(x),), UNLABELED, dtype=torch.long), replayed.train.ids)
        method.check_data(replay.x)
    train_set, sampler = (
        (fit_set, None) if replay is None else _with_replay(fit_set, replay, recipe.replay_fraction, recipe.seed)
    )
    if sampler is None and isinstance(fit_set, LazyDataset) and fit_set.blocks is not None:
        sampler = BlockShuffleSampler(fit_set.blocks, recipe.seed)  # a lazy table: a row group read once, not per row
    workers = _workers(recipe, fit_set)
    if isinstance(train_set, ShardDataset) and "spawn" in recipe.strategy:  # its loader is made for forked processes
        raise SelfsupError(f"--strategy {recipe.strategy} cannot stream prepared shards; use --strategy ddp.")
    if isinstance(train_set, ShardDataset):  # prepared shards: LitData streams them (ranks, nodes, mid-epoch resume)
        train_loader = train_set.loader(min(recipe.batch_size, len(fit_set)), workers, recipe.seed, recipe.num_nodes)
    else:
        train_loader = DataLoader(
            train_set,
            batch_size=min(recipe.batch_size, len(fit_set)),
            shuffle=sampler is None,
            sampler=sampler,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
    val_loader = DataLoader(probe_set, batch_size=512, num_workers=workers) if probe_set else None
    return train_loader, val_loader, watch


CHECK_SAMPLES = 64  # samples of lazily read data a method checks before training (shapes, lengths)


def _workers(recipe: Recipe, data: Samples) -> int:
    """``--num-workers``, or by default none for data in memory and a few for data decoded as training asks for it
    (``data.loader_workers``)."""
    return recipe.num_workers if recipe.num_workers is not None else loader_workers(data)


def _module(
    recipe: Recipe,
    method: Method,
    views: nn.Module,
    teacher: nn.Module | None,
    upsample: DomainUpsampling | None = None,
) -> PretrainModule:
    """The Lightning module: the method's loss on the views, the recipe's optimiser and schedule."""
    return PretrainModule(
        method,
        views,
        lr=recipe.lr or method_class(recipe.method).default_lr,
        weight_decay=recipe.weight_decay,
        warmup_fraction=_warmup_fraction(recipe),
        warmup_steps=recipe.warmup_steps,
        schedule=recipe.schedule,
        decay_fraction=recipe.decay_fraction,
        cooldown_steps=recipe.cooldown_steps,
        constant_fraction=recipe.constant_fraction,
        anneal_steps=recipe.anneal_steps or 0,
        freeze_encoder_steps=recipe.freeze_encoder_steps or 0,
        distill_teacher=teacher,
        distill_weight=recipe.distill_weight,
        upsample=upsample,
        seed=recipe.seed,
    )


def _resumed_target(recipe: Recipe, resume_from: ResumePoint | None, steps_per_epoch: int) -> Recipe:
    """A resumed run asked to go further goes further, or says why not: a ``--max-steps`` past the recipe's epochs
    raises them (said in one line), and a finished run (its encoder exported) with no step left to train is
    refused; one killed after its last checkpoint, before its export, resumes to write it. Several devices split
    each epoch between them (the steps per epoch are Lightning's to count): there, the recipe as it is."""
    if resume_from is None or not _one_process(recipe):
        return recipe
    if recipe.max_steps > recipe.epochs * steps_per_epoch:
        epochs = math.ceil(recipe.max_steps / steps_per_epoch)
        if not recipe.anneal:  # an anneal's steps are its own, not a --max-steps the user gave
            print(
                f"--max-steps {recipe.max_steps} reaches past the run's {recipe.epochs} epochs of "
                f"{steps_per_epoch} steps: training up to {epochs} epochs",
                file=sys.stderr,
            )
        recipe = recipe.model_copy(update={"epochs": epochs})
    end = _planned_steps(recipe, steps_per_epoch)
    if resume_from.step >= end and (Path(recipe.out) / WEIGHTS).is_file():
        limit = f"--max-steps {recipe.max_steps}" if recipe.max_steps > 0 else f"--epochs {recipe.epochs}"
        raise SelfsupError(
            f"the run in '{recipe.out}' has trained its {end} steps ({limit}; its checkpoint is at step "
            f"{resume_from.step}); resume with a larger --max-steps or --epochs to train further."
        )
    return recipe


def _epochs(recipe: Recipe, steps_per_epoch: int, resume_from: ResumePoint | None) -> int:
    """The epochs the run will really train: fewer than ``recipe.epochs`` when ``max_steps`` ends it first (so the
    progress bar does not promise 20 epochs for 3 steps). A resumed run has done the checkpoint's epochs, the
    last one perhaps only in part (a run stopped by ``max_steps`` mid-epoch resumes in the next one). Several
    devices split each epoch's batches between them: there, the recipe's epochs."""
    if recipe.max_steps < 0 or not _one_process(recipe):
        return recipe.epochs
    if resume_from is None:
        return min(recipe.epochs, math.ceil(recipe.max_steps / max(1, steps_per_epoch)))
    # Lightning counts the epoch a checkpoint was written in once more when it restarts it (one written at the end of
    # an epoch restarts that epoch for one more batch): one spare epoch, even past the recipe's (whose epochs hold
    # --max-steps: _resumed_target), so that --max-steps ends the run, not the epoch count
    remaining = math.ceil(max(0, recipe.max_steps - resume_from.step) / max(1, steps_per_epoch))
    return resume_from.epoch + 2 + remaining


def _watcher(recipe: Recipe, sets: list[WatchedSet], out: Path, steps_per_epoch: int) -> Watch | None:
    """The ``--watch`` callback, scoring every ``--watch-every`` steps (default: 20 times in the run)."""
    if not sets:
        return None
    every = recipe.watch_every or max(1, _planned_steps(recipe, steps_per_epoch) // 20)
    names = ", ".join(s.name for s in sets)
    print(f"watch: nearest-class-mean accuracy on {names} every {every} steps (watch.csv, watch.png)", file=sys.stderr)
    return Watch(sets, every, out)


def _trainer(
    recipe: Recipe,
    out: Path,
    checkpoints: RunCheckpoints,
    probe: OnlineProbe | None,
    watch: Watch | None,
    steps_per_epoch: int,
    progress: bool,
    resume_from: ResumePoint | None,
) -> L.Trainer:
    """The Lightning trainer, with the online ``probe`` if there is one; a device, strategy or precision it cannot
    use is a :class:`SelfsupError`. Progress is shown by rank 0 only."""
    bar = progress and sys.stdout.isatty()  # a redrawn bar in a terminal; a few plain lines in logs and pipes
    callbacks: list[L.Callback] = [checkpoints, EmbeddingMonitors(), Throughput(), TrainLog(out / TRAIN_LOG)]
    callbacks.append(ProcessCheck(out / TRAIN_LOG, progress))  # several processes: each on its own samples?
    if recipe.logger not in ("csv", "csv,tensorboard"):  # MLflow or W&B: the recipe as parameters, their run ids
        callbacks.append(LoggerIds(out, recipe.model_dump()))
    if probe is not None:  # first: a checkpoint written at the end of a step holds the probe's update of that step
        callbacks.insert(0, probe)
    if watch is not None:  # before the checkpoints: a checkpoint written at a step holds that step's scores
        callbacks.insert(0, watch)
    if progress and launched_rank(recipe) == 0:
        callbacks.append(RichProgressBar(leave=True) if bar else PlainProgress(sys.stdout))
    # SyncBatchNorm (global-batch BN statistics, as SimCLR/BYOL use) exists only on GPUs
    on_gpu = torch.cuda.is_available() and recipe.accelerator in ("auto", "gpu", "cuda")
    multi_device = not _one_process(recipe) and on_gpu
    check_accelerator(recipe.accelerator)  # a GPU this machine lacks: one line
    loggers = build_loggers(recipe.logger, out)  # a logger's missing package: its own error line
    return lightning_trainer(
        recipe,
        max_epochs=_epochs(recipe, steps_per_epoch, resume_from),
        max_steps=recipe.max_steps,
        accumulate_grad_batches=recipe.accumulate_grad_batches,
        gradient_clip_val=recipe.gradient_clip_val,
        gradient_clip_algorithm=recipe.gradient_clip_algorithm,
        sync_batchnorm=multi_device,
        callbacks=callbacks,
        logger=loggers,
        log_every_n_steps=max(1, min(10, steps_per_epoch)),
        enable_progress_bar=bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )


LIGHTNING_NOISE = (
    ".*does not have many workers.*",
    ".*smaller than the logging interval.*",
    ".*LeafSpec.*",
    ".*no `val_dataloader`.*",  # the online probe off: no validation data, as intended
    ".*resuming from a checkpoint that ended before the epoch ended.*",  # the loader restarts the epoch
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*Trying to infer the `batch_size`.*",
    ".*`IterableDataset` has `__len__` defined.*",  # LitData's StreamingDataset shards itself between workers
)


def _fit(
    trainer: L.Trainer,
    module: PretrainModule,
    checkpoints: RunCheckpoints,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    out: Path,
    resume_from: ResumePoint | None,
) -> None:
    """``trainer.fit`` with Lightning's internal warnings silenced, the metrics of a resumed run kept, a diverged
    loss reported as a user error and Ctrl-C turned into a saved, resumable stop."""
    with warnings.catch_warnings():
        for noise in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=noise)
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        previous_metrics = _keep_metrics_across_resume(out / "csv", trainer.is_global_zero) if resume_from else None
        try:
            with stop_on_interrupt(checkpoints):
                trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume_from.path) if resume_from else None)
        except SystemExit:  # Lightning's answer to a second Ctrl-C
            if checkpoints.stop_requested:
                raise KeyboardInterrupt from None
            raise
        except ValueError as err:
            if resume_from is None or "parameter group" not in str(err):
                raise
            raise SelfsupError(
                f"'{resume_from.path}' holds optimiser state of another shape (written by an older "
                "selfsup, whose optimiser grouped parameters otherwise); export its encoder with "
                "'selfsup export --checkpoint', or start again with --overwrite."
            ) from None
        except FloatingPointError as err:  # the loss diverged
            kept = (
                f" The run's checkpoints are kept in '{out / FOLDER}'; start again with --overwrite."
                if has_checkpoint(out)
                else ""
            )
            raise SelfsupError(f"{err}{kept}") from None
    if previous_metrics is not None and trainer.is_global_zero:
        _merge_metrics(out / "csv", previous_metrics)
    if checkpoints.stop_requested:
        raise RunInterrupted(out, trainer.global_step)
