"""DINO's DINOv2 options (teacher-temperature warm-up, Sinkhorn-Knopp centring, KoLeo) and the ``dinov2`` method:
each one checked against the loss functions it should combine, on real digits."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.data import DataOptions
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.losses import dino_cross_entropy, dino_loss, gram_loss, koleo_loss, sinkhorn_knopp
from selfsup.methods import METHODS, build_method
from selfsup.methods.dino import DINOConfig, teacher_temperature
from selfsup.modalities import get_modality
from selfsup.modalities.image_views import ImageViews

HEAD = {"prototypes": 32, "hidden_dim": 32, "bottleneck_dim": 16, "momentum": 1.0}


def test_teacher_temperature_rises_linearly_over_the_warmup_fraction() -> None:
    cfg = DINOConfig(teacher_temperature=0.07, warmup_teacher_temperature=0.04, teacher_temperature_warmup=0.3)
    # 0.04 + (p / 0.3) * 0.03 during warm-up, then 0.07
    for progress, expected in [(0.0, 0.04), (0.1, 0.05), (0.15, 0.055), (0.3, 0.07), (0.9, 0.07)]:
        assert math.isclose(teacher_temperature(cfg, progress), expected, rel_tol=1e-9)
    assert teacher_temperature(DINOConfig(), 0.0) == 0.04  # DINO's default: no warm-up


def _global_views(method, digits) -> list[torch.Tensor]:
    views = ImageViews(method.views, 16, 1)(digits.train.float_samples()[:16], torch.Generator().manual_seed(0))
    return views[:2]  # the two global crops: enough for every loss term here


def _outputs(method, views: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The student's features and logits and the teacher's logits, computed as DINO does."""
    g = torch.cat(views)
    h = method.encoder(g)
    with torch.no_grad():
        return h, list(method.head(h).chunk(2)), list(method.teacher(g).chunk(2))


def test_dino_uses_the_warmed_up_teacher_temperature(digits, small_encoder_config) -> None:
    torch.manual_seed(0)
    args = HEAD | {"teacher_temperature": 0.08, "teacher_temperature_warmup": 0.5}
    method = build_method("dino", build_encoder(small_encoder_config), args)
    views = _global_views(method, digits)
    method.on_train_batch_end(progress=0.25)  # halfway through warm-up: 0.04 + 0.5 * 0.04 = 0.06
    out = method.training_loss(views)
    assert out.logs["teacher_temperature"] == pytest.approx(0.06)
    _, student, teacher = _outputs(method, views)
    expected = dino_loss(student, teacher, torch.zeros(1, 32), 0.1, 0.06)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_sinkhorn_centring_replaces_the_running_centre(digits, small_encoder_config) -> None:
    torch.manual_seed(0)
    method = build_method("dino", build_encoder(small_encoder_config), HEAD | {"centering": "sinkhorn"})
    views = _global_views(method, digits)
    out = method.training_loss(views)
    _, student, teacher = _outputs(method, views)
    probs = sinkhorn_knopp(torch.cat(teacher), 0.04, iterations=3).chunk(2)
    assert out.loss.item() == pytest.approx(dino_cross_entropy(student, list(probs)).item(), rel=1e-5)
    assert not method.center.any()  # no running centre under Sinkhorn
    assert out.loss.item() != pytest.approx(dino_loss(student, teacher, torch.zeros(1, 32)).item(), rel=1e-3)


def test_koleo_is_added_per_global_crop_with_its_weight(digits, small_encoder_config) -> None:
    torch.manual_seed(0)
    method = build_method("dino", build_encoder(small_encoder_config), HEAD | {"koleo_weight": 0.1})
    views = _global_views(method, digits)
    with_koleo = method.training_loss(views)
    h, student, teacher = _outputs(method, views)
    koleo = sum(koleo_loss(crop).item() for crop in h.chunk(2))
    assert with_koleo.logs["koleo"].item() == pytest.approx(koleo, rel=1e-5)
    plain = dino_loss(student, teacher, torch.zeros(1, 32)).item()
    assert with_koleo.loss.item() == pytest.approx(plain + 0.1 * koleo, rel=1e-5)
    with_koleo.loss.backward()  # the regulariser's gradient reaches the encoder
    assert all(p.grad is not None for p in method.encoder.parameters() if p.requires_grad)


def test_dinov2_turns_the_options_on_and_says_what_it_leaves_out(small_encoder_config) -> None:
    method = build_method("dinov2", build_encoder(small_encoder_config), {"prototypes": 32})
    cfg = method.config
    assert (cfg.centering, cfg.koleo_weight, cfg.sinkhorn_iterations) == ("sinkhorn", 0.1, 3)
    assert (cfg.warmup_teacher_temperature, cfg.teacher_temperature, cfg.teacher_temperature_warmup) == (
        0.04,
        0.07,
        0.3,
    )
    assert "iBOT" in METHODS["dinov2"].summary and "Gram" in METHODS["dinov2"].summary
    with pytest.raises(SelfsupError, match="centering"):
        build_method("dinov2", build_encoder(small_encoder_config), {"centering": "mean"})


def _vit(digits) -> torch.nn.Module:
    torch.manual_seed(0)
    module = get_modality("image")
    args = {"embed_dim": 32, "depth": 1, "heads": 4, "mlp_dim": 64}
    return build_encoder(module.encoder_config("vit", digits, DataOptions(), args))


@pytest.mark.usefixtures("one_thread")
def test_gram_anchoring_snapshots_the_ema_teacher_at_gram_start_and_adds_its_loss(digits) -> None:
    method = build_method("dino", _vit(digits), HEAD | {"gram_weight": 2.0, "gram_start": 0.5})
    x = digits.train.float_samples()[:16]
    views = [x, x.flip(-1)]
    assert "gram" not in method.training_loss(views).logs  # before gram_start: DINO alone
    with torch.no_grad():  # the student moves away from the (momentum 1, so still) EMA teacher
        for p in method.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    method.on_train_batch_end(progress=0.25)
    assert not method.gram_ready
    method.on_train_batch_end(progress=0.5)
    assert method.gram_ready
    teacher_encoder = method.teacher[0].state_dict()
    assert all(torch.equal(v, teacher_encoder[k]) for k, v in method.gram_teacher.state_dict().items())
    center = method.center.clone()
    out = method.training_loss(views)
    g = torch.cat(views)
    with torch.no_grad():
        run = method.encoder.run(g)
        anchoring = gram_loss(run.tokens, method.gram_teacher.run(g).tokens, run.valid)
        student, teacher = list(method.head(run.pooled).chunk(2)), list(method.teacher(g).chunk(2))
        expected = dino_loss(student, teacher, center) + 2.0 * anchoring
    assert anchoring.item() > 0
    assert out.logs["gram"].item() == pytest.approx(anchoring.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gram_anchoring_needs_a_token_encoder(small_encoder_config) -> None:
    with pytest.raises(SelfsupError, match="token encoder"):
        build_method("dino", build_encoder(small_encoder_config), {"gram_weight": 1.0})
