"""The training module (with the embedding monitors' callback) reports representation collapse as a warning, and
decays only the weights of 2+ dimensions."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality
from selfsup.training.callbacks import CollapseWarning, EmbeddingMonitors
from selfsup.training.module import PretrainModule, decays


def _fit(method, x: torch.Tensor, steps: int) -> PretrainModule:
    splits = load_builtin("breast_cancer")
    views = get_modality("tabular").make_views(method.views, splits, method.encoder.config, {})  # [x] itself
    module = PretrainModule(method, views, lr=1e-3, weight_decay=0.0, warmup_fraction=0.0)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=32)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EmbeddingMonitors()],
    )
    trainer.fit(module, loader)
    return module


def _encoder():
    splits = load_builtin("breast_cancer")
    module = get_modality("tabular")
    config = module.encoder_config(
        "ft_transformer", splits, DataOptions(), {"d_token": 16, "n_layers": 1, "n_heads": 2}
    )
    return build_encoder(config), splits.train.float_samples()[:64]


def test_collapsed_embeddings_warn_once() -> None:
    torch.manual_seed(0)
    encoder, x = _encoder()
    with torch.no_grad():  # every row maps to the same point: the final norm's output is its bias
        encoder.norm.weight.zero_()
        encoder.norm.bias.fill_(1.0)
    method = build_method("mae", encoder, {"decoder_dim": 16, "decoder_depth": 1})
    with pytest.warns(CollapseWarning, match="representation collapse") as record:
        _fit(method, x, steps=2)
    assert sum(issubclass(w.category, CollapseWarning) for w in record) == 1


def test_healthy_embeddings_do_not_warn(recwarn) -> None:
    torch.manual_seed(0)
    encoder, x = _encoder()
    _fit(build_method("mae", encoder, {"decoder_dim": 16, "decoder_depth": 1}), x, steps=2)
    assert not [w for w in recwarn if issubclass(w.category, CollapseWarning)]


def _optimised_module(
    config: dict, weight_decay: float, **kw
) -> tuple[PretrainModule, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """SimCLR on the default digits CNN, and the optimiser and schedule it configures."""
    torch.manual_seed(0)
    method = build_method("simclr", build_encoder(config), {})
    module = PretrainModule(method, torch.nn.Identity(), lr=0.01, weight_decay=weight_decay, warmup_fraction=0.0, **kw)
    module._total_steps = lambda: 10  # no trainer attached
    configured = module.configure_optimizers()
    return module, configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def test_weight_decay_only_on_weights_of_two_or_more_dimensions(small_encoder_config: dict) -> None:
    module, optimizer, _ = _optimised_module(small_encoder_config, weight_decay=0.05)
    decay_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in decay_of, "a parameter is in two groups"
            decay_of[id(p)] = group["weight_decay"]
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert set(decay_of) == {id(p) for p in trainable}  # every trainable parameter exactly once (no probe: a callback)
    for name, p in module.named_parameters():
        expected = 0.0 if p.ndim < 2 else 0.05
        assert decay_of[id(p)] == expected, name
    shapes = {p.ndim for p in module.method.encoder.parameters()}
    assert 4 in shapes and 1 in shapes  # the CNN has both kernels and batch-norm weights/biases
    assert decays(torch.zeros(3, 3)) and not decays(torch.zeros(3)) and not decays(torch.zeros(()))  # a scalar


def test_adamw_step_with_zero_gradient_shrinks_only_matrices(small_encoder_config: dict) -> None:
    """With a zero gradient AdamW's update is 0, so a step only decays: ``w <- w * (1 - lr * wd)``."""
    module, optimizer, _ = _optimised_module(small_encoder_config, weight_decay=0.1)
    backbone = module.method.encoder.backbone.features
    kernel, norm_weight, norm_bias = backbone[0][0].weight, backbone[0][1].weight, backbone[0][1].bias
    head_weight, head_bias = module.method.projector[3].weight, module.method.projector[3].bias
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    assert all(g["lr"] == 0.01 for g in optimizer.param_groups)  # no warm-up: the full LR at step 0
    optimizer.step()
    for name, p in module.named_parameters():
        if p is kernel or p is head_weight:
            torch.testing.assert_close(p.detach(), before[name] * (1 - 0.01 * 0.1), rtol=1e-6, atol=0)
            assert p.detach().abs().sum() < before[name].abs().sum()
        if p is norm_weight or p is norm_bias or p is head_bias:
            assert torch.equal(p.detach(), before[name]), name
    changed = [name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed and all(module.get_parameter(name).ndim >= 2 for name in changed)


def test_head_warm_up_schedule_follows_both_encoder_groups(small_encoder_config: dict) -> None:
    """LambdaLR maps one multiplier per group in order: both encoder groups (decayed and not) wait for the
    unfreezing; the heads' groups start at once."""
    module, optimizer, schedule = _optimised_module(small_encoder_config, weight_decay=0.05, freeze_encoder_steps=3)
    encoder_ids = {id(p) for p in module.method.encoder.parameters()}
    assert len(optimizer.param_groups) == 4
    for step in range(5):
        for group in optimizer.param_groups:
            in_encoder = {id(p) in encoder_ids for p in group["params"]}
            assert len(in_encoder) == 1  # a group is all encoder or all heads
            assert (group["lr"] == 0.0) == (in_encoder == {True} and step < 3), (step, group["weight_decay"])
        optimizer.step()
        schedule.step()


def test_warmup_steps_set_the_warmup_length_instead_of_its_fraction(small_encoder_config: dict) -> None:
    """10 steps, constant schedule: --warmup-steps 4 warms up over 4 steps (lr x 1/4, 2/4, 3/4, 4/4, then 1),
    whatever the fraction says; a warm-up longer than the run ends with it."""
    _, optimizer, schedule = _optimised_module(small_encoder_config, 0.0, warmup_steps=4, schedule="constant")
    seen = []
    for _ in range(6):
        seen.append(round(optimizer.param_groups[0]["lr"] / 0.01, 6))
        optimizer.step()
        schedule.step()
    assert seen == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    _, optimizer, _ = _optimised_module(small_encoder_config, 0.0, warmup_steps=40, schedule="constant")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 10)  # clipped to the run's 10 steps


def test_warmup_flags_are_one_or_the_other() -> None:
    from selfsup.errors import SelfsupError
    from selfsup.recipe import make_recipe

    assert make_recipe(data="x", warmup_steps=5).warmup_steps == 5
    with pytest.raises(SelfsupError, match="give --warmup-steps or --warmup-fraction, not both"):
        make_recipe(data="x", warmup_steps=5, warmup_fraction=0.1)
    with pytest.raises(SelfsupError, match="warmup_fraction"):
        make_recipe(data="x", warmup_fraction=1.5)


def test_under_the_infinite_schedule_an_ema_teacher_keeps_its_base_momentum(small_encoder_config: dict) -> None:
    method = build_method("byol", build_encoder(small_encoder_config), {"momentum": 0.9})
    module = PretrainModule(
        method, torch.nn.Identity(), lr=1e-3, weight_decay=0.0, warmup_fraction=0.0, schedule="infinite"
    )
    online = torch.nn.Sequential(method.encoder, method.projector)
    with torch.no_grad():
        for p in method.target.parameters():
            p.zero_()
    expected = [0.1 * p.detach().clone() for p in online.parameters()]  # 0.9 x 0 + 0.1 x online
    module.on_train_batch_end(None, None, 0)
    for got, want in zip(method.target.parameters(), expected):
        torch.testing.assert_close(got, want)


def test_several_processes_draw_their_own_views_and_one_keeps_the_runs_seed(small_encoder_config: dict) -> None:
    """``on_train_start`` reseeds each of several processes by (seed, rank, start step); one process keeps the
    generator as ``seed_everything`` left it, so one-device runs draw exactly as before. The trainer here is a
    stand-in for the three numbers the module reads of it."""
    from types import SimpleNamespace

    from selfsup.training.module import process_seed

    method = build_method("simclr", build_encoder(small_encoder_config), {})
    module = PretrainModule(method, torch.nn.Identity(), lr=1e-3, weight_decay=0.0, warmup_fraction=0.0, seed=7)
    draws = {}
    for world, rank, step in ((1, 0, 0), (2, 0, 0), (2, 1, 0), (2, 1, 40)):
        torch.manual_seed(7)
        module.trainer = SimpleNamespace(world_size=world, global_rank=rank, global_step=step)  # type: ignore[assignment]
        module.on_train_start()
        draws[world, rank, step] = torch.rand(4)
    torch.manual_seed(7)
    assert torch.equal(draws[1, 0, 0], torch.rand(4))  # one process: untouched
    assert len({tuple(d.tolist()) for d in draws.values()}) == 4  # each process, and a resume, its own draws
    assert process_seed(7, 1, 40) == process_seed(7, 1, 40)  # deterministic: a resume is reproducible
    assert process_seed(0, 1) != process_seed(1, 0)  # not seed + rank


def test_an_ema_teacher_moves_once_per_optimiser_step_when_batches_accumulate() -> None:
    """BYOL on breast_cancer, 4 batches of 32 accumulated 2 to a step: its teacher follows the student twice (once
    per optimiser step, as methods/base.py promises), not after every batch."""
    splits = load_builtin("breast_cancer")
    method = build_method("byol", _encoder()[0], {})
    updates: list[float] = []
    update = method.on_train_batch_end
    method.on_train_batch_end = lambda progress: (updates.append(progress), update(progress=progress))  # type: ignore[method-assign]
    views = get_modality("tabular").make_views(method.views, splits, method.encoder.config, {})
    module = PretrainModule(method, views, lr=1e-3, weight_decay=0.0, warmup_fraction=0.0)
    x = splits.train.x[:128]
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=32)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accumulate_grad_batches=2,
    )  # fmt: skip
    trainer.fit(module, loader)
    assert trainer.global_step == 2 and len(updates) == 2
