"""TS2Vec and CPC train on real GunPoint series; TS2Vec's crops are aligned; CPC's errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import selfsup.methods.cpc
import selfsup.methods.ts2vec  # noqa: F401  (registers "ts2vec")
from selfsup.data import valid_lengths
from selfsup.encoders.series import build, series_encoder_config
from selfsup.errors import SelfsupError
from selfsup.methods.base import build_method
from selfsup.methods.ts2vec import sample_crops, take_steps

SMALL = {
    "dilated_conv": {"hidden_dim": 16, "depth": 3, "embed_dim": 24},
    "patch_transformer": {"patch_size": 8, "embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64},
}


# CPC's GRU runs 150 tiny sequential steps: on busy shared cores, 2 threads make it ~10x slower
pytestmark = pytest.mark.usefixtures("one_thread")


def ragged(x: torch.Tensor) -> torch.Tensor:
    """Every third series cut short by NaN padding at the end."""
    x = x.clone()
    for row in range(0, len(x), 3):
        x[row, :, 90 + row :] = float("nan")
    return x


def two_channels(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.diff(x, dim=-1, prepend=x[..., :1])], dim=1)


def encoder_for(name: str, x: torch.Tensor, **args) -> torch.nn.Module:
    mean = np.nanmean(x.numpy(), axis=(0, 2))
    std = np.nanstd(x.numpy(), axis=(0, 2))
    return build(series_encoder_config(name, x.shape[1], x.shape[2], mean, std, **(SMALL[name] | args)))


CASES = [
    ("ts2vec", "dilated_conv", "ragged", {}),
    ("ts2vec", "patch_transformer", "two_channels", {}),
    ("cpc", "dilated_conv", "ragged", {"causal": True}),
    ("cpc", "patch_transformer", "two_channels", {"causal": True}),
]


@pytest.mark.parametrize("method_name, encoder_name, data, encoder_args", CASES)
def test_method_trains_on_gunpoint(method_name, encoder_name, data, encoder_args, series, train_fixed) -> None:
    torch.manual_seed(0)
    x = {"ragged": ragged, "two_channels": two_channels}[data](series[:24])
    method = build_method(method_name, encoder_for(encoder_name, x, **encoder_args), {})
    assert method.modalities == ("timeseries",) and method.views.original and method.views.n_global == 0
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = train_fixed(method, x, steps=25)
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


@pytest.mark.parametrize("stride", [1, 8])
def test_ts2vec_crops_overlap_on_the_same_time_steps(stride: int) -> None:
    steps = 64
    lengths = torch.tensor([64, 40, 17, 64, 33])
    x = torch.arange(steps, dtype=torch.float32).repeat(len(lengths), 2, 1)
    x = x + 1000 * torch.arange(len(lengths)).view(-1, 1, 1)  # every value names its series and step
    x[torch.arange(steps) >= lengths.view(-1, 1, 1).expand(-1, 2, steps)] = float("nan")
    assert valid_lengths(x).tolist() == lengths.tolist()
    n_tokens = -(-lengths // stride)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        pair = sample_crops(n_tokens, max_tokens=100, min_overlap=2, generator=g)
        assert 2 <= pair.overlap <= min(pair.length1, pair.length2)
        assert (pair.start1 >= 0).all() and (pair.start1 + pair.length1 <= n_tokens).all()
        assert (pair.start2 >= pair.start1).all() and (pair.start2 + pair.length2 <= n_tokens).all()
        c1 = take_steps(x, pair.start1 * stride, pair.length1 * stride)
        c2 = take_steps(x, pair.start2 * stride, pair.length2 * stride)
        span = pair.overlap * stride
        shared1, shared2 = c1[..., -span:], c2[..., :span]
        assert torch.equal(shared1.nan_to_num(-1), shared2.nan_to_num(-1))
        # the shared tokens are the original steps start2 * stride ...
        first = x[torch.arange(len(lengths)), 0, (pair.start2 * stride).clamp(max=steps - 1)]
        assert torch.equal(shared2[:, 0, 0], first)
        if stride == 1:  # crops stay inside each series: no padding gets in
            assert not torch.isnan(c1).any() and not torch.isnan(c2).any()
        else:  # only the last, partly padded patch of a series may hold padding
            assert not torch.isnan(c1[..., :-stride]).any()


def test_ts2vec_crops_from_the_method_are_token_aligned(series) -> None:
    x = ragged(series[:8])
    method = build_method("ts2vec", encoder_for("patch_transformer", x), {"mask_prob": 0.0})
    torch.manual_seed(1)
    x1, x2, overlap = method.crops(x)
    assert x1.shape[-1] % 8 == 0 and x2.shape[-1] % 8 == 0 and overlap >= 2
    span = overlap * 8
    assert torch.equal(x1[..., -span:].nan_to_num(99), x2[..., :span].nan_to_num(99))
    masked, _, _ = build_method("ts2vec", encoder_for("dilated_conv", x), {"mask_prob": 0.5}).crops(x)
    hidden = torch.isnan(masked).all(dim=1).float().mean().item()
    assert 0.35 < hidden < 0.65  # about half the time steps masked


def test_ts2vec_refuses_series_shorter_than_two_tokens(series) -> None:
    x = series[:4, :, :8]  # one patch of 8
    method = build_method("ts2vec", encoder_for("patch_transformer", x), {})
    with pytest.raises(SelfsupError, match="at least 2 tokens.*smaller patch_size"):
        method.training_loss([x])


def test_ts2vec_max_length_caps_the_crops(series) -> None:
    x = series[:4]
    method = build_method("ts2vec", encoder_for("patch_transformer", x), {"max_length": 40})
    for seed in range(10):
        torch.manual_seed(seed)
        x1, x2, overlap = method.crops(x)
        assert x1.shape[-1] + x2.shape[-1] - overlap * 8 <= 40
    with pytest.raises(SelfsupError, match="raise max_length to at least 16"):
        build_method("ts2vec", method.encoder, {"max_length": 12}).training_loss([x])


def test_cpc_short_series_error_names_the_fix(series) -> None:
    x = series[:4, :, :40]  # 5 patches of 8
    method = build_method("cpc", encoder_for("patch_transformer", x, causal=True), {"steps_ahead": 5})
    with pytest.raises(SelfsupError, match="only 5 tokens.*steps_ahead below 5.*smaller patch_size"):
        method.training_loss([x])
    ok = build_method("cpc", encoder_for("patch_transformer", x, causal=True), {"steps_ahead": 4})
    assert torch.isfinite(ok.training_loss([x]).loss)


def test_cpc_needs_a_causal_encoder(series) -> None:
    with pytest.raises(SelfsupError, match="causal=true"):
        build_method("cpc", encoder_for("dilated_conv", series), {})


def test_bad_method_arguments_are_named(series) -> None:
    encoder = encoder_for("dilated_conv", series, causal=True)
    with pytest.raises(SelfsupError, match="stepsahead"):
        build_method("cpc", encoder, {"stepsahead": 3})
    with pytest.raises(SelfsupError, match="mask_prob"):
        build_method("ts2vec", encoder, {"mask_prob": 1.5})
