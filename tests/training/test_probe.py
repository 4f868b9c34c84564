"""The online linear probe callback: it learns from the embeddings of real SimCLR training on digits and logs
``probe_acc``, is no part of the module's optimiser, and its weights and optimiser state go into the run's
checkpoints and come back on resume."""

from __future__ import annotations

import copy
import shutil

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from selfsup.data import Splits
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality
from selfsup.modalities.image import encoder_config
from selfsup.recipe import make_recipe
from selfsup.training.module import PretrainModule
from selfsup.training.probe import OnlineProbe
from selfsup.workflows.pretrain import pretrain, resume_recipe

SMALL = {"hidden_dim": 32, "projection_dim": 16}


def _module(digits: Splits) -> PretrainModule:
    config = encoder_config("small_cnn", digits, 8)
    method = build_method("simclr", build_encoder(config), SMALL)
    views = get_modality("image").make_views(method.views, digits, config, dict(digits.view_defaults))
    return PretrainModule(method, views, lr=1e-3, weight_decay=0.0, warmup_fraction=0.0)


def _trainer(max_steps: int, probe: OnlineProbe, **kw) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        callbacks=[probe],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **({"logger": False} | kw),
    )


def _loaders(digits: Splits) -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(digits.train, batch_size=64, shuffle=True, drop_last=True),
        DataLoader(digits.test, batch_size=256),
    )


def _state(probe: OnlineProbe) -> dict:
    return copy.deepcopy(probe.state_dict())


def _assert_same_state(a: dict, b: dict) -> None:
    for key in ("weight", "bias"):
        assert torch.equal(a["probe"][key], b["probe"][key]), key
    torch.testing.assert_close(a["optimizer"]["state"], b["optimizer"]["state"], rtol=0, atol=0)
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


def test_the_probe_learns_from_the_training_embeddings_and_logs_its_accuracy(digits, tmp_path) -> None:
    torch.manual_seed(0)
    module = _module(digits)
    probe = OnlineProbe(module.method.encoder.embed_dim, 10, lr=1e-2)
    start = _state(probe)
    train, val = _loaders(digits)
    trainer = _trainer(30, probe, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=1)
    trainer.fit(module, train, val)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    losses = metrics["probe_loss"].dropna().to_numpy()
    assert len(losses) == 30  # every step
    assert losses[-5:].mean() < losses[:5].mean() - 0.2, losses
    assert not torch.equal(probe.probe.weight, start["probe"]["weight"])
    assert probe.optimizer.state[probe.probe.weight]["step"] == 30
    accuracy = metrics["probe_acc"].dropna().to_numpy()
    assert len(accuracy) == 1 and accuracy[0] > 0.2  # at the end of the epoch (21 steps), above chance (0.1)
    assert not any(name.startswith("probe") for name, _ in module.named_parameters())


def test_unlabeled_samples_do_not_train_the_probe(digits) -> None:
    """Replayed source samples carry label -1: a batch of only those leaves the probe as it was."""
    torch.manual_seed(0)
    module = _module(digits)
    probe = OnlineProbe(module.method.encoder.embed_dim, 10)
    start = _state(probe)
    x = digits.train.float_samples()[:64]
    unlabeled = torch.utils.data.TensorDataset(x, torch.full((len(x),), -1))
    _trainer(2, probe).fit(module, DataLoader(unlabeled, batch_size=32))
    _assert_same_state(_state(probe), start)


def test_state_dict_round_trips_into_a_fresh_probe(digits) -> None:
    torch.manual_seed(0)
    module = _module(digits)
    probe = OnlineProbe(module.method.encoder.embed_dim, 10)
    _trainer(3, probe).fit(module, _loaders(digits)[0])
    saved = _state(probe)
    fresh = OnlineProbe(module.method.encoder.embed_dim, 10)
    assert not torch.equal(fresh.probe.weight, probe.probe.weight)
    fresh.load_state_dict(copy.deepcopy(saved))
    _assert_same_state(_state(fresh), saved)
    assert fresh.optimizer.state[fresh.probe.weight]["step"] == 3


def test_a_resumed_fit_restores_the_probe_from_the_checkpoint(digits, tmp_path) -> None:
    """A fresh probe (other weights, no optimiser state) resumed from a checkpoint holds the checkpoint's probe;
    trained on from there, its optimiser counts on from the checkpoint's steps."""
    torch.manual_seed(0)
    train, _ = _loaders(digits)
    probe = OnlineProbe(_module(digits).method.encoder.embed_dim, 10)
    trainer = _trainer(4, probe)
    trainer.fit(_module(digits), train)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["callbacks"]["OnlineProbe"]
    _assert_same_state(saved, _state(probe))

    fresh = OnlineProbe(probe.probe.in_features, 10)
    _trainer(4, fresh).fit(_module(digits), train, ckpt_path=path)  # at its end already: restores, trains nothing
    _assert_same_state(_state(fresh), saved)
    _trainer(6, fresh).fit(_module(digits), train, ckpt_path=path)
    assert fresh.optimizer.state[fresh.probe.weight]["step"] == 6


def test_pretrain_checkpoints_the_probe_and_a_resumed_run_continues_it(tmp_path) -> None:
    """Through the workflow: the probe is a callback of the run (not in the module or its optimiser), its state is in
    every checkpoint, ``probe_acc`` is in the metrics, and ``--resume`` goes on with the checkpoint's probe; an
    older checkpoint with the probe in the module is refused in one line."""
    out = tmp_path / "run"
    recipe = make_recipe(
        data="builtin:digits",
        batch_size=256,  # 4 steps an epoch: the probe is scored at step 4
        image_size=8,
        max_steps=4,
        checkpoint_every_steps=2,
        method_args=SMALL,
        out=str(out),
    )
    pretrain(recipe, progress=False)
    previous = torch.load(out / "checkpoints" / "previous.ckpt", weights_only=True)
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("probe" in key for key in last["state_dict"])
    assert len(last["optimizer_states"][0]["param_groups"]) == 4  # encoder and heads, decayed or not: no probe
    steps = [c["callbacks"]["OnlineProbe"]["optimizer"]["state"][0]["step"] for c in (previous, last)]
    assert steps == [2, 4]  # the probe's update of the step the checkpoint is written at is in it
    assert not torch.equal(
        previous["callbacks"]["OnlineProbe"]["probe"]["weight"], last["callbacks"]["OnlineProbe"]["probe"]["weight"]
    )
    assert "probe_acc" in pd.read_csv(out / "csv" / "metrics.csv").columns

    pretrain(resume_recipe(out, max_steps=6), resume=True, progress=False)
    resumed = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["OnlineProbe"]
    assert resumed["optimizer"]["state"][0]["step"] == 6  # 4 restored + 2 (a fresh probe would count 2)

    # a checkpoint of an older selfsup: the probe in the module and in its optimiser, which cannot be resumed
    old = tmp_path / "old"
    shutil.copytree(out, old)
    checkpoint = torch.load(old / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"] |= {"probe.weight": torch.zeros(10, 64), "probe.bias": torch.zeros(10)}
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    groups.append(groups[-1] | {"params": [sum(len(g["params"]) for g in groups) + i for i in range(2)]})
    del checkpoint["callbacks"]
    torch.save(checkpoint, old / "checkpoints" / "last.ckpt")
    with pytest.raises(SelfsupError, match="holds optimiser state of another shape"):
        pretrain(resume_recipe(old, max_steps=8), resume=True, progress=False)
