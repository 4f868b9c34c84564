"""TERA: the alteration masks exactly the drawn time runs and channel band (hand-computed cases and the rules on
random draws), the L1 is TERA's, the method's loss matches a hand computation in frame layout, and a few steps
lower the loss and move the encoder on real series (audio: test_audio_methods.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods.base import build_method
from selfsup.methods.tera import span_mask, tera_alter, tera_l1
from selfsup.modalities import get_modality

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}
DATA = {"timeseries": ("gunpoint", SMALL | {"patch_size": 10})}  # audio: test_audio_methods.py
ONLY_TIME = {"freq_ratio": 0.0, "noise_proportion": 0.0}


def test_span_mask_by_hand() -> None:
    starts = torch.zeros(1, 10, dtype=torch.bool)
    starts[0, [0, 5]] = True
    expected = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(span_mask(starts, 3), expected)


def test_one_run_of_seven_frames_by_hand() -> None:
    # 8 valid frames, runs of 7: round(8 * 0.9 / 7) = 1 run, and the only start in [0, 8 - 7 - 1] is 0
    h = torch.randn(2, 3, 12)
    valid = torch.zeros(2, 12, dtype=torch.bool)
    valid[:, :8] = True
    altered, label = tera_alter(h, valid, time_ratio=0.9, span=7, policy=(1.0, 0.0), **ONLY_TIME)
    expected = torch.zeros(2, 3, 12, dtype=torch.bool)
    expected[:, :, :7] = True
    assert torch.equal(label, expected)
    assert torch.equal(altered[:, :, :7], torch.zeros(2, 3, 7))  # zeroed
    assert torch.equal(altered[:, :, 7], h[:, :, 7])  # untouched
    assert torch.equal(altered[:, :, 8:], torch.zeros(2, 3, 4))  # past the end: 0, no label


def test_time_runs_follow_the_rules_on_random_draws() -> None:
    h, valid = torch.randn(64, 4, 100), torch.ones(64, 100, dtype=torch.bool)
    altered, label = tera_alter(h, valid, generator=torch.Generator().manual_seed(0), policy=(1.0, 0.0), **ONLY_TIME)
    frames = label[:, 0]
    assert torch.equal(label, frames.unsqueeze(1).expand_as(label))  # a masked frame is masked in every channel
    assert torch.equal(altered, h.masked_fill(label, 0.0))  # zeroed where labelled, the rest untouched
    count = round(100 * 0.15 / 7)  # 2 runs of 7 frames, starting in [0, 92]
    covered = frames.sum(1)
    assert ((covered >= 7) & (covered <= count * 7)).all() and (covered == 14).float().mean() > 0.7
    assert not frames[:, 99].any()  # the last start is 100 - 7 - 1 = 92, so frame 99 is never masked
    edges = torch.diff(frames.int(), dim=1, prepend=torch.zeros(64, 1, dtype=torch.int32))
    assert (edges == 1).sum(1).le(count).all()  # at most 2 runs (overlapping runs merge)


def test_replaced_runs_take_frames_of_the_same_sample() -> None:
    h = torch.randn(8, 2, 60)
    altered, label = tera_alter(
        h,
        torch.ones(8, 60, dtype=torch.bool),
        policy=(0.0, 1.0),
        generator=torch.Generator().manual_seed(1),
        **ONLY_TIME,
    )
    for b in range(8):
        shift = [s for s in range(60) if torch.equal(altered[b], h[b].roll(-s, dims=1).where(label[b], h[b]))]
        assert shift, b  # one circular shift of the sample explains every replaced frame


def test_channel_band_is_contiguous_zero_and_labelled() -> None:
    h, valid = torch.randn(200, 40, 30), torch.ones(200, 30, dtype=torch.bool)
    valid[:, 25:] = False
    altered, label = tera_alter(
        h, valid, time_ratio=0.0, freq_ratio=0.2, noise_proportion=0.0, generator=torch.Generator().manual_seed(2)
    )
    band = label[:, :, 0]  # (B, F)
    assert torch.equal(label, band.unsqueeze(2) & valid.unsqueeze(1))  # the band, in every valid frame
    width = band.sum(1)
    assert width.max() == 8 and width.min() == 0  # 0 .. int(40 * 0.2) channels
    edges = torch.diff(band.int(), dim=1, prepend=torch.zeros(200, 1, dtype=torch.int32))
    assert (edges == 1).sum(1).le(1).all()  # one contiguous band
    assert torch.equal(altered, h.masked_fill(label | ~valid.unsqueeze(1), 0.0))


def test_noise_alone_makes_every_value_a_target() -> None:
    h, valid = torch.zeros(50, 8, 40), torch.ones(50, 40, dtype=torch.bool)
    valid[:, 30:] = False
    altered, label = tera_alter(h, valid, time_ratio=0.0, freq_ratio=0.0, noise_proportion=1.0, noise_std=0.2)
    assert torch.equal(label, valid.unsqueeze(1).expand_as(label))
    assert abs(altered[:, :, :30].std().item() - 0.2) < 0.01 and torch.equal(altered[:, :, 30:], h[:, :, 30:])


def test_l1_by_hand() -> None:
    prediction = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 2.0], [5.0, 4.0]])
    label = torch.tensor([[True, False], [True, True]])
    assert tera_l1(prediction, target, label).item() == pytest.approx((1 + 2 + 0) / 3)


def encoder_and_data(modality: str):
    name, args = DATA[modality]
    splits = load_builtin(name)
    module = get_modality(modality)
    torch.manual_seed(0)
    config = module.encoder_config(module.token_encoder, splits, DataOptions(), args)
    return build_encoder(config), splits.train.float_samples()[:16]


def test_loss_is_the_l1_over_the_altered_values_by_hand() -> None:
    encoder, x = encoder_and_data("timeseries")  # gunpoint: 150 steps, 15 patches of 10
    method = build_method("tera", encoder, {"noise_proportion": 1.0})
    torch.nn.init.zeros_(method.head[-1].weight)  # predictions are 0: the loss is the mean |original| where altered
    torch.nn.init.zeros_(method.head[-1].bias)
    torch.manual_seed(3)
    original, altered, label = method.alter(x)
    mean, std = encoder.tokenizer.mean, encoder.tokenizer.std
    h, labelled = (original - mean) / std, (label - mean) / std > 0.5  # back in normalised frames
    assert labelled.any() and not labelled.all()
    loss, _ = method.loss_of(original, altered, label)
    torch.testing.assert_close(loss, h.abs()[labelled].mean())


@pytest.mark.parametrize("modality", sorted(DATA))
def test_tera_trains_on_real_data(modality: str, train_fixed) -> None:
    encoder, x = encoder_and_data(modality)
    method = build_method("tera", encoder, {})
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = train_fixed(method, x, steps=15)
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


def test_tera_refuses_other_token_encoders() -> None:
    splits = load_builtin("iris")
    module = get_modality("tabular")
    config = module.encoder_config("ft_transformer", splits, DataOptions(), {"n_layers": 1})
    with pytest.raises(SelfsupError, match="spec_transformer"):
        build_method("tera", build_encoder(config), {})
