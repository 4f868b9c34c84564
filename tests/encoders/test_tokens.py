"""The shared token transformer: positions, kept-token encoding, padding and causal order, the vit config."""

from __future__ import annotations

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.encoders.image import ViT
from selfsup.encoders.tokens import sincos_1d, sincos_2d
from selfsup.errors import SelfsupError
from selfsup.modalities.image import encoder_config as image_config

SMALL_VIT = {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}


def test_sincos_positions() -> None:
    table = sincos_1d(5, 4)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))  # sin 0, cos 0 at both frequencies
    assert torch.allclose(table[1, :2], torch.tensor([torch.sin(torch.tensor(1.0)), torch.cos(torch.tensor(1.0))]))
    grid = sincos_2d(3, 4, 8)
    assert grid.shape == (12, 8)
    assert torch.equal(grid[5, :4], sincos_1d(3, 4)[1])  # token 5 = row 1, column 1
    assert torch.equal(grid[5, 4:], sincos_1d(4, 4)[1])
    assert len({tuple(row.tolist()) for row in grid}) == 12  # every position distinct


def test_vit_on_digits(digits) -> None:
    torch.manual_seed(0)
    config = image_config("vit", digits, 16, SMALL_VIT)
    assert config["patch_size"] == 4  # default: a 4 x 4 grid
    encoder = build_encoder(config)
    assert isinstance(encoder, ViT)
    x = digits.train.float_samples()[:8]
    assert encoder(x).shape == (8, 32)
    assert encoder.tokenizer.grid(x) == (4, 4)
    patches, valid = encoder.tokenizer.patches(x)
    assert patches.shape == (8, 16, 1, 4, 4) and valid.all()
    rebuilt = build_encoder(json_roundtrip(config))
    rebuilt.load_state_dict(encoder.state_dict())
    assert torch.equal(rebuilt.eval()(x), encoder.eval()(x))


def json_roundtrip(config: dict) -> dict:
    import json

    return json.loads(json.dumps(config))


@pytest.mark.parametrize(
    "args, message",
    [
        ({"patch_size": 5}, "does not divide the image size 16"),
        ({"embed_dim": 30}, "multiple of 4 and of heads"),
        ({"depth": 0}, "at least 1"),
        ({"width": 3}, "unknown encoder argument"),
        ({"depth": "deep"}, "must be a whole number"),
    ],
)
def test_vit_config_errors(digits, args, message) -> None:
    with pytest.raises(SelfsupError, match=message):
        image_config("vit", digits, 16, args)


def test_other_image_encoders_take_no_arguments(digits) -> None:
    with pytest.raises(SelfsupError, match="takes no encoder arguments"):
        image_config("small_cnn", digits, 16, {"depth": 2})


def test_kept_tokens_see_only_each_other(series) -> None:
    """Encoding a subset equals encoding a series made of only those patches (positions included)."""
    from selfsup.encoders.series import build, series_encoder_config

    config = series_encoder_config(
        "patch_transformer",
        1,
        150,
        [0.0],
        [1.0],
        patch_size=10,
        embed_dim=32,
        depth=2,
        heads=4,
        mlp_dim=64,
        dropout=0.0,
    )
    encoder = build(config).eval()
    x = series[:4]
    keep = torch.tensor([[0, 3, 7]] * 4)
    tokens, valid = encoder.forward_tokens(x, keep)
    assert tokens.shape == (4, 3, 32) and valid.all()
    changed = x.clone()
    changed[..., 10:30] += 5.0  # patches 1 and 2: not kept
    assert torch.allclose(encoder.forward_tokens(changed, keep)[0], tokens, atol=1e-5)
    changed[..., 30:40] += 5.0  # patch 3: kept
    assert not torch.allclose(encoder.forward_tokens(changed, keep)[0], tokens, atol=1e-5)


def test_mask_token_replaces_exactly_the_masked_tokens(digits) -> None:
    """iBOT's [MASK] input: masked content tokens become mask_token + their position, the rest are untouched; with
    no mask, run is the plain pre-norm transformer it was (tokenizer, blocks, LayerNorm, mean of the tokens)."""
    torch.manual_seed(0)
    encoder = build_encoder(image_config("vit", digits, 16, SMALL_VIT)).eval()
    x = digits.train.float_samples()[:3]
    tokens, _ = encoder.tokenizer(x)
    seen: list[torch.Tensor] = []
    hook = encoder.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[0, [1, 5]] = True
    mask[2, 15] = True
    mask_token = torch.randn(32)
    with torch.no_grad():
        masked = encoder.run(x, mask=mask, mask_token=mask_token)
        plain = encoder.run(x)
    hook.remove()
    expected = torch.where(mask.unsqueeze(-1), mask_token + encoder.tokenizer.positions(16), tokens)
    assert torch.equal(seen[0], expected)
    assert torch.equal(seen[0][~mask], tokens[~mask]) and not torch.equal(seen[0][mask], tokens[mask])
    assert torch.equal(seen[1], tokens)  # no mask: the tokenizer's tokens as they are
    z = tokens
    with torch.no_grad():
        for block in encoder.blocks:
            z = block(z)
        reference = encoder.norm(z)
    assert torch.allclose(plain.tokens, reference, atol=1e-6)
    assert torch.allclose(plain.pooled, reference.mean(dim=1), atol=1e-6)
    assert not torch.allclose(masked.pooled[0], plain.pooled[0]) and torch.allclose(masked.pooled[1], plain.pooled[1])
    with pytest.raises(ValueError, match="mask_token"):
        encoder.run(x, mask=mask)
