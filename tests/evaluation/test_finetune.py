"""Fine-tuning: known answers on separable data, which stages train, and the input encoder left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.encoders import build_encoder
from selfsup.encoders.image import image_encoder_config
from selfsup.errors import SelfsupError
from selfsup.evaluation.finetune import (
    FinetuneOptions,
    fine_tune,
    logits_of,
    stages,
    train_classifier,
    train_last,
    validation_split,
)


class TinyEncoder(nn.Sequential):
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, 4)) + 3 * np.eye(4)[y]
    return torch.as_tensor(x, dtype=torch.float32), y


def test_separable_data_reaches_full_accuracy_and_the_encoder_is_left_alone() -> None:
    torch.manual_seed(0)
    encoder = TinyEncoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    (x_train, y_train), (x_test, y_test) = _blobs(120, 0), _blobs(60, 1)
    pred, details = fine_tune(encoder, x_train, y_train, x_test, seed=0)
    assert (pred == y_test).all()
    assert details["n_val"] == 12 and 1 <= details["best_epoch"] <= details["epochs_run"]
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_soft_targets_are_learned_as_probabilities() -> None:
    """Cross-entropy against probabilities is lowest where the model predicts those probabilities: each blob's
    softmax approaches its soft target (which a hard-label fit, driving them to 0 and 1, would not)."""
    x, y = _blobs(150, 4)
    table = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.1, 0.6]])
    options = FinetuneOptions(epochs=60, patience=60, backbone_lr=1e-2, head_lr=5e-2)
    model, details = train_classifier(TinyEncoder(), x, table[y], y, 3, options=options, seed=0)
    probs = torch.softmax(logits_of(model, x), dim=1)
    for k in range(3):
        assert torch.allclose(probs[y == k].mean(0), table[k], atol=0.08)
    assert details["val_accuracy"] == 1.0  # each blob's top target class


def test_too_few_samples_to_hold_some_out_is_a_clear_error() -> None:
    x, y = _blobs(5, 5)  # 3 classes: 3 held out for validation would leave 2; 4 samples would leave 1
    with pytest.raises(SelfsupError, match="at least 2 left to train on"):
        fine_tune(TinyEncoder(), x[:4], y[:4], x, seed=0)
    with pytest.raises(ValueError, match="do not match"):
        train_classifier(TinyEncoder(), x, torch.zeros(5, 2), y, 3)


def test_labels_keep_their_values() -> None:
    (x_train, y_train), (x_test, y_test) = _blobs(90, 2), _blobs(30, 3)
    pred, _ = fine_tune(TinyEncoder(), x_train, y_train * 10 + 5, x_test, seed=0)
    assert set(np.unique(pred)) <= {5, 15, 25} and (pred == y_test * 10 + 5).mean() > 0.9


def test_last_n_stages_train_and_norms_join_the_stage_before() -> None:
    vit = build_encoder(image_encoder_config("vit", 1, 8, [0.5], [0.25], depth=3))
    names = [type(s).__name__ for s in stages(vit)]
    assert names == ["ImagePatchTokenizer", "TransformerBlock", "TransformerBlock", "ModuleList"]  # last: block+norm
    frozen, n_trained = train_last(vit, 1)
    assert n_trained == 1 and len(frozen) == 3
    assert all(p.requires_grad for p in [*vit.norm.parameters(), *vit.blocks[2].parameters()])
    assert not any(p.requires_grad for p in vit.blocks[1].parameters())
    assert not any(p.requires_grad for p in vit.tokenizer.parameters())

    encoder = TinyEncoder()
    assert [type(s).__name__ for s in stages(encoder)] == ["ModuleList", "Linear"]  # Linear+BatchNorm, Linear
    assert train_last(encoder, 5) == ([], 2) and train_last(encoder, None) == ([], 2)
    assert all(p.requires_grad for p in encoder.parameters())  # "more stages than there are" trains everything
    with pytest.raises(SelfsupError, match="0 or more"):
        train_last(encoder, -1)


def test_too_few_samples_for_a_validation_split() -> None:
    x, y = _blobs(3, 0)
    with pytest.raises(SelfsupError, match="validation split"):
        fine_tune(TinyEncoder(), x, y, x)


def test_bad_options_and_divergence_are_one_clear_line() -> None:
    from selfsup.evaluation.finetune import FinetuneOptions

    with pytest.raises(SelfsupError, match="at least 1"):
        FinetuneOptions(epochs=0)
    x, y = _blobs(60, 0)
    with pytest.raises(SelfsupError, match="diverged"):
        fine_tune(TinyEncoder(), x * float("nan"), y, x, options=FinetuneOptions(epochs=2))


def test_a_fixed_budget_runs_every_epoch_and_keeps_the_last_weights() -> None:
    """keep="last": every epoch runs, whatever the validation loss does (patience 1), and the final weights are kept."""
    x, y = _blobs(90, 0)
    with pytest.raises(SelfsupError, match="keeps the 'best' or the 'last' epoch, not 'first'"):
        FinetuneOptions(keep="first")
    fits = {}
    for epochs in (3, 4):
        options = FinetuneOptions(epochs=epochs, patience=1, keep="last", head_lr=1.0, backbone_lr=0.1, batch_size=16)
        fits[epochs] = train_classifier(TinyEncoder(), x, torch.as_tensor(y), y, 3, options=options, seed=0)
    model, details = fits[4]
    assert details["epochs_run"] == 4 and details["best_epoch"] == 4 and details["keep"] == "last"
    assert not torch.equal(model[1].weight, fits[3][0][1].weight)  # the fourth epoch's training is kept
    _, val = validation_split(y, 0.1, 0)
    loss = torch.nn.functional.cross_entropy(logits_of(model, x[val]), torch.as_tensor(y[val]))
    assert float(loss) == pytest.approx(details["val_loss"], rel=1e-5)  # reported: the last epoch's loss
