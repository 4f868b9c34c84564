"""Self-training with pseudo-labels, as in SimCLRv2 (Chen et al. 2020, "Big Self-Supervised Models are
Strong Semi-Supervised Learners"): fine-tune, pseudo-label, distill.

1. **Teacher**: the pre-trained encoder plus a linear head, fine-tuned on the labeled training split.
2. **Pseudo-labels**: the teacher's class probabilities on the unlabeled pool; the samples whose top
   probability reaches ``threshold`` are kept.
3. **Student**: a fresh copy of the *pre-trained* encoder plus a head, trained on the labeled samples
   (cross-entropy) and the kept pool samples (cross-entropy against the teacher's soft predictions at
   ``temperature``, SimCLRv2's distillation loss).

Both are scored on the labeled data's test split (its own, else a stratified split fixed by the seed);
no choice is made on it. The pool's labels, if it has any, are never read.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.checkpoint import load_encoder
from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import check_fits, labeled_split
from selfsup.evaluation.stats import accuracy_with_ci
from selfsup.files import write_atomic
from selfsup.modalities import load_data


@dataclass
class SelfTrainResult:
    teacher: dict  # accuracy with its 95% bootstrap CI on the test split
    student: dict
    n_labeled: int
    n_pool: int
    n_pseudo: int
    threshold: float
    temperature: float
    split: str


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, classes: int) -> None:
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.embed_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _train(model: Classifier, x: torch.Tensor, targets: torch.Tensor, *, epochs: int, lr: float,
           batch_size: int, seed: int) -> Classifier:
    """Fine-tune ``model`` on ``x`` against ``targets``: class indices ``(N,)`` or probabilities ``(N, K)``."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": lr},
                                   {"params": model.head.parameters(), "lr": 10 * lr}], weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - 1, batch_size):  # a batch of one would break batch norm
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(x[idx]), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def _logits(model: Classifier, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])


def self_train(encoder: str | Path, labeled: str, unlabeled: str, *, options: DataOptions | None = None,
               threshold: float = 0.9, temperature: float = 1.0, epochs: int = 30, lr: float = 1e-4,
               batch_size: int = 64, seed: int = 0, test_fraction: float = 0.25,
               out: str | Path | None = None) -> SelfTrainResult:
    """Teacher -> pseudo-labels -> student (see the module docstring); writes ``selftrain.json`` to ``out``."""
    if not 0 <= threshold < 1:
        raise SelfsupError(f"--threshold {threshold} must be in [0, 1): the teacher's top class probability.")
    if temperature <= 0 or epochs < 1 or lr <= 0 or batch_size < 2:
        raise SelfsupError("--temperature and --lr must be positive, --epochs at least 1, --batch-size at least 2.")
    pretrained = load_encoder(encoder)
    config = pretrained.config
    splits = load_data(labeled, options, encoder_config=config)
    check_fits(pretrained, splits)
    train, test, split_note = labeled_split(splits, None, options, config, seed, test_fraction)
    pool_splits = load_data(unlabeled, DataOptions(**(vars(options or DataOptions()) | {"label": None})),
                            encoder_config=config)
    check_fits(pretrained, pool_splits)
    pool = pool_splits.train.float_samples()
    classes = len(train.classes)
    x, y = train.float_samples(), train.y
    x_test, y_test = test.float_samples(), test.y.numpy()

    torch.manual_seed(seed)
    teacher = _train(Classifier(copy.deepcopy(pretrained), classes), x, y, epochs=epochs, lr=lr,
                     batch_size=batch_size, seed=seed)
    teacher_pred = _logits(teacher, x_test).argmax(1).numpy()
    pool_logits = _logits(teacher, pool)
    soft = F.softmax(pool_logits / temperature, dim=1)
    keep = F.softmax(pool_logits, dim=1).max(dim=1).values >= threshold

    torch.manual_seed(seed)
    targets = torch.cat([F.one_hot(y, classes).float(), soft[keep]])
    student = _train(Classifier(copy.deepcopy(pretrained), classes), torch.cat([x, pool[keep]]), targets,
                     epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + 1)
    student_pred = _logits(student, x_test).argmax(1).numpy()
    result = SelfTrainResult(
        teacher=accuracy_with_ci(y_test, teacher_pred, seed=seed),
        student=accuracy_with_ci(y_test, student_pred, seed=seed),
        n_labeled=len(train), n_pool=len(pool), n_pseudo=int(keep.sum()), threshold=threshold,
        temperature=temperature, split=split_note,
    )
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "selftrain.json", json.dumps(asdict(result), indent=1, default=float))
    return result

