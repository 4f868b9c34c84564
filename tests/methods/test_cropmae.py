"""CropMAE on real digits: the loss is MAE's on the hidden patches of the second crop only (checked by hand),
the encoder sees the first crop whole and one visible patch of the second, the decoder reads the first crop,
and a few steps lower the loss and move the encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality

SMALL = {"decoder_dim": 32, "decoder_depth": 1}
pytestmark = pytest.mark.usefixtures("one_thread")


def setup(args: dict | None = None):
    splits = load_builtin("digits")
    module = get_modality("image")
    torch.manual_seed(0)
    config = module.encoder_config(
        "vit", splits, DataOptions(), {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}
    )
    method = build_method("cropmae", build_encoder(config), SMALL | (args or {}))
    view_args = splits.view_defaults | method.view_defaults
    views = module.make_views(method.views, splits, config, view_args)
    x = splits.train.float_samples()[:16]
    first, second = views(x, torch.Generator().manual_seed(0))
    return method, config, first, second


def patches_by_hand(images: torch.Tensor, config: dict) -> torch.Tensor:
    """``(B, 16, 16)`` normalised 4 x 4 patches of 16 x 16 one-channel images, row-major."""
    z = (images[:, 0] - config["mean"][0]) / config["std"][0]
    return z.reshape(len(z), 4, 4, 4, 4).permute(0, 1, 3, 2, 4).reshape(len(z), 16, 16)


def test_loss_is_on_the_hidden_patches_of_the_second_crop_only() -> None:
    method, config, first, second = setup({"norm_target": False})
    assert method.encoder.tokenizer.grid(second) == (4, 4)
    torch.nn.init.zeros_(method.decoder.head.weight)  # predictions are 0: the loss is the targets' mean square
    torch.nn.init.zeros_(method.decoder.head.bias)
    batch = len(second)
    keep = torch.full((batch, 1), 5)
    masked = torch.tensor([i for i in range(16) if i != 5]).expand(batch, 15)
    loss, _ = method.reconstruct(first, second, keep, masked)
    hand = patches_by_hand(second, config)[:, masked[0]].square().mean()
    torch.testing.assert_close(loss, hand)
    # the visible patch is no target: changing it (and the first crop) leaves the loss as it was
    changed = second.clone()
    changed[..., 4:8, 4:8] = 5.0  # patch 5: row 1, column 1
    loss_changed, _ = method.reconstruct(first.flip(0), changed, keep, masked)
    torch.testing.assert_close(loss_changed, hand)


def test_encoder_sees_one_patch_of_the_second_crop_and_the_decoder_reads_the_first() -> None:
    method, _, first, second = setup()
    encoder = method.encoder
    seen: list[torch.Size] = []
    encoder.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    torch.manual_seed(1)
    out = method.training_loss([first, second])
    visible = 16 - min(max(1, round(0.985 * 16)), 15)  # 98.5% of 16 tokens hidden: 1 visible
    assert visible == 1
    assert seen == [torch.Size((16, 16, 32)), torch.Size((16, 1, 32))]
    assert out.embedding.shape == (16, 32)
    keep, masked = torch.zeros(16, 1, dtype=torch.long), torch.arange(1, 16).expand(16, 15)
    a, _ = method.reconstruct(first, second, keep, masked)
    b, _ = method.reconstruct(torch.rand_like(first), second, keep, masked)
    assert not torch.allclose(a, b)  # the prediction depends on the first crop (cross-attention)


def test_cropmae_trains_on_real_digits() -> None:
    method, _, first, second = setup()
    optimizer = torch.optim.AdamW(method.parameters(), lr=3e-3)
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = []
    for _ in range(15):
        torch.manual_seed(0)
        loss = method.training_loss([first, second]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)
