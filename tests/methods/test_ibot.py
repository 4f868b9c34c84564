"""iBOT's masked-patch loss in ``dino``/``dinov2`` (Zhou et al. 2022; Oquab et al. 2023): the term the method adds
is the loss function on its own heads' outputs at the masked tokens, it is on by default in ``dinov2`` for token
encoders only, and a few steps on real digits lower it and move the encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selfsup.data import DataOptions
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.losses import dino_loss, ibot_patch_loss, sinkhorn_knopp
from selfsup.methods import METHODS, build_method
from selfsup.methods.masking import ibot_masks
from selfsup.modalities import get_modality

HEAD = {"prototypes": 32, "hidden_dim": 32, "bottleneck_dim": 16, "momentum": 1.0}


def _vit(digits) -> torch.nn.Module:
    torch.manual_seed(0)
    args = {"embed_dim": 32, "depth": 1, "heads": 4, "mlp_dim": 64}
    return build_encoder(get_modality("image").encoder_config("vit", digits, DataOptions(), args))


def _views(digits) -> list[torch.Tensor]:
    x = digits.train.float_samples()[:16]
    return [x, x.flip(-1)]  # two global crops, no local ones: every term of the loss is still there


@pytest.mark.usefixtures("one_thread")
def test_ibot_term_is_the_patch_loss_at_the_masked_tokens(digits) -> None:
    method = build_method("dino", _vit(digits), HEAD | {"ibot_weight": 0.5, "ibot_mask_probability": 1.0})
    with torch.no_grad():  # the [MASK] token starts at zero (DINOv2); make it matter
        method.mask_token.normal_()
    views = _views(digits)
    torch.manual_seed(1)
    out = method.training_loss(views)
    g = torch.cat(views)
    torch.manual_seed(1)  # the masks are the first thing training_loss draws
    mask = ibot_masks(32, (4, 4), True, (0.1, 0.5), 1.0)
    assert mask.sum(dim=1).min() >= 1  # every crop masked at probability 1
    with torch.no_grad():
        run = method.encoder.run(g, mask=mask, mask_token=method.mask_token)
        teacher = method.teacher[0].run(g)
        patch = ibot_patch_loss(
            method.patch_head(run.tokens[mask]), F.softmax(method.patch_teacher(teacher.tokens[mask]) / 0.04, -1), mask
        )
        student, targets = list(method.head(run.pooled).chunk(2)), list(method.teacher[1](teacher.pooled).chunk(2))
        expected = dino_loss(student, targets, torch.zeros(1, 32)) + 0.5 * patch
    assert out.logs["ibot"].item() == pytest.approx(patch.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert method.patch_center.abs().sum() > 0  # its own running patch centre moved
    out.loss.backward()
    assert method.mask_token.grad is not None and method.mask_token.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.patch_teacher.parameters())


@pytest.mark.usefixtures("one_thread")
def test_dinov2_ibot_uses_sinkhorn_and_trains_on_digits(digits) -> None:
    """A fixed objective (fixed teacher, temperature and masks, reseeded each step): a few AdamW steps lower the
    loss and its iBOT term, and change the encoder."""
    method = build_method("dinov2", _vit(digits), HEAD | {"teacher_temperature_warmup": 0.0})
    assert method.ibot and method.config.ibot_weight == 1.0
    views = _views(digits)
    torch.manual_seed(1)
    first = method.training_loss(views)
    g = torch.cat(views)
    torch.manual_seed(1)
    mask = ibot_masks(32, (4, 4), True, (0.1, 0.5), 0.5)
    assert int((mask.sum(dim=1) > 0).sum()) == 16  # half the global crops masked
    with torch.no_grad():
        run = method.encoder.run(g, mask=mask, mask_token=method.mask_token)
        target = method.patch_teacher(method.teacher[0].run(g).tokens[mask])
        probs = sinkhorn_knopp(target, 0.07, iterations=3)
        patch = ibot_patch_loss(method.patch_head(run.tokens[mask]), probs, mask)
    assert first.logs["ibot"].item() == pytest.approx(patch.item(), rel=1e-5)
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses, patches = [], []
    for _ in range(8):
        torch.manual_seed(1)
        out = method.training_loss(views)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end(0.0)
        losses.append(out.loss.item())
        patches.append(out.logs["ibot"].item())
    assert losses[-1] < losses[0] and patches[-1] < patches[0], (losses, patches)
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


def test_ibot_is_for_token_encoders_only(digits, small_encoder_config) -> None:
    cnn = build_method("dinov2", build_encoder(small_encoder_config), {"prototypes": 32})
    assert not cnn.ibot and not hasattr(cnn, "mask_token")  # dinov2's default weight: silently off
    with pytest.raises(SelfsupError, match="ibot_weight masks patch tokens, so it needs a token encoder"):
        build_method("dinov2", build_encoder(small_encoder_config), {"ibot_weight": 1.0})
    with pytest.raises(SelfsupError, match="token encoder"):
        build_method("dino", build_encoder(small_encoder_config), {"ibot_weight": 0.5})
    assert not build_method("dino", _vit(digits), HEAD).ibot  # dino: off unless asked
    shared = build_method("dinov2", _vit(digits), HEAD | {"ibot_separate_head": False})
    assert shared.patch_heads() == (shared.head, shared.teacher[1]) and not hasattr(shared, "patch_head")
    with pytest.raises(SelfsupError, match="ibot_mask_ratio"):
        build_method("dinov2", _vit(digits), {"ibot_mask_ratio": (0.5, 0.1)})
    assert "iBOT" in METHODS["dinov2"].summary and "token encoders only" in METHODS["dinov2"].summary


@pytest.mark.usefixtures("one_thread")
def test_a_step_with_no_crop_masked_still_reaches_every_trained_parameter(digits) -> None:
    """DDP refuses a step that leaves a trained parameter without a gradient: with no crop masked, the mask token
    and patch head join the loss at zero."""
    method = build_method("dino", _vit(digits), HEAD | {"ibot_weight": 1.0, "ibot_mask_probability": 0.0})
    out = method.training_loss(_views(digits))
    assert "ibot" not in out.logs
    out.loss.backward()
    assert method.mask_token.grad is not None and all(
        p.grad is not None for p in method.patch_head.parameters() if p.requires_grad
    )
