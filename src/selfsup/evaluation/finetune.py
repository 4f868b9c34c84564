"""Fine-tuning: train the encoder (all of it or its last stages) and a linear head on the labels.

The usual transfer protocol next to the frozen probes (SimCLR, Chen et al. 2020, §B.5; MAE, He et al.
2022, §4): the backbone gets its own, smaller learning rate than the new head, and training stops
early on the cross-entropy of a stratified validation split carved from the training split, restoring
the best epoch, so the test split is used once, for the reported accuracy. No augmentation is applied unless asked:
``augment`` turns the training images (plain rotation augmentation, SLA's DA control) and ``label_augmentation`` is
SLA itself (``evaluation/label_augmentation.py``); validation and test images are never turned.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch import nn

from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation import label_augmentation

_NORMS = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


@dataclass(frozen=True)
class FinetuneOptions:
    """``blocks``: how many of the encoder's last stages to train (None: all of it). ``label_augmentation``:
    SLA's joint labels over input transformations, aggregated at test time (``"rotation"``; see
    ``evaluation/label_augmentation.py``). ``augment``: plain augmentation with the ordinary labels, the
    control SLA is compared with: ``"rotation"`` (a random quarter turn per image) or ``"all-rotations"`` (all four
    turns of each image in its batch); the validation and test images are not turned. ``keep``: ``"best"`` (early
    stopping: the epoch of lowest validation loss restored) or ``"last"`` (a fixed budget: every epoch run, the final
    weights kept; the validation part is only reported on)."""

    blocks: int | None = None
    backbone_lr: float = 1e-3
    head_lr: float = 1e-2
    weight_decay: float = 1e-4
    epochs: int = 100
    patience: int = 10
    batch_size: int = 64
    val_fraction: float = 0.1
    label_augmentation: str | None = None
    augment: str | None = None
    keep: str = "best"

    def __post_init__(self) -> None:
        if self.keep not in ("best", "last"):
            raise SelfsupError(f"fine-tuning keeps the 'best' or the 'last' epoch, not '{self.keep}'.")
        label_augmentation.check(self.label_augmentation)
        label_augmentation.check_augment(self.augment)
        if self.augment is not None and self.label_augmentation is not None:
            raise SelfsupError(
                "SLA already trains on every rotation, with joint labels; leave out the plain rotation augmentation "
                "or the label augmentation."
            )
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise SelfsupError(
                f"fine-tuning needs epochs, patience and batch size of at least 1, got {self.epochs}, "
                f"{self.patience} and {self.batch_size}."
            )
        if not 0 < self.val_fraction < 1:
            raise SelfsupError(f"the fine-tuning validation fraction must be in (0, 1), got {self.val_fraction}.")


def stages(encoder: nn.Module) -> list[nn.Module]:
    """The encoder's layers in order, at the granularity 'last N blocks' counts in.

    Single-child wrappers are opened; a ``ModuleList``/``Sequential`` contributes its members; a norm
    layer joins the stage before it (a ViT's final LayerNorm belongs to its last block).
    """
    children = [c for c in encoder.children() if any(True for _ in c.parameters())]
    if len(children) == 1 and not any(True for _ in encoder.parameters(recurse=False)):
        return stages(children[0])
    flat: list[nn.Module] = []
    for child in children:
        members = list(child) if isinstance(child, (nn.ModuleList, nn.Sequential)) else [child]
        flat += [m for m in members if any(True for _ in m.parameters())]
    grouped: list[list[nn.Module]] = []
    for module in flat:
        if grouped and isinstance(module, _NORMS):
            grouped[-1].append(module)
        else:
            grouped.append([module])
    return [g[0] if len(g) == 1 else nn.ModuleList(g) for g in grouped]


def train_last(backbone: nn.Module, blocks: int | None) -> tuple[list[nn.Module], int]:
    """Freeze all but the last ``blocks`` stages (None: train everything); ``(frozen stages, stages trained)``."""
    all_stages = stages(backbone)
    if blocks is not None and blocks < 0:
        raise SelfsupError(f"--finetune-blocks must be 0 or more, got {blocks}.")
    if blocks is None or blocks >= len(all_stages):  # everything, parameters outside any stage included
        return [], len(all_stages)
    n_trained = min(blocks, len(all_stages))
    backbone.requires_grad_(False)
    for stage in all_stages[len(all_stages) - n_trained :]:
        stage.requires_grad_(True)
    return all_stages[: len(all_stages) - n_trained], n_trained


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: a stratified ``fraction`` of ``y`` (at least one per class) held out."""
    idx = np.arange(len(y))
    n_val = max(round(fraction * len(y)), len(np.unique(y)))
    if len(y) - n_val < 2:
        raise SelfsupError(
            f"fine-tuning needs a validation split carved from the {len(y)} training samples and at "
            "least 2 left to train on; add labeled samples."
        )
    try:
        return train_test_split(idx, test_size=n_val, stratify=y, random_state=seed)
    except ValueError:  # a class with one sample cannot be stratified
        return train_test_split(idx, test_size=n_val, random_state=seed)


def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``model``'s outputs for ``x`` in eval mode, in batches, without gradients."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch_size].float()) for i in range(0, len(x), batch_size)])


def _validate(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """``(cross-entropy, accuracy)`` on the validation part (``targets``: class indices or probabilities)."""
    logits = logits_of(model, x)
    truth = targets if targets.ndim == 1 else targets.argmax(1)
    return float(F.cross_entropy(logits, targets)), float((logits.argmax(1) == truth).float().mean())


def train_classifier(
    encoder: Encoder,
    x: torch.Tensor,
    targets: torch.Tensor,
    strata: np.ndarray,
    classes: int,
    *,
    options: FinetuneOptions = FinetuneOptions(),
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Sequential, dict]:
    """Train a copy of ``encoder`` (its last ``options.blocks`` stages, or all of it) and a linear head on
    ``targets``: class indices ``(N,)`` or class probabilities ``(N, classes)`` (soft targets, which
    self-training's student learns from). Training stops early on the cross-entropy of a validation part of
    ``x`` stratified by ``strata`` and keeps the best epoch. Returns ``(model in eval mode, details)``; with
    ``options.label_augmentation`` the model is a ``label_augmentation.Aggregated``, whose head predicts the joint
    labels and which returns the aggregated class logits."""
    o = options
    if not len(x) == len(targets) == len(strata) or (targets.ndim == 2 and targets.shape[1] != classes):
        raise ValueError(
            f"{len(x)} samples, targets {tuple(targets.shape)} and {len(strata)} strata for {classes} "
            "classes do not match"
        )
    targets = targets.float() if targets.ndim == 2 else targets.long()
    m = label_augmentation.check(o.label_augmentation)  # SLA: classes x m joint labels
    if o.label_augmentation is not None:
        modality = str(getattr(encoder, "config", {}).get("modality"))
        label_augmentation.check_input(o.label_augmentation, modality, x)
    if o.augment is not None:
        modality = str(getattr(encoder, "config", {}).get("modality"))
        label_augmentation.check_input(o.augment, modality, x, option="augmentation")
    fit_idx, val_idx = validation_split(strata, o.val_fraction, seed)
    torch.manual_seed(seed)
    backbone = copy.deepcopy(encoder).float()
    frozen, n_trained = train_last(backbone, o.blocks)
    head = nn.Linear(encoder.embed_dim, classes * m)
    model = nn.Sequential(backbone, head) if m == 1 else label_augmentation.Aggregated(backbone, head, m)
    trained = [p for p in backbone.parameters() if p.requires_grad]
    groups = [{"params": model[1].parameters(), "lr": o.head_lr}] + (
        [{"params": trained, "lr": o.backbone_lr}] if trained else []
    )
    optimizer = torch.optim.AdamW(groups, weight_decay=o.weight_decay)
    x_fit, y_fit = x[fit_idx], targets[fit_idx]
    x_val, y_val = x[val_idx], targets[val_idx]
    generator = torch.Generator().manual_seed(seed)
    turns = torch.Generator().manual_seed(seed + 1)  # DA's draws: the batch order stays that of no augmentation
    best = (float("inf"), 0.0, 0, copy.deepcopy(model.state_dict()))  # loss, accuracy, epoch, weights
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("fine-tuning", total=o.epochs)
    try:
        for epoch in range(1, o.epochs + 1):
            model.train()
            for stage in frozen:  # frozen stages keep their batch-norm statistics and no dropout
                stage.eval()
            order = torch.randperm(len(x_fit), generator=generator)
            for i in range(0, len(order), o.batch_size):
                batch = order[i : i + o.batch_size]
                if len(batch) < 2 and len(order) > 1:  # batch norm cannot train on one sample
                    continue
                inputs, batch_targets = x_fit[batch].float(), y_fit[batch]
                if o.augment is not None:  # DA: turned images, their own labels
                    inputs, batch_targets = label_augmentation.augmented_batch(o.augment, inputs, batch_targets, turns)
                if m > 1:  # every view of the batch, with its joint label; validation scores the aggregation
                    inputs, batch_targets = label_augmentation.joint_batch(inputs, batch_targets, classes, m)
                    loss = F.cross_entropy(cast(label_augmentation.Aggregated, model).joint(inputs), batch_targets)
                else:
                    loss = F.cross_entropy(model(inputs), batch_targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            val_loss, accuracy = _validate(model, x_val, y_val)
            if val_loss < best[0] and o.keep == "best":
                best = (val_loss, accuracy, epoch, copy.deepcopy(model.state_dict()))
            elif o.keep == "last" and val_loss < float("inf"):  # a fixed budget: the epoch kept is the last one
                best = (val_loss, accuracy, epoch, {})
            if bar is not None:
                bar.advance(task)
            if o.keep == "best" and epoch - best[2] >= o.patience:
                break
    finally:
        if bar is not None:
            bar.stop()
    if best[2] == 0 or (o.keep == "last" and best[2] != epoch):
        raise SelfsupError(
            "fine-tuning diverged: the validation loss was never finite; lower the learning rates "
            "(evaluate: --finetune-lr and --head-lr; selftrain: --lr)."
        )
    if o.keep == "best":
        model.load_state_dict(best[3])
    model.eval()
    details = asdict(o) | {
        "stages_trained": n_trained,
        "stages": len(frozen) + n_trained,
        "best_epoch": best[2],
        "epochs_run": epoch,
        "val_loss": best[0],
        "val_accuracy": best[1],
        "n_val": len(val_idx),
    }
    return model, details


def fine_tune(
    encoder: Encoder,
    x_train: torch.Tensor,
    y_train: np.ndarray,
    x_test: torch.Tensor,
    *,
    options: FinetuneOptions = FinetuneOptions(),
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, dict]:
    """Fine-tune a copy of ``encoder`` with a linear head; return test predictions and the details."""
    classes, y = np.unique(np.asarray(y_train), return_inverse=True)
    model, details = train_classifier(
        encoder, x_train, torch.as_tensor(y), y, len(classes), options=options, seed=seed, progress=progress
    )
    return classes[logits_of(model, x_test).argmax(1).numpy()], details
