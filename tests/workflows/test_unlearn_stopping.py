"""``--stop at-heldout-loss``: unlearning stops once the forget set is scored like samples the model never trained
on. Hand-computed losses on a 2x2 linear classifier; then real digits (30 training images per class, a small CNN
fine-tuned on them, 10 of its 3s forgotten, the fine-tuning's own validation part as the held-out part)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.checkpoint import save_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.encoders import build_encoder
from selfsup.evaluation.finetune import FinetuneOptions, logits_of, train_classifier, validation_split
from selfsup.sources import load_builtin
from selfsup.workflows.forget_sets import UnlearnOptions
from selfsup.workflows.unlearn import unlearn_with_stop
from selfsup.workflows.unlearn_stopping import HeldoutStop, bisect_last_step, mean_loss, member_auc, snapshot


def _linear(weight: list[list[float]]) -> nn.Module:
    layer = nn.Linear(2, 2, bias=False)
    layer.weight.data = torch.tensor(weight)
    return nn.Sequential(nn.Identity(), layer)


def test_mean_loss_and_the_rule_by_hand() -> None:
    forget_x, forget_y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    heldout_x, heldout_y = torch.tensor([[0.0, 1.0]]), torch.tensor([1])
    stop = HeldoutStop(forget_x, forget_y, heldout_x, heldout_y)
    trained = _linear([[2.0, 0.0], [0.0, 1.0]])  # forget logits (2, 0); held-out logits (0, 1)
    assert mean_loss(trained, forget_x, forget_y) == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    assert mean_loss(trained, heldout_x, heldout_y) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert mean_loss(trained, forget_x, None) == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)  # -log max p
    assert member_auc(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 3.0])) == 0.875  # (3 below + 1 tie / 2) / 4
    assert not stop.reached(trained, 0)  # 0.127 < 0.313: the forget sample is still scored like a member
    forgotten = _linear([[0.0, 0.0], [0.0, 1.0]])  # forget logits (0, 0): log 2 = 0.693 >= 0.313
    assert stop.reached(forgotten, 7)
    assert [t["step"] for t in stop.trace] == [0, 7] and [t["auc"] for t in stop.trace] == [1.0, 0.0]
    assert stop.trace[1]["forget_loss"] == pytest.approx(math.log(2), rel=1e-6)
    # the step from `trained` to `forgotten` overshot: along it the forget logits are (2 - 2t, 0), whose loss
    # reaches the held-out one, log(1 + e^-1), at t = 1/2; bisection puts the weights there
    before = snapshot(trained)
    t = bisect_last_step(forgotten, before, stop)
    assert t == pytest.approx(0.5, abs=1 / 256) and stop.trace[-1]["step"] == -1
    assert forgotten[1].weight[0, 0].item() == pytest.approx(2 - 2 * t) and forgotten[1].weight[1, 1].item() == 1


@pytest.fixture(scope="module")
def digits_model() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps on busy shared cores
    splits = load_builtin("digits")
    y_all = splits.train.y.numpy()
    train = splits.train.subset(np.concatenate([np.flatnonzero(y_all == c)[:30] for c in range(10)]))
    from selfsup.modalities.image import encoder_config

    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", splits, 8))
    encoder.preprocessing = splits.preprocessing
    x, y = train.float_samples(), train.y
    classifier, _ = train_classifier(encoder, x, y, y.numpy(), 10, options=FinetuneOptions(epochs=8), seed=0)
    forget = np.flatnonzero(y.numpy() == 3)[:10]
    _, val = validation_split(y.numpy(), FinetuneOptions().val_fraction, 0)  # never trained on
    heldout = np.setdiff1d(val, forget)
    retain = np.setdiff1d(np.arange(len(y)), np.r_[forget, heldout])
    yield {"classifier": classifier, "encoder": encoder, "x": x, "y": y, "parts": (forget, retain, heldout)}
    torch.set_num_threads(threads)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits_of(model, x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("method", ["npo", "gradient-ascent"])
def test_stopping_at_the_heldout_loss_forgets_without_destroying(digits_model, method) -> None:
    x, y, original = digits_model["x"], digits_model["y"], digits_model["classifier"]
    forget, retain, heldout = digits_model["parts"]
    args = (original, method, x[forget], x[retain], y[forget], y[retain])
    stopped, record = unlearn_with_stop(*args, UnlearnOptions(steps=50), 0, x[heldout], y[heldout])
    fixed, fixed_record = unlearn_with_stop(*args, UnlearnOptions(steps=50, stop="steps"), 0, x[heldout], y[heldout])
    assert fixed_record["step"] == 50 and "trace" not in fixed_record
    # it stopped inside the first step after which the attack could no longer tell forget from held-out losses
    trace = record["trace"]
    assert 0 < record["step"] < 50 and [t["step"] for t in trace] == [*range(record["step"] + 1), -1]
    assert trace[0]["auc"] > 0.5 and trace[0]["forget_loss"] < trace[0]["heldout_loss"]  # members, by their loss
    assert all(t["auc"] > 0.5 for t in trace[:-2]) and trace[-2]["auc"] <= 0.5
    assert 0.4 <= trace[-1]["auc"] <= 0.5 and 0 < record["last_step_fraction"] <= 1
    assert mean_loss(stopped, x[forget], y[forget]) == pytest.approx(trace[-1]["forget_loss"], rel=1e-4)
    assert trace[-1]["forget_loss"] > 1.5 * trace[0]["forget_loss"]
    # digits generalise (a retrained model gets these 3s right): the forget set is not driven to 0 as fixed
    # steps drive it, and the retain set keeps what fixed steps lose
    assert _accuracy(fixed, x[forget], y[forget]) <= 0.1
    assert _accuracy(stopped, x[forget], y[forget]) >= 0.5
    assert _accuracy(stopped, x[retain], y[retain]) >= _accuracy(fixed, x[retain], y[retain])
    assert _accuracy(stopped, x[retain], y[retain]) >= _accuracy(original, x[retain], y[retain]) - 0.05


def test_label_agnostic_stops_on_confidence_on_a_classifier_and_runs_fixed_steps_on_an_encoder(digits_model) -> None:
    x, classifier = digits_model["x"], digits_model["classifier"]
    forget, retain, heldout = digits_model["parts"]
    _, record = unlearn_with_stop(classifier, "label-agnostic", x[forget], x[retain], None, None, None, 0, x[heldout])
    assert record["loss"].startswith("-log max softmax") and record["step"] < 50
    assert record["trace"][0]["auc"] > 0.5 >= record["trace"][-1]["auc"]
    _, record = unlearn_with_stop(
        digits_model["encoder"], "label-agnostic", x[forget], x[retain], options=UnlearnOptions(steps=3), x_heldout=x
    )
    assert record["step"] == 3 and "encoder" in record["reason"]


def test_unlearn_uses_the_finetuning_validation_part_and_refuses_a_bad_stop(tmp_path, digits_model, capsys) -> None:
    save_encoder(digits_model["encoder"], tmp_path / "encoder")
    ids = load_builtin("digits").train.ids
    (tmp_path / "forget.csv").write_text("id\n" + "".join(f"{i}\n" for i in ids[:20]))
    argv = ["unlearn", "--model", str(tmp_path / "encoder"), "--data", "builtin:digits"]
    argv += ["--forget", str(tmp_path / "forget.csv"), "--finetune-epochs", "1", "--no-retrain", "--steps", "20"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "stopped after" in capsys.readouterr().out
    stopping = json.loads((tmp_path / "out" / "audit.json").read_text())["stopping"]
    assert stopping["rule"] == "at-heldout-loss" and stopping["heldout"].startswith("the fine-tuning's validation")
    assert stopping["trace"][-1]["auc"] <= 0.5 or stopping["step"] == 20
    assert stopping["heldout_samples"] > 100
    assert main([*argv, "--stop", "never", "--out", str(tmp_path / "bad")]) == EXIT_USER_ERROR
    assert "at-heldout-loss" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*argv, "--heldout", str(tmp_path / "forget.csv"), "--out", str(tmp_path / "bad")]) == EXIT_USER_ERROR
    assert "fine-tuning's own validation part" in capsys.readouterr().err and not (tmp_path / "bad").exists()
