"""Self-training with pseudo-labels, as in SimCLRv2 (Chen et al. 2020, "Big Self-Supervised Models are
Strong Semi-Supervised Learners"): fine-tune, pseudo-label, distill.

1. **Teacher**: the pre-trained encoder plus a linear head, fine-tuned on the labeled training split.
2. **Pseudo-labels**: the teacher's class probabilities on the unlabeled pool; the samples whose top
   probability reaches ``threshold`` are kept.
3. **Student**: a fresh copy of the *pre-trained* encoder plus a head, or (``student_encoder``) a freshly
   initialised, e.g. smaller, architecture (SimCLRv2 §2.3 distils into a smaller ResNet as well), trained on the
   labeled samples (cross-entropy) and the kept pool samples (cross-entropy against the teacher's soft predictions at
   ``temperature``, SimCLRv2's distillation loss). Or, ``order="pseudo-then-gold"``, first on the kept pool samples
   alone, then on the labeled samples with a new head (Predictions For Pre-training Language Models: the teacher's
   predictions as a pre-training stage before fine-tuning on gold labels).

Options: FST's "learning from future" teacher (``teacher="future"``: each pool batch is pseudo-labelled by a copy of
the teacher after a few virtual gradient steps on it, then discarded; ``workflows/future_teacher.py`` states its
simplifications) and SLA for the teacher's supervised fine-tuning (``label_augmentation="rotation"``: joint
class x rotation labels, aggregated over the rotations at test time; ``evaluation/label_augmentation.py``).

With ``out``, the student is saved as an ordinary encoder export plus its linear head (``out/student``:
``selfsup.load_encoder`` reads the encoder, ``selfsup.load_classifier`` both, with the class names), and the teacher's
pseudo-labels of the whole pool, with their confidences, go to ``out/pseudo_labels.csv``.

Both are trained by the fine-tuning protocol (``evaluation/finetune.py``): the head at 10x the encoder's
learning rate, early stopping on a stratified validation part carved from what each one trains on (the
student's pseudo-labelled samples are stratified by their top class), keeping the best epoch. Both are
scored on the labeled data's test split (its own, else a stratified split fixed by the seed); no choice is
made on it. The pool's labels, if it has any, are never read.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from selfsup.checkpoint import load_encoder, save_classifier
from selfsup.data import DataOptions, Splits
from selfsup.encoders import Encoder, build_encoder
from selfsup.errors import SelfsupError, unknown_name
from selfsup.evaluation import label_augmentation as sla
from selfsup.evaluation.evaluate import labeled_split
from selfsup.evaluation.finetune import FinetuneOptions, logits_of, train_classifier
from selfsup.evaluation.stats import accuracy_with_ci
from selfsup.files import write_atomic
from selfsup.modalities import check_fits, get_modality
from selfsup.outputs import PSEUDO_LABELS_HEADER, SELFTRAIN, check_output_folder, folder_lock, move_outputs, staging
from selfsup.sources import load_data
from selfsup.workflows.future_teacher import future_logits

ORDERS = ("joint", "pseudo-then-gold")
TEACHERS = ("fixed", "future")  # who pseudo-labels: the fine-tuned teacher, or its look-ahead copy (FST)


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
    architectures: dict  # per model: encoder name and parameter count (encoder + head)
    order: str  # "joint": labels and pseudo-labels together; "pseudo-then-gold": pseudo-labels, then labels
    # who pseudo-labelled: {"teacher": "fixed"} or FST's look-ahead copy, its steps and learning rate, and how many
    # pool samples' top class it changed from the fixed teacher's
    pseudo_labeller: dict = field(default_factory=lambda: {"teacher": "fixed"})
    label_augmentation: str | None = None  # the teacher's fine-tuning with SLA's joint labels ("rotation")
    augment: str | None = None  # the teacher's fine-tuning with plain rotation augmentation (SLA's DA control)


def _fit_summary(details: dict) -> dict:
    return {key: details[key] for key in ("best_epoch", "epochs_run", "n_val", "val_loss", "val_accuracy")}


def _student_encoder(
    pretrained: Encoder, splits: Splits, options: DataOptions | None, name: str | None, args: dict[str, Any]
) -> Encoder:
    """The student's starting encoder: the pre-trained one, or a freshly initialised ``name`` (with ``args``, e.g.
    a smaller width) fitted to the same data as it is read for the teacher."""
    if name is None:
        if args:
            raise SelfsupError("--student-encoder-arg needs --student-encoder: the architecture it configures.")
        return pretrained
    config = get_modality(splits.modality).encoder_config(name, splits, options, args)
    student = build_encoder(config)
    student.preprocessing = pretrained.preprocessing
    check_fits(student, splits)
    return student


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _pseudo_label_csv(ids: list[str], classes: list[str], probabilities: torch.Tensor, keep: torch.Tensor) -> str:
    """One row per pool sample: its id, the teacher's top class and probability, and whether the student used it."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(PSEUDO_LABELS_HEADER.split(","))
    top, index = probabilities.max(dim=1)
    for sample, k, p, used in zip(ids, index.tolist(), top.tolist(), keep.tolist()):
        writer.writerow([sample, classes[k], f"{p:.6f}", int(used)])
    return rows.getvalue()


def _write(
    out: Path,
    overwrite: bool,
    result: SelfTrainResult,
    student: torch.nn.Sequential,
    classes: list[str],
    pseudo_labels: str,
) -> None:
    """The pseudo-labels, the student and the report, staged inside ``out`` and moved in that order (the report,
    ``selftrain.json``, last; with ``overwrite``, an earlier self-training's files there are removed first). A move
    stopped midway leaves a folder still recognised as a self-training report (by its pseudo-labels or student).
    The caller holds ``out``'s ``folder_lock`` (``self_train`` does, over the whole self-training)."""
    out.mkdir(parents=True, exist_ok=True)
    with staging(out) as staged:
        write_atomic(staged / "pseudo_labels.csv", pseudo_labels)
        save_classifier(student, classes, staged / "student", extra={"selftrain": {"report": "../selftrain.json"}})
        write_atomic(staged / "selftrain.json", json.dumps(asdict(result), indent=1, default=float))
        move_outputs(staged, out, SELFTRAIN if overwrite else None, last="selftrain.json")


def self_train(
    encoder: str | Path,
    labeled: str,
    unlabeled: str,
    *,
    options: DataOptions | None = None,
    threshold: float = 0.9,
    temperature: float = 1.0,
    epochs: int = 30,
    student_epochs: int | None = None,
    lr: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    test_fraction: float = 0.25,
    student_encoder: str | None = None,
    student_encoder_args: dict[str, Any] | None = None,
    student_lr: float | None = None,
    order: str = "joint",
    teacher: str = "fixed",
    future_steps: int = 1,
    future_lr: float = 0.01,
    label_augmentation: str | None = None,
    augment: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> SelfTrainResult:
    """Teacher -> pseudo-labels -> student (see the module docstring); writes ``selftrain.json``, the student and
    the pseudo-labels to ``out`` (with ``overwrite``, first removing an earlier self-training's files there).
    ``student_epochs``: the student's most epochs (default ``epochs``; it sees the pool as well, so fewer epochs
    give it as many steps). ``student_lr``: the student encoder's learning rate (default ``lr`` for the pre-trained copy, ``10 * lr`` for a
    fresh architecture, which starts from random weights). ``order``: ``joint`` (SimCLRv2: one training on the labels
    and the kept pseudo-labels) or ``pseudo-then-gold`` (Predictions for Pre-training: the student trains on the kept
    pseudo-labels alone, then a new head and its encoder on the labels; the fitting report gains that first stage).
    ``teacher``: ``fixed`` (the fine-tuned teacher pseudo-labels the pool) or ``future`` (FST: each pool batch is
    pseudo-labelled by a copy of the teacher after ``future_steps`` virtual gradient steps at ``future_lr`` on it;
    ``workflows/future_teacher.py``). ``label_augmentation``: fine-tune the teacher with SLA's joint labels
    (``"rotation"``: square images; ``evaluation/label_augmentation.py``); the student is trained without it.
    ``augment``: fine-tune the teacher with plain rotation augmentation and the ordinary labels, SLA's DA control
    (``"rotation"``: a random quarter turn per image; ``"all-rotations"``: all four in each batch)."""
    if order not in ORDERS:
        raise unknown_name("self-training order", order, ORDERS)
    if teacher not in TEACHERS:
        raise unknown_name("self-training teacher", teacher, TEACHERS)
    if teacher == "future" and (future_steps < 1 or future_lr <= 0):
        raise SelfsupError(
            f"--teacher future needs --future-steps of at least 1 and a positive --future-lr, got {future_steps} "
            f"and {future_lr}."
        )
    if not 0 <= threshold < 1:
        raise SelfsupError(f"--threshold {threshold} must be in [0, 1): the teacher's top class probability.")
    FinetuneOptions(label_augmentation=label_augmentation, augment=augment)  # the names, and not both
    if teacher == "future" and label_augmentation is not None:
        raise SelfsupError(
            "--teacher future takes its look-ahead steps on class labels, not SLA's joint labels: leave out one of "
            "--teacher future and --label-augmentation."
        )
    student_epochs = epochs if student_epochs is None else student_epochs
    if (
        temperature <= 0
        or min(epochs, student_epochs) < 1
        or lr <= 0
        or batch_size < 2
        or (student_lr is not None and student_lr <= 0)
    ):
        raise SelfsupError(
            "--temperature, --lr and --student-lr must be positive, --epochs and --student-epochs at least 1, "
            "--batch-size at least 2."
        )
    if out is not None:
        check_output_folder(out, SELFTRAIN, overwrite=overwrite)  # before any work
    with folder_lock(out) if out is not None else nullcontext():  # one run per folder, over the whole work
        pretrained = load_encoder(encoder)
        splits = load_data(labeled, options, preprocessing=pretrained.preprocessing)
        check_fits(pretrained, splits)
        if label_augmentation is not None:
            sla.check_input(label_augmentation, str(pretrained.config.get("modality")), splits.train.x[:1])
        if augment is not None:
            sla.check_input(augment, str(pretrained.config.get("modality")), splits.train.x[:1], option="augmentation")
        student_start = _student_encoder(pretrained, splits, options, student_encoder, student_encoder_args or {})
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
        teacher_finetuning = replace(finetuning, label_augmentation=label_augmentation, augment=augment)
        tuned, teacher_fit = train_classifier(
            pretrained, x, y, y.numpy(), classes, options=teacher_finetuning, seed=seed
        )
        teacher_pred = logits_of(tuned, x_test).argmax(1).numpy()
        pool_logits = logits_of(tuned, pool)
        labeller: dict[str, Any] = {"teacher": teacher}
        if teacher == "future":
            fixed_top = pool_logits.argmax(1)
            pool_logits = future_logits(
                tuned,
                x,
                y,
                pool,
                steps=future_steps,
                lr=future_lr,
                threshold=threshold,
                batch_size=batch_size,
                seed=seed,
            )
            labeller |= {
                "steps": future_steps,
                "lr": future_lr,
                "changed": int((pool_logits.argmax(1) != fixed_top).sum()),
            }
        soft = F.softmax(pool_logits / temperature, dim=1)
        keep = F.softmax(pool_logits, dim=1).max(dim=1).values >= threshold

        targets = torch.cat([F.one_hot(y, classes).float(), soft[keep]])
        strata = torch.cat([y, soft[keep].argmax(1)]).numpy()
        fresh = student_start is not pretrained
        stages: dict[str, dict] = {}
        student_lr = student_lr if student_lr is not None else (10 * lr if fresh else lr)
        student_finetuning = FinetuneOptions(
            backbone_lr=student_lr, head_lr=10 * lr, epochs=student_epochs, batch_size=batch_size
        )
        if order == "joint":
            student, student_fit = train_classifier(
                student_start,
                torch.cat([x, pool[keep]]),
                targets,
                strata,
                classes,
                options=student_finetuning,
                seed=seed + 1,
            )
        else:  # Predictions for pre-training: the teacher's predictions first, as a training stage of their own
            if int(keep.sum()) < 2 * classes:
                raise SelfsupError(
                    f"--order {order} trains first on the pseudo-labelled pool, but only {int(keep.sum())} pool samples "
                    f"reach --threshold {threshold}; lower it."
                )
            on_pseudo, pseudo_fit = train_classifier(
                student_start, pool[keep], soft[keep], soft[keep].argmax(1).numpy(), classes, options=student_finetuning,
                seed=seed + 1,
            )  # fmt: skip
            # then a new head on the gold labels, the encoder at the teacher's learning rate
            student, student_fit = train_classifier(
                cast(Encoder, on_pseudo[0]), x, y, y.numpy(), classes, options=finetuning, seed=seed + 2
            )
            stages["student on pseudo-labels"] = _fit_summary(pseudo_fit)
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
            fitting={"teacher": _fit_summary(teacher_fit), "student": _fit_summary(student_fit)} | stages,
            order=order,
            pseudo_labeller=labeller,
            label_augmentation=label_augmentation,
            augment=augment,
            architectures={
                "teacher": {"encoder": pretrained.config["name"], "parameters": _parameters(tuned)},
                "student": {
                    "encoder": student_start.config["name"],
                    "parameters": _parameters(student),
                    "start": "fresh (random) weights" if fresh else "the pre-trained weights",
                    "encoder_lr": student_lr,
                },
            },
        )
        if out is not None:
            pseudo_labels = _pseudo_label_csv(pool_splits.train.ids, train.classes, F.softmax(pool_logits, dim=1), keep)
            _write(Path(out), overwrite, result, student, train.classes, pseudo_labels)
        return result
