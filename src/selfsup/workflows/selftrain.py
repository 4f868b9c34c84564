"""Self-training with pseudo-labels, as in SimCLRv2 (Chen et al. 2020, "Big Self-Supervised Models are
Strong Semi-Supervised Learners"): fine-tune, pseudo-label, distill.

1. **Teacher**: the pre-trained encoder plus a linear head, fine-tuned on the labeled training split.
2. **Pseudo-labels**: the teacher's class probabilities on the unlabeled pool; the samples whose top
   probability reaches ``threshold`` are kept.
3. **Student**: a fresh copy of the *pre-trained* encoder plus a head, trained on the labeled samples
   (cross-entropy) and the kept pool samples (cross-entropy against the teacher's soft predictions at
   ``temperature``, SimCLRv2's distillation loss).

Both are trained by the fine-tuning protocol (``evaluation/finetune.py``): the head at 10x the encoder's
learning rate, early stopping on a stratified validation part carved from what each one trains on (the
student's pseudo-labelled samples are stratified by their top class), keeping the best epoch. Both are
scored on the labeled data's test split (its own, else a stratified split fixed by the seed); no choice is
made on it. The pool's labels, if it has any, are never read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from selfsup.checkpoint import load_encoder
from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import labeled_split
from selfsup.evaluation.finetune import FinetuneOptions, logits_of, train_classifier
from selfsup.evaluation.stats import accuracy_with_ci
from selfsup.files import write_atomic
from selfsup.modalities import check_fits
from selfsup.outputs import SELFTRAIN, clear_output_folder
from selfsup.sources import load_data


@dataclass
class SelfTrainResult:
    teacher: dict  # accuracy with its 95% Wilson CI on the test split
    student: dict
    n_labeled: int
    n_pool: int
    n_pseudo: int
    threshold: float
    temperature: float
    split: str
    fitting: dict  # per model: best epoch, epochs run, validation size, loss and accuracy (the student's validation
    # part is mostly pseudo-labelled: its "accuracy" there is agreement with the teacher's top class)


def _fit_summary(details: dict) -> dict:
    return {key: details[key] for key in ("best_epoch", "epochs_run", "n_val", "val_loss", "val_accuracy")}


def self_train(
    encoder: str | Path,
    labeled: str,
    unlabeled: str,
    *,
    options: DataOptions | None = None,
    threshold: float = 0.9,
    temperature: float = 1.0,
    epochs: int = 30,
    lr: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    test_fraction: float = 0.25,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> SelfTrainResult:
    """Teacher -> pseudo-labels -> student (see the module docstring); writes ``selftrain.json`` to ``out``
    (with ``overwrite``, first removing an earlier self-training report's files there)."""
    if not 0 <= threshold < 1:
        raise SelfsupError(f"--threshold {threshold} must be in [0, 1): the teacher's top class probability.")
    if temperature <= 0 or epochs < 1 or lr <= 0 or batch_size < 2:
        raise SelfsupError("--temperature and --lr must be positive, --epochs at least 1, --batch-size at least 2.")
    pretrained = load_encoder(encoder)
    splits = load_data(labeled, options, preprocessing=pretrained.preprocessing)
    check_fits(pretrained, splits)
    train, test, split_note = labeled_split(splits, None, options, pretrained.preprocessing, seed, test_fraction)
    pool_splits = load_data(
        unlabeled,
        DataOptions(**(vars(options or DataOptions()) | {"label": None})),
        preprocessing=pretrained.preprocessing,
    )
    check_fits(pretrained, pool_splits)
    pool = pool_splits.train.float_samples()
    assert train.classes is not None  # labeled_split refuses unlabeled data
    classes = len(train.classes)
    x, y = train.float_samples(), train.y
    x_test, y_test = test.float_samples(), test.y.numpy()

    finetuning = FinetuneOptions(backbone_lr=lr, head_lr=10 * lr, epochs=epochs, batch_size=batch_size)
    teacher, teacher_fit = train_classifier(pretrained, x, y, y.numpy(), classes, options=finetuning, seed=seed)
    teacher_pred = logits_of(teacher, x_test).argmax(1).numpy()
    pool_logits = logits_of(teacher, pool)
    soft = F.softmax(pool_logits / temperature, dim=1)
    keep = F.softmax(pool_logits, dim=1).max(dim=1).values >= threshold

    targets = torch.cat([F.one_hot(y, classes).float(), soft[keep]])
    strata = torch.cat([y, soft[keep].argmax(1)]).numpy()
    student, student_fit = train_classifier(
        pretrained, torch.cat([x, pool[keep]]), targets, strata, classes, options=finetuning, seed=seed + 1
    )
    student_pred = logits_of(student, x_test).argmax(1).numpy()
    result = SelfTrainResult(
        teacher=accuracy_with_ci(y_test, teacher_pred),
        student=accuracy_with_ci(y_test, student_pred),
        n_labeled=len(train),
        n_pool=len(pool),
        n_pseudo=int(keep.sum()),
        threshold=threshold,
        temperature=temperature,
        split=split_note,
        fitting={"teacher": _fit_summary(teacher_fit), "student": _fit_summary(student_fit)},
    )
    if out is not None:
        out = Path(out)
        if overwrite:
            clear_output_folder(out, SELFTRAIN)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "selftrain.json", json.dumps(asdict(result), indent=1, default=float))
    return result
