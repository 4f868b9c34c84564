"""LoRA adapters (training/adapters.py) on real encoders built by selfsup's builders: which parameters train and
how many, base weights untouched by training, merging into plain weights, the adapter tensors apart, refusals."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from selfsup.checkpoint import load_encoder, save_encoder
from selfsup.encoders import Encoder, build_encoder
from selfsup.encoders.audio import audio_encoder_config
from selfsup.encoders.image import image_encoder_config
from selfsup.encoders.series import series_encoder_config
from selfsup.encoders.table import table_encoder_config
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.training.adapters import add_lora, base_state, load_lora_state, lora_state, merge_lora

pytestmark = pytest.mark.usefixtures("one_thread")

TABLE = {"numeric": 4, "indicators": 0, "cardinalities": [3]}
TOKEN_LAYERS = ["ffn_in", "ffn_out", "proj", "qkv"]


def _ids(config: dict) -> torch.Tensor:
    ids = torch.randint(1000, 2000, (4, 10))
    ids[:2, 7:] = config["pad_id"]  # two padded texts
    return ids


def _table(config: dict) -> torch.Tensor:
    return torch.cat([torch.randn(4, 4), torch.randint(0, 3, (4, 1)).float()], dim=1)


# name -> (config, an input batch for it, the adapted layers' names)
FAMILIES: dict[str, tuple[Callable[[], dict], Callable[[dict], torch.Tensor], list[str]]] = {
    "vit": (
        lambda: image_encoder_config("vit", 1, 16, [0.5], [0.25], embed_dim=32, depth=2, heads=4, mlp_dim=64),
        lambda c: torch.rand(4, 1, 16, 16),
        TOKEN_LAYERS,
    ),
    "timm_vit": (
        lambda: image_encoder_config("test_vit", 3, 32, [0.5] * 3, [0.25] * 3),
        lambda c: torch.rand(4, 3, 32, 32),
        ["fc1", "fc2", "proj", "qkv"],
    ),
    "small_bert": (
        lambda: text_encoder_config("small_bert", embed_dim=32, depth=1, heads=2, mlp_dim=64, max_length=16, dropout=0),
        _ids,
        ["dense", "key", "query", "value"],
    ),
    "ft_transformer": (
        lambda: table_encoder_config("ft_transformer", TABLE, d_token=16, n_layers=1, n_heads=2),
        _table,
        TOKEN_LAYERS,
    ),
    "patch_transformer": (
        lambda: series_encoder_config(
            "patch_transformer", 1, 32, [0.0], [1.0], patch_size=8, embed_dim=16, depth=1, heads=2, mlp_dim=32
        ),
        lambda c: torch.randn(4, 1, 32),
        TOKEN_LAYERS,
    ),
    "spec_transformer": (
        lambda: audio_encoder_config(
            "spec_transformer", 16000, 0.5, n_mels=16, patch_freq=8, patch_time=8, embed_dim=16, depth=1, heads=2
        ),
        lambda c: torch.randn(4, 1, 4000),
        TOKEN_LAYERS,
    ),
}


def make(name: str, seed: int = 0) -> tuple[Encoder, torch.Tensor]:
    """A freshly built encoder of family ``name`` and an input batch for it."""
    config_of, input_of, _ = FAMILIES[name]
    torch.manual_seed(seed)
    config = config_of()
    return build_encoder(config), input_of(config)


def lora_layers(encoder: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in encoder.named_modules() if hasattr(module, "lora_A")}


def train(encoder: nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    """A few AdamW steps (weight decay on) on a regression of the embedding onto a fixed random target."""
    torch.manual_seed(1)
    target = torch.randn(len(x), encoder.embed_dim)
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    encoder.train()
    for _ in range(steps):
        optimizer.zero_grad()
        (encoder(x) - target).pow(2).mean().backward()
        optimizer.step()
    encoder.eval()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_only_adapters_train_and_each_is_on_the_forward_path(name: str) -> None:
    encoder, x = make(name)
    summary = add_lora(encoder, rank=4)
    assert summary.targets == FAMILIES[name][2]
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    layers = lora_layers(encoder)
    assert len(layers) == summary.layers
    # rank r on a Linear d_in -> d_out adds A (r x d_in) and B (d_out x r)
    base = [m.get_base_layer() for m in layers.values()]
    assert summary.trainable == sum(4 * (b.in_features + b.out_features) for b in base)
    assert summary.trainable == sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert summary.total == summary.full + summary.trainable
    assert summary.state_bytes < summary.full_state_bytes
    assert summary.as_dict()["rank"] == 4 and summary.alpha == 4.0
    encoder(x).square().sum().backward()  # B starts at 0, so only B has a gradient yet: each adapter is used
    for layer_name, layer in layers.items():
        grad = layer.lora_B["default"].weight.grad
        assert grad is not None and grad.abs().sum() > 0, layer_name


def test_a_timm_qkv_its_attention_bypasses_is_left_alone() -> None:
    """EVA-02's attention with q/v biases reads ``qkv.weight`` through ``F.linear``: no adapter there."""
    torch.manual_seed(0)
    encoder = build_encoder(image_encoder_config("eva02_tiny_patch14_224", 3, 28, [0.5] * 3, [0.25] * 3))
    summary = add_lora(encoder, rank=2)
    assert summary.targets == ["fc1", "fc2", "proj"]
    encoder(torch.rand(2, 3, 28, 28)).square().sum().backward()
    assert all(m.lora_B["default"].weight.grad.abs().sum() > 0 for m in lora_layers(encoder).values())


def test_adapter_count_by_hand() -> None:
    """vit, width 32, MLP 64, 2 blocks, rank 4: qkv 32 -> 96, proj 32 -> 32, ffn_in 32 -> 64, ffn_out 64 -> 32."""
    encoder, _ = make("vit")
    full = sum(p.numel() for p in encoder.parameters())
    summary = add_lora(encoder, rank=4, alpha=8)
    assert summary.trainable == 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 64) + (64 + 32)) == 3072
    assert summary.full == full and summary.layers == 8 and summary.alpha == 8.0
    assert lora_layers(encoder)["blocks.0.qkv"].scaling["default"] == 2.0  # alpha / r


@pytest.mark.parametrize("name", ["vit", "small_bert"])
def test_training_moves_adapters_and_leaves_every_base_weight_bit_identical(name: str) -> None:
    encoder, x = make(name)
    original = {n: t.clone() for n, t in encoder.state_dict().items()}
    add_lora(encoder, rank=4)
    before = {n: t.clone() for n, t in encoder.state_dict().items()}
    train(encoder, x)
    after = encoder.state_dict()
    for n, t in after.items():
        if ".lora_" in n:
            assert not torch.equal(t, before[n]), n  # A too: it gets a gradient once B has moved
        else:
            assert torch.equal(t, before[n]), n
    base = base_state(encoder)  # under the plain encoder's names
    assert base.keys() == original.keys() and all(torch.equal(base[n], original[n]) for n in original)


@pytest.mark.parametrize("name", ["vit", "timm_vit", "small_bert"])
def test_merging_gives_the_same_embeddings_and_a_plain_encoders_keys(name: str, tmp_path) -> None:
    encoder, x = make(name)
    add_lora(encoder, rank=4)
    train(encoder, x)
    with torch.no_grad():
        adapted = encoder(x)
    merge_lora(encoder)
    plain = build_encoder(encoder.config).state_dict()
    assert {k: v.shape for k, v in encoder.state_dict().items()} == {k: v.shape for k, v in plain.items()}
    assert not lora_layers(encoder) and not hasattr(encoder, "peft_config")
    assert all(p.requires_grad for p in encoder.parameters())  # a plain encoder again (finetune trains it)
    with torch.no_grad():
        assert torch.allclose(encoder(x), adapted, atol=1e-5)
        assert not torch.allclose(make(name)[0].eval()(x), adapted, atol=1e-3)  # training did change it
    if name == "vit":  # the export format reads it unchanged
        save_encoder(encoder, tmp_path)
        with torch.no_grad():
            assert torch.allclose(load_encoder(tmp_path)(x), adapted, atol=1e-5)


@pytest.mark.parametrize("norms", [False, True])
def test_lora_state_round_trips_onto_a_fresh_encoder(norms: bool) -> None:
    encoder, x = make("vit")
    add_lora(encoder, rank=4, train_norms=norms)
    train(encoder, x)
    state = lora_state(encoder, norms=norms)
    trained_norms = {n for n, p in encoder.named_parameters() if p.requires_grad and ".lora_" not in n}
    assert len(trained_norms) == 10 * norms  # 2 blocks x 2 norms + the final norm, weight and bias
    assert {k for k in state if ".lora_" not in k} == trained_norms
    assert {k for k in state if ".lora_" in k} == {n for n in encoder.state_dict() if ".lora_" in n}
    fresh, _ = make("vit", seed=5)
    fresh.load_state_dict(base_state(encoder))  # the base weights, then the adapters
    add_lora(fresh, rank=4, train_norms=norms)
    load_lora_state(fresh, state)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), encoder(x), atol=1e-6)
    other_rank, _ = make("vit")
    add_lora(other_rank, rank=2)
    with pytest.raises(SelfsupError, match=r"shape \(4, 32\).*rank they were trained with"):
        load_lora_state(other_rank, state)
    with pytest.raises(SelfsupError, match="do not fit this encoder"):
        load_lora_state(fresh, {k: v for k, v in state.items() if "blocks.1" not in k})


def test_train_norms_trains_norms_and_adapters_only() -> None:
    encoder, x = make("vit")
    summary = add_lora(encoder, rank=4, train_norms=True)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    norms = {n for n in trainable if ".lora_" not in n}
    # per block norm1 and norm2, and the final norm: weight and bias of width 32 each
    assert norms == {f"blocks.{i}.norm{j}.{w}" for i in (0, 1) for j in (1, 2) for w in ("weight", "bias")} | {
        "norm.weight",
        "norm.bias",
    }
    assert summary.trainable == 3072 + 5 * 2 * 32 and summary.train_norms
    before = {n: t.clone() for n, t in encoder.state_dict().items()}
    train(encoder, x)
    for n, t in encoder.state_dict().items():
        assert torch.equal(t, before[n]) == (n not in trainable), n


def test_a_deep_copy_is_an_aligned_teacher() -> None:
    """EMA teachers are deep copies of the adapted encoder (methods/ema.py) and zip its parameters."""
    encoder, x = make("vit")
    add_lora(encoder, rank=4)
    train(encoder, x, steps=1)
    teacher = copy.deepcopy(encoder)
    assert [n for n, _ in teacher.named_parameters()] == [n for n, _ in encoder.named_parameters()]
    with torch.no_grad():
        assert torch.equal(teacher(x), encoder(x))


def _small_cnn() -> nn.Module:
    return build_encoder(image_encoder_config("small_cnn", 1, 16, [0.5], [0.25]))


def _resnet() -> nn.Module:
    return build_encoder(image_encoder_config("test_resnet", 3, 96, [0.5] * 3, [0.25] * 3))


def _mlp() -> nn.Module:
    return build_encoder(table_encoder_config("mlp", TABLE, width=8, depth=1))


def _dilated_conv() -> nn.Module:
    return build_encoder(series_encoder_config("dilated_conv", 1, 32, [0.0], [1.0], hidden_dim=8, depth=1))


def _audio_cnn() -> nn.Module:
    return build_encoder(audio_encoder_config("audio_cnn", 16000, 0.5, n_mels=16, width=4))


@pytest.mark.parametrize("build", [_small_cnn, _resnet, _mlp, _dilated_conv, _audio_cnn])
def test_encoders_without_transformer_layers_are_refused_with_one_line(build: Callable[[], nn.Module]) -> None:
    encoder = build()
    before = {n: t.clone() for n, t in encoder.state_dict().items()}
    with pytest.raises(SelfsupError, match=r"cannot take a LoRA adapter.*adapters go on the token transformers") as err:
        add_lora(encoder)
    assert "\n" not in str(err.value) and f"'{encoder.config['name']}'" in str(err.value)
    assert not hasattr(encoder, "peft_config") and all(p.requires_grad for p in encoder.parameters())
    assert encoder.state_dict().keys() == before.keys()


def test_bad_settings_and_double_adapters_are_refused() -> None:
    encoder, _ = make("vit")
    for bad, message in [({"rank": 0}, "rank"), ({"alpha": 0.0}, "alpha"), ({"dropout": 1.0}, "dropout")]:
        with pytest.raises(SelfsupError, match=message):
            add_lora(encoder, **bad)
    add_lora(encoder)
    with pytest.raises(ValueError, match="already carries adapters"):
        add_lora(encoder)
    plain, _ = make("vit")
    with pytest.raises(ValueError, match="no LoRA adapters"):
        merge_lora(plain)
