"""``selfsup unlearn``: make a trained model forget part of its training data, and audit how well it did.

The forget set is a CSV file with an ``id`` column naming samples of the training split of ``data`` as the data
source names them (``ArrayDataset.ids``: an image's path under its folder, ``digits-0447`` for ``builtin:digits``);
the retain set is the rest of that split, or the ids of ``retain``. Methods:

* ``gradient-ascent``: raise the forget set's cross-entropy, plus ``retain_weight`` times the retain set's.
* ``npo``: Negative Preference Optimization (Zhang et al. 2024): ``(2/beta) log(1 + (p/p_ref)^beta)`` on the forget
  set's labels, the model before unlearning as the frozen reference, plus the retain cross-entropy (NPO+RT).
* ``label-agnostic``: no labels (after LAF, Label-Agnostic Forgetting): the forget set's embeddings are turned away
  from the frozen original encoder's (cosine similarity down to 0), the retain set's distilled from it (cosine).
  A classifier's head is kept as it is.

The labelled methods unlearn a classifier (an encoder + linear head saved by ``checkpoint.save_classifier``, e.g.
``selfsup selftrain``'s ``OUT/student``). Given an encoder instead, the workflow first fine-tunes one on the whole
training split (``evaluation/finetune.py``: head at 10x the encoder's learning rate, early stopping on a
stratified tenth) and unlearns that. Training runs Adam steps on a forget batch and a retain batch each, with the
network in eval mode (batch-norm statistics and dropout frozen: only weights move): at most ``steps``, stopping
(``--stop at-heldout-loss``, ``unlearn_stopping.py``) once the forget set's losses are no lower than those of a
held-out part the model never trained on (a loss-threshold attack's AUC on the two at most 0.5; the overshooting
last step bisected): the fine-tuning's own validation part when the workflow fine-tuned the original, else
the ``heldout`` ids (without them, for an encoder, or with ``--stop steps``: all ``steps``). ``audit.json``'s
``stopping`` says at which step and why.

The audit (``audit.json``) gives, for the model before unlearning, after it and, as the gold standard, a model
retrained without the forget set (the same fine-tuning protocol from ``retrain_from`` on the retain set only; or a
model the user retrained, ``retrained``): accuracy on the forget, retain and test sets (classifiers: their own
predictions; encoders: kNN, k=20, fitted on the retain embeddings, leave-one-out on the retain set), the forget and
retain embeddings' mean cosine similarity to the original encoder's, and a membership-inference attack's ROC AUC
telling forget samples (members) from test samples (non-members) by their per-sample loss (classifiers: their
cross-entropy; encoders: a logistic-regression probe's fitted on the retain embeddings); 0.5: it cannot tell. The
test set is the data's own test split, else a stratified ``test_fraction`` split of the training split fixed by
``seed`` (the one ``evaluate`` and ``selftrain`` use); nothing is chosen on it. It also gives seconds spent
unlearning and retraining.

Output (written in a temporary folder inside ``out``, moved into place at the end): ``model/`` (the unlearned model,
in the format it came in: a classifier, or an encoder), ``audit.json`` and, when the workflow retrained one,
``retrained/`` (the gold-standard classifier, which another run can audit with ``retrained``).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup import __version__
from selfsup.data import ArrayDataset, DataOptions, decoded
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError, unknown_name
from selfsup.files import write_atomic
from selfsup.losses.unlearning import distillation_loss, forget_similarity_loss, gradient_ascent_loss, npo_loss
from selfsup.outputs import UNLEARNING, check_output_folder, folder_lock, move_outputs, staging
from selfsup.workflows.forget_sets import (
    LABELLED,
    METHODS,
    UnlearnOptions,
    _indices,
    check_request,
    read_ids,
    split_forget_retain,
)
from selfsup.workflows.unlearn_stopping import MAX_SCORED, HeldoutStop, bisect_last_step, snapshot, stop_record

AUDIT_FORMAT = "selfsup-unlearning"
KNN_K = 20


@dataclass
class UnlearnResult:
    out: Path
    method: str
    kind: str  # "classifier" or "encoder"
    audit: dict[str, Any]  # audit.json's content


# --------------------------------------------------------------------------- unlearning


def _batches(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` indices of ``n``: a random permutation's first ones (repeated when ``n < size``)."""
    order = torch.randperm(n, generator=generator)
    return order[:size] if n >= size else order[torch.arange(size) % n]


def _scored(x: torch.Tensor, y: torch.Tensor | None, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """At most ``MAX_SCORED`` of ``(x, y)`` (a fixed random subset): what the stopping rule scores at each check."""
    if len(x) <= MAX_SCORED:
        return x, y
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:MAX_SCORED]
    return x[keep], None if y is None else y[keep]


def unlearn_with_stop(
    model: nn.Module,
    method: str,
    x_forget: torch.Tensor,
    x_retain: torch.Tensor,
    y_forget: torch.Tensor | None = None,
    y_retain: torch.Tensor | None = None,
    options: UnlearnOptions | None = None,
    seed: int = 0,
    x_heldout: torch.Tensor | None = None,
    y_heldout: torch.Tensor | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` after at most ``options.steps`` steps of ``method`` (module docstring), and how it stopped
    (``unlearn_stopping.py``). The labelled methods take a classifier ``(encoder, head)`` and the labels;
    ``label-agnostic`` an encoder (or a classifier, whose encoder it unlearns, keeping the head). ``x_heldout`` (with
    ``y_heldout`` for the labelled methods): samples the model never trained on, not in ``x_retain``, for
    ``--stop at-heldout-loss``; without them, or for an encoder, it runs the fixed ``options.steps``."""
    if method not in METHODS:
        raise unknown_name("unlearning method", method, METHODS)
    o = options or UnlearnOptions()
    torch.manual_seed(seed)
    reference = copy.deepcopy(model).float().eval().requires_grad_(False)
    student = copy.deepcopy(model).float().eval()  # eval: norm statistics and dropout frozen, weights trained
    trained = student[0] if method == "label-agnostic" and isinstance(student, nn.Sequential) else student
    frozen_ref = cast(nn.Sequential, reference)[0] if trained is not student else reference
    optimizer = torch.optim.Adam(trained.parameters(), lr=o.lr)
    generator = torch.Generator().manual_seed(seed)
    stop: HeldoutStop | None = None
    reason = f"ran the {o.steps} steps of --stop steps"
    if o.stop == "at-heldout-loss":
        if not isinstance(student, nn.Sequential):
            reason = f"ran the fixed {o.steps} steps: an encoder has no label-free loss to compare (unlearn_stopping)"
        elif x_heldout is None or len(x_heldout) == 0:
            reason = f"ran the fixed {o.steps} steps: no held-out part the model never trained on (--heldout)"
        else:
            labelled = method != "label-agnostic"
            if labelled and (y_heldout is None or y_forget is None):
                raise ValueError(f"{method} stops at the held-out loss on labels: pass y_heldout")
            xs, ys = _scored(x_forget, y_forget if labelled else None, seed)
            xh, yh = _scored(x_heldout, y_heldout if labelled else None, seed + 1)
            stop = HeldoutStop(xs, ys, xh, yh)
            reason = f"reached the maximum {o.steps} steps before the forget losses reached the held-out ones"
    steps_run, fraction = 0, 1.0
    before: dict[str, torch.Tensor] = {}
    for step in range(o.steps + 1):
        if stop is not None and stop.reached(student, step):
            if step > 0:  # stop where the last step crossed, not after all of it
                fraction = bisect_last_step(student, before, stop)
            last = stop.trace[-1]
            reason = (
                f"the forget losses reached the held-out ones {fraction:.3f} of the way through step {step} "
                f"(attack AUC {last['auc']:.3f} <= 0.5; mean loss {last['forget_loss']:.4g} vs "
                f"{last['heldout_loss']:.4g})"
                if step > 0
                else f"before any step: the forget losses are already no lower than the held-out ones "
                f"(attack AUC {last['auc']:.3f})"
            )
            break
        if step == o.steps:
            break
        if stop is not None:
            before = snapshot(student)
        steps_run = step + 1
        f = _batches(len(x_forget), min(o.batch_size, len(x_forget)), generator)
        r = _batches(len(x_retain), o.batch_size, generator)
        xf, xr = x_forget[f].float(), x_retain[r].float()
        if method == "label-agnostic":
            with torch.no_grad():
                zf_ref, zr_ref = frozen_ref(xf), frozen_ref(xr)
            loss = forget_similarity_loss(trained(xf), zf_ref) + o.retain_weight * distillation_loss(
                trained(xr), zr_ref
            )
        else:
            assert y_forget is not None and y_retain is not None
            yf, yr = y_forget[f], y_retain[r]
            logits = student(xf)
            if method == "gradient-ascent":
                forget_term = gradient_ascent_loss(logits, yf)
            else:
                with torch.no_grad():
                    ref_logp = F.log_softmax(reference(xf), dim=1).gather(1, yf[:, None]).squeeze(1)
                logp = F.log_softmax(logits, dim=1).gather(1, yf[:, None]).squeeze(1)
                forget_term = npo_loss(logp, ref_logp, o.beta)
            loss = forget_term + o.retain_weight * F.cross_entropy(student(xr), yr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    record = stop_record(o.stop, steps_run, o.steps, reason, stop)
    if stop is not None and stop.trace[-1]["step"] == -1:
        record["last_step_fraction"] = round(fraction, 4)
    return student.eval(), record


# --------------------------------------------------------------------------- the audit


def _auc(member_loss: np.ndarray, nonmember_loss: np.ndarray) -> float:
    """ROC AUC of the loss-threshold attack: a lower loss says "member"."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(member_loss)), np.zeros(len(nonmember_loss))]
    return float(roc_auc_score(truth, -np.r_[member_loss, nonmember_loss]))


def _embeddings(encoder: nn.Module, x: torch.Tensor) -> np.ndarray:
    from selfsup.evaluation.embed import embed

    return embed(encoder, x)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(1).mean())


def audit_model(
    model: nn.Module, original_encoder: nn.Module, parts: dict[str, ArrayDataset], original: dict[str, np.ndarray]
) -> dict[str, Any]:
    """One model's audit figures on ``parts`` (forget, retain and, if any, test): see the module docstring.
    ``original``: the original encoder's embeddings of each part."""
    from selfsup.evaluation.finetune import logits_of

    classifier = isinstance(model, nn.Sequential)
    encoder = model[0] if isinstance(model, nn.Sequential) else model
    emb = {name: _embeddings(encoder, part.float_samples()) for name, part in parts.items()}
    row: dict[str, Any] = {
        f"{name}_similarity_to_original": _cosine(emb[name], original[name]) for name in ("forget", "retain")
    }
    labelled = all(part.labeled for part in parts.values())
    if not labelled:
        return row
    if classifier:
        losses = {}
        for name, part in parts.items():
            logits = logits_of(model, part.float_samples())
            losses[name] = F.cross_entropy(logits, part.y, reduction="none").numpy()
            row[f"{name}_accuracy"] = float((logits.argmax(1) == part.y).float().mean())
        row["protocol"] = "the classifier's own predictions"
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from selfsup.evaluation.knn import knn_predict

        y = {name: part.y.numpy() for name, part in parts.items()}
        for name in parts:
            self_ = name == "retain"
            predicted = knn_predict(emb["retain"], y["retain"], emb[name], k=KNN_K, exclude_self=self_)
            row[f"{name}_accuracy"] = float((predicted == y[name]).mean())
        scaler = StandardScaler().fit(emb["retain"])
        probe = LogisticRegression(max_iter=500).fit(scaler.transform(emb["retain"]), y["retain"])
        column = {c: j for j, c in enumerate(probe.classes_)}
        losses = {}
        for name in parts:
            proba = probe.predict_proba(scaler.transform(emb[name]))
            cols = np.array([column.get(c, -1) for c in y[name]])  # -1: a class the retain set lacks
            p = np.where(cols >= 0, proba[np.arange(len(proba)), np.maximum(cols, 0)], 0.0)
            losses[name] = -np.log(np.clip(p, 1e-12, None))
        row["protocol"] = f"kNN (k={KNN_K}, cosine) on the retain set's embeddings; leave-one-out on the retain set"
    if "test" in parts:
        row["mia_auc"] = _auc(losses["forget"], losses["test"])
        row["forget_loss"], row["test_loss"] = float(losses["forget"].mean()), float(losses["test"].mean())
    return row


# --------------------------------------------------------------------------- the workflow


def _load(path: str | Path) -> tuple[nn.Module, list[str] | None]:
    """A classifier ``(Sequential(encoder, head), classes)`` when ``path`` holds one, else ``(encoder, None)``."""
    from selfsup.checkpoint import load_classifier, load_encoder, read_meta

    if isinstance(read_meta(path).get("classifier"), dict):
        return load_classifier(path)
    return load_encoder(path), None


def fine_tune_classifier(
    start: Encoder, part: ArrayDataset, classes: int, options: UnlearnOptions, seed: int
) -> tuple[nn.Sequential, float]:
    """A classifier fine-tuned from ``start`` on ``part`` (the protocol in the module docstring), and its seconds."""
    from selfsup.evaluation.finetune import FinetuneOptions, train_classifier

    o = FinetuneOptions(
        backbone_lr=options.finetune_lr,
        head_lr=10 * options.finetune_lr,
        epochs=options.finetune_epochs,
        batch_size=options.batch_size,
    )
    began = time.perf_counter()
    model, _ = train_classifier(start, part.float_samples(), part.y, part.y.numpy(), classes, options=o, seed=seed)
    return model, time.perf_counter() - began


def _heldout(
    train: ArrayDataset,
    test: ArrayDataset | None,
    heldout: str | Path | None,
    forget_idx: np.ndarray,
    retain_idx: np.ndarray,
    finetunes: bool,
    seed: int,
    source: str,
) -> tuple[np.ndarray, str]:
    """Indices of the training split the model never trained on (``--stop at-heldout-loss``), and where they came
    from: the fine-tuning's own validation part (less the forget set) when the workflow fine-tunes the original,
    else the ids of ``heldout`` (retain samples; none: the rule falls back to fixed steps)."""
    if finetunes:
        if heldout is not None:
            raise SelfsupError(
                "--heldout is for a given classifier; an encoder is fine-tuned here, and the held-out part is the "
                "fine-tuning's own validation part."
            )
        from selfsup.evaluation.finetune import FinetuneOptions, validation_split

        _, val_idx = validation_split(train.y.numpy(), FinetuneOptions().val_fraction, seed)
        idx = np.setdiff1d(val_idx, forget_idx)
        return idx, f"the fine-tuning's validation part less the forget set ({len(idx)} samples; never trained on)"
    if heldout is None:
        return np.zeros(0, dtype=np.int64), "none (a given model: pass --heldout, samples it never trained on)"
    idx = _indices(read_ids(heldout, "--heldout"), train, test, "--heldout", source)
    if len(np.intersect1d(idx, forget_idx)):
        raise SelfsupError("--heldout names samples of --forget; the held-out part must be data never trained on.")
    if len(np.setdiff1d(idx, retain_idx)) or len(idx) == len(retain_idx):
        raise SelfsupError("--heldout must name some, not all, of the retain samples (the model never trained on).")
    return np.sort(idx), f"--heldout {heldout} ({len(idx)} samples)"


def unlearn(
    model: str | Path,
    data: str,
    forget: str | Path,
    method: str = "npo",
    *,
    out: str | Path,
    retain: str | Path | None = None,
    heldout: str | Path | None = None,
    options: UnlearnOptions | None = None,
    data_options: DataOptions | None = None,
    retrain_from: str | Path | None = None,
    retrained: str | Path | None = None,
    retrain: bool = True,
    seed: int = 0,
    test_fraction: float = 0.25,
    overwrite: bool = False,
) -> UnlearnResult:
    """Make ``model`` (a classifier or encoder folder) forget the samples of ``data``'s training split named in
    the CSV ``forget`` by ``method`` and audit it (module docstring). The gold standard: ``retrained`` (a model
    folder the user retrained without the forget set), else, for a classifier, one fine-tuned from ``retrain_from``
    (default: ``model`` when that is an encoder) on the retain set; ``retrain=False`` skips it. ``heldout``: a CSV of
    training samples a given classifier never trained on, for ``--stop at-heldout-loss`` (an encoder fine-tuned here
    uses the fine-tuning's own validation part). Writes ``model/`` and ``audit.json`` into ``out`` (new or empty, or
    with ``overwrite`` an earlier unlearning)."""
    from selfsup.checkpoint import load_encoder, read_meta, save_classifier, save_encoder
    from selfsup.evaluation.evaluate import labeled_split
    from selfsup.modalities import check_fits
    from selfsup.sources import load_data

    check_request(method, forget, retain, heldout)
    options = options or UnlearnOptions()
    out = check_output_folder(out, UNLEARNING, overwrite=overwrite)
    with folder_lock(out):  # one run per folder; a folder this created is removed again on failure
        loaded, classes = _load(model)
        encoder: Encoder = loaded[0] if classes is not None else loaded  # type: ignore[index,assignment]
        splits = load_data(data, data_options, preprocessing=encoder.preprocessing)
        check_fits(encoder, splits)
        labelled_method = method in LABELLED
        test: ArrayDataset | None
        if labelled_method or splits.train.labeled:
            train, test, split_note = labeled_split(
                splits, None, data_options, encoder.preprocessing, seed, test_fraction
            )
        else:
            train = decoded(splits.train, "unlearning")
            test = decoded(splits.test, "unlearning") if splits.test is not None else None
            split_note = "the data's own training split (unlabelled)"
        if classes is not None and classes != train.classes:
            raise SelfsupError(
                f"the classifier '{model}' predicts classes {classes} but '{data}' has {train.classes}; "
                "pass the data it was trained on."
            )
        forget_idx, retain_idx = split_forget_retain(
            train, test, read_ids(forget, "--forget"), read_ids(retain, "--retain") if retain else None, data
        )
        forget_part, retain_part = train.subset(forget_idx), train.subset(retain_idx)
        finetunes = labelled_method and classes is None  # an encoder: the workflow fine-tunes the original itself
        heldout_idx, heldout_note = _heldout(train, test, heldout, forget_idx, retain_idx, finetunes, seed, data)
        parts = {"forget": forget_part, "retain": retain_part} | ({"test": test} if test is not None else {})
        seconds: dict[str, float] = {}
        given: nn.Module | None = None
        if retrained is not None:  # checked before any work
            given, given_classes = _load(retrained)
            check_fits(given[0] if given_classes is not None else given, splits)  # type: ignore[index,arg-type]
            if given_classes is not None and given_classes != train.classes:
                raise SelfsupError(
                    f"--retrained '{retrained}' predicts classes {given_classes} but '{data}' has {train.classes}."
                )
        start_from: Encoder | None = None
        if retrain and retrained is None:
            if retrain_from is not None:
                start_from = load_encoder(retrain_from, expect_modality=splits.modality)
            elif classes is None and labelled_method:
                start_from = encoder
        original: nn.Module = loaded
        if finetunes:  # fine-tune the classifier to unlearn on the whole split
            assert train.classes is not None
            classes = list(train.classes)
            original, seconds["finetune_original"] = fine_tune_classifier(encoder, train, len(classes), options, seed)
        kind = "classifier" if classes is not None else "encoder"

        began = time.perf_counter()
        unlearn_part = train.subset(np.setdiff1d(retain_idx, heldout_idx)) if len(heldout_idx) else retain_part
        heldout_part = train.subset(heldout_idx)
        unlearned, stopping = unlearn_with_stop(
            original,
            method,
            forget_part.float_samples(),
            unlearn_part.float_samples(),
            forget_part.y if labelled_method else None,
            unlearn_part.y if labelled_method else None,
            options,
            seed,
            heldout_part.float_samples() if len(heldout_idx) else None,
            heldout_part.y if len(heldout_idx) and heldout_part.labeled else None,
        )
        stopping["heldout"] = heldout_note
        seconds["unlearn"] = time.perf_counter() - began
        gold: nn.Module | None = None
        gold_note = "not run"
        if given is not None:
            gold, gold_note = given, f"given: {retrained}"
        elif start_from is not None and classes is not None:
            gold, seconds["retrain"] = fine_tune_classifier(start_from, retain_part, len(classes), options, seed)
            gold_note = f"fine-tuned from {retrain_from or model} on the retain set, the same protocol"
        elif retrain:
            gold_note = (
                "not run: pass --retrain-from ENCODER (the encoder the classifier was fine-tuned from)"
                if kind == "classifier"
                else "not run: an encoder's gold standard is one pre-trained again without the forget set; pass it "
                "as --retrained MODEL (--retrain-from fine-tunes classifiers only)"
            )
        base_encoder = original[0] if isinstance(original, nn.Sequential) else original
        reference = {name: _embeddings(base_encoder, part.float_samples()) for name, part in parts.items()}
        audit = {
            name: audit_model(m, base_encoder, parts, reference)
            for name, m in (("original", original), ("unlearned", unlearned), ("retrained", gold))
            if m is not None
        }
        meta = read_meta(model)
        record = {
            "format": AUDIT_FORMAT,
            "method": method,
            "model": {"source": str(model), "kind": kind, "encoder": encoder.config.get("name", "")},
            "data": {"source": data, "split": split_note, "modality": splits.modality},
            "forget": {"file": str(forget), "samples": len(forget_idx)},
            "retain": {"file": str(retain) if retain else "the rest of the training split", "samples": len(retain_idx)},
            "test": {"samples": len(test) if test is not None else 0},
            "options": vars(options) | {"seed": seed},
            "stopping": stopping,
            "retrained": gold_note,
            "audit": audit,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "selfsup": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        extra = {"unlearned": {"method": method, "from": str(model), "report": "../audit.json"}}
        with staging(out) as staged:
            if kind == "classifier":
                assert isinstance(unlearned, nn.Sequential) and classes is not None
                save_classifier(unlearned, classes, staged / "model", extra=extra)
            else:
                assert isinstance(unlearned, Encoder)
                save_encoder(unlearned, staged / "model", recipe=meta.get("recipe"), extra=extra)
            if "retrain" in seconds:  # the gold standard this run fine-tuned: reusable as another run's --retrained
                assert isinstance(gold, nn.Sequential) and classes is not None
                save_classifier(gold, classes, staged / "retrained", extra={"retrained": {"report": "../audit.json"}})
            write_atomic(staged / "audit.json", json.dumps(record, indent=1, default=str))
            move_outputs(staged, out, UNLEARNING if overwrite else None, last="audit.json")
    return UnlearnResult(out=out, method=method, kind=kind, audit=record)
