"""--init into another input: the first layer adapted to another channel count (timm's rule), a ViT's position
embeddings resampled to another grid, both reported as adapted, never silently."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console
from safetensors.torch import save_file

from selfsup.checkpoint import save_encoder
from selfsup.encoders import build_encoder
from selfsup.modalities.image import encoder_config as image_config
from selfsup.training.init import adapt_input_conv, load_into, read_init, report_table, resample_pos_embed


def _first_conv(encoder: torch.nn.Module) -> str:
    return next(n for n, m in encoder.named_modules() if isinstance(m, torch.nn.Conv2d)) + ".weight"


def test_adapt_input_conv_by_hand() -> None:
    """1 channel: the sum of the filters; N: the filters repeated cyclically, scaled by C / N."""
    w = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]]).view(2, 3, 1, 1)
    assert adapt_input_conv(w, 1).flatten().tolist() == [6.0, 3.0]
    assert adapt_input_conv(w, 6).view(2, 6).tolist() == [[0.5, 1, 1.5, 0.5, 1, 1.5], [-0.5, 0, 2, -0.5, 0, 2]]
    assert adapt_input_conv(w, 4).view(2, 4).tolist() == [[0.75, 1.5, 2.25, 0.75], [-0.75, 0, 3, -0.75]]
    grey = torch.tensor([3.0, -6.0]).view(2, 1, 1, 1)
    assert adapt_input_conv(grey, 3).view(2, 3).tolist() == [[1.0] * 3, [-2.0] * 3]  # 1 -> N as well


@pytest.mark.parametrize("channels", [1, 2, 4, 6, 13])
def test_adapt_input_conv_is_timms_rule_for_rgb(channels) -> None:
    from timm.models import adapt_input_conv as timm_adapt

    w = torch.randn(8, 3, 7, 7, generator=torch.Generator().manual_seed(channels))
    assert torch.allclose(adapt_input_conv(w, channels), timm_adapt(channels, w))


def test_an_rgb_export_loads_into_six_bands_and_the_table_says_so(digits, tmp_path) -> None:
    rgb_config = image_config("small_cnn", digits, 16) | {"in_chans": 3, "mean": [0.5] * 3, "std": [0.2] * 3}
    torch.manual_seed(0)
    rgb = build_encoder(rgb_config)
    six = build_encoder(rgb_config | {"in_chans": 6, "mean": [100.0] * 6, "std": [10.0] * 6})
    save_encoder(rgb, tmp_path / "rgb")
    with pytest.warns(UserWarning, match="adapted"):
        report = load_into(six, read_init(tmp_path / "rgb"))
    first = _first_conv(six)
    assert report.adapted == [(first, "3 -> 6 channels")]
    assert not report.mismatched and not report.unexpected and sorted(report.missing) == ["mean", "std"]
    w = rgb.state_dict()[first]
    assert torch.allclose(six.state_dict()[first], torch.cat([w, w], dim=1) / 2)
    assert torch.equal(six.state_dict()["mean"].flatten(), torch.full((6,), 100.0))  # the data's statistics stay
    for name, value in rgb.state_dict().items():
        if name not in (first, "mean", "std"):
            assert torch.equal(six.state_dict()[name], value), name
    assert report.as_dict()["adapted"] == [[first, "3 -> 6 channels"]]
    console = Console(record=True, width=300)
    console.print(report_table(report, tmp_path / "rgb"))
    text = console.export_text()
    assert f"{first}: 3 -> 6 channels" in text and "adapted (first layer, position embeddings)" in text


def test_a_first_layer_of_another_kernel_size_stays_a_mismatch(digits) -> None:
    """A 7x7 ImageNet stem into a 3x3 CIFAR stem has no usual adaptation: reported as before, left as built."""
    import timm

    from selfsup.training.init import match_state

    state = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=3).state_dict()
    _, report = match_state(build_encoder(image_config("resnet18", digits, 32)), state)
    assert ("backbone.conv1.weight", (64, 3, 7, 7), (64, 1, 3, 3)) in report.mismatched and not report.adapted


def test_resample_pos_embed_keeps_a_constant_grid_and_the_class_token() -> None:
    pos = torch.cat([torch.full((1, 1, 8), -7.0), torch.full((1, 64, 8), 0.25)], dim=1)  # class token + 8x8
    out = resample_pos_embed(pos, 1 + 16 * 16, prefix=1)
    assert out is not None and out.shape == (1, 257, 8)
    assert torch.equal(out[:, :1], pos[:, :1]) and torch.allclose(out[:, 1:], torch.tensor(0.25))
    ramp = torch.arange(4.0).repeat(4).view(1, 16, 1)  # a 4x4 grid varying along x only, no prefix
    wide = resample_pos_embed(ramp, 64, prefix=0)
    assert wide is not None and torch.allclose(wide.view(8, 8)[0], wide.view(8, 8)[5])  # still constant along y
    assert resample_pos_embed(pos, 1 + 50, prefix=1) is None  # not a square grid


def test_a_timm_vit_at_another_image_size_gets_its_position_embeddings_resampled(digits, tmp_path) -> None:
    import timm

    torch.manual_seed(0)
    state = timm.create_model("test_vit", pretrained=False, num_classes=0, img_size=32).state_dict()  # 2x2 patches
    state["pos_embed"][:, 1:] = 0.5
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "vit.safetensors"))
    encoder = build_encoder(image_config("test_vit", digits, 64))  # grey digits at 64 px: 4x4 patches, 1 channel
    with pytest.warns(UserWarning, match="2x2 -> 4x4 patches"):
        report = load_into(encoder, read_init(tmp_path / "vit.safetensors"))
    assert ("backbone.pos_embed", "2x2 -> 4x4 patches") in report.adapted
    assert ("backbone.patch_embed.proj.weight", "3 -> 1 channels") in report.adapted
    assert not report.mismatched
    pos = encoder.state_dict()["backbone.pos_embed"]
    assert pos.shape == (1, 17, state["pos_embed"].shape[-1])
    assert torch.equal(pos[:, :1], state["pos_embed"][:, :1]) and torch.allclose(pos[:, 1:], torch.tensor(0.5))


def test_timm_imagenet_weights_load_into_thirteen_bands(tmp_path) -> None:
    """A timm weights file (ResNet-18's 7x7 ImageNet stem) into 13-band (Sentinel-2-like) data at 96 px."""
    import timm

    from selfsup.encoders.image import image_encoder_config

    state = timm.create_model("resnet18", pretrained=False, num_classes=10).state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    encoder = build_encoder(image_encoder_config("resnet18", 13, 96, [0.0] * 13, [1.0] * 13))
    with pytest.warns(UserWarning, match="adapted"):
        report = load_into(encoder, read_init(tmp_path / "resnet18.pth"))
    assert report.adapted == [("backbone.conv1.weight", "3 -> 13 channels")] and not report.mismatched
    w = state["conv1.weight"]
    expected = torch.cat([w] * 5, dim=1)[:, :13] * (3 / 13)
    assert torch.allclose(encoder.state_dict()["backbone.conv1.weight"], expected)
