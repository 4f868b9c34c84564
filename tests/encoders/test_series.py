"""Time-series encoders on real GunPoint series: shapes, NaN handling, channel checks, config round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfsup.encoders.series import DEFAULTS, ENCODERS, build, series_encoder_config
from selfsup.encoders.tokens import pool_tokens
from selfsup.errors import SelfsupError

# small widths keep the file fast on 2 CPU cores
SMALL = {
    "dilated_conv": {"hidden_dim": 16, "depth": 3, "embed_dim": 24},
    "patch_transformer": {"patch_size": 8, "embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64},
}


def make(name: str, x: torch.Tensor, **args) -> torch.nn.Module:
    mean = np.nanmean(x.numpy(), axis=(0, 2))
    std = np.nanstd(x.numpy(), axis=(0, 2))
    encoder = build(series_encoder_config(name, x.shape[1], x.shape[2], mean, std, **(SMALL[name] | args)))
    return encoder.eval()


def two_channels(x: torch.Tensor) -> torch.Tensor:
    """GunPoint and its first difference as a 2-channel series."""
    return torch.cat([x, torch.diff(x, dim=-1, prepend=x[..., :1])], dim=1)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("length", [150, 97, 300, 5, 1])
def test_token_and_embedding_shapes(name: str, length: int, series) -> None:
    x = two_channels(series[:6])
    encoder = make(name, x)
    stride = encoder.token_stride
    assert stride == (1 if name == "dilated_conv" else SMALL[name]["patch_size"])
    tiled = x.repeat(1, 1, 2)[..., :length]  # longer and shorter than the pre-training length 150
    with torch.no_grad():
        tokens, valid = encoder.forward_tokens(tiled)
        embedding = encoder(tiled)
    n = -(-length // stride)
    assert tokens.shape == (6, n, encoder.embed_dim) and valid.shape == (6, n) and valid.dtype == torch.bool
    assert valid.all()
    assert embedding.shape == (6, encoder.embed_dim) and torch.isfinite(embedding).all()
    assert torch.allclose(embedding, tokens.max(dim=1).values)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_padded_tail_leaves_the_series_embedding_unchanged(name: str, series) -> None:
    """A series padded with NaN embeds exactly as the unpadded series: batching cannot change it."""
    encoder = make(name, series)
    ragged = series[:4].clone()
    lengths = [150, 120, 61, 9]
    for row, length in enumerate(lengths):
        ragged[row, :, length:] = float("nan")
    with torch.no_grad():
        batched = encoder(ragged)
        tokens, valid = encoder.forward_tokens(ragged)
        for row, length in enumerate(lengths):
            alone = encoder(series[row : row + 1, :, :length])
            assert torch.allclose(batched[row], alone[0], atol=1e-5), (row, length)
    assert torch.isfinite(batched).all() and torch.isfinite(tokens).all()
    stride = encoder.token_stride
    assert valid.sum(dim=1).tolist() == [-(-length // stride) for length in lengths]


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_missing_values_and_empty_series(name: str, series) -> None:
    encoder = make(name, two_channels(series))
    x = two_channels(series[:3]).clone()
    x[0, 0, 20:40] = float("nan")  # one channel missing: the steps stay valid
    x[1, :, 50:70] = float("nan")  # both channels missing: invalid steps inside the series
    x[2] = float("nan")  # nothing observed
    with torch.no_grad():
        tokens, valid = encoder.forward_tokens(x)
        embedding = encoder(x)
    assert torch.isfinite(tokens).all() and torch.isfinite(embedding).all()
    assert valid[0].all() and not valid[2].any()
    if name == "dilated_conv":
        assert not valid[1, 50:70].any() and valid[1, :50].all() and valid[1, 70:].all()
    else:  # a patch is invalid only when all its steps are: of patches 6, 7, 8 (48..71) only 7 is
        assert valid[1].tolist() == [True] * 7 + [False] + [True] * (valid.shape[1] - 8)
    assert torch.equal(embedding[2], torch.zeros(encoder.embed_dim))
    assert embedding[:2].abs().sum(dim=1).gt(0).all()


def test_patch_of_missing_steps_is_invalid(series) -> None:
    encoder = make("patch_transformer", series)
    x = series[:1].clone()
    x[0, 0, 16:32] = float("nan")  # exactly patches 2 and 3
    with torch.no_grad():
        _, valid = encoder.forward_tokens(x)
    assert valid[0].tolist() == [True, True, False, False] + [True] * 15


def test_fully_missing_gives_zero_gradient_free_embedding() -> None:
    features = torch.randn(2, 3, 4, requires_grad=True)
    valid = torch.tensor([[True, False, True], [False, False, False]])
    pooled = pool_tokens(features, valid)
    assert torch.equal(pooled[1], torch.zeros(4))
    assert torch.equal(pooled[0], torch.maximum(features[0, 0], features[0, 2]))
    pooled.sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad[1].abs().sum() == 0


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_causal_tokens_ignore_the_future(name: str, series) -> None:
    encoder = make(name, series, causal=True)
    x = series[:2].clone()
    changed = x.clone()
    changed[..., 100:] += 1.0
    with torch.no_grad():
        before, _ = encoder.forward_tokens(x)
        after, _ = encoder.forward_tokens(changed)
    cut = 100 // encoder.token_stride  # tokens wholly before step 100
    assert torch.allclose(before[:, :cut], after[:, :cut], atol=1e-5)
    assert not torch.allclose(before[:, cut:], after[:, cut:], atol=1e-3)
    non_causal = make(name, series)
    with torch.no_grad():
        a, _ = non_causal.forward_tokens(x)
        b, _ = non_causal.forward_tokens(changed)
    assert not torch.allclose(a[:, : cut - 2], b[:, : cut - 2], atol=1e-5)  # these see the future


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_wrong_channels_or_shape_is_a_clear_error(name: str, series) -> None:
    encoder = make(name, series)
    with pytest.raises(SelfsupError, match="the encoder takes 1 channels, got 2"):
        encoder(two_channels(series[:2]))
    with pytest.raises(SelfsupError, match="takes .batch, 1, time. series"):
        encoder(series[:2, 0])
    with pytest.raises(SelfsupError, match="takes .batch, 1, time. series"):
        encoder(series[:2, :, :0])


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_config_json_round_trip_rebuilds_the_same_architecture(name: str, series) -> None:
    x = two_channels(series)
    encoder = make(name, x, dropout=0.0)
    config = json.loads(json.dumps(encoder.config))
    assert config["modality"] == "timeseries" and config["name"] == name
    assert config["in_chans"] == 2 and config["length"] == 150 and len(config["mean"]) == 2
    assert set(DEFAULTS[name]) <= set(config)
    rebuilt = build(config).eval()
    rebuilt.load_state_dict(encoder.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(x[:4]), encoder(x[:4]))
    from selfsup.encoders import build_encoder

    assert type(build_encoder(config)) is type(encoder)


def test_normalisation_uses_the_config_statistics(series) -> None:
    encoder = make("dilated_conv", series, dropout=0.0)
    config = dict(encoder.config, mean=[10.0], std=[2.0])
    shifted = build(config).eval()
    shifted.load_state_dict({k: v for k, v in encoder.state_dict().items() if k not in ("mean", "std")}, strict=False)
    x = series[:3]
    with torch.no_grad():
        expected = encoder(((x - 10.0) / 2.0) * encoder.std + encoder.mean)
        assert torch.allclose(shifted(x), expected, atol=1e-5)


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(SelfsupError, match="unknown time-series encoder 'dilated_con'.*Did you mean 'dilated_conv'"):
        series_encoder_config("dilated_con", 1, 10, [0.0], [1.0])
    with pytest.raises(SelfsupError, match="unknown encoder argument.*widht.*known: hidden_dim, depth, embed_dim"):
        series_encoder_config("dilated_conv", 1, 10, [0.0], [1.0], widht=3)
    with pytest.raises(SelfsupError, match="patch_size"):
        series_encoder_config("patch_transformer", 1, 10, [0.0], [1.0], patch_size="big")
    with pytest.raises(SelfsupError, match="multiple of heads"):
        series_encoder_config("patch_transformer", 1, 10, [0.0], [1.0], embed_dim=30, heads=4)
    with pytest.raises(SelfsupError, match="one mean and one std per channel"):
        series_encoder_config("dilated_conv", 2, 10, [0.0], [1.0])
    with pytest.raises(SelfsupError, match="std > 0"):
        series_encoder_config("dilated_conv", 1, 10, [0.0], [0.0])
    with pytest.raises(SelfsupError, match="unknown time-series encoder"):
        build({"modality": "timeseries", "name": "lstm"})


def test_text_arguments_are_coerced() -> None:
    config = series_encoder_config("patch_transformer", 1, 10, [0.0], [1.0], patch_size="4", causal="true", dropout="0")
    assert config["patch_size"] == 4 and config["causal"] is True and config["dropout"] == 0.0
    assert build(config).token_stride == 4
