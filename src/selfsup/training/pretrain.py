"""Run a pre-training recipe end to end: data -> views -> encoder -> method -> Lightning -> exported encoder."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

from selfsup.checkpoint import save_encoder, write_meta
from selfsup.data import ArrayDataset, Splits
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods import build_method, method_class
from selfsup.modalities import load_data, modality_module
from selfsup.recipe import Recipe, load_recipe, make_recipe, save_recipe
from selfsup.training.module import PretrainModule

RECIPE_FILE = "recipe.yaml"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
PROBE_HOLDOUT = 0.1


@dataclass
class PretrainResult:
    out: Path
    encoder: nn.Module
    recipe: Recipe
    splits: Splits
    loss_history: list[tuple[int, float]]


def _launched_rank() -> int:
    """Rank of a process that Lightning's DDP launcher started by re-running the command (0 in the launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


def _prepare_out(recipe: Recipe, resume: bool, overwrite: bool) -> Path:
    out = Path(recipe.out)
    if _launched_rank() > 0:  # the launcher (rank 0) has already checked and written the folder
        return out
    occupied = out.exists() and any(out.iterdir())
    if resume:
        if not (out / LAST_CKPT).is_file():
            raise SelfsupError(f"cannot resume: '{out / LAST_CKPT}' does not exist; start a new run instead.")
    elif occupied and not overwrite:
        raise SelfsupError(
            f"output folder '{out}' already holds files; pass --resume to continue that run, "
            "--overwrite to replace it, or choose another --out."
        )
    if out.exists() and not out.is_dir():
        raise SelfsupError(f"output path '{out}' is a file; choose a folder for --out.")
    return out


def _probe_split(train: ArrayDataset, seed: int, enabled: bool) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Carve a stratified held-out split for the online probe when the data is labeled."""
    counts = np.bincount(train.y.numpy()) if train.labeled else np.array([])
    if not enabled or not train.labeled or len(counts) < 2 or counts.min() < 2:
        return train, None
    idx = np.arange(len(train))
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


def _keep_metrics_across_resume(csv_dir: Path) -> Path | None:
    """Lightning's CSV logger deletes the metrics.csv it finds: set the rows aside before a resumed fit.

    Outside ``csv_dir``: the logger warns that it will delete whatever that folder holds.
    """
    path, previous = csv_dir / "metrics.csv", csv_dir.parent / "metrics-before-resume.csv"
    rows = _read_rows(previous) + _read_rows(path)  # a backup is left only by a resume that crashed
    if not rows or rank_zero_only.rank != 0:
        return None
    _write_rows(previous, rows)
    path.unlink(missing_ok=True)
    return previous


def _merge_metrics(csv_dir: Path, previous: Path) -> None:
    """Put the rows logged before the resume back in front of the resumed run's rows."""
    _write_rows(csv_dir / "metrics.csv", _read_rows(previous) + _read_rows(csv_dir / "metrics.csv"))
    previous.unlink()


def resume_recipe(out: str | Path, epochs: int | None = None, max_steps: int | None = None) -> Recipe:
    """The recipe saved in a run folder (optionally trained for longer), to continue that run."""
    recipe_file = Path(out) / RECIPE_FILE
    if not recipe_file.is_file():
        raise SelfsupError(f"cannot resume: '{out}' holds no {RECIPE_FILE}; pass the folder of a selfsup run.")
    recipe = load_recipe(recipe_file)
    # the run lives where it is now, not where the recipe says it was first written (moved or copied runs)
    update = {"out": str(out)} | ({"epochs": epochs} if epochs else {}) | (
        {"max_steps": max_steps} if max_steps is not None else {})
    return make_recipe(**(recipe.model_dump() | update))


def pretrain(recipe: Recipe, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> PretrainResult:
    """Pre-train an encoder as the recipe says; returns the trained encoder and where the run lives."""
    method_cls = method_class(recipe.method)  # fail on a bad name before any data is read
    out = _prepare_out(recipe, resume, overwrite)
    options = recipe.data_options()
    splits = load_data(recipe.data, options)
    if method_cls.modalities is not None and splits.modality not in method_cls.modalities:
        raise SelfsupError(f"method '{recipe.method}' is made for {' and '.join(method_cls.modalities)} data, but "
                           f"'{recipe.data}' is {splits.modality}; run 'selfsup methods' to see which methods fit.")
    modality = modality_module(splits.modality)
    L.seed_everything(recipe.seed, workers=True, verbose=False)  # before the weights are initialised
    default_encoder = modality.TOKEN_ENCODER if method_cls.needs_tokens else modality.DEFAULT_ENCODER
    config = modality.encoder_config(recipe.encoder or default_encoder, splits, options,
                                     method_cls.encoder_defaults | recipe.encoder_args)
    encoder = build_encoder(config)
    method = build_method(recipe.method, encoder, recipe.method_args)
    view_args = splits.view_defaults | method_cls.view_defaults | recipe.view_args
    views = modality.make_views(method_cls.views, splits, config, view_args)
    fit_set, probe_set = _probe_split(splits.train, recipe.seed, recipe.online_probe)
    if len(fit_set) < 2:
        raise SelfsupError(f"'{recipe.data}' has {len(fit_set)} usable samples; pre-training needs at least 2.")
    method.check_data(fit_set.x)

    if _launched_rank() == 0:
        if overwrite and out.exists() and not resume:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, out / RECIPE_FILE)
        write_meta(encoder, out, recipe.model_dump())

    batch_size = min(recipe.batch_size, len(fit_set))
    train_loader = DataLoader(fit_set, batch_size=batch_size, shuffle=True, drop_last=True,
                              num_workers=recipe.num_workers, persistent_workers=recipe.num_workers > 0)
    val_loader = (DataLoader(probe_set, batch_size=512, num_workers=recipe.num_workers) if probe_set else None)
    module = PretrainModule(
        method, views, lr=recipe.lr or method_cls.default_lr, weight_decay=recipe.weight_decay,
        warmup_fraction=min(1.0, recipe.warmup_epochs / recipe.epochs),
        num_classes=len(splits.train.classes or []) if probe_set else 0,
    )
    for name in ("lightning.pytorch", "lightning.fabric"):  # device banners and tips: not for our users
        logging.getLogger(name).setLevel(logging.WARNING)
    csv_logger = CSVLogger(out, name="csv", version="")
    callbacks = [
        # no version counter: a resumed copy of a run must overwrite its last.ckpt, not write last-v1.ckpt
        ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0,
                        every_n_epochs=recipe.checkpoint_every, enable_version_counter=False),
    ] + ([RichProgressBar(leave=True)] if progress else [])
    # SyncBatchNorm (global-batch BN statistics, as SimCLR/BYOL use) exists only on GPUs
    on_gpu = torch.cuda.is_available() and recipe.accelerator in ("auto", "gpu", "cuda")
    multi_device = recipe.devices not in (1, "1") and on_gpu
    trainer = L.Trainer(
        max_epochs=recipe.epochs, max_steps=recipe.max_steps, accelerator=recipe.accelerator,
        devices=recipe.devices, strategy=recipe.strategy, precision=recipe.precision,
        sync_batchnorm=multi_device, callbacks=callbacks,
        logger=[csv_logger, TensorBoardLogger(out, name="tensorboard", version="")],
        log_every_n_steps=max(1, min(10, len(train_loader))), enable_progress_bar=progress,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=out,
    )
    with warnings.catch_warnings():
        for noise in (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*"):
            warnings.filterwarnings("ignore", message=noise)
        previous_metrics = _keep_metrics_across_resume(out / "csv") if resume else None
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(out / LAST_CKPT) if resume else None)
    if previous_metrics is not None and trainer.is_global_zero:
        _merge_metrics(out / "csv", previous_metrics)

    encoder = method.encoder.cpu().eval()
    if trainer.is_global_zero:
        save_encoder(encoder, out, recipe.model_dump())
    return PretrainResult(out, encoder, recipe, splits, _loss_history(out / "csv"))
