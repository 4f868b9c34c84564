"""Every method made for any modality trains a few steps on real digits: the loss falls, the weights change.

Methods made for one modality (SCARF, VIME, TS2Vec, CPC) are tested on their own data next to this file,
as are the masked methods (they need a token encoder; test_masked_methods.py covers every modality).
"""

from __future__ import annotations

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods import METHODS, build_method
from selfsup.modalities.image_views import ImageViews

# Small heads so the whole sweep stays fast on 2 CPU cores.
SMALL_HEADS = {
    "simclr": {"hidden_dim": 64, "projection_dim": 32},
    "mocov3": {"hidden_dim": 64, "projection_dim": 32},
    "byol": {"hidden_dim": 64, "projection_dim": 32},
    "simsiam": {"projection_dim": 64, "predictor_hidden_dim": 16},
    "dino": {"prototypes": 64, "hidden_dim": 64, "bottleneck_dim": 32},
    "dinov2": {"prototypes": 64, "hidden_dim": 64, "bottleneck_dim": 32},
    "barlow_twins": {"projection_dim": 64, "lambda_offdiag": 1 / 64},
    "vicreg": {"projection_dim": 64},
}


def test_every_method_for_any_modality_is_covered() -> None:
    any_modality = {
        name for name, cls in METHODS.items() if cls.modalities is None and not cls.needs_tokens and not cls.paired
    }
    assert any_modality == set(SMALL_HEADS)
    assert {name for name, cls in METHODS.items() if cls.paired} == {"clip"}  # tests/methods/test_clip.py
    assert {name for name, cls in METHODS.items() if cls.needs_tokens} == {
        "mae",
        "mfm",
        "data2vec",
        "jepa",
        "tjepa",  # JEPA's presets: tests/methods/test_jepa_variants.py
        "ecg_jepa",
        "sar_jepa",
        "cropmae",  # tests/methods/test_cropmae.py
        "tera",  # tests/methods/test_tera.py
    }


# DINO's target moves on purpose: centring removes the prototypes every sample shares, so from a random
# init its loss first rises. Holding the centre and teacher still makes its objective a fixed function
# that gradient descent must lower; the moving parts are tested in test_teacher_gets_no_gradient_and_follows_ema.
# DINOv2's Sinkhorn centring has no running state; its temperature warm-up would move the target, so it is held too.
FIXED_TARGET = {
    "dino": {"center_momentum": 1.0, "momentum": 1.0},
    "dinov2": {"momentum": 1.0, "teacher_temperature_warmup": 0.0},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL_HEADS))
def test_method_trains(name: str, digits, small_encoder_config) -> None:
    torch.manual_seed(0)
    args = SMALL_HEADS[name] | FIXED_TARGET.get(name, {})
    method = build_method(name, build_encoder(small_encoder_config), args)
    views_fn = ImageViews(method.views, 16, 1)
    x = digits.train.float_samples()[:64]
    generator = torch.Generator().manual_seed(0)
    views = views_fn(x, generator)  # a fixed batch of views: the objective must go down on it
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    steps = 25
    for step in range(steps):
        out = method.training_loss(views)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end(step / steps)
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert out.embedding.shape == (64, method.encoder.embed_dim)
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


@pytest.mark.parametrize("name", ["byol", "mocov3", "dino"])
def test_teacher_gets_no_gradient_and_follows_ema(name: str, digits, small_encoder_config) -> None:
    torch.manual_seed(0)
    method = build_method(name, build_encoder(small_encoder_config), SMALL_HEADS[name])
    teacher = {"byol": "target", "mocov3": "momentum_encoder", "dino": "teacher"}[name]
    teacher_params = list(getattr(method, teacher).parameters())
    assert not any(p.requires_grad for p in teacher_params)
    views = ImageViews(method.views, 16, 1)(digits.train.float_samples()[:16], torch.Generator().manual_seed(1))
    method.training_loss(views).loss.backward()
    assert all(p.grad is None for p in teacher_params)
    first_before = teacher_params[0].clone()
    student_first = next(method.encoder.parameters())
    with torch.no_grad():
        student_first.add_(1.0)
    method.on_train_batch_end(progress=0.0)
    momentum = method.config.momentum
    expected = momentum * first_before + (1 - momentum) * student_first
    assert torch.allclose(teacher_params[0], expected, atol=1e-6)


def test_unknown_method_suggests_closest(small_encoder_config) -> None:
    with pytest.raises(SelfsupError, match="Did you mean 'simclr'"):
        build_method("simclrr", build_encoder(small_encoder_config))


def test_bad_method_argument_is_named(small_encoder_config) -> None:
    with pytest.raises(SelfsupError, match="temprature"):
        build_method("simclr", build_encoder(small_encoder_config), {"temprature": 0.1})
